//! Bulk API 2.0 against an in-test stub: the full ingest cycle (create, one upload, close,
//! poll, results keyed by external id), job listing, failures and timeouts, the upload limit,
//! and query results paged by `Sforce-Locator` until `null`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::support::sf_stub::*;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use futures::TryStreamExt;
use pgforce::salesforce::{
    index_by, IngestJobRequest, JobState, PollPolicy, QueryOperation, ResultColumns,
    SalesforceError, MAX_UPLOAD_BYTES,
};
use pgforce::sink::records_to_csv;
use serde_json::{json, Value};

/// The job id the stub hands out.
const JOB: &str = "7505e00000Abc12AAB";

/// A fast poll policy.
fn quick_poll() -> PollPolicy {
    PollPolicy {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(5),
        timeout: Some(Duration::from_secs(5)),
    }
}

/// The documented ingest job body in `state`.
fn ingest_job(state: &str) -> Value {
    json!({"id": JOB, "operation": "upsert", "object": "Contact", "createdById": "005xx",
           "createdDate": "2024-01-02T17:38:59.000+0000",
           "systemModstamp": "2024-01-02T17:38:59.000+0000", "state": state,
           "externalIdFieldName": "Ext__c", "concurrencyMode": "Parallel",
           "contentType": "CSV", "apiVersion": 62.0, "jobType": "V2Ingest",
           "contentUrl": format!("services/data/v62.0/jobs/ingest/{JOB}/batches"),
           "lineEnding": "LF", "columnDelimiter": "COMMA",
           "numberRecordsProcessed": if state == "JobComplete" { 3 } else { 0 },
           "numberRecordsFailed": if state == "JobComplete" { 2 } else { 0 }})
}

/// A CSV response.
fn csv_response(body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            ("content-type", "text/csv"),
            ("sforce-limit-info", "api-usage=30/5000"),
        ],
        body,
    )
        .into_response()
}

/// Successful rows, deliberately not in upload order.
const SUCCESS_CSV: &str = "\"sf__Id\",\"sf__Created\",\"Ext__c\",\"Name\",\"Description\"\n\
\"003000000000003AAA\",\"false\",\"k3\",\"#N/A\",\"\"\n\
\"003000000000001AAA\",\"true\",\"k1\",\"Acme, Inc.\",\"two\nlines, \"\"quoted\"\"\"\n";

/// Failed rows with the documented `sf__Error` shapes.
const FAILED_CSV: &str = "\"sf__Id\",\"sf__Error\",\"Ext__c\",\"Name\",\"Description\"\n\
\"\",\"REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --\",\"k2\",\"\",\"x\"\n\
\"003000000000004AAA\",\"INVALID_FIELD:Failed to deserialize field at col 3. Due to, 'x' is not a valid value for the type xsd:date:Birthdate --\",\"k4\",\"B\",\"\"\n";

/// Routes for the ingest resources of job [`JOB`].
fn ingest_routes(base: String, hits: Arc<Hits>) -> Router {
    let (h1, h2, h3, h4, h5) = (
        hits.clone(),
        hits.clone(),
        hits.clone(),
        hits.clone(),
        hits.clone(),
    );
    let job = format!("{V}/jobs/ingest/{JOB}");
    token_routes(&base, hits)
        .route(
            &format!("{V}/jobs/ingest"),
            post(move |headers: HeaderMap, body: Bytes| async move {
                h1.capture("create", &body, &headers);
                json_response(StatusCode::OK, ingest_job("Open"))
            })
            .get(move |Query(q): Query<HashMap<String, String>>| async move {
                let body = if q.contains_key("queryLocator") {
                    json!({"done": true, "records": [ingest_job("JobComplete")],
                           "nextRecordsUrl": null})
                } else {
                    json!({"done": false, "records": [ingest_job("Open")],
                           "nextRecordsUrl": format!("{V}/jobs/ingest?queryLocator=01gxx")})
                };
                json_response(StatusCode::OK, body)
            }),
        )
        .route(
            &format!("{job}/batches"),
            put(move |headers: HeaderMap, body: Bytes| async move {
                h2.bump("upload");
                h2.capture("upload", &body, &headers);
                StatusCode::CREATED
            }),
        )
        .route(
            &job,
            get(move || async move {
                let state = if h3.bump("poll") < 3 {
                    "InProgress"
                } else {
                    "JobComplete"
                };
                json_response(StatusCode::OK, ingest_job(state))
            })
            .patch(move |headers: HeaderMap, body: Bytes| async move {
                h4.capture("state", &body, &headers);
                let req: Value = serde_json::from_slice(&body).unwrap();
                json_response(StatusCode::OK, ingest_job(req["state"].as_str().unwrap()))
            })
            .delete(move || async move {
                h5.bump("delete");
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            &format!("{job}/successfulResults"),
            get(|| async { csv_response(SUCCESS_CSV) }),
        )
        .route(
            &format!("{job}/failedResults"),
            get(|| async { csv_response(FAILED_CSV) }),
        )
        .route(
            &format!("{job}/unprocessedrecords"),
            get(|| async { csv_response("\"Ext__c\",\"Name\",\"Description\"\n") }),
        )
}

#[tokio::test]
async fn ingest_full_cycle() {
    let stub = serve(ingest_routes).await;
    let client = client(&stub);

    // The job data as the sink writes it (absent = unchanged, null = #N/A).
    let records: Vec<serde_json::Map<String, Value>> = [
        json!({"Ext__c": "k1", "Name": "Acme, Inc.", "Description": "two\nlines, \"quoted\""}),
        json!({"Ext__c": "k2", "Name": null, "Description": "x"}),
        json!({"Ext__c": "k3", "Name": null}),
    ]
    .into_iter()
    .map(|r| r.as_object().unwrap().clone())
    .collect();
    let csv = Bytes::from(records_to_csv(&records));
    let expected_upload = csv.clone();

    let job = client
        .create_ingest_job(&IngestJobRequest::upsert("Contact", "Ext__c"))
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Open);
    assert_eq!(
        job.content_url.as_deref(),
        Some("services/data/v62.0/jobs/ingest/7505e00000Abc12AAB/batches")
    );
    client.upload_job_data(&job.id, csv).await.unwrap();
    let closed = client.close_job(&job.id).await.unwrap();
    assert_eq!(closed.state, JobState::UploadComplete);
    let done = client
        .wait_for_job(&job.id, &quick_poll())
        .await
        .unwrap()
        .check_complete()
        .unwrap();
    assert_eq!(
        (done.number_records_processed, done.number_records_failed),
        (3, 2)
    );
    assert_eq!(stub.hits.count("poll"), 3);

    // What went over the wire.
    let (create, _) = &stub.hits.bodies("create")[0];
    let create: Value = serde_json::from_slice(create).unwrap();
    assert_eq!(
        create,
        json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "Ext__c",
               "contentType": "CSV", "lineEnding": "LF", "columnDelimiter": "COMMA"})
    );
    let (packed, headers) = &stub.hits.bodies("upload")[0];
    // Uploads go gzipped; the CSV inside is the sink's, byte for byte.
    assert_eq!(headers["content-encoding"], "gzip");
    let mut upload = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut upload)
        .unwrap();
    assert_eq!(&upload[..], &expected_upload[..]);
    assert_eq!(
        std::str::from_utf8(&upload).unwrap(),
        "Ext__c,Name,Description\n\
         k1,\"Acme, Inc.\",\"two\nlines, \"\"quoted\"\"\"\n\
         k2,#N/A,x\n\
         k3,#N/A,\n"
    );
    assert_eq!(headers["content-type"], "text/csv");
    assert_eq!(stub.hits.count("upload"), 1);
    let (state, _) = &stub.hits.bodies("state")[0];
    assert_eq!(&state[..], br#"{"state":"UploadComplete"}"#);

    // Results, matched by external id rather than position.
    let ok = index_by(client.successful_results(&done).await.unwrap(), "Ext__c");
    let k1 = &ok["k1"][0];
    assert_eq!((k1.id.as_str(), k1.created), ("003000000000001AAA", true));
    assert_eq!(k1.column("Description"), Some("two\nlines, \"quoted\""));
    assert!(!ok["k3"][0].created);

    let failed = index_by(client.failed_results(&done).await.unwrap(), "Ext__c");
    let k2 = &failed["k2"][0];
    assert_eq!(k2.id, None);
    assert_eq!(k2.error.code, "REQUIRED_FIELD_MISSING");
    assert_eq!(k2.error.message, "Required fields are missing: [LastName]");
    assert_eq!(k2.error.fields, ["LastName"]);
    let k4 = &failed["k4"][0];
    assert_eq!(k4.error.code, "INVALID_FIELD");
    assert!(k4.error.message.ends_with("for the type xsd:date"));
    assert_eq!(k4.error.fields, ["Birthdate"]);

    assert!(client.unprocessed_records(&done).await.unwrap().is_empty());
    client.delete_job(&job.id).await.unwrap();
    assert_eq!(stub.hits.count("delete"), 1);
}

#[tokio::test]
async fn list_jobs_follows_pages_and_abort_works() {
    let stub = serve(ingest_routes).await;
    let client = client(&stub);
    let jobs = client.list_ingest_jobs().await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1].state, JobState::JobComplete);
    let aborted = client.abort_job(JOB).await.unwrap();
    assert_eq!(aborted.state, JobState::Aborted);
    let err = aborted.check_complete().unwrap_err();
    assert!(matches!(err, SalesforceError::JobFailed { .. }));
}

#[tokio::test]
async fn upload_over_the_limit_is_refused_locally() {
    let stub = serve(ingest_routes).await;
    let big = Bytes::from(vec![b'a'; MAX_UPLOAD_BYTES + 1]);
    let err = client(&stub).upload_job_data(JOB, big).await.unwrap_err();
    match &err {
        SalesforceError::UploadTooLarge { size, limit } => {
            assert_eq!((*size, *limit), (MAX_UPLOAD_BYTES + 1, MAX_UPLOAD_BYTES))
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("split"), "{err}");
    assert_eq!(stub.hits.count("upload"), 0);
}

#[tokio::test]
async fn failed_job_and_poll_timeout() {
    let stub = serve(|base, hits| {
        token_routes(&base, hits)
            .route(
                &format!("{V}/jobs/ingest/failed1"),
                get(|| async {
                    let mut job = ingest_job("Failed");
                    job["id"] = json!("failed1");
                    job["errorMessage"] = json!("InvalidBatch : Field name not found : Foo__c");
                    json_response(StatusCode::OK, job)
                }),
            )
            .route(
                &format!("{V}/jobs/ingest/slow1"),
                get(|| async { json_response(StatusCode::OK, ingest_job("InProgress")) }),
            )
    })
    .await;
    let client = client(&stub);
    let job = client.wait_for_job("failed1", &quick_poll()).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    let err = job.check_complete().unwrap_err();
    assert!(
        err.to_string().contains("Field name not found : Foo__c"),
        "{err}"
    );

    let poll = PollPolicy {
        timeout: Some(Duration::from_millis(30)),
        ..quick_poll()
    };
    let err = client.wait_for_job("slow1", &poll).await.unwrap_err();
    assert!(matches!(err, SalesforceError::JobTimeout { .. }), "{err:?}");
}

#[tokio::test]
async fn bulk_query_pages_until_locator_null() {
    let stub = serve(|base, hits| {
        let (h1, h2) = (hits.clone(), hits.clone());
        let job = json!({"id": "750Q", "operation": "query", "object": "Account",
                         "state": "UploadComplete", "jobType": "V2Query",
                         "lineEnding": "LF", "columnDelimiter": "COMMA"});
        let done = {
            let mut j = job.clone();
            j["state"] = json!("JobComplete");
            j["numberRecordsProcessed"] = json!(3);
            j
        };
        token_routes(&base, hits)
            .route(
                &format!("{V}/jobs/query"),
                post(move |headers: HeaderMap, body: Bytes| async move {
                    h1.capture("create", &body, &headers);
                    json_response(StatusCode::OK, job)
                }),
            )
            .route(
                &format!("{V}/jobs/query/750Q"),
                get(move || async move { json_response(StatusCode::OK, done) }),
            )
            .route(
                &format!("{V}/jobs/query/750Q/results"),
                get(move |Query(q): Query<HashMap<String, String>>| async move {
                    h2.bump("results");
                    assert_eq!(q["maxRecords"], "2");
                    let (locator, count, body) = match q.get("locator").map(String::as_str) {
                        None => (
                            "MTAw",
                            "2",
                            "\"Id\",\"Name\",\"Site\"\n\"001A\",\"Acme, Inc.\",\"\"\n\"001B\",\"Beta\",\"HQ\"\n",
                        ),
                        Some("MTAw") => ("null", "1", "\"Id\",\"Name\",\"Site\"\n\"001C\",\"Multi\nLine\",\"\"\n"),
                        Some(other) => panic!("unexpected locator {other}"),
                    };
                    (
                        StatusCode::OK,
                        [
                            ("content-type", "text/csv"),
                            ("sforce-locator", locator),
                            ("sforce-numberofrecords", count),
                        ],
                        body,
                    )
                }),
            )
    })
    .await;
    let client = client(&stub);
    let job = client
        .create_query_job("SELECT Id, Name, Site FROM Account", QueryOperation::Query)
        .await
        .unwrap();
    let job = client
        .wait_for_query_job(&job.id, &quick_poll())
        .await
        .unwrap()
        .check_complete()
        .unwrap();
    let pages: Vec<_> = client
        .query_results(job, Some(2))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(stub.hits.count("results"), 2);
    assert_eq!(pages[0].columns, ["Id", "Name", "Site"]);
    assert_eq!(pages[0].number_of_records, Some(2));
    assert_eq!(pages[0].next_locator.as_deref(), Some("MTAw"));
    assert_eq!(
        pages[0].rows[0],
        [
            Some("001A".to_string()),
            Some("Acme, Inc.".to_string()),
            None
        ]
    );
    assert_eq!(
        pages[1].columns,
        ["Id", "Name", "Site"],
        "each page has its header"
    );
    assert_eq!(pages[1].rows[0][1].as_deref(), Some("Multi\nLine"));
    assert_eq!(pages[1].next_locator, None);

    let (create, _) = &stub.hits.bodies("create")[0];
    let create: Value = serde_json::from_slice(create).unwrap();
    assert_eq!(
        create,
        json!({"operation": "query", "query": "SELECT Id, Name, Site FROM Account",
               "lineEnding": "LF", "columnDelimiter": "COMMA"})
    );
}
