//! REST API of the Salesforce emulator over real HTTP: discovery, limits, describe, record
//! CRUD, validation errors, upsert, getUpdated/getDeleted, faults, stats and snapshots.

use std::net::SocketAddr;

use pgforce_emulator::{Emulator, EmulatorConfig, EmulatorHandle, FaultKind, FaultSpec};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const V: &str = "/services/data/v60.0";

struct Env {
    emu: EmulatorHandle,
    http: Client,
    token: String,
}

impl Env {
    async fn start(config: EmulatorConfig) -> Env {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let emu = Emulator::start(config, addr)
            .await
            .expect("emulator starts");
        let token = emu.issue_default_token().expect("default user");
        Env {
            emu,
            http: Client::new(),
            token,
        }
    }

    async fn new() -> Env {
        Env::start(EmulatorConfig::default()).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("response");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    async fn create(&self, object: &str, body: Value) -> String {
        let (status, v) = self.post(&format!("{V}/sobjects/{object}"), body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }
}

/// Asserts a REST error array with one error of `code`.
fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body[0]["errorCode"], code, "{body}");
    assert!(body[0]["message"].is_string(), "{body}");
}

#[tokio::test]
async fn versions_need_no_auth_and_are_not_counted() {
    let env = Env::new().await;
    let resp = env
        .http
        .get(env.url("/services/data/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("sforce-limit-info").is_none());
    let v: Value = resp.json().await.unwrap();
    let last = v.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        json!({"label": "Spring '26", "url": "/services/data/v66.0", "version": "66.0"})
    );
    assert_eq!(env.emu.state().stats.api_calls(), 0);
}

#[tokio::test]
async fn resources_and_limits_carry_usage_header() {
    let env = Env::new().await;
    let resp = env
        .http
        .get(env.url(V))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["sforce-limit-info"], "api-usage=1/100000");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["sobjects"], format!("{V}/sobjects"));
    assert_eq!(v["jobs/ingest"], format!("{V}/jobs/ingest"));
    let (s, v) = env.get(&format!("{V}/limits")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["DailyApiRequests"],
        json!({"Max": 100000, "Remaining": 99998})
    );
    assert!(v["DailyBulkV2QueryJobs"]["Max"].is_number());
    let (s, v) = env.get("/services/data/v99.0/limits").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (s, v) = env
        .call(
            Method::PUT,
            &format!("{V}/sobjects/Account"),
            Some(json!({})),
        )
        .await;
    assert_error(s, &v, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    let (s, v) = env.get(&format!("{V}/nothing/here")).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn missing_or_expired_session_is_401() {
    let env = Env::new().await;
    let resp = env.http.get(env.url(V)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}])
    );
    let resp = env
        .http
        .get(env.url(V))
        .bearer_auth("00Dfake!token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    env.emu.advance_clock(chrono::Duration::hours(3));
    let (s, v) = env.get(V).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID");
}

#[tokio::test]
async fn describe_global_object_and_full_describe() {
    let env = Env::new().await;
    let (s, v) = env.get(&format!("{V}/sobjects")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["encoding"], "UTF-8");
    assert_eq!(v["maxBatchSize"], 200);
    let account = v["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Account")
        .unwrap();
    assert_eq!(account["keyPrefix"], "001");
    assert_eq!(account["queryable"], true);
    assert_eq!(
        account["urls"]["rowTemplate"],
        format!("{V}/sobjects/Account/{{ID}}")
    );

    env.create("Account", json!({"Name": "Recent"})).await;
    let (s, v) = env.get(&format!("{V}/sobjects/Account")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["objectDescribe"]["name"], "Account");
    assert_eq!(v["recentItems"][0]["Name"], "Recent");

    let resp = env
        .http
        .get(env.url(&format!("{V}/sobjects/Contact/describe")))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let last_modified = resp.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = resp.json().await.unwrap();
    let field = |name: &str| {
        v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
            .clone()
    };
    let last_name = field("LastName");
    assert_eq!(
        (
            last_name["length"].clone(),
            last_name["byteLength"].clone(),
            last_name["nillable"].clone()
        ),
        (json!(80), json!(240), json!(false))
    );
    let account_id = field("AccountId");
    assert_eq!(account_id["referenceTo"], json!(["Account"]));
    assert_eq!(account_id["relationshipName"], "Account");
    assert_eq!(field("Email")["type"], "email");
    assert_eq!(field("Id")["idLookup"], true);
    assert_eq!(field("External_Id__c")["externalId"], true);
    assert_eq!(
        v["recordTypeInfos"][0]["recordTypeId"],
        "012000000000000AAA"
    );

    let (_, acct) = env.get(&format!("{V}/sobjects/Account/describe")).await;
    let children = acct["childRelationships"].as_array().unwrap();
    assert!(children.iter().any(|c| c["childSObject"] == "Contact"
        && c["relationshipName"] == "Contacts"
        && c["field"] == "AccountId"));
    let plan = acct["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Plan__c")
        .unwrap();
    assert_eq!(plan["restrictedPicklist"], true);
    assert_eq!(plan["picklistValues"].as_array().unwrap().len(), 3);

    let resp = env
        .http
        .get(env.url(&format!("{V}/sobjects/Contact/describe")))
        .bearer_auth(&env.token)
        .header("If-Modified-Since", last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    let (s, v) = env.get(&format!("{V}/sobjects/Nope__c/describe")).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn record_crud_round_trip() {
    let env = Env::new().await;
    let (s, v) = env
        .post(
            &format!("{V}/sobjects/Account"),
            json!({"Name": "Acme", "Industry": "Banking", "NumberOfEmployees": 12}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["success"], true);
    assert_eq!(v["errors"], json!([]));
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("001"));

    let (s, r) = env.get(&format!("{V}/sobjects/Account/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        r["attributes"],
        json!({"type": "Account", "url": format!("{V}/sobjects/Account/{id}")})
    );
    assert_eq!(r["Name"], "Acme");
    assert_eq!(r["Phone"], Value::Null);
    assert_eq!(r["IsDeleted"], false);
    assert!(
        r["CreatedDate"].as_str().unwrap().ends_with(".000+0000")
            || r["CreatedDate"].as_str().unwrap().ends_with("+0000")
    );
    assert_eq!(r["OwnerId"].as_str().unwrap().len(), 18);

    let (_, r) = env
        .get(&format!(
            "{V}/sobjects/Account/{}?fields=Name,industry",
            &id[..15]
        ))
        .await;
    assert_eq!(
        r.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["attributes", "Name", "Industry"]
    );
    let (s, v) = env
        .get(&format!("{V}/sobjects/Account/{id}?fields=Nope"))
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "INVALID_FIELD");

    let (s, _) = env
        .patch(
            &format!("{V}/sobjects/Account/{id}"),
            json!({"Phone": "555", "Industry": null}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, r) = env.get(&format!("{V}/sobjects/Account/{id}")).await;
    assert_eq!(
        (r["Phone"].clone(), r["Industry"].clone()),
        (json!("555"), Value::Null)
    );

    let (s, v) = env
        .post(
            &format!("{V}/sobjects/Account"),
            json!({"Name": "X", "Id": id}),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "INVALID_FIELD");
    assert_eq!(
        v[0]["message"],
        "The Id field should not be specified in the sobject data."
    );

    let (s, _) = env.delete(&format!("{V}/sobjects/Account/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = env.get(&format!("{V}/sobjects/Account/{id}")).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "ENTITY_IS_DELETED");
    let (s, v) = env.delete(&format!("{V}/sobjects/Account/{id}")).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "ENTITY_IS_DELETED");
    let (s, v) = env
        .patch(&format!("{V}/sobjects/Account/{id}"), json!({"Name": "Z"}))
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "ENTITY_IS_DELETED");

    let (s, v) = env
        .get(&format!("{V}/sobjects/Account/001000000000000AAA"))
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (s, v) = env
        .get(&format!("{V}/sobjects/Nope/001000000000000AAA"))
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (s, v) = env
        .post(&format!("{V}/sobjects/Nope"), json!({"Name": "X"}))
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn validation_errors_have_salesforce_codes() {
    let env = Env::new().await;
    let acct = env
        .create(
            "Account",
            json!({"Name": "Parent", "External_Id__c": "P-1"}),
        )
        .await;
    let contact = env
        .create(
            "Contact",
            json!({"LastName": "Kid", "Account": {"External_Id__c": "p-1"}}),
        )
        .await;
    let (_, c) = env.get(&format!("{V}/sobjects/Contact/{contact}")).await;
    assert_eq!(c["AccountId"], acct);
    let gone = env.create("Account", json!({"Name": "Gone"})).await;
    env.delete(&format!("{V}/sobjects/Account/{gone}")).await;
    let long = "x".repeat(81);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "Opportunity",
            json!({"Amount": 5}),
            "REQUIRED_FIELD_MISSING",
        ),
        ("Contact", json!({"LastName": long}), "STRING_TOO_LONG"),
        (
            "Opportunity",
            json!({"Name": "O", "CloseDate": "2024-01-01", "StageName": "Nope"}),
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ),
        (
            "Contact",
            json!({"LastName": "S", "Email": "not an email"}),
            "INVALID_EMAIL_ADDRESS",
        ),
        (
            "Opportunity",
            json!({"Name": "O", "CloseDate": "2024-01-01", "StageName": "Prospecting", "Amount": 1e20}),
            "NUMBER_OUTSIDE_VALID_RANGE",
        ),
        (
            "Account",
            json!({"Name": "A", "NumberOfEmployees": "lots"}),
            "JSON_PARSER_ERROR",
        ),
        (
            "Account",
            json!({"Name": "A", "Renewal_Date__c": "31/01/2024"}),
            "JSON_PARSER_ERROR",
        ),
        (
            "Account",
            json!({"Name": {"nested": true}}),
            "JSON_PARSER_ERROR",
        ),
        ("Account", json!({"Name": "A", "Foo": 1}), "INVALID_FIELD"),
        (
            "Account",
            json!({"Name": "A", "CreatedById": acct}),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
        (
            "Contact",
            json!({"LastName": "S", "AccountId": "garbage"}),
            "MALFORMED_ID",
        ),
        (
            "Contact",
            json!({"LastName": "S", "AccountId": "001000000000000AAA"}),
            "INVALID_CROSS_REFERENCE_KEY",
        ),
        (
            "Contact",
            json!({"LastName": "S", "AccountId": contact}),
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        (
            "Contact",
            json!({"LastName": "S", "AccountId": gone}),
            "ENTITY_IS_DELETED",
        ),
        (
            "Account",
            json!({"Name": "Dup", "External_Id__c": "P-1"}),
            "DUPLICATE_VALUE",
        ),
        (
            "Contact",
            json!({"LastName": "S", "Account": {"External_Id__c": "nope"}}),
            "INVALID_FIELD",
        ),
    ];
    for (object, body, code) in cases {
        let (s, v) = env
            .post(&format!("{V}/sobjects/{object}"), body.clone())
            .await;
        assert_error(s, &v, StatusCode::BAD_REQUEST, code);
        assert!(v[0]["fields"].is_array(), "{v}");
    }
    let (_, v) = env
        .post(&format!("{V}/sobjects/Opportunity"), json!({}))
        .await;
    assert_eq!(
        v[0]["message"],
        "Required fields are missing: [Name, StageName, CloseDate]"
    );
    assert_eq!(v[0]["fields"], json!(["Name", "StageName", "CloseDate"]));
    let (_, v) = env
        .post(
            &format!("{V}/sobjects/Contact"),
            json!({"LastName": "x".repeat(81)}),
        )
        .await;
    assert_eq!(
        v[0]["message"],
        format!(
            "Last Name: data value too large: {} (max length=80)",
            "x".repeat(81)
        )
    );
    let (_, v) = env
        .post(
            &format!("{V}/sobjects/Account"),
            json!({"Name": "A", "Foo": 1}),
        )
        .await;
    assert_eq!(
        v[0]["message"],
        "No such column 'Foo' on sobject of type Account"
    );
}

#[tokio::test]
async fn malformed_bodies_are_json_parser_errors() {
    let env = Env::new().await;
    let bodies: [&[u8]; 7] = [
        b"{",
        b"not json",
        b"[1,2]",
        b"\"str\"",
        b"",
        b"{\"Name\": \"A\",}",
        &[0xff, 0xfe, 0x00],
    ];
    for body in bodies {
        let resp = env
            .http
            .post(env.url(&format!("{V}/sobjects/Account")))
            .bearer_auth(&env.token)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_error(status, &v, StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR");
    }
    let resp = env
        .http
        .patch(env.url(&format!("{V}/sobjects/Account/External_Id__c/x")))
        .bearer_auth(&env.token)
        .body("{{{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

/// A schema file adding a non-unique external id, so several records can match.
fn legacy_id_config(dir: &tempfile::TempDir) -> EmulatorConfig {
    let path = dir.path().join("schema.json");
    let schema = json!({"fields": {"Account": [{"name": "Legacy_Id__c", "type": "string", "length": 40, "externalId": true}]},
                        "objects": [{"name": "Invoice__c", "fields": [{"name": "Total__c", "type": "currency"}]}]});
    std::fs::write(&path, schema.to_string()).unwrap();
    EmulatorConfig {
        schema_file: Some(path),
        ..EmulatorConfig::default()
    }
}

#[tokio::test]
async fn upsert_by_external_id_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(legacy_id_config(&dir)).await;
    let url = format!("{V}/sobjects/Account/External_Id__c/ACME-1");
    let (s, v) = env.patch(&url, json!({"Name": "Acme"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["created"], true);
    assert_eq!(v["success"], true);
    let id = v["id"].as_str().unwrap().to_string();
    let (s, v) = env
        .patch(
            &format!("{V}/sobjects/Account/External_Id__c/acme-1"),
            json!({"Name": "Acme 2"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"id": id, "success": true, "errors": [], "created": false})
    );
    let (s, _) = env
        .patch(
            "/services/data/v45.0/sobjects/Account/External_Id__c/ACME-1",
            json!({"Name": "Acme 3"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = env
        .patch(
            "/services/data/v45.0/sobjects/Account/External_Id__c/NEW-45",
            json!({"Name": "Old API"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(v.get("created").is_none());
    let (s, r) = env.get(&url).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["Name"], "Acme 3");

    env.create("Account", json!({"Name": "L1", "Legacy_Id__c": "L"}))
        .await;
    env.create("Account", json!({"Name": "L2", "Legacy_Id__c": "l"}))
        .await;
    let (s, v) = env
        .patch(
            &format!("{V}/sobjects/Account/Legacy_Id__c/L"),
            json!({"Name": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(v[0]
        .as_str()
        .unwrap()
        .starts_with(&format!("{V}/sobjects/Account/001")));
    let (s, _) = env
        .get(&format!("{V}/sobjects/Account/Legacy_Id__c/L"))
        .await;
    assert_eq!(s, StatusCode::MULTIPLE_CHOICES);

    let (s, v) = env
        .patch(
            &format!("{V}/sobjects/Account/Nope__c/1"),
            json!({"Name": "x"}),
        )
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (s, v) = env
        .patch(
            &format!("{V}/sobjects/Account/Name/Acme"),
            json!({"Phone": "1"}),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "INVALID_FIELD");
    let (s, v) = env.patch(&url, json!({"Id": id})).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "INVALID_FIELD");
    let (s, v) = env.patch(&url, json!({"External_Id__c": "ACME-1"})).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "INVALID_FIELD");
    let (s, v) = env
        .patch(
            &format!("{V}/sobjects/Account/External_Id__c/NEW-2"),
            json!({"Phone": "1"}),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "REQUIRED_FIELD_MISSING");
    let (s, v) = env
        .patch(
            &format!("{V}/sobjects/Account/External_Id__c/NEW-3?updateOnly=true"),
            json!({"Name": "x"}),
        )
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (s, v) = env
        .get(&format!("{V}/sobjects/Account/External_Id__c/missing"))
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "NOT_FOUND");

    let (s, v) = env
        .post(
            &format!("{V}/sobjects/Account/Id"),
            json!({"Name": "Via Id"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = env
        .patch(
            &format!("{V}/sobjects/Account/Id/{id}"),
            json!({"Name": "By Id"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let invoice = env.create("Invoice__c", json!({"Total__c": 10.456})).await;
    let (_, r) = env.get(&format!("{V}/sobjects/Invoice__c/{invoice}")).await;
    assert_eq!(r["Total__c"].to_string(), "10.46");
    assert!(invoice.starts_with("a01"));

    let (s, _) = env
        .delete(&format!("{V}/sobjects/Account/External_Id__c/ACME-1"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = env.get(&url).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn get_updated_and_get_deleted() {
    let env = Env::new().await;
    let a = env.create("Account", json!({"Name": "A"})).await;
    let b = env.create("Account", json!({"Name": "B"})).await;
    env.delete(&format!("{V}/sobjects/Account/{b}")).await;
    // Only whole minutes are covered: move past the current one.
    env.emu.advance_clock(chrono::Duration::minutes(2));
    let now = chrono::Utc::now();
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
    let start = fmt(now - chrono::Duration::hours(1));
    let end = fmt(now + chrono::Duration::minutes(5));
    let q = |what: &str, s: &str, e: &str| {
        let enc = |x: &str| x.replace(':', "%3A").replace('+', "%2B");
        format!(
            "{V}/sobjects/Account/{what}/?start={}&end={}",
            enc(s),
            enc(e)
        )
    };
    let (s, v) = env.get(&q("updated", &start, &end)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ids"], json!([a]));
    assert!(v["latestDateCovered"]
        .as_str()
        .unwrap()
        .ends_with(":00.000+0000"));
    let (s, v) = env.get(&q("deleted", &start, &end)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["deletedRecords"][0]["id"], b);
    assert!(v["deletedRecords"][0]["deletedDate"]
        .as_str()
        .unwrap()
        .ends_with("+0000"));
    assert!(v["earliestDateAvailable"].is_string());
    assert!(v["latestDateCovered"].is_string());

    let (s, v) = env.get(&q("updated", &end, &start)).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE");
    let old = fmt(now - chrono::Duration::days(31));
    let (s, v) = env.get(&q("updated", &old, &end)).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE");
    let old = fmt(now - chrono::Duration::days(16));
    let (s, v) = env.get(&q("deleted", &old, &end)).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE");
    let (s, v) = env
        .get(&format!(
            "{V}/sobjects/Account/updated/?start=yesterday&end=today"
        ))
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE");
    // Unencoded `+` arrives as a space and is still understood.
    let (s, _) = env
        .get(&format!(
            "{V}/sobjects/Account/updated/?start={start}&end={end}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn daily_limit_is_enforced_with_403() {
    let env = Env::start(EmulatorConfig {
        daily_api_limit: 2,
        ..EmulatorConfig::default()
    })
    .await;
    assert_eq!(env.get(V).await.0, StatusCode::OK);
    assert_eq!(env.get(V).await.0, StatusCode::OK);
    let resp = env
        .http
        .get(env.url(V))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["sforce-limit-info"], "api-usage=2/2");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(v[0]["message"], "TotalRequests Limit exceeded.");
}

#[tokio::test]
async fn faults_by_rust_api() {
    let env = Env::new().await;
    let accounts = format!("{V}/sobjects/Account");
    env.emu.add_fault(
        FaultSpec::always(FaultKind::HttpStatus { status: 503 })
            .matching(Some("POST"), &accounts)
            .on_nth(2),
    );
    assert_eq!(
        env.post(&accounts, json!({"Name": "1"})).await.0,
        StatusCode::CREATED
    );
    let (s, v) = env.post(&accounts, json!({"Name": "2"})).await;
    assert_error(s, &v, StatusCode::SERVICE_UNAVAILABLE, "SERVER_UNAVAILABLE");
    assert_eq!(
        env.post(&accounts, json!({"Name": "3"})).await.0,
        StatusCode::CREATED
    );
    env.emu.clear_faults();

    env.emu.add_fault(
        FaultSpec::always(FaultKind::UnableToLockRow)
            .matching(Some("PATCH"), V)
            .times(1),
    );
    let (s, v) = env
        .patch(
            &format!("{accounts}/External_Id__c/X"),
            json!({"Name": "x"}),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "UNABLE_TO_LOCK_ROW");
    assert_eq!(
        env.patch(
            &format!("{accounts}/External_Id__c/X"),
            json!({"Name": "x"})
        )
        .await
        .0,
        StatusCode::CREATED
    );

    env.emu
        .add_fault(FaultSpec::always(FaultKind::RequestLimitExceeded).times(1));
    let (s, v) = env.get(V).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED");

    env.emu
        .add_fault(FaultSpec::always(FaultKind::Latency { ms: 300 }).times(1));
    let t = std::time::Instant::now();
    assert_eq!(env.get(V).await.0, StatusCode::OK);
    assert!(t.elapsed() >= std::time::Duration::from_millis(300));

    env.emu
        .add_fault(FaultSpec::always(FaultKind::DropConnection).times(1));
    let err = env
        .http
        .get(env.url(V))
        .bearer_auth(&env.token)
        .send()
        .await;
    assert!(
        err.is_err(),
        "connection should be dropped without a response"
    );
    assert_eq!(env.get(V).await.0, StatusCode::OK);

    env.emu
        .add_fault(FaultSpec::always(FaultKind::ExpireTokens).times(1));
    let (s, v) = env.get(V).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID");

    env.emu.add_fault(
        FaultSpec::always(FaultKind::BulkJobFailed { message: None })
            .matching(None, "/services/data/v60.0/jobs/ingest"),
    );
    let faults = &env.emu.state().faults;
    assert!(faults
        .bulk_job_failure("PATCH", "/services/data/v60.0/jobs/ingest/750x")
        .is_some());
}

#[tokio::test]
async fn faults_and_stats_by_admin_endpoint() {
    let env = Env::new().await;
    let resp = env.http.post(env.url("/__emulator/faults"))
        .json(&json!([{"kind": "http_status", "status": 500, "pathPrefix": "/services/data/v60.0/limits"}]))
        .send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (s, v) = env.get(&format!("{V}/limits")).await;
    assert_error(
        s,
        &v,
        StatusCode::INTERNAL_SERVER_ERROR,
        "UNKNOWN_EXCEPTION",
    );
    let list: Value = env
        .http
        .get(env.url("/__emulator/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["fired"], 1);
    assert_eq!(list[0]["kind"], "http_status");
    let resp = env
        .http
        .delete(env.url("/__emulator/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(env.get(&format!("{V}/limits")).await.0, StatusCode::OK);
    let resp = env
        .http
        .post(env.url("/__emulator/faults"))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    env.create("Account", json!({"Name": "S"})).await;
    let stats: Value = env
        .http
        .get(env.url("/__emulator/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["apiCalls"], 3);
    assert_eq!(stats["byFamily"]["sobjects"], 1);
    assert_eq!(stats["byFamily"]["limits"], 2);
    assert_eq!(stats["byMethod"]["POST sobjects"], 1);
    env.http
        .delete(env.url("/__emulator/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(env.emu.state().stats.api_calls(), 0);

    let tok: Value = env
        .http
        .post(env.url("/__emulator/token"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = env
        .http
        .get(env.url(V))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn snapshot_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmulatorConfig {
        snapshot_file: Some(dir.path().join("data.jsonl")),
        ..EmulatorConfig::default()
    };
    let env = Env::start(config.clone()).await;
    let id = env
        .create("Account", json!({"Name": "Kept", "External_Id__c": "K-1"}))
        .await;
    let gone = env.create("Account", json!({"Name": "Gone"})).await;
    env.delete(&format!("{V}/sobjects/Account/{gone}")).await;
    env.emu.shutdown().await;

    let env = Env::start(config).await;
    let (s, r) = env
        .get(&format!("{V}/sobjects/Account/External_Id__c/k-1"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["Id"], id);
    let (s, _) = env.get(&format!("{V}/sobjects/Account/{gone}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let next = env.create("Account", json!({"Name": "New"})).await;
    assert!(next > id, "ids keep increasing after a restore");
}
