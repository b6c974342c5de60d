//! `parse_text` for every supported type, in the forms Postgres prints (DateStyle ISO,
//! IntervalStyle postgres), including the edge cases, plus the type registry (enums,
//! domains). The forms below were checked against PostgreSQL 15 and 17 output.

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use pgforce::pgoutput::value::{oid, Array, Interval, PgDate, PgTimestamp};
use pgforce::pgoutput::{parse_text, TypeRegistry, Value};

fn ok(type_oid: u32, text: &str) -> Value {
    parse_text(type_oid, text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn bad(type_oid: u32, text: &str) {
    let e = parse_text(type_oid, text).expect_err(text);
    assert_eq!(e.type_oid, type_oid);
}

fn time(h: u32, m: u32, s: u32, micro: u32) -> NaiveTime {
    NaiveTime::from_hms_micro_opt(h, m, s, micro).unwrap()
}

#[test]
fn booleans() {
    assert_eq!(ok(oid::BOOL, "t"), Value::Bool(true));
    assert_eq!(ok(oid::BOOL, "f"), Value::Bool(false));
    assert_eq!(ok(oid::BOOL, "true"), Value::Bool(true));
    for b in ["", "T ", "maybe", "2"] {
        bad(oid::BOOL, b);
    }
}

#[test]
fn integers_and_their_limits() {
    assert_eq!(ok(oid::INT2, "-32768"), Value::Int2(i16::MIN));
    assert_eq!(ok(oid::INT4, "2147483647"), Value::Int4(i32::MAX));
    assert_eq!(ok(oid::INT8, "-9223372036854775808"), Value::Int8(i64::MIN));
    bad(oid::INT2, "32768");
    bad(oid::INT4, "2147483648");
    bad(oid::INT8, "9223372036854775808");
    bad(oid::INT4, "1.0");
    bad(oid::INT4, "");
    bad(oid::INT4, " 1");
}

#[test]
fn numeric_is_exact_text() {
    for s in [
        "0",
        "-0.000001",
        "12.3400",
        "99999999999999999999999999999999999999.99999999999999999999",
        "NaN",
        "Infinity",
        "-Infinity",
    ] {
        assert_eq!(ok(oid::NUMERIC, s), Value::Numeric(s.into()));
    }
    for s in ["1e10", "abc", "1,5", "", "--1", "1.", "inf"] {
        bad(oid::NUMERIC, s);
    }
}

#[test]
fn floats_incl_nan_and_infinities() {
    assert_eq!(ok(oid::FLOAT4, "1.25"), Value::Float4(1.25_f32));
    assert_eq!(ok(oid::FLOAT4, "0.1"), Value::Float4(0.1_f32));
    assert_eq!(ok(oid::FLOAT8, "1e+300"), Value::Float8(1e300));
    assert_eq!(
        ok(oid::FLOAT8, "-Infinity"),
        Value::Float8(f64::NEG_INFINITY)
    );
    assert_eq!(ok(oid::FLOAT4, "Infinity"), Value::Float4(f32::INFINITY));
    assert!(matches!(ok(oid::FLOAT8, "NaN"), Value::Float8(f) if f.is_nan()));
    assert!(matches!(ok(oid::FLOAT8, "-0"), Value::Float8(f) if f == 0.0 && f.is_sign_negative()));
    assert_eq!(ok(oid::FLOAT8, "4.9e-324"), Value::Float8(4.9e-324));
    bad(oid::FLOAT8, "one");
    bad(oid::FLOAT4, "");
}

#[test]
fn text_types_are_kept_verbatim() {
    for ty in [oid::TEXT, oid::VARCHAR, oid::BPCHAR, oid::NAME] {
        assert_eq!(ok(ty, " padded  "), Value::Text(" padded  ".into()));
        assert_eq!(ok(ty, ""), Value::Text(String::new()));
        assert_eq!(ok(ty, "tab\there é ✓"), Value::Text("tab\there é ✓".into()));
    }
}

#[test]
fn uuids() {
    let u = uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
    assert_eq!(
        ok(oid::UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        Value::Uuid(u)
    );
    bad(oid::UUID, "a0eebc99");
    bad(oid::UUID, "not-a-uuid-at-all-not-a-uuid-at-all!");
}

#[test]
fn dates_incl_infinity_and_bc() {
    let d = |y, m, dd| Value::Date(PgDate::Value(NaiveDate::from_ymd_opt(y, m, dd).unwrap()));
    assert_eq!(ok(oid::DATE, "2024-02-29"), d(2024, 2, 29));
    assert_eq!(ok(oid::DATE, "infinity"), Value::Date(PgDate::Infinity));
    assert_eq!(ok(oid::DATE, "-infinity"), Value::Date(PgDate::NegInfinity));
    // 1 BC is year 0 in the proleptic Gregorian calendar.
    assert_eq!(ok(oid::DATE, "0001-01-01 BC"), d(0, 1, 1));
    assert_eq!(ok(oid::DATE, "4713-11-24 BC"), d(-4712, 11, 24));
    assert_eq!(ok(oid::DATE, "10000-01-01"), d(10000, 1, 1));
    for s in [
        "2023-02-29",
        "2024-13-01",
        "2024-1",
        "24/01/2024",
        "5874897-12-31",
        "",
    ] {
        bad(oid::DATE, s);
    }
}

#[test]
fn times_and_timetz() {
    assert_eq!(ok(oid::TIME, "00:00:00"), Value::Time(time(0, 0, 0, 0)));
    assert_eq!(
        ok(oid::TIME, "23:59:59.999999"),
        Value::Time(time(23, 59, 59, 999_999))
    );
    assert_eq!(
        ok(oid::TIME, "12:00:00.5"),
        Value::Time(time(12, 0, 0, 500_000))
    );
    // 24:00:00 is valid in Postgres but not representable: kept as text.
    assert_eq!(
        ok(oid::TIME, "24:00:00"),
        Value::Other {
            type_oid: oid::TIME,
            text: "24:00:00".into()
        }
    );
    for s in [
        "25:00:00",
        "12:60:00",
        "12:00",
        "12:00:00.",
        "noon",
        "12:00:00+01",
    ] {
        bad(oid::TIME, s);
    }
    assert_eq!(
        ok(oid::TIMETZ, "04:05:06.789-08"),
        Value::TimeTz(time(4, 5, 6, 789_000), -8 * 3600)
    );
    assert_eq!(
        ok(oid::TIMETZ, "12:00:00+05:30"),
        Value::TimeTz(time(12, 0, 0, 0), 5 * 3600 + 1800)
    );
    assert_eq!(
        ok(oid::TIMETZ, "12:00:00+00:19:32"),
        Value::TimeTz(time(12, 0, 0, 0), 19 * 60 + 32)
    );
    assert!(matches!(
        ok(oid::TIMETZ, "24:00:00+02"),
        Value::Other { .. }
    ));
    bad(oid::TIMETZ, "12:00:00");
}

#[test]
fn timestamps_incl_offsets_fractions_infinity_and_bc() {
    let ndt = |y, mo, d, h, mi, s, us| {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_time(time(h, mi, s, us))
    };
    assert_eq!(
        ok(oid::TIMESTAMP, "2024-01-15 10:30:00.123456"),
        Value::Timestamp(PgTimestamp::Value(ndt(2024, 1, 15, 10, 30, 0, 123_456)))
    );
    assert_eq!(
        ok(oid::TIMESTAMP, "0044-03-15 10:00:00 BC"),
        Value::Timestamp(PgTimestamp::Value(ndt(-43, 3, 15, 10, 0, 0, 0)))
    );
    assert_eq!(
        ok(oid::TIMESTAMP, "infinity"),
        Value::Timestamp(PgTimestamp::Infinity)
    );
    bad(oid::TIMESTAMP, "2024-01-15 10:30:00+00");
    bad(oid::TIMESTAMP, "2024-01-15T10:30:00");
    bad(oid::TIMESTAMP, "2024-01-15 24:00:00");

    let utc = |y, mo, d, h, mi, s| {
        Value::TimestampTz(PgTimestamp::Value(
            Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap(),
        ))
    };
    assert_eq!(
        ok(oid::TIMESTAMPTZ, "2024-01-15 10:30:00+00"),
        utc(2024, 1, 15, 10, 30, 0)
    );
    assert_eq!(
        ok(oid::TIMESTAMPTZ, "2024-01-15 16:00:00+05:30"),
        utc(2024, 1, 15, 10, 30, 0)
    );
    assert_eq!(
        ok(oid::TIMESTAMPTZ, "2024-01-15 02:30:00-08"),
        utc(2024, 1, 15, 10, 30, 0)
    );
    // Local mean time offsets have seconds.
    assert_eq!(
        ok(oid::TIMESTAMPTZ, "1900-01-01 00:19:32+00:19:32"),
        utc(1900, 1, 1, 0, 0, 0)
    );
    assert_eq!(
        ok(oid::TIMESTAMPTZ, "2024-01-15 11:30:00.5+01"),
        Value::TimestampTz(PgTimestamp::Value(
            Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap()
                + chrono::TimeDelta::milliseconds(500)
        ))
    );
    assert_eq!(
        ok(oid::TIMESTAMPTZ, "0044-03-15 10:00:00+00 BC"),
        Value::TimestampTz(PgTimestamp::Value(
            NaiveDate::from_ymd_opt(-43, 3, 15)
                .unwrap()
                .and_time(time(10, 0, 0, 0))
                .and_utc()
        ))
    );
    assert_eq!(
        ok(oid::TIMESTAMPTZ, "-infinity"),
        Value::TimestampTz(PgTimestamp::NegInfinity)
    );
    bad(oid::TIMESTAMPTZ, "2024-01-15 10:30:00");
    bad(oid::TIMESTAMPTZ, "2024-01-15 10:30:00+5");
    // Beyond chrono's range (Postgres allows up to 294276 AD).
    bad(oid::TIMESTAMPTZ, "294276-12-31 23:59:59+00");
}

#[test]
fn intervals_in_postgres_style() {
    let iv = |months, days, micros| {
        Value::Interval(Interval {
            months,
            days,
            micros,
        })
    };
    assert_eq!(
        ok(oid::INTERVAL, "1 year 2 mons 3 days 04:05:06.789"),
        iv(14, 3, 14_706_789_000)
    );
    assert_eq!(
        ok(oid::INTERVAL, "-1 years -2 mons +3 days -04:05:06"),
        iv(-14, 3, -14_706_000_000)
    );
    assert_eq!(ok(oid::INTERVAL, "1 day -00:00:01"), iv(0, 1, -1_000_000));
    assert_eq!(ok(oid::INTERVAL, "-00:00:00.5"), iv(0, 0, -500_000));
    assert_eq!(ok(oid::INTERVAL, "00:00:00"), iv(0, 0, 0));
    assert_eq!(ok(oid::INTERVAL, "1 mon"), iv(1, 0, 0));
    assert_eq!(
        ok(oid::INTERVAL, "-178000000 years"),
        iv(-2_136_000_000, 0, 0)
    );
    assert_eq!(ok(oid::INTERVAL, "-2147483648 days"), iv(0, i32::MIN, 0));
    assert_eq!(
        ok(oid::INTERVAL, "2562047788:00:54.775807"),
        iv(0, 0, i64::MAX)
    );
    assert_eq!(
        ok(oid::INTERVAL, "infinity"),
        Value::Interval(Interval::INFINITY)
    );
    assert_eq!(
        ok(oid::INTERVAL, "-infinity"),
        Value::Interval(Interval::NEG_INFINITY)
    );
    for s in [
        "",
        "1",
        "1 week",
        "@ 1 hour",
        "P1Y",
        "1 year 1 year x",
        "01:00",
        "200000000 years",
    ] {
        bad(oid::INTERVAL, s);
    }
}

#[test]
fn json_keeps_numbers_exact() {
    match ok(
        oid::JSONB,
        r#"{"big": 123456789012345678901234567890.000000000000000001, "x": [1.10]}"#,
    ) {
        Value::Json(j) => {
            assert_eq!(
                j["big"].to_string(),
                "123456789012345678901234567890.000000000000000001"
            );
            assert_eq!(j["x"][0].to_string(), "1.10");
        }
        v => panic!("{v:?}"),
    }
    assert!(matches!(
        ok(oid::JSON, "null"),
        Value::Json(serde_json::Value::Null)
    ));
    bad(oid::JSON, "{");
    bad(oid::JSONB, "");
}

#[test]
fn bytea_hex_and_escape_formats() {
    assert_eq!(ok(oid::BYTEA, "\\x"), Value::Bytea(vec![]));
    assert_eq!(ok(oid::BYTEA, "\\x00ff10"), Value::Bytea(vec![0, 255, 16]));
    assert_eq!(
        ok(oid::BYTEA, "ab\\000\\\\"),
        Value::Bytea(vec![b'a', b'b', 0, b'\\'])
    );
    bad(oid::BYTEA, "\\x0");
    bad(oid::BYTEA, "\\xzz");
    bad(oid::BYTEA, "\\400");
}

fn arr(element_oid: u32, dims: Vec<usize>, elements: Vec<Value>) -> Value {
    Value::Array(Array {
        element_oid,
        dims,
        elements,
    })
}

#[test]
fn arrays() {
    let t = |s: &str| Value::Text(s.into());
    assert_eq!(ok(oid::TEXT_ARRAY, "{}"), arr(oid::TEXT, vec![], vec![]));
    assert_eq!(
        ok(oid::INT4_ARRAY, "{{1,2},{3,4}}"),
        arr(oid::INT4, vec![2, 2], (1..=4).map(Value::Int4).collect())
    );
    assert_eq!(
        ok(oid::INT4_ARRAY, "{{{1},{2}},{{3},{4}}}"),
        arr(oid::INT4, vec![2, 2, 1], (1..=4).map(Value::Int4).collect())
    );
    assert_eq!(
        ok(
            oid::TEXT_ARRAY,
            r#"{NULL,null,"NULL","a\"b","c\\d","e,f"," g ",h\ i}"#
        ),
        arr(
            oid::TEXT,
            vec![8],
            vec![
                Value::Null,
                Value::Null,
                t("NULL"),
                t("a\"b"),
                t("c\\d"),
                t("e,f"),
                t(" g "),
                t("h i")
            ]
        )
    );
    assert_eq!(
        ok(oid::INT4_ARRAY, "[0:1]={7,8}"),
        arr(oid::INT4, vec![2], vec![Value::Int4(7), Value::Int4(8)])
    );
    assert_eq!(
        ok(oid::INT4_ARRAY, "[-2:-1][1:1]={{7},{8}}"),
        arr(oid::INT4, vec![2, 1], vec![Value::Int4(7), Value::Int4(8)])
    );
    assert_eq!(
        ok(
            oid::TIMESTAMPTZ_ARRAY,
            r#"{"2024-01-01 05:30:00+05:30",infinity}"#
        ),
        arr(
            oid::TIMESTAMPTZ,
            vec![2],
            vec![
                Value::TimestampTz(PgTimestamp::Value(
                    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
                )),
                Value::TimestampTz(PgTimestamp::Infinity),
            ]
        )
    );
    assert_eq!(
        ok(oid::BYTEA_ARRAY, r#"{"\\x00ff",NULL}"#),
        arr(
            oid::BYTEA,
            vec![2],
            vec![Value::Bytea(vec![0, 255]), Value::Null]
        )
    );
    assert_eq!(
        ok(oid::NUMERIC_ARRAY, "{1.50,NaN}"),
        arr(
            oid::NUMERIC,
            vec![2],
            vec![Value::Numeric("1.50".into()), Value::Numeric("NaN".into())]
        )
    );
    // An element that does not parse as the element type fails the whole array.
    let e = parse_text(oid::INT4_ARRAY, "{1,x}").unwrap_err();
    assert!(e.reason.contains("element 1"), "{e}");
    for s in [
        "{1,2",
        "{{1,2},{3}}",
        "{{1},2}",
        "[1:3]={1,2}",
        "1,2",
        "{1}}",
        "{{}}",
    ] {
        bad(oid::INT4_ARRAY, s);
    }
}

#[test]
fn unknown_types_are_other_with_the_text() {
    assert_eq!(
        ok(600, "(1,2)"),
        Value::Other {
            type_oid: 600,
            text: "(1,2)".into()
        }
    );
    // An array type we do not know is not parsed as an array either.
    assert!(matches!(
        ok(1017, "{\"(1,2)\"}"),
        Value::Other { type_oid: 1017, .. }
    ));
}

#[test]
fn registry_enums_domains_and_fallback() {
    let mut reg = TypeRegistry::new();
    reg.register_enum(70000, Some(70001));
    reg.learn_type(70002, "pg_catalog", "numeric");
    reg.learn_type(70003, "pg_catalog", "point");
    assert_eq!(
        reg.parse_text(70000, "ok").unwrap(),
        Value::Enum {
            type_oid: 70000,
            label: "ok".into()
        }
    );
    assert_eq!(
        reg.parse_text(70001, "{}").unwrap(),
        arr(70000, vec![], vec![])
    );
    assert_eq!(
        reg.parse_text(70002, "1.50").unwrap(),
        Value::Numeric("1.50".into())
    );
    assert!(reg.parse_text(70002, "x").is_err());
    // A domain over a type we do not parse keeps the domain's OID.
    assert_eq!(
        reg.parse_text(70003, "(1,2)").unwrap(),
        Value::Other {
            type_oid: 70003,
            text: "(1,2)".into()
        }
    );
    // Built-ins still parse through the registry.
    assert_eq!(reg.parse_text(oid::INT2, "7").unwrap(), Value::Int2(7));
}
