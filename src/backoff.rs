//! The one backoff helper: exponential backoff with full jitter, bounded attempts and delay.
//! Used by the Salesforce client's request retries, the flusher's per-record retries and the
//! pipeline supervisor's restarts. Written here rather than pulled from a crate because it
//! is a dozen lines.

use std::time::Duration;

use rand::Rng;

/// How often and how patiently retryable failures are retried.
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
