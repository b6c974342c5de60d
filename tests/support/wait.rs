//! The one way tests wait for something: [`wait_until`] polls a check until it passes or a
//! [`Deadline`] runs out, and fails the test with the check's last complaint.
//! [`poll_until`] is the same loop for the few callers that report a timeout themselves
//! (with a log tail or a diff). Deadlines only bound a broken run: nothing is timed.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long to keep polling, and how often.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub limit: Duration,
    pub every: Duration,
}

impl Deadline {
    /// Poll every 100 ms for up to `secs` seconds.
    pub const fn secs(secs: u64) -> Deadline {
        Deadline {
            limit: Duration::from_secs(secs),
            every: Duration::from_millis(100),
        }
    }

    /// Poll every 100 ms for up to `limit`.
    pub const fn within(limit: Duration) -> Deadline {
        Deadline {
            limit,
            every: Duration::from_millis(100),
        }
    }

    /// Poll every `ms` milliseconds instead (to catch a short-lived state).
    pub const fn every_ms(self, ms: u64) -> Deadline {
        Deadline {
            every: Duration::from_millis(ms),
            ..self
        }
    }
}

/// The usual deadline. Generous: the machine is shared.
pub const DEADLINE: Deadline = Deadline::secs(60);

/// Poll `check` until it is `Ok` (its value) or `deadline` passes (its last complaint).
pub async fn poll_until<T, F, Fut>(deadline: Deadline, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if start.elapsed() > deadline.limit {
            return Err(last);
        }
        tokio::time::sleep(deadline.every).await;
    }
}

/// Poll `check` until it is `Ok` and return its value; after `deadline`, fail the test with
/// `what` and the last complaint.
pub async fn wait_until<T, F, Fut>(what: &str, deadline: Deadline, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    match poll_until(deadline, check).await {
        Ok(v) => v,
        Err(last) => panic!(
            "timed out after {:?} waiting until {what}: {last}",
            deadline.limit
        ),
    }
}

/// `Ok` when `cond`, else the complaint.
pub fn check(cond: bool, complaint: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(complaint())
    }
}
