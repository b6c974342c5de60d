//! What the engine does with the events a CDC subscription delivers, against the real
//! emulator and Postgres: a gap event re-reads the named record, an overflow re-reads the
//! object's window by SystemModstamp, a diff field is re-read by Id, a relationship field
//! is read with the record. The events come from a scripted `ChangeSource` standing in
//! for the Pub/Sub subscriber (built on another branch); every re-read goes to the
//! emulator over HTTP. Also: the initial load through Bulk 2.0 query.

use std::time::Duration;

use chrono::Utc;
use pgforce::inbound::event::{ChangeKind, GapKind, InboundEvent, Position, SourceBatch, Start};
use pgforce::inbound::source::{ChangeSource, SourceError};
use pgforce::inbound::Runtime;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_postgres::Client;

use crate::support::inbound::Env;
use crate::support::wait::{wait_until, DEADLINE};

/// Delivers what the test sends; an empty batch when nothing was sent for a while.
struct Scripted {
    rx: mpsc::Receiver<InboundEvent>,
    position: Position,
}

impl ChangeSource for Scripted {
    async fn tip(&mut self) -> Result<Position, SourceError> {
        Ok(self.position.clone())
    }

    async fn start(&mut self, _start: Start) -> Result<(), SourceError> {
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<SourceBatch, SourceError> {
        match tokio::time::timeout(Duration::from_millis(200), self.rx.recv()).await {
            Ok(Some(e)) => {
                self.position = e.position.clone();
                Ok(SourceBatch {
                    events: vec![e],
                    position: Some(self.position.clone()),
                })
            }
            _ => Ok(SourceBatch {
                events: vec![],
                position: Some(self.position.clone()),
            }),
        }
    }
}

fn event(kind: ChangeKind, ids: &[&str], replay: u8) -> InboundEvent {
    InboundEvent {
        object: "Opportunity".into(),
        record_ids: ids.iter().map(|s| s.to_string()).collect(),
        kind,
        commit_timestamp: Utc::now(),
        commit_user: "005000000000001AAA".into(),
        change_origin: "com/salesforce/api/rest/62.0".into(),
        transaction_key: "t".into(),
        sequence_number: 1,
        values: Default::default(),
        changed_fields: vec![],
        nulled_fields: vec![],
        diff_fields: vec![],
        position: Position::Replay(vec![0, 0, 0, 0, 0, 0, 0, replay]),
    }
}

const OPPS: &str = r#"
[[pipelines.inbound]]
object = "Opportunity"
table = "sf.opps"
source = "cdc"
initial_load = "none"

[pipelines.inbound.fields]
Name = "name"
Description = "description"
AccountId = "account_id"
"Account.Name" = "account_name"
"#;

async fn opp(pg: &Client, id: &str) -> Option<(String, Option<String>, Option<String>)> {
    pg.query_opt(
        "SELECT name, description, account_name FROM sf.opps WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_overflows_and_diffs_are_re_read() {
    let env = Env::start("inresolve", OPPS).await;
    env.create_tables().await;
    let pg = env.client().await;
    let rt = Runtime::connect(env.pipeline.clone(), env.sf.clone(), Default::default())
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(8);
    let source = Scripted {
        rx,
        position: Position::Replay(vec![0; 8]),
    };
    let (stop, stop_rx) = watch::channel(false);
    let entry = rt.entry(0, source).await.unwrap();
    let task = tokio::spawn(entry.run(stop_rx));

    let account = env.create("Account", json!({"Name": "Acme"})).await;
    let a = env
        .create(
            "Opportunity",
            json!({"Name": "A", "StageName": "Prospecting", "CloseDate": "2025-01-01", "AccountId": account}),
        )
        .await;
    // A gap event carries no values: the record is re-read, its parent's name with it.
    tx.send(event(ChangeKind::Gap(GapKind::Create), &[&a], 1))
        .await
        .unwrap();
    wait_until("the gap's record re-read", DEADLINE, || async {
        match opp(&pg, &a).await {
            Some((n, _, Some(acc))) if n == "A" && acc == "Acme" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // An overflow: every record changed in the recent window is re-read.
    let b = env
        .create(
            "Opportunity",
            json!({"Name": "B", "StageName": "Prospecting", "CloseDate": "2025-01-01"}),
        )
        .await;
    env.update("Opportunity", &a, json!({"Name": "A2"})).await;
    tx.send(event(ChangeKind::GapOverflow, &["006*"], 2))
        .await
        .unwrap();
    wait_until("the overflow window re-read", DEADLINE, || async {
        match (opp(&pg, &a).await, opp(&pg, &b).await) {
            (Some((an, ..)), Some((bn, ..))) if an == "A2" && bn == "B" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // A long text sent as a diff is re-read by Id; the event's other values apply.
    let long = "x".repeat(5000);
    env.update("Opportunity", &a, json!({"Description": long}))
        .await;
    let mut diff = event(ChangeKind::Update, &[&a], 3);
    diff.values
        .insert("Description".into(), json!("--- \n+++ abc\n@@ -0,0 +1 @@"));
    diff.values.insert("Name".into(), json!("A3"));
    diff.diff_fields = vec!["Description".into()];
    tx.send(diff).await.unwrap();
    wait_until("the diff field re-read", DEADLINE, || async {
        match opp(&pg, &a).await {
            Some((n, Some(d), _)) if n == "A3" && d.len() == 5000 => Ok(()),
            other => Err(format!(
                "{:?}",
                other.map(|(n, d, _)| (n, d.map(|d| d.len())))
            )),
        }
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap().unwrap();
    let stored: Vec<u8> = pg
        .query_one("SELECT replay_id FROM pgforce.inbound_positions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored,
        vec![0, 0, 0, 0, 0, 0, 0, 3],
        "the last applied replay id is stored"
    );
}

const BULK: &str = r#"
[[pipelines.inbound]]
object = "Lead"
table = "sf.leads"
source = "poll"
initial_load = "bulk"
poll_interval_secs = 1

[pipelines.inbound.fields]
LastName = "last_name"
Company = "company"
AnnualRevenue = "revenue"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_initial_load_goes_through_bulk_query() {
    let env = Env::start("inbulk", BULK).await;
    env.create_tables().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            env.create(
                "Lead",
                json!({"LastName": format!("L{i}"), "Company": "Acme", "AnnualRevenue": 1000 + i}),
            )
            .await,
        );
    }
    let pg = env.client().await;
    let running = env.run();
    wait_until("the bulk load", DEADLINE, || async {
        let n: i64 = pg
            .query_one("SELECT count(*) FROM sf.leads WHERE revenue >= 1000", &[])
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        (n == 5).then_some(()).ok_or(format!("{n} of 5 leads"))
    })
    .await;
    let phase: String = pg
        .query_one("SELECT phase FROM pgforce.inbound_positions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(phase, "streaming");
    running.stop().await.expect("a clean stop");
}
