//! A transaction larger than the batch limits is sent in parts (memory stays bounded by
//! `max_batch_rows` / `max_batch_bytes`, not by the transaction): the parts keep the
//! transaction's order (a later update or delete of a key wins over an earlier part), the
//! slot and the checkpoint stay before the transaction until its last part lands, and a
//! kill -9 between parts loses and duplicates nothing.

use std::time::Duration;

use pgforce::metrics::TRANSACTION_SPLITS;
use serde_json::Value;

use crate::support::crash::{
    self, assert_exact, current_wal_lsn, leftovers, slot_confirmed, wait_caught_up, ConfigOptions,
};
use crate::support::pipeline::*;

/// One transaction of 450 Accounts and 200 Contacts (children of Accounts inserted
/// earlier in it), an update of the first Account and a delete of the second after
/// everything else, through epochs of at most 100 rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_larger_than_the_batch_is_sent_in_parts_in_order() {
    let h = Harness::start(SCHEMA).await;
    let before = pipeline_counter(TRANSACTION_SPLITS, PIPELINE);
    let batching = Batching {
        max_batch_rows: 100,
        collections_threshold: 50,
        ..Batching::default()
    };
    let run = h.run(h.config(&mappings(), &batching)).await;
    h.sql(
        "BEGIN;
         INSERT INTO accounts (id, name) SELECT g, 'Account ' || g FROM generate_series(1, 450) g;
         INSERT INTO contacts (id, account_id, last_name)
           SELECT g, 1 + g % 450, 'Contact ' || g FROM generate_series(1, 200) g;
         UPDATE accounts SET name = 'Last word' WHERE id = 1;
         DELETE FROM contacts WHERE account_id = 3;
         DELETE FROM accounts WHERE id = 3;
         COMMIT;",
    )
    .await;
    wait_until(
        "accounts and contacts match Salesforce",
        DEADLINE,
        || async {
            h.compare("accounts", "Account", ACCOUNT_FIELDS).await?;
            h.compare("contacts", "Contact", CONTACT_FIELDS).await
        },
    )
    .await;
    assert_eq!(
        h.record("Account", "1").unwrap()["Name"],
        Value::String("Last word".into()),
        "the update after the first part wins"
    );
    assert!(h.record("Account", "3").is_none(), "the delete wins");
    let splits = pipeline_counter(TRANSACTION_SPLITS, PIPELINE) - before;
    assert!(
        splits >= 6,
        "650 changes through 100-row epochs are cut inside the transaction ({splits} cuts)"
    );
    assert!(h.dead_letters("open").await.is_empty());
    run.stop().await.expect("clean stop");
}

/// kill -9 of `pgforce run` once some parts of a 12,000-row transaction landed: until its
/// last part lands the slot stays before the transaction; after a restart Salesforce holds
/// exactly what Postgres holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_between_the_parts_of_a_large_transaction_loses_nothing() {
    let mut env = crash::Env::start(ConfigOptions {
        max_batch_rows: 500,
        ..ConfigOptions::default()
    })
    .await;
    let pg = env.client().await;
    let mut child = env.spawn("pgforce", None);
    wait_until("the pipeline streams", DEADLINE, || async {
        let log = std::fs::read_to_string(env.dir.path().join("pgforce.log")).unwrap_or_default();
        log.contains("streaming")
            .then_some(())
            .ok_or_else(|| "not streaming yet".to_string())
    })
    .await;
    crash::seed(&pg, 6000, 6000).await;
    let txn_end = current_wal_lsn(&pg).await;
    wait_until("some parts landed", DEADLINE, || async {
        let n = records(&env);
        (n > 0).then_some(()).ok_or(format!("{n} records"))
    })
    .await;
    child.kill9();
    let n = records(&env);
    let confirmed = slot_confirmed(&pg).await;
    if n < 12_000 {
        assert!(
            confirmed < txn_end,
            "the slot moved past a transaction only {n} of whose 12000 rows landed"
        );
    }
    let _child = env.spawn("pgforce", None);
    let target = current_wal_lsn(&pg).await;
    assert!(
        wait_caught_up(&pg, target, Duration::from_secs(180)).await,
        "did not catch up:\n{}",
        env.log_tail("pgforce", 60)
    );
    let diff = crash::compare(&pg, &env.emulator).await;
    assert_exact(&mut env, &pg, &diff).await;
    assert_eq!(
        leftovers(&pg).await,
        (0, 0),
        "dead letters / parked rows left"
    );
}

/// Live Accounts and Contacts in the emulator.
fn records(env: &crash::Env) -> usize {
    let store = &env.emulator.state().store;
    store.count("Account", false).unwrap() + store.count("Contact", false).unwrap()
}
