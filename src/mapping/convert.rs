//! Postgres value → [`FieldValue`]: the default conversion per type, and the transforms.
//!
//! Nothing is lost silently: a value without a faithful Salesforce form is an
//! [`ErrorKind`]. NULL stays NULL through every transform; unchanged TOAST values never
//! reach this module (the caller keeps them as [`FieldValue::Unchanged`]).

use base64::Engine;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

use super::decimal::{Decimal, DecimalError};
use super::error::ErrorKind;
use super::record::FieldValue;
use crate::config::{Transform, Zone};
use crate::pgoutput::value::{Array, Interval, PgDate, PgTimestamp, Value};

/// Default conversion for a value when no transform is configured. `zone` is the offset
/// for `timestamp without time zone`.
pub(crate) fn default(v: &Value, zone: Zone) -> Result<FieldValue, ErrorKind> {
    Ok(match v {
        Value::Null => FieldValue::Null,
        Value::Unchanged => FieldValue::Unchanged,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Int2(i) => FieldValue::Int((*i).into()),
        Value::Int4(i) => FieldValue::Int((*i).into()),
        Value::Int8(i) => FieldValue::Int(*i),
        Value::Float4(f) => float(f64::from(*f), f.to_string())?,
        Value::Float8(f) => float(*f, f.to_string())?,
        Value::Numeric(s) => FieldValue::Number(decimal(s)?.to_string()),
        Value::Text(s) | Value::Other { text: s, .. } => text(s)?,
        Value::Enum { label, .. } => text(label)?,
        Value::Uuid(u) => FieldValue::Text(u.hyphenated().to_string()),
        Value::Date(d) => FieldValue::Date(date(d)?),
        Value::Time(t) => FieldValue::Time(*t),
        Value::TimeTz(t, offset) => FieldValue::Time(time_to_utc(*t, *offset)),
        Value::Timestamp(ts) => FieldValue::DateTime(timestamp(ts, zone)?),
        Value::TimestampTz(ts) => FieldValue::DateTime(timestamptz(ts)?),
        Value::Interval(_) => {
            return Err(ErrorKind::Unsupported(
                ": use transform = \"string\" to send an ISO 8601 duration",
            ))
        }
        Value::Json(j) => FieldValue::Text(compact_json(j)),
        Value::Bytea(b) => FieldValue::Text(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Array(a) => multipicklist(a)?,
        Value::Binary { .. } => return Err(ErrorKind::Unsupported(" (binary format)")),
    })
}

/// Apply a configured transform.
pub(crate) fn apply(t: &Transform, v: &Value, zone: Zone) -> Result<FieldValue, ErrorKind> {
    match v {
        Value::Null => return Ok(FieldValue::Null),
        Value::Unchanged => return Ok(FieldValue::Unchanged),
        _ => {}
    }
    match t {
        Transform::ValueMap { values, default } => {
            let key = scalar_text(v).ok_or(ErrorKind::TransformType("value_map"))?;
            match values.get(&key).or(default.as_ref()) {
                Some(mapped) => text(mapped),
                None => Err(ErrorKind::Unmapped),
            }
        }
        Transform::Json => json(v),
        Transform::Multipicklist { split } => match (v, split) {
            (Value::Array(a), _) => multipicklist(a),
            (Value::Text(s) | Value::Other { text: s, .. }, Some(sep)) => split_list(s, sep),
            (Value::Text(s) | Value::Other { text: s, .. }, None) => text(s),
            _ => Err(ErrorKind::TransformType("multipicklist")),
        },
        Transform::Numeric { precision, scale } => numeric(v, *precision, *scale),
        Transform::Datetime { timezone } => datetime(v, timezone.unwrap_or(zone)),
        Transform::Date { timezone } => date_of(v, timezone.unwrap_or(Zone::utc())),
        Transform::Bool {
            true_values,
            false_values,
        } => boolean(v, true_values.as_deref(), false_values.as_deref()),
        Transform::String {
            max_length,
            truncate,
        } => string(v, zone, *max_length, *truncate),
    }
}

/// Text field value. The literal `#N/A` is valid data; Bulk CSV would read it as NULL, so
/// the batcher routes such a change through sObject Collections (JSON) instead.
fn text(s: &str) -> Result<FieldValue, ErrorKind> {
    Ok(FieldValue::Text(s.to_string()))
}

/// A finite float as its shortest exact decimal text.
fn float(f: f64, shortest: String) -> Result<FieldValue, ErrorKind> {
    if f.is_nan() {
        Err(ErrorKind::NotANumber)
    } else if f.is_infinite() {
        Err(ErrorKind::InfiniteNumber)
    } else {
        Ok(FieldValue::Number(shortest))
    }
}

/// Parse a decimal, mapping NaN/Infinity to their errors.
fn decimal(s: &str) -> Result<Decimal, ErrorKind> {
    Decimal::parse(s).map_err(|e| match e {
        DecimalError::NotANumber => ErrorKind::NotANumber,
        DecimalError::Infinite => ErrorKind::InfiniteNumber,
        DecimalError::Invalid => ErrorKind::InvalidNumber,
    })
}

/// `numeric { precision, scale }`: exact, half away from zero; too many integer digits is
/// an error.
fn numeric(v: &Value, precision: u32, scale: u32) -> Result<FieldValue, ErrorKind> {
    let d = match v {
        Value::Int2(i) => decimal(&i.to_string())?,
        Value::Int4(i) => decimal(&i.to_string())?,
        Value::Int8(i) => decimal(&i.to_string())?,
        Value::Float4(f) => decimal(&f.to_string())?,
        Value::Float8(f) => decimal(&f.to_string())?,
        Value::Numeric(s) | Value::Text(s) | Value::Other { text: s, .. } => decimal(s)?,
        _ => return Err(ErrorKind::TransformType("numeric")),
    };
    let rounded = d.round(scale as usize);
    let allowed = precision.saturating_sub(scale) as usize;
    if rounded.int_digits() > allowed {
        return Err(ErrorKind::TooManyDigits {
            digits: rounded.int_digits(),
            precision,
            scale,
        });
    }
    Ok(FieldValue::Number(rounded.to_fixed(scale as usize)))
}

/// Salesforce's date range.
fn in_range(d: NaiveDate) -> Result<NaiveDate, ErrorKind> {
    if (1700..=4000).contains(&d.year()) {
        Ok(d)
    } else {
        Err(ErrorKind::DateOutOfRange(d.to_string()))
    }
}

fn date(d: &PgDate) -> Result<NaiveDate, ErrorKind> {
    match d {
        PgDate::Value(d) => in_range(*d),
        PgDate::Infinity | PgDate::NegInfinity => Err(ErrorKind::InfiniteDate),
    }
}

fn timestamptz(ts: &PgTimestamp<DateTime<Utc>>) -> Result<DateTime<Utc>, ErrorKind> {
    match ts {
        PgTimestamp::Value(t) => in_range(t.date_naive()).map(|_| *t),
        _ => Err(ErrorKind::InfiniteDate),
    }
}

/// A local timestamp read in `zone`, as UTC.
fn timestamp(ts: &PgTimestamp<NaiveDateTime>, zone: Zone) -> Result<DateTime<Utc>, ErrorKind> {
    match ts {
        PgTimestamp::Value(t) => local_to_utc(*t, zone),
        _ => Err(ErrorKind::InfiniteDate),
    }
}

/// A local time in `zone` as UTC. In a named zone, a local time that occurs twice (the hour
/// repeated when clocks go back) is the later instant, and one that never occurs (the hour
/// skipped when clocks go forward) is read with the offset in force just before the gap, so
/// `02:30` on a spring-forward night in Berlin is `01:30Z` (`03:30` summer time). Both match
/// PostgreSQL's `ts AT TIME ZONE 'Europe/Berlin'`.
fn local_to_utc(t: NaiveDateTime, zone: Zone) -> Result<DateTime<Utc>, ErrorKind> {
    let offset_secs = match zone {
        Zone::Fixed(offset) => offset.local_minus_utc(),
        Zone::Named(tz) => named_offset_secs(tz, t),
    };
    let utc = t - TimeDelta::seconds(offset_secs.into());
    in_range(utc.date())?;
    Ok(utc.and_utc())
}

/// The UTC offset (seconds) of local time `t` in `tz`, resolved as [`local_to_utc`] says.
fn named_offset_secs(tz: chrono_tz::Tz, t: NaiveDateTime) -> i32 {
    use chrono::{LocalResult, Offset, TimeZone};
    let secs = |dt: DateTime<chrono_tz::Tz>| dt.offset().fix().local_minus_utc();
    match tz.from_local_datetime(&t) {
        LocalResult::Single(dt) => secs(dt),
        LocalResult::Ambiguous(_, later) => secs(later),
        LocalResult::None => {
            // In a gap: walk back to the last local time that exists (gaps are at most a
            // day long; a quarter hour is finer than any offset change).
            let mut probe = t;
            for _ in 0..(26 * 4) {
                probe -= TimeDelta::minutes(15);
                if let Some(dt) = tz.from_local_datetime(&probe).latest() {
                    return secs(dt);
                }
            }
            0
        }
    }
}

/// A time with offset as the UTC time of day (wrapping around midnight).
fn time_to_utc(t: NaiveTime, offset_secs: i32) -> NaiveTime {
    t.overflowing_sub_signed(TimeDelta::seconds(offset_secs.into()))
        .0
}

fn datetime(v: &Value, zone: Zone) -> Result<FieldValue, ErrorKind> {
    Ok(FieldValue::DateTime(match v {
        Value::TimestampTz(ts) => timestamptz(ts)?,
        Value::Timestamp(ts) => timestamp(ts, zone)?,
        Value::Date(d) => local_to_utc(date(d)?.and_time(NaiveTime::MIN), zone)?,
        _ => return Err(ErrorKind::TransformType("datetime")),
    }))
}

fn date_of(v: &Value, zone: Zone) -> Result<FieldValue, ErrorKind> {
    Ok(FieldValue::Date(match v {
        Value::Date(d) => date(d)?,
        Value::Timestamp(PgTimestamp::Value(t)) => in_range(t.date())?,
        Value::TimestampTz(PgTimestamp::Value(t)) => in_range(match zone {
            Zone::Fixed(offset) => t.with_timezone(&offset).date_naive(),
            Zone::Named(tz) => t.with_timezone(&tz).date_naive(),
        })?,
        Value::Timestamp(_) | Value::TimestampTz(_) => return Err(ErrorKind::InfiniteDate),
        _ => return Err(ErrorKind::TransformType("date")),
    }))
}

const TRUE_WORDS: [&str; 6] = ["true", "t", "yes", "y", "1", "on"];
const FALSE_WORDS: [&str; 6] = ["false", "f", "no", "n", "0", "off"];

fn boolean(
    v: &Value,
    true_values: Option<&[String]>,
    false_values: Option<&[String]>,
) -> Result<FieldValue, ErrorKind> {
    let int = |i: i64| match i {
        0 => Ok(FieldValue::Bool(false)),
        1 => Ok(FieldValue::Bool(true)),
        _ => Err(ErrorKind::NotBoolInteger),
    };
    match v {
        Value::Bool(b) => Ok(FieldValue::Bool(*b)),
        Value::Int2(i) => int((*i).into()),
        Value::Int4(i) => int((*i).into()),
        Value::Int8(i) => int(*i),
        Value::Text(s) | Value::Other { text: s, .. } | Value::Enum { label: s, .. } => {
            let is = |list: Option<&[String]>, default: &[&str]| match list {
                Some(l) => l.iter().any(|w| w.eq_ignore_ascii_case(s.trim())),
                None => default.iter().any(|w| w.eq_ignore_ascii_case(s.trim())),
            };
            if is(true_values, &TRUE_WORDS) {
                Ok(FieldValue::Bool(true))
            } else if is(false_values, &FALSE_WORDS) {
                Ok(FieldValue::Bool(false))
            } else {
                Err(ErrorKind::NotBool)
            }
        }
        _ => Err(ErrorKind::TransformType("bool")),
    }
}

/// `string { max_length, truncate }`: the value's text, length-checked in characters.
fn string(
    v: &Value,
    zone: Zone,
    max_length: Option<usize>,
    truncate: bool,
) -> Result<FieldValue, ErrorKind> {
    let s = match v {
        Value::Interval(i) => iso8601_duration(i),
        other => match default(other, zone)? {
            FieldValue::Null => return Ok(FieldValue::Null),
            fv => fv.plain_text(),
        },
    };
    let length = s.chars().count();
    match max_length {
        Some(max) if length > max && truncate => text(&s.chars().take(max).collect::<String>()),
        Some(max) if length > max => Err(ErrorKind::TooLong { length, max }),
        _ => text(&s),
    }
}

/// `json`: json/jsonb, JSON text, or an array → compact JSON text.
fn json(v: &Value) -> Result<FieldValue, ErrorKind> {
    let j = match v {
        Value::Json(j) => j.clone(),
        Value::Text(s) | Value::Other { text: s, .. } => {
            serde_json::from_str(s).map_err(|_| ErrorKind::InvalidJson)?
        }
        Value::Array(a) => array_json(a)?,
        _ => return Err(ErrorKind::TransformType("json")),
    };
    Ok(FieldValue::Text(compact_json(&j)))
}

fn compact_json(j: &serde_json::Value) -> String {
    serde_json::to_string(j).expect("serialising a JSON value cannot fail")
}

/// An array (any dimension) as nested JSON arrays.
fn array_json(a: &Array) -> Result<serde_json::Value, ErrorKind> {
    let items: Vec<serde_json::Value> = a
        .elements
        .iter()
        .map(element_json)
        .collect::<Result<_, _>>()?;
    Ok(nest(&a.dims, &items))
}

/// Split row-major `items` into nested arrays of shape `dims`.
fn nest(dims: &[usize], items: &[serde_json::Value]) -> serde_json::Value {
    match dims {
        [] | [_] => serde_json::Value::Array(items.to_vec()),
        [_, rest @ ..] => {
            let chunk = rest.iter().product::<usize>().max(1);
            serde_json::Value::Array(items.chunks(chunk).map(|c| nest(rest, c)).collect())
        }
    }
}

fn element_json(v: &Value) -> Result<serde_json::Value, ErrorKind> {
    Ok(match default(v, Zone::utc())? {
        FieldValue::Null | FieldValue::Unchanged => serde_json::Value::Null,
        FieldValue::Text(s) => serde_json::Value::String(s),
        fv => fv.json().unwrap_or(serde_json::Value::Null),
    })
}

/// A one-dimensional array → `a;b;c`; empty → NULL.
fn multipicklist(a: &Array) -> Result<FieldValue, ErrorKind> {
    if a.dims.len() > 1 {
        return Err(ErrorKind::MultiDimensional);
    }
    if a.elements.is_empty() {
        return Ok(FieldValue::Null);
    }
    let parts = a
        .elements
        .iter()
        .map(|e| match e {
            Value::Null => Err(ErrorKind::NullElement),
            e => scalar_text(e).ok_or(ErrorKind::TransformType("multipicklist")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    join_values(parts)
}

/// Text split on `sep`, trimmed, empties dropped → `a;b;c`.
fn split_list(s: &str, sep: &str) -> Result<FieldValue, ErrorKind> {
    let parts: Vec<String> = s
        .split(sep)
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if parts.is_empty() {
        return Ok(FieldValue::Null);
    }
    join_values(parts)
}

fn join_values(parts: Vec<String>) -> Result<FieldValue, ErrorKind> {
    if parts.iter().any(|p| p.contains(';')) {
        return Err(ErrorKind::SeparatorInElement);
    }
    text(&parts.join(";"))
}

/// The text of a scalar value (for value maps, multipicklists, filters and keys).
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Bool(b) => b.to_string(),
        Value::Int2(i) => i.to_string(),
        Value::Int4(i) => i.to_string(),
        Value::Int8(i) => i.to_string(),
        Value::Numeric(s) => Decimal::parse(s).ok()?.to_string(),
        Value::Text(s) | Value::Other { text: s, .. } => s.clone(),
        Value::Enum { label, .. } => label.clone(),
        Value::Uuid(u) => u.hyphenated().to_string(),
        Value::Date(PgDate::Value(d)) => d.format("%Y-%m-%d").to_string(),
        _ => return None,
    })
}

/// ISO 8601 duration with per-component signs, as Postgres' `iso_8601` style prints.
fn iso8601_duration(i: &Interval) -> String {
    let (years, months) = (i.months / 12, i.months % 12);
    let mut out = String::from("P");
    for (n, unit) in [
        (years as i64, 'Y'),
        (months as i64, 'M'),
        (i.days as i64, 'D'),
    ] {
        if n != 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if i.micros != 0 {
        out.push('T');
        let sign = if i.micros < 0 { "-" } else { "" };
        let m = i.micros.unsigned_abs();
        let (h, min, s, us) = (
            m / 3_600_000_000,
            m / 60_000_000 % 60,
            m / 1_000_000 % 60,
            m % 1_000_000,
        );
        if h != 0 {
            out.push_str(&format!("{sign}{h}H"));
        }
        if min != 0 {
            out.push_str(&format!("{sign}{min}M"));
        }
        if s != 0 || us != 0 {
            let frac = if us == 0 {
                String::new()
            } else {
                format!(".{us:06}").trim_end_matches('0').to_string()
            };
            out.push_str(&format!("{sign}{s}{frac}S"));
        }
    }
    if out == "P" {
        out.push_str("T0S");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations() {
        let d = |months, days, micros| {
            iso8601_duration(&Interval {
                months,
                days,
                micros,
            })
        };
        assert_eq!(d(14, 3, 3_723_500_000), "P1Y2M3DT1H2M3.5S");
        assert_eq!(d(0, 0, 0), "PT0S");
        assert_eq!(d(0, -1, -60_000_000), "P-1DT-1M");
    }

    fn berlin() -> Zone {
        Zone::try_from("Europe/Berlin".to_string()).unwrap()
    }

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        local(s).and_utc()
    }

    #[test]
    fn named_zone_follows_daylight_saving() {
        assert_eq!(
            local_to_utc(local("2026-07-01 12:00"), berlin()),
            Ok(utc("2026-07-01 10:00"))
        );
        assert_eq!(
            local_to_utc(local("2026-01-15 12:00"), berlin()),
            Ok(utc("2026-01-15 11:00"))
        );
    }

    /// Clocks go back at 03:00 CEST on 2026-10-25: 02:30 happens twice. Like PostgreSQL's
    /// `AT TIME ZONE`, the later one (02:30 CET = 01:30Z) is taken.
    #[test]
    fn ambiguous_local_hour_is_the_later_instant() {
        assert_eq!(
            local_to_utc(local("2026-10-25 02:30"), berlin()),
            Ok(utc("2026-10-25 01:30"))
        );
        assert_eq!(
            local_to_utc(local("2026-10-25 01:59"), berlin()),
            Ok(utc("2026-10-24 23:59"))
        );
        assert_eq!(
            local_to_utc(local("2026-10-25 03:00"), berlin()),
            Ok(utc("2026-10-25 02:00"))
        );
    }

    /// Clocks go forward at 02:00 CET on 2026-03-29: 02:30 never happens. Like PostgreSQL,
    /// it is read with the offset before the gap (+01:00), i.e. as 03:30 CEST.
    #[test]
    fn skipped_local_hour_uses_the_offset_before_the_gap() {
        assert_eq!(
            local_to_utc(local("2026-03-29 02:30"), berlin()),
            Ok(utc("2026-03-29 01:30"))
        );
        assert_eq!(
            local_to_utc(local("2026-03-29 02:00"), berlin()),
            Ok(utc("2026-03-29 01:00"))
        );
        assert_eq!(
            local_to_utc(local("2026-03-29 03:00"), berlin()),
            Ok(utc("2026-03-29 01:00"))
        );
        assert_eq!(
            local_to_utc(local("2026-03-29 01:59"), berlin()),
            Ok(utc("2026-03-29 00:59"))
        );
    }

    #[test]
    fn date_of_a_timestamptz_is_taken_in_the_named_zone() {
        let late = Value::TimestampTz(PgTimestamp::Value(utc("2026-07-01 22:30")));
        assert_eq!(
            date_of(&late, berlin()),
            Ok(FieldValue::Date(
                NaiveDate::from_ymd_opt(2026, 7, 2).unwrap()
            ))
        );
    }

    #[test]
    fn zone_names_and_offsets_parse() {
        assert!(matches!(
            berlin(),
            Zone::Named(chrono_tz::Tz::Europe__Berlin)
        ));
        assert_eq!(Zone::try_from("UTC".to_string()), Ok(Zone::utc()));
        assert!(matches!(
            Zone::try_from("+05:30".to_string()),
            Ok(Zone::Fixed(_))
        ));
        let err = Zone::try_from("Mars/Olympus".to_string()).unwrap_err();
        assert!(
            err.contains("Mars/Olympus") && err.contains("Europe/Berlin"),
            "{err}"
        );
    }

    #[test]
    fn timetz_wraps_to_utc() {
        let t = NaiveTime::from_hms_opt(1, 30, 0).unwrap();
        assert_eq!(
            time_to_utc(t, 2 * 3600),
            NaiveTime::from_hms_opt(23, 30, 0).unwrap()
        );
    }
}
