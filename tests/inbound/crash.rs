//! kill -9 of the real `pgforce run` binary while it applies polled changes: after the
//! last restart catches up, every Task version is in the audit table exactly once and the
//! Opportunity mirror equals Salesforce — nothing lost, nothing written twice (the
//! position commits in the same transaction as the rows).

use std::time::Duration;

use rand::Rng;
use serde_json::json;

use crate::support::inbound::Env;
use crate::support::wait::{wait_until, Deadline};

const ENTRIES: &str = r#"
[[pipelines.inbound]]
object = "Task"
table = "audit.activity_log"
mode = "audit"
source = "poll"
poll_interval_secs = 1
poll_overlap_secs = 20
fields = { Subject = "subject" }

[[pipelines.inbound]]
object = "Opportunity"
table = "sf.opps"
source = "poll"
poll_interval_secs = 1
poll_overlap_secs = 20
fields = { Name = "name", StageName = "stage" }
"#;

const TASKS: usize = 3;
const UPDATES: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_applying_writes_nothing_twice_and_loses_nothing() {
    let env = Env::start("incrash", ENTRIES).await;
    env.create_tables().await;
    let bin = env.binary();
    let pg = env.client().await;
    let mut child = bin.spawn();
    // The entries have taken their tip (history starts there for the audit).
    wait_until(
        "the entries started",
        Deadline::within(Duration::from_secs(60)),
        || async {
            let n: i64 = pg
                .query_one(
                    "SELECT count(*) FROM pgforce.inbound_positions WHERE phase = 'streaming'",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?
                .get(0);
            (n == 2)
                .then_some(())
                .ok_or_else(|| format!("{n} entries streaming\n{}", bin.tail()))
        },
    )
    .await;
    let mut tasks = Vec::new();
    let mut opps = Vec::new();
    let mut versions = 0i64;
    let mut rng = rand::rng();
    for i in 0..TASKS {
        let t = env
            .create("Task", json!({"Subject": format!("t{i} v0")}))
            .await;
        let o = env
            .create("Opportunity", json!({"Name": format!("o{i}"), "StageName": "Prospecting", "CloseDate": "2025-01-01"}))
            .await;
        versions += 1;
        for v in 0..=UPDATES {
            if v > 0 {
                env.update("Task", &t, json!({"Subject": format!("t{i} v{v}")}))
                    .await;
                env.update("Opportunity", &o, json!({"Name": format!("o{i} v{v}")}))
                    .await;
                versions += 1;
            }
            // kill -9 wherever it is (polling, applying, committing, idle), restart, and
            // let it catch up: a poll sees only the current version of a record.
            let pause = rng.random_range(0..1500u64);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let _ = child.kill();
            let _ = child.wait();
            child = bin.spawn();
            let want = versions;
            wait_until(
                "the version applied after a kill -9",
                Deadline::within(Duration::from_secs(60)),
                || async {
                    let n: i64 = pg
                        .query_one(
                            "SELECT count(*) FROM audit.activity_log WHERE object = 'Task'",
                            &[],
                        )
                        .await
                        .map_err(|e| e.to_string())?
                        .get(0);
                    (n >= want)
                        .then_some(())
                        .ok_or_else(|| format!("{n} audit rows of {want}\n{}", bin.tail()))
                },
            )
            .await;
        }
        tasks.push(t);
        opps.push(o);
    }
    wait_until(
        "the mirror caught up",
        Deadline::within(Duration::from_secs(60)),
        || async {
            let names: i64 = pg
                .query_one(
                    &format!("SELECT count(*) FROM sf.opps WHERE name LIKE '% v{UPDATES}'"),
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?
                .get(0);
            (names == TASKS as i64)
                .then_some(())
                .ok_or_else(|| format!("{names} opportunities current"))
        },
    )
    .await;
    // One more poll cycle past the goal must not add a row.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = child.kill();
    let _ = child.wait();
    for (i, t) in tasks.iter().enumerate() {
        let subjects: Vec<String> = pg
            .query(
                "SELECT \"values\"->>'Subject' FROM audit.activity_log WHERE record_id = $1 ORDER BY commit_timestamp",
                &[t],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let want: Vec<String> = (0..=UPDATES).map(|v| format!("t{i} v{v}")).collect();
        assert_eq!(subjects, want, "task {t}: every version once, in order");
    }
    let mirrored: i64 = pg
        .query_one("SELECT count(*) FROM sf.opps", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(mirrored, opps.len() as i64);
}
