//! The scheduler: runs each job of a pipeline when its trigger fires, until shutdown.
//!
//! - `schedule`: the next time the cron expression matches (UTC), via the `cron` crate.
//! - `interval`: at start, then every N seconds.
//! - `table_changed`: at start, then whenever the table's modification counters in
//!   `pg_stat_user_tables` (inserts + updates + deletes) differ from the last poll. Chosen
//!   over LISTEN/NOTIFY, which needs a trigger on the user's table, and over a watermark
//!   column, which misses deletes and needs a column; the cost is the statistics' flush
//!   delay (seconds). A missed wake-up costs nothing: an update job diffs by row hash.
//! - `lead_created`: every `poll_seconds`; the run itself finds the new Leads.
//!
//! A failed run is logged and counted; the job runs again at its next trigger, resending
//! what did not land. Runs of one job never overlap.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::error::JobError;
use super::lead_events::LeadEvents;
use super::runner::{JobRunOptions, JobRunner};
use super::status::{self, JobStatus};
use crate::backoff::RetryPolicy;
use crate::config::inbound::InboundSource;
use crate::config::jobs::{normalise_cron, JobConfig, TriggerConfig};
use crate::config::PipelineConfig;
use crate::error_class::Classify;
use crate::server::Health;

/// Run every job of `pipeline` on its trigger until `shutdown` is true, publishing each
/// job's last and next run to `health` (as `<pipeline>/jobs`). Returns when all job loops
/// stopped; fails only when the jobs cannot start (state store, config).
pub async fn run_scheduled(
    pipeline: PipelineConfig,
    health: Health,
    shutdown: watch::Receiver<bool>,
) -> Result<(), JobError> {
    if pipeline.jobs.is_empty() {
        return Ok(());
    }
    status::register(&health, &pipeline.name, &pipeline.jobs);
    let runner = Arc::new(connect_with_retries(&pipeline, shutdown.clone()).await?);
    status::set_connected(&health, &pipeline.name);
    let mut tasks = JoinSet::new();
    for job in pipeline.jobs.clone() {
        let st = JobStatus::new(health.clone(), &pipeline.name, &job.name);
        tasks.spawn(job_loop(runner.clone(), job, st, shutdown.clone()));
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Connect the runner, retrying transient failures (the database restarting).
async fn connect_with_retries(
    pipeline: &PipelineConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JobRunner, JobError> {
    let policy = RetryPolicy {
        max_attempts: u32::MAX,
        ..RetryPolicy::default()
    };
    let mut retry = 0;
    loop {
        match JobRunner::connect(pipeline).await {
            Ok(r) => return Ok(r),
            Err(e) if e.class().is_retryable() && !*shutdown.borrow() => {
                tracing::warn!(pipeline = %pipeline.name, error = %e, "jobs cannot start yet; retrying");
                retry += 1;
                if stopped(&mut shutdown, policy.delay(retry)).await {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// One job's loop: wait for the trigger, run, repeat.
async fn job_loop(
    runner: Arc<JobRunner>,
    job: JobConfig,
    st: JobStatus,
    mut shutdown: watch::Receiver<bool>,
) {
    let pipeline = runner.pipeline().name.clone();
    let mut waiter = Waiter::new(&job);
    loop {
        let fire = tokio::select! {
            f = waiter.wait(&runner, &pipeline, &job, &st) => f,
            _ = shutdown.changed() => false,
        };
        if *shutdown.borrow() {
            return;
        }
        if !fire {
            continue;
        }
        let started = Utc::now();
        st.started(started);
        let result = runner.run(&job.name, JobRunOptions::default()).await;
        let took = (Utc::now() - started).num_milliseconds().max(0) as f64 / 1000.0;
        st.finished(&result, took);
        if let Err(e) = result {
            tracing::warn!(pipeline = %pipeline, job = %job.name, error = %e, "job run failed; it runs again at its next trigger");
        }
    }
}

/// Sleep `d`, or return true early when shutdown is signalled.
async fn stopped(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// The state of one job's trigger.
struct Waiter {
    /// The job has not run yet in this process.
    first: bool,
    /// The table's modification count at the last poll (`table_changed`).
    last_count: Option<i64>,
    /// The Lead change-event subscription (`lead_created` with `events = "cdc"`).
    lead_events: Option<LeadEvents>,
}

impl Waiter {
    fn new(_job: &JobConfig) -> Waiter {
        Waiter {
            first: true,
            last_count: None,
            lead_events: None,
        }
    }

    /// Wait until the trigger fires (true) or a poll found nothing (false).
    async fn wait(
        &mut self,
        runner: &JobRunner,
        pipeline: &str,
        job: &JobConfig,
        st: &JobStatus,
    ) -> bool {
        let first = std::mem::replace(&mut self.first, false);
        match &job.trigger {
            TriggerConfig::Schedule { cron } => {
                let Ok(schedule) = cron::Schedule::from_str(&normalise_cron(cron)) else {
                    // Checked at load; never reached with a loaded config.
                    std::future::pending::<()>().await;
                    return false;
                };
                let Some(next) = schedule.upcoming(Utc).next() else {
                    std::future::pending::<()>().await;
                    return false;
                };
                super::metrics::next_run(pipeline, &job.name, Some(next));
                st.set_next(Some(next));
                let wait = (next - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                true
            }
            TriggerConfig::Interval { seconds } => {
                if !first {
                    let next = Utc::now() + chrono::Duration::seconds(*seconds as i64);
                    super::metrics::next_run(pipeline, &job.name, Some(next));
                    st.set_next(Some(next));
                    tokio::time::sleep(Duration::from_secs(*seconds)).await;
                }
                true
            }
            TriggerConfig::TableChanged {
                table,
                poll_seconds,
            } => {
                super::metrics::next_run(pipeline, &job.name, None);
                st.set_next(None);
                if !first {
                    tokio::time::sleep(Duration::from_secs(*poll_seconds)).await;
                }
                let count = modification_count(runner, table).await;
                let changed = first || count.is_some() && count != self.last_count;
                if count.is_some() {
                    self.last_count = count;
                }
                changed
            }
            TriggerConfig::LeadCreated {
                poll_seconds,
                events,
                ..
            } => {
                super::metrics::next_run(pipeline, &job.name, None);
                st.set_next(None);
                let poll = Duration::from_secs(*poll_seconds);
                if first && *events == InboundSource::Cdc {
                    // Open before the first run, so every Lead after it wakes the job.
                    let client = runner.salesforce().clone();
                    self.lead_events =
                        Some(LeadEvents::subscribe(runner.pipeline(), client, &job.name).await);
                }
                match (&self.lead_events, first) {
                    (_, true) => {}
                    (Some(events), false) => events.wait(poll).await,
                    (None, false) => tokio::time::sleep(poll).await,
                }
                true
            }
        }
    }
}

/// Inserts + updates + deletes of `table` per the statistics collector (`None` when it
/// cannot be read; the poll then waits for the next try).
async fn modification_count(runner: &JobRunner, table: &str) -> Option<i64> {
    let (schema, name) = crate::config::split_table(table)?;
    let url = super::database_url(runner.pipeline()).ok()?;
    let (client, conn) = crate::pgconn::connect(&url).await.ok()?;
    tokio::spawn(conn);
    let row = client
        .query_opt(
            "SELECT (n_tup_ins + n_tup_upd + n_tup_del)::bigint FROM pg_stat_user_tables \
             WHERE schemaname = $1 AND relname = $2",
            &[&schema, &name],
        )
        .await
        .ok()??;
    row.try_get(0).ok()
}

/// When `job` runs next, given when its last run started (`None` for event triggers: it
/// runs when the event comes).
pub fn next_run(
    job: &JobConfig,
    last_start: Option<chrono::DateTime<Utc>>,
) -> Option<chrono::DateTime<Utc>> {
    match &job.trigger {
        TriggerConfig::Schedule { cron } => cron::Schedule::from_str(&normalise_cron(cron))
            .ok()?
            .upcoming(Utc)
            .next(),
        TriggerConfig::Interval { seconds } => {
            let every = chrono::Duration::seconds(i64::try_from(*seconds).ok()?);
            Some(last_start.map_or_else(Utc::now, |t| (t + every).max(Utc::now())))
        }
        TriggerConfig::TableChanged { .. } | TriggerConfig::LeadCreated { .. } => None,
    }
}
