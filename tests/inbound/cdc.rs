//! CDC mode end to end: the emulator's Pub/Sub API over real gRPC, a throwaway Postgres,
//! the inbound engine in-process with `source = "cdc"` (the same entry wiring as
//! `pgforce run`): a dropped stream resumes after the last applied event, nothing missed or
//! doubled; gap events re-read their records and an overflow re-reads the window; a replay
//! id past retention is resynced by SystemModstamp. The mirror scenario both sources share
//! (REST, Collections, Bulk, nulls, types) is in `mirror`.

use serde_json::json;
use tokio_postgres::Client;

use crate::support::inbound::{col, wait_gone, wait_row, Env};
use crate::support::wait::{wait_until, DEADLINE};

const TASKS: &str = r#"
[[pipelines.inbound]]
object = "Task"
table = "audit.activity_log"
mode = "audit"
source = "cdc"
cdc_batch_size = 2
fields = { Subject = "subject" }
"#;

/// The Subjects of a Task's audit rows in event order, and whether any position repeats.
async fn subjects(pg: &Client, id: &str) -> Vec<String> {
    pg.query(
        "SELECT coalesce(\"values\"->>'Subject', change_type) FROM audit.activity_log \
         WHERE record_id = $1 ORDER BY position",
        &[&id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Audit rows sharing a replay id with another (must be none).
async fn repeated_positions(pg: &Client) -> i64 {
    pg.query_one(
        "SELECT count(*) FROM (SELECT position FROM audit.activity_log GROUP BY position \
         HAVING count(*) > 1) d",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

async fn audit_count(pg: &Client) -> i64 {
    pg.query_one("SELECT count(*) FROM audit.activity_log", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_dropped_stream_resumes_without_missing_or_doubling() {
    let env = Env::start("incdcdrop", TASKS).await;
    env.create_tables().await;
    let pg = env.client().await;
    let running = env.run();
    running.wait_ready().await;
    // Every one of the next four subscriptions is dropped after three events.
    env.fault(
        json!({"kind": "pubsub_drop_stream", "afterEvents": 3, "times": 4,
                     "pathPrefix": "/data/TaskChangeEvent"}),
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let t = env
            .create("Task", json!({"Subject": format!("t{i} v0")}))
            .await;
        tasks.push(t);
    }
    for v in 1..=2 {
        for (i, t) in tasks.iter().enumerate() {
            env.update("Task", t, json!({"Subject": format!("t{i} v{v}")}))
                .await;
        }
    }
    wait_until("every change applied", DEADLINE, || async {
        let n = audit_count(&pg).await;
        (n >= 12)
            .then_some(())
            .ok_or(format!("{n} of 12 audit rows"))
    })
    .await;
    running.stop().await.expect("a clean stop");
    assert!(
        env.faults_fired("pubsub_drop_stream") >= 3,
        "the stream was dropped mid-delivery"
    );
    for (i, t) in tasks.iter().enumerate() {
        let want: Vec<String> = (0..=2).map(|v| format!("t{i} v{v}")).collect();
        assert_eq!(subjects(&pg, t).await, want, "task {t}");
    }
    assert_eq!(audit_count(&pg).await, 12);
    assert_eq!(repeated_positions(&pg).await, 0);
}

const GAPS: &str = r#"
[[pipelines.inbound]]
object = "Opportunity"
table = "sf.opportunities"
source = "cdc"
poll_overlap_secs = 5
fields = { Name = "name", StageName = "stage", Amount = "amount", Description = "description" }
"#;

const GAP_ROW: &str =
    "SELECT name, stage, amount::text, description FROM sf.opportunities WHERE id = $1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_gap_events_reread_records_and_overflow_rereads_the_window() {
    let env = Env::start("incdcgap", GAPS).await;
    env.create_tables().await;
    let pg = env.client().await;
    let running = env.run();
    running.wait_ready().await;
    // GAP_CREATE, GAP_UPDATE, GAP_DELETE: header only; the records are re-read.
    env.fault(json!({"kind": "cdc_gap", "pathPrefix": "/data/Opportunity", "times": 4}))
        .await;
    let a = env
        .create(
            "Opportunity",
            json!({"Name": "Gap", "StageName": "Prospecting", "CloseDate": "2025-01-01", "Amount": 10, "Description": "d"}),
        )
        .await;
    wait_row(&pg, GAP_ROW, &a, "GAP_CREATE re-read", |r| {
        col(r, "name") == Some("Gap") && col(r, "amount") == Some("10.00")
    })
    .await;
    env.update(
        "Opportunity",
        &a,
        json!({"StageName": "Closed Won", "Description": null}),
    )
    .await;
    wait_row(&pg, GAP_ROW, &a, "GAP_UPDATE re-read", |r| {
        col(r, "stage") == Some("Closed Won") && col(r, "description").is_none()
    })
    .await;
    let b = env
        .create(
            "Opportunity",
            json!({"Name": "Gone", "StageName": "Prospecting", "CloseDate": "2025-01-01"}),
        )
        .await;
    wait_row(&pg, GAP_ROW, &b, "GAP_CREATE re-read", |r| {
        col(r, "name") == Some("Gone")
    })
    .await;
    env.delete("Opportunity", &b).await;
    wait_gone(&pg, GAP_ROW, &b, "GAP_DELETE re-read").await;
    assert_eq!(env.faults_fired("cdc_gap"), 4, "four gap events");

    // GAP_OVERFLOW: a transaction of five changes with a threshold of two publishes two
    // events and one overflow event; the window re-read finds the other three.
    env.admin(
        reqwest::Method::PUT,
        "/__emulator/cdc/overflow",
        Some(json!({"threshold": 2})),
    )
    .await;
    let ids = env
        .upsert_collection(
            "Opportunity",
            (0..5)
                .map(|i| json!({"External_Id__c": format!("ov-{i}"), "Name": format!("Ov {i}"), "StageName": "Prospecting", "CloseDate": "2025-01-01"}))
                .collect(),
        )
        .await;
    for (i, id) in ids.iter().enumerate() {
        let want = format!("Ov {i}");
        wait_row(&pg, GAP_ROW, id, "overflow window re-read", |r| {
            col(r, "name") == Some(want.as_str())
        })
        .await;
    }
    let status = running
        .health
        .get("incdcgap/inbound")
        .and_then(|s| s.inbound)
        .expect("the inbound status");
    assert_eq!(status[0].resyncs, 1, "the overflow counts as a resync");
    running.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_replay_id_past_retention_resyncs_by_systemmodstamp() {
    let env = Env::start("incdcret", GAPS).await;
    env.create_tables().await;
    let pg = env.client().await;
    let running = env.run();
    let a = env
        .create(
            "Opportunity",
            json!({"Name": "A", "StageName": "Prospecting", "CloseDate": "2025-01-01"}),
        )
        .await;
    let c = env
        .create(
            "Opportunity",
            json!({"Name": "C", "StageName": "Prospecting", "CloseDate": "2025-01-01"}),
        )
        .await;
    wait_row(&pg, GAP_ROW, &a, "streamed", |r| {
        col(r, "name") == Some("A")
    })
    .await;
    wait_row(&pg, GAP_ROW, &c, "streamed", |r| {
        col(r, "name") == Some("C")
    })
    .await;
    running.stop().await.expect("a clean stop");

    // Changes while stopped, then retention shrinks so their events are gone: the stored
    // replay id is now past retention.
    env.update("Opportunity", &a, json!({"Name": "A renamed"}))
        .await;
    let b = env
        .create(
            "Opportunity",
            json!({"Name": "B", "StageName": "Prospecting", "CloseDate": "2025-01-01"}),
        )
        .await;
    env.delete("Opportunity", &c).await;
    env.set_retention(0).await;
    env.set_retention(3600).await;

    let running = env.run();
    wait_row(&pg, GAP_ROW, &a, "resynced update", |r| {
        col(r, "name") == Some("A renamed")
    })
    .await;
    wait_row(&pg, GAP_ROW, &b, "resynced create", |r| {
        col(r, "name") == Some("B")
    })
    .await;
    wait_gone(&pg, GAP_ROW, &c, "resynced delete").await;
    let status = running
        .health
        .get("incdcret/inbound")
        .and_then(|s| s.inbound)
        .expect("the inbound status");
    assert_eq!(status[0].resyncs, 1, "one resync for the lost position");
    // After the resync the subscription streams again from the tip.
    env.update("Opportunity", &b, json!({"Name": "B after"}))
        .await;
    wait_row(&pg, GAP_ROW, &b, "streamed after the resync", |r| {
        col(r, "name") == Some("B after")
    })
    .await;
    running.stop().await.expect("a clean stop");
}
