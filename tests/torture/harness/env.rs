//! The torture run's world: a throwaway Postgres with the torture schema, the Salesforce
//! emulator in the test process (it survives every kill of pgforce) with a `Ticket__c`
//! custom object, the generated pgforce config, and `pgforce run` as a child process that
//! is SIGKILLed when dropped. Adapted from `tests/crash_support`.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use pgforce::testing::TempCluster;
use pgforce_emulator::{config as emu, Emulator, EmulatorConfig, EmulatorHandle};
use tokio_postgres::{Client, NoTls};

/// Pipeline and slot names.
pub const PIPELINE: &str = "torture";
pub const SLOT: &str = "pgforce_torture";
pub const PUBLICATION: &str = "pgforce_torture";
pub const API_VERSION: &str = "62.0";

/// The source schema. `partners` is a second mapping onto Account with another external-id
/// field (`Partner_Code__c`, codes `P…`). Accounts ← contacts ← tickets (three levels of lookups); tickets also
/// point at an account (two lookups), are filtered on `status`, keyed by `code` (a column
/// that can change, hence `REPLICA IDENTITY FULL`), and have no foreign keys so children
/// can arrive before their parents. `incarnations` (not published) counts how often each
/// key was inserted, so the oracle can tell a re-create from a duplicate.
pub const SCHEMA: &str = "
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, site text, description text,
    mrr numeric(18,2));
CREATE TABLE contacts (id bigint PRIMARY KEY, account_id bigint, first_name text, last_name text,
    email text, title text, bio text);
CREATE TABLE tickets (id bigint PRIMARY KEY, code text NOT NULL UNIQUE, contact_id bigint,
    account_id bigint, subject text, status text NOT NULL DEFAULT 'open', body text);
ALTER TABLE tickets REPLICA IDENTITY FULL;
CREATE TABLE partners (code text PRIMARY KEY, name text NOT NULL, site text);
CREATE TABLE incarnations (object text NOT NULL, ext text NOT NULL, n int NOT NULL,
    PRIMARY KEY (object, ext));
";

/// The emulator's extra object: a ticket with two lookups and a short subject (a max length
/// Salesforce enforces, so the workload can produce rejected rows).
pub const EMULATOR_SCHEMA: &str = r#"{"objects": [{"name": "Ticket__c", "label": "Ticket",
  "labelPlural": "Tickets", "fields": [
    {"name": "External_Id__c", "type": "string", "length": 255, "externalId": true, "unique": true},
    {"name": "Contact__c", "type": "reference", "referenceTo": ["Contact"],
     "relationshipName": "Contact__r", "childRelationshipName": "Tickets__r"},
    {"name": "Account__c", "type": "reference", "referenceTo": ["Account"],
     "relationshipName": "Account__r", "childRelationshipName": "Tickets__r"},
    {"name": "Subject__c", "type": "string", "length": 40},
    {"name": "Status__c", "type": "string", "length": 40},
    {"name": "Body__c", "type": "textarea", "length": 131072}]}],
  "fields": {"Account": [
    {"name": "Partner_Code__c", "type": "string", "length": 80, "externalId": true, "unique": true}]}}"#;

/// Knobs of the generated config (picked from the seed).
#[derive(Debug, Clone)]
pub struct ConfigOptions {
    pub max_batch_rows: usize,
    pub collections_threshold: usize,
    pub max_batch_age_ms: u64,
}

/// Postgres, the emulator and a directory for the config and the child's log.
pub struct Env {
    pub cluster: TempCluster,
    pub emulator: EmulatorHandle,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db_url: String,
}

impl Env {
    /// Start Postgres (schema created) and the emulator, and write the config.
    pub async fn start(opts: &ConfigOptions) -> Env {
        let cluster = tokio::task::spawn_blocking(TempCluster::start)
            .await
            .unwrap()
            .expect("start a throwaway Postgres");
        let db_url = cluster.url("postgres");
        let dir = tempfile::Builder::new()
            .prefix("pgforce-torture-")
            .tempdir()
            .unwrap();
        let schema_file = dir.path().join("emulator-schema.json");
        std::fs::write(&schema_file, EMULATOR_SCHEMA).unwrap();
        let emu_config = EmulatorConfig {
            daily_api_limit: 50_000_000,
            schema_file: Some(schema_file),
            ..EmulatorConfig::default()
        };
        let emulator = Emulator::start(emu_config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("start the emulator");
        let config = dir.path().join("pgforce.toml");
        std::fs::write(&config, config_text(emulator.base_url(), opts)).unwrap();
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

    /// A fresh ordinary client (synchronous commit on: an acknowledged commit survives a
    /// Postgres crash).
    pub async fn client(&self) -> Client {
        connect(&self.db_url)
            .await
            .expect("connect to the test Postgres")
    }

    /// Spawn `pgforce run`; its output is appended to `<dir>/pgforce.log`.
    pub fn spawn(&self) -> Pipeline {
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgforce"));
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--listen")
            .arg("127.0.0.1:0");
        cmd.env("PGFORCE_TEST_DATABASE_URL", &self.db_url)
            .env("PGFORCE_TEST_SF_SECRET", emu::DEMO_CLIENT_SECRET)
            .env_remove("PGFORCE_OPS_LISTEN")
            .env("NO_COLOR", "1")
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
            exited: None,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("pgforce.log")
    }

    /// The last `n` lines of the child's log.
    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log_path(), n)
    }

    /// Keep the directory (config, log) for a post-mortem; returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        dir.keep()
    }
}

pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The pgforce config for the emulator at `base`.
pub fn config_text(base: &str, o: &ConfigOptions) -> String {
    format!(
        r#"
[server]
shutdown_grace_seconds = 10

[[pipelines]]
name = "{PIPELINE}"
publication = "{PUBLICATION}"
slot = "{SLOT}"
source = {{ database_url = "env:PGFORCE_TEST_DATABASE_URL" }}

[pipelines.batching]
max_batch_rows = {rows}
max_batch_age_ms = {age}
collections_threshold = {coll}

[pipelines.salesforce]
login_url = "{base}"
instance_url = "{base}"
api_version = "{API_VERSION}"
# REQUEST_LIMIT_EXCEEDED faults pause every call this long (900 s by default).
limit_exceeded_pause_secs = 2
auth = {{ type = "client_credentials", client_id = "{client_id}", client_secret = "env:PGFORCE_TEST_SF_SECRET" }}

[[pipelines.mappings]]
name = "accounts"
table = "public.accounts"
object = "Account"
external_id = {{ column = "id", field = "External_Id__c" }}

[pipelines.mappings.fields]
name = "Name"
site = "Site"
description = "Description"
mrr = "MRR__c"

[[pipelines.mappings]]
name = "partners"
table = "public.partners"
object = "Account"
external_id = {{ column = "code", field = "Partner_Code__c" }}

[pipelines.mappings.fields]
name = "Name"
site = "Site"

[[pipelines.mappings]]
name = "contacts"
table = "public.contacts"
object = "Contact"
external_id = {{ column = "id", field = "External_Id__c" }}
lookups = [
  {{ column = "account_id", object = "Account", relationship = "Account", external_id_field = "External_Id__c" }},
]

[pipelines.mappings.fields]
first_name = "FirstName"
last_name = "LastName"
email = "Email"
title = "Title"
bio = "Description"

[[pipelines.mappings]]
name = "tickets"
table = "public.tickets"
object = "Ticket__c"
external_id = {{ column = "code", field = "External_Id__c" }}
filter = [ {{ column = "status", op = "!=", value = "hidden" }} ]
lookups = [
  {{ column = "contact_id", object = "Contact", relationship = "Contact__r", external_id_field = "External_Id__c" }},
  {{ column = "account_id", object = "Account", relationship = "Account__r", external_id_field = "External_Id__c" }},
]

[pipelines.mappings.fields]
subject = "Subject__c"
status = "Status__c"
body = "Body__c"
"#,
        rows = o.max_batch_rows,
        age = o.max_batch_age_ms,
        coll = o.collections_threshold,
        client_id = emu::DEMO_CLIENT_ID,
    )
}

/// Connect with synchronous commit on.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client.batch_execute("SET synchronous_commit = on").await?;
    Ok(client)
}

/// A `pgforce run` child process; SIGKILLed and reaped on drop.
pub struct Pipeline {
    pub child: Child,
    exited: Option<ExitStatus>,
}

impl Pipeline {
    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// Whether the process has exited (reaps it).
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// SIGTERM, then wait up to `limit` for the exit.
    pub async fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        if self.try_exited().is_none() {
            // SAFETY: kill(2) on our own child's pid; no memory is touched.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.try_exited() {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `pg_current_wal_lsn()` as u64.
pub async fn current_wal_lsn(pg: &Client) -> Result<u64, tokio_postgres::Error> {
    let r = pg
        .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint", &[])
        .await?;
    Ok(r.get::<_, i64>(0) as u64)
}

/// The slot's confirmed_flush_lsn (0 when the slot does not exist).
pub async fn slot_confirmed(pg: &Client) -> Result<u64, tokio_postgres::Error> {
    let r = pg
        .query_opt(
            "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
            &[&SLOT],
        )
        .await?;
    Ok(r.and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(0) as u64)
}

/// The pipeline's checkpoint in `pgforce.checkpoints` (0 before the first).
pub async fn checkpoint(pg: &Client) -> u64 {
    pg.query_opt(
        "SELECT (confirmed_lsn - '0/0'::pg_lsn)::bigint FROM pgforce.checkpoints WHERE pipeline = $1",
        &[&PIPELINE],
    )
    .await
    .ok()
    .flatten()
    .map(|r| r.get::<_, i64>(0) as u64)
    .unwrap_or(0)
}

/// Rows of `pgforce.inflight` (0 when the state schema does not exist yet).
pub async fn inflight_rows(pg: &Client) -> i64 {
    pg.query_one("SELECT count(*) FROM pgforce.inflight", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(0)
}
