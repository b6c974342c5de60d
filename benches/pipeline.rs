//! pgforce end to end, Postgres commit → Salesforce applied, each figure printed beside a
//! baseline measured in the same run, as a ratio (machines are noisy: no absolute claims,
//! no assertions on timing).
//!
//! The baseline is what a team writes by hand: a loop that polls Postgres for changed rows
//! (`updated_at > last seen`, every 100 ms when idle) and upserts them one record at a time
//! through the REST API (`PATCH /sobjects/Account/External_Id__c/{id}`, reqwest, one
//! keep-alive connection). It runs as a child process (this bench binary re-executed with
//! `PGFORCE_BENCH_ROLE=baseline`) so its peak RSS can be compared with pgforce's.
//!
//! pgforce runs as the real daemon, `pgforce run` (the release binary Cargo builds for the
//! bench), against a throwaway Postgres (TempCluster) and the Salesforce emulator, which
//! runs inside this bench process (its memory is in neither figure). Each scenario gets a
//! fresh emulator, table, slot and publication.
//!
//! Figures:
//! - rows/s from the first commit to the last record applied, for N inserted rows (1,000
//!   per transaction): pgforce Bulk API 2.0 path (`collections_threshold = 0`) and
//!   sObject Collections path (threshold = `max_batch_rows`, flush at every commit: config
//!   validation forbids a threshold above `max_batch_rows`, so each 1,000-row step goes as
//!   5 Collections calls of 200).
//! - Salesforce API requests per 100k changes (`/__emulator/stats`, every endpoint family
//!   but OAuth, so Bulk job polls count too; reset once the pipeline is streaming, so login
//!   and startup validation are not counted).
//! - p50/p99 commit → applied latency at a steady ~1,000 changes/s (20 rows per
//!   transaction every 20 ms): the commit instant is taken when the INSERT's autocommit
//!   returns; a poller in this process looks the pending external ids up in the emulator's
//!   store every millisecond and takes the instant each appears. Both clocks are this
//!   process's monotonic clock; resolution is about a millisecond plus the poll's cost.
//! - Peak RSS (`VmHWM` from `/proc/<pid>/status`) of the pgforce process and of the
//!   baseline process, in the Bulk throughput run.
//!
//! Env: `PGFORCE_BENCH_ROWS` (default 50,000), `PGFORCE_BENCH_LATENCY_SECS` (default 20).
//! Run: `cargo bench --bench pipeline`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgforce::testing::TempCluster;
use pgforce_emulator::{config as emu, Emulator, EmulatorConfig, EmulatorHandle};
use tokio::io::AsyncReadExt;
use tokio_postgres::NoTls;

const ROLE_ENV: &str = "PGFORCE_BENCH_ROLE";
const DB_ENV: &str = "PGFORCE_BENCH_DB";
const SECRET_ENV: &str = "PGFORCE_BENCH_SF_SECRET";
const ROWS_PER_TXN: i64 = 1_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if std::env::var(ROLE_ENV).as_deref() == Ok("baseline") {
        rt.block_on(baseline_child());
    } else {
        rt.block_on(bench());
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// One scenario's result.
#[derive(Debug, Default, Clone)]
struct Run {
    elapsed: Option<Duration>,
    api_calls: u64,
    peak_rss_kib: Option<u64>,
    latencies: Vec<Duration>,
}

impl Run {
    fn rows_per_sec(&self, n: u64) -> Option<f64> {
        self.elapsed.map(|d| n as f64 / d.as_secs_f64())
    }
    fn calls_per_100k(&self, n: u64) -> f64 {
        self.api_calls as f64 * 100_000.0 / n.max(1) as f64
    }
    fn percentile(&self, p: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut v = self.latencies.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        Some(v[i.min(v.len() - 1)])
    }
}

/// How a scenario's rows reach Salesforce.
#[derive(Debug, Clone, Copy)]
enum Contender {
    Pgforce {
        collections_threshold: usize,
        max_batch_rows: usize,
        max_batch_age_ms: u64,
    },
    Baseline,
}

/// How rows are written to Postgres.
#[derive(Debug, Clone, Copy)]
enum Load {
    /// N rows, 1,000 per transaction, as fast as Postgres takes them.
    Burst(u64),
    /// ~1,000 rows/s for this long, 20 rows per transaction.
    Steady(Duration),
}

impl Load {
    fn rows(self) -> u64 {
        match self {
            Load::Burst(n) => n,
            Load::Steady(d) => (d.as_millis() as u64 / 20) * 20,
        }
    }
}

async fn bench() {
    let n = env_num("PGFORCE_BENCH_ROWS", 50_000).max(ROWS_PER_TXN as u64);
    let n = n / ROWS_PER_TXN as u64 * ROWS_PER_TXN as u64;
    let secs = env_num("PGFORCE_BENCH_LATENCY_SECS", 20).max(1);
    let pgforce_bin = Path::new(env!("CARGO_BIN_EXE_pgforce"));
    let cluster = tokio::task::spawn_blocking(TempCluster::start)
        .await
        .expect("join")
        .expect("a throwaway Postgres (initdb/pg_ctl on PATH or PGFORCE_PG_BINDIR)");
    let db_url = cluster.url("postgres");
    let (pg, conn) = tokio_postgres::connect(&db_url, NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let major = cluster.major_version().unwrap_or(0);
    eprintln!(
        "pgforce pipeline bench: {n} rows, latency run {secs} s, PostgreSQL {major}, binary {}",
        pgforce_bin.display()
    );

    let bulk = Contender::Pgforce {
        collections_threshold: 0,
        max_batch_rows: 10_000,
        max_batch_age_ms: 1_000,
    };
    // Config validation requires collections_threshold <= max_batch_rows, and a step of
    // exactly max_batch_rows rows goes Bulk; flushing at every commit (age 1 ms) keeps each
    // step one 1,000-row transaction, below the threshold: 5 Collections calls of 200.
    let collections = Contender::Pgforce {
        collections_threshold: 10_000,
        max_batch_rows: 10_000,
        max_batch_age_ms: 1,
    };
    let steady = Contender::Pgforce {
        collections_threshold: 200,
        max_batch_rows: 10_000,
        max_batch_age_ms: 100,
    };
    // The same with a threshold no steady epoch reaches: Collections only.
    let steady_coll = Contender::Pgforce {
        collections_threshold: 5_000,
        max_batch_rows: 10_000,
        max_batch_age_ms: 100,
    };
    let ctx = Ctx {
        db_url: &db_url,
        pg: &pg,
        pgforce_bin,
    };
    let r_bulk = scenario(&ctx, "bulk", bulk, Load::Burst(n)).await;
    let r_coll = scenario(&ctx, "coll", collections, Load::Burst(n)).await;
    let r_base = scenario(&ctx, "base", Contender::Baseline, Load::Burst(n)).await;
    let steady_load = Load::Steady(Duration::from_secs(secs));
    let l_pg = scenario(&ctx, "latpg", steady, steady_load).await;
    let l_coll = scenario(&ctx, "latcoll", steady_coll, steady_load).await;
    let l_base = scenario(&ctx, "latbase", Contender::Baseline, steady_load).await;

    println!();
    println!("pgforce end to end: Postgres commit -> Salesforce applied (emulator in-process, PostgreSQL {major} throwaway cluster)");
    println!("N = {n} inserted rows ({ROWS_PER_TXN} per transaction); latency: ~1,000 rows/s for {secs} s ({} rows)", steady_load.rows());
    println!("baseline = hand-written loop: poll `updated_at > last` every 100 ms when idle, PATCH /sobjects/Account/External_Id__c/{{id}} one record at a time");
    println!();
    println!(
        "{:<46} {:>14} {:>14} {:>10}",
        "figure", "pgforce", "baseline", "ratio"
    );
    let rate = |r: &Run| r.rows_per_sec(n);
    row_f(
        "rows/s, Bulk API 2.0 path (threshold 0)",
        rate(&r_bulk),
        rate(&r_base),
        "{:.0}",
        true,
    );
    row_f(
        "rows/s, Collections path (200 rows/call)",
        rate(&r_coll),
        rate(&r_base),
        "{:.0}",
        true,
    );
    row_f(
        "API requests per 100k changes, Bulk path",
        Some(r_bulk.calls_per_100k(n)),
        Some(r_base.calls_per_100k(n)),
        "{:.0}",
        false,
    );
    row_f(
        "API requests per 100k changes, Collections",
        Some(r_coll.calls_per_100k(n)),
        Some(r_base.calls_per_100k(n)),
        "{:.0}",
        false,
    );
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    for (label, r) in [("threshold 200", &l_pg), ("threshold 5000", &l_coll)] {
        row_f(
            &format!("latency p50 @1k/s, {label} (ms)"),
            ms(r.percentile(0.50)),
            ms(l_base.percentile(0.50)),
            "{:.1}",
            false,
        );
        row_f(
            &format!("latency p99 @1k/s, {label} (ms)"),
            ms(r.percentile(0.99)),
            ms(l_base.percentile(0.99)),
            "{:.1}",
            false,
        );
    }
    let mib = |k: Option<u64>| k.map(|k| k as f64 / 1024.0);
    row_f(
        "peak RSS, Bulk throughput run (MiB, VmHWM)",
        mib(r_bulk.peak_rss_kib),
        mib(r_base.peak_rss_kib),
        "{:.1}",
        false,
    );
    row_f(
        "peak RSS, Collections throughput run (MiB)",
        mib(r_coll.peak_rss_kib),
        mib(r_base.peak_rss_kib),
        "{:.1}",
        false,
    );
    println!();
    println!("pgforce configs: Bulk = threshold 0, max_batch_rows 10000, max_batch_age_ms 1000; Collections = threshold 10000, max_batch_rows 10000, max_batch_age_ms 1 (flush per commit, 200 records/call); `pgforce run` status tick 5 s");
    println!("latency method: commit instant = INSERT autocommit returned; applied instant = first 1 ms poll of the emulator store finding the external id (same process clock)");
    println!(
        "latency configs: max_batch_rows 10000, max_batch_age_ms 100, collections_threshold 200 (epochs that grow past 200 rows while a flush runs go Bulk) or 5000 (Collections only); samples: {} / {} / baseline {}",
        l_pg.latencies.len(),
        l_coll.latencies.len(),
        l_base.latencies.len()
    );
    println!("ratio = pgforce / baseline (rows/s: higher is better for pgforce; calls, latency, RSS: lower is better)");
    drop(cluster);
}

fn row_f(label: &str, a: Option<f64>, b: Option<f64>, fmt: &str, _higher_better: bool) {
    let show = |v: Option<f64>| match v {
        Some(v) if fmt == "{:.0}" => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "n/a".into(),
    };
    let ratio = match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
        _ => "n/a".into(),
    };
    println!("{label:<46} {:>14} {:>14} {ratio:>10}", show(a), show(b));
}

struct Ctx<'a> {
    db_url: &'a str,
    pg: &'a tokio_postgres::Client,
    pgforce_bin: &'a Path,
}

/// A running contender: the child process and how to read its peak RSS.
struct Child {
    child: tokio::process::Child,
    pid: u32,
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_hwm(&s)
}

fn parse_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn scenario(ctx: &Ctx<'_>, name: &str, who: Contender, load: Load) -> Run {
    let table = format!("bench_{name}");
    ctx.pg
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, name text NOT NULL, phone text,
                                   updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
             CREATE INDEX ON {table} (updated_at, id);"
        ))
        .await
        .expect("create table");
    let config = EmulatorConfig {
        daily_api_limit: 100_000_000,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = load.rows();
    let child = match who {
        Contender::Pgforce {
            collections_threshold,
            max_batch_rows,
            max_batch_age_ms,
        } => {
            let path = dir.path().join("pgforce.toml");
            std::fs::write(
                &path,
                pgforce_config(
                    name,
                    &table,
                    emulator.base_url(),
                    collections_threshold,
                    max_batch_rows,
                    max_batch_age_ms,
                ),
            )
            .expect("write config");
            let log = std::fs::File::create(dir.path().join("pgforce.log")).expect("log file");
            let child = tokio::process::Command::new(ctx.pgforce_bin)
                .args(["run", "--listen", "127.0.0.1:0", "--config"])
                .arg(&path)
                .env(DB_ENV, ctx.db_url)
                .env(SECRET_ENV, emu::DEMO_CLIENT_SECRET)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .expect("start pgforce run");
            let pid = child.id().expect("pid");
            let slot = format!("pgforce_bench_{name}");
            if !wait_slot_active(ctx.pg, &slot).await {
                let log =
                    std::fs::read_to_string(dir.path().join("pgforce.log")).unwrap_or_default();
                eprintln!("{name}: pgforce did not start streaming; its log:\n{log}");
                return Run::default();
            }
            Child { child, pid }
        }
        Contender::Baseline => {
            let token = emulator.issue_default_token().expect("token");
            let child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
                .env(ROLE_ENV, "baseline")
                .env(DB_ENV, ctx.db_url)
                .env("PGFORCE_BENCH_BASELINE_URL", emulator.base_url())
                .env("PGFORCE_BENCH_BASELINE_TOKEN", token)
                .env("PGFORCE_BENCH_BASELINE_TABLE", &table)
                .env("PGFORCE_BENCH_BASELINE_ROWS", rows.to_string())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("start baseline");
            let pid = child.id().expect("pid");
            Child { child, pid }
        }
    };
    reset_stats(&emulator).await;
    let mut run = Run::default();
    let started = Instant::now();
    match load {
        Load::Burst(n) => {
            let insert = insert_burst(ctx.pg, &table, n);
            let applied = wait_count(&emulator, n as usize, Duration::from_secs(1_800));
            let (_, done) = tokio::join!(insert, applied);
            run.elapsed = done.then(|| started.elapsed());
        }
        Load::Steady(d) => {
            run.latencies = steady_latencies(ctx.pg, &table, &emulator, d).await;
        }
    }
    let (calls, by_family) = api_calls(&emulator).await;
    run.api_calls = calls;
    eprintln!(
        "{name}: {} rows in {:.2?}, {} API requests {by_family}",
        rows,
        started.elapsed(),
        run.api_calls
    );
    run.peak_rss_kib = finish(child, who).await;
    if let Contender::Pgforce { .. } = who {
        let slot = format!("pgforce_bench_{name}");
        let _ = ctx
            .pg
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await;
    }
    let _ = ctx.pg.batch_execute(&format!("DROP TABLE {table}")).await;
    emulator.shutdown().await;
    run
}

/// Peak RSS, then stop the child.
async fn finish(mut c: Child, who: Contender) -> Option<u64> {
    match who {
        Contender::Pgforce { .. } => {
            let hwm = vm_hwm_kib(c.pid);
            // SIGTERM: drain and exit; SIGKILL if it takes too long.
            unsafe {
                libc::kill(c.pid as libc::pid_t, libc::SIGTERM);
            }
            if tokio::time::timeout(Duration::from_secs(20), c.child.wait())
                .await
                .is_err()
            {
                let _ = c.child.kill().await;
            }
            hwm
        }
        Contender::Baseline => {
            // The baseline exits once it has sent every row, printing its own VmHWM.
            let mut out = String::new();
            if let Some(mut stdout) = c.child.stdout.take() {
                let _ =
                    tokio::time::timeout(Duration::from_secs(60), stdout.read_to_string(&mut out))
                        .await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), c.child.wait()).await;
            let _ = c.child.kill().await;
            out.lines()
                .find_map(|l| l.strip_prefix("VMHWM_KIB "))
                .and_then(|v| v.trim().parse().ok())
        }
    }
}

fn pgforce_config(
    name: &str,
    table: &str,
    url: &str,
    collections_threshold: usize,
    max_batch_rows: usize,
    max_batch_age_ms: u64,
) -> String {
    format!(
        r#"
[[pipelines]]
name = "bench_{name}"
publication = "pgforce_bench_{name}"
slot = "pgforce_bench_{name}"
source = {{ database_url = "env:{DB_ENV}" }}

[pipelines.batching]
max_batch_rows = {max_batch_rows}
max_batch_age_ms = {max_batch_age_ms}
collections_threshold = {collections_threshold}

[pipelines.salesforce]
login_url = "{url}"
api_version = "62.0"
auth = {{ type = "client_credentials", client_id = "{client_id}", client_secret = "env:{SECRET_ENV}" }}
instance_url = "{url}"

[[pipelines.mappings]]
name = "items"
table = "public.{table}"
object = "Account"
external_id = {{ column = "id", field = "External_Id__c" }}

[pipelines.mappings.fields]
name = "Name"
phone = "Phone"
"#,
        client_id = emu::DEMO_CLIENT_ID,
    )
}

async fn wait_slot_active(pg: &tokio_postgres::Client, slot: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let active = pg
            .query_opt(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .ok()
            .flatten()
            .is_some_and(|r| r.get::<_, bool>(0));
        if active {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn insert_burst(pg: &tokio_postgres::Client, table: &str, n: u64) {
    let sql = format!(
        "INSERT INTO {table} (id, name, phone)
         SELECT g, 'Item ' || g, '555-' || g FROM generate_series($1::bigint, $2::bigint) g"
    );
    let stmt = pg.prepare(&sql).await.expect("prepare insert");
    let mut first = 1i64;
    while first <= n as i64 {
        let last = (first + ROWS_PER_TXN - 1).min(n as i64);
        pg.execute(&stmt, &[&first, &last]).await.expect("insert");
        first = last + 1;
    }
}

/// Wait until the emulator holds `n` Accounts; `false` on timeout.
async fn wait_count(emulator: &EmulatorHandle, n: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if emulator.state().store.count("Account", false).unwrap_or(0) >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!("gave up waiting for {n} records");
    false
}

/// ~1,000 rows/s for `d`; returns each row's commit → visible-in-Salesforce latency.
async fn steady_latencies(
    pg: &tokio_postgres::Client,
    table: &str,
    emulator: &EmulatorHandle,
    d: Duration,
) -> Vec<Duration> {
    let pending: Arc<parking_lot::Mutex<HashMap<i64, Instant>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let pending = pending.clone();
        let done = done.clone();
        let state = emulator.state().clone();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut idle_since: Option<Instant> = None;
            loop {
                let keys: Vec<(i64, Instant)> =
                    pending.lock().iter().map(|(k, v)| (*k, *v)).collect();
                if keys.is_empty() && done.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                // Bounded: stop if nothing has arrived for a minute after the load ended.
                if done.load(std::sync::atomic::Ordering::Acquire) {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(60) {
                        eprintln!("{} rows never arrived", keys.len());
                        break;
                    }
                }
                for (k, committed) in keys {
                    let found = state
                        .store
                        .find_by_external_id("Account", "External_Id__c", &k.to_string())
                        .map(|v| !v.is_empty())
                        .unwrap_or(false);
                    if found {
                        out.push(committed.elapsed());
                        pending.lock().remove(&k);
                        idle_since = None;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            out
        })
    };
    let sql = format!(
        "INSERT INTO {table} (id, name, phone)
         SELECT g, 'Item ' || g, '555-' || g FROM generate_series($1::bigint, $2::bigint) g"
    );
    let stmt = pg.prepare(&sql).await.expect("prepare");
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let txns = d.as_millis() as i64 / 20;
    for t in 0..txns {
        tick.tick().await;
        let (first, last) = (t * 20 + 1, t * 20 + 20);
        pg.execute(&stmt, &[&first, &last]).await.expect("insert");
        let now = Instant::now();
        let mut p = pending.lock();
        for id in first..=last {
            p.insert(id, now);
        }
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    tokio::task::spawn_blocking(move || poller.join().unwrap_or_default())
        .await
        .unwrap_or_default()
}

async fn reset_stats(emulator: &EmulatorHandle) {
    let _ = reqwest::Client::new()
        .delete(format!("{}/__emulator/stats", emulator.base_url()))
        .send()
        .await;
}

/// Salesforce API requests since the last reset (every family but OAuth), and the stats.
async fn api_calls(emulator: &EmulatorHandle) -> (u64, serde_json::Value) {
    let v: serde_json::Value = match reqwest::Client::new()
        .get(format!("{}/__emulator/stats", emulator.base_url()))
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    let requests = v["byFamily"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "oauth")
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    (requests, v["byFamily"].clone())
}

/// The baseline: poll for changed rows, PATCH each one by external id, until `rows` sent.
async fn baseline_child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let db = var(DB_ENV);
    let base = var("PGFORCE_BENCH_BASELINE_URL");
    let token = var("PGFORCE_BENCH_BASELINE_TOKEN");
    let table = var("PGFORCE_BENCH_BASELINE_TABLE");
    let rows: u64 = var("PGFORCE_BENCH_BASELINE_ROWS").parse().expect("rows");
    let (pg, conn) = tokio_postgres::connect(&db, NoTls).await.expect("connect");
    tokio::spawn(conn);
    let http = reqwest::Client::new();
    let stmt = pg
        .prepare(&format!(
            "SELECT id, name, phone, updated_at FROM {table}
             WHERE (updated_at, id) > ($1, $2) ORDER BY updated_at, id LIMIT 1000"
        ))
        .await
        .expect("prepare");
    let mut last_at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let mut last_id = 0i64;
    let mut sent = 0u64;
    let mut failed = 0u64;
    let deadline = Instant::now() + Duration::from_secs(3_600);
    while sent < rows && Instant::now() < deadline {
        let batch = pg.query(&stmt, &[&last_at, &last_id]).await.expect("poll");
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        for r in batch {
            let id: i64 = r.get(0);
            let name: String = r.get(1);
            let phone: Option<String> = r.get(2);
            let url = format!("{base}/services/data/v62.0/sobjects/Account/External_Id__c/{id}");
            let resp = http
                .patch(&url)
                .bearer_auth(&token)
                .json(&serde_json::json!({"Name": name, "Phone": phone}))
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => {}
                _ => failed += 1,
            }
            sent += 1;
            last_at = r.get(3);
            last_id = id;
        }
    }
    if failed > 0 {
        eprintln!("baseline: {failed} PATCH calls failed");
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    println!("VMHWM_KIB {}", parse_hwm(&status).unwrap_or(0));
}
