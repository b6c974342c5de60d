//! Retry policy: which failures are retried, and how long to wait (exponential backoff with
//! full jitter, bounded attempts and delay). Written here rather than pulled from a crate
//! because it is a dozen lines and the classification is Salesforce-specific.
//!
//! Requests that are not idempotent (creating a record, uploading a job's CSV) are retried only
//! when Salesforce certainly did not process them: connection refused, 408/420/429/503 and
//! `UNABLE_TO_LOCK_ROW`. Idempotent ones are also retried on timeouts and other 5xx.

use std::time::Duration;

use rand::Rng;

/// How often and how patiently transient failures are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (≥ 1). Default 5.
    pub max_attempts: u32,
    /// The backoff cap for the first retry; doubles per retry. Default 500 ms.
    pub base_delay: Duration,
    /// The largest backoff cap. Default 30 s.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The backoff cap before retry number `retry` (1-based): `min(max, base * 2^(retry-1))`.
    pub fn cap(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(30));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// A random delay in `[0, cap(retry)]` ("full jitter").
    pub fn delay(&self, retry: u32) -> Duration {
        let cap = self.cap(retry);
        if cap.is_zero() {
            return cap;
        }
        let nanos = rand::rng().random_range(0..=cap.as_nanos().min(u64::MAX as u128) as u64);
        Duration::from_nanos(nanos)
    }
}

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
            code: "UNABLE_TO_LOCK_ROW",
            ..
        } => Some("lock"),
        Failure::Status {
            code: "REQUEST_LIMIT_EXCEEDED",
            message,
            ..
        } if is_concurrency_limit(message) => Some("concurrency"),
        Failure::Status { status, .. } => match status {
            408 | 420 | 429 | 503 => Some("throttled"),
            500..=599 if idempotent => Some("server"),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
