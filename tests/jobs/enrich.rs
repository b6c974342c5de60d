//! The `enrich` target: a Lead created over REST is enriched from Postgres once, even when
//! the trigger fires twice (in a row or at the same time); a Lead with no match gets the
//! configured marker.

use serde_json::{json, Map, Value};

use super::*;
use crate::support::pipeline::{wait_until, Harness, DEADLINE};

const SCHEMA: &str = "
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, plan text NOT NULL,
    created_at timestamptz NOT NULL, tickets int NOT NULL);
INSERT INTO users VALUES (1, 'ada@example.com', 'pro', '2024-03-01T10:00:00Z', 3);
";

const JOB: &str = r#"name = "enrich"
trigger = { type = "lead_created", poll_seconds = 5 }
query = "SELECT created_at::date AS signup, plan, tickets FROM users WHERE lower(email) = lower($1)"
target = { type = "enrich", params = ["Email"], fields = { signup = "Signup_Date__c", plan = "Plan_Tier__c", tickets = "Prior_Support_Tickets__c" }, no_match = { field = "Enrichment_Status__c", value = "no match" } }
"#;

/// `PATCH` requests to sObject Collections so far (the Lead updates).
fn lead_updates(h: &Harness) -> u64 {
    h.emulator.state().stats.json()["byMethod"]["PATCH collections"]
        .as_u64()
        .unwrap_or(0)
}

fn lead(h: &Harness, id: &str) -> Map<String, Value> {
    let id = pgforce_emulator::ids::Id::parse(id).unwrap();
    (*h.emulator.state().store.get(&id).expect("the Lead exists")).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_lead_is_enriched_once_even_when_the_trigger_fires_twice() {
    let h = Harness::start(SCHEMA).await;
    let r = runner(&config(&h, JOB)).await;
    let body = |email: &str| {
        json!({"LastName": "Lovelace", "Company": "Engines", "Email": email})
            .as_object()
            .cloned()
            .unwrap()
    };
    let ada = r
        .salesforce()
        .create_record("Lead", &body("Ada@Example.com"))
        .await
        .unwrap();
    let nobody = r
        .salesforce()
        .create_record("Lead", &body("nobody@example.com"))
        .await
        .unwrap();

    let opts = pgforce::jobs::JobRunOptions::default();
    let (a, b) = tokio::join!(r.run("enrich", opts), r.run("enrich", opts));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.sent + b.sent,
        2,
        "each Lead once:\n{}\n{}",
        a.render(),
        b.render()
    );
    assert_eq!(lead_updates(&h), 1, "one Collections call for both Leads");
    let rec = lead(&h, &ada);
    assert_eq!(rec["Signup_Date__c"], "2024-03-01");
    assert_eq!(rec["Plan_Tier__c"], "pro");
    assert_eq!(rec["Prior_Support_Tickets__c"].to_string(), "3");
    assert_eq!(lead(&h, &nobody)["Enrichment_Status__c"], "no match");

    // Fires again: nothing new, nothing sent.
    let again = run(&r, "enrich").await;
    assert_eq!(
        (again.sent, again.count("already_enriched")),
        (0, 2),
        "{}",
        again.render()
    );
    assert_eq!(lead_updates(&h), 1);
    let n: i64 =
        h.pg.query_one("SELECT count(*) FROM pgforce.job_enriched", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(n, 2);
}

/// With `events = "cdc"` a Lead change event wakes the job: a Lead created over REST after
/// the first run is enriched although the next poll is an hour away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_change_events_wake_the_enrichment_before_the_poll() {
    let h = Harness::start(SCHEMA).await;
    let job = JOB.replace(
        "poll_seconds = 5 }",
        "poll_seconds = 3600, events = \"cdc\" }",
    );
    let mut cfg = config(&h, &job);
    cfg.salesforce.pubsub_endpoint = format!("http://{}", h.emulator.pubsub_addr());
    let r = runner(&cfg).await;
    let health = pgforce::server::Health::new();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(pgforce::jobs::run_scheduled(
        cfg.clone(),
        health.clone(),
        shutdown,
    ));
    let first_run_done = || {
        let report = serde_json::to_value(health.report()).unwrap();
        async move {
            let last = &report["pipelines"][0]["jobs"][0]["last_result"];
            if last == "done" {
                Ok(())
            } else {
                Err(format!("{report}"))
            }
        }
    };
    wait_until("the first run", DEADLINE, first_run_done).await;

    let body = json!({"LastName": "Lovelace", "Company": "Engines", "Email": "ada@example.com"});
    let ada = r
        .salesforce()
        .create_record("Lead", body.as_object().unwrap())
        .await
        .unwrap();
    wait_until("the new Lead is enriched", DEADLINE, || {
        let rec = lead(&h, &ada);
        async move {
            if rec.get("Plan_Tier__c").and_then(|v| v.as_str()) == Some("pro") {
                Ok(())
            } else {
                Err(format!("{rec:?}"))
            }
        }
    })
    .await;
    let _ = stop.send(true);
    tokio::time::timeout(std::time::Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
