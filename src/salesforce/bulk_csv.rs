//! CSV for Bulk API 2.0: the job data's line ending and delimiter, and the parsers for job
//! results. Job data itself is written by the sink (`sink::csv`), the one CSV writer.
//!
//! Result rows (`successfulResults`, `failedResults`, `unprocessedrecords`) come back in no
//! particular order: match them to input rows by a column the caller controls (the external
//! id), never by position. [`index_by`] helps with that.

use std::collections::HashMap;
use std::sync::Arc;

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

/// The original columns of a result row, read by position: the column names are parsed
/// once per result file and shared by its rows, so a row holds only its values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CsvRow {
    /// The original columns' names, in file order (shared by every row of one file).
    names: Arc<[String]>,
    /// This row's values, one per name.
    values: Vec<String>,
}

impl CsvRow {
    /// A row of `values` under `names` (as wide as each other; extra values are dropped).
    pub fn new(names: Arc<[String]>, mut values: Vec<String>) -> Self {
        values.truncate(names.len());
        CsvRow { names, values }
    }

    /// The value of column `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let i = self.names.iter().position(|n| n == name)?;
        self.values.get(i).map(String::as_str)
    }

    /// Moves the value of column `name` out (leaving it empty).
    pub fn take(&mut self, name: &str) -> Option<String> {
        let i = self.names.iter().position(|n| n == name)?;
        self.values.get_mut(i).map(std::mem::take)
    }

    /// The value at column position `i` (see [`Self::names`]).
    pub fn at(&self, i: usize) -> Option<&str> {
        self.values.get(i).map(String::as_str)
    }

    /// The column names, in file order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// (column, value) pairs in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.values.iter().map(String::as_str))
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// No columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

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
        self.columns().get(name)
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

/// A result file read row by row: the `sf__*` columns' positions and the original
/// columns' names are found once, from the header; each row's cells are taken by position.
struct ResultReader<'a> {
    reader: csv::Reader<&'a [u8]>,
    /// Column names of the whole header.
    header: Vec<String>,
    /// The original (non-`sf__`) columns' names, shared by every row.
    names: Arc<[String]>,
    /// Which header positions are original columns, in order.
    original: Vec<usize>,
    /// What the errors name.
    context: &'static str,
}

impl<'a> ResultReader<'a> {
    /// `only`: keep just that original column (a caller matching rows by key needs no
    /// other), else every one.
    fn new(
        body: &'a [u8],
        delimiter: ColumnDelimiter,
        context: &'static str,
        only: Option<&str>,
    ) -> Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter.byte())
            .has_headers(true)
            .from_reader(body);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| malformed(context, e))?
            .iter()
            .map(String::from)
            .collect();
        let original: Vec<usize> = (0..header.len())
            .filter(|&i| !header[i].starts_with("sf__"))
            .filter(|&i| only.is_none_or(|c| header[i] == c))
            .collect();
        let names: Arc<[String]> = original.iter().map(|&i| header[i].clone()).collect();
        Ok(ResultReader {
            reader,
            header,
            names,
            original,
            context,
        })
    }

    /// Position of an `sf__*` column.
    fn position(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// Every row: `f` gets the row's cells and its original columns.
    fn rows<T>(mut self, mut f: impl FnMut(&csv::StringRecord, CsvRow) -> T) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match self.reader.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => return Ok(out),
                Err(e) => return Err(malformed(self.context, e)),
            }
            let values = self
                .original
                .iter()
                .map(|&i| record.get(i).unwrap_or_default().to_string())
                .collect();
            out.push(f(&record, CsvRow::new(self.names.clone(), values)));
        }
    }
}

/// The error for a result file the CSV reader rejects.
fn malformed(context: &str, e: csv::Error) -> SalesforceError {
    SalesforceError::BadResponse {
        context: context.to_string(),
        detail: format!("malformed CSV: {e}"),
    }
}

/// The cell at an optional position.
fn cell(record: &csv::StringRecord, i: Option<usize>) -> Option<&str> {
    i.and_then(|i| record.get(i))
}

/// Parses `successfulResults` (`only`: keep just that original column).
pub(crate) fn parse_successful(
    body: &[u8],
    delimiter: ColumnDelimiter,
    only: Option<&str>,
) -> Result<Vec<SuccessfulRecord>> {
    let r = ResultReader::new(body, delimiter, "successfulResults", only)?;
    let (id, created) = (r.position("sf__Id"), r.position("sf__Created"));
    r.rows(|record, fields| SuccessfulRecord {
        id: cell(record, id).unwrap_or_default().to_string(),
        created: cell(record, created).is_some_and(|v| v.eq_ignore_ascii_case("true")),
        fields,
    })
}

/// Parses `failedResults` (`only`: keep just that original column).
pub(crate) fn parse_failed(
    body: &[u8],
    delimiter: ColumnDelimiter,
    only: Option<&str>,
) -> Result<Vec<FailedRecord>> {
    let r = ResultReader::new(body, delimiter, "failedResults", only)?;
    let (id, error) = (r.position("sf__Id"), r.position("sf__Error"));
    r.rows(|record, fields| FailedRecord {
        id: cell(record, id)
            .filter(|id| !id.is_empty())
            .map(String::from),
        error: BulkRowError::parse(cell(record, error).unwrap_or_default()),
        fields,
    })
}

/// Parses `unprocessedrecords` (`only`: keep just that original column).
pub(crate) fn parse_unprocessed(
    body: &[u8],
    delimiter: ColumnDelimiter,
    only: Option<&str>,
) -> Result<Vec<UnprocessedRecord>> {
    let r = ResultReader::new(body, delimiter, "unprocessedrecords", only)?;
    r.rows(|_, fields| UnprocessedRecord { fields })
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
        let rows = parse_failed(body.as_bytes(), ColumnDelimiter::Comma, None).unwrap();
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
    fn result_rows_share_their_column_names_and_keep_sf_columns_out() {
        let body = "\"sf__Id\",\"sf__Created\",\"Ext__c\",\"Name\"\n\
                    \"001A\",\"true\",\"k1\",\"A\"\n\
                    \"001B\",\"false\",\"k2\",\"\"\n";
        let rows = parse_successful(body.as_bytes(), ColumnDelimiter::Comma, None).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].id.as_str(), rows[0].created), ("001A", true));
        assert_eq!((rows[1].id.as_str(), rows[1].created), ("001B", false));
        assert_eq!(rows[0].fields.names(), ["Ext__c", "Name"]);
        assert!(std::ptr::eq(
            rows[0].fields.names().as_ptr(),
            rows[1].fields.names().as_ptr()
        ));
        let pairs: Vec<_> = rows[1].fields.iter().collect();
        assert_eq!(pairs, [("Ext__c", "k2"), ("Name", "")]);
        assert_eq!(rows[1].fields.at(0), Some("k2"));
        assert_eq!(rows[1].column("sf__Id"), None);
        let keyed =
            parse_successful(body.as_bytes(), ColumnDelimiter::Comma, Some("Ext__c")).unwrap();
        assert_eq!(keyed[1].fields.names(), ["Ext__c"]);
        assert_eq!(
            (keyed[1].column("Ext__c"), keyed[1].id.as_str()),
            (Some("k2"), "001B")
        );
        let mut row = keyed[1].fields.clone();
        assert_eq!(row.take("Ext__c").as_deref(), Some("k2"));
        assert_eq!(row.take("Name"), None);
        assert_eq!(row.get("Ext__c"), Some(""));
        let unprocessed = parse_unprocessed(b"Ext__c\nk9\n", ColumnDelimiter::Comma, None).unwrap();
        assert_eq!(unprocessed[0].column("Ext__c"), Some("k9"));
    }

    #[test]
    fn empty_results() {
        assert!(parse_successful(b"", ColumnDelimiter::Comma, None)
            .unwrap()
            .is_empty());
        assert!(parse_successful(
            b"\"sf__Id\",\"sf__Created\",\"A\"\n",
            ColumnDelimiter::Comma,
            None
        )
        .unwrap()
        .is_empty());
    }
}
