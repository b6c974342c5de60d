//! Concurrency on the write path, with real parts (Postgres, the emulator over HTTP): a
//! backfill runs as several Bulk jobs of at most `max_batch_rows` rows (in flight together,
//! `max_concurrent_bulk_jobs` at a time), each key in exactly one job, every row landing
//! exactly once.

use std::collections::HashSet;

use crate::support::pipeline::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_runs_as_several_bulk_jobs_with_disjoint_keys() {
    let h = Harness::start(SCHEMA).await;
    h.sql(
        "INSERT INTO accounts (id, name, employees)
         SELECT g, 'Existing ' || g, g FROM generate_series(1, 5000) g;",
    )
    .await;
    let batching = Batching {
        max_batch_rows: 500,
        collections_threshold: 100,
        ..Batching::default()
    };
    let mut cfg = h.config(&mappings(), &batching);
    cfg.batching.max_concurrent_bulk_jobs = 4;
    let run = h.run(cfg).await;
    wait_until("every account backfilled", DEADLINE, || async {
        h.in_sync(&[Table::new("accounts", "Account", ACCOUNT_FIELDS)])
            .await
    })
    .await;
    let uploads = h.bulk_uploads();
    let mut keys = HashSet::new();
    for (object, op, rows) in &uploads {
        assert_eq!((object.as_str(), op.as_str()), ("Account", "upsert"));
        assert!(rows.len() <= 500, "a job of {} rows", rows.len());
        for r in rows {
            let key = r["External_Id__c"].clone();
            assert!(keys.insert(key.clone()), "key {key} in two jobs");
        }
    }
    assert_eq!(keys.len(), 5000);
    assert!(uploads.len() >= 10, "{} jobs", uploads.len());
    assert_eq!(h.records("Account", true).len(), 5000, "no doubles");
    let open = h.dead_letters("open").await;
    assert!(open.is_empty(), "unexpected dead letters: {open:#?}");
    run.stop().await.expect("clean stop");
}
