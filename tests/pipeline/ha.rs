//! HA takeover: two `pgforce run` processes on one config. Exactly one owns the pipeline
//! (the Postgres advisory lock), the other reports `standby` on `/status`. SIGKILL the
//! active one mid-stream: the standby takes over, resumes from the checkpoint (reconciling
//! what was in flight), and Salesforce ends up holding exactly what Postgres holds.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::crash::*;
use pgforce_emulator::{FaultKind, FaultSpec};

/// Poll both `/status` endpoints until one is `streaming` and the other `standby`;
/// returns the index of the active one.
async fn wait_active_standby(addrs: &[String; 2], limit: Duration) -> Option<usize> {
    poll_until(Deadline::within(limit), || async {
        let a = pipeline_state(&addrs[0]).await;
        let b = pipeline_state(&addrs[1]).await;
        match (a.as_deref(), b.as_deref()) {
            (Some("streaming"), Some("standby")) => Ok(0),
            (Some("standby"), Some("streaming")) => Ok(1),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standby_takes_over_after_kill9_of_the_active() {
    let started = Instant::now();
    let mut env = Env::start(ConfigOptions::default()).await;
    let pg = env.client().await;
    seed(&pg, 200, 400).await;
    // Slow Bulk closes keep a job in flight when the active one dies.
    env.emulator
        .add_fault(FaultSpec::always(FaultKind::Latency { ms: 300 }).matching(
            Some("PATCH"),
            &format!("/services/data/v{API_VERSION}/jobs/ingest/"),
        ));
    let addrs = [
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    ];
    let mut nodes = [
        Some(env.spawn("node0", Some(&addrs[0]))),
        Some(env.spawn("node1", Some(&addrs[1]))),
    ];
    let active = wait_active_standby(&addrs, Duration::from_secs(60))
        .await
        .unwrap_or_else(|| {
            panic!(
                "never saw one streaming and one standby:\nnode0:\n{}\nnode1:\n{}",
                env.log_tail("node0", 30),
                env.log_tail("node1", 30)
            )
        });
    let standby = 1 - active;
    note(format!("node{active} active, node{standby} standby"));

    let workload = Workload::new(&env.db_url, 3, 30_000, 200);
    let wl = workload.clone();
    let wl_task = tokio::spawn(async move { wl.run().await });

    // Kill the active one while it has a Bulk job in flight (or after a while regardless).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = poll_until(Deadline::secs(18).every_ms(10), || async {
        check(!open_bulk_steps(&pg).await.is_empty(), || {
            "no Bulk job in flight".into()
        })
    })
    .await;
    let in_flight = open_bulk_steps(&pg).await;
    nodes[active].as_mut().unwrap().kill9();
    let killed_at = Instant::now();
    note(format!(
        "killed node{active} with {} rows written, in flight: {in_flight:?}",
        workload.stats.rows.load(Ordering::Relaxed)
    ));

    let took_over = poll_until(Deadline::secs(60).every_ms(50), || async {
        let state = pipeline_state(&addrs[standby]).await;
        match state.as_deref() {
            Some("streaming") => Ok(killed_at.elapsed()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .ok();
    let took_over = took_over.unwrap_or_else(|| {
        panic!(
            "node{standby} never took over:\n{}",
            env.log_tail(&format!("node{standby}"), 40)
        )
    });
    note(format!(
        "node{standby} streaming {took_over:?} after the kill"
    ));

    // The killed node comes back and must now be the standby.
    nodes[active] = Some(env.spawn(&format!("node{active}"), Some(&addrs[active])));
    let roles = wait_active_standby(&addrs, Duration::from_secs(60)).await;
    assert_eq!(
        roles,
        Some(standby),
        "after the restart node{standby} must stay active and node{active} stand by"
    );

    wl_task.await.unwrap();
    let target = current_wal_lsn(&pg).await;
    env.emulator.clear_faults();
    let caught_up = wait_caught_up(&pg, target, Duration::from_secs(180)).await;
    assert!(
        caught_up,
        "did not catch up:\n{}",
        env.log_tail(&format!("node{standby}"), 60)
    );
    let diff = compare(&pg, &env.emulator).await;
    let (dead, parked) = leftovers(&pg).await;
    note(format!(
        "SUMMARY rows={} takeover={took_over:?} total={:.1}s dead={dead} parked={parked}",
        workload.stats.rows.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    ));
    note(format!(
        "recovery on node{standby}: {:?}",
        env.log_counts(&format!("node{standby}"), RECOVERY_LINES)
    ));
    assert_exact(&mut env, &pg, &diff).await;
    assert_eq!((dead, parked), (0, 0), "dead letters / parked rows left");
}
