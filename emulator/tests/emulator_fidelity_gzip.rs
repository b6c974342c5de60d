//! Bulk API 2.0 with HTTP compression over real HTTP: gzip and deflate uploads, gzipped
//! result downloads when `Accept-Encoding` asks for them, and errors for bad encodings.

mod emulator_support;

use std::io::{Read, Write};

use emulator_support::Emu;
use flate2::read::GzDecoder;
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use reqwest::StatusCode;
use serde_json::json;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> String {
    let mut s = String::new();
    GzDecoder::new(data)
        .read_to_string(&mut s)
        .expect("valid gzip");
    s
}

async fn new_insert_job(emu: &Emu) -> String {
    let r = emu
        .post(
            "/jobs/ingest",
            &json!({"object": "Account", "operation": "insert", "lineEnding": "LF"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()["id"].as_str().unwrap().to_string()
}

async fn put_encoded(emu: &Emu, job: &str, encoding: &str, body: Vec<u8>) -> reqwest::Response {
    emu.client
        .put(emu.url(&format!("/jobs/ingest/{job}/batches")))
        .bearer_auth(&emu.token)
        .header("content-type", "text/csv")
        .header("content-encoding", encoding)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn get_gzip(emu: &Emu, path: &str) -> reqwest::Response {
    emu.client
        .get(emu.url(path))
        .bearer_auth(&emu.token)
        .header("accept-encoding", "gzip, deflate")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn gzip_and_deflate_uploads_are_inflated_and_results_gzipped() {
    let emu = Emu::start().await;
    for (encoding, body) in [
        ("gzip", gzip(b"Name\nGz One\nGz Two\nGz Three\n")),
        ("deflate", zlib(b"Name\nDf One\nDf Two\nDf Three\n")),
    ] {
        let job = new_insert_job(&emu).await;
        let r = put_encoded(&emu, &job, encoding, body).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{encoding}");
        let r = emu
            .patch(
                &format!("/jobs/ingest/{job}"),
                &json!({"state": "UploadComplete"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let (_, info) = emu.wait_job("ingest", &job).await;
        assert_eq!(info["state"], "JobComplete", "{info}");
        assert_eq!(info["numberRecordsProcessed"], 3, "{info}");
        assert_eq!(info["numberRecordsFailed"], 0, "{info}");

        let r = get_gzip(&emu, &format!("/jobs/ingest/{job}/successfulResults")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-encoding"], "gzip");
        let csv = gunzip(&r.bytes().await.unwrap());
        assert_eq!(csv.lines().count(), 4, "{csv}");
        assert!(csv.contains("One"), "{csv}");

        let plain = emu
            .get(&format!("/jobs/ingest/{job}/successfulResults"))
            .await;
        assert!(plain.header("content-encoding").is_none());
        assert_eq!(plain.text.lines().count(), 4, "{}", plain.text);
    }
}

#[tokio::test]
async fn query_results_are_gzipped_with_their_headers() {
    let emu = Emu::start().await;
    for n in 0..3 {
        emu.insert("Account", json!({"Name": format!("Q{n}")}))
            .await;
    }
    let job = emu
        .post(
            "/jobs/query",
            &json!({"operation": "query", "query": "SELECT Name FROM Account ORDER BY Name"}),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    emu.wait_job("query", &job).await;
    let r = get_gzip(&emu, &format!("/jobs/query/{job}/results?maxRecords=2")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["sforce-numberofrecords"], "2");
    assert_ne!(r.headers()["sforce-locator"], "null");
    let csv = gunzip(&r.bytes().await.unwrap());
    assert_eq!(csv, "\"Name\"\n\"Q0\"\n\"Q1\"\n");
}

#[tokio::test]
async fn corrupt_or_unsupported_encodings_are_refused() {
    let emu = Emu::start().await;
    let job = new_insert_job(&emu).await;
    let r = put_encoded(&emu, &job, "gzip", b"Name\nnot actually gzip\n".to_vec()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body[0]["message"].as_str().unwrap().contains("gzip"),
        "{body}"
    );

    let r = put_encoded(&emu, &job, "br", b"Name\nx\n".to_vec()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Nothing was accepted: a valid upload still goes through afterwards.
    let r = put_encoded(&emu, &job, "gzip", gzip(b"Name\nLater\n")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}
