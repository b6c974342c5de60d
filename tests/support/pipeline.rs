//! Helpers shared by the `pipeline_e2e` tests: a throwaway Postgres and an in-process
//! Salesforce emulator, a pipeline config built in code and run in-process through
//! [`pgforce::pipeline::supervise`], polling waits with a generous deadline, and a
//! comparison of Postgres rows with emulator records field by field.

/// (job id, object, uploaded rows as column → value).
pub type BulkUpload = (String, String, Vec<HashMap<String, String>>);

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use pgforce::checkpoint::{DeadLetterRow, StateStore};
use pgforce::config::{Config, PipelineConfig};
use pgforce::pipeline::{supervise, PipelineError, RunOptions};
use pgforce::server::Health;
use pgforce::testing::TempCluster;
use pgforce_emulator::bulk::BulkState;
use pgforce_emulator::{config as emu, EmulatorConfig, EmulatorHandle};
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

pub use crate::support::compare::{compare, Kind, Table};
use crate::support::config::{self, ConfigBuilder, Mapping, Secrets};
use crate::support::start;
pub use crate::support::wait::{check, wait_until, DEADLINE};

/// The name of the pipeline (and of its state rows) in every test.
pub const PIPELINE: &str = "e2e";

/// The sample schema most tests use: accounts → Account, contacts → Contact (lookup to
/// Account by `account_id`; no foreign key, so orphans are possible).
pub const SCHEMA: &str = "
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, description text,
    rating text, employees integer, revenue numeric(18,0), plan text);
CREATE TABLE contacts (id bigint PRIMARY KEY, account_id bigint,
    first_name text, last_name text NOT NULL, email text);
";

/// Mappings for [`SCHEMA`] (TOML `[[pipelines.mappings]]` tables).
pub fn mappings() -> String {
    let accounts = Mapping::new("accounts", "public.accounts", "Account")
        .field("name", "Name")
        .field("description", "Description")
        .field("rating", "Rating")
        .field_toml(
            "employees",
            r#"{ field = "NumberOfEmployees", transform = { type = "numeric", precision = 8, scale = 0 } }"#,
        )
        .field("revenue", "AnnualRevenue")
        .field("plan", "Plan__c");
    let contacts = Mapping::new("contacts", "public.contacts", "Contact")
        .lookup("account_id", "Account", "Account")
        .field("first_name", "FirstName")
        .field("last_name", "LastName")
        .field("email", "Email");
    format!("{}\n{}", accounts.toml(), contacts.toml())
}

/// The accounts columns compared by [`Harness::compare`].
pub const ACCOUNT_FIELDS: &[(&str, &str, Kind)] = &[
    ("name", "Name", Kind::Text),
    ("description", "Description", Kind::Text),
    ("rating", "Rating", Kind::Text),
    ("employees", "NumberOfEmployees", Kind::Int),
    ("revenue", "AnnualRevenue", Kind::Decimal),
    ("plan", "Plan__c", Kind::Text),
];

/// The contacts columns compared by [`Harness::compare`].
pub const CONTACT_FIELDS: &[(&str, &str, Kind)] = &[
    ("first_name", "FirstName", Kind::Text),
    ("last_name", "LastName", Kind::Text),
    ("email", "Email", Kind::Text),
    ("account_id", "AccountId", Kind::Lookup("Account")),
];

/// Batching knobs of the pipeline under test.
#[derive(Debug, Clone)]
pub struct Batching {
    pub max_batch_rows: usize,
    pub max_batch_age_ms: u64,
    pub collections_threshold: usize,
    /// `salesforce.limit_exceeded_pause_secs`.
    pub limit_pause_secs: u64,
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            max_batch_rows: 10_000,
            max_batch_age_ms: 100,
            collections_threshold: 200,
            limit_pause_secs: 900,
        }
    }
}

/// A running pipeline.
pub struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), PipelineError>>,
    pub health: Health,
}

impl Running {
    /// Ask it to stop and wait for it (flushing what is complete).
    pub async fn stop(self) -> Result<(), PipelineError> {
        let _ = self.stop.send(true);
        tokio::time::timeout(DEADLINE.limit, self.task)
            .await
            .expect("pipeline stops in time")
            .expect("pipeline task does not panic")
    }

    /// Cancel it where it is, without a stop (its connections drop as in a crash of the
    /// process; calls already sent finish in the emulator).
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Whether the supervisor returned (it should not while the test runs).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// A throwaway Postgres, an emulator and a client to each.
pub struct Harness {
    pub emulator: EmulatorHandle,
    pub pg: tokio_postgres::Client,
    pub db_url: String,
    /// Dropped last: stops the server after the clients are gone.
    #[allow(dead_code)]
    pub cluster: TempCluster,
}

/// Log to the test output (`RUST_LOG=pgforce=debug` for more).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "pgforce=info,pgforce_emulator=warn".into()),
        )
        .with_ansi(false)
        .with_test_writer()
        .try_init();
}

impl Harness {
    /// Start Postgres and the emulator, and create `schema` (SQL).
    pub async fn start(schema: &str) -> Harness {
        Harness::start_on(schema, pgforce::testing::pg::ClusterOptions::default()).await
    }

    /// Like [`Harness::start`], Postgres started with `opts` (e.g.
    /// `track_commit_timestamp = on`).
    pub async fn start_on(schema: &str, opts: pgforce::testing::pg::ClusterOptions) -> Harness {
        init_tracing();
        let cluster = start::postgres_with(opts).await;
        let emulator = start::emulator(EmulatorConfig::default()).await;
        let db_url = cluster.url("postgres");
        let (pg, conn) = tokio_postgres::connect(&db_url, NoTls)
            .await
            .expect("connect to Postgres");
        tokio::spawn(conn);
        pg.batch_execute(schema).await.expect("create the schema");
        Harness {
            emulator,
            pg,
            db_url,
            cluster,
        }
    }

    /// The pipeline config for `mappings` (TOML `[[pipelines.mappings]]` tables).
    pub fn config(&self, mappings: &str, batching: &Batching) -> PipelineConfig {
        self.try_config(mappings, batching)
            .expect("the test config parses")
    }

    /// Like [`Harness::config`], returning the parse error.
    pub fn try_config(
        &self,
        mappings: &str,
        batching: &Batching,
    ) -> Result<PipelineConfig, pgforce::config::ConfigError> {
        self.builder(batching)
            .mappings_toml(mappings)
            .pipeline(&self.secrets())
    }

    /// The config of this harness's pipeline ([`PIPELINE`], the source database, the
    /// emulator's demo login) with `batching`; add mappings and build.
    pub fn builder(&self, batching: &Batching) -> ConfigBuilder {
        ConfigBuilder::new(PIPELINE, "DATABASE_URL")
            .emulator(self.emulator.base_url(), "SF_CLIENT_SECRET")
            .limit_exceeded_pause_secs(batching.limit_pause_secs)
            .batching(config::Batching {
                max_batch_rows: Some(batching.max_batch_rows),
                max_batch_age_ms: Some(batching.max_batch_age_ms),
                collections_threshold: Some(batching.collections_threshold),
            })
    }

    /// The secrets the harness's configs refer to.
    pub fn secrets(&self) -> Secrets {
        self.secrets_as(&self.db_url)
    }

    /// Like [`Harness::secrets`], with `DATABASE_URL` = `db_url` (e.g. another role).
    pub fn secrets_as(&self, db_url: &str) -> Secrets {
        Secrets::new(&[
            ("DATABASE_URL", db_url),
            ("SF_CLIENT_SECRET", emu::DEMO_CLIENT_SECRET),
        ])
    }

    /// Run `cfg` in-process under the supervisor and wait until it streams.
    pub async fn run(&self, cfg: PipelineConfig) -> Running {
        let running = self.spawn(cfg);
        wait_until("the pipeline streams", DEADLINE, || async {
            if running.is_finished() {
                panic!("the pipeline stopped before streaming");
            }
            match running.health.get(PIPELINE) {
                Some(s) if s.state == pgforce::server::PipelineState::Streaming => Ok(()),
                other => Err(format!("state {:?}", other.map(|s| s.state))),
            }
        })
        .await;
        running
    }

    /// Start the supervisor without waiting.
    pub fn spawn(&self, cfg: PipelineConfig) -> Running {
        let health = Health::new();
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(supervise(
            cfg,
            RunOptions {
                health: health.clone(),
                shutdown,
                status_interval: Duration::from_millis(200),
                index: 0,
                journal: None,
                progress: None,
            },
        ));
        Running { stop, task, health }
    }

    /// Run SQL on the source database.
    pub async fn sql(&self, sql: &str) {
        self.pg
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The state store of the pipeline under test (a separate session).
    pub async fn state(&self) -> Arc<StateStore> {
        Arc::new(
            StateStore::connect(&self.db_url, "pgforce", PIPELINE)
                .await
                .expect("state store"),
        )
    }

    /// Dead letters with this status (`open`, `resolved`, ...).
    pub async fn dead_letters(&self, status: &str) -> Vec<DeadLetterRow> {
        let state = self.state().await;
        state
            .list_dead_letters(Some(status), 1000)
            .await
            .expect("list dead letters")
    }

    /// The live record of `object` with `External_Id__c = key`.
    pub fn record(&self, object: &str, key: &str) -> Option<Map<String, Value>> {
        let store = &self.emulator.state().store;
        let ids = store
            .find_by_external_id(object, "External_Id__c", key)
            .expect("object has External_Id__c");
        assert!(ids.len() <= 1, "{object} {key}: several live records");
        ids.first()
            .and_then(|id| store.get(id))
            .map(|r| (*r).clone())
    }

    /// Every record of `object` (soft-deleted ones too when `include_deleted`).
    pub fn records(&self, object: &str, include_deleted: bool) -> Vec<Map<String, Value>> {
        let mut out = Vec::new();
        self.emulator
            .state()
            .store
            .scan(object, include_deleted, |r| {
                out.push((**r).clone());
                ControlFlow::Continue(())
            })
            .expect("scan");
        out
    }

    /// Number of live records of `object`.
    pub fn count(&self, object: &str) -> usize {
        self.emulator.state().store.count(object, false).unwrap()
    }

    /// Requests the emulator saw for an endpoint family (`collections`, `bulk_ingest`, ...).
    pub fn calls(&self, family: &str) -> u64 {
        self.emulator.state().stats.family_count(family)
    }

    /// The CSV uploads of every Bulk ingest job so far: (object, operation, rows as maps).
    pub fn bulk_uploads(&self) -> Vec<BulkUpload> {
        let bulk = self.emulator.state().ext::<BulkState>();
        let mut out = Vec::new();
        for e in bulk.ingest.iter() {
            let job = e.value().lock();
            let Some(data) = job.upload.clone() else {
                continue;
            };
            let mut rdr = csv::Reader::from_reader(&data[..]);
            let headers = rdr.headers().unwrap().clone();
            let rows = rdr
                .records()
                .map(|r| {
                    let r = r.unwrap();
                    headers
                        .iter()
                        .zip(r.iter())
                        .map(|(h, v)| (h.to_string(), v.to_string()))
                        .collect()
                })
                .collect();
            out.push((job.meta.object.clone(), job.op.as_api().to_string(), rows));
        }
        out
    }

    /// Compare every row of `table` with the live records of `object` (keyed by `id` /
    /// `External_Id__c`): same set of keys, and each `(column, field, kind)` equal.
    pub async fn compare(
        &self,
        table: &str,
        object: &str,
        fields: &[(&str, &str, Kind)],
    ) -> Result<(), String> {
        self.in_sync(&[Table::new(table, object, fields)]).await
    }

    /// [`compare`] of these tables with the emulator: `Ok` when they match.
    pub async fn in_sync(&self, tables: &[Table<'_>]) -> Result<(), String> {
        compare(&self.pg, &self.emulator, tables).await.result()
    }
}

/// `deploy/examples/<file>` as shipped, with only the Salesforce login swapped for the
/// emulator's client-credentials demo app: the `login_url` line becomes the emulator's URL
/// (plus `instance_url`), the `auth` line the demo app. Secrets (`DATABASE_URL`,
/// `SF_CLIENT_SECRET`) come from a resolver. Returns the file's only pipeline.
pub fn template_config(
    h: &Harness,
    file: &str,
) -> Result<PipelineConfig, pgforce::config::ConfigError> {
    template_config_as(h, file, &h.db_url)
}

/// Like [`template_config`], with `DATABASE_URL` = `db_url` (e.g. another role).
pub fn template_config_as(
    h: &Harness,
    file: &str,
    db_url: &str,
) -> Result<PipelineConfig, pgforce::config::ConfigError> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/examples")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let base = h.emulator.base_url();
    let (mut logins, mut auths) = (0, 0);
    let swapped: Vec<String> = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("login_url =") {
                logins += 1;
                format!("login_url = \"{base}\"\ninstance_url = \"{base}\"")
            } else if line.trim_start().starts_with("auth =") {
                auths += 1;
                format!(
                    "auth = {{ type = \"client_credentials\", client_id = \"{}\", client_secret = \"env:SF_CLIENT_SECRET\" }}",
                    emu::DEMO_CLIENT_ID
                )
            } else {
                line.to_string()
            }
        })
        .collect();
    assert_eq!(
        (logins, auths),
        (1, 1),
        "{file}: one login_url and one auth line"
    );
    let mut config = Config::from_toml_with(&swapped.join("\n"), &h.secrets_as(db_url))?;
    assert_eq!(config.pipelines.len(), 1, "{file}: one pipeline");
    Ok(config.pipelines.remove(0))
}

impl Harness {
    /// Start `cfg` and wait for the supervisor to give up; its error.
    pub async fn run_to_failure(&self, cfg: PipelineConfig) -> PipelineError {
        let run = self.spawn(cfg);
        wait_until(
            "the pipeline gives up instead of retrying",
            DEADLINE,
            || async { check(run.is_finished(), || "still running".into()) },
        )
        .await;
        let result = run.stop().await;
        match result {
            Err(e) => e,
            Ok(()) => panic!("the pipeline stopped without an error"),
        }
    }

    /// Like [`Harness::run`] for a pipeline of any name: start it and wait until it streams.
    pub async fn run_named(&self, cfg: PipelineConfig) -> Running {
        let name = cfg.name.clone();
        let running = self.spawn(cfg);
        wait_until("the pipeline streams", DEADLINE, || async {
            if running.is_finished() {
                panic!("the pipeline stopped before streaming");
            }
            match running.health.get(&name) {
                Some(s) if s.state == pgforce::server::PipelineState::Streaming => Ok(()),
                other => Err(format!("state {:?}", other.map(|s| s.state))),
            }
        })
        .await;
        running
    }

    /// The state store of pipeline `pipeline` (schema `pgforce`; a separate session).
    pub async fn state_of(&self, pipeline: &str) -> Arc<StateStore> {
        Arc::new(
            StateStore::connect(&self.db_url, "pgforce", pipeline)
                .await
                .expect("state store"),
        )
    }

    /// Requests the emulator saw that read or write data (every endpoint family but
    /// `oauth` and `limits`).
    pub fn data_calls(&self) -> u64 {
        let stats = self.emulator.state().stats.json();
        stats["byFamily"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "oauth" | "limits"))
                    .filter_map(|(_, v)| v.as_u64())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// The value of counter `name` for `pipeline` in the process-wide Prometheus recorder
/// (installed on first use; call once before the pipeline starts so nothing is missed).
pub fn pipeline_counter(name: &str, pipeline: &str) -> u64 {
    let text = pgforce::metrics::install().render();
    let label = format!("pipeline=\"{pipeline}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
