//! Counters registered at 0 when a pipeline starts, for every label set known up front.
//!
//! Alerts take `increase()` of counters, and Prometheus cannot see a rise in a series whose
//! first sample is already 1: without a 0 sample first, the first failed Bulk job after a
//! start would never fire `PgforceBulkJobsFailing`. Dead letters are keyed by a Salesforce
//! error code nobody knows in advance, so only their mapping-level series cannot be primed.

use crate::config::PipelineConfig;
use crate::metrics as m;

/// The `state` values the flusher counts Bulk jobs under (`sink::flusher`).
const BULK_FINAL_STATES: &[&str] = &["completed", "failed"];

/// Register `pgforce_bulk_jobs_total{pipeline, object, state}` at 0 for every mapped object,
/// and `pgforce_transaction_splits_total{pipeline}` (a large transaction is rare: its
/// series would otherwise not exist until the first one).
pub(crate) fn register(cfg: &PipelineConfig) {
    metrics::counter!(m::TRANSACTION_SPLITS, "pipeline" => cfg.name.clone()).increment(0);
    let mut objects: Vec<&str> = cfg.mappings.iter().map(|m| m.object.as_str()).collect();
    objects.sort_unstable();
    objects.dedup();
    for object in objects {
        for state in BULK_FINAL_STATES {
            metrics::counter!(m::BULK_JOBS, "pipeline" => cfg.name.clone(), "object" => object.to_owned(), "state" => *state)
                .increment(0);
        }
    }
}
