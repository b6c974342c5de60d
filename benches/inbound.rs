//! Salesforce → Postgres, each figure beside a baseline measured in the same run (machines
//! are noisy: ratios, no absolute claims, no assertions on timing).
//!
//! pgforce's inbound engine runs in this process through the library entry point
//! `pgforce run` uses ([`pgforce::inbound::supervise`] with
//! [`pgforce::cdc::entry::start_entry`]: each entry with its configured source), against a
//! throwaway Postgres (TempCluster) and the Salesforce emulator (in this process too, with
//! a latency profile: `instant`, or `realistic` with round trips, per-record server time,
//! Bulk jobs that queue and process at a bounded rate; see the emulator's `latency`
//! module). The emulator's Pub/Sub keepalive is 1 s (Salesforce: within 270 s); it only
//! shortens how long a CDC entry waits for its first position on a quiet topic.
//!
//! Scenarios:
//! - **latency**, once under each profile (`instant`, then `realistic`): Accounts created
//!   through REST one every 500 ms; the instant each create returns is its commit instant,
//!   and a watcher in this process (one query every 20 ms) takes the instant its row
//!   appears in each Postgres table. At the same time, on the same changes: pgforce with
//!   `source = "cdc"` (Pub/Sub API subscription), pgforce polling at its shortest interval
//!   (`poll_interval_secs = 1`), and the baseline, a plain SOQL poll on `LastModifiedDate`
//!   every `PGFORCE_BENCH_BASELINE_SECS` (default 10 s, a scaled-down stand-in for the
//!   minutes Heroku Connect (10 min default) or a scheduled ELT tool waits), upserting into
//!   its own table. The watcher's 20 ms query interval is the resolution of every figure,
//!   and the emulator publishes change events at commit with no event-bus delay (neither
//!   profile models one), so the CDC figures are pgforce's share of the latency.
//! - **initial load**: `PGFORCE_BENCH_LOAD_ROWS` existing Accounts loaded by a fresh
//!   pipeline with `initial_load = "bulk"` (Bulk 2.0 query) and, as the baseline, with
//!   `initial_load = "soql"` (paged REST query), timed from start to the last row in
//!   Postgres, under `PGFORCE_BENCH_PROFILE` (default `realistic`).
//!
//! Keys of `target/bench/inbound.json` (`null` when not measured):
//! `profile` (of the top-level latency keys and the load), `changes`,
//! `baseline_interval_secs`, `cdc_p50_ms`, `cdc_p99_ms`, `poll_p50_ms`, `poll_p99_ms`,
//! `baseline_p50_ms`, `baseline_p99_ms`, `p50_ratio_vs_baseline` (baseline ÷ pgforce
//! polling), `cdc_p50_ratio_vs_baseline` (baseline ÷ pgforce CDC), `cdc_missing` /
//! `poll_missing` / `baseline_missing` (changes not seen by the deadline);
//! `latency_by_profile.<instant|realistic>` holds the same latency keys per profile;
//! `load_rows`, `load_rows_per_sec_bulk`, `load_rows_per_sec_soql`, `load_bulk_speedup`
//! (bulk ÷ soql), `load_average`.
//!
//! Env: `PGFORCE_BENCH_PROFILE` (`instant` or `realistic`), `PGFORCE_BENCH_CHANGES`
//! (default 40 per profile, i.e. a 20 s steady run each), `PGFORCE_BENCH_BASELINE_SECS`
//! (default 10), `PGFORCE_BENCH_LOAD_ROWS` (default 20,000). A default run takes about
//! three minutes. Run: `cargo bench --bench inbound`.

mod support;

use support::Secrets;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use pgforce::cdc::entry::start_entry;
use pgforce::config::{Config, PipelineConfig};
use pgforce::inbound::{supervise, InboundError};
use pgforce::salesforce::rest::Record;
use pgforce::salesforce::SalesforceClient;
use pgforce::server::Health;
use pgforce::testing::TempCluster;
use pgforce_emulator::{config as emu, Emulator, EmulatorConfig, EmulatorHandle, ProfileName};
use serde_json::{json, Map, Value};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

const DB_ENV: &str = "PGFORCE_BENCH_DB";
const SECRET_ENV: &str = "PGFORCE_BENCH_SF_SECRET";
const WATCH_EVERY: Duration = Duration::from_millis(20);
const CHANGE_EVERY: Duration = Duration::from_millis(500);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(bench());
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

struct Ctx {
    db_url: String,
    pg: Client,
    profile: ProfileName,
}

async fn bench() {
    let profile = std::env::var("PGFORCE_BENCH_PROFILE")
        .ok()
        .and_then(|s| ProfileName::parse(&s))
        .unwrap_or(ProfileName::Realistic);
    let changes = env_num("PGFORCE_BENCH_CHANGES", 40) as usize;
    let baseline_secs = env_num("PGFORCE_BENCH_BASELINE_SECS", 10).max(1);
    let load_rows = env_num("PGFORCE_BENCH_LOAD_ROWS", 20_000) as usize;
    let cluster = tokio::task::spawn_blocking(TempCluster::start)
        .await
        .expect("cluster start-up")
        .expect("a throwaway Postgres");
    let db_url = cluster.url("postgres");
    let (pg, conn) = tokio_postgres::connect(&db_url, NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let ctx = Ctx {
        db_url,
        pg,
        profile,
    };
    println!("inbound bench, profile {profile:?}");

    let mut by_profile = Map::new();
    let mut main = Value::Null;
    for p in [ProfileName::Instant, ProfileName::Realistic] {
        let lat = latency(&ctx, p, changes, Duration::from_secs(baseline_secs)).await;
        let figures = lat.report(p, changes, baseline_secs);
        if p == profile {
            main = figures.clone();
        }
        by_profile.insert(profile_name(p), figures);
    }

    let bulk = initial_load(&ctx, load_rows, "bulk").await;
    let soql = initial_load(&ctx, load_rows, "soql").await;
    let per_sec = |d: Option<Duration>| d.map(|d| load_rows as f64 / d.as_secs_f64());
    let (bulk_rate, soql_rate) = (per_sec(bulk), per_sec(soql));
    println!(
        "initial load of {load_rows} records:\n  Bulk 2.0 query: {} rows/s\n  \
         paged SOQL:     {} rows/s\n  speed-up (bulk / soql): {}",
        fmt(bulk_rate),
        fmt(soql_rate),
        ratio(
            soql.map(|d| d.as_secs_f64() * 1000.0),
            bulk.map(|d| d.as_secs_f64() * 1000.0)
        ),
    );

    let mut out = match main {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    out.insert("profile".into(), json!(profile_name(profile)));
    out.insert("changes".into(), json!(changes));
    out.insert("baseline_interval_secs".into(), json!(baseline_secs));
    out.insert("latency_by_profile".into(), Value::Object(by_profile));
    out.insert("load_rows".into(), json!(load_rows));
    out.insert("load_rows_per_sec_bulk".into(), json!(bulk_rate));
    out.insert("load_rows_per_sec_soql".into(), json!(soql_rate));
    out.insert(
        "load_bulk_speedup".into(),
        json!(ratio_num(bulk_rate, soql_rate)),
    );
    out.insert("load_average".into(), json!(support::load_average()));
    support::write_json("inbound", &Value::Object(out));
    drop(cluster);
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into())
}

fn fmt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into())
}

fn ratio_num(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    ratio_num(a, b)
        .map(|r| format!("{r:.1}x"))
        .unwrap_or_else(|| "-".into())
}

/// The `p`th percentile in milliseconds, `None` when nothing was measured.
fn pct(samples: &[Duration], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.saturating_sub(1).min(v.len() - 1)).copied()
}

fn profile_name(p: ProfileName) -> String {
    format!("{p:?}").to_lowercase()
}

async fn emulator(profile: ProfileName) -> EmulatorHandle {
    let mut config = EmulatorConfig {
        daily_api_limit: 100_000_000,
        profile,
        ..EmulatorConfig::default()
    };
    config.pubsub.keepalive_ms = 1000;
    Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator")
}

/// A pipeline `name` with one Account entry into `table` read with `source` (`poll` or
/// `cdc`; `extra` adds entry keys).
fn pipeline(
    ctx: &Ctx,
    emulator: &EmulatorHandle,
    name: &str,
    table: &str,
    source: &str,
    extra: &str,
) -> PipelineConfig {
    let base = emulator.base_url();
    let pubsub = emulator.pubsub_url();
    let text = format!(
        r#"[[pipelines]]
name = "{name}"
source = {{ database_url = "env:{DB_ENV}" }}
state_schema = "pgforce_{name}"
replication_origin = "pgforce_{name}"

[pipelines.salesforce]
login_url = "{base}"
instance_url = "{base}"
api_version = "62.0"
pubsub_endpoint = "{pubsub}"
auth = {{ type = "client_credentials", client_id = "{id}", client_secret = "env:{SECRET_ENV}" }}

[[pipelines.inbound]]
object = "Account"
table = "{table}"
source = "{source}"
poll_interval_secs = 1
poll_overlap_secs = 5
{extra}

[pipelines.inbound.fields]
Name = "name"
"#,
        id = emu::DEMO_CLIENT_ID,
    );
    let secrets = Secrets {
        db: ctx.db_url.clone(),
        db_env: DB_ENV,
        secret_env: SECRET_ENV,
    };
    match Config::from_toml_with(&text, &secrets) {
        Ok(mut c) => c.pipelines.remove(0),
        Err(e) => panic!("bench config invalid: {e}\n{text}"),
    }
}

/// Creates the entry's target table as `pgforce schema --apply` does.
async fn create_table(ctx: &Ctx, p: &PipelineConfig, sf: &SalesforceClient) {
    for e in &p.inbound {
        let describe = sf.describe(&e.object).await.expect("describe");
        let have = pgforce::inbound::ddl::existing_columns(&ctx.pg, e)
            .await
            .expect("existing columns");
        let plan = pgforce::inbound::ddl::plan(e, &describe, have.as_ref());
        for s in &plan.statements {
            ctx.pg
                .batch_execute(s)
                .await
                .unwrap_or_else(|err| panic!("{s}: {err}"));
        }
    }
}

struct Inbound {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), InboundError>>,
}

fn start_inbound(p: &PipelineConfig, sf: &SalesforceClient) -> Inbound {
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(supervise(
        p.clone(),
        sf.clone(),
        Health::new(),
        rx,
        start_entry,
    ));
    Inbound { stop, task }
}

impl Inbound {
    async fn stop(self) {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("inbound entries ended with: {e}"),
            Err(e) => eprintln!("inbound task: {e}"),
        }
    }
}

fn client(p: &PipelineConfig) -> SalesforceClient {
    pgforce::pipeline::salesforce_client(p).expect("a Salesforce client")
}

async fn count(pg: &Client, sql: &str) -> i64 {
    pg.query_one(sql, &[]).await.map(|r| r.get(0)).unwrap_or(0)
}

/// Commit → row latencies of one profile's run.
struct Latency {
    cdc: Vec<Duration>,
    poll: Vec<Duration>,
    baseline: Vec<Duration>,
    cdc_missing: usize,
    poll_missing: usize,
    baseline_missing: usize,
}

impl Latency {
    /// Prints the figures and returns them under their `inbound.json` keys.
    fn report(&self, profile: ProfileName, changes: usize, baseline_secs: u64) -> Value {
        let (cdc_p50, cdc_p99) = (pct(&self.cdc, 50.0), pct(&self.cdc, 99.0));
        let (poll_p50, poll_p99) = (pct(&self.poll, 50.0), pct(&self.poll, 99.0));
        let (base_p50, base_p99) = (pct(&self.baseline, 50.0), pct(&self.baseline, 99.0));
        println!(
            "latency ({}), Salesforce commit → Postgres row, {changes} changes:\n  \
             pgforce CDC (Pub/Sub):   p50 {} ms  p99 {} ms  (missing {})\n  \
             pgforce poll (1 s):      p50 {} ms  p99 {} ms  (missing {})\n  \
             SOQL poll every {baseline_secs} s:  p50 {} ms  p99 {} ms  (missing {})\n  \
             p50 ratio (baseline / pgforce): CDC {}, poll {}",
            profile_name(profile),
            ms(cdc_p50),
            ms(cdc_p99),
            self.cdc_missing,
            ms(poll_p50),
            ms(poll_p99),
            self.poll_missing,
            ms(base_p50),
            ms(base_p99),
            self.baseline_missing,
            ratio(base_p50, cdc_p50),
            ratio(base_p50, poll_p50),
        );
        json!({
            "cdc_p50_ms": cdc_p50,
            "cdc_p99_ms": cdc_p99,
            "poll_p50_ms": poll_p50,
            "poll_p99_ms": poll_p99,
            "baseline_p50_ms": base_p50,
            "baseline_p99_ms": base_p99,
            "p50_ratio_vs_baseline": ratio_num(base_p50, poll_p50),
            "cdc_p50_ratio_vs_baseline": ratio_num(base_p50, cdc_p50),
            "cdc_missing": self.cdc_missing,
            "poll_missing": self.poll_missing,
            "baseline_missing": self.baseline_missing,
        })
    }
}

async fn latency(
    ctx: &Ctx,
    profile: ProfileName,
    changes: usize,
    baseline_every: Duration,
) -> Latency {
    let emulator = emulator(profile).await;
    let name = profile_name(profile);
    let (poll_table, cdc_table, base_table) = (
        format!("bench.lat_poll_{name}"),
        format!("bench.lat_cdc_{name}"),
        format!("bench.lat_baseline_{name}"),
    );
    let load = "initial_load = \"soql\"";
    let p = pipeline(
        ctx,
        &emulator,
        &format!("lat_poll_{name}"),
        &poll_table,
        "poll",
        load,
    );
    let c = pipeline(
        ctx,
        &emulator,
        &format!("lat_cdc_{name}"),
        &cdc_table,
        "cdc",
        load,
    );
    let sf = client(&p);
    sf.login().await.expect("log in");
    create_table(ctx, &p, &sf).await;
    create_table(ctx, &c, &sf).await;
    ctx.pg
        .batch_execute(&format!(
            "CREATE TABLE {base_table} (id text PRIMARY KEY, name text)"
        ))
        .await
        .expect("baseline table");
    let seed = Record::from_iter([("Name".to_string(), json!("seed"))]);
    sf.create_record("Account", &seed).await.expect("seed");
    let inbound = start_inbound(&p, &sf);
    let cdc_inbound = start_inbound(&c, &client(&c));
    let deadline = Instant::now() + Duration::from_secs(120);
    for t in [&poll_table, &cdc_table] {
        while count(&ctx.pg, &format!("SELECT count(*) FROM {t}")).await < 1 {
            assert!(Instant::now() < deadline, "the initial load did not finish");
            tokio::time::sleep(WATCH_EVERY).await;
        }
    }
    let (stop_base, base_rx) = watch::channel(false);
    let baseline = tokio::spawn(soql_poller(
        sf.clone(),
        ctx.db_url.clone(),
        base_table.clone(),
        baseline_every,
        base_rx,
    ));

    let commits: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let writer = {
        let (sf, commits) = (sf.clone(), commits.clone());
        tokio::spawn(async move {
            for i in 0..changes {
                let name = format!("lat-{i}");
                let rec = Record::from_iter([("Name".to_string(), json!(name))]);
                sf.create_record("Account", &rec).await.expect("create");
                commits.lock().await.insert(name, Instant::now());
                tokio::time::sleep(CHANGE_EVERY).await;
            }
        })
    };
    let give_up = Instant::now()
        + CHANGE_EVERY * changes as u32
        + baseline_every * 2
        + Duration::from_secs(15);
    let mut cdc_seen: HashMap<String, Instant> = HashMap::new();
    let mut poll_seen: HashMap<String, Instant> = HashMap::new();
    let mut base_seen: HashMap<String, Instant> = HashMap::new();
    while Instant::now() < give_up
        && (cdc_seen.len() < changes || poll_seen.len() < changes || base_seen.len() < changes)
    {
        for (table, seen) in [
            (&cdc_table, &mut cdc_seen),
            (&poll_table, &mut poll_seen),
            (&base_table, &mut base_seen),
        ] {
            let sql = format!("SELECT name FROM {table} WHERE name LIKE 'lat-%'");
            let rows = ctx.pg.query(sql.as_str(), &[]).await.unwrap_or_default();
            let now = Instant::now();
            for r in rows {
                let name: Option<String> = r.get(0);
                if let Some(n) = name {
                    seen.entry(n).or_insert(now);
                }
            }
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
    writer.await.expect("writer");
    let _ = stop_base.send(true);
    let _ = baseline.await;
    inbound.stop().await;
    cdc_inbound.stop().await;
    let commits = commits.lock().await.clone();
    let lat = |seen: &HashMap<String, Instant>| -> Vec<Duration> {
        seen.iter()
            .filter_map(|(n, at)| commits.get(n).map(|c| at.saturating_duration_since(*c)))
            .collect()
    };
    Latency {
        cdc: lat(&cdc_seen),
        poll: lat(&poll_seen),
        baseline: lat(&base_seen),
        cdc_missing: changes.saturating_sub(cdc_seen.len()),
        poll_missing: changes.saturating_sub(poll_seen.len()),
        baseline_missing: changes.saturating_sub(base_seen.len()),
    }
}

/// The baseline: every `every`, `SELECT Id, Name, LastModifiedDate FROM Account WHERE
/// LastModifiedDate >= <last seen>`, upserted into `table`.
async fn soql_poller(
    sf: SalesforceClient,
    db_url: String,
    table: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let (pg, conn) = tokio_postgres::connect(&db_url, NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let mut since: Option<String> = None;
    loop {
        let soql = match &since {
            Some(t) => format!(
                "SELECT Id, Name, LastModifiedDate FROM Account WHERE LastModifiedDate >= {t}"
            ),
            None => "SELECT Id, Name, LastModifiedDate FROM Account".to_string(),
        };
        match sf.query(soql).try_collect::<Vec<Record>>().await {
            Ok(records) => {
                for r in &records {
                    upsert(&pg, &table, r).await;
                    let at = r
                        .get("LastModifiedDate")
                        .and_then(Value::as_str)
                        .map(soql_datetime);
                    if let Some(at) = at {
                        if since.as_ref().is_none_or(|s| at > *s) {
                            since = Some(at);
                        }
                    }
                }
            }
            Err(e) => eprintln!("baseline poll: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// `2025-01-02T03:04:05.000+0000` → `2025-01-02T03:04:05Z` (a SOQL datetime literal).
fn soql_datetime(s: &str) -> String {
    format!("{}Z", s.get(..19).unwrap_or(s))
}

async fn upsert(pg: &Client, table: &str, r: &Map<String, Value>) {
    let id = r.get("Id").and_then(Value::as_str).unwrap_or_default();
    let name = r.get("Name").and_then(Value::as_str);
    let _ = pg
        .execute(
            &format!(
                "INSERT INTO {table} (id, name) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name"
            ),
            &[&id, &name],
        )
        .await;
}

/// Seeds `rows` Accounts in a fresh emulator and times a fresh pipeline's initial load
/// with `initial_load = <how>`; `None` when it did not finish in ten minutes.
async fn initial_load(ctx: &Ctx, rows: usize, how: &str) -> Option<Duration> {
    let emulator = emulator(ctx.profile).await;
    let state = emulator.state();
    let user = state.default_user().expect("the emulator's demo user").id;
    let bodies: Vec<Map<String, Value>> = (0..rows)
        .map(|i| Map::from_iter([("Name".to_string(), json!(format!("load-{i}")))]))
        .collect();
    for chunk in bodies.chunks(10_000) {
        for r in state.store.insert_many("Account", chunk, user) {
            r.expect("seed an Account");
        }
    }
    let name = format!("load_{how}");
    let table = format!("bench.{name}");
    let p = pipeline(
        ctx,
        &emulator,
        &name,
        &table,
        "poll",
        &format!("initial_load = \"{how}\""),
    );
    let sf = client(&p);
    sf.login().await.expect("log in");
    create_table(ctx, &p, &sf).await;
    let sql = format!("SELECT count(*) FROM {table}");
    let started = Instant::now();
    let inbound = start_inbound(&p, &sf);
    let mut done = None;
    while started.elapsed() < Duration::from_secs(600) {
        if count(&ctx.pg, &sql).await >= rows as i64 {
            done = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    inbound.stop().await;
    if done.is_none() {
        eprintln!("initial load ({how}) did not finish in ten minutes");
    }
    done
}
