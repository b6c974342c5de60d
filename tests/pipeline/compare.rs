//! The Postgres ⇄ Salesforce comparison itself (`support::compare`), without a pipeline:
//! records written by hand through the emulator's REST API. It must name every kind of
//! difference, or every end-to-end test that waits for it would pass on a broken pipeline.
//! (Two live records for one key cannot be made: the emulator keeps external ids unique.)

use serde_json::{json, Value};

use crate::support::pipeline::*;

/// Create a record through REST; returns its Id.
async fn create(h: &Harness, object: &str, body: Value) -> String {
    let token = h.emulator.issue_default_token().expect("token");
    let url = format!(
        "{}/services/data/v62.0/sobjects/{object}",
        h.emulator.base_url()
    );
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status.is_success(), "create {object}: {status} {body}");
    body["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_comparison_names_lost_extra_stale_and_twice_created_records() {
    let h = Harness::start(SCHEMA).await;
    let tables = [
        Table::new("accounts", "Account", ACCOUNT_FIELDS),
        Table::new("contacts", "Contact", CONTACT_FIELDS),
    ];
    h.sql(
        "INSERT INTO accounts (id, name, employees, revenue) VALUES (1, 'Acme', 7, 10.50), (2, 'Lost', NULL, NULL);
         INSERT INTO contacts (id, account_id, last_name) VALUES (10, 1, 'Right'), (11, 1, 'Wrong parent');",
    )
    .await;
    create(&h, "Account", json!({"Name": "Acme", "External_Id__c": "1", "NumberOfEmployees": 7, "AnnualRevenue": 10.5})).await;
    let other = create(
        &h,
        "Account",
        json!({"Name": "Extra", "External_Id__c": "3"}),
    )
    .await;
    let right = create(
        &h,
        "Contact",
        json!({"LastName": "Right", "External_Id__c": "10", "Account": {"External_Id__c": "1"}}),
    )
    .await;
    create(
        &h,
        "Contact",
        json!({"LastName": "Wrong parent", "External_Id__c": "11", "AccountId": other}),
    )
    .await;

    let diff = compare(&h.pg, &h.emulator, &tables).await;
    assert_eq!(diff.lost, ["Account 2"], "{}", diff.summary());
    assert_eq!(diff.extra, ["Account 3"], "{}", diff.summary());
    assert_eq!(diff.stale.len(), 1, "{}", diff.summary());
    assert!(
        diff.stale[0].starts_with("Contact 11.AccountId"),
        "{}",
        diff.summary()
    );
    assert!(diff.duplicated.is_empty() && diff.created_twice.is_empty());
    assert!(h.in_sync(&tables).await.is_err());

    // A field that differs, and a key deleted and created again by hand in Salesforce.
    h.sql("DELETE FROM accounts WHERE id = 2; INSERT INTO accounts (id, name) VALUES (3, 'Extra');
           UPDATE contacts SET account_id = 3 WHERE id = 11; UPDATE accounts SET employees = 8 WHERE id = 1")
        .await;
    let token = h.emulator.issue_default_token().expect("token");
    let url = format!(
        "{}/services/data/v62.0/sobjects/Contact/{right}",
        h.emulator.base_url()
    );
    let r = reqwest::Client::new()
        .delete(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "delete: {}", r.status());
    create(
        &h,
        "Contact",
        json!({"LastName": "Right", "External_Id__c": "10", "Account": {"External_Id__c": "1"}}),
    )
    .await;
    let tables = [
        tables[0],
        tables[1].incarnations("SELECT id::text, 1 FROM contacts"),
    ];
    let diff = compare(&h.pg, &h.emulator, &tables).await;
    assert!(
        diff.lost.is_empty() && diff.extra.is_empty(),
        "{}",
        diff.summary()
    );
    assert_eq!(
        diff.created_twice,
        ["Contact 10: 2 records, inserted 1x"],
        "{}",
        diff.summary()
    );
    assert_eq!(diff.stale.len(), 1, "{}", diff.summary());
    assert!(
        diff.stale[0].starts_with("Account 1.NumberOfEmployees"),
        "{}",
        diff.summary()
    );
}
