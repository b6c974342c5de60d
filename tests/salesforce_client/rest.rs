//! REST and sObject Collections against an in-test stub: query pagination, single-record CRUD,
//! upsert statuses (201/200/204/300/404), Collections chunking and per-record errors.

use std::collections::HashMap;

use crate::support::sf_stub::*;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use axum::Router;
use futures::TryStreamExt;
use pgforce::salesforce::{Record, SalesforceError, UpsertResult};
use serde_json::{json, Value};

/// A record JSON object from a `json!` literal.
fn record(v: Value) -> Record {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// A query page with `n` Contact rows starting at `start`.
fn page(start: usize, n: usize, total: usize, next: Option<&str>) -> Value {
    let records: Vec<Value> = (start..start + n)
        .map(|i| {
            json!({"attributes": {"type": "Contact",
                    "url": format!("{V}/sobjects/Contact/003{i:015}")},
                   "Id": format!("003{i:015}"), "Name": format!("C{i}"),
                   "Account": null})
        })
        .collect();
    let mut body = json!({"totalSize": total, "done": next.is_none(), "records": records});
    if let Some(next) = next {
        body["nextRecordsUrl"] = json!(next);
    }
    body
}

#[tokio::test]
async fn query_follows_next_records_url() {
    let stub = serve(|base, hits| {
        let (h1, h2, h3) = (hits.clone(), hits.clone(), hits.clone());
        token_routes(&base, hits)
            .route(
                &format!("{V}/query"),
                get(move |Query(q): Query<HashMap<String, String>>| async move {
                    h1.bump("query");
                    assert_eq!(q["q"], "SELECT Id, Name FROM Contact");
                    json_response(
                        StatusCode::OK,
                        page(0, 2, 5, Some(&format!("{V}/query/01gRO0000016PIAYA2-2"))),
                    )
                }),
            )
            .route(
                &format!("{V}/query/{{locator}}"),
                get(move |Path(locator): Path<String>| async move {
                    h2.bump("more");
                    match locator.as_str() {
                        "01gRO0000016PIAYA2-2" => json_response(
                            StatusCode::OK,
                            page(2, 2, 5, Some(&format!("{V}/query/01gRO0000016PIAYA2-4"))),
                        ),
                        "01gRO0000016PIAYA2-4" => {
                            json_response(StatusCode::OK, page(4, 1, 5, None))
                        }
                        _ => sf_error(StatusCode::BAD_REQUEST, "INVALID_QUERY_LOCATOR", "bad"),
                    }
                }),
            )
            .route(
                &format!("{V}/queryAll"),
                get(move || async move {
                    h3.bump("queryAll");
                    json_response(StatusCode::OK, page(0, 1, 1, None))
                }),
            )
    })
    .await;
    let client = client(&stub);
    let rows: Vec<Record> = client
        .query("SELECT Id, Name FROM Contact")
        .try_collect()
        .await
        .unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["C0", "C1", "C2", "C3", "C4"]);
    assert_eq!(stub.hits.count("more"), 2);
    assert!(rows[0]["Account"].is_null());

    let all: Vec<Record> = client
        .query_all("SELECT Id FROM Contact")
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(stub.hits.count("queryAll"), 1);
}

#[tokio::test]
async fn next_records_url_must_stay_on_the_instance() {
    let stub = serve(|base, hits| {
        token_routes(&base, hits).route(
            &format!("{V}/query"),
            get(|| async {
                json_response(
                    StatusCode::OK,
                    page(0, 1, 2, Some("https://elsewhere.example.com/steal")),
                )
            }),
        )
    })
    .await;
    let result: Result<Vec<Record>, _> = client(&stub)
        .query("SELECT Id FROM Contact")
        .try_collect()
        .await;
    assert!(matches!(result, Err(SalesforceError::BadResponse { .. })));
}

/// Routes for `PATCH /sobjects/Account/Ext__c/{value}` answering per the docs.
fn upsert_routes(base: String, hits: std::sync::Arc<Hits>) -> Router {
    let h = hits.clone();
    token_routes(&base, hits).route(
        &format!("{V}/sobjects/Account/Ext__c/{{value}}"),
        patch(move |Path(value): Path<String>, headers: HeaderMap, body: Bytes| async move {
            h.capture(&value, &body, &headers);
            match value.as_str() {
                "new" => json_response(
                    StatusCode::CREATED,
                    json!({"id": "0018a00001rBqb8AAC", "success": true, "errors": [], "created": true}),
                ),
                "old" => json_response(
                    StatusCode::OK,
                    json!({"id": "0018a00001rBqb9AAC", "success": true, "errors": [], "created": false}),
                ),
                "legacy" => StatusCode::NO_CONTENT.into_response(),
                "dup" => json_response(
                    StatusCode::MULTIPLE_CHOICES,
                    json!([format!("{V}/sobjects/Account/001D000000IqhSLIAZ"),
                           format!("{V}/sobjects/Account/001D000000IqhSMIAZ")]),
                ),
                "a b/c" => json_response(
                    StatusCode::CREATED,
                    json!({"id": "001000000000001AAA", "success": true, "errors": [], "created": true}),
                ),
                _ => sf_error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "The requested resource does not exist",
                ),
            }
        }),
    )
}

#[tokio::test]
async fn upsert_handles_every_documented_status() {
    let stub = serve(upsert_routes).await;
    let client = client(&stub);
    // Parsed from text so the number keeps its digits (arbitrary_precision).
    let body: Record =
        serde_json::from_str(r#"{"Id":"001x","Ext__c":"ignored","Name":"Acme","Rev":1.50}"#)
            .unwrap();
    let up = |value: &'static str| {
        let (client, body) = (client.clone(), body.clone());
        async move { client.upsert("Account", "Ext__c", value, &body).await }
    };

    assert_eq!(
        up("new").await.unwrap(),
        UpsertResult {
            id: Some("0018a00001rBqb8AAC".into()),
            created: true
        }
    );
    assert_eq!(
        up("old").await.unwrap(),
        UpsertResult {
            id: Some("0018a00001rBqb9AAC".into()),
            created: false
        }
    );
    assert_eq!(
        up("legacy").await.unwrap(),
        UpsertResult {
            id: None,
            created: false
        }
    );
    match up("dup").await.unwrap_err() {
        SalesforceError::MultipleMatches {
            object,
            field,
            matches,
        } => {
            assert_eq!((object.as_str(), field.as_str()), ("Account", "Ext__c"));
            assert_eq!(matches.len(), 2);
            assert!(matches[0].ends_with("001D000000IqhSLIAZ"));
        }
        other => panic!("{other:?}"),
    }
    let err = up("nope").await.unwrap_err();
    assert_eq!(err.api_code(), Some("NOT_FOUND"));
    assert!(
        up("a b/c").await.unwrap().created,
        "value is one encoded path segment"
    );

    let (sent, headers) = &stub.hits.bodies("new")[0];
    assert_eq!(
        std::str::from_utf8(sent).unwrap(),
        r#"{"Name":"Acme","Rev":1.50}"#
    );
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["sforce-call-options"], "client=pgforce");
}

#[tokio::test]
async fn record_crud_and_no_blind_retry_of_create() {
    let stub = serve(|base, hits| {
        let (h1, h2) = (hits.clone(), hits.clone());
        token_routes(&base, hits)
            .route(
                &format!("{V}/sobjects/Account"),
                post(move |body: Bytes| async move {
                    if h1.bump("create") == 1 {
                        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    }
                    assert_eq!(&body[..], br#"{"Name":"Acme"}"#);
                    json_response(
                        StatusCode::CREATED,
                        json!({"id": "001D000000IqhSLIAZ", "errors": [], "success": true}),
                    )
                }),
            )
            .route(
                &format!("{V}/sobjects/Account/{{id}}"),
                get(|Query(q): Query<HashMap<String, String>>| async move {
                    assert_eq!(q["fields"], "Name,Phone");
                    json_response(
                        StatusCode::OK,
                        json!({"attributes": {"type": "Account"}, "Id": "001D000000IqhSLIAZ",
                               "Name": "Acme", "Phone": null}),
                    )
                })
                .patch(|| async { StatusCode::NO_CONTENT })
                .delete(move || async move {
                    if h2.bump("delete") == 1 {
                        StatusCode::NO_CONTENT.into_response()
                    } else {
                        sf_error(
                            StatusCode::NOT_FOUND,
                            "ENTITY_IS_DELETED",
                            "entity is deleted",
                        )
                    }
                }),
            )
    })
    .await;
    let client = client(&stub);
    let body = record(json!({"Name": "Acme"}));
    let err = client.create_record("Account", &body).await.unwrap_err();
    assert_eq!(err.api_code(), Some("HTTP_500"));
    assert_eq!(
        stub.hits.count("create"),
        1,
        "a create with unknown outcome is not repeated"
    );
    let id = client.create_record("Account", &body).await.unwrap();
    assert_eq!(id, "001D000000IqhSLIAZ");
    let rec = client
        .get_record("Account", &id, &["Name", "Phone"])
        .await
        .unwrap();
    assert_eq!(rec["Name"], "Acme");
    client.update_record("Account", &id, &body).await.unwrap();
    client.delete_record("Account", &id).await.unwrap();
    let err = client.delete_record("Account", &id).await.unwrap_err();
    assert_eq!(err.api_code(), Some("ENTITY_IS_DELETED"));
}

#[tokio::test]
async fn upsert_collection_chunks_at_200_with_per_record_errors() {
    let stub = serve(|base, hits| {
        let h = hits.clone();
        token_routes(&base, hits).route(
            &format!("{V}/composite/sobjects/Account/Ext__c"),
            patch(move |headers: HeaderMap, body: Bytes| async move {
                h.bump("collection");
                h.capture("collection", &body, &headers);
                let req: Value = serde_json::from_slice(&body).unwrap();
                let results: Vec<Value> = req["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        assert_eq!(r["attributes"]["type"], "Account");
                        if r["Ext__c"] == "k7" {
                            json!({"id": null, "success": false, "created": false, "errors": [
                                {"statusCode": "REQUIRED_FIELD_MISSING",
                                 "message": "Required fields are missing: [Name]",
                                 "fields": ["Name"]}]})
                        } else {
                            json!({"id": "001000000000001AAA", "success": true,
                                   "errors": [], "created": true})
                        }
                    })
                    .collect();
                json_response(StatusCode::OK, Value::Array(results))
            }),
        )
    })
    .await;
    let records: Vec<Record> = (0..450)
        .map(|i| record(json!({"Ext__c": format!("k{i}"), "Name": "n"})))
        .collect();
    let results = client(&stub)
        .upsert_collection("Account", "Ext__c", records, false)
        .await
        .unwrap();
    assert_eq!(results.len(), 450);
    assert_eq!(stub.hits.count("collection"), 3);
    let sizes: Vec<usize> = stub
        .hits
        .bodies("collection")
        .iter()
        .map(|(b, _)| {
            let v: Value = serde_json::from_slice(b).unwrap();
            assert_eq!(v["allOrNone"], false);
            v["records"].as_array().unwrap().len()
        })
        .collect();
    assert_eq!(sizes, [200, 200, 50]);
    let failed = &results[7];
    assert!(!failed.success);
    assert_eq!(failed.errors[0].status_code, "REQUIRED_FIELD_MISSING");
    assert_eq!(failed.errors[0].fields, ["Name"]);
    assert!(results[8].success && results[8].created);
}

#[tokio::test]
async fn delete_collection_chunks_ids() {
    let stub = serve(|base, hits| {
        let h = hits.clone();
        token_routes(&base, hits).route(
            &format!("{V}/composite/sobjects"),
            axum::routing::delete(move |Query(q): Query<HashMap<String, String>>| async move {
                h.bump("delete");
                assert_eq!(q["allOrNone"], "true");
                let results: Vec<Value> = q["ids"]
                    .split(',')
                    .map(|id| json!({"id": id, "success": true, "errors": []}))
                    .collect();
                json_response(StatusCode::OK, Value::Array(results))
            }),
        )
    })
    .await;
    let ids: Vec<String> = (0..250).map(|i| format!("001{i:015}")).collect();
    let results = client(&stub).delete_collection(&ids, true).await.unwrap();
    assert_eq!(results.len(), 250);
    assert_eq!(results[249].id.as_deref(), Some(ids[249].as_str()));
    assert_eq!(stub.hits.count("delete"), 2);
}

#[tokio::test]
async fn describe_and_limits_parse() {
    let stub = serve(|base, hits| {
        token_routes(&base, hits)
            .route(
                &format!("{V}/sobjects/Account/describe"),
                get(|| async { json_response(StatusCode::OK, describe_body()) }),
            )
            .route(
                &format!("{V}/limits"),
                get(|| async {
                    json_response(
                        StatusCode::OK,
                        json!({"DailyApiRequests": {"Max": 15000, "Remaining": 14998},
                               "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000}}),
                    )
                }),
            )
    })
    .await;
    let client = client(&stub);
    let d = client.describe("Account").await.unwrap();
    assert_eq!(d.field("name").unwrap().length, 255);
    let limits = client.limits().await.unwrap();
    assert_eq!(limits.get("DailyBulkV2QueryJobs").unwrap().remaining, 10000);
    assert_eq!(limits.daily_api_usage().unwrap().used, 2);
}
