//! [`JobRunner`]: runs one job of a pipeline once — connects, records the run, dispatches
//! to its target (`update`, `membership`, `enrich`), records the outcome and the metrics —
//! and [`RunReport`], what a run did (or, dry, would do), rendered for `pgforce jobs run`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio_postgres::Client;
use tracing::Instrument;

use super::error::JobError;
use super::store::{JobStore, RowError, RunOutcome, RunState};
use super::{enrich, membership, update};
use crate::config::jobs::{JobConfig, TargetConfig};
use crate::config::PipelineConfig;
use crate::salesforce::SalesforceClient;

/// How a run is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobRunOptions {
    /// Compute what would change, send and record nothing.
    pub dry_run: bool,
    /// Override the membership safety limit.
    pub force: bool,
}

/// One record a run sends (or would send), for the sample in the report.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRecord {
    /// The row's key (record key, person, Lead Id) and what happens to it.
    pub key: String,
    pub action: &'static str,
    /// The fields sent.
    pub fields: Map<String, Value>,
}

/// What a run did, or would do.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub job: String,
    pub target: &'static str,
    pub dry_run: bool,
    /// Rows the query returned.
    pub rows_seen: u64,
    /// Named counts, e.g. `changed`, `unchanged`, `add`, `remove`, `enriched`.
    pub counts: Vec<(&'static str, u64)>,
    /// Records acknowledged by Salesforce (0 for a dry run).
    pub sent: u64,
    /// Rows Salesforce (or the target) rejected.
    pub errors: Vec<RowError>,
    /// Up to [`SAMPLE`] records that are (or would be) sent.
    pub sample: Vec<SampleRecord>,
    /// Salesforce API calls the sending took (not counting lookups).
    pub calls: u64,
    pub duration: Duration,
}

/// Records kept in a report's sample.
pub const SAMPLE: usize = 5;

impl RunReport {
    pub(super) fn new(job: &JobConfig, dry_run: bool) -> RunReport {
        RunReport {
            job: job.name.clone(),
            target: job.target.kind(),
            dry_run,
            rows_seen: 0,
            counts: Vec::new(),
            sent: 0,
            errors: Vec::new(),
            sample: Vec::new(),
            calls: 0,
            duration: Duration::ZERO,
        }
    }

    /// A named count, 0 when absent.
    pub fn count(&self, name: &str) -> u64 {
        self.counts
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, c)| *c)
    }

    pub(super) fn sample(&mut self, key: &str, action: &'static str, fields: &Map<String, Value>) {
        if self.sample.len() < SAMPLE {
            self.sample.push(SampleRecord {
                key: key.to_string(),
                action,
                fields: fields.clone(),
            });
        }
    }

    /// The report as text: counts, then the sample, then the first errors.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let verb = if self.dry_run { "would send" } else { "sent" };
        let _ = writeln!(
            out,
            "job {} ({}){}: {} row(s) from the query",
            self.job,
            self.target,
            if self.dry_run { ", dry run" } else { "" },
            self.rows_seen
        );
        for (name, n) in &self.counts {
            let _ = writeln!(out, "  {name}: {n}");
        }
        if !self.dry_run {
            let _ = writeln!(out, "  {verb}: {} in {:.1?}", self.sent, self.duration);
        }
        if !self.sample.is_empty() {
            let _ = writeln!(out, "sample of what it {verb}:");
            for s in &self.sample {
                let fields = serde_json::to_string(&s.fields).unwrap_or_default();
                let _ = writeln!(out, "  {} {}: {fields}", s.action, s.key);
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "{} error(s):", self.errors.len());
            for e in self.errors.iter().take(SAMPLE) {
                let _ = writeln!(out, "  {}: {} {}", e.key, e.code, e.message);
            }
        }
        out
    }

    pub(super) fn outcome(&self, state: RunState, message: Option<String>) -> RunOutcome {
        RunOutcome {
            state,
            rows_seen: self.rows_seen,
            rows_sent: self.sent,
            errors: self.errors.len() as u64,
            message,
        }
    }
}

/// What a target needs for one run.
pub(super) struct RunCtx<'a> {
    pub job: &'a JobConfig,
    pub store: &'a JobStore,
    pub sf: &'a SalesforceClient,
    pub db: &'a mut Client,
    pub run_id: i64,
    pub opts: JobRunOptions,
}

/// Runs the jobs of one pipeline, one run at a time per call.
pub struct JobRunner {
    pipeline: PipelineConfig,
    store: JobStore,
    sf: SalesforceClient,
    database_url: String,
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunner")
            .field("pipeline", &self.pipeline.name)
            .finish_non_exhaustive()
    }
}

impl JobRunner {
    /// Connect the state store and build the Salesforce client (logging in on first call).
    pub async fn connect(pipeline: &PipelineConfig) -> Result<JobRunner, JobError> {
        let config = |message: String| JobError::Config {
            job: format!("(pipeline {})", pipeline.name),
            message,
        };
        let database_url = super::database_url(pipeline).map_err(config)?;
        let sf = crate::pipeline::salesforce_client(pipeline).map_err(|e| config(e.to_string()))?;
        let store = JobStore::connect(&database_url, &pipeline.state_schema, &pipeline.name)
            .await
            .map_err(JobError::state(&pipeline.name))?;
        Ok(JobRunner {
            pipeline: pipeline.clone(),
            store,
            sf,
            database_url,
        })
    }

    /// The pipeline's jobs' bookkeeping.
    pub fn store(&self) -> &JobStore {
        &self.store
    }

    /// The Salesforce client the jobs use.
    pub fn salesforce(&self) -> &SalesforceClient {
        &self.sf
    }

    /// The pipeline whose jobs this runs.
    pub fn pipeline(&self) -> &PipelineConfig {
        &self.pipeline
    }

    /// The job called `name`.
    pub fn job(&self, name: &str) -> Result<&JobConfig, JobError> {
        self.pipeline
            .jobs
            .iter()
            .find(|j| j.name == name)
            .ok_or_else(|| JobError::Unknown {
                pipeline: self.pipeline.name.clone(),
                job: name.to_string(),
            })
    }

    /// Run job `name` once. A run that fails is recorded as failed (never as done) and
    /// resends what did not land next time.
    pub async fn run(&self, name: &str, opts: JobRunOptions) -> Result<RunReport, JobError> {
        let job = self.job(name)?;
        let span = tracing::info_span!("job_run", pipeline = %self.pipeline.name, job = %job.name,
            object = job.object(), dry_run = opts.dry_run);
        let started = Instant::now();
        let result = self.run_once(job, opts).instrument(span).await;
        super::metrics::record(&self.pipeline.name, job, &result, started.elapsed(), opts);
        result.map(|mut r| {
            r.duration = started.elapsed();
            r
        })
    }

    async fn run_once(&self, job: &JobConfig, opts: JobRunOptions) -> Result<RunReport, JobError> {
        let mut db = self.query_connection(job).await?;
        self.lock(&db, job).await?;
        let run_id = self
            .store
            .begin_run(&job.name, opts.dry_run)
            .await
            .map_err(JobError::state(&job.name))?;
        let mut ctx = RunCtx {
            job,
            store: &self.store,
            sf: &self.sf,
            db: &mut db,
            run_id,
            opts,
        };
        let result = match &job.target {
            TargetConfig::Update(u) => update::run(&mut ctx, u).await,
            TargetConfig::Membership(m) => membership::run(&mut ctx, m).await,
            TargetConfig::Enrich(e) => enrich::run(&mut ctx, e).await,
        };
        match &result {
            Ok(report) => tracing::info!(
                rows = report.rows_seen,
                sent = report.sent,
                errors = report.errors.len(),
                "job run finished"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "job run failed");
                let failed = RunOutcome {
                    state: RunState::Failed,
                    rows_seen: 0,
                    rows_sent: 0,
                    errors: 0,
                    message: Some(e.to_string()),
                };
                // The target records its own outcome when it got that far; this marks
                // runs that stopped before (a query error, a missing Campaign).
                let _ = self.store.fail_if_running(run_id, &failed).await;
            }
        }
        result
    }

    /// Wait for the job's lock (held by `db` until it closes), so two runs of one job —
    /// the scheduler and `pgforce jobs run`, or a trigger firing twice — never overlap.
    async fn lock(&self, db: &Client, job: &JobConfig) -> Result<(), JobError> {
        let key = format!(
            "pgforce:job:{}:{}:{}",
            self.pipeline.state_schema, self.pipeline.name, job.name
        );
        db.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
            .await
            .map_err(|source| JobError::Query {
                job: job.name.clone(),
                message: format!("taking the job's lock: {source}"),
                source,
            })?;
        Ok(())
    }

    /// A fresh session for the job's query (its transaction is read only).
    async fn query_connection(&self, job: &JobConfig) -> Result<Client, JobError> {
        let (client, conn) =
            crate::pgconn::connect(&self.database_url)
                .await
                .map_err(|source| JobError::Connect {
                    job: job.name.clone(),
                    source,
                })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "job query connection closed");
            }
        });
        Ok(client)
    }
}
