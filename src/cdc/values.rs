//! Avro field values → the REST JSON formats every inbound source uses
//! (`salesforce-api.md` §9): datetime `"2024-01-01T00:00:00.000+0000"`, date
//! `"YYYY-MM-DD"`, time `"13:15:00.000Z"`, numbers as JSON numbers, checkbox as a boolean,
//! text as a string. Nothing here panics on what the network sent: an impossible value
//! (a date out of range, a NaN) is an error naming the field.

use apache_avro::types::Value;
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::Value as Json;

use super::schema::FieldKind;

/// Epoch values below this (in absolute terms) given for a date are days, above it
/// milliseconds: 10^7 days is year ~29000, 10^7 ms is 3 hours after the epoch.
const DAYS_OR_MILLIS: i64 = 10_000_000;

/// A value that has no REST form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {reason}")]
pub struct ValueError {
    pub field: String,
    pub reason: String,
}

/// Converts `value` of field `field` (of `kind`) to REST JSON.
pub fn to_json(field: &str, kind: FieldKind, value: &Value) -> Result<Json, ValueError> {
    let fail = |reason: String| ValueError {
        field: field.to_string(),
        reason,
    };
    let value = unwrap_union(value);
    match (kind, value) {
        (_, Value::Null) => Ok(Json::Null),
        (FieldKind::DateTime, v) => datetime(millis(v).ok_or_else(|| fail(not_a("datetime", v)))?)
            .ok_or_else(|| fail("datetime out of range".into())),
        (FieldKind::Date, v) => date(v).ok_or_else(|| fail(not_a("date", v))),
        (FieldKind::Time, v) => time(v).ok_or_else(|| fail(not_a("time", v))),
        (_, v) => plain(v).map_err(fail),
    }
}

/// The value inside a union branch.
pub fn unwrap_union(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => unwrap_union(inner),
        v => v,
    }
}

fn not_a(what: &str, v: &Value) -> String {
    format!("{v:?} is not a {what}")
}

/// Epoch milliseconds of a datetime value.
fn millis(v: &Value) -> Option<i64> {
    match v {
        Value::Long(ms) | Value::TimestampMillis(ms) | Value::LocalTimestampMillis(ms) => Some(*ms),
        Value::TimestampMicros(us) | Value::LocalTimestampMicros(us) => Some(us.div_euclid(1000)),
        Value::Int(ms) => Some(i64::from(*ms)),
        _ => None,
    }
}

/// `"2024-01-01T00:00:00.000+0000"`.
pub fn datetime(ms: i64) -> Option<Json> {
    let t: DateTime<Utc> = DateTime::from_timestamp_millis(ms)?;
    Some(Json::String(
        t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
    ))
}

fn date(v: &Value) -> Option<Json> {
    let days = match v {
        Value::Date(d) | Value::Int(d) => i64::from(*d),
        Value::Long(n) if n.unsigned_abs() < DAYS_OR_MILLIS.unsigned_abs() => *n,
        Value::Long(ms) | Value::TimestampMillis(ms) => ms.div_euclid(86_400_000),
        _ => return None,
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let d = epoch.checked_add_signed(chrono::TimeDelta::try_days(days)?)?;
    Some(Json::String(d.format("%Y-%m-%d").to_string()))
}

fn time(v: &Value) -> Option<Json> {
    let ms = match v {
        Value::TimeMillis(ms) | Value::Int(ms) => i64::from(*ms),
        Value::TimeMicros(us) => us.div_euclid(1000),
        Value::Long(ms) => *ms,
        _ => return None,
    };
    let secs = u32::try_from(ms.div_euclid(1000)).ok()?;
    let nanos = u32::try_from(ms.rem_euclid(1000) * 1_000_000).ok()?;
    let t = NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)?;
    Some(Json::String(t.format("%H:%M:%S%.3fZ").to_string()))
}

/// Strings, numbers, booleans, lists as they are.
fn plain(v: &Value) -> Result<Json, String> {
    Ok(match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(n) => Json::from(*n),
        Value::Long(n) => Json::from(*n),
        Value::Float(x) => number(f64::from(*x))?,
        Value::Double(x) => number(*x)?,
        Value::String(s) | Value::Enum(_, s) => Json::String(s.clone()),
        Value::Uuid(u) => Json::String(u.to_string()),
        Value::Bytes(b) | Value::Fixed(_, b) => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Value::Array(items) => Json::Array(
            items
                .iter()
                .map(|i| plain(unwrap_union(i)))
                .collect::<Result<_, _>>()?,
        ),
        Value::Union(_, inner) => plain(inner)?,
        other => return Err(format!("unsupported Avro value {other:?}")),
    })
}

fn number(x: f64) -> Result<Json, String> {
    serde_json::Number::from_f64(x)
        .map(Json::Number)
        .ok_or_else(|| format!("{x} is not a finite number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn datetimes_in_rest_format() {
        let v = Value::Union(1, Box::new(Value::TimestampMillis(1_704_067_200_123)));
        assert_eq!(
            to_json("CreatedDate", FieldKind::DateTime, &v).unwrap(),
            json!("2024-01-01T00:00:00.123+0000")
        );
        let v = Value::Long(1_696_444_513_000);
        assert_eq!(
            to_json("LastModifiedDate", FieldKind::DateTime, &v).unwrap(),
            json!("2023-10-04T18:35:13.000+0000")
        );
        let err = to_json("D", FieldKind::DateTime, &Value::Long(i64::MAX)).unwrap_err();
        assert!(err.to_string().contains("field D"), "{err}");
        assert!(to_json("D", FieldKind::DateTime, &Value::String("x".into())).is_err());
    }

    #[test]
    fn dates_from_days_or_millis() {
        let want = json!("2024-03-05");
        for v in [
            Value::Date(19_787),
            Value::Int(19_787),
            Value::Long(19_787),
            Value::Long(1_709_596_800_000),
        ] {
            assert_eq!(
                to_json("CloseDate", FieldKind::Date, &v).unwrap(),
                want,
                "{v:?}"
            );
        }
        assert_eq!(
            to_json("Old", FieldKind::Date, &Value::Date(-1)).unwrap(),
            json!("1969-12-31")
        );
        assert!(to_json("D", FieldKind::Date, &Value::Long(i64::MIN)).is_err());
    }

    #[test]
    fn times() {
        let v = Value::TimeMillis(13 * 3_600_000 + 15 * 60_000);
        assert_eq!(
            to_json("T", FieldKind::Time, &v).unwrap(),
            json!("13:15:00.000Z")
        );
        assert!(to_json("T", FieldKind::Time, &Value::Int(-5)).is_err());
        assert!(to_json("T", FieldKind::Time, &Value::Long(86_400_000 * 2)).is_err());
    }

    #[test]
    fn plain_values() {
        let k = FieldKind::Plain;
        assert_eq!(to_json("a", k, &Value::Null).unwrap(), Json::Null);
        assert_eq!(to_json("a", k, &Value::Boolean(true)).unwrap(), json!(true));
        assert_eq!(to_json("a", k, &Value::Int(7)).unwrap(), json!(7));
        assert_eq!(to_json("a", k, &Value::Double(12.5)).unwrap(), json!(12.5));
        assert_eq!(
            to_json("a", k, &Value::String("A;B".into())).unwrap(),
            json!("A;B")
        );
        assert_eq!(
            to_json("a", k, &Value::Bytes(vec![1, 2])).unwrap(),
            json!("AQI=")
        );
        assert!(to_json("a", k, &Value::Double(f64::NAN)).is_err());
        assert!(to_json("a", k, &Value::Record(vec![])).is_err());
    }
}
