//! Poll mode end to end: the emulator over real HTTP, a throwaway Postgres, the inbound
//! engine in-process: a filter keeps only matching records and deletes are marked; audit
//! rows are written once, across a restart; an older version never overwrites a newer row;
//! a position that cannot be resumed is resynced. The mirror scenario both sources share
//! (REST, Collections, Bulk, nulls, types, the replication origin) is in `mirror`.

use chrono::{TimeZone, Utc};
use pgforce::inbound::event::{ChangeKind, InboundEvent, Position};
use pgforce::inbound::position::Phase;
use serde_json::json;
use tokio_postgres::Client;

use super::mirror::{opportunities, Source};
use crate::support::inbound::Env;
use crate::support::wait::{wait_until, DEADLINE};

const LEADS: &str = r#"
[[pipelines.inbound]]
object = "Lead"
table = "sf.leads"
source = "poll"
poll_interval_secs = 1
filter = "Status != 'Closed - Not Converted'"
delete = { deleted_at = "deleted_at" }

[pipelines.inbound.fields]
LastName = "last_name"
Company = "company"
Status = { column = "status", transform = { type = "value_map", values = { "Open - Not Contacted" = "open" }, default = "other" } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_mirror_filters_and_marks_deletes() {
    let env = Env::start("inleads", LEADS).await;
    env.create_tables().await;
    let pg = env.client().await;
    let running = env.run();
    let lead = env
        .create(
            "Lead",
            json!({"LastName": "Doe", "Company": "Acme", "Status": "Open - Not Contacted"}),
        )
        .await;
    wait_until("the inbound entry applied it", DEADLINE, || async {
        match lead_status(&pg, lead.clone()).await {
            Some((Some(s), false)) if s == "open" => Ok(()),
            other => Err(format!("value-mapped status: {other:?}")),
        }
    })
    .await;
    // Leaving the filter is a delete for the mirror: here, deleted_at is set.
    env.update("Lead", &lead, json!({"Status": "Closed - Not Converted"}))
        .await;
    wait_until("the lead left the filter", DEADLINE, || async {
        match lead_status(&pg, lead.clone()).await {
            Some((_, true)) => Ok(()),
            other => Err(format!("a lead outside the filter: {other:?}")),
        }
    })
    .await;
    // A delete also keeps the row, with deleted_at set.
    let other = env
        .create(
            "Lead",
            json!({"LastName": "Roe", "Company": "Beta", "Status": "Working - Contacted"}),
        )
        .await;
    wait_until("the inbound entry applied it", DEADLINE, || async {
        match lead_status(&pg, other.clone()).await {
            Some((Some(s), false)) if s == "other" => Ok(()),
            o => Err(format!("default of the value map: {o:?}")),
        }
    })
    .await;
    env.delete("Lead", &other).await;
    wait_until("the inbound entry applied it", DEADLINE, || async {
        match lead_status(&pg, other.clone()).await {
            Some((_, true)) => Ok(()),
            o => Err(format!("deleted_at: {o:?}")),
        }
    })
    .await;
    running.stop().await.expect("a clean stop");
}

async fn lead_status(pg: &Client, id: String) -> Option<(Option<String>, bool)> {
    pg.query_opt(
        "SELECT status, deleted_at IS NOT NULL FROM sf.leads WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap()
    .map(|r| (r.get::<_, Option<String>>(0), r.get::<_, bool>(1)))
}

const TASKS: &str = r#"
[[pipelines.inbound]]
object = "Task"
table = "audit.activity_log"
mode = "audit"
source = "poll"
poll_interval_secs = 1
poll_overlap_secs = 30

[pipelines.inbound.fields]
Subject = "subject"
Status = "status"
"#;

async fn audit_rows(pg: &Client, id: &str) -> Vec<(String, String)> {
    pg.query(
        "SELECT change_type, coalesce(\"values\"->>'Subject', '') FROM audit.activity_log \
         WHERE record_id = $1 ORDER BY event_id",
        &[&id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_are_written_once_across_restarts() {
    let env = Env::start("inaudit", TASKS).await;
    env.create_tables().await;
    let pg = env.client().await;
    let running = env.run();
    let task = env
        .create("Task", json!({"Subject": "Call", "Status": "Not Started"}))
        .await;
    wait_until("the inbound entry applied it", DEADLINE, || async {
        let rows = audit_rows(&pg, &task).await;
        (rows.len() == 1).then_some(()).ok_or(format!("{rows:?}"))
    })
    .await;
    running.stop().await.expect("a clean stop");

    // Changes while stopped, then a restart: each version once, nothing twice (the
    // restart re-reads the overlap window).
    env.update("Task", &task, json!({"Subject": "Call again"}))
        .await;
    let running = env.run();
    wait_until("the inbound entry applied it", DEADLINE, || async {
        let rows = audit_rows(&pg, &task).await;
        (rows.len() == 2).then_some(()).ok_or(format!("{rows:?}"))
    })
    .await;
    env.delete("Task", &task).await;
    wait_until("the inbound entry applied it", DEADLINE, || async {
        let rows = audit_rows(&pg, &task).await;
        (rows.len() == 3).then_some(()).ok_or(format!("{rows:?}"))
    })
    .await;
    env.next_minute();
    // The delete log reports the same delete: still one DELETE row, once the poller has
    // read it (its stored position passes the delete).
    let passed = "SELECT p.poll_modstamp >= a.commit_timestamp, p.updated_at::text \
                  FROM pgforce.inbound_positions p, audit.activity_log a \
                  WHERE a.change_type = 'DELETE' AND a.record_id = $1";
    wait_until("the inbound entry applied it", DEADLINE, || async {
        let r = pg
            .query_one(passed, &[&task])
            .await
            .map_err(|e| e.to_string())?;
        r.get::<_, bool>(0)
            .then_some(())
            .ok_or("the delete log not read yet".to_string())
    })
    .await;
    running.stop().await.expect("a clean stop");
    // A restart re-reads the overlap window and the delete log from its conservative
    // position: every version again, no row twice.
    let stored_at: String = pg.query_one(passed, &[&task]).await.unwrap().get(1);
    let running = env.run();
    wait_until("the inbound entry applied it", DEADLINE, || async {
        let r = pg
            .query_one(passed, &[&task])
            .await
            .map_err(|e| e.to_string())?;
        (r.get::<_, String>(1) != stored_at)
            .then_some(())
            .ok_or("no poll stored since the restart".to_string())
    })
    .await;
    running.stop().await.expect("a clean stop");
    let rows = audit_rows(&pg, &task).await;
    assert_eq!(
        rows,
        vec![
            ("CREATE".to_string(), "Call".to_string()),
            ("UPDATE".to_string(), "Call again".to_string()),
            ("DELETE".to_string(), String::new()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_version_never_overwrites_a_newer_row() {
    let env = Env::start("instale", &opportunities(Source::Poll)).await;
    env.create_tables().await;
    let rt = pgforce::inbound::Runtime::connect(
        env.pipeline.clone(),
        env.sf.clone(),
        Default::default(),
    )
    .await
    .unwrap();
    let entry = rt.entry(0, rt.poll_source(0)).await.unwrap();
    let event = |stamp: i64, name: &str, kind: ChangeKind| InboundEvent {
        object: "Opportunity".into(),
        record_ids: vec!["006000000000001AAA".into()],
        kind,
        commit_timestamp: Utc.timestamp_opt(stamp, 0).unwrap(),
        commit_user: "005".into(),
        change_origin: String::new(),
        transaction_key: String::new(),
        sequence_number: 0,
        values: [
            ("Name".to_string(), json!(name)),
            (
                "SystemModstamp".to_string(),
                json!(format!(
                    "{}",
                    Utc.timestamp_opt(stamp, 0)
                        .unwrap()
                        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                )),
            ),
        ]
        .into(),
        changed_fields: vec!["Name".into()],
        nulled_fields: vec![],
        diff_fields: vec![],
        position: Position::Poll {
            systemmodstamp: Utc.timestamp_opt(stamp, 0).unwrap(),
            id: String::new(),
        },
    };
    let pos = Position::Poll {
        systemmodstamp: Utc::now(),
        id: String::new(),
    };
    let mut session = env.client().await;
    let newer = entry
        .applier
        .apply(
            &mut session,
            &[event(2_000_000, "newer", ChangeKind::Update)],
            Phase::Streaming,
            Some(&pos),
            None,
        )
        .await
        .unwrap();
    assert_eq!(newer.written, 1);
    let older = entry
        .applier
        .apply(
            &mut session,
            &[event(1_000_000, "older", ChangeKind::Update)],
            Phase::Streaming,
            Some(&pos),
            None,
        )
        .await
        .unwrap();
    assert_eq!((older.written, older.stale), (0, 1));
    let stale_delete = entry
        .applier
        .apply(
            &mut session,
            &[event(1_500_000, "", ChangeKind::Delete)],
            Phase::Streaming,
            Some(&pos),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        stale_delete.deleted, 0,
        "an older delete does not remove a newer row"
    );
    // A value that does not fit its column stops the batch with the record and column
    // named, and nothing of the batch is written.
    let mut bad = event(3_000_000, "bad", ChangeKind::Update);
    bad.values.insert("Amount".into(), json!([1, 2]));
    let err = entry
        .applier
        .apply(&mut session, &[bad], Phase::Streaming, Some(&pos), None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("006000000000001AAA") && text.contains("amount"),
        "{text}"
    );
    drop(session);
    // A target table without one of the columns is refused by name.
    let pg = env.client().await;
    pg.batch_execute("ALTER TABLE sf.opportunities DROP COLUMN stage")
        .await
        .unwrap();
    let err = rt
        .entry(0, rt.poll_source(0))
        .await
        .err()
        .expect("a missing column is an error");
    assert!(err.to_string().contains("missing column(s) stage"), "{err}");
    let name: String = pg
        .query_one(
            "SELECT name FROM sf.opportunities WHERE id = '006000000000001AAA'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "newer");
}

const CONTACTS: &str = r#"
[[pipelines.inbound]]
object = "Contact"
table = "sf.contacts"
source = "poll"
poll_interval_secs = 1

[pipelines.inbound.fields]
LastName = "last_name"
Email = "email"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_that_cannot_be_resumed_is_resynced_not_skipped() {
    let env = Env::start("inlost", CONTACTS).await;
    env.create_tables().await;
    let pg = env.client().await;
    let running = env.run();
    let id = env
        .create(
            "Contact",
            json!({"LastName": "Lost", "Email": "a@example.com"}),
        )
        .await;
    let email = |id: String| {
        let pg = &pg;
        async move {
            pg.query_opt("SELECT email FROM sf.contacts WHERE id = $1", &[&id])
                .await
                .unwrap()
                .and_then(|r| r.get::<_, Option<String>>(0))
        }
    };
    wait_until("the contact applied", DEADLINE, || async {
        (email(id.clone()).await.as_deref() == Some("a@example.com"))
            .then_some(())
            .ok_or("not yet".to_string())
    })
    .await;
    running.stop().await.expect("a clean stop");
    // The stored position becomes one this source cannot resume from (a CDC replay id:
    // the entry was switched from cdc to poll), and the record changes meanwhile.
    pg.execute(
        "UPDATE pgforce.inbound_positions SET replay_id = '\\x0102', poll_modstamp = NULL, poll_id = NULL",
        &[],
    )
    .await
    .unwrap();
    env.update("Contact", &id, json!({"Email": "b@example.com"}))
        .await;
    let running = env.run();
    wait_until("the resync re-read the change", DEADLINE, || async {
        (email(id.clone()).await.as_deref() == Some("b@example.com"))
            .then_some(())
            .ok_or("not yet".to_string())
    })
    .await;
    let resyncs: u64 = running
        .health
        .snapshot()
        .iter()
        .flat_map(|s| s.inbound.clone().unwrap_or_default())
        .map(|e| e.resyncs)
        .sum();
    assert_eq!(resyncs, 1);
    running.stop().await.expect("a clean stop");
}
