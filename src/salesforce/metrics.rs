//! Metric names and recording helpers for the Salesforce client. Labels stay low-cardinality:
//! pipeline, object name, operation and HTTP status class, never ids or values. The names are
//! the catalogue's (`crate::metrics`); `pipeline` is [`super::ClientConfig::pipeline`].

use crate::metrics as catalogue;

/// Counter: Salesforce calls, labelled `pipeline`, `object` (empty when none), `operation`,
/// `status_class` (`2xx`…`5xx`, or `error` when no response arrived).
pub const API_CALLS_TOTAL: &str = catalogue::SALESFORCE_API_CALLS;
/// Gauge: API calls left in the org's rolling 24-hour allocation (from `Sforce-Limit-Info`).
pub const API_REMAINING: &str = catalogue::SALESFORCE_API_REMAINING;
/// Gauge: the org's rolling 24-hour API allocation (from `Sforce-Limit-Info`).
pub const API_MAX: &str = catalogue::SALESFORCE_API_MAX;
/// Gauge: 1 while the governor holds calls (reserve reached or `REQUEST_LIMIT_EXCEEDED`).
pub const GOVERNOR_PAUSED: &str = catalogue::GOVERNOR_PAUSED;
/// Counter: retries, labelled `operation` and `reason`.
pub const RETRIES_TOTAL: &str = "pgforce_salesforce_retries_total";

/// Counts one call with its outcome (`status` is the HTTP status or `transport`/`timeout`).
pub(crate) fn record_call(pipeline: &str, object: &str, operation: &'static str, status: &str) {
    metrics::counter!(
        API_CALLS_TOTAL,
        "pipeline" => pipeline.to_string(),
        "object" => object.to_string(),
        "operation" => operation,
        "status_class" => status_class(status)
    )
    .increment(1);
}

/// `2xx`…`5xx` for an HTTP status, `error` for anything else (transport failure, timeout).
pub(crate) fn status_class(status: &str) -> &'static str {
    match status.parse::<u16>() {
        Ok(200..=299) => "2xx",
        Ok(300..=399) => "3xx",
        Ok(400..=499) => "4xx",
        Ok(500..=599) => "5xx",
        _ => "error",
    }
}

/// Counts one retry.
pub(crate) fn record_retry(operation: &'static str, reason: &'static str) {
    metrics::counter!(RETRIES_TOTAL, "operation" => operation, "reason" => reason).increment(1);
}

/// Sets the remaining-calls and allocation gauges.
pub(crate) fn record_usage(pipeline: &str, remaining: u64, max: u64) {
    metrics::gauge!(API_REMAINING, "pipeline" => pipeline.to_string()).set(remaining as f64);
    metrics::gauge!(API_MAX, "pipeline" => pipeline.to_string()).set(max as f64);
}

/// Sets the governor-paused gauge. Set where the pause starts and ends, so it shows while every
/// caller is blocked waiting for the pause to end.
pub(crate) fn record_paused(pipeline: &str, paused: bool) {
    metrics::gauge!(GOVERNOR_PAUSED, "pipeline" => pipeline.to_string()).set(if paused {
        1.0
    } else {
        0.0
    });
}

#[cfg(test)]
mod tests {
    use super::status_class;

    #[test]
    fn status_classes() {
        assert_eq!(status_class("200"), "2xx");
        assert_eq!(status_class("304"), "3xx");
        assert_eq!(status_class("429"), "4xx");
        assert_eq!(status_class("503"), "5xx");
        assert_eq!(status_class("timeout"), "error");
        assert_eq!(status_class("transport"), "error");
        assert_eq!(status_class("error"), "error");
        assert_eq!(status_class("99"), "error");
    }
}
