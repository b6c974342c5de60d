//! CDC mode end to end: the emulator's Pub/Sub API over real gRPC, a throwaway Postgres,
//! the inbound engine in-process with `source = "cdc"` (the same entry wiring as
//! `pgforce run`). Records that existed before the start are loaded; changes made through
//! REST, Collections and Bulk (hardDelete included) appear with the right values and
//! types; an UPDATE event carries and writes only the fields it changed (a nulled field
//! nulls its column, the others stay); a dropped stream resumes after the last applied
//! event, nothing missed or doubled; gap events re-read their records and an overflow
//! re-reads the window; a replay id past retention is resynced by SystemModstamp.

use pgforce::salesforce::IngestOperation;
use serde_json::{json, Value};
use tokio_postgres::Client;

use crate::support::inbound::{col, text_row, wait_gone, wait_row, Env};
use crate::support::wait::{wait_until, DEADLINE};

const OPPS: &str = r#"
[[pipelines.inbound]]
object = "Opportunity"
table = "sf.opportunities"
mode = "mirror"
source = "cdc"

[pipelines.inbound.fields]
Name = "name"
StageName = "stage"
Amount = "amount"
Probability = "probability"
CloseDate = "close_date"
IsClosed = "is_closed"
AccountId = "account_id"
"Account.Name" = "account_name"
Description = "description"
CreatedDate = "created_at"

[[pipelines.inbound]]
object = "Opportunity"
table = "audit.opportunity_changes"
mode = "audit"
source = "cdc"
fields = { Name = "name", StageName = "stage", Amount = "amount", Description = "description" }
"#;

/// The mirror row of an Opportunity, as text, with the column types.
const OPP_ROW: &str = "SELECT name, stage, amount::text, probability::text, close_date::text, \
     is_closed::text, account_id, account_name, description, created_at::text, \
     pg_typeof(amount)::text AS amount_type, pg_typeof(close_date)::text AS close_date_type, \
     pg_typeof(created_at)::text AS created_type, pg_typeof(is_closed)::text AS is_closed_type \
     FROM sf.opportunities WHERE id = $1";

/// The audit rows of a record: (change type, values, nulled fields), in event order.
async fn audit(pg: &Client, table: &str, id: &str) -> Vec<(String, Value, Vec<String>)> {
    pg.query(
        &format!(
            "SELECT change_type, \"values\", nulled_fields FROM {table} \
             WHERE record_id = $1 ORDER BY event_id"
        ),
        &[&id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_mirror_follows_rest_collections_and_bulk() {
    let env = Env::start("incdc", OPPS).await;
    env.create_tables().await;
    let pg = env.client().await;
    let account = env.create("Account", json!({"Name": "Acme"})).await;
    let before = env
        .create(
            "Opportunity",
            json!({"Name": "Existing", "StageName": "Prospecting", "CloseDate": "2025-03-31",
                   "Amount": 1200.5, "Probability": 10, "AccountId": account, "Description": "long text"}),
        )
        .await;
    let running = env.run();
    wait_row(&pg, OPP_ROW, &before, "initial load", |r| {
        col(r, "name") == Some("Existing")
    })
    .await;
    wait_until("the inbound side is ready", DEADLINE, || async {
        let r = running.health.readiness();
        r.ready.then_some(()).ok_or(format!("{r:?}"))
    })
    .await;
    let r = text_row(&pg, OPP_ROW, &before).await.unwrap();
    assert_eq!(col(&r, "amount"), Some("1200.50"));
    assert_eq!(col(&r, "amount_type"), Some("numeric"));
    assert_eq!(col(&r, "close_date_type"), Some("date"));
    assert_eq!(col(&r, "created_type"), Some("timestamp with time zone"));
    assert_eq!(col(&r, "is_closed_type"), Some("boolean"));
    assert_eq!(col(&r, "account_name"), Some("Acme"));

    // REST update: the nulled field nulls its column; the fields the event does not carry
    // are not written (the audit row shows what the event carried).
    env.update(
        "Opportunity",
        &before,
        json!({"Amount": null, "StageName": "Closed Won"}),
    )
    .await;
    wait_row(&pg, OPP_ROW, &before, "REST update", |r| {
        col(r, "stage") == Some("Closed Won")
    })
    .await;
    let r = text_row(&pg, OPP_ROW, &before).await.unwrap();
    assert_eq!(col(&r, "amount"), None, "nulled field → NULL");
    assert_eq!(col(&r, "description"), Some("long text"), "untouched");
    assert_eq!(col(&r, "name"), Some("Existing"), "untouched");
    assert_eq!(col(&r, "close_date"), Some("2025-03-31"), "untouched");
    assert_eq!(col(&r, "account_name"), Some("Acme"), "untouched");
    wait_until("the audit row of the update", DEADLINE, || async {
        let rows = audit(&pg, "audit.opportunity_changes", &before).await;
        match rows.as_slice() {
            [(t, values, nulled)] if t == "UPDATE" => {
                assert_eq!(
                    values,
                    &json!({"Amount": null, "StageName": "Closed Won"}),
                    "an UPDATE event carries only the changed fields"
                );
                assert_eq!(nulled, &vec!["Amount".to_string()]);
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // REST create (values of every type), then delete.
    let created = env
        .create(
            "Opportunity",
            json!({"Name": "New", "StageName": "Qualification", "CloseDate": "2025-06-30",
                   "Amount": 99.99, "Probability": 25, "AccountId": account}),
        )
        .await;
    wait_row(&pg, OPP_ROW, &created, "REST create", |r| {
        col(r, "name") == Some("New")
    })
    .await;
    let r = text_row(&pg, OPP_ROW, &created).await.unwrap();
    assert_eq!(col(&r, "amount"), Some("99.99"));
    assert_eq!(col(&r, "probability"), Some("25"));
    assert_eq!(col(&r, "close_date"), Some("2025-06-30"));
    assert_eq!(col(&r, "is_closed"), Some("false"));
    assert_eq!(col(&r, "account_id"), Some(account.as_str()));
    assert_eq!(
        col(&r, "account_name"),
        Some("Acme"),
        "relationship re-read"
    );
    assert!(col(&r, "created_at").is_some());
    env.delete("Opportunity", &created).await;
    wait_gone(&pg, OPP_ROW, &created, "REST delete").await;

    // Collections.
    let ids = env
        .upsert_collection(
            "Opportunity",
            vec![
                json!({"External_Id__c": "c-1", "Name": "Coll 1", "StageName": "Prospecting", "CloseDate": "2025-01-01", "Amount": 5}),
                json!({"External_Id__c": "c-2", "Name": "Coll 2", "StageName": "Prospecting", "CloseDate": "2025-01-02"}),
            ],
        )
        .await;
    for (id, name) in ids.iter().zip(["Coll 1", "Coll 2"]) {
        wait_row(&pg, OPP_ROW, id, "collections upsert", |r| {
            col(r, "name") == Some(name)
        })
        .await;
    }

    // Bulk: an update, then a hard delete.
    env.bulk(
        "Opportunity",
        IngestOperation::Update,
        &format!("Id,Name\n{},Bulk renamed\n", ids[0]),
    )
    .await;
    wait_row(&pg, OPP_ROW, &ids[0], "bulk update", |r| {
        col(r, "name") == Some("Bulk renamed")
    })
    .await;
    let r = text_row(&pg, OPP_ROW, &ids[0]).await.unwrap();
    assert_eq!(
        col(&r, "amount"),
        Some("5.00"),
        "untouched by the bulk update"
    );
    env.bulk(
        "Opportunity",
        IngestOperation::HardDelete,
        &format!("Id\n{}\n", ids[1]),
    )
    .await;
    wait_gone(&pg, OPP_ROW, &ids[1], "bulk hardDelete").await;
    assert!(text_row(&pg, OPP_ROW, &ids[0]).await.is_some());
    running.stop().await.expect("a clean stop");

    // Every change event reached the audit entry once.
    let dup: i64 = pg
        .query_one(
            "SELECT count(*) FROM (SELECT position, record_id FROM audit.opportunity_changes \
             GROUP BY 1, 2 HAVING count(*) > 1) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dup, 0, "no event written twice");
    let kinds: Vec<String> = audit(&pg, "audit.opportunity_changes", &ids[1])
        .await
        .into_iter()
        .map(|(t, _, _)| t)
        .collect();
    assert_eq!(
        kinds,
        vec!["CREATE", "DELETE"],
        "the hard delete is a DELETE"
    );
}

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
    wait_until("the entry streams", DEADLINE, || async {
        let r = running.health.readiness();
        r.ready.then_some(()).ok_or(format!("{r:?}"))
    })
    .await;
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
    wait_until("the entry streams", DEADLINE, || async {
        let r = running.health.readiness();
        r.ready.then_some(()).ok_or(format!("{r:?}"))
    })
    .await;
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
