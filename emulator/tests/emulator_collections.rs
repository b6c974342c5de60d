//! sObject Collections and Composite against an in-process emulator.

mod emulator_support;

use emulator_support::Emu;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn acc(name: &str) -> Value {
    json!({"attributes": {"type": "Account"}, "Name": name})
}

#[tokio::test]
async fn create_mixed_types_with_per_record_errors() {
    let emu = Emu::start().await;
    let body = json!({"allOrNone": false, "records": [
        acc("A"),
        {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
        {"attributes": {"type": "Contact"}, "LastName": "Smith"},
    ]});
    let r = emu.post("/composite/sobjects", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let res = r.json();
    assert_eq!(res[0]["success"], true);
    assert!(res[0]["id"].as_str().unwrap().starts_with("001"));
    assert_eq!(res[1]["success"], false);
    assert_eq!(res[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(res[1]["errors"][0]["fields"], json!(["LastName"]));
    assert!(res[1]["errors"][0].get("errorCode").is_none());
    assert!(res[2]["id"].as_str().unwrap().starts_with("003"));
}

#[tokio::test]
async fn more_than_200_records_is_rejected() {
    let emu = Emu::start().await;
    let records: Vec<Value> = (0..201).map(|i| acc(&format!("x{i}"))).collect();
    let r = emu
        .post("/composite/sobjects", &json!({"records": records}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()[0]["errorCode"], "EXCEEDED_ID_LIMIT");
    let ids = vec!["001000000000001AAA"; 201].join(",");
    let d = emu.delete(&format!("/composite/sobjects?ids={ids}")).await;
    assert_eq!(d.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn all_or_none_rolls_back_everything() {
    let emu = Emu::start().await;
    let existing = emu.insert("Account", json!({"Name": "Keep"})).await;
    let body = json!({"allOrNone": true, "records": [
        acc("New one"),
        {"attributes": {"type": "Contact"}, "FirstName": "bad"},
    ]});
    let res = emu.post("/composite/sobjects", &body).await.json();
    assert_eq!(res[0]["success"], false);
    assert_eq!(
        res[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(res[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    let q = emu
        .get("/query?q=SELECT+Id+FROM+Account+WHERE+Name+%3D+%27New+one%27")
        .await
        .json();
    assert_eq!(q["totalSize"], 0, "insert rolled back");

    let upd = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Account"}, "id": existing, "Name": "Changed"},
        {"attributes": {"type": "Account"}, "id": existing, "Name": ""},
    ]});
    let res = emu.patch("/composite/sobjects", &upd).await.json();
    assert_eq!(res[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(emu.read("Account", &existing).await.json()["Name"], "Keep");

    let del = emu
        .delete(&format!(
            "/composite/sobjects?ids={existing},001000000000099AAA&allOrNone=true"
        ))
        .await
        .json();
    assert_eq!(
        del[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(emu.read("Account", &existing).await.status, StatusCode::OK);
}

#[tokio::test]
async fn update_delete_and_retrieve() {
    let emu = Emu::start().await;
    let a = emu.insert("Account", json!({"Name": "A"})).await;
    let b = emu.insert("Account", json!({"Name": "B"})).await;
    let upd = json!({"records": [
        {"attributes": {"type": "Account"}, "id": a, "Phone": "123"},
        {"attributes": {"type": "Account"}, "Name": "no id"},
    ]});
    let res = emu.patch("/composite/sobjects", &upd).await.json();
    assert_eq!(res[0], json!({"id": a, "success": true, "errors": []}));
    assert_eq!(res[1]["success"], false);
    let got = emu
        .get(&format!(
            "/composite/sobjects/Account?ids={a},{b},001000000000099AAA&fields=Name,Phone"
        ))
        .await
        .json();
    assert_eq!(got[0]["Phone"], "123");
    assert_eq!(got[1]["Name"], "B");
    assert_eq!(got[0]["attributes"]["type"], "Account");
    assert_eq!(got[2], Value::Null);
    let del = emu
        .delete(&format!("/composite/sobjects?ids={a},{b}"))
        .await
        .json();
    assert!(del.as_array().unwrap().iter().all(|r| r["success"] == true));
    let again = emu
        .delete(&format!("/composite/sobjects?ids={a}"))
        .await
        .json();
    assert_eq!(again[0]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");
}

#[tokio::test]
async fn upsert_reports_created_and_resolves_parents_by_external_id() {
    let emu = Emu::start().await;
    let body = json!({"records": [
        {"attributes": {"type": "Account"}, "Name": "P", "External_Id__c": "42"},
        {"attributes": {"type": "Account"}, "Name": "Q", "External_Id__c": "43"},
    ]});
    let path = "/composite/sobjects/Account/External_Id__c";
    let first = emu.patch(path, &body).await.json();
    assert_eq!(first[0]["created"], true);
    let second = emu.patch(path, &body).await.json();
    assert_eq!(second[0]["created"], false);
    assert_eq!(second[0]["success"], true);
    assert_eq!(first[0]["id"], second[0]["id"]);

    let dup = json!({"records": [
        {"attributes": {"type": "Account"}, "Name": "D1", "External_Id__c": "d"},
        {"attributes": {"type": "Account"}, "Name": "D2", "External_Id__c": "D"},
    ]});
    let res = emu.patch(path, &dup).await.json();
    assert_eq!(res[0]["errors"][0]["statusCode"], "DUPLICATE_VALUE");

    let contacts = json!({"records": [
        {"attributes": {"type": "Contact"}, "LastName": "Kid", "Account": {"External_Id__c": "42"}},
        {"attributes": {"type": "Contact"}, "LastName": "Orphan", "Account": {"External_Id__c": "nope"}},
    ]});
    let res = emu.post("/composite/sobjects", &contacts).await.json();
    assert_eq!(res[0]["success"], true, "{res}");
    let kid = emu
        .read("Contact", res[0]["id"].as_str().unwrap())
        .await
        .json();
    assert_eq!(kid["AccountId"], first[0]["id"]);
    assert_eq!(res[1]["errors"][0]["statusCode"], "INVALID_FIELD");
    assert_eq!(
        res[1]["errors"][0]["message"],
        "Foreign key external ID: nope not found for field External_Id__c in entity Account"
    );
    let bad_field = emu.patch("/composite/sobjects/Account/Name", &body).await;
    assert_eq!(bad_field.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn composite_references_and_processing_halted() {
    let emu = Emu::start().await;
    let body = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v60.0/sobjects/Account", "referenceId": "refAccount",
         "body": {"Name": "Acme"}},
        {"method": "POST", "url": "/services/data/v60.0/sobjects/Contact", "referenceId": "refContact",
         "body": {"LastName": "Smith", "AccountId": "@{refAccount.id}"}},
        {"method": "GET", "url": "/services/data/v60.0/query?q=SELECT+Id,AccountId+FROM+Contact", "referenceId": "refQuery"},
        {"method": "GET", "url": "/services/data/v60.0/sobjects/Contact/@{refQuery.records[0].Id}", "referenceId": "refRead"},
    ]});
    let before = emu.handle.state().limits.api_requests.usage().0;
    let r = emu.post("/composite", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        emu.handle.state().limits.api_requests.usage().0,
        before + 1,
        "one API call"
    );
    let res = r.json()["compositeResponse"].clone();
    assert_eq!(res[0]["httpStatusCode"], 201);
    assert_eq!(res[0]["referenceId"], "refAccount");
    assert!(res[0]["httpHeaders"].is_object());
    let acc_id = res[0]["body"]["id"].as_str().unwrap().to_string();
    assert_eq!(res[1]["httpStatusCode"], 201, "{}", res[1]);
    assert_eq!(res[2]["body"]["records"][0]["AccountId"], acc_id.as_str());
    assert_eq!(res[3]["httpStatusCode"], 200);
    assert_eq!(res[3]["body"]["LastName"], "Smith");

    let failing = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v60.0/sobjects/Account", "referenceId": "a",
         "body": {"Name": "Rolled back"}},
        {"method": "PATCH", "url": format!("/services/data/v60.0/sobjects/Account/{acc_id}"), "referenceId": "b",
         "body": {"Name": "Renamed"}},
        {"method": "POST", "url": "/services/data/v60.0/sobjects/Contact", "referenceId": "c",
         "body": {"FirstName": "no last name"}},
        {"method": "POST", "url": "/services/data/v60.0/sobjects/Account", "referenceId": "d",
         "body": {"Name": "never"}},
    ]});
    let res = emu.post("/composite", &failing).await.json()["compositeResponse"].clone();
    assert_eq!(res[0]["httpStatusCode"], 400);
    assert_eq!(res[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(res[2]["body"][0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(res[3]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(
        emu.read("Account", &acc_id).await.json()["Name"],
        "Acme",
        "update undone"
    );
    let q = emu
        .get("/query?q=SELECT+Id+FROM+Account+WHERE+Name+%3D+%27Rolled+back%27")
        .await
        .json();
    assert_eq!(q["totalSize"], 0, "insert undone");

    let partial = json!({"allOrNone": false, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v60.0/sobjects/Account", "referenceId": "x", "body": {}},
        {"method": "POST", "url": "/services/data/v60.0/sobjects/Contact", "referenceId": "y",
         "body": {"LastName": "S", "AccountId": "@{x.id}"}},
        {"method": "POST", "url": "/services/data/v60.0/sobjects/Account", "referenceId": "z", "body": {"Name": "ok"}},
    ]});
    let res = emu.post("/composite", &partial).await.json()["compositeResponse"].clone();
    assert_eq!(res[0]["httpStatusCode"], 400);
    assert_eq!(res[1]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(res[2]["httpStatusCode"], 201);

    let too_many: Vec<Value> = (0..26)
        .map(|i| json!({"method": "GET", "url": "/services/data/v60.0/limits", "referenceId": format!("r{i}")}))
        .collect();
    let r = emu
        .post("/composite", &json!({"compositeRequest": too_many}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn composite_runs_collections_subrequests() {
    let emu = Emu::start().await;
    let body = json!({"compositeRequest": [
        {"method": "POST", "url": "/services/data/v60.0/composite/sobjects", "referenceId": "coll",
         "body": {"records": [acc("C1"), acc("C2")]}},
        {"method": "GET", "url": "/services/data/v60.0/sobjects/Account/@{coll[1].id}", "referenceId": "read"},
    ]});
    let res = emu.post("/composite", &body).await.json()["compositeResponse"].clone();
    assert_eq!(res[0]["httpStatusCode"], 200);
    assert_eq!(res[1]["body"]["Name"], "C2", "{res}");
}

#[tokio::test]
async fn all_or_none_create_that_fails_writes_nothing_not_even_a_deletion() {
    let emu = Emu::start().await;
    let store = emu.handle.state().store.clone();
    let start = store.clock().now();
    let body = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Account"}, "Name": "A", "External_Id__c": "DUP-1"},
        {"attributes": {"type": "Account"}, "Name": "B", "External_Id__c": "dup-1"},
        {"attributes": {"type": "Nope__c"}, "Name": "C"},
    ]});
    let res = emu.post("/composite/sobjects", &body).await.json();
    assert_eq!(
        res[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(res[1]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    assert_eq!(res[2]["errors"][0]["statusCode"], "INVALID_TYPE");
    assert_eq!(store.count("Account", true).unwrap(), 0);
    let end = store.clock().now() + chrono::Duration::seconds(1);
    assert!(store
        .deleted_between("Account", start, end)
        .unwrap()
        .is_empty());

    let partial = json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Account"}, "Name": "A", "External_Id__c": "DUP-1"},
        {"attributes": {"type": "Account"}, "Name": "B", "External_Id__c": "dup-1"},
    ]});
    let res = emu.post("/composite/sobjects", &partial).await.json();
    assert_eq!(res[0]["success"], true);
    assert_eq!(res[1]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    assert_eq!(store.count("Account", false).unwrap(), 1);
}
