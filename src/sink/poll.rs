//! How often a Bulk job's status is asked for while it runs. Every poll is an API request
//! (they count against the org's daily allocation), and polling late adds latency, so the
//! waits adapt:
//!
//! - without anything learned yet: short first (`initial`), doubling, capped at `max`
//!   (the schedule of [`crate::backoff::RetryPolicy::cap`], counted per job, so every job
//!   starts short again);
//! - what earlier jobs showed is remembered (how long a job stayed queued before
//!   `InProgress`, how many rows per second it processed), so the first poll of a job of
//!   `rows` rows is timed for when it should be done;
//! - while a job is `InProgress` and `numberRecordsProcessed` grows between two polls, the
//!   next poll is timed for when the remaining rows should be done at that rate; once
//!   every row is counted as processed and the job still runs (Salesforce finishes a job
//!   after its last batch), or without a rate, the waits back off exponentially (never a
//!   fixed short loop).
//!
//! Every wait stays within `[initial, max]`: a wrong estimate costs at most one more poll or
//! `max` of latency, never a missed state.

use std::time::Duration;

use parking_lot::Mutex;

use crate::backoff::RetryPolicy;
use crate::salesforce::JobState;

/// Pacing shared by every job of a destination (what one job teaches the next).
#[derive(Debug)]
pub(super) struct Pacer {
    initial: Duration,
    max: Duration,
    /// The fallback schedule: `initial`, doubling, capped at `max`.
    backoff: RetryPolicy,
    learned: Mutex<Learned>,
}

/// What finished jobs showed, smoothed.
#[derive(Debug, Clone, Copy, Default)]
struct Learned {
    /// Time from close to `InProgress`.
    queued: Option<Duration>,
    /// Rows processed per second while `InProgress`.
    rows_per_sec: Option<f64>,
}

/// One job's polling so far.
#[derive(Debug)]
pub(super) struct JobPoll {
    rows: Option<u64>,
    /// Polls of this job so far (the fallback's step in [`Pacer::backoff`]).
    polls: u32,
    running_since: Option<Duration>,
    last: Option<(Duration, u64)>,
}

/// Weight of a new observation in the smoothed figures.
const NEW_WEIGHT: f64 = 0.5;

fn smooth(old: Option<f64>, new: f64) -> f64 {
    old.map_or(new, |o| o * (1.0 - NEW_WEIGHT) + new * NEW_WEIGHT)
}

impl Pacer {
    pub(super) fn new(initial: Duration, max: Duration) -> Pacer {
        let max = max.max(initial);
        Pacer {
            initial,
            max,
            backoff: RetryPolicy {
                max_attempts: u32::MAX,
                base_delay: initial,
                max_delay: max,
            },
            learned: Mutex::new(Learned::default()),
        }
    }

    fn clamp(&self, d: Duration) -> Duration {
        d.clamp(self.initial, self.max)
    }

    /// `secs` seconds within `[initial, max]` (an estimate may be huge or not finite).
    fn clamp_secs(&self, secs: f64) -> Duration {
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            return self.max;
        }
        self.clamp(Duration::from_secs_f64(secs.max(0.0)))
    }

    /// Start polling a job of `rows` rows, just closed (`None`: a job from before a
    /// restart, of unknown size and age); returns the state and the wait before the first
    /// poll.
    pub(super) fn begin(&self, rows: Option<u64>) -> (JobPoll, Duration) {
        let poll = JobPoll {
            rows,
            polls: 0,
            running_since: None,
            last: None,
        };
        let l = *self.learned.lock();
        let first = match (rows, l.queued, l.rows_per_sec) {
            (Some(r), Some(q), Some(rate)) if rate > 0.0 => q.as_secs_f64() + r as f64 / rate,
            (Some(_), Some(q), _) => q.as_secs_f64(),
            _ => 0.0,
        };
        (poll, self.clamp_secs(first))
    }

    /// A poll `elapsed` after the job was closed found it in `state` with `processed` rows
    /// done; returns how long to wait before the next poll.
    pub(super) fn next(
        &self,
        p: &mut JobPoll,
        elapsed: Duration,
        state: JobState,
        processed: u64,
    ) -> Duration {
        p.polls = p.polls.saturating_add(1);
        let fallback = self.backoff.cap(p.polls);
        let mut learned = self.learned.lock();
        match state {
            JobState::InProgress => {
                if p.running_since.is_none() {
                    p.running_since = Some(elapsed);
                    let q = smooth(
                        learned.queued.map(|d| d.as_secs_f64()),
                        elapsed.as_secs_f64(),
                    );
                    learned.queued = Some(Duration::from_secs_f64(q));
                }
                let mut rate = learned.rows_per_sec;
                if let Some((t0, p0)) = p.last {
                    let dt = elapsed.saturating_sub(t0).as_secs_f64();
                    if processed > p0 && dt > 0.0 {
                        let r = (processed - p0) as f64 / dt;
                        learned.rows_per_sec = Some(smooth(learned.rows_per_sec, r));
                        rate = Some(r);
                    }
                }
                p.last = Some((elapsed, processed));
                match (p.rows, rate) {
                    (Some(rows), Some(rate)) if rate > 0.0 && processed < rows => {
                        self.clamp_secs((rows - processed) as f64 / rate)
                    }
                    // Every row counted and still running, or no rate: back off.
                    _ => fallback,
                }
            }
            JobState::UploadComplete | JobState::Open => match learned.queued {
                Some(q) if q > elapsed => self.clamp(q - elapsed),
                _ => fallback,
            },
            _ => fallback,
        }
    }

    /// A job of `rows` rows, closed `elapsed` ago, was found finished: without progress
    /// observations, its whole run teaches the processing rate.
    pub(super) fn finished(&self, p: &JobPoll, elapsed: Duration) {
        let (Some(rows), Some(since)) = (p.rows, p.running_since) else {
            return;
        };
        if p.last.is_some_and(|(_, done)| done > 0) || rows == 0 {
            return;
        }
        let dt = elapsed.saturating_sub(since).as_secs_f64();
        if dt > 0.0 {
            let mut l = self.learned.lock();
            l.rows_per_sec = Some(smooth(l.rows_per_sec, rows as f64 / dt));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn pacer() -> Pacer {
        Pacer::new(100 * MS, 10_000 * MS)
    }

    #[test]
    fn without_history_waits_start_short_and_double_up_to_the_cap() {
        let p = pacer();
        let (mut job, first) = p.begin(Some(10_000));
        assert_eq!(first, 100 * MS);
        let mut waits = Vec::new();
        let mut t = first;
        for _ in 0..9 {
            let w = p.next(&mut job, t, JobState::UploadComplete, 0);
            waits.push(w.as_millis());
            t += w;
        }
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
    }

    #[test]
    fn progress_times_the_next_poll_for_the_remaining_rows() {
        let p = pacer();
        let (mut job, _) = p.begin(Some(50_000));
        p.next(&mut job, 3_000 * MS, JobState::InProgress, 10_000);
        // 10,000 more rows in one second: 30,000 left is three seconds.
        let w = p.next(&mut job, 4_000 * MS, JobState::InProgress, 20_000);
        assert_eq!(w.as_millis(), 3_000);
    }

    #[test]
    fn the_next_job_is_first_polled_when_the_last_one_says_it_should_be_done() {
        let p = pacer();
        let (mut job, _) = p.begin(Some(20_000));
        p.next(&mut job, 3_000 * MS, JobState::InProgress, 0);
        p.finished(&job, 5_000 * MS);
        // Queued 3 s, then 20,000 rows in 2 s: a 10,000-row job should take 4 s.
        let (_, first) = p.begin(Some(10_000));
        assert_eq!(first.as_millis(), 4_000);
        // A job from before a restart (size and age unknown) may be done already.
        let (_, first) = p.begin(None);
        assert_eq!(first.as_millis(), 100);
    }

    #[test]
    fn a_job_still_running_after_its_last_row_is_polled_with_growing_waits() {
        let p = pacer();
        let (mut job, _) = p.begin(Some(10_000));
        let mut t = 3_000 * MS;
        p.next(&mut job, t, JobState::InProgress, 0);
        t += 1_000 * MS;
        let mut waits = vec![p
            .next(&mut job, t, JobState::InProgress, 10_000)
            .as_millis()];
        for _ in 0..5 {
            t += 1_000 * MS;
            waits.push(
                p.next(&mut job, t, JobState::InProgress, 10_000)
                    .as_millis(),
            );
        }
        // The schedule carries on from this job's poll count: no fixed short loop.
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 6400]);
        // The next job starts short again.
        let (mut next_job, _) = p.begin(None);
        let w = p.next(&mut next_job, Duration::ZERO, JobState::InProgress, 0);
        assert_eq!(w, 100 * MS);
    }

    #[test]
    fn waits_stay_within_bounds_whatever_was_learned() {
        let p = pacer();
        let (mut job, _) = p.begin(Some(u64::MAX));
        p.next(&mut job, Duration::ZERO, JobState::InProgress, 0);
        let w = p.next(&mut job, 1_000 * MS, JobState::InProgress, 1);
        assert_eq!(w, 10_000 * MS, "capped");
        // One row left at a million rows a second.
        let (mut job, _) = p.begin(Some(1_000_001));
        p.next(&mut job, Duration::ZERO, JobState::InProgress, 0);
        let w = p.next(&mut job, 1_000 * MS, JobState::InProgress, 1_000_000);
        assert_eq!(w, 100 * MS, "floored");
    }
}
