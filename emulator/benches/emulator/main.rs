//! Emulator throughput, each figure printed beside a baseline measured in the same run.
//!
//! - Bulk API 2.0 ingest: `rows` CSV rows of 10 Account columns (create job → PUT →
//!   UploadComplete → JobComplete, one job per 400,000 rows so each upload stays under the
//!   100 MB limit) in rows/s, against the time the `csv` crate alone takes to parse the same
//!   bytes.
//! - REST query paging: pages of 2,000 records per second following `nextRecordsUrl`, against
//!   a raw in-memory scan that clones and serializes the same pages without HTTP or SOQL.
//! - Bulk API 2.0 query: a query job over every ingested row (`SELECT Id, Name, Phone FROM
//!   Account`), the time from create to its first results page of 2,000 records, then pages
//!   of 2,000 per second following `Sforce-Locator`, against the same raw scan baseline.
//! - Memory: resident set growth across the ingest, per stored record (includes the job's
//!   kept upload, about 100 bytes a row, and the change events Change Data Capture keeps).
//!
//! Plain `main` (`harness = false`); no assertions on timing. `PGFORCE_BENCH_ROWS` overrides
//! the row count (default 1,000,000). Run with `cargo bench -p pgforce-emulator --bench
//! emulator` (it builds the emulator crate only, nothing of pgforce's).
//!
//! # `target/bench/emulator.json` (the workspace's target directory)
//!
//! One object: `rows`, `columns`; `ingest_secs`, `ingest_rows_per_sec`, `parse_secs`,
//! `parse_rows_per_sec`, `ingest_vs_parse_ratio` (ingest rate / parse rate); `query_pages`,
//! `query_first_page_secs` (including the query itself), `query_pages_per_sec`,
//! `raw_pages_per_sec`, `query_vs_raw_ratio`; `bulk_query_pages`,
//! `bulk_query_first_page_secs` (create → first page), `bulk_query_pages_per_sec`,
//! `bulk_query_vs_raw_ratio`; `rss_before_bytes`, `rss_after_ingest_bytes`,
//! `rss_per_record_bytes` (null where /proc is unavailable); `load_average_1m` (the machine's
//! load when the run ended).

mod figures;

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use pgforce_emulator::{Emulator, EmulatorConfig};
use serde_json::{json, Value};

/// The ingest CSV's columns (all plain Account fields, no automation).
const COLUMNS: [&str; 10] = [
    "Name",
    "External_Id__c",
    "Phone",
    "Fax",
    "Website",
    "AccountNumber",
    "Site",
    "NumberOfEmployees",
    "BillingCity",
    "Description",
];

/// Rows per ingest job: one upload must stay under the emulator's 100 MB of raw CSV, as
/// Salesforce's 150 MB of base64.
const ROWS_PER_JOB: usize = 400_000;

/// Builds the ingest CSVs, one per job of at most [`ROWS_PER_JOB`] rows.
fn make_csvs(rows: usize) -> Vec<String> {
    (0..rows)
        .step_by(ROWS_PER_JOB)
        .map(|start| make_csv(start..rows.min(start + ROWS_PER_JOB)))
        .collect()
}

/// Builds the CSV of rows `range`.
fn make_csv(range: std::ops::Range<usize>) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(range.len() * 160);
    s.push_str(&COLUMNS.join(","));
    s.push('\n');
    for i in range {
        let _ = writeln!(
            s,
            "Account {i},ext-{i},555-{:04},555-9{:03},https://a{i}.example,AN{i},Site {},{},City {},Customer since {}",
            i % 10_000,
            i % 1_000,
            i % 50,
            i % 5_000,
            i % 300,
            2000 + i % 25
        );
    }
    s
}

/// Baseline: parse the CSV with the csv crate only.
fn parse_only(csv: &str) -> Duration {
    let t = Instant::now();
    let mut r = csv::ReaderBuilder::new().from_reader(csv.as_bytes());
    let mut rec = csv::ByteRecord::new();
    let mut n = 0usize;
    while r.read_byte_record(&mut rec).unwrap_or(false) {
        n += rec.len();
    }
    std::hint::black_box(n);
    t.elapsed()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rows: usize = std::env::var("PGFORCE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let emu = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts");
    let token = emu.issue_default_token().expect("token");
    let base = format!("{}/services/data/v60.0", emu.base_url());
    let client = reqwest::Client::new();
    let csvs = make_csvs(rows);

    let baseline: Duration = csvs.iter().map(|c| parse_only(c)).sum();
    let rss_before = figures::rss_bytes();
    let mut ingest_time = Duration::ZERO;
    for csv in csvs {
        ingest_time += ingest(&client, &base, &token, csv).await;
    }
    let ingest = ingest_time;
    let rss_after = figures::rss_bytes();
    let ingest_rate = rows as f64 / ingest.as_secs_f64();
    let parse_rate = rows as f64 / baseline.as_secs_f64();
    println!(
        "bulk ingest {rows} rows x {} columns: {:.2?} = {ingest_rate:.0} rows/s | baseline csv parse {:.2?} = {parse_rate:.0} rows/s | ratio {:.3}",
        COLUMNS.len(),
        ingest,
        baseline,
        ingest_rate / parse_rate
    );
    let per_record = rss_before
        .zip(rss_after)
        .map(|(b, a)| a.saturating_sub(b) as f64 / rows as f64);
    if let Some(b) = per_record {
        println!("memory: {b:.0} bytes of RSS per stored record (incl. the kept upload)");
    }

    let pages = 100usize.min(rows / 2_000).max(1);
    let (http, first) = query_pages(&client, &base, &token, emu.base_url(), pages).await;
    let raw = raw_pages(emu.state(), pages);
    let http_rate = pages as f64 / http.as_secs_f64();
    let raw_rate = pages as f64 / raw.as_secs_f64();
    println!(
        "query paging {pages} pages x 2000: {http_rate:.1} pages/s (first page incl. query {first:.2?}) | baseline raw scan+serialize {raw_rate:.1} pages/s | ratio {:.3}",
        http_rate / raw_rate
    );
    let (bulk, bulk_first) = bulk_query_pages(&client, &base, &token, pages).await;
    let bulk_rate = pages.saturating_sub(1).max(1) as f64 / bulk.as_secs_f64();
    println!(
        "bulk query {pages} pages x 2000: first page {bulk_first:.2?} after create, then {bulk_rate:.1} pages/s | ratio to raw {:.3}",
        bulk_rate / raw_rate
    );
    figures::write_json(
        "emulator",
        &json!({
            "rows": rows,
            "columns": COLUMNS.len(),
            "ingest_secs": ingest.as_secs_f64(),
            "ingest_rows_per_sec": ingest_rate,
            "parse_secs": baseline.as_secs_f64(),
            "parse_rows_per_sec": parse_rate,
            "ingest_vs_parse_ratio": ingest_rate / parse_rate,
            "query_pages": pages,
            "query_first_page_secs": first.as_secs_f64(),
            "query_pages_per_sec": http_rate,
            "raw_pages_per_sec": raw_rate,
            "query_vs_raw_ratio": http_rate / raw_rate,
            "bulk_query_pages": pages,
            "bulk_query_first_page_secs": bulk_first.as_secs_f64(),
            "bulk_query_pages_per_sec": bulk_rate,
            "bulk_query_vs_raw_ratio": bulk_rate / raw_rate,
            "rss_before_bytes": rss_before,
            "rss_after_ingest_bytes": rss_after,
            "rss_per_record_bytes": per_record,
            "load_average_1m": figures::load_average(),
        }),
    );
}

/// Runs one ingest job to JobComplete; returns the wall time from create to complete.
async fn ingest(client: &reqwest::Client, base: &str, token: &str, csv: String) -> Duration {
    let t = Instant::now();
    let job: Value = client
        .post(format!("{base}/jobs/ingest"))
        .bearer_auth(token)
        .json(&json!({"object": "Account", "operation": "insert"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("job json");
    let id = job["id"].as_str().expect("job id").to_string();
    let put = client
        .put(format!("{base}/jobs/ingest/{id}/batches"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("upload");
    assert_eq!(put.status().as_u16(), 201);
    client
        .patch(format!("{base}/jobs/ingest/{id}"))
        .bearer_auth(token)
        .json(&json!({"state": "UploadComplete"}))
        .send()
        .await
        .expect("close");
    loop {
        let info: Value = client
            .get(format!("{base}/jobs/ingest/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("poll")
            .json()
            .await
            .expect("info");
        match info["state"].as_str() {
            Some("JobComplete") | Some("Failed") => {
                println!(
                    "  job {}: processed {} failed {}",
                    info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]
                );
                return t.elapsed();
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Follows `nextRecordsUrl` for `pages` pages; returns (time for all pages, first page).
async fn query_pages(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    host: &str,
    pages: usize,
) -> (Duration, Duration) {
    let t = Instant::now();
    let mut url = format!("{base}/query?q=SELECT+Id,Name,Phone+FROM+Account");
    let mut first = Duration::ZERO;
    for i in 0..pages {
        let page: Value = client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("page json");
        if i == 0 {
            first = t.elapsed();
        }
        match page["nextRecordsUrl"].as_str() {
            Some(next) => url = format!("{host}{next}"),
            None => break,
        }
    }
    (t.elapsed(), first)
}

/// Runs a Bulk query job over every Account and reads `pages` result pages of 2,000;
/// returns (time for the pages after the first, time from create to the first page).
async fn bulk_query_pages(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    pages: usize,
) -> (Duration, Duration) {
    let t = Instant::now();
    let job: Value = client
        .post(format!("{base}/jobs/query"))
        .bearer_auth(token)
        .json(&json!({"operation": "query", "query": "SELECT Id, Name, Phone FROM Account"}))
        .send()
        .await
        .expect("create query job")
        .json()
        .await
        .expect("job json");
    let id = job["id"].as_str().expect("job id").to_string();
    loop {
        let info: Value = client
            .get(format!("{base}/jobs/query/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("poll")
            .json()
            .await
            .expect("info");
        match info["state"].as_str() {
            Some("JobComplete") => break,
            Some("Failed") | Some("Aborted") => panic!("query job ended {}", info["state"]),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let mut locator: Option<String> = None;
    let mut first = Duration::ZERO;
    let mut rest = Instant::now();
    for i in 0..pages {
        let mut url = format!("{base}/jobs/query/{id}/results?maxRecords=2000");
        if let Some(l) = &locator {
            url.push_str("&locator=");
            url.push_str(l);
        }
        let resp = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("results");
        let next = resp
            .headers()
            .get("sforce-locator")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        std::hint::black_box(resp.bytes().await.expect("page body").len());
        if i == 0 {
            first = t.elapsed();
            rest = Instant::now();
        }
        match next.filter(|l| l != "null") {
            Some(l) => locator = Some(l),
            None => break,
        }
    }
    (rest.elapsed().max(Duration::from_micros(1)), first)
}

/// Baseline: clone and serialize `pages` pages of 2,000 records straight from the store.
fn raw_pages(state: &pgforce_emulator::AppState, pages: usize) -> Duration {
    let t = Instant::now();
    let mut page = Vec::with_capacity(2_000);
    let mut done = 0;
    let _ = state.store.scan_rows("Account", None, false, |r| {
        let mut m = serde_json::Map::new();
        for k in ["Id", "Name", "Phone"] {
            m.insert(k.to_string(), r.get(k).unwrap_or(Value::Null));
        }
        page.push(Value::Object(m));
        if page.len() == 2_000 {
            std::hint::black_box(serde_json::to_vec(&page).map(|v| v.len()).unwrap_or(0));
            page.clear();
            done += 1;
            if done == pages {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    t.elapsed()
}
