//! Expected decoded content of each capture scenario. Used over the stored fixtures
//! (`pgoutput::fixtures`) and over fresh captures from a live server (`pgoutput::live`).
// The decode bench includes this file too and uses only part of it.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use pgforce::change::{Change, Operation, Relation, ReplicaIdentity, Row, RowChange, TxEvent};
use pgforce::lsn::Lsn;
use pgforce::pgoutput::messages::LogicalMessage;
use pgforce::pgoutput::value::{oid, Array, Interval, PgDate, PgTimestamp};
use pgforce::pgoutput::{decode, Assembler, AssemblerConfig, DecodeContext, Value};

pub type Msgs = [(Lsn, Vec<u8>)];

/// Run messages through an assembler, collecting every event.
pub fn assemble_with(msgs: &Msgs, asm: &mut Assembler) -> Vec<TxEvent> {
    let mut out = Vec::new();
    for (lsn, bytes) in msgs {
        asm.push(*lsn, bytes)
            .unwrap_or_else(|e| panic!("push at {lsn}: {e}"));
        while let Some(e) = asm.next_event().expect("next_event") {
            out.push(e);
        }
    }
    out
}

pub fn assemble(msgs: &Msgs) -> Vec<TxEvent> {
    assemble_with(msgs, &mut Assembler::default())
}

/// One emitted transaction.
#[derive(Debug)]
pub struct Tx {
    pub xid: u32,
    pub origin: Option<String>,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    pub changes: Vec<Change>,
}

impl Tx {
    pub fn rows(&self) -> Vec<&RowChange> {
        self.changes
            .iter()
            .filter_map(|c| match c {
                Change::Row(r) => Some(r),
                _ => None,
            })
            .collect()
    }
}

/// Group events into transactions (checking Begin/Commit pairing and commit order) and
/// the non-transactional messages.
pub fn transactions(events: &[TxEvent]) -> (Vec<Tx>, Vec<(String, Vec<u8>)>) {
    let mut txs = Vec::new();
    let mut msgs = Vec::new();
    let mut open: Option<Tx> = None;
    for e in events {
        match e {
            TxEvent::Begin {
                xid,
                commit_lsn,
                origin,
                ..
            } => {
                assert!(open.is_none(), "Begin inside a transaction");
                open = Some(Tx {
                    xid: *xid,
                    origin: origin.clone(),
                    commit_lsn: *commit_lsn,
                    end_lsn: Lsn::ZERO,
                    changes: vec![],
                });
            }
            TxEvent::Change(c) => open
                .as_mut()
                .expect("change outside Begin")
                .changes
                .push(c.clone()),
            TxEvent::Commit {
                xid,
                commit_lsn,
                end_lsn,
                ..
            } => {
                let mut tx = open.take().expect("Commit without Begin");
                assert_eq!(tx.xid, *xid);
                assert_eq!(tx.commit_lsn, *commit_lsn);
                assert!(end_lsn > commit_lsn);
                tx.end_lsn = *end_lsn;
                if let Some(prev) = txs.last() {
                    let prev: &Tx = prev;
                    assert!(prev.commit_lsn < tx.commit_lsn, "commit order");
                }
                txs.push(tx);
            }
            TxEvent::Message {
                prefix, content, ..
            } => msgs.push((prefix.clone(), content.clone())),
        }
    }
    assert!(open.is_none(), "unterminated transaction");
    (txs, msgs)
}

pub fn t(s: &str) -> Value {
    Value::Text(s.to_string())
}
pub fn i4(n: i32) -> Value {
    Value::Int4(n)
}
pub fn num(s: &str) -> Value {
    Value::Numeric(s.to_string())
}

fn assert_row(rc: &RowChange, table: &str, op: Operation, old: Option<Row>, new: Option<Row>) {
    assert_eq!(rc.relation.name, table);
    assert_eq!(rc.op, op);
    assert_eq!(rc.old, old, "old row of {op:?} on {table}");
    assert_eq!(rc.new, new, "new row of {op:?} on {table}");
}

/// The integer id column of an insert's new row.
fn id_of(rc: &RowChange) -> i32 {
    match rc.new.as_ref().expect("new row")[0] {
        Value::Int4(n) => n,
        ref v => panic!("id is {v:?}"),
    }
}

pub fn basic(_major: u32, msgs: &Msgs) {
    let (txs, _) = transactions(&assemble(msgs));
    assert_eq!(txs.len(), 4);
    let rel = &txs[0].rows()[0].relation;
    assert_eq!(
        (rel.schema.as_str(), rel.name.as_str(), rel.replica_identity),
        ("public", "customer", ReplicaIdentity::Default)
    );
    let cols: Vec<_> = rel
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.type_oid, c.is_key))
        .collect();
    assert_eq!(
        cols,
        [
            ("id", 23, true),
            ("name", 25, false),
            ("email", 1043, false),
            ("score", 1700, false)
        ]
    );
    assert_eq!(rel.columns[2].type_modifier, 104, "varchar(100) typmod");
    let ada = vec![i4(1), t("Ada"), t("ada@example.com"), num("12.50")];
    let grace = vec![i4(2), t("Grace"), Value::Null, num("-3.25")];
    let r = txs[0].rows();
    assert_row(r[0], "customer", Operation::Insert, None, Some(ada));
    assert_row(r[1], "customer", Operation::Insert, None, Some(grace));
    let grace2 = vec![i4(2), t("Grace"), t("grace@example.com"), num("-3.25")];
    assert_row(
        txs[1].rows()[0],
        "customer",
        Operation::Update,
        None,
        Some(grace2),
    );
    assert_row(
        txs[2].rows()[0],
        "customer",
        Operation::Update,
        Some(vec![i4(1), Value::Null, Value::Null, Value::Null]),
        Some(vec![i4(3), t("Ada"), t("ada@example.com"), num("12.50")]),
    );
    assert_row(
        txs[3].rows()[0],
        "customer",
        Operation::Delete,
        Some(vec![i4(2), Value::Null, Value::Null, Value::Null]),
        None,
    );
}

pub fn replica_identity(_major: u32, msgs: &Msgs) {
    let (txs, _) = transactions(&assemble(msgs));
    let rows: Vec<&RowChange> = txs.iter().flat_map(|t| t.rows()).collect();
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[0].relation.replica_identity, ReplicaIdentity::Full);
    assert_row(
        rows[1],
        "full_t",
        Operation::Update,
        Some(vec![i4(1), t("a")]),
        Some(vec![i4(1), t("b")]),
    );
    assert_row(
        rows[2],
        "full_t",
        Operation::Delete,
        Some(vec![i4(1), t("b")]),
        None,
    );
    let idx = &rows[3].relation;
    assert_eq!(idx.replica_identity, ReplicaIdentity::Index);
    assert_eq!(
        idx.columns.iter().map(|c| c.is_key).collect::<Vec<_>>(),
        [false, true, false]
    );
    assert_row(
        rows[4],
        "idx_t",
        Operation::Update,
        None,
        Some(vec![i4(1), t("c1"), t("y")]),
    );
    assert_row(
        rows[5],
        "idx_t",
        Operation::Update,
        Some(vec![Value::Null, t("c1"), Value::Null]),
        Some(vec![i4(1), t("c2"), t("y")]),
    );
    assert_row(
        rows[6],
        "idx_t",
        Operation::Delete,
        Some(vec![Value::Null, t("c2"), Value::Null]),
        None,
    );
    assert_eq!(rows[7].relation.replica_identity, ReplicaIdentity::Nothing);
    assert_row(
        rows[7],
        "nothing_t",
        Operation::Insert,
        None,
        Some(vec![i4(1), t("n")]),
    );
}

pub fn toast(_major: u32, msgs: &Msgs) {
    let (txs, _) = transactions(&assemble(msgs));
    assert_eq!(txs.len(), 2);
    let body = "0123456789".repeat(1000);
    assert_row(
        txs[0].rows()[0],
        "doc",
        Operation::Insert,
        None,
        Some(vec![i4(1), t("first"), t(&body)]),
    );
    // The unchanged out-of-line value is Unchanged, not Null.
    assert_row(
        txs[1].rows()[0],
        "doc",
        Operation::Update,
        None,
        Some(vec![i4(1), t("second"), Value::Unchanged]),
    );
}

pub fn truncate(_major: u32, msgs: &Msgs) {
    let (txs, _) = transactions(&assemble(msgs));
    assert_eq!(txs.len(), 3);
    assert_eq!(txs[0].rows().len(), 3);
    let names = |rels: &[Arc<Relation>]| {
        let mut n: Vec<String> = rels.iter().map(|r| r.name.clone()).collect();
        n.sort();
        n
    };
    match &txs[1].changes[..] {
        [Change::Truncate {
            relations,
            cascade: false,
            restart_identity: false,
        }] => {
            assert_eq!(names(relations), ["other"])
        }
        other => panic!("{other:?}"),
    }
    match &txs[2].changes[..] {
        [Change::Truncate {
            relations,
            cascade: true,
            restart_identity: true,
        }] => {
            assert_eq!(names(relations), ["child", "parent"])
        }
        other => panic!("{other:?}"),
    }
}

pub fn messages(_major: u32, msgs: &Msgs) {
    let events = assemble(msgs);
    let (txs, loose) = transactions(&events);
    assert_eq!(
        loose,
        [("pgforce.test".to_string(), b"non-transactional".to_vec())]
    );
    assert!(
        matches!(events[0], TxEvent::Message { .. }),
        "non-transactional first"
    );
    assert_eq!(txs.len(), 1);
    match &txs[0].changes[..] {
        [Change::Row(_), Change::Message {
            prefix: p1,
            content: c1,
        }, Change::Message {
            prefix: p2,
            content: c2,
        }] => {
            assert_eq!(
                (p1.as_str(), c1.as_slice()),
                ("pgforce.test", &b"transactional"[..])
            );
            assert_eq!((p2.as_str(), c2.as_slice()), ("bin", &[0x00, 0xff][..]));
        }
        other => panic!("{other:?}"),
    }
}

pub fn origin(_major: u32, msgs: &Msgs) {
    let mut asm = Assembler::default();
    let (txs, _) = transactions(&assemble_with(msgs, &mut asm));
    let got: Vec<_> = txs
        .iter()
        .map(|t| (id_of(t.rows()[0]), t.origin.clone()))
        .collect();
    assert_eq!(
        got,
        [(1, None), (3, Some("other_origin".to_string())), (4, None)]
    );
    assert!(asm.last_skipped_end_lsn().is_some());

    let mut keep_all = Assembler::new(AssemblerConfig {
        skip_origins: Vec::new(),
        ..Default::default()
    });
    let (txs, _) = transactions(&assemble_with(msgs, &mut keep_all));
    assert_eq!(txs.len(), 4);
    assert_eq!(txs[1].origin.as_deref(), Some("pgforce"));
}

fn ids(tx: &Tx) -> Vec<i32> {
    tx.rows().iter().map(|r| id_of(r)).collect()
}

fn streaming_expectations(txs: &[Tx]) {
    assert_eq!(txs.len(), 3, "the aborted stream is dropped");
    assert_eq!(ids(&txs[0]), (1..=600).collect::<Vec<_>>());
    assert_eq!(
        txs[0].rows()[0].new.as_ref().unwrap()[1],
        t(&"x".repeat(100))
    );
    // The rolled-back savepoint's 600 rows are gone; its siblings stay, in order.
    assert_eq!(
        ids(&txs[1]),
        [2001, 2002, 2003, 2004, 2005, 4001, 4002, 4003]
    );
    assert_eq!(ids(&txs[2]), [5000]);
}

pub fn streaming(_major: u32, msgs: &Msgs) {
    // Decoder: the streamed messages carry xids; abort names a subtransaction.
    let mut ctx = DecodeContext::default();
    let mut sub_aborts = 0;
    for (_, b) in msgs {
        let m = decode(b, &ctx).unwrap();
        ctx.observe(&m);
        if let LogicalMessage::StreamAbort { xid, subxid, .. } = m {
            sub_aborts += usize::from(xid != subxid);
        }
    }
    assert_eq!(sub_aborts, 1);

    let (txs, _) = transactions(&assemble(msgs));
    streaming_expectations(&txs);

    // Same output when every buffered byte goes through a spill file.
    let mut small = Assembler::new(AssemblerConfig {
        memory_limit: 1024,
        ..Default::default()
    });
    let (txs, _) = transactions(&assemble_with(msgs, &mut small));
    streaming_expectations(&txs);
    assert!(small.spilled_bytes() > 0, "spilled");
    assert_eq!(small.pending_transactions(), 0);
    assert_eq!(small.buffered_memory(), 0);
}

pub fn stream_interleaved(_major: u32, msgs: &Msgs) {
    for limit in [usize::MAX, 2048] {
        let mut asm = Assembler::new(AssemblerConfig {
            memory_limit: limit,
            ..Default::default()
        });
        let (txs, _) = transactions(&assemble_with(msgs, &mut asm));
        assert_eq!(txs.len(), 2);
        assert_eq!(
            ids(&txs[0]),
            (10001..=10400).collect::<Vec<_>>(),
            "committed first"
        );
        assert_eq!(ids(&txs[1]), (1..=800).collect::<Vec<_>>());
    }
}

pub fn two_phase(_major: u32, msgs: &Msgs) {
    for limit in [usize::MAX, 1024] {
        let mut asm = Assembler::new(AssemblerConfig {
            memory_limit: limit,
            ..Default::default()
        });
        let (txs, _) = transactions(&assemble_with(msgs, &mut asm));
        assert_eq!(txs.len(), 2, "g2 was rolled back");
        assert_row(
            txs[0].rows()[0],
            "t",
            Operation::Insert,
            None,
            Some(vec![i4(1), t("prepared then committed")]),
        );
        assert_eq!(
            ids(&txs[1]),
            (100..=699).collect::<Vec<_>>(),
            "stream-prepared g3"
        );
        assert_eq!(asm.pending_transactions(), 0);
    }
}

pub fn types(_major: u32, msgs: &Msgs) {
    let mut ctx = DecodeContext::default();
    let mut types = std::collections::HashMap::new();
    for (_, b) in msgs {
        let m = decode(b, &ctx).unwrap();
        ctx.observe(&m);
        if let LogicalMessage::Type {
            oid, schema, name, ..
        } = m
        {
            types.insert(name.clone(), (oid, schema));
        }
    }
    let mood = types["mood"].0;
    let mood_array = types["_mood"].0;
    assert_eq!(
        types["int4"].1, "pg_catalog",
        "the domain's Type names its base type"
    );
    let pair = types["pair"].0;

    let enum_value = |l: &str| Value::Enum {
        type_oid: mood,
        label: l.to_string(),
    };
    let mut asm = Assembler::default();
    asm.register_enum(mood, Some(mood_array));
    let (txs, _) = transactions(&assemble_with(msgs, &mut asm));
    let new = txs[0].rows()[0].new.clone().unwrap();
    assert_eq!(
        new,
        vec![
            i4(1),
            enum_value("happy"),
            Value::Array(Array {
                element_oid: mood,
                dims: vec![2],
                elements: vec![enum_value("sad"), enum_value("happy")],
            }),
            i4(5),
            Value::Other {
                type_oid: pair,
                text: "(1,x)".into()
            },
        ]
    );
    // Without registration the enum stays text, typed Other.
    let (txs, _) = transactions(&assemble(msgs));
    assert_eq!(
        txs[0].rows()[0].new.as_ref().unwrap()[1],
        Value::Other {
            type_oid: mood,
            text: "happy".into()
        }
    );
}

fn ndt(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, micro: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_micro_opt(h, mi, s, micro)
        .unwrap()
}

fn arr(element_oid: u32, dims: Vec<usize>, elements: Vec<Value>) -> Value {
    Value::Array(Array {
        element_oid,
        dims,
        elements,
    })
}

fn json(s: &str) -> Value {
    Value::Json(serde_json::from_str(s).unwrap())
}

/// Every column of the all_types row, in table order. (3.14 and 2.718… are data, not
/// approximations of π and e.)
#[allow(clippy::approx_constant)]
pub fn all_types_expected() -> Vec<(&'static str, Value)> {
    let uuid = uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
    let date = |y, m, d| Value::Date(PgDate::Value(NaiveDate::from_ymd_opt(y, m, d).unwrap()));
    vec![
        ("id", i4(1)),
        ("b", Value::Bool(true)),
        ("i2", Value::Int2(-32768)),
        ("i4", i4(2147483647)),
        ("i8", Value::Int8(i64::MIN)),
        ("num", num("123456789012345678901234567890.123456789000")),
        ("num_nan", num("NaN")),
        ("num_inf", num("-Infinity")),
        ("f4", Value::Float4(3.14)),
        ("f8", Value::Float8(-2.718281828459045)),
        ("f8_nan", Value::Float8(f64::NAN)),
        ("f8_inf", Value::Float8(f64::INFINITY)),
        ("t", t("hello \"world\" \\ é")),
        ("vc", t("varchar")),
        ("bp", t("ab   ")),
        ("nm", t("name_val")),
        ("u", Value::Uuid(uuid)),
        ("d", date(2024, 2, 29)),
        ("d_inf", Value::Date(PgDate::Infinity)),
        ("d_bc", date(-43, 3, 15)),
        (
            "tm",
            Value::Time(NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap()),
        ),
        (
            "tmtz",
            Value::TimeTz(
                NaiveTime::from_hms_milli_opt(4, 5, 6, 789).unwrap(),
                -8 * 3600,
            ),
        ),
        (
            "ts",
            Value::Timestamp(PgTimestamp::Value(ndt(2024, 1, 15, 10, 30, 0, 123_456))),
        ),
        ("ts_inf", Value::Timestamp(PgTimestamp::NegInfinity)),
        (
            "ts_bc",
            Value::Timestamp(PgTimestamp::Value(ndt(-43, 3, 15, 10, 0, 0, 0))),
        ),
        (
            "tstz",
            Value::TimestampTz(PgTimestamp::Value(
                Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap(),
            )),
        ),
        ("tstz_ninf", Value::TimestampTz(PgTimestamp::NegInfinity)),
        (
            "iv",
            Value::Interval(Interval {
                months: 14,
                days: 3,
                micros: 14_706_789_000,
            }),
        ),
        (
            "iv_neg",
            Value::Interval(Interval {
                months: -14,
                days: 3,
                micros: -14_706_000_000,
            }),
        ),
        (
            "j",
            json(r#"{"n": 12345678901234567890.12345678901234567890, "s": "x"}"#),
        ),
        ("jb", json(r#"{"a": true, "b": [1, 2.50, null]}"#)),
        ("by", Value::Bytea(vec![0xde, 0xad, 0xbe, 0xef])),
        (
            "a_b",
            arr(
                oid::BOOL,
                vec![3],
                vec![Value::Bool(true), Value::Bool(false), Value::Null],
            ),
        ),
        (
            "a_i2",
            arr(oid::INT2, vec![2], vec![Value::Int2(1), Value::Int2(-2)]),
        ),
        ("a_i4", arr(oid::INT4, vec![3], vec![i4(1), i4(2), i4(3)])),
        ("a_i8", arr(oid::INT8, vec![1], vec![Value::Int8(i64::MAX)])),
        (
            "a_num",
            arr(
                oid::NUMERIC,
                vec![3],
                vec![num("1.5"), num("NaN"), num("-0.001")],
            ),
        ),
        (
            "a_f4",
            arr(
                oid::FLOAT4,
                vec![2],
                vec![Value::Float4(1.5), Value::Float4(f32::NEG_INFINITY)],
            ),
        ),
        (
            "a_f8",
            arr(
                oid::FLOAT8,
                vec![2],
                vec![Value::Float8(1e300), Value::Float8(f64::NAN)],
            ),
        ),
        (
            "a_t",
            arr(
                oid::TEXT,
                vec![6],
                vec![t("a b"), t("c,d"), t("e\"f"), Value::Null, t("NULL"), t("")],
            ),
        ),
        ("a_vc", arr(oid::VARCHAR, vec![2], vec![t("x"), t("y")])),
        ("a_bp", arr(oid::BPCHAR, vec![2], vec![t("ab"), t("c ")])),
        ("a_u", arr(oid::UUID, vec![1], vec![Value::Uuid(uuid)])),
        (
            "a_d",
            arr(
                oid::DATE,
                vec![2],
                vec![date(2024, 1, 1), Value::Date(PgDate::Infinity)],
            ),
        ),
        (
            "a_ts",
            arr(
                oid::TIMESTAMP,
                vec![1],
                vec![Value::Timestamp(PgTimestamp::Value(ndt(
                    2024, 1, 1, 0, 0, 0, 0,
                )))],
            ),
        ),
        (
            "a_tstz",
            arr(
                oid::TIMESTAMPTZ,
                vec![1],
                vec![Value::TimestampTz(PgTimestamp::Value(
                    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
                ))],
            ),
        ),
        ("a_j", arr(oid::JSON, vec![1], vec![json(r#"{"k": 1}"#)])),
        ("a_jb", arr(oid::JSONB, vec![1], vec![json("[1, 2.0]")])),
        (
            "a_by",
            arr(
                oid::BYTEA,
                vec![2],
                vec![Value::Bytea(vec![0, 0xff]), Value::Null],
            ),
        ),
        (
            "a_2d",
            arr(oid::INT4, vec![2, 2], vec![i4(1), i4(2), i4(3), i4(4)]),
        ),
        ("a_bounds", arr(oid::INT4, vec![2], vec![i4(7), i4(8)])),
        ("a_empty", arr(oid::TEXT, vec![], vec![])),
    ]
}

pub fn all_types(_major: u32, msgs: &Msgs) {
    let (txs, _) = transactions(&assemble(msgs));
    let rows = txs[0].rows();
    let rel = &rows[0].relation;
    let got = rows[0].new.as_ref().unwrap();
    let expected = all_types_expected();
    assert_eq!(got.len(), expected.len());
    for (i, (name, want)) in expected.iter().enumerate() {
        assert_eq!(rel.columns[i].name, *name);
        // Debug form, so NaN compares equal to NaN.
        assert_eq!(
            format!("{:?}", got[i]),
            format!("{want:?}"),
            "column {name}"
        );
    }
    // Numbers inside JSON keep every digit.
    match &got[29] {
        Value::Json(j) => assert_eq!(
            j["n"].to_string(),
            "12345678901234567890.12345678901234567890"
        ),
        v => panic!("{v:?}"),
    }
    let nulls = rows[1].new.as_ref().unwrap();
    assert_eq!(nulls[0], i4(2));
    assert!(nulls[1..].iter().all(|v| *v == Value::Null));
}

pub fn alter_table(_major: u32, msgs: &Msgs) {
    let mut asm = Assembler::default();
    let (txs, _) = transactions(&assemble_with(msgs, &mut asm));
    assert_eq!(txs.len(), 3);
    let shape = |tx: &Tx| -> Vec<String> {
        tx.rows()[0]
            .relation
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect()
    };
    assert_eq!(shape(&txs[0]), ["id", "a"]);
    assert_eq!(shape(&txs[1]), ["id", "a", "b"]);
    assert_eq!(shape(&txs[2]), ["id", "b"]);
    assert_eq!(txs[1].rows()[0].new, Some(vec![i4(2), t("y"), i4(5)]));
    assert_eq!(txs[2].rows()[0].new, Some(vec![i4(3), i4(6)]));
    let oid = txs[0].rows()[0].relation.oid;
    assert_eq!(asm.relation(oid).unwrap().columns.len(), 2);
}

pub fn binary(_major: u32, msgs: &Msgs) {
    let (txs, _) = transactions(&assemble(msgs));
    let new = txs[0].rows()[0].new.clone().unwrap();
    assert_eq!(
        new[..2],
        [
            Value::Binary {
                type_oid: 23,
                bytes: vec![0, 0, 0, 1]
            },
            Value::Binary {
                type_oid: 25,
                bytes: b"x".to_vec()
            },
        ]
    );
    assert!(matches!(new[2], Value::Binary { type_oid: 1700, .. }));
}
