//! Query-driven jobs (`[[pipelines.jobs]]`): a SQL query on the pipeline's database, run
//! when a trigger fires, whose result goes to the pipeline's Salesforce org.
//!
//! - [`runner`]: one run of one job — the run's bookkeeping, the report, dry runs.
//! - [`query`]: the read-only query runner (statement timeout, rows as JSON with a hash).
//! - [`update`], [`membership`], [`enrich`]: the three targets.
//! - [`send`]: Collections when few records, one Bulk API 2.0 job when many.
//! - [`store`]: runs, snapshots, errors, members, enriched Leads and cursors in the state
//!   schema; every run's outcome is one transaction.
//! - [`trigger`]: the scheduler (`schedule`, `interval`, `table_changed`, `lead_created`).
//! - [`check`]: the jobs' queries against describe, for `pgforce validate`.
//! - [`error`]: [`JobError`], always naming the job.
//!
//! The guarantee (design invariant 12): a run records its new snapshot only for what
//! Salesforce acknowledged, in the transaction that records the run; a failed run is resent
//! next time, never skipped. Rejected rows are recorded per run in `job_errors` (not the
//! dead-letter table, which is keyed by replication position and mapping) with Salesforce's
//! code, and are sent again by the next run.

pub mod check;
pub mod enrich;
pub mod error;
mod lead_events;
pub mod membership;
mod metrics;
pub mod query;
pub mod runner;
pub mod send;
pub mod status;
pub mod store;
pub mod trigger;
pub mod update;

pub use check::check_jobs;
pub use error::JobError;
pub use runner::{JobRunOptions, JobRunner, RunReport, SampleRecord};
pub use store::{JobStore, LastRun, RowError};
pub use trigger::{next_run, run_scheduled};

/// The pipeline's database URL (a secret: never log it).
fn database_url(p: &crate::config::PipelineConfig) -> Result<String, String> {
    use secrecy::ExposeSecret;
    p.source
        .database_url
        .value()
        .map(|s| s.expose_secret().to_string())
        .map_err(|e| e.to_string())
}
