//! One canonical text per value, so a value read back from Salesforce (REST JSON), a value
//! pgforce sent (the JSON it wrote) and a Postgres column's text compare equal when they
//! mean the same: numbers by value (`42`, `42.0`), an empty string as null (Salesforce
//! stores `""` as null), booleans as `true`/`false`.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The canonical text of a JSON value; `None` for null (and the empty string).
pub fn canonical(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => canonical_text(&n.to_string()),
        Value::String(s) => canonical_text(s),
        other => Some(other.to_string()),
    }
}

/// The canonical form of a value's text (a Postgres column cast to text, or a string).
pub fn canonical_text(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    match s {
        "t" => return Some("true".into()),
        "f" => return Some("false".into()),
        _ => {}
    }
    let looks_numeric = s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.'));
    if looks_numeric {
        if let Ok(d) = s.parse::<rust_decimal::Decimal>() {
            return Some(d.normalize().to_string());
        }
    }
    Some(s.to_string())
}

/// A short hash of a canonical value (stored instead of the value: no row data in the
/// state schema).
pub fn hash(canonical: Option<&str>) -> String {
    let mut h = Sha256::new();
    match canonical {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            h.update(s.as_bytes());
        }
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// [`hash`] of a JSON value.
pub fn hash_json(v: &Value) -> String {
    hash(canonical(v).as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_meanings_hash_equal() {
        assert_eq!(hash_json(&json!(42)), hash_json(&json!(42.0)));
        assert_eq!(
            hash_json(&json!("42.50")),
            hash(canonical_text("42.5").as_deref())
        );
        assert_eq!(hash_json(&json!("")), hash_json(&Value::Null));
        assert_eq!(
            hash_json(&json!(true)),
            hash(canonical_text("t").as_deref())
        );
        assert_ne!(hash_json(&json!("Ann")), hash_json(&json!("ann")));
        assert_ne!(hash_json(&json!("0")), hash_json(&Value::Null));
    }
}
