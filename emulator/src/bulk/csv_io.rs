//! Bulk API 2.0 CSV dialects: the job's column delimiter and line ending, a streaming reader
//! for uploads, and a writer that quotes every value (the form Salesforce's result files use).

use std::fmt;

/// A job's `columnDelimiter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnDelimiter {
    /// `,` (the default).
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
    /// Parses the API name (`COMMA`, `TAB`, …); `None` for anything else.
    pub fn from_api(name: &str) -> Option<Self> {
        Some(match name {
            "COMMA" => Self::Comma,
            "TAB" => Self::Tab,
            "PIPE" => Self::Pipe,
            "SEMICOLON" => Self::Semicolon,
            "CARET" => Self::Caret,
            "BACKQUOTE" => Self::Backquote,
            _ => return None,
        })
    }

    /// The API name.
    pub fn as_api(self) -> &'static str {
        match self {
            Self::Comma => "COMMA",
            Self::Tab => "TAB",
            Self::Pipe => "PIPE",
            Self::Semicolon => "SEMICOLON",
            Self::Caret => "CARET",
            Self::Backquote => "BACKQUOTE",
        }
    }

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

/// A job's `lineEnding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEnding {
    /// `\n` (the default).
    Lf,
    /// `\r\n`.
    Crlf,
}

impl LineEnding {
    /// Parses the API name (`LF`, `CRLF`); `None` for anything else.
    pub fn from_api(name: &str) -> Option<Self> {
        match name {
            "LF" => Some(Self::Lf),
            "CRLF" => Some(Self::Crlf),
            _ => None,
        }
    }

    /// The API name.
    pub fn as_api(self) -> &'static str {
        match self {
            Self::Lf => "LF",
            Self::Crlf => "CRLF",
        }
    }

    /// The bytes ending each line.
    pub fn terminator(self) -> &'static [u8] {
        match self {
            Self::Lf => b"\n",
            Self::Crlf => b"\r\n",
        }
    }
}

/// The CSV dialect of one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialect {
    /// Column delimiter.
    pub delimiter: ColumnDelimiter,
    /// Line ending.
    pub line_ending: LineEnding,
}

impl Default for Dialect {
    fn default() -> Self {
        Self {
            delimiter: ColumnDelimiter::Comma,
            line_ending: LineEnding::Lf,
        }
    }
}

impl Dialect {
    /// A streaming reader over `data` that yields every line, the header included, as a
    /// record, allowing ragged rows (callers check column counts themselves). Both `\n` and
    /// `\r\n` are accepted whatever the job's line ending says.
    pub fn reader(self, data: &[u8]) -> csv::Reader<&[u8]> {
        csv::ReaderBuilder::new()
            .delimiter(self.delimiter.byte())
            .has_headers(false)
            .flexible(true)
            .from_reader(data)
    }

    /// A writer that quotes every value.
    pub fn writer(self) -> QuotedWriter {
        QuotedWriter {
            out: Vec::new(),
            dialect: self,
        }
    }
}

/// Writes CSV with every value quoted and inner quotes doubled, in a job's dialect.
#[derive(Debug)]
pub struct QuotedWriter {
    out: Vec<u8>,
    dialect: Dialect,
}

impl QuotedWriter {
    /// Appends one row.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        for (i, cell) in cells.into_iter().enumerate() {
            if i > 0 {
                self.out.push(self.dialect.delimiter.byte());
            }
            self.quoted(cell.as_ref());
        }
        self.out
            .extend_from_slice(self.dialect.line_ending.terminator());
    }

    /// Appends one quoted value.
    fn quoted(&mut self, cell: &[u8]) {
        self.out.push(b'"');
        for &b in cell {
            if b == b'"' {
                self.out.push(b'"');
            }
            self.out.push(b);
        }
        self.out.push(b'"');
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The finished CSV.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

/// Why an upload cannot be read as CSV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// The upload is empty (no header row).
    #[error("InvalidBatch : Records not processed: empty CSV data")]
    Empty,
    /// A quote is never closed or the bytes are otherwise not CSV.
    #[error("InvalidBatch : Failed to parse CSV: {0}")]
    Malformed(String),
    /// A row has a different number of cells than the header.
    #[error(
        "InvalidBatch : Wrong number of columns in row {row}: expected {expected}, found {found}"
    )]
    ColumnCount {
        /// 1-based line of the data row (the header is row 1).
        row: u64,
        /// Header width.
        expected: usize,
        /// This row's width.
        found: usize,
    },
}

/// Checks that a quote opened in a cell is closed: the csv crate reads an unterminated quote
/// to the end of input without error, where Salesforce rejects the batch.
pub fn check_balanced_quotes(data: &[u8]) -> Result<(), CsvError> {
    let mut in_quotes = false;
    let mut at_cell_start = true;
    let mut prev_quote = false;
    for &b in data {
        if in_quotes {
            if b == b'"' {
                // Either the closing quote or the first of a doubled pair.
                in_quotes = false;
                prev_quote = true;
            }
            continue;
        }
        if prev_quote && b == b'"' {
            in_quotes = true;
            prev_quote = false;
            continue;
        }
        prev_quote = false;
        if b == b'"' && at_cell_start {
            in_quotes = true;
        }
        at_cell_start = matches!(b, b',' | b'\t' | b'|' | b';' | b'^' | b'`' | b'\n' | b'\r');
    }
    if in_quotes {
        return Err(CsvError::Malformed(
            "unbalanced quotes: a quoted value is never closed".into(),
        ));
    }
    Ok(())
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.delimiter.as_api(),
            self.line_ending.as_api()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_quotes_everything_in_dialect() {
        let d = Dialect {
            delimiter: ColumnDelimiter::Pipe,
            line_ending: LineEnding::Crlf,
        };
        let mut w = d.writer();
        w.row(["a", "b\"c", ""]);
        assert_eq!(w.into_bytes(), b"\"a\"|\"b\"\"c\"|\"\"\r\n");
    }

    #[test]
    fn reader_handles_tab_and_crlf() {
        let d = Dialect {
            delimiter: ColumnDelimiter::Tab,
            line_ending: LineEnding::Crlf,
        };
        let mut r = d.reader(b"Name\tX\r\n\"a\tb\"\t1\r\n");
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[1][0], "a\tb");
    }

    #[test]
    fn unbalanced_quotes_are_detected() {
        assert!(check_balanced_quotes(b"Name\n\"abc\n").is_err());
        assert!(check_balanced_quotes(b"Name\n\"a\"\"b\"\n").is_ok());
        assert!(check_balanced_quotes(b"Name\nO\"Brien\n").is_ok());
        assert!(ColumnDelimiter::from_api("comma").is_none());
    }
}
