//! A bounds-checked cursor over one pgoutput message: every read checks that the bytes
//! exist first and reports a typed [`DecodeError`] with the offset, so nothing here can
//! panic or allocate on the say-so of an untrusted length.

use chrono::{DateTime, Utc};

use super::messages::DecodeError;
use crate::lsn::Lsn;

/// Microseconds between the Unix epoch and the PostgreSQL epoch (2000-01-01 UTC).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Reads big-endian integers, C strings and byte runs from a message body.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Take `n` bytes, or fail naming `what` was being read.
    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn lsn(&mut self, what: &'static str) -> Result<Lsn, DecodeError> {
        Ok(Lsn(u64::from_be_bytes(self.array(what)?)))
    }

    /// A TimestampTz: microseconds since 2000-01-01 UTC.
    pub(crate) fn timestamp(&mut self, what: &'static str) -> Result<DateTime<Utc>, DecodeError> {
        let offset = self.pos;
        let micros = self.i64(what)?;
        micros
            .checked_add(PG_EPOCH_OFFSET_MICROS)
            .and_then(DateTime::from_timestamp_micros)
            .ok_or(DecodeError::TimestampOutOfRange {
                what,
                offset,
                micros,
            })
    }

    /// A length-prefixed (Int32) byte run; the length must be non-negative and present.
    pub(crate) fn counted_bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let offset = self.pos;
        let len = self.i32(what)?;
        let len =
            usize::try_from(len).map_err(|_| DecodeError::NegativeLength { what, offset, len })?;
        self.bytes(len, what)
    }

    /// A NUL-terminated UTF-8 string (the terminator is consumed, not returned).
    pub(crate) fn cstr(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let offset = self.pos;
        let rest = &self.data[self.pos..];
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::UnterminatedString { what, offset })?;
        let s =
            std::str::from_utf8(&rest[..nul]).map_err(|_| DecodeError::BadUtf8 { what, offset })?;
        self.pos += nul + 1;
        Ok(s)
    }

    /// Fail unless `count` items of at least `min_item_bytes` each can still fit: the
    /// check that stops a forged count from driving a huge allocation.
    pub(crate) fn check_count(
        &self,
        what: &'static str,
        count: usize,
        min_item_bytes: usize,
    ) -> Result<(), DecodeError> {
        let needed = count.saturating_mul(min_item_bytes);
        if needed > self.remaining() {
            return Err(DecodeError::CountExceedsData {
                what,
                offset: self.pos,
                count,
                needed,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }

    /// Fail if anything is left over after the last field.
    pub(crate) fn finish(&self, message: &'static str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(DecodeError::TrailingBytes {
                message,
                offset: self.pos,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }
}
