//! Query-driven `update` jobs: API calls and wall time to bring 100k Accounts up to date
//! after 1% of the rows changed, for pgforce's diffing job beside a naive job that sends
//! every row every run, in the same bench, under the emulator's `instant` and `realistic`
//! latency profiles. Figures are printed as ratios against the naive job (no absolute
//! claims, no assertions on timing) and written to `target/bench/jobs.json`.
//!
//! Both jobs are the same config run by [`pgforce::jobs::JobRunner`] in this process against
//! a throwaway Postgres and the emulator over real HTTP; the naive run is the diffing job
//! with its snapshot emptied first, so it sends every row (through one Bulk API 2.0 job, as
//! a naive reverse-ETL job would). API calls are the emulator's data requests (every
//! endpoint family but OAuth and limits), Bulk job polls included.
//!
//! Env: `PGFORCE_BENCH_JOB_ROWS` (default 100,000). Run: `cargo bench --bench jobs`.

#[path = "support/mod.rs"]
mod support;

use support::{data_calls, Secrets};

use std::time::{Duration, Instant};

use pgforce::config::Config;
use pgforce::jobs::{JobRunOptions, JobRunner};
use pgforce::testing::TempCluster;
use pgforce_emulator::{config as emu, Emulator, EmulatorConfig, EmulatorHandle, ProfileName};
use serde_json::{json, Map, Value};
use tokio_postgres::NoTls;

/// One measured run.
#[derive(Debug, Clone, Copy)]
struct Figures {
    sent: u64,
    api_calls: u64,
    wall: Duration,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(bench());
}

async fn bench() {
    let rows = std::env::var("PGFORCE_BENCH_JOB_ROWS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(100_000i64);
    let cluster = tokio::task::spawn_blocking(TempCluster::start)
        .await
        .unwrap()
        .expect("start a throwaway Postgres");
    let mut out = Map::new();
    out.insert("rows".into(), json!(rows));
    out.insert("changed_fraction".into(), json!(0.01));
    for profile in [ProfileName::Instant, ProfileName::Realistic] {
        let name = format!("{profile:?}").to_lowercase();
        let (diffing, naive) = scenario(&cluster, profile, rows, &name).await;
        println!(
            "{name}: 1% of {rows} changed — diffing job: {} sent, {} API calls, {:.2?}; naive job: {} sent, {} API calls, {:.2?}; calls ratio {:.3}, time ratio {:.3}",
            diffing.sent, diffing.api_calls, diffing.wall, naive.sent, naive.api_calls, naive.wall,
            ratio(diffing.api_calls as f64, naive.api_calls as f64),
            ratio(diffing.wall.as_secs_f64(), naive.wall.as_secs_f64()),
        );
        out.insert(
            name,
            json!({
                "diffing": figures_json(diffing),
                "naive": figures_json(naive),
                "api_calls_ratio": ratio(diffing.api_calls as f64, naive.api_calls as f64),
                "wall_time_ratio": ratio(diffing.wall.as_secs_f64(), naive.wall.as_secs_f64()),
            }),
        );
    }
    out.insert("load_average".into(), json!(support::load_average()));
    support::write_json("jobs", &Value::Object(out));
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

fn figures_json(f: Figures) -> Value {
    json!({"sent": f.sent, "api_calls": f.api_calls, "wall_secs": f.wall.as_secs_f64()})
}

/// A fresh database and emulator: sync once, change 1%, then the diffing run and the naive
/// run of the same change.
async fn scenario(
    cluster: &TempCluster,
    profile: ProfileName,
    rows: i64,
    db: &str,
) -> (Figures, Figures) {
    let admin = connect(&cluster.url("postgres")).await;
    // One statement per call: DROP/CREATE DATABASE refuse to run in a transaction block.
    for sql in [
        format!("DROP DATABASE IF EXISTS bench_{db}"),
        format!("CREATE DATABASE bench_{db}"),
    ] {
        admin.batch_execute(&sql).await.unwrap();
    }
    let url = cluster.url(&format!("bench_{db}"));
    let pg = connect(&url).await;
    pg.batch_execute(&format!(
        "CREATE TABLE usage (account_id bigint PRIMARY KEY, seats int NOT NULL, logins int NOT NULL);
         INSERT INTO usage SELECT i, i % 50, i * 3 FROM generate_series(1, {rows}) i;"
    ))
    .await
    .unwrap();
    let config = EmulatorConfig {
        profile,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("start the emulator");
    seed_accounts(&emulator, rows);
    let runner = JobRunner::connect(&pipeline(&emulator, &url))
        .await
        .expect("connect");
    let first = measure(&emulator, &runner).await;
    println!(
        "{db}: first run sent {} with {} API calls in {:.2?}",
        first.sent, first.api_calls, first.wall
    );
    pg.batch_execute("UPDATE usage SET logins = logins + 1 WHERE account_id % 100 = 0")
        .await
        .unwrap();
    let diffing = measure(&emulator, &runner).await;
    pg.batch_execute("DELETE FROM pgforce.job_snapshots")
        .await
        .unwrap();
    let naive = measure(&emulator, &runner).await;
    emulator.shutdown().await;
    (diffing, naive)
}

async fn measure(emulator: &EmulatorHandle, runner: &JobRunner) -> Figures {
    let before = data_calls(emulator);
    let started = Instant::now();
    let report = runner
        .run("usage", JobRunOptions::default())
        .await
        .expect("the job runs");
    Figures {
        sent: report.sent,
        api_calls: data_calls(emulator) - before,
        wall: started.elapsed(),
    }
}

fn seed_accounts(emulator: &EmulatorHandle, rows: i64) {
    let user = emulator.state().default_user().expect("a default user").id;
    let bodies: Vec<Map<String, Value>> = (1..=rows)
        .map(|i| {
            json!({"Name": format!("Account {i}"), "External_Id__c": i.to_string()})
                .as_object()
                .cloned()
                .unwrap()
        })
        .collect();
    for r in emulator.state().store.insert_many("Account", &bodies, user) {
        r.expect("seed an Account");
    }
}

fn pipeline(emulator: &EmulatorHandle, db: &str) -> pgforce::config::PipelineConfig {
    let base = emulator.base_url();
    let text = format!(
        r#"[[pipelines]]
name = "bench"
publication = "pgforce_bench"
slot = "pgforce_bench"
source = {{ database_url = "env:DATABASE_URL" }}

[pipelines.salesforce]
login_url = "{base}"
instance_url = "{base}"
auth = {{ type = "client_credentials", client_id = "{client}", client_secret = "env:SF_CLIENT_SECRET" }}

[[pipelines.jobs]]
name = "usage"
trigger = {{ type = "interval", seconds = 3600 }}
query = "SELECT account_id::text AS account_id, seats, logins FROM usage"
target = {{ type = "update", object = "Account", match = {{ column = "account_id", field = "External_Id__c" }}, fields = {{ seats = "Seats__c", logins = "Logins_30d__c" }} }}
"#,
        client = emu::DEMO_CLIENT_ID
    );
    let mut config =
        Config::from_toml_with(&text, &Secrets::new(db)).expect("the bench config loads");
    config.pipelines.remove(0)
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}
