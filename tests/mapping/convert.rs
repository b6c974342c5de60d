//! Every default conversion and transform, through a real compiled mapping.

use crate::support::mapping::*;
use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use pgforce::change::ReplicaIdentity;
use pgforce::mapping::{ErrorKind, FieldValue, Mapper, MappingError};
use pgforce::pgoutput::value::{Array, Interval, PgDate, PgTimestamp, Value};
use serde_json::json;

/// Map one value of column `v` (field `F__c`) with the given field spec TOML.
fn map_with(spec: &str, timezone: &str, v: Value) -> Result<FieldValue, MappingError> {
    let p = pipeline(&format!(
        r#"[[pipelines.mappings]]
name = "m"
table = "public.t"
object = "Account"
external_id = {{ column = "id", field = "External_Id__c" }}
{timezone}
fields = {{ v = {spec} }}"#
    ));
    let rel = relation(
        "t",
        ReplicaIdentity::Default,
        &[("id", 23, true), ("v", 25, false)],
    );
    let mut mapper = Mapper::new(&p);
    let mut out = mapper.map(&insert(&rel, vec![Value::Int4(1), v]));
    assert_eq!(out.len(), 1);
    out.remove(0).map(|c| c.fields[0].1.clone())
}

fn conv(v: Value) -> Result<FieldValue, MappingError> {
    map_with("\"F__c\"", "", v)
}

fn csv(v: Value) -> String {
    conv(v).unwrap().csv().into_owned()
}

fn kind(r: Result<FieldValue, MappingError>) -> ErrorKind {
    r.unwrap_err().kind
}

fn ts(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> chrono::NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_micro_opt(h, mi, s, us)
        .unwrap()
}

#[test]
fn scalars_default() {
    assert_eq!(csv(Value::Bool(true)), "true");
    assert_eq!(conv(Value::Bool(false)).unwrap().json(), Some(json!(false)));
    assert_eq!(csv(Value::Int2(-7)), "-7");
    assert_eq!(csv(Value::Int4(42)), "42");
    assert_eq!(csv(Value::Int8(9_007_199_254_740_993)), "9007199254740993");
    assert_eq!(
        conv(Value::Int8(9_007_199_254_740_993))
            .unwrap()
            .json()
            .unwrap()
            .to_string(),
        "9007199254740993"
    );
    assert_eq!(csv(Value::Text("héllo, \"x\"".into())), "héllo, \"x\"");
    assert_eq!(
        csv(Value::Text(String::new())),
        "#N/A",
        "empty text clears, not leaves unchanged"
    );
    assert_eq!(
        csv(Value::Enum {
            type_oid: 99,
            label: "pro".into()
        }),
        "pro"
    );
    assert_eq!(
        csv(Value::Other {
            type_oid: 869,
            text: "10.0.0.1".into()
        }),
        "10.0.0.1"
    );
    let u = uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
    assert_eq!(csv(Value::Uuid(u)), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(csv(Value::Bytea(vec![0, 1, 2, 255])), "AAEC/w==");
    assert_eq!(
        csv(Value::Json(json!({"b": 1, "a": [true, null]}))),
        r#"{"b":1,"a":[true,null]}"#
    );
}

#[test]
fn null_is_na_and_unchanged_is_empty() {
    assert_eq!(conv(Value::Null).unwrap(), FieldValue::Null);
    assert_eq!(csv(Value::Null), "#N/A");
    assert_eq!(
        conv(Value::Null).unwrap().json(),
        Some(serde_json::Value::Null)
    );
    assert_eq!(conv(Value::Unchanged).unwrap(), FieldValue::Unchanged);
    assert_eq!(csv(Value::Unchanged), "");
    assert_eq!(conv(Value::Unchanged).unwrap().json(), None);
    // Transforms keep both too.
    let spec = r#"{ field = "F__c", transform = { type = "numeric", precision = 4, scale = 2 } }"#;
    assert_eq!(map_with(spec, "", Value::Null).unwrap(), FieldValue::Null);
    assert_eq!(
        map_with(spec, "", Value::Unchanged).unwrap(),
        FieldValue::Unchanged
    );
}

#[test]
fn numbers_exact() {
    let big = "123456789012345678901234567890.1234567890123456789";
    assert_eq!(csv(Value::Numeric(big.into())), big);
    assert_eq!(
        conv(Value::Numeric(big.into()))
            .unwrap()
            .json()
            .unwrap()
            .to_string(),
        big
    );
    assert_eq!(csv(Value::Numeric("-12.3400".into())), "-12.34");
    assert_eq!(csv(Value::Float8(0.1)), "0.1");
    assert_eq!(csv(Value::Float4(1.5)), "1.5");
    assert_eq!(
        kind(conv(Value::Numeric("NaN".into()))),
        ErrorKind::NotANumber
    );
    assert_eq!(
        kind(conv(Value::Numeric("-Infinity".into()))),
        ErrorKind::InfiniteNumber
    );
    assert_eq!(kind(conv(Value::Float8(f64::NAN))), ErrorKind::NotANumber);
    assert_eq!(
        kind(conv(Value::Float4(f32::INFINITY))),
        ErrorKind::InfiniteNumber
    );
}

#[test]
fn numeric_transform_rounds_exactly() {
    let n = |p: u32, s: u32, v: &str| {
        map_with(
            &format!(
                r#"{{ field = "F__c", transform = {{ type = "numeric", precision = {p}, scale = {s} }} }}"#
            ),
            "",
            Value::Numeric(v.into()),
        )
    };
    assert_eq!(
        n(18, 2, "1.005").unwrap(),
        FieldValue::Number("1.01".into())
    );
    assert_eq!(
        n(18, 2, "-1.005").unwrap(),
        FieldValue::Number("-1.01".into())
    );
    assert_eq!(n(18, 2, "7").unwrap(), FieldValue::Number("7.00".into()));
    assert_eq!(
        n(40, 4, "123456789012345678901234567890.123456789").unwrap(),
        FieldValue::Number("123456789012345678901234567890.1235".into())
    );
    assert_eq!(
        n(33, 2, "9999999999999999999999999999999.995")
            .unwrap_err()
            .kind,
        ErrorKind::TooManyDigits {
            digits: 32,
            precision: 33,
            scale: 2
        }
    );
    assert_eq!(
        n(18, 2, "1234567890123456.7").unwrap(),
        FieldValue::Number("1234567890123456.70".into())
    );
    let e = n(18, 2, "12345678901234567.7").unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::TooManyDigits {
            digits: 17,
            precision: 18,
            scale: 2
        }
    );
    assert_eq!(e.column.as_deref(), Some("v"));
    assert_eq!(e.field.as_deref(), Some("F__c"));
    assert_eq!(e.value_type, Some("numeric"));
    assert!(e.to_string().contains("allows 16"), "{e}");
    assert_eq!(n(18, 2, "NaN").unwrap_err().kind, ErrorKind::NotANumber);
    assert_eq!(n(18, 2, "abc").unwrap_err().kind, ErrorKind::InvalidNumber);
    // Integers and text go through the same exact path.
    let spec = r#"{ field = "F__c", transform = { type = "numeric", precision = 5, scale = 1 } }"#;
    assert_eq!(
        map_with(spec, "", Value::Int4(42)).unwrap(),
        FieldValue::Number("42.0".into())
    );
    assert_eq!(
        map_with(spec, "", Value::Text("3.25".into())).unwrap(),
        FieldValue::Number("3.3".into())
    );
    assert_eq!(
        map_with(spec, "", Value::Bool(true)).unwrap_err().kind,
        ErrorKind::TransformType("numeric")
    );
}

#[test]
fn dates_and_times() {
    let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    assert_eq!(csv(Value::Date(PgDate::Value(d))), "2024-02-29");
    assert_eq!(
        kind(conv(Value::Date(PgDate::Infinity))),
        ErrorKind::InfiniteDate
    );
    assert_eq!(
        kind(conv(Value::Date(PgDate::NegInfinity))),
        ErrorKind::InfiniteDate
    );
    let old = NaiveDate::from_ymd_opt(1600, 1, 1).unwrap();
    assert!(matches!(
        kind(conv(Value::Date(PgDate::Value(old)))),
        ErrorKind::DateOutOfRange(_)
    ));
    let t = Utc.from_utc_datetime(&ts(2024, 1, 2, 3, 4, 5, 678_901));
    assert_eq!(
        csv(Value::TimestampTz(PgTimestamp::Value(t))),
        "2024-01-02T03:04:05.678Z"
    );
    assert_eq!(
        conv(Value::TimestampTz(PgTimestamp::Value(t)))
            .unwrap()
            .json(),
        Some(json!("2024-01-02T03:04:05.678Z"))
    );
    assert_eq!(
        kind(conv(Value::TimestampTz(PgTimestamp::Infinity))),
        ErrorKind::InfiniteDate
    );
    // timestamp without time zone: UTC by default, or the mapping's offset.
    let local = Value::Timestamp(PgTimestamp::Value(ts(2024, 1, 1, 0, 30, 0, 0)));
    assert_eq!(csv(local.clone()), "2024-01-01T00:30:00.000Z");
    let in_paris = map_with("\"F__c\"", "timezone = \"+01:00\"", local).unwrap();
    assert_eq!(in_paris.csv(), "2023-12-31T23:30:00.000Z");
    let time = NaiveTime::from_hms_milli_opt(13, 15, 0, 250).unwrap();
    assert_eq!(csv(Value::Time(time)), "13:15:00.250Z");
    assert_eq!(csv(Value::TimeTz(time, 2 * 3600)), "11:15:00.250Z");
    assert!(matches!(
        kind(conv(Value::Interval(Interval {
            months: 1,
            days: 0,
            micros: 0
        }))),
        ErrorKind::Unsupported(_)
    ));
    assert!(matches!(
        kind(conv(Value::Binary {
            type_oid: 1,
            bytes: vec![]
        })),
        ErrorKind::Unsupported(_)
    ));
}

#[test]
fn datetime_and_date_transforms() {
    let t = Utc.from_utc_datetime(&ts(2024, 3, 10, 23, 30, 0, 0));
    let dt = r#"{ field = "F__c", transform = "datetime" }"#;
    let day = NaiveDate::from_ymd_opt(2024, 3, 10).unwrap();
    assert_eq!(
        map_with(dt, "", Value::Date(PgDate::Value(day)))
            .unwrap()
            .csv(),
        "2024-03-10T00:00:00.000Z"
    );
    let dt_tz = r#"{ field = "F__c", transform = { type = "datetime", timezone = "-05:00" } }"#;
    let local = Value::Timestamp(PgTimestamp::Value(ts(2024, 3, 10, 20, 0, 0, 0)));
    assert_eq!(
        map_with(dt_tz, "", local).unwrap().csv(),
        "2024-03-11T01:00:00.000Z"
    );
    assert_eq!(
        map_with(dt, "", Value::Int4(1)).unwrap_err().kind,
        ErrorKind::TransformType("datetime")
    );
    let date_tz = r#"{ field = "F__c", transform = { type = "date", timezone = "+02:00" } }"#;
    assert_eq!(
        map_with(date_tz, "", Value::TimestampTz(PgTimestamp::Value(t)))
            .unwrap()
            .csv(),
        "2024-03-11"
    );
    let date = r#"{ field = "F__c", transform = "date" }"#;
    assert_eq!(
        map_with(date, "", Value::TimestampTz(PgTimestamp::Value(t)))
            .unwrap()
            .csv(),
        "2024-03-10"
    );
    assert_eq!(
        map_with(date, "", Value::TimestampTz(PgTimestamp::NegInfinity))
            .unwrap_err()
            .kind,
        ErrorKind::InfiniteDate
    );
}

fn text_array(items: &[&str]) -> Value {
    Value::Array(Array {
        element_oid: 25,
        dims: if items.is_empty() {
            vec![]
        } else {
            vec![items.len()]
        },
        elements: items.iter().map(|s| Value::Text(s.to_string())).collect(),
    })
}

#[test]
fn arrays_and_multipicklists() {
    assert_eq!(csv(text_array(&["a", "b c", "d"])), "a;b c;d");
    assert_eq!(conv(text_array(&[])).unwrap(), FieldValue::Null);
    assert_eq!(
        kind(conv(text_array(&["a;b"]))),
        ErrorKind::SeparatorInElement
    );
    let with_null = Value::Array(Array {
        element_oid: 25,
        dims: vec![2],
        elements: vec![Value::Text("a".into()), Value::Null],
    });
    assert_eq!(kind(conv(with_null)), ErrorKind::NullElement);
    let two_d = Value::Array(Array {
        element_oid: 23,
        dims: vec![2, 1],
        elements: vec![Value::Int4(1), Value::Int4(2)],
    });
    assert_eq!(kind(conv(two_d.clone())), ErrorKind::MultiDimensional);
    let enums = Value::Array(Array {
        element_oid: 99,
        dims: vec![2],
        elements: vec![
            Value::Enum {
                type_oid: 99,
                label: "x".into(),
            },
            Value::Enum {
                type_oid: 99,
                label: "y".into(),
            },
        ],
    });
    assert_eq!(csv(enums), "x;y");
    let split = r#"{ field = "F__c", transform = { type = "multipicklist", split = "," } }"#;
    assert_eq!(
        map_with(split, "", Value::Text("a, b,,c".into()))
            .unwrap()
            .csv(),
        "a;b;c"
    );
    assert_eq!(
        map_with(split, "", Value::Text("a;x,b".into()))
            .unwrap_err()
            .kind,
        ErrorKind::SeparatorInElement
    );
    let json = r#"{ field = "F__c", transform = "json" }"#;
    assert_eq!(map_with(json, "", two_d).unwrap().csv(), "[[1],[2]]");
    assert_eq!(
        map_with(json, "", Value::Text(" {\"a\": 1} ".into()))
            .unwrap()
            .csv(),
        r#"{"a":1}"#
    );
    assert_eq!(
        map_with(json, "", Value::Text("{oops".into()))
            .unwrap_err()
            .kind,
        ErrorKind::InvalidJson
    );
    assert_eq!(
        map_with(json, "", Value::Int4(1)).unwrap_err().kind,
        ErrorKind::TransformType("json")
    );
}

#[test]
fn value_map() {
    let spec = r#"{ field = "F__c", transform = { type = "value_map", values = { free = "Free", pro = "Pro", "true" = "Yes" } } }"#;
    let e = |l: &str| Value::Enum {
        type_oid: 99,
        label: l.into(),
    };
    assert_eq!(
        map_with(spec, "", e("pro")).unwrap(),
        FieldValue::Text("Pro".into())
    );
    assert_eq!(
        map_with(spec, "", Value::Bool(true)).unwrap(),
        FieldValue::Text("Yes".into())
    );
    let err = map_with(spec, "", e("enterprise")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unmapped);
    assert!(
        !err.to_string().contains("enterprise"),
        "row values stay out of messages: {err}"
    );
    let with_default = r#"{ field = "F__c", transform = { type = "value_map", values = { free = "Free" }, default = "Other" } }"#;
    assert_eq!(
        map_with(with_default, "", e("enterprise")).unwrap(),
        FieldValue::Text("Other".into())
    );
    assert_eq!(
        map_with(spec, "", Value::Json(json!(1))).unwrap_err().kind,
        ErrorKind::TransformType("value_map")
    );
}

#[test]
fn bool_transform() {
    let spec = r#"{ field = "F__c", transform = "bool" }"#;
    assert_eq!(
        map_with(spec, "", Value::Text("Yes".into())).unwrap(),
        FieldValue::Bool(true)
    );
    assert_eq!(
        map_with(spec, "", Value::Text("off".into())).unwrap(),
        FieldValue::Bool(false)
    );
    assert_eq!(
        map_with(spec, "", Value::Int2(1)).unwrap(),
        FieldValue::Bool(true)
    );
    assert_eq!(
        map_with(spec, "", Value::Int2(2)).unwrap_err().kind,
        ErrorKind::NotBoolInteger
    );
    assert_eq!(
        map_with(spec, "", Value::Text("maybe".into()))
            .unwrap_err()
            .kind,
        ErrorKind::NotBool
    );
    let custom = r#"{ field = "F__c", transform = { type = "bool", true_values = ["active"], false_values = ["churned"] } }"#;
    assert_eq!(
        map_with(custom, "", Value::Text("ACTIVE".into())).unwrap(),
        FieldValue::Bool(true)
    );
    assert_eq!(
        map_with(custom, "", Value::Text("yes".into()))
            .unwrap_err()
            .kind,
        ErrorKind::NotBool
    );
    assert_eq!(
        map_with(spec, "", Value::Float8(1.0)).unwrap_err().kind,
        ErrorKind::TransformType("bool")
    );
}

#[test]
fn string_transform() {
    let spec = r#"{ field = "F__c", transform = { type = "string", max_length = 5 } }"#;
    assert_eq!(
        map_with(spec, "", Value::Text("héllo".into())).unwrap(),
        FieldValue::Text("héllo".into())
    );
    assert_eq!(
        map_with(spec, "", Value::Text("héllo!".into()))
            .unwrap_err()
            .kind,
        ErrorKind::TooLong { length: 6, max: 5 }
    );
    let cut =
        r#"{ field = "F__c", transform = { type = "string", max_length = 3, truncate = true } }"#;
    assert_eq!(
        map_with(cut, "", Value::Text("héllo".into())).unwrap(),
        FieldValue::Text("hél".into())
    );
    let any = r#"{ field = "F__c", transform = "string" }"#;
    assert_eq!(
        map_with(any, "", Value::Int8(12)).unwrap(),
        FieldValue::Text("12".into())
    );
    assert_eq!(
        map_with(
            any,
            "",
            Value::Interval(Interval {
                months: 14,
                days: 3,
                micros: 3_723_000_000
            })
        )
        .unwrap(),
        FieldValue::Text("P1Y2M3DT1H2M3S".into())
    );
    // `#N/A` is data (a Name, a LastName): kept as text; the batcher sends it through
    // Collections because Bulk CSV would read it as NULL.
    assert_eq!(
        map_with(any, "", Value::Text("#N/A".into())).unwrap(),
        FieldValue::Text("#N/A".into())
    );
    assert_eq!(
        conv(Value::Text("#N/A".into())).unwrap(),
        FieldValue::Text("#N/A".into())
    );
}
