//! Assembler behaviour on hand-built message sequences: the cases real captures do not
//! easily produce (skipped streamed origins, stale relations, protocol violations,
//! values that do not parse).

use pgforce::change::{Change, TxEvent};
use pgforce::lsn::Lsn;
use pgforce::pgoutput::row::RowError;
use pgforce::pgoutput::{Assembler, AssemblerError, Value};

/// Builds pgoutput messages byte by byte.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn tag(t: u8) -> Self {
        Msg(vec![t])
    }
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn str(mut self, s: &str) -> Self {
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        self
    }
    fn text(self, s: &str) -> Self {
        let mut m = self.u8(b't').u32(s.len() as u32);
        m.0.extend_from_slice(s.as_bytes());
        m
    }
}

fn begin(xid: u32, lsn: u64) -> Vec<u8> {
    Msg::tag(b'B').u64(lsn).u64(0).u32(xid).0
}
fn commit(lsn: u64) -> Vec<u8> {
    Msg::tag(b'C').u8(0).u64(lsn).u64(lsn + 8).u64(0).0
}
fn origin(name: &str) -> Vec<u8> {
    Msg::tag(b'O').u64(0).str(name).0
}
/// Relation 1 `public.t` with the given (name, type oid) columns; first is the key.
fn relation(stream_xid: Option<u32>, cols: &[(&str, u32)]) -> Vec<u8> {
    let mut m = Msg::tag(b'R');
    if let Some(x) = stream_xid {
        m = m.u32(x);
    }
    m = m
        .u32(1)
        .str("public")
        .str("t")
        .u8(b'd')
        .u16(cols.len() as u16);
    for (i, (name, ty)) in cols.iter().enumerate() {
        m = m.u8(u8::from(i == 0)).str(name).u32(*ty).u32(u32::MAX);
    }
    m.0
}
fn insert(stream_xid: Option<u32>, vals: &[&str]) -> Vec<u8> {
    let mut m = Msg::tag(b'I');
    if let Some(x) = stream_xid {
        m = m.u32(x);
    }
    m = m.u32(1).u8(b'N').u16(vals.len() as u16);
    for v in vals {
        m = m.text(v);
    }
    m.0
}
fn stream_start(xid: u32, first: bool) -> Vec<u8> {
    Msg::tag(b'S').u32(xid).u8(u8::from(first)).0
}
fn stream_stop() -> Vec<u8> {
    vec![b'E']
}
fn stream_commit(xid: u32, lsn: u64) -> Vec<u8> {
    Msg::tag(b'c').u32(xid).u8(0).u64(lsn).u64(lsn + 8).u64(0).0
}

fn run(asm: &mut Assembler, msgs: &[Vec<u8>]) -> Result<Vec<TxEvent>, AssemblerError> {
    let mut out = vec![];
    for (i, m) in msgs.iter().enumerate() {
        asm.push(Lsn(100 + i as u64), m)?;
        while let Some(e) = asm.next_event()? {
            out.push(e);
        }
    }
    Ok(out)
}

fn inserted_ids(events: &[TxEvent]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            TxEvent::Change(Change::Row(r)) => Some(r.new.as_ref().unwrap()[0].clone()),
            _ => None,
        })
        .collect()
}

const INT4: u32 = 23;
const TEXT: u32 = 25;

#[test]
fn streamed_transaction_from_our_origin_is_skipped_whole() {
    let mut asm = Assembler::default();
    let events = run(
        &mut asm,
        &[
            stream_start(7, true),
            origin("pgforce"),
            relation(Some(7), &[("id", INT4)]),
            insert(Some(7), &["1"]),
            stream_stop(),
            stream_start(7, false),
            insert(Some(7), &["2"]),
            stream_stop(),
            stream_commit(7, 500),
        ],
    )
    .unwrap();
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(asm.last_skipped_end_lsn(), Some(Lsn(508)));
    assert_eq!(asm.pending_transactions(), 0);
}

#[test]
fn a_streamed_relation_does_not_leak_into_a_concurrent_plain_transaction() {
    let mut asm = Assembler::default();
    let events = run(
        &mut asm,
        &[
            begin(1, 10),
            relation(None, &[("id", INT4)]),
            commit(10),
            // Streamed transaction 7 alters the table (two columns now) ...
            stream_start(7, true),
            relation(Some(7), &[("id", INT4), ("note", TEXT)]),
            insert(Some(7), &["2", "streamed"]),
            stream_stop(),
            // ... while plain transaction 8 still writes the old shape.
            begin(8, 20),
            insert(None, &["3"]),
            commit(20),
            stream_commit(7, 30),
            // After 7 commits its shape is the current one.
            begin(9, 40),
            insert(None, &["4", "after"]),
            commit(40),
        ],
    )
    .unwrap();
    assert_eq!(
        inserted_ids(&events),
        [Value::Int4(3), Value::Int4(2), Value::Int4(4)]
    );
    assert_eq!(asm.relation(1).unwrap().columns.len(), 2);
}

#[test]
fn a_value_that_does_not_parse_names_relation_column_and_type() {
    let mut asm = Assembler::default();
    let err = run(
        &mut asm,
        &[
            begin(1, 10),
            relation(None, &[("id", INT4)]),
            insert(None, &["x1"]),
        ],
    )
    .unwrap_err();
    match err {
        AssemblerError::Row {
            source:
                RowError::Value {
                    relation,
                    column,
                    type_oid,
                    ..
                },
            ..
        } => assert_eq!(
            (relation.as_str(), column.as_str(), type_oid),
            ("public.t", "id", INT4)
        ),
        e => panic!("{e}"),
    }
}

#[test]
fn protocol_violations_are_typed_errors() {
    let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (vec![insert(None, &["1"])], "change outside a transaction"),
        (vec![commit(10)], "commit without begin"),
        (vec![begin(1, 10), begin(2, 20)], "nested begin"),
        (vec![stream_stop()], "stop without start"),
        (
            vec![stream_start(7, false)],
            "continuation without first segment",
        ),
        (vec![begin(1, 10), insert(None, &["1"])], "unknown relation"),
        (
            vec![
                Msg::tag(b'K')
                    .u8(0)
                    .u64(1)
                    .u64(2)
                    .u64(0)
                    .u32(5)
                    .str("gid")
                    .0,
            ],
            "commit prepared without prepare",
        ),
    ];
    for (msgs, what) in cases {
        let err = run(&mut Assembler::default(), &msgs).expect_err(what);
        let ok = match what {
            "continuation without first segment" => {
                matches!(err, AssemblerError::MissingStreamStart { xid: 7, .. })
            }
            "unknown relation" => matches!(err, AssemblerError::UnknownRelation { oid: 1, .. }),
            "commit prepared without prepare" => {
                matches!(err, AssemblerError::UnknownPrepared { ref gid, .. } if gid == "gid")
            }
            _ => matches!(err, AssemblerError::Protocol { .. }),
        };
        assert!(ok, "{what}: {err}");
    }
}

#[test]
fn stream_restarted_from_its_first_segment_replaces_the_stale_buffer() {
    let mut asm = Assembler::default();
    let events = run(
        &mut asm,
        &[
            stream_start(7, true),
            relation(Some(7), &[("id", INT4)]),
            insert(Some(7), &["1"]),
            stream_stop(),
            // Reconnect: the server streams transaction 7 again from the start.
            stream_start(7, true),
            relation(Some(7), &[("id", INT4)]),
            insert(Some(7), &["1"]),
            insert(Some(7), &["2"]),
            stream_stop(),
            stream_commit(7, 50),
        ],
    )
    .unwrap();
    assert_eq!(inserted_ids(&events), [Value::Int4(1), Value::Int4(2)]);
}

#[test]
fn transaction_that_was_streamed_then_resent_plain_is_emitted_once() {
    let mut asm = Assembler::default();
    let events = run(
        &mut asm,
        &[
            stream_start(7, true),
            relation(Some(7), &[("id", INT4)]),
            insert(Some(7), &["1"]),
            stream_stop(),
            begin(7, 60),
            relation(None, &[("id", INT4)]),
            insert(None, &["1"]),
            commit(60),
        ],
    )
    .unwrap();
    assert_eq!(inserted_ids(&events), [Value::Int4(1)]);
    assert_eq!(asm.pending_transactions(), 0);
    assert_eq!(asm.buffered_memory(), 0);
}
