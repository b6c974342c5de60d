//! Change Data Capture and Pub/Sub fault injection: gap events instead of full events,
//! GAP_OVERFLOW for a large transaction, a stream dropped after N events (and resumed by
//! replay id), slow delivery, and faults installed through the admin API.

mod pubsub_support;

use pgforce_emulator::pubsub::proto::ReplayPreset;
use pgforce_emulator::{FaultKind, FaultSpec};
use pubsub_support::PubSubEnv;
use reqwest::Method;
use serde_json::json;
use tonic::Code;

const ACCOUNT: &str = "/data/AccountChangeEvent";

#[tokio::test]
async fn gap_fault_replaces_the_next_changes_with_gap_events() {
    let env = PubSubEnv::start().await;
    let (status, body) = env
        .admin(
            Method::POST,
            "/__emulator/faults",
            Some(json!({"kind": "cdc_gap", "pathPrefix": "/data/Account", "times": 2})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = env.emu.insert("Account", json!({"Name": "G"})).await;
    let contact = env
        .emu
        .insert("Contact", json!({"LastName": "NoGap"}))
        .await;
    env.emu
        .patch(&format!("/sobjects/Account/{id}"), &json!({"Phone": "1"}))
        .await;
    env.emu
        .patch(&format!("/sobjects/Account/{id}"), &json!({"Phone": "2"}))
        .await;
    let mut sub = env
        .subscribe("/data/ChangeEvents", ReplayPreset::Earliest, Vec::new(), 10)
        .await
        .unwrap();
    let got = env.events(&mut sub, 4).await;
    assert_eq!(got[0].change_type(), "GAP_CREATE");
    assert_eq!(got[0].record_id(), id);
    assert!(
        got[0].non_null().is_empty(),
        "gap events carry the header only"
    );
    assert_eq!(got[1].record_id(), contact);
    assert_eq!(
        got[1].change_type(),
        "CREATE",
        "the fault matches Account only"
    );
    assert_eq!(got[2].change_type(), "GAP_UPDATE");
    assert_eq!(
        got[3].change_type(),
        "UPDATE",
        "only `times` changes become gaps"
    );
    assert_eq!(got[3].body["Phone"], "2");
}

#[tokio::test]
async fn a_large_transaction_overflows() {
    let env = PubSubEnv::start().await;
    let (status, _) = env
        .admin(
            Method::PUT,
            "/__emulator/cdc/overflow",
            Some(json!({"threshold": 2})),
        )
        .await;
    assert_eq!(status, 204);
    let records: Vec<_> = (0..5)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("O{i}")}))
        .chain([json!({"attributes": {"type": "Contact"}, "LastName": "O"})])
        .collect();
    let r = env
        .emu
        .post("/composite/sobjects", &json!({"records": records}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut sub = env
        .subscribe("/data/ChangeEvents", ReplayPreset::Earliest, Vec::new(), 10)
        .await
        .unwrap();
    let got = env.events(&mut sub, 4).await;
    let kinds: Vec<(&str, &str)> = got
        .iter()
        .map(|e| (e.change_type(), e.header["entityName"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("CREATE", "Account"),
            ("CREATE", "Account"),
            ("GAP_OVERFLOW", "Account"),
            ("GAP_OVERFLOW", "Contact"),
        ]
    );
    let tx = &got[0].header["transactionKey"];
    assert!(got.iter().all(|e| &e.header["transactionKey"] == tx));
    assert!(got[2].non_null().is_empty());
}

#[tokio::test]
async fn a_dropped_stream_resumes_by_replay_id() {
    let env = PubSubEnv::start().await;
    env.emu
        .handle
        .add_fault(FaultSpec::always(FaultKind::PubsubDropStream { after_events: 2 }).times(1));
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            env.emu
                .insert("Account", json!({"Name": format!("D{i}")}))
                .await,
        );
    }
    let mut sub = env
        .subscribe(ACCOUNT, ReplayPreset::Earliest, Vec::new(), 10)
        .await
        .unwrap();
    let first = env.events(&mut sub, 2).await;
    let e = sub.next().await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    let last = first[1].replay_id.clone();
    let mut again = env
        .subscribe(ACCOUNT, ReplayPreset::Custom, last, 10)
        .await
        .unwrap();
    let rest = env.events(&mut again, 2).await;
    let all: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|e| e.record_id().to_string())
        .collect();
    assert_eq!(all, ids, "nothing lost, nothing twice");
}

#[tokio::test]
async fn slow_delivery_still_delivers_in_order() {
    let env = PubSubEnv::start().await;
    env.emu
        .handle
        .add_fault(FaultSpec::always(FaultKind::PubsubSlow { ms: 20 }));
    let a = env.emu.insert("Account", json!({"Name": "S1"})).await;
    let mut sub = env
        .subscribe(ACCOUNT, ReplayPreset::Earliest, Vec::new(), 10)
        .await
        .unwrap();
    let got = env.events(&mut sub, 1).await;
    assert_eq!(got[0].record_id(), a);
    let (_, listed) = env.admin(Method::GET, "/__emulator/faults", None).await;
    assert!(listed[0]["fired"].as_u64().unwrap() >= 1, "{listed}");
}
