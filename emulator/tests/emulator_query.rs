//! REST `/query`, `/queryAll` and `nextRecordsUrl` paging against an in-process emulator.

mod emulator_support;

use emulator_support::{Emu, V};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Inserts `n` accounts named `Q 0000`… through REST.
async fn seed(emu: &Emu, n: usize) {
    for i in 0..n {
        emu.insert("Account", json!({"Name": format!("Q {i:04}")}))
            .await;
    }
}

/// GET /query with an optional batch size header.
async fn query(emu: &Emu, soql: &str, batch: Option<&str>) -> emulator_support::Resp {
    let path = format!("/query?q={}", urlencode(soql));
    let headers: Vec<(&str, &str)> = batch
        .map(|b| vec![("Sforce-Query-Options", b)])
        .unwrap_or_default();
    emu.call(Method::GET, &path, None, &headers).await
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn query_pages_with_batch_size_and_locator() {
    let emu = Emu::start().await;
    seed(&emu, 450).await;
    let soql = "SELECT Id, Name FROM Account ORDER BY Name";
    let first = query(&emu, soql, Some("batchSize=200")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let body = first.json();
    assert_eq!(body["totalSize"], 450);
    assert_eq!(body["done"], false);
    assert_eq!(body["records"].as_array().unwrap().len(), 200);
    let next = body["nextRecordsUrl"].as_str().unwrap().to_string();
    assert!(
        next.starts_with(&format!("/services/data/{V}/query/01g")),
        "{next}"
    );
    assert!(next.ends_with("-200"), "{next}");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["totalSize", "done", "nextRecordsUrl", "records"]);

    let second = emu.get(&next).await.json();
    assert_eq!(second["records"][0]["Name"], "Q 0200");
    let third = emu
        .get(second["nextRecordsUrl"].as_str().unwrap())
        .await
        .json();
    assert_eq!(third["done"], true);
    assert_eq!(third["records"].as_array().unwrap().len(), 50);
    assert!(third.get("nextRecordsUrl").is_none());
    assert_eq!(third["records"][49]["Name"], "Q 0449");
    assert_eq!(
        third["records"][0]["attributes"]["type"], "Account",
        "records carry attributes"
    );
}

#[tokio::test]
async fn batch_size_is_clamped_and_defaults_to_2000() {
    let emu = Emu::start().await;
    seed(&emu, 250).await;
    let soql = "SELECT Id FROM Account";
    let small = query(&emu, soql, Some("batchSize=10")).await.json();
    assert_eq!(small["records"].as_array().unwrap().len(), 200, "min 200");
    let big = query(&emu, soql, Some("batchSize=5000")).await.json();
    assert_eq!(big["records"].as_array().unwrap().len(), 250);
    assert_eq!(big["done"], true);
    let default = query(&emu, soql, None).await.json();
    assert_eq!(default["records"].as_array().unwrap().len(), 250);
}

#[tokio::test]
async fn expired_or_unknown_locator_is_invalid_query_locator() {
    let emu = Emu::start().await;
    seed(&emu, 210).await;
    let first = query(&emu, "SELECT Id FROM Account", Some("batchSize=200"))
        .await
        .json();
    let next = first["nextRecordsUrl"].as_str().unwrap().to_string();
    emu.handle.advance_clock(chrono::Duration::minutes(16));
    let expired = emu.get(&next).await;
    assert_eq!(expired.status, StatusCode::BAD_REQUEST);
    assert_eq!(expired.json()[0]["errorCode"], "INVALID_QUERY_LOCATOR");
    let bogus = emu.get("/query/01gXXXXXXXXXXXXXXX-200").await;
    assert_eq!(bogus.json()[0]["errorCode"], "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn soql_errors_and_count() {
    let emu = Emu::start().await;
    seed(&emu, 3).await;
    let bad = query(&emu, "SELECT Id FRM Account", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()[0]["errorCode"], "MALFORMED_QUERY");
    let field = query(&emu, "SELECT Nope__c FROM Account", None).await;
    assert_eq!(field.json()[0]["errorCode"], "INVALID_FIELD");
    let ty = query(&emu, "SELECT Id FROM Nope", None).await;
    assert_eq!(ty.json()[0]["errorCode"], "INVALID_TYPE");
    let count = query(&emu, "SELECT COUNT() FROM Account", None)
        .await
        .json();
    assert_eq!(count, json!({"totalSize": 3, "done": true, "records": []}));
    let missing = emu.get("/query").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn query_all_sees_deleted_rows_and_pages_via_query_path() {
    let emu = Emu::start().await;
    seed(&emu, 205).await;
    let id = emu.insert("Account", json!({"Name": "Gone"})).await;
    assert_eq!(
        emu.delete(&format!("/sobjects/Account/{id}")).await.status,
        204
    );
    let live = query(&emu, "SELECT Id FROM Account WHERE Name = 'Gone'", None)
        .await
        .json();
    assert_eq!(live["totalSize"], 0);
    let soql = urlencode("SELECT Id, IsDeleted FROM Account ORDER BY Name");
    let all = emu
        .call(
            Method::GET,
            &format!("/queryAll?q={soql}"),
            None,
            &[("Sforce-Query-Options", "batchSize=200")],
        )
        .await
        .json();
    assert_eq!(all["totalSize"], 206);
    let next = all["nextRecordsUrl"].as_str().unwrap();
    assert!(
        next.contains("/query/"),
        "queryAll pages via /query/: {next}"
    );
    let rest = emu.get(next).await.json();
    let deleted: Vec<&Value> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["records"].as_array().unwrap())
        .filter(|r| r["IsDeleted"] == true)
        .collect();
    assert_eq!(deleted.len(), 1);
}

#[tokio::test]
async fn query_counts_toward_api_limits() {
    let emu = Emu::start().await;
    let before = emu.handle.state().limits.api_requests.usage().0;
    let r = query(&emu, "SELECT Id FROM Account", None).await;
    assert!(r.header("sforce-limit-info").is_some());
    let after = emu.handle.state().limits.api_requests.usage().0;
    assert_eq!(after, before + 1);
}
