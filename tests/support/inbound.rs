//! The Salesforce → Postgres harness (`tests/inbound`): a throwaway Postgres and the
//! in-process emulator, a pipeline config with `[[pipelines.inbound]]` entries, the target
//! tables created through `pgforce schema`'s planner, the inbound entries run in-process
//! (each with its configured source, CDC or poll, through the same
//! [`pgforce::cdc::entry::start_entry`] `pgforce run` uses) or as the real binary
//! ([`Binary`], for kill -9), a Salesforce client for making changes through REST,
//! Collections and Bulk, and the emulator's CDC admin routes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pgforce::cdc::entry::start_entry;
use pgforce::config::PipelineConfig;
use pgforce::inbound::{supervise, InboundError};
use pgforce::salesforce::rest::Record;
use pgforce::salesforce::{IngestJobRequest, IngestOperation, PollPolicy, SalesforceClient};
use pgforce::server::{Health, OpsServer, OpsServerHandle};
use pgforce::testing::TempCluster;
use pgforce_emulator::{config as emu, EmulatorConfig, EmulatorHandle};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use crate::support::config::{ConfigBuilder, Secrets};
use crate::support::start;
use crate::support::wait::{wait_until, DEADLINE};

/// Postgres, the emulator, the pipeline config and a client for making changes.
pub struct Env {
    /// Held so the cluster lives as long as the test.
    #[allow(dead_code)]
    pub cluster: TempCluster,
    pub emulator: EmulatorHandle,
    pub db_url: String,
    pub pipeline: PipelineConfig,
    pub sf: SalesforceClient,
    pub builder: ConfigBuilder,
}

/// A running inbound side.
pub struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), InboundError>>,
    pub health: Health,
}

impl Running {
    /// Stops the entries (as on SIGTERM) and returns how they ended.
    pub async fn stop(self) -> Result<(), InboundError> {
        let _ = self.stop.send(true);
        self.task.await.expect("the inbound task does not panic")
    }

    /// Waits until `/readyz` counts every inbound entry (each streams or polls).
    pub async fn wait_ready(&self) {
        wait_until("the inbound side is ready", DEADLINE, || async {
            let r = self.health.readiness();
            r.ready.then_some(()).ok_or(format!("{r:?}"))
        })
        .await;
    }
}

impl Env {
    /// Starts Postgres and the emulator; `inbound` is the `[[pipelines.inbound]]` TOML.
    pub async fn start(name: &str, inbound: &str) -> Env {
        Env::start_with(name, "", inbound).await
    }

    /// Like [`Env::start`], with `[[pipelines.mappings]]` TOML too (a pipeline with both
    /// directions).
    pub async fn start_with(name: &str, mappings: &str, inbound: &str) -> Env {
        Env::start_on(name, mappings, inbound, emulator_config()).await
    }

    /// Like [`Env::start_with`], the emulator started with `emulator` (e.g. a latency
    /// profile).
    pub async fn start_on(
        name: &str,
        mappings: &str,
        inbound: &str,
        emulator: EmulatorConfig,
    ) -> Env {
        let cluster = start::postgres().await;
        let db_url = cluster.url("postgres");
        let emulator = start::emulator(emulator).await;
        let builder = ConfigBuilder::new(name, "PGFORCE_TEST_DATABASE_URL")
            .emulator(emulator.base_url(), "PGFORCE_TEST_SF_SECRET")
            .pubsub_endpoint(&emulator.pubsub_url())
            .mappings_toml(mappings)
            .inbound_toml(inbound);
        let pipeline = builder
            .pipeline(&secrets(&db_url))
            .unwrap_or_else(|e| panic!("inbound test config invalid: {e}\n{}", builder.toml()));
        let sf = pgforce::pipeline::salesforce_client(&pipeline).expect("a client");
        sf.login().await.expect("log in to the emulator");
        Env {
            cluster,
            emulator,
            db_url,
            pipeline,
            sf,
            builder,
        }
    }

    pub async fn client(&self) -> Client {
        let (client, conn) = tokio_postgres::connect(&self.db_url, NoTls)
            .await
            .expect("connect to the test cluster");
        tokio::spawn(conn);
        client
    }

    /// Creates every entry's target table as `pgforce schema --apply` would.
    pub async fn create_tables(&self) {
        let pg = self.client().await;
        for e in &self.pipeline.inbound {
            let describe = self.sf.describe(&e.object).await.expect("describe");
            let have = pgforce::inbound::ddl::existing_columns(&pg, e)
                .await
                .unwrap();
            let plan = pgforce::inbound::ddl::plan(e, &describe, have.as_ref());
            for s in &plan.statements {
                pg.batch_execute(s)
                    .await
                    .unwrap_or_else(|err| panic!("{s}: {err}"));
            }
        }
    }

    /// Runs the inbound entries in-process, each with its configured source.
    pub fn run(&self) -> Running {
        run_entries(&self.pipeline, &self.sf)
    }

    /// The real `pgforce run` on this env's config (written to a temporary directory),
    /// not started yet.
    pub fn binary(&self) -> Binary {
        let dir = tempfile::Builder::new()
            .prefix("pgforce-inbound-")
            .tempdir()
            .expect("a temporary directory");
        let config = dir.path().join("pgforce.toml");
        self.builder.write(&config);
        let log = dir.path().join("run.log");
        Binary {
            dir,
            config,
            log,
            db_url: self.db_url.clone(),
        }
    }

    /// The emulator's admin API at `path` (`/__emulator/...`) with method `method` and
    /// JSON `body`; panics unless it answers 2xx.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) {
        let url = format!("{}{path}", self.emulator.base_url());
        let mut req = reqwest::Client::new().request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "{url}: {status} {text}");
    }

    /// Shrinks (or grows) the CDC retention window through the admin route; the emulator
    /// drops what falls out of it at once.
    pub async fn set_retention(&self, secs: u64) {
        self.admin(
            reqwest::Method::PUT,
            "/__emulator/cdc/retention",
            Some(serde_json::json!({ "secs": secs })),
        )
        .await;
    }

    /// How often the installed faults of `kind` (`"cdc_gap"`, …) fired so far.
    pub fn faults_fired(&self, kind: &str) -> u64 {
        self.emulator
            .state()
            .faults
            .list()
            .iter()
            .filter(|f| serde_json::to_value(f).is_ok_and(|v| v["kind"] == kind))
            .map(|f| f.fired)
            .sum()
    }

    /// Installs an emulator fault (`{"kind": "cdc_gap", ...}`) through the admin route.
    pub async fn fault(&self, spec: Value) {
        self.admin(reqwest::Method::POST, "/__emulator/faults", Some(spec))
            .await;
    }

    /// REST create; the new Id.
    pub async fn create(&self, object: &str, fields: Value) -> String {
        self.sf
            .create_record(object, &record(fields))
            .await
            .unwrap_or_else(|e| panic!("create {object}: {e}"))
    }

    /// REST update.
    pub async fn update(&self, object: &str, id: &str, fields: Value) {
        self.sf
            .update_record(object, id, &record(fields))
            .await
            .unwrap_or_else(|e| panic!("update {object} {id}: {e}"))
    }

    /// REST delete (to the recycle bin).
    pub async fn delete(&self, object: &str, id: &str) {
        self.sf
            .delete_record(object, id)
            .await
            .unwrap_or_else(|e| panic!("delete {object} {id}: {e}"))
    }

    /// sObject Collections upsert by `External_Id__c`; the Ids.
    pub async fn upsert_collection(&self, object: &str, records: Vec<Value>) -> Vec<String> {
        let results = self
            .sf
            .upsert_collection(
                object,
                "External_Id__c",
                records.into_iter().map(record).collect(),
                true,
            )
            .await
            .expect("collections upsert");
        results
            .into_iter()
            .map(|r| r.id.expect("an id per upserted record"))
            .collect()
    }

    /// A Bulk 2.0 ingest job (`insert`, `update`, `hardDelete`, …) with CSV `csv`.
    pub async fn bulk(&self, object: &str, op: IngestOperation, csv: &str) {
        let job = self
            .sf
            .create_ingest_job(&IngestJobRequest::new(object, op))
            .await
            .expect("create ingest job");
        self.sf
            .upload_job_data(&job.id, csv.to_string().into())
            .await
            .expect("upload");
        self.sf.close_job(&job.id).await.expect("close");
        let done = self
            .sf
            .wait_for_job(
                &job.id,
                &PollPolicy {
                    initial: Duration::from_millis(50),
                    max: Duration::from_millis(200),
                    timeout: Some(Duration::from_secs(60)),
                },
            )
            .await
            .expect("job finishes");
        assert_eq!(done.number_records_failed, 0, "bulk {op:?} failed rows");
    }

    /// Moves the emulator's clock past the current minute, so getDeleted (minute windows)
    /// reports what was deleted in it.
    pub fn next_minute(&self) {
        self.emulator.advance_clock(chrono::Duration::seconds(61));
    }
}

/// The emulator the inbound tests run against: a generous API limit, and a Pub/Sub
/// keepalive of 250 ms (Salesforce sends one within 270 s) so a quiet topic's tip and
/// position come back quickly.
pub fn emulator_config() -> EmulatorConfig {
    let mut c = EmulatorConfig {
        daily_api_limit: 50_000_000,
        ..EmulatorConfig::default()
    };
    c.pubsub.keepalive_ms = 250;
    c
}

/// The real `pgforce run` binary on an env's config, its output appended to one log.
pub struct Binary {
    /// Held so the config and the log live as long as the test.
    #[allow(dead_code)]
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    db_url: String,
}

impl Binary {
    /// Starts `pgforce run` (ops server on a free port).
    pub fn spawn(&self) -> Child {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the run log");
        Command::new(env!("CARGO_BIN_EXE_pgforce"))
            .args(["run", "--config"])
            .arg(&self.config)
            .args(["--listen", "127.0.0.1:0"])
            .env("PGFORCE_TEST_DATABASE_URL", &self.db_url)
            .env("PGFORCE_TEST_SF_SECRET", emu::DEMO_CLIENT_SECRET)
            .env_remove("PGFORCE_OPS_LISTEN")
            .env("RUST_LOG", "info,tokio_postgres=warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the log handle"))
            .stderr(out)
            .spawn()
            .expect("spawn pgforce run")
    }

    /// The log's last 3,000 bytes (for a failing wait's message).
    pub fn tail(&self) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut at = t.len().saturating_sub(3000);
        while !t.is_char_boundary(at) {
            at += 1;
        }
        t[at..].to_string()
    }
}

/// Runs `pipeline`'s inbound entries in-process through `sf`, each with its configured
/// source, as `pgforce run` starts them.
pub fn run_entries(pipeline: &PipelineConfig, sf: &SalesforceClient) -> Running {
    let (stop, rx) = watch::channel(false);
    let health = Health::new();
    let task = tokio::spawn(supervise(
        pipeline.clone(),
        sf.clone(),
        health.clone(),
        rx,
        start_entry,
    ));
    Running { stop, task, health }
}

/// The secrets the test configs reference.
pub fn secrets(db_url: &str) -> Secrets {
    Secrets::new(&[
        ("PGFORCE_TEST_DATABASE_URL", db_url),
        ("PGFORCE_TEST_SF_SECRET", emu::DEMO_CLIENT_SECRET),
    ])
}

/// A JSON object as a record.
pub fn record(v: Value) -> Record {
    match v {
        Value::Object(m) => m,
        other => panic!("a record is a JSON object, not {other}"),
    }
}

/// One row of `select` (text-valued columns, `$1` the record Id) by column name; `None`
/// when there is no such row.
pub async fn text_row(
    pg: &Client,
    select: &str,
    id: &str,
) -> Option<BTreeMap<String, Option<String>>> {
    let r = pg
        .query_opt(select, &[&id])
        .await
        .unwrap_or_else(|e| panic!("{select}: {e}"))?;
    Some(
        r.columns()
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name().to_string(), r.get::<_, Option<String>>(i)))
            .collect(),
    )
}

/// Waits until [`text_row`] finds the row and `check` accepts it.
pub async fn wait_row(
    pg: &Client,
    select: &str,
    id: &str,
    what: &str,
    check: impl Fn(&BTreeMap<String, Option<String>>) -> bool,
) {
    wait_until(what, DEADLINE, || async {
        match text_row(pg, select, id).await {
            Some(r) if check(&r) => Ok(()),
            other => Err(format!("{what}: row {id} is {other:?}")),
        }
    })
    .await;
}

/// Waits until [`text_row`] finds no row.
pub async fn wait_gone(pg: &Client, select: &str, id: &str, what: &str) {
    wait_until(what, DEADLINE, || async {
        match text_row(pg, select, id).await {
            None => Ok(()),
            Some(r) => Err(format!("{what}: row {id} still there: {r:?}")),
        }
    })
    .await;
}

/// A column of a [`text_row`] row.
pub fn col<'a>(r: &'a BTreeMap<String, Option<String>>, k: &str) -> Option<&'a str> {
    r.get(k).and_then(|v| v.as_deref())
}

/// The ops server (`/metrics`, `/readyz`, `/status`) on a free loopback port, serving
/// `health` and the process-wide recorder (installed here); its base URL.
pub async fn ops_server(health: Health) -> (OpsServerHandle, String) {
    pgforce::metrics::install();
    let addr = "127.0.0.1:0".parse().expect("a socket address");
    let server = OpsServer::start(addr, health)
        .await
        .expect("the ops server starts");
    let base = format!("http://{}", server.local_addr());
    (server, base)
}

/// `GET base + path`: the status code and the body.
pub async fn http_get(base: &str, path: &str) -> (u16, String) {
    let url = format!("{base}{path}");
    let resp = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// The value of the sample `name` whose labels include every `labels` pair, in a
/// Prometheus text exposition; the sum when several samples match.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some(parts) => parts,
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        let all = labels
            .iter()
            .all(|(k, v)| label_text.split(',').any(|l| l == format!("{k}=\"{v}\"")));
        if let (true, Ok(v)) = (all, value.trim().parse::<f64>()) {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}
