//! Typed column values parsed from Postgres' text output form (pgoutput 't' columns and
//! COPY text), plus the type OIDs pgforce knows.
//!
//! [`parse_text`] turns `(type_oid, text)` into a [`Value`] for the built-in types below;
//! any other OID becomes [`Value::Other`] with its text untouched. Enums and domains need
//! to know the database's own OIDs: use [`super::types::TypeRegistry::parse_text`] for
//! those. A text that does not parse as its type is a [`ValueError`], never a panic and
//! never a silent fallback.
//!
//! Expected server settings (the output functions run with the session's settings):
//! `DateStyle = ISO`, `IntervalStyle = postgres`, `bytea_output = hex` (escape is read
//! too). Decisions:
//! - `numeric` keeps its exact canonical text (`-12.3400`, `NaN`, `Infinity`); never f64.
//! - BC dates and timestamps are parsed into chrono's proleptic-Gregorian negative years
//!   (`0044-03-15 BC` → year -43); years outside chrono's range (±262,142) are an error.
//! - `time` `24:00:00` (valid in Postgres, not representable by chrono) becomes
//!   [`Value::Other`] with its text.
//! - `interval` `infinity` / `-infinity` (PG17+) use Postgres' own sentinel encoding: all
//!   three fields at their max (resp. min).
//! - Arrays keep dimension lengths; non-default lower bounds (`[0:1]={..}`) are validated
//!   and then dropped, since [`Array`] holds lengths only.

mod array;
mod datetime;

pub use crate::change::value::{Array, Interval, PgDate, PgTimestamp, Value};

/// A value's text form could not be parsed as its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse {text:?} as type oid {type_oid}: {reason}")]
pub struct ValueError {
    pub type_oid: u32,
    /// The offending text (cut to its first 200 characters).
    pub text: String,
    pub reason: String,
}

impl ValueError {
    pub(crate) fn new(type_oid: u32, text: &str, reason: impl Into<String>) -> Self {
        const MAX: usize = 200;
        let text = match text.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_string(),
        };
        ValueError {
            type_oid,
            text,
            reason: reason.into(),
        }
    }
}

/// Built-in type OIDs (from `pg_type.dat`; stable across Postgres versions).
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;

    pub const JSON_ARRAY: u32 = 199;
    pub const BOOL_ARRAY: u32 = 1000;
    pub const BYTEA_ARRAY: u32 = 1001;
    pub const NAME_ARRAY: u32 = 1003;
    pub const INT2_ARRAY: u32 = 1005;
    pub const INT4_ARRAY: u32 = 1007;
    pub const TEXT_ARRAY: u32 = 1009;
    pub const BPCHAR_ARRAY: u32 = 1014;
    pub const VARCHAR_ARRAY: u32 = 1015;
    pub const INT8_ARRAY: u32 = 1016;
    pub const FLOAT4_ARRAY: u32 = 1021;
    pub const FLOAT8_ARRAY: u32 = 1022;
    pub const TIMESTAMP_ARRAY: u32 = 1115;
    pub const DATE_ARRAY: u32 = 1182;
    pub const TIME_ARRAY: u32 = 1183;
    pub const TIMESTAMPTZ_ARRAY: u32 = 1185;
    pub const INTERVAL_ARRAY: u32 = 1187;
    pub const NUMERIC_ARRAY: u32 = 1231;
    pub const TIMETZ_ARRAY: u32 = 1270;
    pub const UUID_ARRAY: u32 = 2951;
    pub const JSONB_ARRAY: u32 = 3807;
}

/// The element type of a built-in array type this module parses, if `type_oid` is one.
pub fn array_element_oid(type_oid: u32) -> Option<u32> {
    use oid::*;
    Some(match type_oid {
        BOOL_ARRAY => BOOL,
        BYTEA_ARRAY => BYTEA,
        NAME_ARRAY => NAME,
        INT2_ARRAY => INT2,
        INT4_ARRAY => INT4,
        INT8_ARRAY => INT8,
        TEXT_ARRAY => TEXT,
        BPCHAR_ARRAY => BPCHAR,
        VARCHAR_ARRAY => VARCHAR,
        FLOAT4_ARRAY => FLOAT4,
        FLOAT8_ARRAY => FLOAT8,
        NUMERIC_ARRAY => NUMERIC,
        UUID_ARRAY => UUID,
        DATE_ARRAY => DATE,
        TIME_ARRAY => TIME,
        TIMETZ_ARRAY => TIMETZ,
        TIMESTAMP_ARRAY => TIMESTAMP,
        TIMESTAMPTZ_ARRAY => TIMESTAMPTZ,
        INTERVAL_ARRAY => INTERVAL,
        JSON_ARRAY => JSON,
        JSONB_ARRAY => JSONB,
        _ => return None,
    })
}

/// The OID of a built-in scalar type by its `pg_catalog` name (used to see through
/// domains, whose Type message names their base type).
pub fn builtin_oid_by_name(name: &str) -> Option<u32> {
    use oid::*;
    Some(match name {
        "bool" => BOOL,
        "bytea" => BYTEA,
        "name" => NAME,
        "int2" => INT2,
        "int4" => INT4,
        "int8" => INT8,
        "text" => TEXT,
        "bpchar" => BPCHAR,
        "varchar" => VARCHAR,
        "float4" => FLOAT4,
        "float8" => FLOAT8,
        "numeric" => NUMERIC,
        "uuid" => UUID,
        "date" => DATE,
        "time" => TIME,
        "timetz" => TIMETZ,
        "timestamp" => TIMESTAMP,
        "timestamptz" => TIMESTAMPTZ,
        "interval" => INTERVAL,
        "json" => JSON,
        "jsonb" => JSONB,
        _ => return None,
    })
}

/// Parse a value from Postgres' text output form, given its type OID.
///
/// Built-in types listed in [`oid`] are parsed (arrays of them too); every other OID
/// gives [`Value::Other`]. For enums and domains use
/// [`TypeRegistry::parse_text`](super::types::TypeRegistry::parse_text).
pub fn parse_text(type_oid: u32, text: &str) -> Result<Value, ValueError> {
    parse_with(type_oid, text, &|oid, t| parse_text(oid, t))
}

/// Parse `text` as `type_oid`, using `element` for array elements (so a registry can
/// hook enum and domain elements in).
pub(crate) fn parse_with(
    type_oid: u32,
    text: &str,
    element: &dyn Fn(u32, &str) -> Result<Value, ValueError>,
) -> Result<Value, ValueError> {
    match array_element_oid(type_oid) {
        Some(elem) => parse_array(type_oid, elem, text, element),
        None => parse_scalar(type_oid, text),
    }
}

/// Parse an array's text whose elements have type `element_oid`.
pub(crate) fn parse_array(
    array_oid: u32,
    element_oid: u32,
    text: &str,
    element: &dyn Fn(u32, &str) -> Result<Value, ValueError>,
) -> Result<Value, ValueError> {
    let parsed = array::parse(text).map_err(|reason| ValueError::new(array_oid, text, reason))?;
    let mut elements = Vec::with_capacity(parsed.elements.len());
    for (i, e) in parsed.elements.into_iter().enumerate() {
        elements.push(match e {
            None => Value::Null,
            Some(s) => element(element_oid, &s).map_err(|err| {
                ValueError::new(array_oid, text, format!("element {i}: {}", err.reason))
            })?,
        });
    }
    Ok(Value::Array(Array {
        element_oid,
        dims: parsed.dims,
        elements,
    }))
}

fn parse_scalar(type_oid: u32, text: &str) -> Result<Value, ValueError> {
    use oid::*;
    let err = |reason: &str| ValueError::new(type_oid, text, reason);
    let v = match type_oid {
        BOOL => Value::Bool(parse_bool(text).ok_or_else(|| err("expected t or f"))?),
        INT2 => Value::Int2(text.parse().map_err(|_| err("not a 16-bit integer"))?),
        INT4 => Value::Int4(text.parse().map_err(|_| err("not a 32-bit integer"))?),
        INT8 => Value::Int8(text.parse().map_err(|_| err("not a 64-bit integer"))?),
        FLOAT4 => Value::Float4(text.parse().map_err(|_| err("not a float4"))?),
        FLOAT8 => Value::Float8(text.parse().map_err(|_| err("not a float8"))?),
        NUMERIC => Value::Numeric(parse_numeric(text).ok_or_else(|| err("not a numeric"))?),
        TEXT | VARCHAR | BPCHAR | NAME => Value::Text(text.to_string()),
        UUID => Value::Uuid(uuid::Uuid::parse_str(text).map_err(|e| err(&e.to_string()))?),
        JSON | JSONB => Value::Json(serde_json::from_str(text).map_err(|e| err(&e.to_string()))?),
        BYTEA => Value::Bytea(parse_bytea(text).map_err(err)?),
        DATE => Value::Date(datetime::parse_date(text).map_err(err)?),
        TIME => match datetime::parse_time(text).map_err(err)? {
            Some(t) => Value::Time(t),
            None => Value::Other {
                type_oid,
                text: text.to_string(),
            },
        },
        TIMETZ => match datetime::parse_timetz(text).map_err(err)? {
            (Some(t), offset) => Value::TimeTz(t, offset),
            (None, _) => Value::Other {
                type_oid,
                text: text.to_string(),
            },
        },
        TIMESTAMP => Value::Timestamp(datetime::parse_timestamp(text).map_err(err)?),
        TIMESTAMPTZ => Value::TimestampTz(datetime::parse_timestamptz(text).map_err(err)?),
        INTERVAL => Value::Interval(datetime::parse_interval(text).map_err(err)?),
        _ => Value::Other {
            type_oid,
            text: text.to_string(),
        },
    };
    Ok(v)
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "t" | "true" | "TRUE" | "on" | "yes" | "1" => Some(true),
        "f" | "false" | "FALSE" | "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Validate Postgres' numeric output (`-?digits[.digits]`, `NaN`, `±Infinity`) and keep
/// the text exactly.
fn parse_numeric(text: &str) -> Option<String> {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return Some(text.to_string());
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (all_digits(int) && frac.is_none_or(all_digits)).then(|| text.to_string())
}

/// `\x0a1b…` (hex output) or the escape format (`abc\\\001`).
fn parse_bytea(text: &str) -> Result<Vec<u8>, &'static str> {
    if let Some(hex) = text.strip_prefix("\\x") {
        return decode_hex(hex).ok_or("invalid hex in bytea");
    }
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = b.get(i + 1..i + 4).ok_or("truncated bytea escape")?;
            if !oct.iter().all(|c| (b'0'..=b'7').contains(c)) || oct[0] > b'3' {
                return Err("invalid bytea escape");
            }
            out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
            i += 4;
        }
    }
    Ok(out)
}

/// Decode an even-length hex string (either case).
pub(crate) fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = hex.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_keeps_exact_text() {
        assert_eq!(
            parse_text(oid::NUMERIC, "-12.3400").unwrap(),
            Value::Numeric("-12.3400".into())
        );
        assert_eq!(
            parse_text(
                oid::NUMERIC,
                "123456789012345678901234567890.000000000000000001"
            )
            .unwrap(),
            Value::Numeric("123456789012345678901234567890.000000000000000001".into())
        );
        for ok in ["NaN", "Infinity", "-Infinity", "0"] {
            assert!(parse_text(oid::NUMERIC, ok).is_ok(), "{ok}");
        }
        for bad in ["", "-", "1.", ".5", "1e5", "abc", "1.2.3", "+1"] {
            assert!(parse_text(oid::NUMERIC, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bytea_hex_and_escape() {
        assert_eq!(
            parse_text(oid::BYTEA, "\\xdeadBEEF").unwrap(),
            Value::Bytea(vec![0xde, 0xad, 0xbe, 0xef])
        );
        assert_eq!(
            parse_text(oid::BYTEA, "a\\\\b\\001").unwrap(),
            Value::Bytea(vec![b'a', b'\\', b'b', 1])
        );
        assert!(parse_text(oid::BYTEA, "\\xabc").is_err());
        assert!(parse_text(oid::BYTEA, "\\9").is_err());
    }

    #[test]
    fn error_text_is_cut() {
        let long = "x".repeat(1000);
        let e = parse_text(oid::INT4, &long).unwrap_err();
        assert!(e.text.chars().count() <= 201);
    }
}
