//! Salesforce values (REST JSON, §9 of `salesforce-api.md`; Bulk CSV text) → the text a
//! Postgres column of the target type accepts as input, cast there with
//! `CAST($n::text AS <type>)`.
//!
//! The conversion follows the column's type unless the field names an explicit transform:
//! datetimes become RFC 3339 UTC (`+0000` and epoch milliseconds accepted), multi-select
//! picklists (`A;B`) become array literals, compound values (address, location) JSON, and
//! booleans and numbers their text. Nothing here panics on a value from the network: a
//! value that does not fit is a [`ConvertError`] naming the field and the column.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::config::inbound::InboundTransform;

/// What kind of column a value goes into (from `pg_type.typcategory` and the type name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    /// `format_type(atttypid, atttypmod)`, e.g. `numeric(18,2)`, `text[]`, `stage_enum`.
    pub sql: String,
    pub kind: ColumnKind,
}

/// The conversions pgforce tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Array,
    Bool,
    Number,
    TimestampTz,
    Timestamp,
    Date,
    Json,
    /// Anything else (enums, time, uuid…): the value's text, cast by Postgres.
    Other,
}

impl ColumnType {
    /// From `format_type` text and `pg_type.typcategory`.
    pub fn new(sql: &str, category: &str) -> ColumnType {
        let kind = match (category, sql) {
            ("A", _) => ColumnKind::Array,
            ("B", _) => ColumnKind::Bool,
            ("N", _) => ColumnKind::Number,
            (_, "timestamp with time zone") => ColumnKind::TimestampTz,
            (_, "timestamp without time zone") => ColumnKind::Timestamp,
            (_, "date") => ColumnKind::Date,
            (_, "json" | "jsonb") => ColumnKind::Json,
            ("S", _) => ColumnKind::Text,
            _ => ColumnKind::Other,
        };
        ColumnType {
            sql: sql.to_string(),
            kind,
        }
    }
}

/// A value that does not fit its column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field} → column {column} ({sql}): {reason}")]
pub struct ConvertError {
    pub field: String,
    pub column: String,
    pub sql: String,
    pub reason: String,
}

/// The input text for `column` of type `ty`, or `None` for SQL NULL.
pub fn to_column_text(
    value: &Value,
    ty: &ColumnType,
    transform: Option<&InboundTransform>,
) -> Result<Option<String>, String> {
    if value.is_null() {
        return Ok(None);
    }
    match transform {
        Some(InboundTransform::ValueMap { values, default }) => {
            let raw = scalar_text(value);
            let mapped = values
                .get(&raw)
                .cloned()
                .or_else(|| default.clone())
                .unwrap_or(raw);
            return by_kind(&Value::String(mapped), ty);
        }
        Some(InboundTransform::Multipicklist) => return Ok(Some(array_literal(value))),
        Some(InboundTransform::Text) => return Ok(Some(scalar_text(value))),
        Some(InboundTransform::Json) => return Ok(Some(value.to_string())),
        None => {}
    }
    by_kind(value, ty)
}

fn by_kind(value: &Value, ty: &ColumnType) -> Result<Option<String>, String> {
    Ok(Some(match ty.kind {
        ColumnKind::Text | ColumnKind::Other => scalar_text(value),
        ColumnKind::Array => array_literal(value),
        ColumnKind::Json => value.to_string(),
        ColumnKind::Bool => match value {
            Value::Bool(b) => b.to_string(),
            Value::String(s) if s.eq_ignore_ascii_case("true") => "true".into(),
            Value::String(s) if s.eq_ignore_ascii_case("false") => "false".into(),
            other => return Err(format!("{other} is not a boolean")),
        },
        ColumnKind::Number => match value {
            Value::Number(n) => n.to_string(),
            Value::String(s) if s.trim().is_empty() => return Ok(None),
            Value::String(s) => s.trim().to_string(),
            Value::Bool(b) => u8::from(*b).to_string(),
            other => return Err(format!("{other} is not a number")),
        },
        ColumnKind::TimestampTz => datetime(value)?.to_rfc3339_opts(SecondsFormat::Millis, true),
        ColumnKind::Timestamp => datetime(value)?
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S%.3f")
            .to_string(),
        ColumnKind::Date => match value {
            Value::String(s) if s.trim().is_empty() => return Ok(None),
            Value::String(s) => {
                let day = s.get(..10).unwrap_or(s);
                NaiveDate::parse_from_str(day, "%Y-%m-%d")
                    .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))?;
                day.to_string()
            }
            Value::Number(n) => {
                // CDC sends dates as days since the epoch.
                let days = n
                    .as_i64()
                    .ok_or_else(|| format!("{n} is not a day number"))?;
                let d = NaiveDate::from_ymd_opt(1970, 1, 1)
                    .and_then(|e| e.checked_add_signed(chrono::Duration::days(days)))
                    .ok_or_else(|| format!("{n} days is out of range"))?;
                d.format("%Y-%m-%d").to_string()
            }
            other => return Err(format!("{other} is not a date")),
        },
    }))
}

/// A Salesforce datetime: `2024-01-01T00:00:00.000+0000`, RFC 3339 (`Z`, `+00:00`),
/// Bulk's `2024-01-02T17:38:59.000Z`, or CDC epoch milliseconds.
pub fn datetime(value: &Value) -> Result<DateTime<Utc>, String> {
    match value {
        Value::String(s) => parse_datetime(s).ok_or_else(|| format!("{s:?} is not a datetime")),
        Value::Number(n) => n
            .as_i64()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(|| format!("{n} is not epoch milliseconds")),
        other => Err(format!("{other} is not a datetime")),
    }
}

/// Parses the datetime forms Salesforce sends.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// Salesforce's own datetime form (`2024-01-01T00:00:00.000+0000`).
pub fn format_sf_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// A scalar's text; compound values as compact JSON.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `A;B` (or a JSON array) → the array literal `{"A","B"}`.
fn array_literal(value: &Value) -> String {
    let items: Vec<String> = match value {
        Value::Array(a) => a.iter().map(scalar_text).collect(),
        Value::String(s) if s.is_empty() => Vec::new(),
        other => scalar_text(other).split(';').map(str::to_string).collect(),
    };
    let quoted: Vec<String> = items
        .iter()
        .map(|i| format!("\"{}\"", i.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ty(sql: &str, cat: &str) -> ColumnType {
        ColumnType::new(sql, cat)
    }

    #[test]
    fn values_follow_the_column_type() {
        let c = |v: Value, t: &ColumnType| to_column_text(&v, t, None).unwrap();
        let tz = ty("timestamp with time zone", "D");
        assert_eq!(
            c(json!("2024-01-01T10:00:00.000+0000"), &tz).as_deref(),
            Some("2024-01-01T10:00:00.000Z")
        );
        assert_eq!(
            c(json!(1704103200000i64), &tz).as_deref(),
            Some("2024-01-01T10:00:00.000Z")
        );
        assert_eq!(
            c(json!("A;B\"x"), &ty("text[]", "A")).as_deref(),
            Some("{\"A\",\"B\\\"x\"}")
        );
        assert_eq!(c(json!(12.5), &ty("numeric", "N")).as_deref(), Some("12.5"));
        assert_eq!(c(json!(""), &ty("numeric", "N")), None);
        assert_eq!(c(json!(true), &ty("boolean", "B")).as_deref(), Some("true"));
        assert_eq!(
            c(json!("false"), &ty("boolean", "B")).as_deref(),
            Some("false")
        );
        assert_eq!(
            c(json!("2024-02-03"), &ty("date", "D")).as_deref(),
            Some("2024-02-03")
        );
        assert_eq!(c(json!(1), &ty("date", "D")).as_deref(), Some("1970-01-02"));
        assert_eq!(c(json!(null), &ty("text", "S")), None);
        assert_eq!(
            c(json!({"city": "Paris"}), &ty("jsonb", "U")).as_deref(),
            Some("{\"city\":\"Paris\"}")
        );
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        let e = |v: Value, t: &ColumnType| to_column_text(&v, t, None).unwrap_err();
        assert!(e(json!("soon"), &ty("timestamp with time zone", "D")).contains("datetime"));
        assert!(e(json!("x"), &ty("boolean", "B")).contains("boolean"));
        assert!(e(json!("2024-13-45"), &ty("date", "D")).contains("date"));
        assert!(e(json!([1]), &ty("numeric", "N")).contains("number"));
        assert!(e(json!(u64::MAX), &ty("timestamp with time zone", "D")).contains("epoch"));
    }

    #[test]
    fn value_maps_map_then_convert() {
        let t = InboundTransform::ValueMap {
            values: [("Closed Won".to_string(), "won".to_string())].into(),
            default: Some("open".into()),
        };
        let text = ty("text", "S");
        assert_eq!(
            to_column_text(&json!("Closed Won"), &text, Some(&t))
                .unwrap()
                .as_deref(),
            Some("won")
        );
        assert_eq!(
            to_column_text(&json!("Prospecting"), &text, Some(&t))
                .unwrap()
                .as_deref(),
            Some("open")
        );
    }
}
