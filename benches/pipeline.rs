//! pgforce end to end, Postgres commit → Salesforce applied, each figure printed beside a
//! baseline measured in the same run, as a ratio (machines are noisy: no absolute claims,
//! no assertions on timing). Two sections, one per emulator latency profile:
//!
//! - **instant** (the emulator answers at once): pgforce's own cost — throughput, API
//!   requests, CPU seconds, memory;
//! - **realistic** (`--profile realistic`: round trips, per-record server time, Bulk jobs
//!   that queue for seconds and process at a bounded rate; see the emulator's `latency`
//!   module): what a user of a real org feels — commit → applied latency, backfill speed,
//!   API requests on the Bulk path.
//!
//! pgforce runs as the real daemon, `pgforce run` (the release binary Cargo builds for the
//! bench), against a throwaway Postgres (TempCluster) and the Salesforce emulator, which
//! runs inside this bench process (its memory and CPU are in no figure). Each scenario gets
//! a fresh emulator, table, slot and publication.
//!
//! Baselines:
//! - **per-row loop**: what a team writes by hand: poll Postgres for changed rows
//!   (`updated_at > last seen`, every 100 ms when idle) and upsert them one record at a time
//!   through the REST API (`PATCH /sobjects/Account/External_Id__c/{id}`, reqwest, one
//!   keep-alive connection). It runs as a child process (this bench binary re-executed with
//!   `PGFORCE_BENCH_ROLE=baseline`) so its peak RSS can be compared with pgforce's. Under the
//!   realistic profile it cannot keep up; it stops at the end of the load plus the grace
//!   period and the rows it never sent count with the latency they had then (marked `>=`).
//! - **10-s batch** (Heroku-Connect-like, realistic only): pgforce itself flushing every
//!   10 s through one Bulk job (`max_batch_age_ms = 10000`, `collections_threshold = 0`).
//! - **one Bulk job at a time** (backfill): pgforce with `max_concurrent_bulk_jobs = 1`.
//! - **pg_recvlogical** (CPU): reading the same changes (pgoutput, to `/dev/null`) with
//!   PostgreSQL's own client; its user+sys CPU from `wait4`.
//!
//! Figures, and their keys in `target/bench/pipeline.json` (`null` when not measured):
//! - `instant.rows_per_sec_bulk` / `instant.rows_per_sec_collections` /
//!   `instant.rows_per_sec_per_row_loop`: rows/s from the first commit to the last record
//!   applied, N rows inserted 1,000 per transaction.
//! - `instant.api_calls_per_100k_bulk` / `realistic.api_calls_per_100k_bulk`: Salesforce API
//!   requests per 100k changes on the Bulk path (`/__emulator/stats`, every family but OAuth,
//!   so job polls count; reset once streaming, so login and startup checks do not count).
//! - `instant.p50_ms_at_1k` / `instant.p99_ms_at_1k`, `realistic.p50_ms_at_1k`,
//!   `realistic.p99_ms_at_1k`, `realistic.p99_ms_at_5k` (and `…_per_row_loop`, `…_batch_10s`
//!   beside them): commit → applied latency at a steady ~1,000 or ~5,000 changes/s (one
//!   transaction every 20 ms). The commit instant is taken when the INSERT's autocommit
//!   returns; a poller in this process looks the pending external ids up in the emulator's
//!   store and takes the instant each appears (same monotonic clock; resolution about a
//!   millisecond plus one sweep's cost).
//! - `instant.cpu_s_per_100k`, `instant.recvlogical_cpu_s_per_100k`,
//!   `instant.cpu_ratio_vs_pg_recvlogical`: user+sys CPU seconds of the pgforce process
//!   (`/proc/<pid>/stat`, from streaming start to the last record applied) per 100k changes
//!   in the Bulk throughput run, beside pg_recvlogical's for the same number of changes.
//! - `instant.peak_rss_mib_bulk`: peak RSS (`VmHWM`) of pgforce in the Bulk throughput run.
//! - `instant.peak_rss_mib_backfill` (and `instant.peak_rss_mib_backfill_10m` when
//!   `PGFORCE_BENCH_BIG_BACKFILL_ROWS` is at least 10,000,000): pgforce's peak RSS while it
//!   backfills that many rows.
//! - `instant.peak_rss_mib_big_txn`, `instant.big_txn_rows`, `instant.big_txn_rows_per_sec`:
//!   pgforce's peak RSS (and rows/s from the INSERT to the last record applied) when one
//!   transaction inserts `PGFORCE_BENCH_BIG_TXN_ROWS` rows (scenario `i-bigtxn`), beside
//!   the Bulk throughput run's peak.
//! - `realistic.backfill_rows_per_sec`, `realistic.backfill_one_job_rows_per_sec`,
//!   `realistic.backfill_speedup`: backfill of `PGFORCE_BENCH_BACKFILL_ROWS` rows with
//!   several Bulk jobs in flight vs one at a time.
//!
//! Env (sizes; defaults keep a run to about ten minutes on a quiet machine):
//! `PGFORCE_BENCH_PROFILE` (`instant`, `realistic` or `both`, default both),
//! `PGFORCE_BENCH_ROWS` (instant burst size, default 50,000), `PGFORCE_BENCH_REALISTIC_ROWS`
//! (realistic Bulk burst, default 200,000), `PGFORCE_BENCH_LATENCY_SECS` (each
//! steady run, default 20), `PGFORCE_BENCH_GRACE_SECS` (how long after a steady load the
//! stragglers are awaited, default 15), `PGFORCE_BENCH_BACKFILL_ROWS` (realistic backfill,
//! default 200,000; the issue's figure is 1,000,000), `PGFORCE_BENCH_BIG_BACKFILL_ROWS`
//! (instant RSS backfill, default 1,000,000; 0 skips it), `PGFORCE_BENCH_BIG_TXN_ROWS`
//! (rows of the one big transaction, default 1,000,000; 0 skips it), `PGFORCE_BENCH_BULK_JOBS` (Bulk
//! jobs in flight in the parallel backfill, default 10), `PGFORCE_BENCH_ONLY` (comma list of
//! scenario names, e.g. `i-bulk,r-lat1k`; default all), `PGFORCE_BENCH_PLAIN_CONFIG` (set: leave
//! the concurrency keys out of pgforce's config, to measure a build from before them),
//! `PGFORCE_BENCH_BIN` (the pgforce binary to run instead of the one Cargo built).
//! Run: `cargo bench --bench pipeline`.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgforce::testing::TempCluster;
use pgforce_emulator::{config as emu, Emulator, EmulatorConfig, EmulatorHandle, ProfileName};
use serde_json::{json, Value};
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
    cpu_secs: Option<f64>,
    latencies: Vec<Duration>,
    /// Rows that had not arrived when the poller gave up (their latency is a lower bound).
    censored: usize,
}

impl Run {
    fn rows_per_sec(&self, n: u64) -> Option<f64> {
        self.elapsed.map(|d| n as f64 / d.as_secs_f64())
    }
    fn calls_per_100k(&self, n: u64) -> Option<f64> {
        self.elapsed
            .map(|_| self.api_calls as f64 * 100_000.0 / n.max(1) as f64)
    }
    fn percentile_ms(&self, p: f64) -> Option<f64> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut v = self.latencies.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        Some(v[i.min(v.len() - 1)].as_secs_f64() * 1000.0)
    }
    fn peak_mib(&self) -> Option<f64> {
        self.peak_rss_kib.map(|k| k as f64 / 1024.0)
    }
}

/// pgforce's batching settings for a scenario.
#[derive(Debug, Clone, Copy)]
struct PgCfg {
    collections_threshold: usize,
    max_batch_rows: usize,
    max_batch_age_ms: u64,
    /// `max_concurrent_bulk_jobs` (omitted from the config when `None`).
    bulk_jobs: Option<usize>,
    /// `max_concurrent_calls` (omitted when `None`).
    calls: Option<usize>,
}

/// How a scenario's rows reach Salesforce.
#[derive(Debug, Clone, Copy)]
enum Contender {
    Pgforce(PgCfg),
    Baseline,
}

/// How rows are written to Postgres.
#[derive(Debug, Clone, Copy)]
enum Load {
    /// N rows, 1,000 per transaction, as fast as Postgres takes them.
    Burst(u64),
    /// `rate` rows/s for `secs`, one transaction every 20 ms.
    Steady { rate: u64, secs: u64 },
    /// N rows in the table before pgforce starts (it backfills them).
    Backfill(u64),
    /// N rows in one transaction, once pgforce streams.
    BigTxn(u64),
}

impl Load {
    fn rows(self) -> u64 {
        match self {
            Load::Burst(n) | Load::Backfill(n) | Load::BigTxn(n) => n,
            Load::Steady { rate, secs } => Self::per_txn(rate) * secs * 50,
        }
    }
    fn per_txn(rate: u64) -> u64 {
        (rate / 50).max(1)
    }
}

/// The settings every scenario shares.
struct Ctx<'a> {
    db_url: &'a str,
    pg: &'a tokio_postgres::Client,
    pgforce_bin: &'a Path,
    bindir: &'a Path,
    profile: ProfileName,
    grace: Duration,
    only: Option<Vec<String>>,
}

impl Ctx<'_> {
    fn wanted(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|x| x == name))
    }
}

/// Collected figures: printed as a table and written as JSON.
#[derive(Default)]
struct Figures {
    json: serde_json::Map<String, Value>,
    lines: Vec<String>,
}

impl Figures {
    /// One row: label, pgforce, baseline, ratio; `key` (if any) names pgforce's figure.
    fn row(&mut self, key: Option<&str>, label: &str, a: Option<f64>, b: Option<f64>) {
        if let Some(k) = key {
            self.json
                .insert(k.into(), a.map_or(Value::Null, |v| json!(v)));
        }
        let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1}"));
        let ratio = match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
            _ => "n/a".into(),
        };
        self.lines.push(format!(
            "{label:<58} {:>12} {:>12} {ratio:>9}",
            show(a),
            show(b)
        ));
    }
    fn put(&mut self, key: &str, v: Option<f64>) {
        self.json
            .insert(key.into(), v.map_or(Value::Null, |v| json!(v)));
    }
    fn note(&mut self, s: String) {
        self.lines.push(s);
    }
}

async fn bench() {
    let n = env_num("PGFORCE_BENCH_ROWS", 50_000).max(ROWS_PER_TXN as u64);
    let n = n / ROWS_PER_TXN as u64 * ROWS_PER_TXN as u64;
    let secs = env_num("PGFORCE_BENCH_LATENCY_SECS", 20).max(1);
    let grace = Duration::from_secs(env_num("PGFORCE_BENCH_GRACE_SECS", 15));
    let profiles = std::env::var("PGFORCE_BENCH_PROFILE").unwrap_or_else(|_| "both".into());
    let only = std::env::var("PGFORCE_BENCH_ONLY")
        .ok()
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let bin_override = std::env::var_os("PGFORCE_BENCH_BIN");
    let pgforce_bin = bin_override
        .as_deref()
        .map_or(Path::new(env!("CARGO_BIN_EXE_pgforce")), Path::new);
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
        "pgforce pipeline bench: {n} rows, steady runs {secs} s, PostgreSQL {major}, binary {}",
        pgforce_bin.display()
    );
    let mut figs = Figures::default();
    let mut ctx = Ctx {
        db_url: &db_url,
        pg: &pg,
        pgforce_bin,
        bindir: cluster.bindir(),
        profile: ProfileName::Instant,
        grace,
        only,
    };
    if profiles == "both" || profiles == "instant" {
        instant_section(&ctx, n, secs, &mut figs).await;
    }
    if profiles == "both" || profiles == "realistic" {
        ctx.profile = ProfileName::Realistic;
        realistic_section(&ctx, secs, &mut figs).await;
    }
    println!();
    println!("pgforce end to end: Postgres commit -> Salesforce applied (emulator in-process, PostgreSQL {major} throwaway cluster)");
    println!("ratio = pgforce / baseline (rows/s and speedup: higher is better for pgforce; calls, latency, CPU, RSS: lower is better)");
    println!();
    println!(
        "{:<58} {:>12} {:>12} {:>9}",
        "figure", "pgforce", "baseline", "ratio"
    );
    for l in &figs.lines {
        println!("{l}");
    }
    figs.json.insert("rows".into(), json!(n));
    figs.json.insert("steady_secs".into(), json!(secs));
    figs.json.insert("postgres_major".into(), json!(major));
    figs.json
        .insert("load_average".into(), json!(support::load_average()));
    support::write_json("pipeline", &Value::Object(figs.json));
    drop(cluster);
}

/// Bulk path config for throughput: 10,000-row jobs (the default).
const BULK: PgCfg = PgCfg {
    collections_threshold: 0,
    max_batch_rows: 10_000,
    max_batch_age_ms: 1_000,
    bulk_jobs: None,
    calls: None,
};

async fn instant_section(ctx: &Ctx<'_>, n: u64, secs: u64, figs: &mut Figures) {
    // Config validation requires collections_threshold <= max_batch_rows, and a step of
    // exactly max_batch_rows rows goes Bulk; flushing at every commit (age 1 ms) keeps each
    // step one 1,000-row transaction, below the threshold: 5 Collections calls of 200.
    let collections = PgCfg {
        collections_threshold: 10_000,
        max_batch_age_ms: 1,
        ..BULK
    };
    let steady = PgCfg {
        collections_threshold: 200,
        max_batch_age_ms: 100,
        ..BULK
    };
    let load1k = Load::Steady { rate: 1_000, secs };
    let r_bulk = scenario(ctx, "i-bulk", Contender::Pgforce(BULK), Load::Burst(n)).await;
    let r_coll = scenario(
        ctx,
        "i-coll",
        Contender::Pgforce(collections),
        Load::Burst(n),
    )
    .await;
    let r_base = scenario(ctx, "i-base", Contender::Baseline, Load::Burst(n)).await;
    let l_pg = scenario(ctx, "i-lat", Contender::Pgforce(steady), load1k).await;
    let l_base = scenario(ctx, "i-latbase", Contender::Baseline, load1k).await;
    let recv_cpu = if ctx.wanted("i-recv") {
        recvlogical_cpu(ctx, n).await
    } else {
        None
    };
    let big_txn = env_num("PGFORCE_BENCH_BIG_TXN_ROWS", 1_000_000);
    let r_txn = if big_txn > 0 {
        scenario(
            ctx,
            "i-bigtxn",
            Contender::Pgforce(BULK),
            Load::BigTxn(big_txn),
        )
        .await
    } else {
        Run::default()
    };
    let big = env_num("PGFORCE_BENCH_BIG_BACKFILL_ROWS", 1_000_000);
    let r_big = if big > 0 {
        scenario(
            ctx,
            "i-backfill",
            Contender::Pgforce(BULK),
            Load::Backfill(big),
        )
        .await
    } else {
        Run::default()
    };

    figs.note(format!("-- instant profile: N = {n} rows ({ROWS_PER_TXN} per transaction); steady ~1,000 rows/s for {secs} s; baseline = per-row REST loop"));
    figs.note("   pgforce Bulk: threshold 0, max_batch_rows 10000, max_batch_age_ms 1000; Collections: threshold 10000, age 1 ms (flush per commit); steady: threshold 200, age 100 ms".into());
    let rate = |r: &Run| r.rows_per_sec(n);
    figs.row(
        Some("instant.rows_per_sec_bulk"),
        "rows/s, Bulk API 2.0 path (threshold 0)",
        rate(&r_bulk),
        rate(&r_base),
    );
    figs.row(
        Some("instant.rows_per_sec_collections"),
        "rows/s, Collections path (200 rows/call)",
        rate(&r_coll),
        rate(&r_base),
    );
    figs.put("instant.rows_per_sec_per_row_loop", rate(&r_base));
    figs.row(
        Some("instant.api_calls_per_100k_bulk"),
        "API requests per 100k changes, Bulk path",
        r_bulk.calls_per_100k(n),
        r_base.calls_per_100k(n),
    );
    figs.row(
        Some("instant.api_calls_per_100k_collections"),
        "API requests per 100k changes, Collections",
        r_coll.calls_per_100k(n),
        r_base.calls_per_100k(n),
    );
    for (p, key) in [(0.50, "p50"), (0.99, "p99")] {
        figs.row(
            Some(&format!("instant.{key}_ms_at_1k")),
            &format!("latency {key} @1k/s, threshold 200 (ms)"),
            l_pg.percentile_ms(p),
            l_base.percentile_ms(p),
        );
    }
    let cpu100k = r_bulk.cpu_secs.map(|c| c * 100_000.0 / n as f64);
    let recv100k = recv_cpu.map(|c| c * 100_000.0 / n as f64);
    figs.row(
        Some("instant.cpu_s_per_100k"),
        "CPU s (user+sys) per 100k changes, Bulk vs pg_recvlogical",
        cpu100k,
        recv100k,
    );
    figs.put("instant.recvlogical_cpu_s_per_100k", recv100k);
    figs.put(
        "instant.cpu_ratio_vs_pg_recvlogical",
        cpu100k.zip(recv100k).map(|(a, b)| a / b.max(1e-9)),
    );
    figs.row(
        Some("instant.peak_rss_mib_bulk"),
        "peak RSS, Bulk throughput run (MiB, VmHWM)",
        r_bulk.peak_mib(),
        r_base.peak_mib(),
    );
    figs.row(
        Some("instant.peak_rss_mib_backfill"),
        &format!("peak RSS, backfill of {big} rows (MiB; vs Bulk run)"),
        r_big.peak_mib(),
        r_bulk.peak_mib(),
    );
    figs.put("instant.backfill_rows", Some(big as f64));
    figs.row(
        Some("instant.peak_rss_mib_big_txn"),
        &format!("peak RSS, one transaction of {big_txn} rows (MiB; vs Bulk run)"),
        r_txn.peak_mib(),
        r_bulk.peak_mib(),
    );
    figs.put("instant.big_txn_rows", Some(big_txn as f64));
    figs.put(
        "instant.big_txn_rows_per_sec",
        r_txn.rows_per_sec(big_txn.max(1)),
    );
    figs.put(
        "instant.backfill_rows_per_sec",
        r_big.rows_per_sec(big.max(1)),
    );
    if big >= 10_000_000 {
        figs.put("instant.peak_rss_mib_backfill_10m", r_big.peak_mib());
    }
}

async fn realistic_section(ctx: &Ctx<'_>, secs: u64, figs: &mut Figures) {
    // Bulk jobs cost 4 calls plus polls whatever their size: fewer, bigger jobs.
    let bulk = PgCfg {
        max_batch_rows: 100_000,
        ..BULK
    };
    let n = env_num("PGFORCE_BENCH_REALISTIC_ROWS", 200_000).max(ROWS_PER_TXN as u64);
    let n = n / ROWS_PER_TXN as u64 * ROWS_PER_TXN as u64;
    // Epochs below 5,000 rows through Collections, 16 calls in flight (at 5k/s and ~0.5 s
    // per 200-record call, fewer cannot keep up); bigger ones through Bulk.
    let steady = PgCfg {
        collections_threshold: 5_000,
        max_batch_rows: 10_000,
        max_batch_age_ms: 100,
        bulk_jobs: None,
        calls: Some(16),
    };
    let batch10s = PgCfg {
        collections_threshold: 0,
        max_batch_rows: 100_000,
        max_batch_age_ms: 10_000,
        bulk_jobs: None,
        calls: None,
    };
    let r_bulk = scenario(ctx, "r-bulk", Contender::Pgforce(bulk), Load::Burst(n)).await;
    let mut lat = Vec::new();
    for rate in [1_000u64, 5_000] {
        let load = Load::Steady { rate, secs };
        let k = rate / 1000;
        let pg = scenario(ctx, &format!("r-lat{k}k"), Contender::Pgforce(steady), load).await;
        let base = scenario(ctx, &format!("r-latbase{k}k"), Contender::Baseline, load).await;
        let b10 = scenario(
            ctx,
            &format!("r-lat10s{k}k"),
            Contender::Pgforce(batch10s),
            load,
        )
        .await;
        lat.push((k, pg, base, b10));
    }
    let bf = env_num("PGFORCE_BENCH_BACKFILL_ROWS", 200_000).max(1);
    let jobs = env_num("PGFORCE_BENCH_BULK_JOBS", 10).max(1) as usize;
    let par = PgCfg {
        bulk_jobs: Some(jobs),
        ..BULK
    };
    let one = PgCfg {
        bulk_jobs: Some(1),
        ..BULK
    };
    let b_par = scenario(
        ctx,
        "r-backfill",
        Contender::Pgforce(par),
        Load::Backfill(bf),
    )
    .await;
    let b_one = scenario(
        ctx,
        "r-backfill1",
        Contender::Pgforce(one),
        Load::Backfill(bf),
    )
    .await;

    figs.note(format!("-- realistic profile (emulator --profile realistic); Bulk burst N = {n}; steady runs {secs} s, grace {} s", ctx.grace.as_secs()));
    figs.note("   pgforce steady: collections_threshold 5000, max_batch_age_ms 100, max_concurrent_calls 16; Bulk burst: max_batch_rows 100000, threshold 0; 10-s batch: max_batch_age_ms 10000, threshold 0".into());
    figs.row(
        Some("realistic.api_calls_per_100k_bulk"),
        "API requests per 100k changes, Bulk path (100k-row jobs)",
        r_bulk.calls_per_100k(n),
        None,
    );
    figs.row(
        Some("realistic.rows_per_sec_bulk"),
        "rows/s, Bulk path burst",
        r_bulk.rows_per_sec(n),
        None,
    );
    for (k, pg, base, b10) in &lat {
        for (p, key) in [(0.50, "p50"), (0.99, "p99")] {
            let censored = if base.censored > 0 { ">=" } else { "" };
            figs.row(
                Some(&format!("realistic.{key}_ms_at_{k}k")),
                &format!("latency {key} @{k}k/s vs per-row loop{censored} (ms)"),
                pg.percentile_ms(p),
                base.percentile_ms(p),
            );
            figs.put(
                &format!("realistic.{key}_ms_at_{k}k_per_row_loop"),
                base.percentile_ms(p),
            );
            figs.row(
                Some(&format!("realistic.{key}_ms_at_{k}k_batch_10s")),
                &format!("latency {key} @{k}k/s, 10-s batch baseline (ms; vs pgforce)"),
                b10.percentile_ms(p),
                pg.percentile_ms(p),
            );
        }
        figs.note(format!(
            "   @{k}k/s samples: pgforce {} ({} late), per-row loop {} ({} never sent in time), 10-s batch {} ({} late)",
            pg.latencies.len(),
            pg.censored,
            base.latencies.len(),
            base.censored,
            b10.latencies.len(),
            b10.censored
        ));
    }
    let r_par = b_par.rows_per_sec(bf);
    let r_one = b_one.rows_per_sec(bf);
    figs.row(
        Some("realistic.backfill_rows_per_sec"),
        &format!("backfill {bf} rows, rows/s: {jobs} jobs vs 1 job at a time"),
        r_par,
        r_one,
    );
    figs.put("realistic.backfill_one_job_rows_per_sec", r_one);
    figs.put(
        "realistic.backfill_speedup",
        r_par.zip(r_one).map(|(a, b)| a / b.max(1e-9)),
    );
    figs.put("realistic.backfill_rows", Some(bf as f64));
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

/// User+sys CPU seconds of a process so far (`/proc/<pid>/stat` fields 14 and 15).
fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks / hz.max(1) as f64)
}

async fn scenario(ctx: &Ctx<'_>, name: &str, who: Contender, load: Load) -> Run {
    if !ctx.wanted(name) {
        return Run::default();
    }
    let ident = name.replace('-', "_");
    let table = format!("bench_{ident}");
    ctx.pg
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, name text NOT NULL, phone text,
                                   updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
             CREATE INDEX ON {table} (updated_at, id);"
        ))
        .await
        .expect("create table");
    if let Load::Backfill(n) = load {
        insert_rows(ctx.pg, &table, n, 100_000).await;
    }
    let config = EmulatorConfig {
        daily_api_limit: 100_000_000,
        profile: ctx.profile,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = load.rows();
    let started = Instant::now();
    let child = match who {
        Contender::Pgforce(cfg) => {
            let path = dir.path().join("pgforce.toml");
            let text = pgforce_config(&ident, &table, emulator.base_url(), cfg);
            std::fs::write(&path, text).expect("write config");
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
            let slot = format!("pgforce_bench_{ident}");
            let streaming = match load {
                Load::Backfill(_) => true,
                _ => wait_slot_active(ctx.pg, &slot).await,
            };
            if !streaming {
                let log =
                    std::fs::read_to_string(dir.path().join("pgforce.log")).unwrap_or_default();
                eprintln!("{name}: pgforce did not start streaming; its log:\n{log}");
                return Run::default();
            }
            Child { child, pid }
        }
        Contender::Baseline => {
            let token = emulator.issue_default_token().expect("token");
            let deadline = match load {
                Load::Steady { secs, .. } => secs + ctx.grace.as_secs(),
                _ => 3_600,
            };
            let child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
                .env(ROLE_ENV, "baseline")
                .env(DB_ENV, ctx.db_url)
                .env("PGFORCE_BENCH_BASELINE_URL", emulator.base_url())
                .env("PGFORCE_BENCH_BASELINE_TOKEN", token)
                .env("PGFORCE_BENCH_BASELINE_TABLE", &table)
                .env("PGFORCE_BENCH_BASELINE_ROWS", rows.to_string())
                .env("PGFORCE_BENCH_BASELINE_DEADLINE", deadline.to_string())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("start baseline");
            let pid = child.id().expect("pid");
            Child { child, pid }
        }
    };
    if !matches!(load, Load::Backfill(_)) {
        reset_stats(&emulator).await;
    }
    let mut child = child;
    let cpu_start = cpu_secs(child.pid);
    let mut run = Run::default();
    let started = match load {
        Load::Backfill(_) => started,
        _ => Instant::now(),
    };
    match load {
        Load::Burst(n) | Load::BigTxn(n) => {
            let per_txn = match load {
                Load::BigTxn(_) => n,
                _ => ROWS_PER_TXN as u64,
            };
            let insert = insert_rows(ctx.pg, &table, n, per_txn);
            let applied = wait_count(&emulator, n as usize, Duration::from_secs(1_800));
            let (_, done) = tokio::join!(insert, applied);
            run.elapsed = done.then(|| started.elapsed());
        }
        Load::Backfill(n) => {
            let done = tokio::select! {
                done = wait_count(&emulator, n as usize, Duration::from_secs(3_600)) => done,
                _ = child.child.wait() => {
                    let log = std::fs::read_to_string(dir.path().join("pgforce.log")).unwrap_or_default();
                    eprintln!("{name}: pgforce exited during the backfill; its log:\n{log}");
                    false
                }
            };
            run.elapsed = done.then(|| started.elapsed());
        }
        Load::Steady { rate, secs } => {
            let per_txn = Load::per_txn(rate) as i64;
            let d = Duration::from_secs(secs);
            (run.latencies, run.censored) =
                steady_latencies(ctx.pg, &table, &emulator, d, per_txn, ctx.grace).await;
        }
    }
    if let (Some(a), Some(b)) = (cpu_start, cpu_secs(child.pid)) {
        run.cpu_secs = Some(b - a);
    }
    let (calls, by_family) = api_calls(&emulator).await;
    run.api_calls = calls;
    eprintln!(
        "{name}: {} rows in {:.2?}, {} API requests {by_family}, CPU {:?} s, p50/p99 {:?}/{:?} ms",
        rows,
        started.elapsed(),
        run.api_calls,
        run.cpu_secs,
        run.percentile_ms(0.5),
        run.percentile_ms(0.99),
    );
    run.peak_rss_kib = finish(child, who).await;
    if let Contender::Pgforce(_) = who {
        let slot = format!("pgforce_bench_{ident}");
        let _ = ctx
            .pg
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await;
    }
    let _ = ctx.pg.batch_execute(&format!("DROP TABLE {table}")).await;
    emulator.shutdown().await;
    run
}

/// CPU seconds pg_recvlogical spends reading `n` inserted rows' changes (pgoutput).
async fn recvlogical_cpu(ctx: &Ctx<'_>, n: u64) -> Option<f64> {
    let table = "bench_recv";
    ctx.pg
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, name text NOT NULL, phone text,
                                   updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
             CREATE PUBLICATION bench_recv FOR TABLE {table};"
        ))
        .await
        .expect("recv setup");
    // A slot cannot be created in a transaction that wrote: its own statement.
    ctx.pg
        .batch_execute("SELECT pg_create_logical_replication_slot('bench_recv', 'pgoutput')")
        .await
        .expect("recv slot");
    insert_rows(ctx.pg, table, n, ROWS_PER_TXN as u64).await;
    let end: String = ctx
        .pg
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("lsn")
        .get(0);
    let bin = ctx.bindir.join("pg_recvlogical");
    let db = ctx.db_url.to_string();
    let cpu = tokio::task::spawn_blocking(move || {
        let child = std::process::Command::new(bin)
            .args(["-d", &db, "-S", "bench_recv", "--start", "-E", &end])
            .args([
                "-o",
                "proto_version=1",
                "-o",
                "publication_names=bench_recv",
            ])
            .args(["-f", "/dev/null", "--no-loop"])
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let pid = child.id() as libc::pid_t;
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r != pid {
            return None;
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Some(secs(usage.ru_utime) + secs(usage.ru_stime))
    })
    .await
    .ok()
    .flatten();
    let _ = ctx
        .pg
        .batch_execute(&format!(
            "SELECT pg_drop_replication_slot('bench_recv'); DROP PUBLICATION bench_recv; DROP TABLE {table};"
        ))
        .await;
    eprintln!("i-recv: pg_recvlogical read {n} rows' changes in {cpu:?} CPU s");
    cpu
}

/// Peak RSS, then stop the child.
async fn finish(mut c: Child, who: Contender) -> Option<u64> {
    match who {
        Contender::Pgforce(_) => {
            let hwm = vm_hwm_kib(c.pid);
            // SIGTERM: drain and exit; SIGKILL if it takes too long.
            // SAFETY: kill has no memory preconditions; the pid is our own child's.
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
            // The baseline exits once it has sent every row (or at its deadline), printing
            // its own VmHWM.
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

fn pgforce_config(name: &str, table: &str, url: &str, cfg: PgCfg) -> String {
    let mut extra = String::new();
    // PGFORCE_BENCH_PLAIN_CONFIG=1 leaves the concurrency keys out, to measure a build from
    // before they existed (every pgforce scenario then runs with that build's behaviour).
    let cfg = if std::env::var_os("PGFORCE_BENCH_PLAIN_CONFIG").is_some() {
        PgCfg {
            bulk_jobs: None,
            calls: None,
            ..cfg
        }
    } else {
        cfg
    };
    if let Some(j) = cfg.bulk_jobs {
        extra.push_str(&format!("max_concurrent_bulk_jobs = {j}\n"));
    }
    if let Some(c) = cfg.calls {
        extra.push_str(&format!("max_concurrent_calls = {c}\n"));
    }
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
{extra}
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
        max_batch_rows = cfg.max_batch_rows,
        max_batch_age_ms = cfg.max_batch_age_ms,
        collections_threshold = cfg.collections_threshold,
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

/// `n` rows, `per_txn` per transaction.
async fn insert_rows(pg: &tokio_postgres::Client, table: &str, n: u64, per_txn: u64) {
    let sql = format!(
        "INSERT INTO {table} (id, name, phone)
         SELECT g, 'Item ' || g, '555-' || g FROM generate_series($1::bigint, $2::bigint) g"
    );
    let stmt = pg.prepare(&sql).await.expect("prepare insert");
    let mut first = 1i64;
    while first <= n as i64 {
        let last = (first + per_txn as i64 - 1).min(n as i64);
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

/// `per_txn` rows every 20 ms for `d`; returns each row's commit → visible-in-Salesforce
/// latency, and how many rows had not arrived `grace` after the load ended (their latency
/// is counted as what it was then).
async fn steady_latencies(
    pg: &tokio_postgres::Client,
    table: &str,
    emulator: &EmulatorHandle,
    d: Duration,
    per_txn: i64,
    grace: Duration,
) -> (Vec<Duration>, usize) {
    let pending: Arc<parking_lot::Mutex<HashMap<i64, Instant>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let pending = pending.clone();
        let done = done.clone();
        let state = emulator.state().clone();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut ended: Option<Instant> = None;
            loop {
                let keys: Vec<(i64, Instant)> =
                    pending.lock().iter().map(|(k, v)| (*k, *v)).collect();
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                if keys.is_empty() && finished {
                    return (out, 0);
                }
                if finished {
                    let since = *ended.get_or_insert_with(Instant::now);
                    if since.elapsed() > grace {
                        eprintln!(
                            "{} rows had not arrived {grace:?} after the load",
                            keys.len()
                        );
                        let censored = keys.len();
                        out.extend(keys.into_iter().map(|(_, c)| c.elapsed()));
                        return (out, censored);
                    }
                }
                let mut arrived = Vec::new();
                for (k, committed) in keys {
                    let found = state
                        .store
                        .find_by_external_id("Account", "External_Id__c", &k.to_string())
                        .map(|v| !v.is_empty())
                        .unwrap_or(false);
                    if found {
                        out.push(committed.elapsed());
                        arrived.push(k);
                    }
                }
                let mut p = pending.lock();
                for k in arrived {
                    p.remove(&k);
                }
                drop(p);
                std::thread::sleep(Duration::from_millis(1));
            }
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
        let (first, last) = (t * per_txn + 1, t * per_txn + per_txn);
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

/// The baseline: poll for changed rows, PATCH each one by external id, until `rows` sent or
/// the deadline.
async fn baseline_child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let db = var(DB_ENV);
    let base = var("PGFORCE_BENCH_BASELINE_URL");
    let token = var("PGFORCE_BENCH_BASELINE_TOKEN");
    let table = var("PGFORCE_BENCH_BASELINE_TABLE");
    let rows: u64 = var("PGFORCE_BENCH_BASELINE_ROWS").parse().expect("rows");
    let limit: u64 = var("PGFORCE_BENCH_BASELINE_DEADLINE")
        .parse()
        .expect("deadline");
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
    let deadline = Instant::now() + Duration::from_secs(limit);
    'outer: while sent < rows && Instant::now() < deadline {
        let batch = pg.query(&stmt, &[&last_at, &last_id]).await.expect("poll");
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        for r in batch {
            if Instant::now() >= deadline {
                break 'outer;
            }
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
