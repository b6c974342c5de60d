//! Helpers shared by the failure tests (`pipeline_crash`, `pipeline_ha`,
//! `pipeline_signals`): a throwaway Postgres plus an in-process Salesforce emulator (it lives
//! in the test process, so it survives every kill of the pipeline), the real `pgforce run`
//! binary as a child process, a concurrent workload of inserts, updates and deletes
//! (Accounts and Contacts with an Account lookup), and the record-by-record comparison that
//! states the exactly-once invariant: Salesforce holds exactly what Postgres holds.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pgforce::testing::TempCluster;
use pgforce_emulator::{config as emu, EmulatorConfig, EmulatorHandle};
use rand::Rng;
use serde_json::Value;
use tokio_postgres::{Client, NoTls};

use crate::support::compare::{self, Diff, Kind, Table};
use crate::support::config::{Batching, ConfigBuilder, Mapping};
use crate::support::start;
pub use crate::support::wait::{check, poll_until, Deadline};

/// Pipeline, slot and publication name used by every failure test.
pub const PIPELINE: &str = "crash";
pub const SLOT: &str = "pgforce_crash";
pub const API_VERSION: &str = "62.0";

/// The source schema. `incarnations` is not published: it counts how often the workload
/// inserted each key, so the check can tell a legitimate re-create (delete, then insert the
/// same id again) from a duplicate create.
pub const SCHEMA: &str = "
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, site text, description text,
    mrr numeric(18,2));
CREATE TABLE contacts (id bigint PRIMARY KEY, account_id bigint NOT NULL, first_name text,
    last_name text NOT NULL, email text, title text);
CREATE TABLE incarnations (object text NOT NULL, id bigint NOT NULL, n int NOT NULL,
    PRIMARY KEY (object, id));
";

/// Postgres, the emulator and a directory for the config and the children's logs.
pub struct Env {
    pub cluster: TempCluster,
    pub emulator: EmulatorHandle,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db_url: String,
}

/// Knobs of the generated config.
#[derive(Debug, Clone)]
pub struct ConfigOptions {
    pub max_batch_rows: usize,
    pub collections_threshold: usize,
    pub max_batch_age_ms: u64,
    pub grace_seconds: u64,
}

impl Default for ConfigOptions {
    fn default() -> Self {
        ConfigOptions {
            max_batch_rows: 5000,
            collections_threshold: 200,
            max_batch_age_ms: 500,
            grace_seconds: 30,
        }
    }
}

impl Env {
    /// Start Postgres (schema created) and the emulator, and write the config.
    pub async fn start(opts: ConfigOptions) -> Env {
        let cluster = start::postgres().await;
        let db_url = cluster.url("postgres");
        let emu_config = EmulatorConfig {
            // Restarts re-run login, describe and validation; keep the governor out of it.
            daily_api_limit: 50_000_000,
            ..EmulatorConfig::default()
        };
        let emulator = start::emulator(emu_config).await;
        let dir = tempfile::Builder::new()
            .prefix("pgforce-crash-")
            .tempdir()
            .unwrap();
        let config = dir.path().join("pgforce.toml");
        self::config(emulator.base_url(), &opts).write(&config);
        let env = Env {
            cluster,
            emulator,
            dir,
            config,
            db_url,
        };
        env.client().await.batch_execute(SCHEMA).await.unwrap();
        env
    }

    /// A fresh ordinary client.
    pub async fn client(&self) -> Client {
        connect(&self.db_url).await
    }

    /// Spawn `pgforce run` on the config; its output is appended to `<dir>/<name>.log`.
    pub fn spawn(&self, name: &str, listen: Option<&str>) -> Pipeline {
        let log_path = self.dir.path().join(format!("{name}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgforce"));
        cmd.arg("run").arg("--config").arg(&self.config);
        cmd.arg("--listen").arg(listen.unwrap_or("127.0.0.1:0"));
        cmd.env("PGFORCE_TEST_DATABASE_URL", &self.db_url)
            .env("PGFORCE_TEST_SF_SECRET", emu::DEMO_CLIENT_SECRET)
            .env_remove("PGFORCE_OPS_LISTEN")
            .env(
                "RUST_LOG",
                std::env::var("PGFORCE_CHILD_LOG")
                    .unwrap_or_else(|_| "info,tokio_postgres=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().expect("spawn pgforce run");
        Pipeline {
            child,
            log: log_path,
            exited: None,
        }
    }

    /// The last `n` lines of a child's log (for failure messages).
    pub fn log_tail(&self, name: &str, n: usize) -> String {
        log_tail(&self.dir.path().join(format!("{name}.log")), n)
    }

    /// How often each of `needles` occurs in a child's log.
    pub fn log_counts(&self, name: &str, needles: &[&str]) -> Vec<(String, usize)> {
        let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
            .unwrap_or_default();
        needles
            .iter()
            .map(|n| (n.to_string(), text.matches(n).count()))
            .collect()
    }
}

/// Log lines worth counting in a summary: how restarts recovered.
pub const RECOVERY_LINES: &[&str] = &[
    "resuming an epoch left in flight",
    "reconciling a Bulk job from before the restart",
    "aborting a Bulk job that never got its data",
    "the in-flight plan differs",
    "pipeline stopped; restarting",
    "backfill sink rejected",
    "panicked",
];

pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The pgforce config for the emulator at `base`. Secrets are `env:` references the child
/// gets in its environment.
pub fn config(base: &str, o: &ConfigOptions) -> ConfigBuilder {
    ConfigBuilder::new(PIPELINE, "PGFORCE_TEST_DATABASE_URL")
        .emulator(base, "PGFORCE_TEST_SF_SECRET")
        .api_version(API_VERSION)
        .shutdown_grace_seconds(o.grace_seconds)
        .batching(Batching {
            max_batch_rows: Some(o.max_batch_rows),
            max_batch_age_ms: Some(o.max_batch_age_ms),
            collections_threshold: Some(o.collections_threshold),
        })
        .mapping(
            Mapping::new("accounts", "public.accounts", "Account")
                .field("name", "Name")
                .field("site", "Site")
                .field("description", "Description")
                .field_toml(
                    "mrr",
                    r#"{ field = "MRR__c", transform = { type = "numeric", precision = 16, scale = 2 } }"#,
                ),
        )
        .mapping(
            Mapping::new("contacts", "public.contacts", "Contact")
                .lookup("account_id", "Account", "Account")
                .field("first_name", "FirstName")
                .field("last_name", "LastName")
                .field("email", "Email")
                .field("title", "Title"),
        )
}

/// A client whose commits are durable once acknowledged: the test cluster runs with
/// `synchronous_commit = off`, and a Postgres crash would otherwise lose transactions the
/// workload already counted (and whose Accounts it already handed out as parents).
pub async fn connect(url: &str) -> Client {
    try_connect(url)
        .await
        .expect("connect to the test Postgres")
}

async fn try_connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client.batch_execute("SET synchronous_commit = on").await?;
    Ok(client)
}

/// A `pgforce run` child process.
pub struct Pipeline {
    pub child: Child,
    pub log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Pipeline {
    /// Spawn `pgforce run` on `config` with `env` set (the config's `env:` secrets), its
    /// output appended to `log` (for tests that bring their own config, e.g. a template).
    pub fn run(config: &Path, log: &Path, env: &[(&str, &str)]) -> Pipeline {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgforce"));
        cmd.arg("run").arg("--config").arg(config);
        cmd.args(["--listen", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .env_remove("PGFORCE_OPS_LISTEN")
            .env(
                "RUST_LOG",
                std::env::var("PGFORCE_CHILD_LOG")
                    .unwrap_or_else(|_| "info,tokio_postgres=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        Pipeline {
            child: cmd.spawn().expect("spawn pgforce run"),
            log: log.to_path_buf(),
            exited: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// Send a signal (SIGTERM, SIGINT).
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) with the pid of our own child; no memory is touched.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Whether the process has exited (reaps it).
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Wait up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        poll_until(Deadline::within(limit).every_ms(50), || {
            let exited = self.try_exited();
            async move { exited.ok_or_else(|| "running".to_string()) }
        })
        .await
        .ok()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A free TCP port on loopback (racy by nature; fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET an ops endpoint; `None` when the listener does not answer.
pub async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let resp = client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

/// The pipeline's state from `/status` (`streaming`, `standby`, ...).
pub async fn pipeline_state(addr: &str) -> Option<String> {
    let (_, body) = http_get(addr, "/status").await?;
    let v: Value = serde_json::from_str(&body).ok()?;
    v["pipelines"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == PIPELINE)
        .and_then(|p| p["state"].as_str())
        .map(str::to_string)
}

/// Value of a Prometheus sample `name{...pipeline="crash"...}` (first match, summed over
/// label sets when there are several).
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value: f64 = match rest.rsplit(' ').next().and_then(|v| v.parse().ok()) {
            Some(v) => v,
            None => continue,
        };
        *found.get_or_insert(0.0) += value;
    }
    found
}

// ---------------------------------------------------------------------------------------
// Positions
// ---------------------------------------------------------------------------------------

/// `pg_current_wal_lsn()` as u64.
pub async fn current_wal_lsn(pg: &Client) -> u64 {
    let r = pg
        .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint", &[])
        .await
        .unwrap();
    r.get::<_, i64>(0) as u64
}

/// The slot's confirmed_flush_lsn as u64 (0 when the slot does not exist yet).
pub async fn slot_confirmed(pg: &Client) -> u64 {
    let r = pg
        .query_opt(
            "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
            &[&SLOT],
        )
        .await
        .unwrap();
    r.and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(0) as u64
}

/// Rows of `pgforce.inflight` (0 when the state schema does not exist yet).
pub async fn inflight_rows(pg: &Client) -> i64 {
    match pg
        .query_one("SELECT count(*) FROM pgforce.inflight", &[])
        .await
    {
        Ok(r) => r.get(0),
        Err(_) => 0,
    }
}

/// Bulk steps of the in-flight epoch with a job recorded and not done, as (job id, state):
/// a kill while one exists lands between a Bulk job's creation/upload and the checkpoint.
pub async fn open_bulk_steps(pg: &Client) -> Vec<(String, String)> {
    match pg
        .query(
            "SELECT job_id, state FROM pgforce.inflight WHERE path = 'bulk' AND job_id IS NOT NULL AND state <> 'done'",
            &[],
        )
        .await
    {
        Ok(rows) => rows.into_iter().map(|r| (r.get(0), r.get(1))).collect(),
        Err(_) => Vec::new(),
    }
}

/// Job ids recorded in `pgforce.inflight` right now.
pub async fn recorded_jobs(pg: &Client) -> Vec<String> {
    open_bulk_steps(pg)
        .await
        .into_iter()
        .map(|(j, _)| j)
        .collect()
}

/// Wait until the slot confirmed `target` and nothing is in flight. `false` on timeout.
pub async fn wait_caught_up(pg: &Client, target: u64, limit: Duration) -> bool {
    poll_until(Deadline::within(limit).every_ms(200), || async {
        let (at, inflight) = (slot_confirmed(pg).await, inflight_rows(pg).await);
        check(at >= target && inflight == 0, || {
            format!("slot at {at:X}, {inflight} in flight")
        })
    })
    .await
    .is_ok()
}

// ---------------------------------------------------------------------------------------
// Workload
// ---------------------------------------------------------------------------------------

/// Counters shared by the workload's workers.
#[derive(Debug, Default)]
pub struct WorkloadStats {
    /// Row changes in committed transactions.
    pub rows: AtomicU64,
    pub transactions: AtomicU64,
    pub aborted: AtomicU64,
    pub inserts: AtomicU64,
    pub updates: AtomicU64,
    pub deletes: AtomicU64,
    pub reinserts: AtomicU64,
}

/// Account ids contacts may point at: committed and never deleted.
#[derive(Debug, Default)]
pub struct ParentPool {
    ids: Mutex<Vec<i64>>,
}

impl ParentPool {
    fn pick(&self, rng: &mut impl Rng) -> Option<i64> {
        let ids = self.ids.lock();
        (!ids.is_empty()).then(|| ids[rng.random_range(0..ids.len())])
    }
}

/// What one worker knows about its own rows (workers never touch each other's rows, so
/// there are no lock conflicts between them).
#[derive(Default)]
struct WorkerRows {
    accounts: Vec<i64>,
    /// Accounts no contact points at (they may be deleted).
    leaf_accounts: Vec<i64>,
    contacts: Vec<i64>,
    deleted_contacts: Vec<i64>,
    next: i64,
}

/// The workload: `workers` connections doing transactions of 1 to ~500 row changes until
/// `budget` row changes committed. Ids are `n * workers + w` so workers own disjoint rows.
#[derive(Clone)]
pub struct Workload {
    pub url: String,
    pub workers: i64,
    pub budget: u64,
    /// Pause between transactions of one worker (spreads the workload over time).
    pub pause: Duration,
    pub stats: Arc<WorkloadStats>,
    pool: Arc<ParentPool>,
    version: Arc<AtomicI64>,
}

/// A seed of `accounts` Accounts and `contacts` Contacts, inserted in one transaction
/// (before the pipeline starts, it is backfilled).
pub async fn seed(pg: &Client, accounts: i64, contacts: i64) {
    pg.batch_execute(&format!(
        "INSERT INTO accounts SELECT g, 'Seed ' || g, 'site-' || g, NULL, g * 1.25 FROM generate_series(1, {accounts}) g;
         INSERT INTO incarnations SELECT 'accounts', g, 1 FROM generate_series(1, {accounts}) g;
         INSERT INTO contacts SELECT g, 1 + (g % {accounts}), 'F' || g, 'Seed' || g, 'c' || g || '@seed.example.com', NULL
           FROM generate_series(1, {contacts}) g;
         INSERT INTO incarnations SELECT 'contacts', g, 1 FROM generate_series(1, {contacts}) g;"
    ))
    .await
    .unwrap();
}

/// Ids at and above this are the workload's (the seed uses small ids).
const WORKLOAD_ID_BASE: i64 = 1_000_000;

impl Workload {
    /// A workload; `seed_accounts` seed Accounts (ids 1..=n, all with contacts) become
    /// parents of new Contacts.
    pub fn new(url: &str, workers: i64, budget: u64, seed_accounts: i64) -> Workload {
        let pool = ParentPool::default();
        pool.ids.lock().extend(1..=seed_accounts);
        Workload {
            url: url.to_string(),
            workers,
            budget,
            pause: Duration::from_millis(3),
            stats: Arc::new(WorkloadStats::default()),
            pool: Arc::new(pool),
            version: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Run every worker to the end of the budget.
    pub async fn run(&self) {
        let mut tasks = Vec::new();
        for w in 0..self.workers {
            let me = self.clone();
            tasks.push(tokio::spawn(async move { me.worker(w).await }));
        }
        for t in tasks {
            t.await.expect("workload worker panicked");
        }
    }

    async fn worker(&self, w: i64) {
        let mut pg = connect(&self.url).await;
        let mut rows = WorkerRows::default();
        while self.stats.rows.load(Ordering::Relaxed) < self.budget {
            let size = {
                let mut rng = rand::rng();
                match rng.random_range(0..100) {
                    0..=39 => 1,
                    40..=79 => rng.random_range(2..=20),
                    80..=97 => rng.random_range(21..=200),
                    _ => rng.random_range(201..=600),
                }
            };
            let mut shadow = WorkerRows {
                accounts: rows.accounts.clone(),
                leaf_accounts: rows.leaf_accounts.clone(),
                contacts: rows.contacts.clone(),
                deleted_contacts: rows.deleted_contacts.clone(),
                next: rows.next,
            };
            match self.transaction(&mut pg, w, size, &mut shadow).await {
                Ok((n, new_parents)) => {
                    rows = shadow;
                    self.pool.ids.lock().extend(new_parents);
                    self.stats.rows.fetch_add(n, Ordering::Relaxed);
                    self.stats.transactions.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.aborted.fetch_add(1, Ordering::Relaxed);
                    // Ids handed out in an aborted transaction are never reused.
                    rows.next = shadow.next;
                    if pg.is_closed() {
                        eprintln!("workload worker {w}: connection lost ({e}); reconnecting");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        pg = loop {
                            match try_connect(&self.url).await {
                                Ok(c) => break c,
                                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
                            }
                        };
                    }
                }
            }
            if !self.pause.is_zero() {
                tokio::time::sleep(self.pause).await;
            }
        }
    }

    fn new_id(&self, w: i64, rows: &mut WorkerRows) -> i64 {
        rows.next += 1;
        WORKLOAD_ID_BASE + rows.next * self.workers + w
    }

    /// One transaction of `size` row changes; returns the row changes and the Accounts that
    /// become parents once it commits.
    async fn transaction(
        &self,
        pg: &mut Client,
        w: i64,
        size: usize,
        rows: &mut WorkerRows,
    ) -> Result<(u64, Vec<i64>), tokio_postgres::Error> {
        let tx = pg.transaction().await?;
        let mut new_parents = Vec::new();
        let mut changed = 0u64;
        for _ in 0..size {
            let (op, v, a, b, c) = {
                let mut rng = rand::rng();
                (
                    rng.random_range(0..100),
                    self.version.fetch_add(1, Ordering::Relaxed),
                    rng.random_range(0..1_000_000i64),
                    rng.random_range(0..1_000_000i64),
                    rng.random_range(0..10u8),
                )
            };
            let s = &self.stats;
            match op {
                // Insert an Account; one in three becomes a parent of Contacts.
                0..=11 => {
                    let id = self.new_id(w, rows);
                    tx.execute(
                        "INSERT INTO accounts VALUES ($1, $2, $3, $4, $5::text::numeric)",
                        &[
                            &id,
                            &format!("Acct {id} v{v}"),
                            &(c > 3).then(|| format!("site-{a}")),
                            &(c > 6).then(|| format!("desc {b} v{v}")),
                            &format!("{}.{:02}", a % 100_000, b % 100),
                        ],
                    )
                    .await?;
                    incarnate(&tx, "accounts", id).await?;
                    rows.accounts.push(id);
                    if c % 3 == 0 {
                        new_parents.push(id);
                    } else {
                        rows.leaf_accounts.push(id);
                    }
                    s.inserts.fetch_add(1, Ordering::Relaxed);
                }
                // Update an Account (own rows only).
                12..=36 => {
                    let Some(id) = pick(&rows.accounts, a) else {
                        continue;
                    };
                    let n = if c < 5 {
                        tx.execute(
                            "UPDATE accounts SET name = $2, mrr = $3::text::numeric WHERE id = $1",
                            &[
                                &id,
                                &format!("Acct {id} v{v}"),
                                &format!("{}.{:02}", b % 100_000, a % 100),
                            ],
                        )
                        .await?
                    } else {
                        tx.execute(
                            "UPDATE accounts SET site = $2, description = $3 WHERE id = $1",
                            &[
                                &id,
                                &(c != 5).then(|| format!("site-{b} v{v}")),
                                &(c != 9).then(|| format!("desc {a} v{v}")),
                            ],
                        )
                        .await?
                    };
                    if n != 1 {
                        continue; // our bookkeeping missed a commit lost in a server crash
                    }
                    s.updates.fetch_add(1, Ordering::Relaxed);
                }
                // Delete a leaf Account.
                37..=40 => {
                    if rows.leaf_accounts.is_empty() {
                        continue;
                    }
                    let i = (a as usize) % rows.leaf_accounts.len();
                    let id = rows.leaf_accounts.swap_remove(i);
                    rows.accounts.retain(|x| *x != id);
                    let n = tx
                        .execute("DELETE FROM accounts WHERE id = $1", &[&id])
                        .await?;
                    if n != 1 {
                        continue;
                    }
                    s.deletes.fetch_add(1, Ordering::Relaxed);
                }
                // Insert a Contact under any committed parent.
                41..=62 => {
                    let Some(parent) = self.pool.pick(&mut rand::rng()) else {
                        continue;
                    };
                    let id = self.new_id(w, rows);
                    insert_contact(&tx, id, parent, v, a).await?;
                    incarnate(&tx, "contacts", id).await?;
                    rows.contacts.push(id);
                    s.inserts.fetch_add(1, Ordering::Relaxed);
                }
                // Update a Contact; sometimes move it to another parent.
                63..=88 => {
                    let Some(id) = pick(&rows.contacts, a) else {
                        continue;
                    };
                    let n = if c < 3 {
                        let Some(parent) = self.pool.pick(&mut rand::rng()) else {
                            continue;
                        };
                        tx.execute(
                            "UPDATE contacts SET account_id = $2, title = $3 WHERE id = $1",
                            &[&id, &parent, &format!("Moved v{v}")],
                        )
                        .await?
                    } else {
                        tx.execute(
                            "UPDATE contacts SET first_name = $2, email = $3, title = $4 WHERE id = $1",
                            &[
                                &id,
                                &(c != 4).then(|| format!("F{}", a % 10_000)),
                                &format!("c{id}.v{v}@example.com"),
                                &(c > 6).then(|| format!("Title {b}")),
                            ],
                        )
                        .await?
                    };
                    if n != 1 {
                        continue;
                    }
                    s.updates.fetch_add(1, Ordering::Relaxed);
                }
                // Delete a Contact.
                89..=96 => {
                    if rows.contacts.is_empty() {
                        continue;
                    }
                    let i = (a as usize) % rows.contacts.len();
                    let id = rows.contacts.swap_remove(i);
                    let n = tx
                        .execute("DELETE FROM contacts WHERE id = $1", &[&id])
                        .await?;
                    if n != 1 {
                        continue;
                    }
                    rows.deleted_contacts.push(id);
                    s.deletes.fetch_add(1, Ordering::Relaxed);
                }
                // Insert a deleted Contact's id again (a new record in Salesforce).
                _ => {
                    if rows.deleted_contacts.is_empty() {
                        continue;
                    }
                    let Some(parent) = self.pool.pick(&mut rand::rng()) else {
                        continue;
                    };
                    let i = (a as usize) % rows.deleted_contacts.len();
                    let id = rows.deleted_contacts.swap_remove(i);
                    insert_contact(&tx, id, parent, v, a).await?;
                    incarnate(&tx, "contacts", id).await?;
                    rows.contacts.push(id);
                    s.reinserts.fetch_add(1, Ordering::Relaxed);
                }
            }
            changed += 1;
        }
        tx.commit().await?;
        Ok((changed, new_parents))
    }
}

fn pick(ids: &[i64], r: i64) -> Option<i64> {
    (!ids.is_empty()).then(|| ids[(r as usize) % ids.len()])
}

async fn insert_contact(
    tx: &tokio_postgres::Transaction<'_>,
    id: i64,
    parent: i64,
    v: i64,
    a: i64,
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO contacts VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &id,
            &parent,
            &Some(format!("F{}", a % 10_000)),
            &format!("Last{id} v{v}"),
            &Some(format!("c{id}.v{v}@example.com")),
            &None::<String>,
        ],
    )
    .await
}

async fn incarnate(
    tx: &tokio_postgres::Transaction<'_>,
    object: &str,
    id: i64,
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO incarnations VALUES ($1, $2, 1)
         ON CONFLICT (object, id) DO UPDATE SET n = incarnations.n + 1",
        &[&object, &id],
    )
    .await
}

// ---------------------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------------------

const ACCOUNT_FIELDS: &[(&str, &str, Kind)] = &[
    ("name", "Name", Kind::Text),
    ("site", "Site", Kind::Text),
    ("description", "Description", Kind::Text),
    ("mrr", "MRR__c", Kind::Decimal),
];

const CONTACT_FIELDS: &[(&str, &str, Kind)] = &[
    ("account_id", "AccountId", Kind::Lookup("Account")),
    ("first_name", "FirstName", Kind::Text),
    ("last_name", "LastName", Kind::Text),
    ("email", "Email", Kind::Text),
    ("title", "Title", Kind::Text),
];

/// Compare Postgres and the emulator record by record, field by field; a key may have as
/// many records (deleted ones included) as the workload inserted it (`incarnations`).
pub async fn compare(pg: &Client, emulator: &EmulatorHandle) -> Diff {
    let tables = [
        Table::new("accounts", "Account", ACCOUNT_FIELDS)
            .incarnations("SELECT id::text, n FROM incarnations WHERE object = 'accounts'"),
        Table::new("contacts", "Contact", CONTACT_FIELDS)
            .incarnations("SELECT id::text, n FROM incarnations WHERE object = 'contacts'"),
    ];
    compare::compare(pg, emulator, &tables).await
}

/// Note the diff (on a difference also what the state store knows about the keys, and
/// keep the test's directory), then assert that Salesforce holds exactly what Postgres holds.
pub async fn assert_exact(env: &mut Env, pg: &Client, diff: &Diff) {
    note(diff.summary());
    if !diff.is_clean() {
        note(diff.explain(pg, &env.emulator).await);
    }
    if !diff.is_clean() || std::env::var_os("PGFORCE_KEEP_TEST_DIR").is_some() {
        note(format!("kept: {:?}", keep_dir(env)));
    }
    assert!(
        diff.is_clean(),
        "Postgres and Salesforce differ: {}",
        diff.summary()
    );
}

/// Keep the test's directory (config, child logs) when `PGFORCE_KEEP_TEST_DIR` is set;
/// returns its path.
pub fn keep_dir(env: &mut Env) -> Option<PathBuf> {
    std::env::var_os("PGFORCE_KEEP_TEST_DIR")?;
    let dir = std::mem::replace(&mut env.dir, tempfile::tempdir().unwrap());
    Some(dir.keep())
}

/// Dead letters and parked rows left in the state store (both must be zero for an exact
/// match to be meaningful).
pub async fn leftovers(pg: &Client) -> (i64, i64) {
    let dead: i64 = pg
        .query_one(
            "SELECT count(*) FROM pgforce.errors WHERE status = 'open'",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(0);
    let parked: i64 = pg
        .query_one("SELECT count(*) FROM pgforce.parked", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(0);
    (dead, parked)
}

/// Append a line to the test's own progress log (stderr, visible with --nocapture).
pub fn note(msg: impl AsRef<str>) {
    let mut e = std::io::stderr();
    let _ = writeln!(e, "[crash-test] {}", msg.as_ref());
}
