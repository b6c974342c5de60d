//! Randomized torture of the whole pipeline (issue 10): a seeded generator writes
//! inserts, updates, deletes, multi-statement and very large transactions, parents and
//! children in any order (three levels of lookups, records with two lookups, orphans whose
//! parent comes later), unchanged-TOAST updates, rows entering and leaving a filter,
//! external-id changes, delete + re-insert of a key, rows Salesforce rejects and fixes of
//! them, CSV-hostile text (`#N/A`, quotes, commas, newlines, unicode), numerics at their
//! precision limit and NULLs, rows of a second mapping onto the same object, partly while
//! the initial backfill runs; between transactions it SIGKILLs the real `pgforce run`
//! binary, injects emulator faults (5xx, `UNABLE_TO_LOCK_ROW`, dropped connections, slow
//! answers, token expiry, Bulk jobs that end `Failed` or are aborted from outside), drops
//! the replication slot and restarts or crashes Postgres. After a quiet period (the checkpoint passed the last write) the
//! oracle (`harness::oracle`) compares Postgres and the emulator field by field.
//!
//! Knobs (environment):
//! - `PGFORCE_TORTURE_SEED=N`: run only this seed (reproduces a failure with the same
//!   vocabulary and transaction count; thread timing is not part of the seed);
//! - `PGFORCE_TORTURE_SEEDS=N` (default 3) seeds starting at `PGFORCE_TORTURE_FIRST_SEED`
//!   (default 1);
//! - `PGFORCE_TORTURE_TXNS` transactions per seed (default 60);
//! - `PGFORCE_TORTURE_VOCAB`: `all`, `ci` (default), `none` and item names, with `-item`
//!   to switch one off (`all,-kill`); the items are listed in `harness::vocab`;
//! - `PGFORCE_TORTURE_SEED_SECS`: hard limit per seed (default 300);
//! - `PGFORCE_TORTURE_MINUTES`: the soak (`cargo test --test torture torture_soak --
//!   --ignored --nocapture`) runs fresh random seeds with the full vocabulary until this
//!   many minutes passed (default 30);
//! - `PGFORCE_KEEP_TEST_DIR`: keep a failed run's config and pgforce log.
//!
//! The default (`ci`) vocabulary is `all` minus the items that still fail
//! (`harness::vocab::KNOWN_FAILING`, empty now; switch one back on when its defect is fixed).
//!
//! Explained and fixed: a record created twice (`CreatedTwice Ticket__c`, seeds 3, 6 and 9
//! with the full vocabulary) was a resync restarted after its snapshot was gone: the sweep
//! read the tables as they were then and removed a record whose key changed after the
//! snapshot, which the row's earlier streamed update created again
//! (`pipeline::resync::a_restart_during_the_resync_sweeps_what_the_snapshot_saw`). In a soak
//! of seeds 3–14 before the fix, seeds 6 and 9 found it and seed 11 found three `Stale`
//! values once; all three passed after the fix (the `Stale` run was not reproduced).
//!
//! Switched back on after their fixes: `backfill` (1), `slot_drop` (2: objects with two
//! mappings swept, keys noted in the id map before they are sent, a slot the pipeline never
//! confirmed resynced), `bulk_aborted` (its seeds found a lookup cleared by a later change
//! of the same epoch kept by coalescing), `orphans` (3a/3b), `two_lookups`
//! (3c), `two_mappings` (7), `toast` (5), `na_text` (14, 15), `pg_restart` (16).

//! A run fails when the oracle finds anything, when the checkpoint does not reach the last
//! write within the quiet period (`PGFORCE_TORTURE_QUIET_SECS`, default 90), or when pgforce
//! exited on its own (it is respawned and the exit counted).

mod harness;

use std::time::{Duration, Instant};

use harness::run::{note, run_seed, Settings};
use harness::vocab::Vocab;

fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}: expected a number, got {v:?}")),
        Err(_) => default,
    }
}

/// Run `seeds`, each bounded by its deadline; panic with every failure's report.
async fn run_all(seeds: Vec<u64>, vocab: Vocab, txns: usize, until: Option<Instant>) {
    let deadline = Duration::from_secs(env_num("PGFORCE_TORTURE_SEED_SECS", 300));
    let mut failures = Vec::new();
    let mut ran = 0;
    for seed in seeds {
        if until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        ran += 1;
        let s = Settings {
            seed,
            vocab: vocab.clone(),
            txns,
            deadline,
        };
        match tokio::time::timeout(deadline, run_seed(&s)).await {
            Ok(Ok(outcome)) => {
                note(seed, &outcome.report);
                if !outcome.passed() {
                    failures.push(outcome.report);
                }
            }
            Ok(Err(e)) => failures.push(format!(
                "seed {seed} vocab {vocab}: the run itself failed: {e}\nreproduce: {}",
                s.repro()
            )),
            Err(_) => failures.push(format!(
                "seed {seed} vocab {vocab}: exceeded the {deadline:?} deadline\nreproduce: {}",
                s.repro()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} torture run(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn torture_short() {
    let vocab = Vocab::from_env(Vocab::ci());
    let txns = env_num("PGFORCE_TORTURE_TXNS", 60) as usize;
    let seeds = match std::env::var("PGFORCE_TORTURE_SEED") {
        Ok(_) => vec![env_num("PGFORCE_TORTURE_SEED", 0)],
        Err(_) => {
            let first = env_num("PGFORCE_TORTURE_FIRST_SEED", 1);
            (first..first + env_num("PGFORCE_TORTURE_SEEDS", 3)).collect()
        }
    };
    run_all(seeds, vocab, txns, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long soak: PGFORCE_TORTURE_MINUTES=M PGFORCE_TORTURE_SEEDS=N, run on demand"]
async fn torture_soak() {
    let vocab = Vocab::from_env(Vocab::all());
    let txns = env_num("PGFORCE_TORTURE_TXNS", 150) as usize;
    let minutes = env_num("PGFORCE_TORTURE_MINUTES", 30);
    let until = Instant::now() + Duration::from_secs(minutes * 60);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let seeds = (0..env_num("PGFORCE_TORTURE_SEEDS", 1_000_000))
        .map(|i| base + i)
        .collect();
    run_all(seeds, vocab, txns, Some(until)).await;
}

#[test]
fn vocabulary_parses_and_names_unknown_items() {
    let v = Vocab::parse("all,-kill").unwrap();
    assert!(v.has("insert") && !v.has("kill"));
    let v = Vocab::parse("insert,update").unwrap();
    assert_eq!(v.names(), vec!["insert", "update"]);
    let e = Vocab::parse("insert,bogus").unwrap_err();
    assert!(e.contains("bogus"), "{e}");
    assert_eq!(Vocab::parse(&Vocab::ci().to_string()).unwrap(), Vocab::ci());
}
