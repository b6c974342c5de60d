//! The Salesforce → Postgres harness (`tests/inbound`): a throwaway Postgres and the
//! in-process emulator, a pipeline config with `[[pipelines.inbound]]` entries, the target
//! tables created through `pgforce schema`'s planner, the inbound entries run in-process
//! (poll sources, as `pgforce run` starts them), and a Salesforce client for making
//! changes through REST, Collections and Bulk.

use std::sync::Arc;
use std::time::Duration;

use pgforce::config::PipelineConfig;
use pgforce::inbound::{supervise, EntryFuture, InboundError, Runtime};
use pgforce::salesforce::rest::Record;
use pgforce::salesforce::{IngestJobRequest, IngestOperation, PollPolicy, SalesforceClient};
use pgforce::server::Health;
use pgforce::testing::TempCluster;
use pgforce_emulator::{config as emu, EmulatorConfig, EmulatorHandle};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use crate::support::config::{ConfigBuilder, Secrets};
use crate::support::start;

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
}

impl Env {
    /// Starts Postgres and the emulator; `inbound` is the `[[pipelines.inbound]]` TOML.
    pub async fn start(name: &str, inbound: &str) -> Env {
        Env::start_with(name, "", inbound).await
    }

    /// Like [`Env::start`], with `[[pipelines.mappings]]` TOML too (a pipeline with both
    /// directions).
    pub async fn start_with(name: &str, mappings: &str, inbound: &str) -> Env {
        let emulator = EmulatorConfig {
            daily_api_limit: 50_000_000,
            ..EmulatorConfig::default()
        };
        Env::start_on(name, mappings, inbound, emulator).await
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

    /// Runs the inbound entries in-process with poll sources.
    pub fn run(&self) -> Running {
        run_entries(&self.pipeline, &self.sf)
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

/// Runs `pipeline`'s inbound entries in-process with poll sources, through `sf` (as
/// `pgforce run` starts them).
pub fn run_entries(pipeline: &PipelineConfig, sf: &SalesforceClient) -> Running {
    let (stop, rx) = watch::channel(false);
    let health = Health::new();
    let task = tokio::spawn(supervise(
        pipeline.clone(),
        sf.clone(),
        health.clone(),
        rx,
        poll_entry,
    ));
    Running { stop, task, health }
}

fn poll_entry(rt: Arc<Runtime>, index: usize, stop: watch::Receiver<bool>) -> EntryFuture {
    Box::pin(async move {
        rt.entry(index, rt.poll_source(index))
            .await?
            .run(stop)
            .await
    })
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
