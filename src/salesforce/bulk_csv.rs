//! CSV for Bulk API 2.0: the job data's line ending and delimiter, and the parsers for job
//! results. Job data itself is written by the sink (`sink::csv`), the one CSV writer.
//!
//! Result rows (`successfulResults`, `failedResults`, `unprocessedrecords`) come back in no
//! particular order: match them to input rows by a column the caller controls (the external
//! id), never by position. [`index_by`] helps with that.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::error::{Result, SalesforceError};

/// Line ending of job data (and its results).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LineEnding {
    /// `\n` (Salesforce's default).
    #[default]
    #[serde(rename = "LF")]
    Lf,
    /// `\r\n`.
    #[serde(rename = "CRLF")]
    Crlf,
}

/// Column delimiter of job data (and its results).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ColumnDelimiter {
    /// `,` (Salesforce's default).
    #[default]
    Comma,
    /// Tab.
    Tab,
    /// `|`.
    Pipe,
    /// `;`.
    Semicolon,
    /// `^`.
    Caret,
    /// `` ` ``.
    Backquote,
}

impl ColumnDelimiter {
    /// The delimiter byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::Comma => b',',
            Self::Tab => b'\t',
            Self::Pipe => b'|',
            Self::Semicolon => b';',
            Self::Caret => b'^',
            Self::Backquote => b'`',
        }
    }
}

/// A CSV row as column → value (original columns of a result row).
pub type CsvRow = BTreeMap<String, String>;

/// A row of `successfulResults`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuccessfulRecord {
    /// `sf__Id`: the record's Salesforce id.
    pub id: String,
    /// `sf__Created`: true when inserted.
    pub created: bool,
    /// The original columns of the row.
    pub fields: CsvRow,
}

/// A row of `failedResults`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecord {
    /// `sf__Id` (empty for failed inserts, absent before v53).
    pub id: Option<String>,
    /// `sf__Error`, split.
    pub error: BulkRowError,
    /// The original columns of the row.
    pub fields: CsvRow,
}

/// A row of `unprocessedrecords`: only the original columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnprocessedRecord {
    /// The original columns of the row.
    pub fields: CsvRow,
}

/// An `sf__Error` value split into its parts (`CODE:message:fields --`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkRowError {
    /// e.g. `REQUIRED_FIELD_MISSING` (empty when the value had no code).
    pub code: String,
    /// The message.
    pub message: String,
    /// Fields involved.
    pub fields: Vec<String>,
}

impl BulkRowError {
    /// Parses `CODE:message:fields --`; the message may itself contain colons.
    pub fn parse(raw: &str) -> Self {
        let trimmed = raw.trim();
        let (code, rest) = match trimmed.split_once(':') {
            Some((code, rest)) if is_error_code(code) => (code, rest),
            _ => {
                return Self {
                    code: String::new(),
                    message: trimmed.to_string(),
                    fields: Vec::new(),
                }
            }
        };
        let Some(body) = rest.strip_suffix("--") else {
            return Self {
                code: code.to_string(),
                message: rest.trim().to_string(),
                fields: Vec::new(),
            };
        };
        let (message, fields) = match body.trim_end().rsplit_once(':') {
            Some((message, fields)) => (message, fields),
            None => (body, ""),
        };
        Self {
            code: code.to_string(),
            message: message.trim().to_string(),
            fields: fields
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(String::from)
                .collect(),
        }
    }
}

/// `UPPER_SNAKE` codes only.
fn is_error_code(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Something with the original columns of a result row.
pub trait ResultColumns {
    /// The original columns.
    fn columns(&self) -> &CsvRow;

    /// One original column's value.
    fn column(&self, name: &str) -> Option<&str> {
        self.columns().get(name).map(String::as_str)
    }
}

impl ResultColumns for SuccessfulRecord {
    fn columns(&self) -> &CsvRow {
        &self.fields
    }
}

impl ResultColumns for FailedRecord {
    fn columns(&self) -> &CsvRow {
        &self.fields
    }
}

impl ResultColumns for UnprocessedRecord {
    fn columns(&self) -> &CsvRow {
        &self.fields
    }
}

/// Groups result rows by the value of `column` (e.g. the external id). Rows without the
/// column are grouped under the empty string.
pub fn index_by<T: ResultColumns>(rows: Vec<T>, column: &str) -> HashMap<String, Vec<T>> {
    let mut map: HashMap<String, Vec<T>> = HashMap::new();
    for row in rows {
        let key = row.column(column).unwrap_or_default().to_string();
        map.entry(key).or_default().push(row);
    }
    map
}

/// A parsed CSV: header and rows.
pub(crate) struct ParsedCsv {
    /// Column names.
    pub header: Vec<String>,
    /// Rows, each as wide as the header.
    pub rows: Vec<Vec<String>>,
}

/// Parses a CSV body with a header row. An empty body has no columns and no rows.
pub(crate) fn parse_csv(
    body: &[u8],
    delimiter: ColumnDelimiter,
    context: &str,
) -> Result<ParsedCsv> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter.byte())
        .has_headers(true)
        .from_reader(body);
    let bad = |e: csv::Error| SalesforceError::BadResponse {
        context: context.to_string(),
        detail: format!("malformed CSV: {e}"),
    };
    let header: Vec<String> = reader
        .headers()
        .map_err(bad)?
        .iter()
        .map(String::from)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        rows.push(record.map_err(bad)?.iter().map(String::from).collect());
    }
    Ok(ParsedCsv { header, rows })
}

/// Splits a result CSV into `sf__*` columns and the original columns.
fn split_rows(parsed: ParsedCsv) -> Vec<(HashMap<String, String>, CsvRow)> {
    let ParsedCsv { header, rows } = parsed;
    rows.into_iter()
        .map(|row| {
            let mut sf = HashMap::new();
            let mut fields = CsvRow::new();
            for (name, value) in header.iter().zip(row) {
                if name.starts_with("sf__") {
                    sf.insert(name.clone(), value);
                } else {
                    fields.insert(name.clone(), value);
                }
            }
            (sf, fields)
        })
        .collect()
}

/// Parses `successfulResults`.
pub(crate) fn parse_successful(
    body: &[u8],
    delimiter: ColumnDelimiter,
) -> Result<Vec<SuccessfulRecord>> {
    let parsed = parse_csv(body, delimiter, "successfulResults")?;
    split_rows(parsed)
        .into_iter()
        .map(|(mut sf, fields)| {
            Ok(SuccessfulRecord {
                id: sf.remove("sf__Id").unwrap_or_default(),
                created: sf
                    .get("sf__Created")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")),
                fields,
            })
        })
        .collect()
}

/// Parses `failedResults`.
pub(crate) fn parse_failed(body: &[u8], delimiter: ColumnDelimiter) -> Result<Vec<FailedRecord>> {
    let parsed = parse_csv(body, delimiter, "failedResults")?;
    Ok(split_rows(parsed)
        .into_iter()
        .map(|(mut sf, fields)| FailedRecord {
            id: sf.remove("sf__Id").filter(|id| !id.is_empty()),
            error: BulkRowError::parse(&sf.remove("sf__Error").unwrap_or_default()),
            fields,
        })
        .collect())
}

/// Parses `unprocessedrecords`.
pub(crate) fn parse_unprocessed(
    body: &[u8],
    delimiter: ColumnDelimiter,
) -> Result<Vec<UnprocessedRecord>> {
    let parsed = parse_csv(body, delimiter, "unprocessedrecords")?;
    Ok(split_rows(parsed)
        .into_iter()
        .map(|(_, fields)| UnprocessedRecord { fields })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sf_error() {
        let e = BulkRowError::parse(
            "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --",
        );
        assert_eq!(e.code, "REQUIRED_FIELD_MISSING");
        assert_eq!(e.message, "Required fields are missing: [LastName]");
        assert_eq!(e.fields, ["LastName"]);

        let e = BulkRowError::parse(
            "INVALID_FIELD:Foreign key external ID: c9 not found for field Ext__c in entity Account:--",
        );
        assert_eq!(e.code, "INVALID_FIELD");
        assert_eq!(
            e.message,
            "Foreign key external ID: c9 not found for field Ext__c in entity Account"
        );
        assert!(e.fields.is_empty());

        let e = BulkRowError::parse("STRING_TOO_LONG:Name: data value too large:Name,Site --");
        assert_eq!(e.message, "Name: data value too large");
        assert_eq!(e.fields, ["Name", "Site"]);

        let e = BulkRowError::parse("something odd");
        assert_eq!((e.code.as_str(), e.message.as_str()), ("", "something odd"));
    }

    #[test]
    fn parses_results_by_key_not_position() {
        let body = "\"sf__Id\",\"sf__Error\",\"Ext__c\",\"Name\"\n\
                    \"\",\"REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --\",\"k2\",\"\"\n\
                    \"001A\",\"DUPLICATE_VALUE:dup, really:--\",\"k1\",\"Multi\nline, \"\"quoted\"\"\"\n";
        let rows = parse_failed(body.as_bytes(), ColumnDelimiter::Comma).unwrap();
        let by_key = index_by(rows, "Ext__c");
        let k1 = &by_key["k1"][0];
        assert_eq!(k1.id.as_deref(), Some("001A"));
        assert_eq!(k1.error.code, "DUPLICATE_VALUE");
        assert_eq!(k1.error.message, "dup, really");
        assert_eq!(k1.column("Name"), Some("Multi\nline, \"quoted\""));
        assert_eq!(by_key["k2"][0].id, None);
        assert_eq!(by_key["k2"][0].error.fields, ["Name"]);
    }

    #[test]
    fn empty_results() {
        assert!(parse_successful(b"", ColumnDelimiter::Comma)
            .unwrap()
            .is_empty());
        assert!(parse_successful(
            b"\"sf__Id\",\"sf__Created\",\"A\"\n",
            ColumnDelimiter::Comma
        )
        .unwrap()
        .is_empty());
    }
}
