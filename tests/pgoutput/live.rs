//! End to end against a live server: create slots on a throwaway cluster, run each
//! capture scenario's SQL, read the slot's binary changes over SQL (tokio-postgres) and
//! check what the assembler makes of them — the same expectations the stored fixtures
//! are held to, so a new server version that changes the wire output shows up here.

use crate::support::pgoutput::checks;
use crate::support::pgoutput::{capture, cluster_options, connect, scenarios};
use pgforce::change::TxEvent;
use pgforce::pgoutput::{Assembler, AssemblerConfig};
use pgforce::testing::pg::TempCluster;

#[tokio::test]
async fn every_scenario_decodes_as_expected_on_a_live_server() {
    let cluster = TempCluster::start_with(cluster_options()).expect("cluster");
    let major = cluster.major_version().unwrap();
    for s in scenarios() {
        let msgs = capture(&cluster, &s).await;
        let check: fn(u32, &checks::Msgs) = match s.name {
            "basic" => checks::basic,
            "replica_identity" => checks::replica_identity,
            "toast" => checks::toast,
            "truncate" => checks::truncate,
            "messages" => checks::messages,
            "origin" => checks::origin,
            "streaming" => checks::streaming,
            "stream_interleaved" => checks::stream_interleaved,
            "two_phase" => checks::two_phase,
            "types" => checks::types,
            "all_types" => checks::all_types,
            "alter_table" => checks::alter_table,
            "binary" => checks::binary,
            other => panic!("no check for scenario {other}"),
        };
        check(major, &msgs);
    }
}

/// Consume a slot in several reads (as a pipeline would across reads), with a streamed
/// transaction interleaving with plain ones, into one assembler with a tiny memory
/// budget so buffered changes go through spill files.
///
/// Reads are bounded by `upto_lsn` (taken after each workload step), not by
/// `upto_nchanges`: every SQL-interface call restarts decoding at the slot's restart
/// point and streams the still-open transaction again from its first segment, so a
/// change-count bound could stop inside that re-streamed prefix on every call.
#[tokio::test]
async fn consuming_a_slot_in_several_reads_yields_commit_order() {
    let cluster = TempCluster::start_with(cluster_options()).expect("cluster");
    let major = cluster.major_version().unwrap();
    let c0 = connect(&cluster, "postgres").await;
    let c1 = connect(&cluster, "postgres").await;
    c0.batch_execute(
        "CREATE TABLE acct (id int PRIMARY KEY, owner text, balance numeric(12,2));
         CREATE PUBLICATION p FOR ALL TABLES;",
    )
    .await
    .unwrap();
    c0.batch_execute("SELECT pg_create_logical_replication_slot('reads', 'pgoutput')")
        .await
        .unwrap();
    let mut marks: Vec<String> = Vec::new();
    c0.batch_execute(
        "BEGIN; INSERT INTO acct SELECT g, 'big', g * 1.5 FROM generate_series(1, 1500) g",
    )
    .await
    .unwrap();
    marks.push(current_lsn(&c1).await);
    for i in 0..5 {
        c1.batch_execute(&format!(
            "INSERT INTO acct VALUES ({}, 'small', 0)",
            100_000 + i
        ))
        .await
        .unwrap();
        marks.push(current_lsn(&c1).await);
    }
    c0.batch_execute("UPDATE acct SET balance = balance + 1 WHERE id <= 10; COMMIT")
        .await
        .unwrap();
    marks.push(current_lsn(&c1).await);
    c1.batch_execute("DELETE FROM acct WHERE id = 100000")
        .await
        .unwrap();
    marks.push(current_lsn(&c1).await);

    let proto = if major >= 16 { "4" } else { "2" };
    let mut asm = Assembler::new(AssemblerConfig {
        memory_limit: 4096,
        ..Default::default()
    });
    let mut events: Vec<TxEvent> = Vec::new();
    let mut reads_with_data = 0;
    for upto in &marks {
        let rows = c0
            .query(
                "SELECT lsn::text, data FROM pg_logical_slot_get_binary_changes('reads', $1::text::pg_lsn, NULL,
                 'proto_version', $2, 'publication_names', 'p', 'streaming', 'on')",
                &[upto, &proto],
            )
            .await
            .unwrap();
        reads_with_data += usize::from(!rows.is_empty());
        for r in rows {
            let lsn: String = r.get(0);
            let data: Vec<u8> = r.get(1);
            asm.push(lsn.parse().unwrap(), &data).unwrap();
            while let Some(e) = asm.next_event().unwrap() {
                events.push(e);
            }
        }
    }
    assert!(reads_with_data > 1, "read in several calls");
    let (txs, _) = checks::transactions(&events);
    let shape: Vec<(usize, usize)> = txs
        .iter()
        .map(|t| {
            (
                t.rows().len(),
                t.rows().iter().filter(|r| r.new.is_none()).count(),
            )
        })
        .collect();
    // Five small inserts commit before the big transaction (1500 inserts + 10 updates),
    // then the delete.
    assert_eq!(
        shape,
        [(1, 0), (1, 0), (1, 0), (1, 0), (1, 0), (1510, 0), (1, 1)]
    );
    assert!(asm.spilled_bytes() > 0);
    assert_eq!(asm.pending_transactions(), 0);
}

async fn current_lsn(c: &tokio_postgres::Client) -> String {
    c.query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0)
}
