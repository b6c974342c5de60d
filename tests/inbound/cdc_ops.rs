//! What an operator sees of a CDC entry, through the ops server over HTTP: the
//! `pgforce_inbound_*` metrics count CDC events received and applied per object and
//! change type, the lag and the replay position's age, gap and overflow events and the
//! resyncs they cause; `/readyz` is ready
//! while the subscription streams, not ready while its stream is dropped and cannot be
//! re-established, and ready again once it delivers.

use serde_json::json;

use crate::support::inbound::{col, http_get, metric, ops_server, wait_row, Env};
use crate::support::wait::{wait_until, DEADLINE};

const ENTRY: &str = r#"
[[pipelines.inbound]]
object = "Opportunity"
table = "sf.opportunities"
source = "cdc"
fields = { Name = "name", StageName = "stage" }
"#;

const ROW: &str = "SELECT name, stage FROM sf.opportunities WHERE id = $1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_metrics_and_readiness_over_http() {
    let env = Env::start("incdcops", ENTRY).await;
    env.create_tables().await;
    let pg = env.client().await;
    let running = env.run();
    let (server, base) = ops_server(running.health.clone()).await;
    wait_until("/readyz is 200", DEADLINE, || async {
        let (code, body) = http_get(&base, "/readyz").await;
        (code == 200).then_some(()).ok_or(format!("{code} {body}"))
    })
    .await;

    let id = env
        .create(
            "Opportunity",
            json!({"Name": "M", "StageName": "Prospecting", "CloseDate": "2025-01-01"}),
        )
        .await;
    env.update("Opportunity", &id, json!({"StageName": "Qualification"}))
        .await;
    env.fault(json!({"kind": "cdc_gap", "pathPrefix": "/data/Opportunity", "times": 1}))
        .await;
    env.update("Opportunity", &id, json!({"StageName": "Closed Won"}))
        .await;
    wait_row(&pg, ROW, &id, "the gap re-read", |r| {
        col(r, "stage") == Some("Closed Won")
    })
    .await;
    // An overflow: three changes in one transaction, one published in full.
    env.admin(
        reqwest::Method::PUT,
        "/__emulator/cdc/overflow",
        Some(json!({"threshold": 1})),
    )
    .await;
    let ids = env
        .upsert_collection(
            "Opportunity",
            (0..3)
                .map(|i| json!({"External_Id__c": format!("m-{i}"), "Name": format!("M {i}"), "StageName": "Prospecting", "CloseDate": "2025-01-01"}))
                .collect(),
        )
        .await;
    wait_row(&pg, ROW, &ids[2], "the overflow re-read", |r| {
        col(r, "name") == Some("M 2")
    })
    .await;

    let labels = |t: &'static str| {
        [
            ("pipeline", "incdcops"),
            ("object", "Opportunity"),
            ("change_type", t),
        ]
    };
    wait_until("the CDC metrics", DEADLINE, || async {
        let (_, text) = http_get(&base, "/metrics").await;
        let m = |name: &str, l: &[(&str, &str)]| metric(&text, name, l).unwrap_or(0.0);
        let entry = [("pipeline", "incdcops"), ("object", "Opportunity")];
        let want = [
            (
                "received CREATE",
                m("pgforce_inbound_events_received_total", &labels("CREATE")),
            ),
            (
                "received UPDATE",
                m("pgforce_inbound_events_received_total", &labels("UPDATE")),
            ),
            (
                "received GAP_UPDATE",
                m(
                    "pgforce_inbound_events_received_total",
                    &labels("GAP_UPDATE"),
                ),
            ),
            (
                "applied CREATE",
                m("pgforce_inbound_events_applied_total", &labels("CREATE")),
            ),
            (
                "applied UPDATE",
                m("pgforce_inbound_events_applied_total", &labels("UPDATE")),
            ),
            ("gaps", m("pgforce_inbound_gaps_total", &entry)),
            ("overflows", m("pgforce_inbound_overflows_total", &entry)),
            (
                "overflow resyncs",
                m(
                    "pgforce_inbound_resyncs_total",
                    &[("pipeline", "incdcops"), ("reason", "overflow")],
                ),
            ),
            (
                "lag observations",
                m("pgforce_inbound_lag_seconds_count", &entry),
            ),
        ];
        let missing: Vec<&str> = want
            .iter()
            .filter(|(_, v)| *v < 1.0)
            .map(|(n, _)| *n)
            .collect();
        let age = metric(&text, "pgforce_inbound_position_age_seconds", &entry);
        (missing.is_empty() && age.is_some())
            .then_some(())
            .ok_or(format!("missing {missing:?}, position age {age:?}"))
    })
    .await;

    // Every subscription is dropped before it delivers: the entry is not ready.
    env.fault(json!({"kind": "pubsub_drop_stream", "afterEvents": 0,
                     "pathPrefix": "/data/OpportunityChangeEvent"}))
        .await;
    env.update("Opportunity", &id, json!({"Name": "While down"}))
        .await;
    wait_until("/readyz is 503", DEADLINE, || async {
        let (code, body) = http_get(&base, "/readyz").await;
        (code == 503 && body.contains("inbound"))
            .then_some(())
            .ok_or(format!("{code} {body}"))
    })
    .await;
    env.admin(reqwest::Method::DELETE, "/__emulator/faults", None)
        .await;
    wait_row(&pg, ROW, &id, "the change made while down", |r| {
        col(r, "name") == Some("While down")
    })
    .await;
    wait_until("/readyz is 200 again", DEADLINE, || async {
        let (code, body) = http_get(&base, "/readyz").await;
        (code == 200).then_some(()).ok_or(format!("{code} {body}"))
    })
    .await;
    running.stop().await.expect("a clean stop");
    server.shutdown().await.expect("the ops server stops");
}
