//! The emulator's clock: wall time plus an adjustable offset, so tests can move time
//! forward (token expiry, getUpdated windows) without sleeping. Millisecond precision, like
//! Salesforce timestamps.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};

/// Wall clock with an offset; shared by the store, tokens and limits.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// A clock at wall time.
    pub fn new() -> Clock {
        Clock::default()
    }

    /// The current time, truncated to milliseconds.
    pub fn now(&self) -> DateTime<Utc> {
        let t = Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed));
        t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}
