//! The jobs side's entry in the ops registry: one [`PipelineStatus`] named `<pipeline>/jobs`
//! whose `jobs` list has one [`JobEntryStatus`] per configured job, kept current by the
//! scheduler (running, last run, next run). Failed runs show here and in the metrics; they
//! never make the process unready (the next trigger retries them).

use chrono::{DateTime, Utc};

use super::error::JobError;
use super::runner::RunReport;
use crate::config::jobs::JobConfig;
use crate::server::{Health, JobEntryStatus, PipelineState, PipelineStatus};

/// The status name of a pipeline's jobs side.
pub fn status_name(pipeline: &str) -> String {
    format!("{pipeline}/jobs")
}

/// Publishes the jobs side of `pipeline` as starting, every job idle.
pub fn register(health: &Health, pipeline: &str, jobs: &[JobConfig]) {
    let mut s = PipelineStatus::starting(status_name(pipeline));
    s.jobs = Some(jobs.iter().map(idle).collect());
    health.publish(s);
}

fn idle(job: &JobConfig) -> JobEntryStatus {
    JobEntryStatus {
        job: job.name.clone(),
        target: job.target.kind().to_string(),
        running: false,
        last_run_at: None,
        last_result: None,
        last_duration_seconds: None,
        last_sent: 0,
        last_errors: 0,
        next_run_at: None,
        last_error: None,
    }
}

/// The runner connected (Postgres and the Salesforce session): the side is up.
pub fn set_connected(health: &Health, pipeline: &str) {
    health.update(&status_name(pipeline), |s| {
        s.state = PipelineState::Streaming;
        s.postgres_connected = true;
        s.salesforce_connected = true;
    });
}

/// One job's handle on its status.
#[derive(Debug, Clone)]
pub struct JobStatus {
    health: Health,
    pipeline: String,
    job: String,
}

impl JobStatus {
    pub fn new(health: Health, pipeline: &str, job: &str) -> JobStatus {
        JobStatus {
            health,
            pipeline: pipeline.to_string(),
            job: job.to_string(),
        }
    }

    fn update(&self, edit: impl FnOnce(&mut JobEntryStatus)) {
        let job = &self.job;
        self.health.update(&status_name(&self.pipeline), |s| {
            if let Some(e) = s
                .jobs
                .as_mut()
                .and_then(|l| l.iter_mut().find(|e| &e.job == job))
            {
                edit(e);
            }
        });
    }

    /// When the job runs next (`None`: on its event).
    pub fn set_next(&self, at: Option<DateTime<Utc>>) {
        self.update(|e| e.next_run_at = at);
    }

    /// A run started now.
    pub fn started(&self, at: DateTime<Utc>) {
        self.update(|e| {
            e.running = true;
            e.last_run_at = Some(at);
        });
    }

    /// A run ended with `result` after `seconds`.
    pub fn finished(&self, result: &Result<RunReport, JobError>, seconds: f64) {
        self.update(|e| {
            e.running = false;
            e.last_duration_seconds = Some(seconds);
            match result {
                Ok(r) => {
                    let outcome = if r.errors.is_empty() {
                        "done"
                    } else {
                        "done_with_errors"
                    };
                    e.last_result = Some(outcome.into());
                    e.last_sent = r.sent;
                    e.last_errors = r.errors.len() as u64;
                    e.last_error = None;
                }
                Err(err) => {
                    e.last_result = Some(err.kind().into());
                    e.last_sent = 0;
                    e.last_errors = 0;
                    e.last_error = Some(err.to_string());
                }
            }
        });
    }
}
