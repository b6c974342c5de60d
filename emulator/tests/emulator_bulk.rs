//! Bulk API 2.0 ingest and query jobs against an in-process emulator.

mod emulator_support;

use emulator_support::{Emu, V};
use pgforce_emulator::{FaultKind, FaultSpec};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Creates an ingest job; returns its info.
async fn create(emu: &Emu, body: Value) -> Value {
    let r = emu.post("/jobs/ingest", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()
}

/// Create, upload, close and wait; returns (job id, states seen, final info).
async fn run_job(emu: &Emu, body: Value, csv: &str) -> (String, Vec<String>, Value) {
    let job = create(emu, body).await;
    let id = job["id"].as_str().unwrap().to_string();
    let put = emu
        .put_csv(&format!("/jobs/ingest/{id}/batches"), csv)
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text);
    assert!(put.text.is_empty());
    let close = emu
        .patch(
            &format!("/jobs/ingest/{id}"),
            &json!({"state": "UploadComplete"}),
        )
        .await;
    assert_eq!(close.status, StatusCode::OK, "{}", close.text);
    let (seen, info) = emu.wait_job("ingest", &id).await;
    (id, seen, info)
}

async fn results(emu: &Emu, id: &str, kind: &str) -> String {
    let r = emu.get(&format!("/jobs/ingest/{id}/{kind}/")).await;
    assert_eq!(r.status, StatusCode::OK, "{kind}: {}", r.text);
    r.text
}

#[tokio::test]
async fn insert_job_lifecycle_and_job_object() {
    let emu = Emu::start().await;
    let job = create(
        &emu,
        json!({"object": "Account", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"}),
    )
    .await;
    let id = job["id"].as_str().unwrap();
    assert!(id.starts_with("750") && id.len() == 18);
    assert_eq!(job["state"], "Open");
    assert_eq!(
        job["contentUrl"],
        format!("services/data/{V}/jobs/ingest/{id}/batches")
    );
    assert!(job["apiVersion"].is_number());
    assert_eq!(job["apiVersion"].to_string(), "60.0");
    assert_eq!(job["concurrencyMode"], "Parallel");
    assert_eq!(job["columnDelimiter"], "COMMA");
    assert!(job["createdById"].as_str().unwrap().starts_with("005"));
    assert!(job["createdDate"].as_str().unwrap().ends_with("+0000"));

    let csv = "Name,Phone\nAcme,123\n\"Globex, Inc\",\n";
    let (id, seen, info) = run_job(
        &emu,
        json!({"object": "Account", "operation": "insert"}),
        csv,
    )
    .await;
    assert!(seen.contains(&"InProgress".to_string()), "{seen:?}");
    assert_eq!(seen.last().unwrap(), "JobComplete");
    assert_eq!(info["jobType"], "V2Ingest");
    assert_eq!(info["numberRecordsProcessed"], 2);
    assert_eq!(info["numberRecordsFailed"], 0);
    for k in [
        "retries",
        "totalProcessingTime",
        "apiActiveProcessingTime",
        "apexProcessingTime",
    ] {
        assert!(info[k].is_number(), "{k}");
    }
    let ok = results(&emu, &id, "successfulResults").await;
    let mut lines = ok.lines();
    assert_eq!(
        lines.next().unwrap(),
        r#""sf__Id","sf__Created","Name","Phone""#
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("\"001") && row.ends_with(r#","true","Acme","123""#),
        "{row}"
    );
    assert!(ok.contains(r#""Globex, Inc""#));
    let q = emu
        .get("/query?q=SELECT+Name,Phone+FROM+Account+WHERE+Name+LIKE+%27Globex%25%27")
        .await
        .json();
    assert_eq!(
        q["records"][0]["Phone"],
        Value::Null,
        "empty cell not set on insert"
    );
    assert_eq!(
        results(&emu, &id, "failedResults").await,
        "\"sf__Id\",\"sf__Error\",\"Name\",\"Phone\"\n"
    );
    assert_eq!(
        results(&emu, &id, "unprocessedrecords").await,
        "\"Name\",\"Phone\"\n"
    );

    let list = emu.get("/jobs/ingest").await.json();
    assert_eq!(list["done"], true);
    assert!(list["records"].as_array().unwrap().len() >= 2);
    assert_eq!(
        emu.delete(&format!("/jobs/ingest/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        emu.get(&format!("/jobs/ingest/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn failed_rows_report_code_message_fields() {
    let emu = Emu::start().await;
    let csv = "FirstName,LastName\nJo,\nAl,Smith\n";
    let (id, _, info) = run_job(
        &emu,
        json!({"object": "Contact", "operation": "insert"}),
        csv,
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 1);
    let failed = results(&emu, &id, "failedResults").await;
    assert!(
        failed.contains(r#""","REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --","Jo","""#),
        "{failed}"
    );
}

#[tokio::test]
async fn update_with_na_and_empty_cells() {
    let emu = Emu::start().await;
    let id = emu
        .insert(
            "Account",
            json!({"Name": "Before", "Phone": "1", "Website": "w"}),
        )
        .await;
    let csv = format!("Id,Name,Phone,Website\n{id},After,#N/A,\n");
    let (job, _, info) = run_job(
        &emu,
        json!({"object": "Account", "operation": "update"}),
        &csv,
    )
    .await;
    assert_eq!(
        info["numberRecordsFailed"],
        0,
        "{}",
        results(&emu, &job, "failedResults").await
    );
    let rec = emu.read("Account", &id).await.json();
    assert_eq!(rec["Name"], "After");
    assert_eq!(rec["Phone"], Value::Null, "#N/A nulls");
    assert_eq!(rec["Website"], "w", "empty cell leaves unchanged");
    let ok = results(&emu, &job, "successfulResults").await;
    assert!(ok.contains(&format!(r#""{id}","false","#)));
}

#[tokio::test]
async fn upsert_relationship_columns_and_duplicate_external_ids() {
    let emu = Emu::start().await;
    let parent = emu
        .insert(
            "Account",
            json!({"Name": "Parent", "External_Id__c": "P-1"}),
        )
        .await;
    let csv = "External_Id__c,LastName,Account.External_Id__c\n\
               c1,One,P-1\n\
               c2,Two,missing\n\
               dup,Three,\n\
               DUP,Four,\n";
    let (id, _, info) = run_job(
        &emu,
        json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "External_Id__c"}),
        csv,
    )
    .await;
    assert_eq!(info["externalIdFieldName"], "External_Id__c");
    assert_eq!(info["numberRecordsProcessed"], 4);
    assert_eq!(info["numberRecordsFailed"], 3);
    let failed = results(&emu, &id, "failedResults").await;
    assert!(failed.contains("INVALID_FIELD:Foreign key external ID: missing not found for field External_Id__c in entity Account"), "{failed}");
    assert_eq!(
        failed
            .matches("DUPLICATE_VALUE:Duplicate external id specified")
            .count(),
        2,
        "{failed}"
    );
    let q = emu
        .get("/query?q=SELECT+AccountId+FROM+Contact+WHERE+External_Id__c+%3D+%27c1%27")
        .await
        .json();
    assert_eq!(q["records"][0]["AccountId"], parent.as_str());

    let again = "External_Id__c,LastName\nc1,Renamed\n";
    let (id2, _, _) = run_job(
        &emu,
        json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "External_Id__c"}),
        again,
    )
    .await;
    let ok = results(&emu, &id2, "successfulResults").await;
    assert!(ok.contains(r#","false","c1","Renamed""#), "{ok}");
}

#[tokio::test]
async fn delete_and_hard_delete_jobs() {
    let emu = Emu::start().await;
    let a = emu.insert("Account", json!({"Name": "A"})).await;
    let b = emu.insert("Account", json!({"Name": "B"})).await;
    let csv = format!("Id\n{a}\n001000000000000AAA\nnot-an-id\n");
    let (id, _, info) = run_job(
        &emu,
        json!({"object": "Account", "operation": "delete"}),
        &csv,
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 2);
    assert_eq!(emu.read("Account", &a).await.status, StatusCode::NOT_FOUND);
    let failed = results(&emu, &id, "failedResults").await;
    assert!(failed.contains("MALFORMED_ID"), "{failed}");
    let csv = format!("Id\n{b}\n");
    run_job(
        &emu,
        json!({"object": "Account", "operation": "hardDelete"}),
        &csv,
    )
    .await;
    let all = emu
        .get(&format!(
            "/queryAll?q=SELECT+Id+FROM+Account+WHERE+Id+%3D+%27{b}%27"
        ))
        .await
        .json();
    assert_eq!(
        all["totalSize"], 0,
        "hard delete leaves nothing for queryAll"
    );
}

#[tokio::test]
async fn second_put_makes_close_fail() {
    let emu = Emu::start().await;
    let job = create(&emu, json!({"object": "Account", "operation": "insert"})).await;
    let id = job["id"].as_str().unwrap();
    let path = format!("/jobs/ingest/{id}/batches");
    assert_eq!(
        emu.put_csv(&path, "Name\nA\n").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        emu.put_csv(&path, "Name\nB\n").await.status,
        StatusCode::CREATED
    );
    let close = emu
        .patch(
            &format!("/jobs/ingest/{id}"),
            &json!({"state": "UploadComplete"}),
        )
        .await;
    assert_eq!(close.status, StatusCode::BAD_REQUEST);
    assert_eq!(close.json()[0]["errorCode"], "INVALIDJOB");
    assert!(close.json()[0]["message"]
        .as_str()
        .unwrap()
        .contains("Found multipe contents for job"));
}

#[tokio::test]
async fn aborted_job_leaves_rows_unprocessed() {
    let emu = Emu::start().await;
    let job = create(&emu, json!({"object": "Account", "operation": "insert"})).await;
    let id = job["id"].as_str().unwrap();
    emu.put_csv(&format!("/jobs/ingest/{id}/batches"), "Name\nA\nB\n")
        .await;
    let r = emu
        .patch(&format!("/jobs/ingest/{id}"), &json!({"state": "Aborted"}))
        .await;
    assert_eq!(r.json()["state"], "Aborted");
    let again = emu
        .patch(
            &format!("/jobs/ingest/{id}"),
            &json!({"state": "UploadComplete"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        results(&emu, id, "unprocessedRecords").await,
        "\"Name\"\n\"A\"\n\"B\"\n"
    );
    let put = emu
        .put_csv(&format!("/jobs/ingest/{id}/batches"), "Name\nC\n")
        .await;
    assert_eq!(put.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn malformed_csv_fails_the_job() {
    let emu = Emu::start().await;
    for (csv, needle) in [
        (
            "Name,Foo\nA,1\n",
            "InvalidBatch : Field name not found : Foo",
        ),
        ("Name\n\"unterminated\n", "InvalidBatch"),
        ("Name,Phone\nA,1,extra\n", "Wrong number of columns"),
        ("", "InvalidBatch"),
    ] {
        let (id, _, info) = run_job(
            &emu,
            json!({"object": "Account", "operation": "insert"}),
            csv,
        )
        .await;
        assert_eq!(info["state"], "Failed", "{csv:?}");
        let msg = info["errorMessage"].as_str().unwrap();
        assert!(msg.contains(needle), "{csv:?}: {msg}");
        assert_eq!(info["numberRecordsProcessed"], 0);
        let _ = results(&emu, &id, "unprocessedrecords").await;
    }
}

#[tokio::test]
async fn create_validates_options() {
    let emu = Emu::start().await;
    for body in [
        json!({"object": "Account", "operation": "merge"}),
        json!({"object": "Account", "operation": "insert", "columnDelimiter": "SPACE"}),
        json!({"object": "Account", "operation": "insert", "lineEnding": "CR"}),
        json!({"object": "Nope", "operation": "insert"}),
        json!({"object": "Account", "operation": "upsert"}),
        json!({"object": "Account", "operation": "upsert", "externalIdFieldName": "Name"}),
        json!({"operation": "insert"}),
    ] {
        let r = emu.post("/jobs/ingest", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(r.json()[0]["errorCode"].is_string(), "{}", r.text);
    }
    let r = emu.call(Method::POST, "/jobs/ingest", None, &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn dialects_tab_and_crlf() {
    let emu = Emu::start().await;
    let csv = "Name\tDescription\r\nTabby\t\"line1\r\nline2\"\r\n";
    let (id, _, info) = run_job(
        &emu,
        json!({"object": "Account", "operation": "insert", "columnDelimiter": "TAB", "lineEnding": "CRLF"}),
        csv,
    )
    .await;
    assert_eq!(info["numberRecordsProcessed"], 1);
    let ok = results(&emu, &id, "successfulResults").await;
    assert!(
        ok.starts_with("\"sf__Id\"\t\"sf__Created\"\t\"Name\"\t\"Description\"\r\n"),
        "{ok:?}"
    );
}

#[tokio::test]
async fn fault_makes_job_end_failed_partway() {
    let emu = Emu::start().await;
    emu.handle
        .add_fault(FaultSpec::always(FaultKind::BulkJobFailed {
            message: Some("InternalServerError : boom".into()),
        }));
    let csv: String = std::iter::once("Name\n".to_string())
        .chain((0..10).map(|i| format!("F{i}\n")))
        .collect();
    let (id, _, info) = run_job(
        &emu,
        json!({"object": "Account", "operation": "insert"}),
        &csv,
    )
    .await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(info["errorMessage"], "InternalServerError : boom");
    let processed = info["numberRecordsProcessed"].as_u64().unwrap();
    assert!(processed > 0 && processed < 10, "{processed}");
    let unprocessed = results(&emu, &id, "unprocessedrecords").await;
    assert_eq!(unprocessed.lines().count() as u64, 1 + 10 - processed);
}

#[tokio::test]
async fn bulk_batches_allocation_is_used() {
    let emu = Emu::start().await;
    let before = emu.handle.state().limits.bulk_batches.usage().0;
    run_job(
        &emu,
        json!({"object": "Account", "operation": "insert"}),
        "Name\nA\n",
    )
    .await;
    assert_eq!(emu.handle.state().limits.bulk_batches.usage().0, before + 1);
}

// ---- Bulk query -------------------------------------------------------------------------

async fn create_query(emu: &Emu, soql: &str) -> emulator_support::Resp {
    emu.post("/jobs/query", &json!({"operation": "query", "query": soql}))
        .await
}

#[tokio::test]
async fn query_job_pages_by_locator() {
    let emu = Emu::start().await;
    for i in 0..5 {
        emu.insert("Account", json!({"Name": format!("Q{i}"), "Description": if i == 0 { Value::Null } else { json!("d \"q\"") }}))
            .await;
    }
    let r = create_query(
        &emu,
        "SELECT Id, Name, Description, CreatedDate, IsDeleted FROM Account ORDER BY Name",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let job = r.json();
    assert_eq!(job["state"], "UploadComplete");
    assert_eq!(job["operation"], "query");
    assert_eq!(job["object"], "Account");
    let id = job["id"].as_str().unwrap().to_string();
    let (seen, info) = emu.wait_job("query", &id).await;
    assert_eq!(seen.last().unwrap(), "JobComplete", "{seen:?}");
    assert_eq!(info["jobType"], "V2Query");
    assert_eq!(info["numberRecordsProcessed"], 5);

    let page1 = emu
        .get(&format!("/jobs/query/{id}/results?maxRecords=2"))
        .await;
    assert_eq!(page1.status, StatusCode::OK);
    assert_eq!(page1.header("sforce-numberofrecords").unwrap(), "2");
    let locator = page1.header("sforce-locator").unwrap();
    assert_ne!(locator, "null");
    let mut lines = page1.text.lines();
    assert_eq!(
        lines.next().unwrap(),
        r#""Id","Name","Description","CreatedDate","IsDeleted""#
    );
    let first = lines.next().unwrap();
    assert!(first.contains(r#","Q0","","#), "null is empty: {first}");
    assert!(
        first.ends_with(r#"Z","false""#) && !first.contains("+0000"),
        "{first}"
    );
    let second = lines.next().unwrap();
    assert!(second.contains(r#""d ""q""""#), "{second}");

    let page2 = emu
        .get(&format!(
            "/jobs/query/{id}/results?maxRecords=2&locator={locator}"
        ))
        .await;
    let locator2 = page2.header("sforce-locator").unwrap();
    let page3 = emu
        .get(&format!(
            "/jobs/query/{id}/results?maxRecords=2&locator={locator2}"
        ))
        .await;
    assert_eq!(page3.header("sforce-locator").unwrap(), "null");
    assert_eq!(page3.header("sforce-numberofrecords").unwrap(), "1");
    assert!(page3.text.starts_with("\"Id\""), "every page has a header");

    let other_version = emu
        .get(&format!("/services/data/v59.0/jobs/query/{id}/results"))
        .await;
    assert_eq!(other_version.status, StatusCode::CONFLICT);
    let bad = emu
        .get(&format!("/jobs/query/{id}/results?locator=%21%21"))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        emu.delete(&format!("/jobs/query/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn query_job_refuses_unsupported_soql() {
    let emu = Emu::start().await;
    for soql in [
        "SELECT COUNT() FROM Account",
        "SELECT Id FROM Account LIMIT 10 OFFSET 5",
        "SELECT Id, BillingAddress FROM Account",
        "SELECT Id FRM Account",
        "SELECT Nope__c FROM Account",
    ] {
        let r = create_query(&emu, soql).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{soql}: {}", r.text);
    }
    let r = emu
        .post(
            "/jobs/query",
            &json!({"operation": "select", "query": "SELECT Id FROM Account"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn query_all_job_and_abort() {
    let emu = Emu::start().await;
    let id = emu.insert("Account", json!({"Name": "Deleted"})).await;
    emu.delete(&format!("/sobjects/Account/{id}")).await;
    let r = emu
        .post(
            "/jobs/query",
            &json!({"operation": "queryAll", "query": "SELECT Id, IsDeleted FROM Account"}),
        )
        .await
        .json();
    let job = r["id"].as_str().unwrap().to_string();
    emu.wait_job("query", &job).await;
    let page = emu.get(&format!("/jobs/query/{job}/results")).await;
    assert!(page.text.contains(r#""true""#), "{}", page.text);

    let r = create_query(&emu, "SELECT Id FROM Account").await.json();
    let job = r["id"].as_str().unwrap().to_string();
    let aborted = emu
        .patch(&format!("/jobs/query/{job}"), &json!({"state": "Aborted"}))
        .await;
    assert_eq!(aborted.json()["state"], "Aborted");
    let (_, info) = emu.wait_job("query", &job).await;
    assert_eq!(info["state"], "Aborted");
    let results = emu.get(&format!("/jobs/query/{job}/results")).await;
    assert_eq!(results.status, StatusCode::BAD_REQUEST);
    let list = emu.get("/jobs/query").await.json();
    assert_eq!(list["records"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn query_job_streams_pages_of_its_snapshot() {
    let emu = Emu::start().await;
    for i in 0..5 {
        emu.insert(
            "Account",
            json!({"Name": format!("S{i}"), "External_Id__c": format!("S-{i}")}),
        )
        .await;
    }
    let r = create_query(&emu, "SELECT Name FROM Account WHERE Name LIKE 'S%'").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let (seen, info) = emu.wait_job("query", &id).await;
    assert_eq!(seen.last().unwrap(), "JobComplete", "{seen:?}");
    assert_eq!(info["numberRecordsProcessed"], 5);
    emu.insert("Account", json!({"Name": "S-late"})).await;

    let mut names = Vec::new();
    let mut locator: Option<String> = None;
    let mut second_page = None;
    for _ in 0..5 {
        let url = match &locator {
            Some(l) => format!("/jobs/query/{id}/results?maxRecords=2&locator={l}"),
            None => format!("/jobs/query/{id}/results?maxRecords=2"),
        };
        let page = emu.get(&url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let rows: Vec<String> = page.text.lines().skip(1).map(str::to_string).collect();
        assert_eq!(
            page.header("sforce-numberofrecords").unwrap(),
            rows.len().to_string()
        );
        if locator.is_some() && second_page.is_none() {
            second_page = Some((url.clone(), page.text.clone()));
        }
        names.extend(rows);
        match page.header("sforce-locator").filter(|l| l != "null") {
            Some(l) => locator = Some(l),
            None => break,
        }
    }
    assert_eq!(names, ["\"S0\"", "\"S1\"", "\"S2\"", "\"S3\"", "\"S4\""]);
    let (url, text) = second_page.unwrap();
    assert_eq!(
        emu.get(&url).await.text,
        text,
        "a locator can be read again"
    );
    let unknown = emu
        .get(&format!("/jobs/query/{id}/results?locator=OTk"))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);

    let r = create_query(
        &emu,
        "SELECT Id, Name FROM Account WHERE External_Id__c = 's-3'",
    )
    .await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    let (_, info) = emu.wait_job("query", &id).await;
    assert_eq!(info["numberRecordsProcessed"], 1);
    let page = emu.get(&format!("/jobs/query/{id}/results")).await;
    assert!(
        page.text.lines().nth(1).unwrap().ends_with(",\"S3\""),
        "{}",
        page.text
    );
    assert_eq!(page.header("sforce-locator").unwrap(), "null");
}
