//! Recording a job run in the `pgforce_job_*` metrics (names in [`crate::metrics`]). Labels:
//! `pipeline`, `job_name` (Prometheus reserves `job`) and, for runs, `result`.

use std::time::Duration;

use super::error::JobError;
use super::runner::{JobRunOptions, RunReport};
use crate::config::jobs::JobConfig;
use crate::metrics as m;

/// Count one finished run.
pub(super) fn record(
    pipeline: &str,
    job: &JobConfig,
    result: &Result<RunReport, JobError>,
    took: Duration,
    opts: JobRunOptions,
) {
    let (p, j) = (pipeline.to_string(), job.name.clone());
    let outcome = match result {
        Ok(_) if opts.dry_run => "dry_run",
        Ok(r) if r.errors.is_empty() => "done",
        Ok(_) => "done_with_errors",
        Err(e) => e.kind(),
    };
    metrics::counter!(m::JOB_RUNS, "pipeline" => p.clone(), "job_name" => j.clone(), "result" => outcome)
        .increment(1);
    if opts.dry_run {
        return;
    }
    metrics::gauge!(m::JOB_LAST_RUN_DURATION, "pipeline" => p.clone(), "job_name" => j.clone())
        .set(took.as_secs_f64());
    if let Ok(r) = result {
        metrics::counter!(m::JOB_ROWS_SENT, "pipeline" => p.clone(), "job_name" => j.clone())
            .increment(r.sent);
        metrics::counter!(m::JOB_ERRORS, "pipeline" => p.clone(), "job_name" => j.clone())
            .increment(r.errors.len() as u64);
        metrics::gauge!(m::JOB_LAST_SUCCESS, "pipeline" => p, "job_name" => j).set(unix_now());
    }
}

/// Publish when a job runs next (0: on an event).
pub(super) fn next_run(pipeline: &str, job: &str, at: Option<chrono::DateTime<chrono::Utc>>) {
    let v = at.map_or(0.0, |t| t.timestamp() as f64);
    metrics::gauge!(m::JOB_NEXT_RUN, "pipeline" => pipeline.to_string(), "job_name" => job.to_string())
        .set(v);
}

fn unix_now() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}
