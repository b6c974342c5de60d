//! Every write path publishes change events with the header Salesforce fills: REST upsert,
//! sObject Collections (one transaction per call, rolled-back calls publish nothing),
//! Composite, Bulk API 2.0 ingest (insert, update, upsert, delete, hardDelete) and
//! undelete; long text updates arrive as diffs.

mod pubsub_support;

use pgforce_emulator::pubsub::proto::ReplayPreset;
use pubsub_support::{Event, PubSubEnv, Sub, V};
use reqwest::Method;
use serde_json::{json, Value};

const ACCOUNT: &str = "/data/AccountChangeEvent";

async fn earliest(env: &PubSubEnv) -> Sub {
    env.subscribe(ACCOUNT, ReplayPreset::Earliest, Vec::new(), 100)
        .await
        .unwrap()
}

/// Events published after `after` replay number, on a fresh EARLIEST stream.
async fn events(env: &PubSubEnv, n: usize) -> Vec<Event> {
    let mut sub = earliest(env).await;
    env.events(&mut sub, n).await
}

fn key(e: &Event) -> &str {
    e.header["transactionKey"].as_str().unwrap()
}

#[tokio::test]
async fn rest_upsert_publishes_create_then_update() {
    let env = PubSubEnv::start().await;
    let path = "/sobjects/Account/External_Id__c/X-1";
    assert_eq!(env.emu.patch(path, &json!({"Name": "U"})).await.status, 201);
    assert_eq!(
        env.emu.patch(path, &json!({"Name": "U2"})).await.status,
        200
    );
    let got = events(&env, 2).await;
    assert_eq!(got[0].change_type(), "CREATE");
    assert_eq!(got[0].body["External_Id__c"], "X-1");
    assert_eq!(got[1].change_type(), "UPDATE");
    assert_eq!(got[1].body["Name"], "U2");
    assert!(got[1].changed.contains(&"Name".to_string()));
}

#[tokio::test]
async fn collections_call_is_one_transaction_and_rollback_publishes_nothing() {
    let env = PubSubEnv::start().await;
    let r = env
        .emu
        .post(
            "/composite/sobjects",
            &json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "Name": "C1"},
                {"attributes": {"type": "Account"}, "Name": "C2"},
                {"attributes": {"type": "Account"}, "Name": "C3"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let failed = env
        .emu
        .post(
            "/composite/sobjects",
            &json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Account"}, "Name": "R1"},
                {"attributes": {"type": "Account"}}]}),
        )
        .await;
    assert_eq!(failed.json()[0]["success"], false, "{}", failed.text);
    let after = env.emu.insert("Account", json!({"Name": "After"})).await;
    let got = events(&env, 4).await;
    assert_eq!(key(&got[0]), key(&got[1]));
    assert_eq!(key(&got[1]), key(&got[2]));
    let seq: Vec<i64> = got[..3]
        .iter()
        .map(|e| e.header["sequenceNumber"].as_i64().unwrap())
        .collect();
    assert_eq!(seq, vec![1, 2, 3]);
    assert_eq!(got[2].body["Name"], "C3");
    assert_eq!(
        got[3].record_id(),
        after,
        "the rolled-back create published nothing"
    );
    assert_ne!(key(&got[3]), key(&got[0]));

    let ids: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    let upd = env
        .emu
        .patch(
            "/composite/sobjects",
            &json!({"records": [
                {"attributes": {"type": "Account"}, "id": ids[0], "Phone": "1"},
                {"attributes": {"type": "Account"}, "id": ids[1], "Phone": "2"}]}),
        )
        .await;
    assert_eq!(upd.status, 200, "{}", upd.text);
    let del = env
        .emu
        .delete(&format!("/composite/sobjects?ids={},{}", ids[0], ids[2]))
        .await;
    assert_eq!(del.status, 200, "{}", del.text);
    let got = events(&env, 8).await;
    assert_eq!(got[4].change_type(), "UPDATE");
    assert_eq!(key(&got[4]), key(&got[5]));
    assert_eq!(got[6].change_type(), "DELETE");
    assert_eq!(got[7].record_id(), ids[2]);
    assert_eq!(key(&got[6]), key(&got[7]));
}

#[tokio::test]
async fn composite_subrequests_share_one_transaction() {
    let env = PubSubEnv::start().await;
    let r = env
        .emu
        .post(
            "/composite",
            &json!({"allOrNone": true, "compositeRequest": [
                {"method": "POST", "url": format!("/services/data/{V}/sobjects/Account"), "referenceId": "a", "body": {"Name": "Acme"}},
                {"method": "POST", "url": format!("/services/data/{V}/sobjects/Contact"), "referenceId": "c",
                 "body": {"LastName": "S", "AccountId": "@{a.id}"}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut sub = env
        .subscribe("/data/ChangeEvents", ReplayPreset::Earliest, Vec::new(), 10)
        .await
        .unwrap();
    let got = env.events(&mut sub, 2).await;
    assert_eq!(got[0].header["entityName"], "Account");
    assert_eq!(got[1].header["entityName"], "Contact");
    assert_eq!(key(&got[0]), key(&got[1]));
    assert_eq!(got[1].header["sequenceNumber"], 2);

    let halted = env
        .emu
        .post(
            "/composite",
            &json!({"allOrNone": true, "compositeRequest": [
                {"method": "POST", "url": format!("/services/data/{V}/sobjects/Account"), "referenceId": "a", "body": {"Name": "Gone"}},
                {"method": "POST", "url": format!("/services/data/{V}/sobjects/Contact"), "referenceId": "c", "body": {}}]}),
        )
        .await;
    assert_eq!(halted.status, 200);
    let marker = env.emu.insert("Account", json!({"Name": "Marker"})).await;
    let got = env.events(&mut sub, 1).await;
    assert_eq!(
        got[0].record_id(),
        marker,
        "a rolled-back composite publishes nothing"
    );
}

/// Runs a Bulk ingest job to completion.
async fn bulk(env: &PubSubEnv, body: Value, csv: &str) -> Value {
    let emu = &env.emu;
    let job = emu.post("/jobs/ingest", &body).await.json();
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(
        emu.put_csv(&format!("/jobs/ingest/{id}/batches"), csv)
            .await
            .status,
        201
    );
    let close = emu
        .patch(
            &format!("/jobs/ingest/{id}"),
            &json!({"state": "UploadComplete"}),
        )
        .await;
    assert_eq!(close.status, 200, "{}", close.text);
    emu.wait_job("ingest", &id).await.1
}

#[tokio::test]
async fn bulk_ingest_operations_publish_with_the_bulk_origin() {
    let env = PubSubEnv::start().await;
    let info = bulk(
        &env,
        json!({"object": "Account", "operation": "insert"}),
        "Name,External_Id__c\nB1,E1\nB2,E2\n",
    )
    .await;
    assert_eq!(info["numberRecordsProcessed"], 2, "{info}");
    let got = events(&env, 2).await;
    assert_eq!(got[0].change_type(), "CREATE");
    assert_eq!(
        got[0].header["changeOrigin"],
        "com/salesforce/api/bulkapi/60.0;client="
    );
    assert_eq!(key(&got[0]), key(&got[1]), "one chunk is one transaction");
    let (a, b) = (
        got[0].record_id().to_string(),
        got[1].record_id().to_string(),
    );

    let info = bulk(
        &env,
        json!({"object": "Account", "operation": "update"}),
        &format!("Id,Phone\n{a},111\n"),
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 0, "{info}");
    let info = bulk(
        &env,
        json!({"object": "Account", "operation": "upsert", "externalIdFieldName": "External_Id__c"}),
        "External_Id__c,Name,Phone\nE2,B2,222\nE3,B3,333\n",
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 0, "{info}");
    let info = bulk(
        &env,
        json!({"object": "Account", "operation": "delete"}),
        &format!("Id\n{a}\n"),
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 0, "{info}");
    let info = bulk(
        &env,
        json!({"object": "Account", "operation": "hardDelete"}),
        &format!("Id\n{b}\n"),
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 0, "{info}");
    let got = events(&env, 7).await;
    let kinds: Vec<(&str, &str)> = got[2..]
        .iter()
        .map(|e| (e.change_type(), e.record_id()))
        .collect();
    assert_eq!(kinds[0], ("UPDATE", a.as_str()));
    assert_eq!(got[2].body["Phone"], "111");
    assert_eq!(kinds[1], ("UPDATE", b.as_str()));
    assert_eq!(kinds[2].0, "CREATE");
    assert_eq!(got[4].body["External_Id__c"], "E3");
    assert_eq!(kinds[3], ("DELETE", a.as_str()));
    assert_eq!(kinds[4], ("DELETE", b.as_str()));
}

#[tokio::test]
async fn undelete_publishes_undelete_with_every_field() {
    let env = PubSubEnv::start().await;
    let id = env.emu.insert("Account", json!({"Name": "Back"})).await;
    assert_eq!(
        env.emu
            .delete(&format!("/sobjects/Account/{id}"))
            .await
            .status,
        204
    );
    let (status, body) = env
        .admin(Method::POST, &format!("/__emulator/undelete/{id}"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    let got = events(&env, 3).await;
    assert_eq!(got[2].change_type(), "UNDELETE");
    assert_eq!(got[2].body["Name"], "Back");
    assert_eq!(
        got[2].header["changeOrigin"],
        "com/salesforce/api/soap/60.0;client="
    );
}

#[tokio::test]
async fn long_text_updates_arrive_as_diffs() {
    let env = PubSubEnv::start().await;
    let old: String = (0..60)
        .map(|i| format!("line {i} of the description\n"))
        .collect();
    let new = old.replace("line 30 of", "LINE 30 OF");
    assert!(new.len() > 1000);
    let id = env
        .emu
        .insert("Account", json!({"Name": "Long", "Description": old}))
        .await;
    let r = env
        .emu
        .patch(
            &format!("/sobjects/Account/{id}"),
            &json!({"Description": new}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let got = events(&env, 2).await;
    assert_eq!(
        got[0].body["Description"],
        old.as_str(),
        "a create sends the full text"
    );
    let diff = got[1].body["Description"].as_str().unwrap();
    assert!(diff.starts_with("--- \n+++ "), "{diff}");
    assert!(diff.contains("-line 30 of the description\n+LINE 30 OF the description\n"));
    assert_eq!(got[1].diffed, vec!["Description"]);
    assert!(got[1].changed.contains(&"Description".to_string()));
}
