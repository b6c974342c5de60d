//! Incremental parser for COPY's text format (`COPY ... TO STDOUT`).
//!
//! Rows end with `\n`, fields are separated by tabs, `\N` alone is NULL, and backslash
//! escapes (`\\ \b \f \n \r \t \v`, octal `\NNN`, hex `\xHH`) are decoded. Data arrives
//! in arbitrary chunks; the parser holds at most one incomplete row plus the current
//! chunk, so memory stays bounded by the widest row.

use bytes::{Buf, BytesMut};

/// One decoded row: `None` is SQL NULL.
pub type TextRow = Vec<Option<String>>;

/// A COPY text line that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyTextError {
    #[error("COPY data ended in the middle of a row ({0} bytes left over)")]
    TrailingData(usize),
    #[error("COPY field is not valid UTF-8")]
    InvalidUtf8,
}

/// Feed chunks with [`push`](Self::push), take rows with [`next_row`](Self::next_row).
#[derive(Debug, Default)]
pub struct CopyTextParser {
    buf: BytesMut,
}

impl CopyTextParser {
    pub fn new() -> CopyTextParser {
        CopyTextParser::default()
    }

    /// Append a chunk of COPY output.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete row, if one is buffered.
    pub fn next_row(&mut self) -> Option<Result<TextRow, CopyTextError>> {
        let end = self.buf.iter().position(|&b| b == b'\n')?;
        let line = self.buf.split_to(end);
        self.buf.advance(1);
        Some(parse_line(&line))
    }

    /// Call at end of data: an unterminated row is an error.
    pub fn finish(&self) -> Result<(), CopyTextError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CopyTextError::TrailingData(self.buf.len()))
        }
    }
}

/// Decode one line (without its `\n`).
pub fn parse_line(line: &[u8]) -> Result<TextRow, CopyTextError> {
    line.split(|&b| b == b'\t').map(parse_field).collect()
}

fn parse_field(raw: &[u8]) -> Result<Option<String>, CopyTextError> {
    if raw == b"\\N" {
        return Ok(None);
    }
    let bytes = if raw.contains(&b'\\') {
        unescape(raw)
    } else {
        raw.to_vec()
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| CopyTextError::InvalidUtf8)
}

fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&c) = raw.get(i) else {
            out.push(b'\\');
            break;
        };
        i += 1;
        match c {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0C),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0B),
            b'0'..=b'7' => {
                let (value, used) = take_digits(&raw[i - 1..], 3, 8);
                out.push(value as u8);
                i += used - 1;
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let (value, used) = take_digits(&raw[i..], 2, 16);
                out.push(value as u8);
                i += used;
            }
            other => out.push(other),
        }
    }
    out
}

/// Read up to `max` digits of `radix` from the start of `s`: (value, digits used).
fn take_digits(s: &[u8], max: usize, radix: u32) -> (u32, usize) {
    let mut value = 0u32;
    let mut used = 0;
    for &d in s.iter().take(max) {
        match char::from(d).to_digit(radix) {
            Some(v) => {
                value = value * radix + v;
                used += 1;
            }
            None => break,
        }
    }
    (value, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn parses_fields_nulls_and_escapes() {
        let row = parse_line(b"1\t\\N\ta\\tb\\nc\\\\d\t\t\\101\\x41\\q").unwrap();
        assert_eq!(row, vec![s("1"), None, s("a\tb\nc\\d"), s(""), s("AAq")]);
        // `\N` only means NULL as the whole field.
        assert_eq!(parse_line(b"x\\N").unwrap(), vec![s("xN")]);
    }

    #[test]
    fn rows_split_across_chunks() {
        let data = b"1\thello\n2\t\\N\n3\twor\\tld\n";
        for split in 0..data.len() {
            let mut p = CopyTextParser::new();
            let mut rows = Vec::new();
            for chunk in [&data[..split], &data[split..]] {
                p.push(chunk);
                while let Some(r) = p.next_row() {
                    rows.push(r.unwrap());
                }
            }
            p.finish().unwrap();
            assert_eq!(rows.len(), 3, "split at {split}");
            assert_eq!(rows[2], vec![s("3"), s("wor\tld")]);
        }
    }

    #[test]
    fn unterminated_row_is_an_error() {
        let mut p = CopyTextParser::new();
        p.push(b"1\tabc");
        assert!(p.next_row().is_none());
        assert_eq!(p.finish(), Err(CopyTextError::TrailingData(5)));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        assert_eq!(parse_line(b"\\377"), Err(CopyTextError::InvalidUtf8));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut p = CopyTextParser::new();
            p.push(&bytes);
            while p.next_row().is_some() {}
            let _ = p.finish();
        }
    }
}
