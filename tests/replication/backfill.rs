//! Backfill in the slot's exported snapshot, then stream from its consistent point: each
//! row exactly once, even with writes during the backfill; resume after an interruption
//! without missing rows; composite keys, keyless tables and publication filters.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::replication::*;
use pgforce::pgoutput::value::Value;
use pgforce::replication::backfill::{BoxError, CopyProgress};
use pgforce::replication::{
    backfill, ensure_publication, BackfillChunk, BackfillOptions, BackfillProgressStore,
    BackfillSink, BackfillSnapshot, PgProgressStore, PublicationPolicy, ReplicationError,
    SnapshotAction, StreamOptions, TableRef,
};
use pgforce::testing::TempCluster;

/// Collects chunks; can be slow, and can fail at the n-th chunk.
#[derive(Default)]
struct Collect {
    rows: Vec<(TableRef, Vec<Option<String>>)>,
    progress: Vec<CopyProgress>,
    chunks: usize,
    fail_at_chunk: Option<usize>,
    delay: Duration,
}

impl BackfillSink for Collect {
    async fn write_chunk(&mut self, chunk: BackfillChunk) -> Result<(), BoxError> {
        if Some(self.chunks) == self.fail_at_chunk {
            return Err("sink unavailable".into());
        }
        tokio::time::sleep(self.delay).await;
        assert!(chunk.rows.len() <= 100, "chunks are bounded");
        for row in chunk.rows {
            self.rows
                .push((chunk.table.clone(), row.iter().map(value_text).collect()));
        }
        self.progress.push(chunk.progress);
        self.chunks += 1;
        Ok(())
    }
}

/// Text of a value, whichever way `parse_text` typed it.
fn value_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Int2(i) => i.to_string(),
        Value::Int4(i) => i.to_string(),
        Value::Int8(i) => i.to_string(),
        Value::Text(s) => s.clone(),
        Value::Other { text, .. } => text.clone(),
        other => panic!("unexpected value {other:?}"),
    })
}

fn ids(rows: &[(TableRef, Vec<Option<String>>)]) -> Vec<i64> {
    rows.iter()
        .map(|(_, r)| r[0].as_ref().unwrap().parse().unwrap())
        .collect()
}

fn state_of(rows: &[(TableRef, Vec<Option<String>>)]) -> BTreeMap<i64, Vec<Option<String>>> {
    rows.iter()
        .map(|(_, r)| (r[0].as_ref().unwrap().parse().unwrap(), r.clone()))
        .collect()
}

async fn table_state(c: &TempCluster) -> BTreeMap<i64, Vec<Option<String>>> {
    let rows = client(c)
        .await
        .query("SELECT id::text, name FROM items", &[])
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let id: String = r.get(0);
            (id.parse().unwrap(), vec![Some(id), r.get(1)])
        })
        .collect()
}

async fn progress_store(c: &TempCluster) -> PgProgressStore {
    PgProgressStore::new(client(c).await).await.unwrap()
}

/// Table `items` with `n` rows and publication `pub`.
async fn setup_items(c: &TempCluster, n: i32) {
    let sql = client(c).await;
    sql.batch_execute(&format!(
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, {n}) g;
         ANALYZE items;"
    ))
    .await
    .unwrap();
    ensure_publication(
        &sql,
        "pub",
        &[TableRef::parse("items")],
        PublicationPolicy::default(),
    )
    .await
    .unwrap();
}

/// Stream from `start` until the marker row (id 1000000) is inserted.
async fn stream_until_marker(c: &TempCluster, start: pgforce::lsn::Lsn) -> Vec<Msg> {
    let opts = StreamOptions {
        start_lsn: start,
        ..StreamOptions::new("s", vec!["pub".into()])
    };
    let mut stream = repl(c).await.start_replication(opts).await.unwrap();
    let mut msgs = Vec::new();
    while !inserted_ids(&msgs).contains(&1_000_000) {
        let more = read_commits(&mut stream, 1, Duration::from_secs(20)).await;
        assert!(!more.is_empty(), "marker never arrived");
        msgs.extend(more);
    }
    stream.stop().await.unwrap();
    msgs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_then_stream_delivers_each_row_exactly_once() {
    let c = cluster();
    setup_items(&c, 2000).await;
    let mut r = repl(&c).await;
    let slot = r
        .create_logical_slot("s", SnapshotAction::Export)
        .await
        .unwrap();
    let snapshot = slot.snapshot_name.clone().expect("exported snapshot");

    // Writes racing the backfill: new rows, updates and deletes of old ones.
    let writer_sql = client(&c).await;
    let writer = tokio::spawn(async move {
        for i in 0..300 {
            writer_sql
                .execute("INSERT INTO items VALUES ($1, 'new')", &[&(2001 + i)])
                .await
                .unwrap();
            if i % 10 == 0 {
                writer_sql
                    .execute(
                        "UPDATE items SET name = 'updated' WHERE id = $1",
                        &[&(i + 1)],
                    )
                    .await
                    .unwrap();
            }
            if i % 25 == 0 {
                writer_sql
                    .execute("DELETE FROM items WHERE id = $1", &[&(1000 + i)])
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });

    let mut copy_client = client(&c).await;
    let store = progress_store(&c).await;
    let mut sink = Collect {
        delay: Duration::from_millis(20),
        ..Default::default()
    };
    let opts = BackfillOptions {
        chunk_rows: 100,
        ..BackfillOptions::new("main")
    };
    let items = [TableRef::parse("items")];
    let summary = backfill(
        &mut copy_client,
        BackfillSnapshot::Exported(snapshot),
        &items,
        &store,
        &mut sink,
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(summary.tables, vec![(items[0].clone(), 2000)]);
    writer.await.unwrap();
    client(&c)
        .await
        .batch_execute("INSERT INTO items VALUES (1000000, 'marker')")
        .await
        .unwrap();

    // The backfill saw exactly the rows before the slot, unchanged.
    assert_eq!(ids(&sink.rows), (1..=2000).collect::<Vec<_>>());
    assert!(sink
        .rows
        .iter()
        .all(|(_, r)| r[1].as_deref().unwrap().starts_with("row ")));
    let last = sink.progress.last().unwrap();
    assert_eq!((last.rows_done, last.estimated_total), (2000, Some(2000)));
    let saved = store.load("main", &items[0]).await.unwrap().unwrap();
    assert!(saved.done);
    assert_eq!(saved.last_key, Some(vec!["2000".to_string()]));

    // The stream has everything after it, once: new rows inserted exactly once each.
    let msgs = stream_until_marker(&c, slot.consistent_point).await;
    let mut streamed = inserted_ids(&msgs);
    streamed.pop();
    assert_eq!(streamed, (2001..=2300).collect::<Vec<_>>());

    // Applying backfill then stream gives the table's current contents.
    let mut state = state_of(&sink.rows);
    apply(&mut state, &msgs);
    assert_eq!(state, table_state(&c).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_backfill_resumes_after_the_last_saved_key() {
    let c = cluster();
    setup_items(&c, 1000).await;
    let mut r = repl(&c).await;
    let slot = r
        .create_logical_slot("s", SnapshotAction::Export)
        .await
        .unwrap();
    let items = [TableRef::parse("items")];
    let opts = BackfillOptions {
        chunk_rows: 100,
        ..BackfillOptions::new("main")
    };
    let store = progress_store(&c).await;

    // First run: the sink fails at the fourth chunk.
    let mut first = Collect {
        fail_at_chunk: Some(3),
        ..Default::default()
    };
    let snapshot = BackfillSnapshot::Exported(slot.snapshot_name.clone().unwrap());
    let err = backfill(
        &mut client(&c).await,
        snapshot,
        &items,
        &store,
        &mut first,
        &opts,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ReplicationError::Sink { .. }), "{err:?}");
    assert_eq!(ids(&first.rows), (1..=300).collect::<Vec<_>>());
    let saved = store.load("main", &items[0]).await.unwrap().unwrap();
    assert_eq!(
        (saved.last_key.clone(), saved.rows_done, saved.done),
        (Some(vec!["300".into()]), 300, false)
    );

    // Meanwhile (after the slot, before the resumed snapshot) the table changes.
    client(&c)
        .await
        .batch_execute(
            "INSERT INTO items SELECT g, 'late' FROM generate_series(1001, 1010) g;
             UPDATE items SET name = 'changed' WHERE id IN (50, 500);
             DELETE FROM items WHERE id = 600;",
        )
        .await
        .unwrap();

    // Resume in a fresh snapshot: after key 300, none of the first 300 again.
    let mut second = Collect::default();
    let store = progress_store(&c).await;
    backfill(
        &mut client(&c).await,
        BackfillSnapshot::Fresh,
        &items,
        &store,
        &mut second,
        &opts,
    )
    .await
    .unwrap();
    let expected: Vec<i64> = (301..=1010).filter(|&i| i != 600).collect();
    assert_eq!(ids(&second.rows), expected);
    assert_eq!(
        second.progress.last().unwrap().rows_done,
        300 + expected.len() as u64
    );
    assert!(store.load("main", &items[0]).await.unwrap().unwrap().done);

    // A third run has nothing left to do.
    let mut third = Collect::default();
    backfill(
        &mut client(&c).await,
        BackfillSnapshot::Fresh,
        &items,
        &store,
        &mut third,
        &opts,
    )
    .await
    .unwrap();
    assert!(third.rows.is_empty());

    // The stream from the consistent point carries every change since the slot, so
    // backfill + stream converge on the table, including the change to row 50.
    client(&c)
        .await
        .batch_execute("INSERT INTO items VALUES (1000000, 'marker')")
        .await
        .unwrap();
    let msgs = stream_until_marker(&c, slot.consistent_point).await;
    let mut state = state_of(&first.rows);
    state.extend(state_of(&second.rows));
    apply(&mut state, &msgs);
    assert_eq!(state, table_state(&c).await);
    assert_eq!(state[&50][1].as_deref(), Some("changed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_composite_keys_and_restarts_keyless_tables() {
    let c = cluster();
    let sql = client(&c).await;
    sql.batch_execute(
        "CREATE TABLE pairs (a text, b int, v text, PRIMARY KEY (a, b));
         INSERT INTO pairs SELECT 'k' || (g % 5), g, 'v' FROM generate_series(1, 250) g;
         CREATE TABLE logs (msg text);
         ALTER TABLE logs REPLICA IDENTITY FULL;
         INSERT INTO logs SELECT 'm' || g FROM generate_series(1, 120) g;",
    )
    .await
    .unwrap();
    let tables = [TableRef::parse("pairs"), TableRef::parse("public.logs")];
    let store = progress_store(&c).await;
    let opts = BackfillOptions {
        chunk_rows: 50,
        ..BackfillOptions::new("p")
    };

    let mut run1 = Collect {
        fail_at_chunk: Some(2),
        ..Default::default()
    };
    backfill(
        &mut client(&c).await,
        BackfillSnapshot::Fresh,
        &tables,
        &store,
        &mut run1,
        &opts,
    )
    .await
    .unwrap_err();
    let mut run2 = Collect {
        fail_at_chunk: Some(4),
        ..Default::default()
    };
    backfill(
        &mut client(&c).await,
        BackfillSnapshot::Fresh,
        &tables,
        &store,
        &mut run2,
        &opts,
    )
    .await
    .unwrap_err();
    let mut run3 = Collect::default();
    backfill(
        &mut client(&c).await,
        BackfillSnapshot::Fresh,
        &tables,
        &store,
        &mut run3,
        &opts,
    )
    .await
    .unwrap();

    let keys = |rows: &[(TableRef, Vec<Option<String>>)]| -> Vec<(String, i64)> {
        rows.iter()
            .filter(|(t, _)| t.name == "pairs")
            .map(|(_, r)| {
                (
                    r[0].clone().unwrap(),
                    r[1].as_ref().unwrap().parse().unwrap(),
                )
            })
            .collect()
    };
    let (k1, k2) = (keys(&run1.rows), keys(&run2.rows));
    assert_eq!((k1.len(), k2.len()), (100, 150));
    assert!(
        k1.iter().max() < k2.iter().min(),
        "resumed strictly after the last key"
    );
    let mut all: Vec<_> = k1.into_iter().chain(k2).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 250);
    assert!(keys(&run3.rows).is_empty());

    // The keyless table cannot resume by key: it is copied again from the start.
    let logs = |rows: &[(TableRef, Vec<Option<String>>)]| {
        rows.iter().filter(|(t, _)| t.name == "logs").count()
    };
    assert_eq!((logs(&run2.rows), logs(&run3.rows)), (50, 120));
    assert_eq!(
        store
            .load("p", &tables[1])
            .await
            .unwrap()
            .unwrap()
            .rows_done,
        120
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_honours_publication_column_lists_and_row_filters() {
    let c = cluster();
    let sql = client(&c).await;
    sql.batch_execute(
        "CREATE TABLE wide (id int PRIMARY KEY, name text, secret text);
         INSERT INTO wide SELECT g, 'n' || g, 's' FROM generate_series(1, 20) g;
         CREATE PUBLICATION pub FOR TABLE wide (id, name) WHERE (id > 10);",
    )
    .await
    .unwrap();
    let mut sink = Collect::default();
    let opts = BackfillOptions {
        publication: Some("pub".into()),
        ..BackfillOptions::new("w")
    };
    backfill(
        &mut client(&c).await,
        BackfillSnapshot::Fresh,
        &[TableRef::parse("wide")],
        &progress_store(&c).await,
        &mut sink,
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(ids(&sink.rows), (11..=20).collect::<Vec<_>>());
    assert!(sink.rows.iter().all(|(_, r)| r.len() == 2));
}

/// Keeps the typed rows.
#[derive(Default)]
struct Typed(Vec<Vec<Value>>);

impl BackfillSink for Typed {
    async fn write_chunk(&mut self, chunk: BackfillChunk) -> Result<(), BoxError> {
        self.0.extend(chunk.rows);
        Ok(())
    }
}

/// Reliability defect 10: the backfill types enums, enum arrays and domains (over
/// timestamptz, bool, and a domain over a domain) exactly as the stream does, so a
/// backfilled row and the same row arriving through the slot map to the same record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_types_enums_and_domains_as_the_stream_does() {
    use pgforce::change::{Change, TxEvent};
    use pgforce::pgoutput::assembler::{Assembler, AssemblerConfig};
    use pgforce::replication::ReplicationMessage;

    let c = cluster();
    let sql = client(&c).await;
    sql.batch_execute(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE DOMAIN seen_at AS timestamptz;
         CREATE DOMAIN flag AS boolean;
         CREATE DOMAIN small AS integer CHECK (VALUE < 100);
         CREATE DOMAIN smaller AS small CHECK (VALUE < 10);
         CREATE TABLE typed (id int PRIMARY KEY, m mood, ms mood[], s seen_at, f flag, n smaller);
         CREATE PUBLICATION pub FOR TABLE typed;
         INSERT INTO typed VALUES
           (1, 'happy', '{sad,happy}', '2026-01-02 03:04:05.678+00', true, 7);",
    )
    .await
    .unwrap();
    let mut r = repl(&c).await;
    let slot = r
        .create_logical_slot("s", SnapshotAction::Export)
        .await
        .unwrap();
    let mut copy_client = client(&c).await;
    let mut sink = Typed::default();
    backfill(
        &mut copy_client,
        BackfillSnapshot::Exported(slot.snapshot_name.clone().unwrap()),
        &[TableRef::parse("typed")],
        &progress_store(&c).await,
        &mut sink,
        &BackfillOptions::new("main"),
    )
    .await
    .unwrap();
    sql.batch_execute(
        "INSERT INTO typed VALUES
           (2, 'happy', '{sad,happy}', '2026-01-02 03:04:05.678+00', true, 7)",
    )
    .await
    .unwrap();

    let mut assembler = Assembler::new(AssemblerConfig::default());
    *assembler.types_mut() = pgforce::replication::load_types(&sql).await.unwrap();
    let opts = StreamOptions {
        start_lsn: slot.consistent_point,
        ..StreamOptions::new("s", vec!["pub".into()])
    };
    let mut stream = repl(&c).await.start_replication(opts).await.unwrap();
    let streamed = loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), stream.next_message())
            .await
            .expect("the insert arrives")
            .expect("stream open")
            .expect("no stream error");
        if let ReplicationMessage::XLogData {
            wal_start, data, ..
        } = msg
        {
            assembler.push(wal_start, &data).unwrap();
            let mut found = None;
            while let Some(ev) = assembler.next_event().unwrap() {
                if let TxEvent::Change(Change::Row(row)) = ev {
                    found = row.new;
                }
            }
            if let Some(row) = found {
                break row;
            }
        }
    };
    stream.stop().await.unwrap();
    let backfilled = &sink.0[0];
    assert_eq!(backfilled.len(), 6);
    assert!(
        matches!(backfilled[1], Value::Enum { .. }),
        "an enum is an enum, not text: {:?}",
        backfilled[1]
    );
    assert!(
        !matches!(backfilled[3], Value::Other { .. }),
        "a domain over timestamptz is a timestamp: {:?}",
        backfilled[3]
    );
    assert_eq!(
        backfilled[1..],
        streamed[1..],
        "backfill and stream agree on every non-key value"
    );
}
