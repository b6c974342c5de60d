//! Exactly-once under failure: the real `pgforce run` binary is SIGKILLed at random points
//! (and on purpose between a Bulk upload and the checkpoint) while a concurrent workload
//! writes Accounts and Contacts; Postgres is restarted and crashed under a running pipeline.
//! Afterwards Salesforce (the in-process emulator, which survives every kill) must hold
//! exactly what Postgres holds: nothing lost, nothing created twice, nothing stale.
//!
//! `PGFORCE_CRASH_ROWS` sets the workload size (default 100000 row changes),
//! `PGFORCE_CRASH_KILLS` the number of kills (default 20).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::crash::*;
use pgforce_emulator::{FaultKind, FaultSpec};
use rand::Rng;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Latency on Bulk job closes and on job polls/results: every Bulk step then spends a wide
/// window between its upload and the epoch's checkpoint, where targeted kills land.
fn widen_bulk_window(env: &Env, close_ms: u64, get_ms: u64) {
    let prefix = format!("/services/data/v{API_VERSION}/jobs/ingest/");
    env.emulator.add_fault(
        FaultSpec::always(FaultKind::Latency { ms: close_ms }).matching(Some("PATCH"), &prefix),
    );
    env.emulator.add_fault(
        FaultSpec::always(FaultKind::Latency { ms: get_ms }).matching(Some("GET"), &prefix),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_at_random_points_loses_and_duplicates_nothing() {
    let budget = env_num("PGFORCE_CRASH_ROWS", 100_000);
    let kills_wanted = env_num("PGFORCE_CRASH_KILLS", 20);
    let started = Instant::now();
    let mut env = Env::start(ConfigOptions::default()).await;
    let pg = env.client().await;
    seed(&pg, 300, 600).await;
    widen_bulk_window(&env, 400, 150);

    let mut child = env.spawn("pgforce", None);
    // Jobs recorded before the current child started (left by the previous one).
    let mut inherited: Vec<String> = Vec::new();
    let workload = Workload::new(&env.db_url, 4, budget, 300);
    let wl = workload.clone();
    let wl_task = tokio::spawn(async move { wl.run().await });

    let mut kills = 0u64;
    let mut window_kills = 0u64;
    let mut kill_states: Vec<String> = Vec::new();
    while kills < kills_wanted {
        let mode = kills % 3;
        match mode {
            // Targeted: wait until this child recorded a Bulk job of its own and uploaded
            // its data (or, every other time, just created it), then kill.
            1 => {
                let want = if (kills / 3).is_multiple_of(2) {
                    "uploaded"
                } else {
                    "job_created"
                };
                let _ = poll_until(Deadline::secs(15).every_ms(5), || async {
                    let open = open_bulk_steps(&pg).await;
                    let found = open
                        .iter()
                        .any(|(j, st)| st == want && !inherited.contains(j));
                    check(found, || format!("no new {want} job: {open:?}"))
                })
                .await;
                let jitter = rand::rng().random_range(0..100);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            // Early: during startup, backfill or reconciliation.
            2 => {
                let ms = rand::rng().random_range(50..900);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            _ => {
                let ms = rand::rng().random_range(300..3000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        if let Some(status) = child.try_exited() {
            panic!(
                "pgforce exited on its own ({status}) before kill {}:\n{}",
                kills + 1,
                env.log_tail("pgforce", 60)
            );
        }
        child.kill9();
        kills += 1;
        let open: Vec<(String, String)> = open_bulk_steps(&pg)
            .await
            .into_iter()
            .filter(|(j, _)| !inherited.contains(j))
            .collect();
        if !open.is_empty() {
            window_kills += 1;
            kill_states.push(
                open.iter()
                    .map(|(_, s)| s.as_str())
                    .collect::<Vec<_>>()
                    .join("+"),
            );
        }
        note(format!(
            "kill {kills} (mode {mode}) at {:.1}s; rows so far {}; open bulk steps {:?}",
            started.elapsed().as_secs_f64(),
            workload.stats.rows.load(Ordering::Relaxed),
            open
        ));
        inherited = recorded_jobs(&pg).await;
        child = env.spawn("pgforce", None);
    }
    wl_task.await.unwrap();
    let target = current_wal_lsn(&pg).await;
    let workload_done = started.elapsed();
    note(format!(
        "workload done at {:.1}s: {} row changes in {} transactions ({} aborted); catching up",
        workload_done.as_secs_f64(),
        workload.stats.rows.load(Ordering::Relaxed),
        workload.stats.transactions.load(Ordering::Relaxed),
        workload.stats.aborted.load(Ordering::Relaxed),
    ));
    // Faults off for the catch-up: what is left to prove is correctness, not patience.
    env.emulator.clear_faults();
    let caught_up = wait_caught_up(&pg, target, Duration::from_secs(300)).await;
    assert!(
        caught_up,
        "pipeline did not catch up (slot at {:X}, target {target:X}, {} in flight):\n{}",
        slot_confirmed(&pg).await,
        inflight_rows(&pg).await,
        env.log_tail("pgforce", 80)
    );
    let diff = compare(&pg, &env.emulator).await;
    let (dead, parked) = leftovers(&pg).await;

    child.signal(libc::SIGTERM);
    let exit = child.wait_exit(Duration::from_secs(60)).await;

    note(format!(
        "SUMMARY kills={kills} (in the upload→checkpoint window: {window_kills} {kill_states:?}) rows={} inserts={} updates={} deletes={} reinserts={} workload={:.1}s total={:.1}s dead_letters={dead} parked={parked}",
        workload.stats.rows.load(Ordering::Relaxed),
        workload.stats.inserts.load(Ordering::Relaxed),
        workload.stats.updates.load(Ordering::Relaxed),
        workload.stats.deletes.load(Ordering::Relaxed),
        workload.stats.reinserts.load(Ordering::Relaxed),
        workload_done.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    ));
    note(format!(
        "recovery: {:?}",
        env.log_counts("pgforce", RECOVERY_LINES)
    ));
    assert_exact(&mut env, &pg, &diff).await;
    assert_eq!((dead, parked), (0, 0), "dead letters / parked rows left");
    assert!(
        window_kills >= 1,
        "no kill landed between a Bulk upload and its checkpoint"
    );
    assert!(
        exit.is_some_and(|s| s.success()),
        "pgforce did not stop cleanly on SIGTERM ({exit:?}):\n{}",
        env.log_tail("pgforce", 40)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_and_crash_mid_stream() {
    let budget = env_num("PGFORCE_PG_RESTART_ROWS", 30_000);
    let started = Instant::now();
    let mut env = Env::start(ConfigOptions::default()).await;
    let pg = env.client().await;
    seed(&pg, 2000, 4000).await;
    drop(pg);
    widen_bulk_window(&env, 200, 50);
    let mut child = env.spawn("pgforce", None);

    let workload = Workload::new(&env.db_url, 3, budget, 2000);
    let wl = workload.clone();
    let wl_task = tokio::spawn(async move { wl.run().await });

    let mut outages = 0;
    for round in 0..4 {
        if round == 0 {
            // The first outage lands in the backfill (the seed is being copied).
            let _ = poll_until(Deadline::secs(30).every_ms(20), || {
                let log = std::fs::read_to_string(&child.log).unwrap_or_default();
                async move { check(log.contains("copying table"), || "not copying yet".into()) }
            })
            .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            let ms = rand::rng().random_range(1000..2500);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let crash = round % 2 == 1;
        // The workload and the pipeline keep running on the other workers meanwhile.
        tokio::task::block_in_place(|| {
            if crash {
                env.cluster.crash().expect("crash Postgres");
                std::thread::sleep(Duration::from_millis(500));
                env.cluster.start_again().expect("start Postgres again");
            } else {
                env.cluster.restart().expect("restart Postgres");
            }
        });
        outages += 1;
        note(format!(
            "Postgres {} at {:.1}s (rows so far {})",
            if crash {
                "crashed and started"
            } else {
                "restarted"
            },
            started.elapsed().as_secs_f64(),
            workload.stats.rows.load(Ordering::Relaxed)
        ));
        if let Some(status) = child.try_exited() {
            panic!(
                "pgforce exited after a Postgres outage ({status}):\n{}",
                env.log_tail("pgforce", 60)
            );
        }
    }
    wl_task.await.unwrap();
    let pg = env.client().await;
    let target = current_wal_lsn(&pg).await;
    env.emulator.clear_faults();
    let caught_up = wait_caught_up(&pg, target, Duration::from_secs(180)).await;
    assert!(
        caught_up,
        "pipeline did not catch up after {outages} Postgres outages:\n{}",
        env.log_tail("pgforce", 80)
    );
    assert!(
        child.try_exited().is_none(),
        "pgforce exited:\n{}",
        env.log_tail("pgforce", 60)
    );
    let diff = compare(&pg, &env.emulator).await;
    let (dead, parked) = leftovers(&pg).await;
    note(format!(
        "SUMMARY outages={outages} rows={} aborted_txns={} total={:.1}s dead={dead} parked={parked}",
        workload.stats.rows.load(Ordering::Relaxed),
        workload.stats.aborted.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    ));
    note(format!(
        "recovery: {:?}",
        env.log_counts("pgforce", RECOVERY_LINES)
    ));
    assert_exact(&mut env, &pg, &diff).await;
    assert_eq!((dead, parked), (0, 0), "dead letters / parked rows left");
}
