//! The `proto-fixtures/` capture format: one pgoutput message per line as
//! `<lsn> <hex bytes>`, with `#` comment lines for provenance. Shared by the fixture
//! tests, the fuzz tests and the decode bench.

use crate::lsn::Lsn;

/// A capture line that is not `<lsn> <hex>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fixture line {line}: {reason}")]
pub struct FixtureError {
    pub line: usize,
    pub reason: String,
}

/// Parse a capture into `(wal_start, message bytes)` pairs, in order.
pub fn parse(text: &str) -> Result<Vec<(Lsn, Vec<u8>)>, FixtureError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |reason: &str| FixtureError {
            line: i + 1,
            reason: reason.to_string(),
        };
        let (lsn, hex) = line.split_once(' ').unwrap_or((line, ""));
        let lsn: Lsn = lsn.parse().map_err(|_| err("bad LSN"))?;
        let bytes = super::value::decode_hex(hex.trim()).ok_or_else(|| err("bad hex"))?;
        out.push((lsn, bytes));
    }
    Ok(out)
}

/// Render messages in the capture format (the inverse of [`parse`]).
pub fn render(messages: &[(Lsn, Vec<u8>)]) -> String {
    let mut s = String::new();
    for (lsn, bytes) in messages {
        s.push_str(&lsn.to_string());
        s.push(' ');
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let msgs = vec![
            (Lsn(0x1_0000_0010), vec![0x42, 0x00, 0xff]),
            (Lsn(5), vec![]),
        ];
        let text = format!("# comment\n{}", render(&msgs));
        assert_eq!(parse(&text).unwrap(), msgs);
        assert!(parse("0/1 zz").is_err());
    }
}
