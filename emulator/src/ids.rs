//! Salesforce record ids: 15-char case-sensitive and 18-char case-safe forms, key prefixes,
//! the checksum suffix, and a generator that hands out ids in increasing order.
//!
//! An [`Id`] is always stored in its canonical 18-char form. Input may be 15 or 18 chars; an
//! 18-char id whose case was lost (all lower or upper case) is restored from its suffix, the
//! way Salesforce does it.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Alphabet used to encode each 5-bit chunk of the case mask.
const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Base-62 digits in ASCII order, so that generated ids sort like their counters.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Key prefixes of well-known objects.
pub mod prefix {
    /// Account.
    pub const ACCOUNT: &str = "001";
    /// Contact.
    pub const CONTACT: &str = "003";
    /// User.
    pub const USER: &str = "005";
    /// Opportunity.
    pub const OPPORTUNITY: &str = "006";
    /// Organization.
    pub const ORG: &str = "00D";
    /// Lead.
    pub const LEAD: &str = "00Q";
    /// Task.
    pub const TASK: &str = "00T";
    /// Event.
    pub const EVENT: &str = "00U";
    /// CampaignMember.
    pub const CAMPAIGN_MEMBER: &str = "00v";
    /// RecordType.
    pub const RECORD_TYPE: &str = "012";
    /// Campaign.
    pub const CAMPAIGN: &str = "701";
    /// Bulk API job.
    pub const BULK_JOB: &str = "750";
    /// Query locator (cursor) of a REST query.
    pub const QUERY_LOCATOR: &str = "01g";
}

/// Why a string is not a Salesforce id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not 15 or 18 characters long.
    #[error("id must be 15 or 18 characters, got {0}")]
    Length(usize),
    /// Contains a character outside `[0-9A-Za-z]`.
    #[error("id contains a character outside [0-9A-Za-z]")]
    Character,
    /// The 3-char case-safe suffix does not decode.
    #[error("id has an invalid case-safe suffix")]
    Suffix,
}

/// A canonical 18-char Salesforce id. Cheap to copy, hash and compare; orders like the
/// underlying string (and, for generated ids, like creation order within a prefix).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id([u8; 18]);

impl Id {
    /// The smallest id (all zeros), a lower bound for ordered ranges.
    pub const MIN: Id = Id([b'0'; 18]);

    /// Parses a 15- or 18-char id, restoring case from the suffix of an 18-char id.
    pub fn parse(s: &str) -> Result<Id, IdError> {
        let bytes = s.as_bytes();
        if bytes.len() != 15 && bytes.len() != 18 {
            return Err(IdError::Length(bytes.len()));
        }
        if !bytes.iter().all(u8::is_ascii_alphanumeric) {
            return Err(IdError::Character);
        }
        let mut body = [0u8; 15];
        body.copy_from_slice(&bytes[..15]);
        if bytes.len() == 18 {
            restore_case(&mut body, &bytes[15..18])?;
        }
        Ok(Id::from_15(body))
    }

    /// Builds the 18-char id from 15 case-sensitive characters.
    fn from_15(body: [u8; 15]) -> Id {
        let mut out = [0u8; 18];
        out[..15].copy_from_slice(&body);
        out[15..].copy_from_slice(&suffix(&body));
        Id(out)
    }

    /// Builds an id from a 3-char key prefix and a counter (used by the generator and for
    /// fixed ids such as the org and configured users).
    pub fn from_parts(key_prefix: &str, counter: u64) -> Id {
        let mut body = [b'0'; 15];
        let p = key_prefix.as_bytes();
        for (slot, b) in body.iter_mut().zip(p.iter().take(3)) {
            *slot = *b;
        }
        // Chars 3..5 mimic a pod identifier, char 5 is reserved, 6..15 hold the counter.
        body[3] = b'5';
        body[4] = b'g';
        let mut n = counter;
        for slot in body[6..15].iter_mut().rev() {
            *slot = BASE62[(n % 62) as usize];
            n /= 62;
        }
        Id::from_15(body)
    }

    /// The canonical 18-char form.
    pub fn as_str(&self) -> &str {
        // Only ASCII alphanumerics are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The case-sensitive 15-char form.
    pub fn as_15(&self) -> &str {
        &self.as_str()[..15]
    }

    /// The 3-char key prefix naming the object type.
    pub fn key_prefix(&self) -> &str {
        &self.as_str()[..3]
    }
}

/// Computes the 3-char case-safe suffix of a 15-char id.
fn suffix(body: &[u8; 15]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (chunk_index, chunk) in body.chunks(5).enumerate() {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out[chunk_index] = SUFFIX_ALPHABET[bits];
    }
    out
}

/// Applies the case mask encoded in an 18-char id's suffix to its first 15 chars.
fn restore_case(body: &mut [u8; 15], suffix_chars: &[u8]) -> Result<(), IdError> {
    for (chunk, s) in body.chunks_mut(5).zip(suffix_chars) {
        let s = s.to_ascii_uppercase();
        let bits = SUFFIX_ALPHABET
            .iter()
            .position(|a| *a == s)
            .ok_or(IdError::Suffix)?;
        for (i, c) in chunk.iter_mut().enumerate() {
            if bits & (1 << i) != 0 {
                *c = c.to_ascii_uppercase();
            } else {
                *c = c.to_ascii_lowercase();
            }
        }
    }
    Ok(())
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.as_str())
    }
}

impl FromStr for Id {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Id, IdError> {
        Id::parse(s)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        let s = String::deserialize(d)?;
        Id::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Hands out unique ids in increasing order. Thread-safe and lock-free.
#[derive(Debug)]
pub struct IdGenerator {
    next: AtomicU64,
}

impl IdGenerator {
    /// A generator whose first id uses counter `start`.
    pub fn new(start: u64) -> IdGenerator {
        IdGenerator {
            next: AtomicU64::new(start),
        }
    }

    /// A new id with the given key prefix.
    pub fn next(&self, key_prefix: &str) -> Id {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Id::from_parts(key_prefix, n)
    }

    /// The counter the next id will use (for snapshots).
    pub fn peek(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Ensures future ids use counters above `seen` (after loading a snapshot).
    pub fn bump_past(&self, seen: u64) {
        self.next.fetch_max(seen + 1, Ordering::Relaxed);
    }
}

/// Decodes the counter of an id made by [`Id::from_parts`] (None for foreign ids).
pub fn counter_of(id: &Id) -> Option<u64> {
    let body = &id.as_str().as_bytes()[6..15];
    let mut n: u64 = 0;
    for c in body {
        let d = BASE62.iter().position(|b| b == c)? as u64;
        n = n.checked_mul(62)?.checked_add(d)?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_documented_examples() {
        let id = Id::parse("001D000000IqhSL").unwrap();
        assert_eq!(id.as_str(), "001D000000IqhSLIAZ");
        assert_eq!(id.as_15(), "001D000000IqhSL");
        assert_eq!(id.key_prefix(), "001");
    }

    #[test]
    fn eighteen_char_ids_restore_case() {
        let lower = Id::parse("001d000000iqhslIAZ").unwrap();
        assert_eq!(lower.as_str(), "001D000000IqhSLIAZ");
        let upper = Id::parse("001D000000IQHSLIAZ").unwrap();
        assert_eq!(upper.as_str(), "001D000000IqhSLIAZ");
        let lower_suffix = Id::parse("001D000000IqhSLiaz").unwrap();
        assert_eq!(lower_suffix.as_str(), "001D000000IqhSLIAZ");
    }

    #[test]
    fn malformed_ids_are_rejected() {
        assert_eq!(Id::parse("xyz"), Err(IdError::Length(3)));
        assert_eq!(Id::parse("001D000000IqhS-"), Err(IdError::Character));
        assert_eq!(Id::parse("001D000000IqhSL9AZ"), Err(IdError::Suffix));
        assert!(Id::parse("").is_err());
        assert!(Id::parse("001D000000IqhSLÄ").is_err());
    }

    #[test]
    fn generated_ids_sort_in_creation_order_and_round_trip() {
        let gen = IdGenerator::new(60);
        let a = gen.next(prefix::ACCOUNT);
        let b = gen.next(prefix::ACCOUNT);
        assert!(a < b);
        assert_eq!(a.as_str().len(), 18);
        assert_eq!(Id::parse(a.as_str()).unwrap(), a);
        assert_eq!(Id::parse(a.as_15()).unwrap(), a);
        assert_eq!(counter_of(&b), Some(61));
        assert_eq!(gen.next(prefix::CAMPAIGN_MEMBER).key_prefix(), "00v");
    }
}
