//! The metric catalogue: every `pgforce_*` metric name, its help text, and the Prometheus
//! recorder. Labels stay low-cardinality: pipeline, mapping, object, operation, path,
//! state, error code — never ids, keys, LSNs or anything secret.
//!
//! Code records with the `metrics` macros using the constants below; `/metrics` renders
//! through [`PrometheusHandle::render`].

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const REPLICATION_LAG_BYTES: &str = "pgforce_replication_lag_bytes";
pub const CONFIRMED_FLUSH_LSN: &str = "pgforce_confirmed_flush_lsn";
pub const SLOT_ACTIVE: &str = "pgforce_slot_active";
pub const CHANGES_DECODED: &str = "pgforce_changes_decoded_total";
pub const CHANGES_APPLIED: &str = "pgforce_changes_applied_total";
pub const BATCHES: &str = "pgforce_batches_total";
pub const TRANSACTION_SPLITS: &str = "pgforce_transaction_splits_total";
pub const BULK_JOBS_IN_FLIGHT: &str = "pgforce_bulk_jobs_in_flight";
pub const BULK_JOBS: &str = "pgforce_bulk_jobs_total";
pub const FLUSH_LATENCY: &str = "pgforce_flush_latency_seconds";
pub const DEAD_LETTERS: &str = "pgforce_dead_letter_total";
pub const DEAD_LETTER_ROWS: &str = "pgforce_dead_letter_rows";
pub const PARKED_CHANGES: &str = "pgforce_parked_changes";
pub const SALESFORCE_API_CALLS: &str = "pgforce_salesforce_api_calls_total";
pub const SALESFORCE_API_REMAINING: &str = "pgforce_salesforce_api_remaining";
pub const SALESFORCE_API_MAX: &str = "pgforce_salesforce_api_max";
pub const GOVERNOR_PAUSED: &str = "pgforce_governor_paused";
pub const CHECKPOINT_AGE: &str = "pgforce_checkpoint_age_seconds";
pub const BACKFILL_ROWS: &str = "pgforce_backfill_rows_total";
pub const BACKFILL_PROGRESS: &str = "pgforce_backfill_progress_ratio";
pub const PIPELINE_UP: &str = "pgforce_pipeline_up";
pub const INBOUND_EVENTS_RECEIVED: &str = "pgforce_inbound_events_received_total";
pub const INBOUND_EVENTS_APPLIED: &str = "pgforce_inbound_events_applied_total";
pub const INBOUND_STALE: &str = "pgforce_inbound_stale_skipped_total";
pub const INBOUND_LAG: &str = "pgforce_inbound_lag_seconds";
pub const INBOUND_POSITION_AGE: &str = "pgforce_inbound_position_age_seconds";
pub const INBOUND_GAPS: &str = "pgforce_inbound_gaps_total";
pub const INBOUND_OVERFLOWS: &str = "pgforce_inbound_overflows_total";
pub const INBOUND_RESYNCS: &str = "pgforce_inbound_resyncs_total";
pub const INBOUND_LOADED: &str = "pgforce_inbound_loaded_records_total";
pub const JOB_RUNS: &str = "pgforce_job_runs_total";
pub const JOB_ROWS_SENT: &str = "pgforce_job_rows_sent_total";
pub const JOB_ERRORS: &str = "pgforce_job_errors_total";
pub const JOB_LAST_RUN_DURATION: &str = "pgforce_job_last_run_duration_seconds";
pub const JOB_LAST_SUCCESS: &str = "pgforce_job_last_success_timestamp_seconds";
pub const JOB_NEXT_RUN: &str = "pgforce_job_next_run_timestamp_seconds";
pub const BIDI_CONFLICTS: &str = "pgforce_bidi_conflicts_total";
pub const BIDI_ECHOES: &str = "pgforce_bidi_echoes_skipped_total";

/// Every metric name above, for tools and tests that check dashboards and alerts against the
/// catalogue. Keep it in step with the constants.
pub const ALL: &[&str] = &[
    REPLICATION_LAG_BYTES,
    CONFIRMED_FLUSH_LSN,
    SLOT_ACTIVE,
    CHANGES_DECODED,
    CHANGES_APPLIED,
    BATCHES,
    TRANSACTION_SPLITS,
    BULK_JOBS_IN_FLIGHT,
    BULK_JOBS,
    FLUSH_LATENCY,
    DEAD_LETTERS,
    DEAD_LETTER_ROWS,
    PARKED_CHANGES,
    SALESFORCE_API_CALLS,
    SALESFORCE_API_REMAINING,
    SALESFORCE_API_MAX,
    GOVERNOR_PAUSED,
    CHECKPOINT_AGE,
    BACKFILL_ROWS,
    BACKFILL_PROGRESS,
    PIPELINE_UP,
    INBOUND_EVENTS_RECEIVED,
    INBOUND_EVENTS_APPLIED,
    INBOUND_STALE,
    INBOUND_LAG,
    INBOUND_POSITION_AGE,
    INBOUND_GAPS,
    INBOUND_OVERFLOWS,
    INBOUND_RESYNCS,
    INBOUND_LOADED,
    JOB_RUNS,
    JOB_ROWS_SENT,
    JOB_ERRORS,
    JOB_LAST_RUN_DURATION,
    JOB_LAST_SUCCESS,
    JOB_NEXT_RUN,
    BIDI_CONFLICTS,
    BIDI_ECHOES,
];

/// Latency buckets (seconds) for commit → applied: 10 ms to 10 min.
const LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the process-wide Prometheus recorder (idempotent) and return its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(FLUSH_LATENCY.into()), LATENCY_BUCKETS)
                .expect("static bucket list is non-empty")
                .set_buckets_for_metric(Matcher::Full(INBOUND_LAG.into()), LATENCY_BUCKETS)
                .expect("static bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. in a test binary); the handle
            // then renders nothing, which is harmless.
            let _ = metrics::set_global_recorder(recorder);
            describe_all();
            handle
        })
        .clone()
}

fn describe_all() {
    describe_jobs();
    describe_gauge!(
        REPLICATION_LAG_BYTES,
        Unit::Bytes,
        "Server WAL position minus the slot's confirmed flush LSN."
    );
    describe_gauge!(
        CONFIRMED_FLUSH_LSN,
        "Last LSN confirmed to the slot (as a number)."
    );
    describe_gauge!(
        SLOT_ACTIVE,
        "1 when this process is streaming from the pipeline's slot."
    );
    describe_counter!(
        CHANGES_DECODED,
        "Row changes decoded from the replication stream."
    );
    describe_counter!(CHANGES_APPLIED, "Row changes acknowledged by Salesforce.");
    describe_counter!(
        BATCHES,
        "Batches flushed, by object, path (bulk|collections) and result."
    );
    describe_gauge!(
        BULK_JOBS_IN_FLIGHT,
        "Bulk API 2.0 jobs recorded and not yet reconciled."
    );
    describe_counter!(
        BULK_JOBS,
        "Bulk API 2.0 jobs finished, by object and final state."
    );
    describe_histogram!(
        FLUSH_LATENCY,
        Unit::Seconds,
        "Postgres commit to Salesforce acknowledgement."
    );
    describe_counter!(
        DEAD_LETTERS,
        "Rows written to the dead-letter table, by mapping and Salesforce error code."
    );
    describe_gauge!(DEAD_LETTER_ROWS, "Rows currently in the dead-letter table.");
    describe_gauge!(
        PARKED_CHANGES,
        "Child changes parked until their parent lands in Salesforce."
    );
    describe_counter!(
        SALESFORCE_API_CALLS,
        "Salesforce API calls, by operation and HTTP status class."
    );
    describe_gauge!(
        SALESFORCE_API_REMAINING,
        "Daily API requests remaining (from Sforce-Limit-Info)."
    );
    describe_gauge!(
        SALESFORCE_API_MAX,
        "Daily API request allocation (from Sforce-Limit-Info)."
    );
    describe_gauge!(
        GOVERNOR_PAUSED,
        "1 while the API governor holds flushing to keep the reserve."
    );
    describe_gauge!(
        CHECKPOINT_AGE,
        Unit::Seconds,
        "Seconds since the pipeline last stored a checkpoint."
    );
    describe_counter!(BACKFILL_ROWS, "Rows copied by the initial backfill.");
    describe_gauge!(
        BACKFILL_PROGRESS,
        "Initial backfill progress per table, 0 to 1."
    );
    describe_gauge!(PIPELINE_UP, "1 while the pipeline runs and holds its lock.");
    describe_counter!(
        INBOUND_EVENTS_RECEIVED,
        "Salesforce change events received by inbound entries, by object and change type."
    );
    describe_counter!(
        INBOUND_EVENTS_APPLIED,
        "Salesforce change events applied to Postgres, by object and change type."
    );
    describe_counter!(
        INBOUND_STALE,
        "Mirror changes skipped because the row holds a newer SystemModstamp."
    );
    describe_histogram!(
        INBOUND_LAG,
        Unit::Seconds,
        "Salesforce commit to Postgres commit of an applied change."
    );
    describe_gauge!(
        INBOUND_POSITION_AGE,
        Unit::Seconds,
        "Seconds since the inbound entry last stored its position."
    );
    describe_counter!(INBOUND_GAPS, "Gap events whose records were re-read.");
    describe_counter!(
        INBOUND_OVERFLOWS,
        "Overflow events whose window was re-read by SystemModstamp."
    );
    describe_counter!(
        INBOUND_RESYNCS,
        "Targeted resyncs by SystemModstamp (reason position_lost or overflow)."
    );
    describe_counter!(
        INBOUND_LOADED,
        "Records written by the initial load of an inbound entry."
    );
}

/// The query-driven jobs' metrics (labels: pipeline, job; runs also by result).
fn describe_jobs() {
    describe_counter!(
        JOB_RUNS,
        "Job runs, by pipeline, job and result (done, failed kind, dry_run)."
    );
    describe_counter!(
        JOB_ROWS_SENT,
        "Records job runs sent that Salesforce acknowledged."
    );
    describe_counter!(
        JOB_ERRORS,
        "Rows job runs could not send (Salesforce rejections and unusable rows)."
    );
    describe_gauge!(
        JOB_LAST_RUN_DURATION,
        Unit::Seconds,
        "How long the job's last run took."
    );
    describe_gauge!(
        JOB_LAST_SUCCESS,
        Unit::Seconds,
        "Unix time of the job's last run that finished done."
    );
    describe_gauge!(
        JOB_NEXT_RUN,
        Unit::Seconds,
        "Unix time of the job's next scheduled run (0 when it waits for an event)."
    );
    describe_counter!(
        TRANSACTION_SPLITS,
        "Epochs cut inside a transaction larger than the batch limits (sent in parts; the checkpoint stays before it until its last part)."
    );
    describe_counter!(
        BIDI_CONFLICTS,
        "Two-way fields both sides changed between syncs, by the side whose value won."
    );
    describe_counter!(
        BIDI_ECHOES,
        "Salesforce changes of paired records not applied to Postgres: pgforce's own writes coming back, or values equal to the last synced ones."
    );
}
