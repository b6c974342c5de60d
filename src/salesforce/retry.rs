//! Which failed requests the client retries. The class of an error comes from
//! [`crate::error_class`]; how long to wait from the one backoff helper,
//! [`crate::backoff::RetryPolicy`]. What is added here is the request-level rule below.
//!
//! Requests that are not idempotent (creating a record, uploading a job's CSV) are retried only
//! when Salesforce certainly did not process them: connection refused, 408/420/429/503 and
//! `UNABLE_TO_LOCK_ROW`. Idempotent ones are also retried on timeouts and other 5xx.

pub use crate::backoff::RetryPolicy;
use crate::error_class::{api_class, ErrorClass};

/// One failed attempt, as far as retrying is concerned.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Failure<'a> {
    /// The connection could not be made; nothing was sent.
    Connect,
    /// The request timed out; it may have been processed.
    Timeout,
    /// Another transport error mid-request; it may have been processed.
    Transport,
    /// Salesforce answered with an error status.
    Status {
        /// HTTP status.
        status: u16,
        /// Salesforce `errorCode`.
        code: &'a str,
        /// Salesforce message.
        message: &'a str,
    },
}

/// True for the short-lived `REQUEST_LIMIT_EXCEEDED` about concurrent long-running requests
/// (`ConcurrentPerOrgLongTxn Limit exceeded.`), which is retried with backoff instead of
/// pausing the governor.
pub(crate) fn is_concurrency_limit(message: &str) -> bool {
    message.contains("ConcurrentPerOrgLongTxn")
}

/// Returns the retry reason (a metric label) when the failure is worth retrying.
pub(crate) fn retry_reason(failure: Failure<'_>, idempotent: bool) -> Option<&'static str> {
    match failure {
        Failure::Connect => Some("connect"),
        Failure::Timeout if idempotent => Some("timeout"),
        Failure::Transport if idempotent => Some("transport"),
        Failure::Timeout | Failure::Transport => None,
        Failure::Status {
            status,
            code,
            message,
        } => match api_class(status, code) {
            // The daily limit pauses the governor instead; only the short-lived
            // concurrency limit is retried here.
            ErrorClass::Throttled if code == "REQUEST_LIMIT_EXCEEDED" => {
                is_concurrency_limit(message).then_some("concurrency")
            }
            ErrorClass::Throttled => Some("throttled"),
            ErrorClass::Transient if code == "UNABLE_TO_LOCK_ROW" => Some("lock"),
            // Not processed by Salesforce: safe to send again whatever the request.
            ErrorClass::Transient if matches!(status, 408 | 503) => Some("throttled"),
            ErrorClass::Transient if idempotent => Some("server"),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn caps_grow_and_stop() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(p.cap(1), Duration::from_millis(100));
        assert_eq!(p.cap(2), Duration::from_millis(200));
        assert_eq!(p.cap(4), Duration::from_millis(800));
        assert_eq!(p.cap(5), Duration::from_secs(1));
        assert_eq!(p.cap(500), Duration::from_secs(1));
        for r in 1..8 {
            assert!(p.delay(r) <= p.cap(r));
        }
    }

    #[test]
    fn classification() {
        let s = |status, code| Failure::Status {
            status,
            code,
            message: "",
        };
        assert_eq!(retry_reason(s(503, "HTTP_503"), false), Some("throttled"));
        assert_eq!(retry_reason(s(500, "UNKNOWN"), true), Some("server"));
        assert_eq!(retry_reason(s(500, "UNKNOWN"), false), None);
        assert_eq!(
            retry_reason(s(400, "UNABLE_TO_LOCK_ROW"), false),
            Some("lock")
        );
        assert_eq!(retry_reason(s(400, "INVALID_FIELD"), true), None);
        assert_eq!(retry_reason(s(403, "REQUEST_LIMIT_EXCEEDED"), true), None);
        assert_eq!(retry_reason(Failure::Timeout, false), None);
        assert_eq!(retry_reason(Failure::Connect, false), Some("connect"));
    }
}
