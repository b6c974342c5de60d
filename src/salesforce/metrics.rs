//! Metric names and recording helpers for the Salesforce client. Labels stay low-cardinality:
//! object name, operation and HTTP status (or a transport failure kind), never ids or values.

/// Counter: Salesforce calls, labelled `object` (empty when none), `operation`, `status`.
pub const API_CALLS_TOTAL: &str = "pgforce_salesforce_api_calls_total";
/// Gauge: API calls left in the org's rolling 24-hour allocation (from `Sforce-Limit-Info`).
pub const API_REMAINING: &str = "pgforce_salesforce_api_remaining";
/// Counter: retries, labelled `operation` and `reason`.
pub const RETRIES_TOTAL: &str = "pgforce_salesforce_retries_total";

/// Counts one call with its outcome (`status` is the HTTP status or `transport`/`timeout`).
pub(crate) fn record_call(object: &str, operation: &'static str, status: &str) {
    metrics::counter!(
        API_CALLS_TOTAL,
        "object" => object.to_string(),
        "operation" => operation,
        "status" => status.to_string()
    )
    .increment(1);
}

/// Counts one retry.
pub(crate) fn record_retry(operation: &'static str, reason: &'static str) {
    metrics::counter!(RETRIES_TOTAL, "operation" => operation, "reason" => reason).increment(1);
}

/// Sets the remaining-calls gauge.
pub(crate) fn record_remaining(remaining: u64) {
    metrics::gauge!(API_REMAINING).set(remaining as f64);
}
