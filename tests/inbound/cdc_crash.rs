//! kill -9 of the real `pgforce run` binary while it applies change events from the
//! Pub/Sub API: changes keep coming while the process is killed at random points
//! (receiving, applying, committing, idle) and restarted. CDC delivers every version, so
//! after the last restart catches up every Task version is in the audit table exactly
//! once — one row per replay id, none missing — and the Opportunity mirror equals
//! Salesforce. The replay id commits in the same transaction as the rows it produced.

use std::time::Duration;

use rand::Rng;
use serde_json::json;
use tokio_postgres::Client;

use crate::support::inbound::Env;
use crate::support::wait::{wait_until, Deadline};

const ENTRIES: &str = r#"
[[pipelines.inbound]]
object = "Task"
table = "audit.activity_log"
mode = "audit"
source = "cdc"
cdc_batch_size = 3
fields = { Subject = "subject" }

[[pipelines.inbound]]
object = "Opportunity"
table = "sf.opps"
source = "cdc"
cdc_batch_size = 3
fields = { Name = "name", StageName = "stage" }
"#;

const TASKS: usize = 4;
const ROUNDS: usize = 5;

/// `SELECT count(*) …`; -1 while the table does not exist yet.
async fn count(pg: &Client, sql: &str) -> i64 {
    pg.query_one(sql, &[]).await.map(|r| r.get(0)).unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_kill_9_between_apply_and_checkpoint_writes_each_event_once() {
    let env = Env::start("incdccrash", ENTRIES).await;
    env.create_tables().await;
    let bin = env.binary();
    let pg = env.client().await;
    let mut child = bin.spawn();
    // Both entries have stored their tip: history starts there for the audit.
    wait_until(
        "the entries started",
        Deadline::within(Duration::from_secs(60)),
        || async {
            let n = count(
                &pg,
                "SELECT count(*) FROM pgforce.inbound_positions WHERE phase = 'streaming'",
            )
            .await;
            (n == 2)
                .then_some(())
                .ok_or_else(|| format!("{n} entries streaming\n{}", bin.tail()))
        },
    )
    .await;
    let mut tasks = Vec::new();
    let mut opps = Vec::new();
    for i in 0..TASKS {
        tasks.push(
            env.create("Task", json!({"Subject": format!("t{i} v0")}))
                .await,
        );
        opps.push(
            env.create(
                "Opportunity",
                json!({"Name": format!("o{i} v0"), "StageName": "Prospecting", "CloseDate": "2025-01-01"}),
            )
            .await,
        );
    }
    let mut rng = rand::rng();
    for v in 1..=ROUNDS {
        // Changes while the process runs, is killed, and is down.
        for (i, (t, o)) in tasks.iter().zip(&opps).enumerate() {
            env.update("Task", t, json!({"Subject": format!("t{i} v{v}")}))
                .await;
            env.update("Opportunity", o, json!({"Name": format!("o{i} v{v}")}))
                .await;
        }
        let pause = rng.random_range(0..1200u64);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let _ = child.kill();
        let _ = child.wait();
        child = bin.spawn();
    }
    let want = (TASKS * (ROUNDS + 1)) as i64;
    wait_until(
        "every version applied",
        Deadline::within(Duration::from_secs(90)),
        || async {
            let n = count(&pg, "SELECT count(*) FROM audit.activity_log").await;
            let current = count(
                &pg,
                &format!("SELECT count(*) FROM sf.opps WHERE name LIKE '% v{ROUNDS}'"),
            )
            .await;
            (n >= want && current == TASKS as i64)
                .then_some(())
                .ok_or_else(|| {
                    format!(
                        "{n} of {want} audit rows, {current} opportunities current\n{}",
                        bin.tail()
                    )
                })
        },
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();

    let repeated = count(
        &pg,
        "SELECT count(*) FROM (SELECT position FROM audit.activity_log GROUP BY position \
         HAVING count(*) > 1) d",
    )
    .await;
    assert_eq!(repeated, 0, "one audit row per replay id");
    assert_eq!(
        count(&pg, "SELECT count(*) FROM audit.activity_log").await,
        want,
        "every version once"
    );
    for (i, t) in tasks.iter().enumerate() {
        let subjects: Vec<String> = pg
            .query(
                "SELECT \"values\"->>'Subject' FROM audit.activity_log WHERE record_id = $1 \
                 ORDER BY position",
                &[t],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let want: Vec<String> = (0..=ROUNDS).map(|v| format!("t{i} v{v}")).collect();
        assert_eq!(subjects, want, "task {t}: every version once, in order");
    }
    assert_eq!(
        count(&pg, "SELECT count(*) FROM sf.opps").await,
        TASKS as i64
    );
}
