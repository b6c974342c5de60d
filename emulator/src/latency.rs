//! Latency profiles: how long the emulator takes to answer, so benches and demos see what a
//! production org costs instead of microseconds. [`ProfileName::Instant`] (the default) adds
//! nothing; [`ProfileName::Realistic`] adds, with jitter:
//!
//! - a round trip per request (network plus the org's fixed per-call cost),
//! - a per-record server cost for REST record writes (1 record) and sObject Collections
//!   writes (per record; reads carry only the round trip),
//! - Bulk API 2.0 ingest jobs that stay queued (`UploadComplete`) for a start delay and then
//!   process at a bounded rate, `numberRecordsProcessed` growing chunk by chunk while the job
//!   is `InProgress`,
//! - Bulk query jobs the same (queued, then rows at a bounded rate before `JobComplete`).
//!
//! Every delay goes through a [`Sleeper`] with its [`Delay`] kind, so tests can replace the
//! timer (record the delays, or hold a job in a state) instead of measuring time.
//!
//! # The realistic figures and where they come from
//!
//! | Setting | Realistic | Source |
//! |---|---|---|
//! | `roundTripMs` | 60 | Assumption: a client in the same region as its org sees tens of ms per REST call (TLS session reused); Salesforce publishes no SLA for it. |
//! | `perRecordMs` | 2.0 | Assumption: a 200-record Collections call on an org with modest automation takes a few hundred ms; triggers and flows make it much slower. |
//! | `bulkIngestStartMs` | 3,000 | Assumption from Bulk API 2.0 behaviour: jobs are queued and picked up asynchronously ("Salesforce processes the job", state `UploadComplete` → `InProgress`), typically after seconds. |
//! | `bulkIngestRowsPerSec` | 10,000 | Assumption: about one 10,000-record internal batch per second for simple objects without automation (documented: batches of 10,000, each within 5 minutes). |
//! | `bulkQueryStartMs` | 2,000 | Assumption: query jobs are queued the same way before running. |
//! | `bulkQueryRowsPerSec` | 50,000 | Assumption: extraction runs faster than ingest (no validation, no triggers). |
//! | `jitter` | 0.2 | Each delay is scaled by a uniform factor in `[1 − jitter, 1 + jitter]`. |
//!
//! The documented facts behind the table fix the shape, not the numbers: Salesforce's
//! "Understanding Bulk API 2.0 Ingest" (developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/
//! api_bulk_v2/datafiles_understanding_bulk2_ingest.htm) says ingest data is split into a
//! separate batch for every 10,000 records, processed in parallel, and a batch fails if it is
//! not processed within 5 minutes (so 10,000 rows in well under 5 minutes is the floor); the
//! limits cheat sheet (".../salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-
//! platform-bulkapi.html") recommends Bulk only above 2,000 records, synchronous calls below,
//! which is where a seconds-long job start pays off. Salesforce publishes no latency figures:
//! every number in the table is an assumption about a typical production org without heavy
//! automation, and each is configurable (`latency` in the emulator config).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rand::Rng;
use serde::Deserialize;

/// The named profiles (`--profile`, config `profile`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProfileName {
    /// No added latency (tests, the fast demo).
    #[default]
    Instant,
    /// A typical production org (see the module docs for the figures).
    Realistic,
}

impl ProfileName {
    /// Parses `instant` / `realistic`.
    pub fn parse(s: &str) -> Option<ProfileName> {
        match s {
            "instant" => Some(ProfileName::Instant),
            "realistic" => Some(ProfileName::Realistic),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for ProfileName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ProfileName::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "profile: unknown latency profile {s:?}, expected \"instant\" or \"realistic\""
            ))
        })
    }
}

/// The figures of a profile. Zero means "no delay" (a rate of zero means unbounded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyProfile {
    /// Added to every request.
    pub round_trip_ms: u64,
    /// Per record of a REST record call or an sObject Collections call.
    pub per_record_ms: f64,
    /// How long an ingest job stays queued (`UploadComplete`) before `InProgress`.
    pub bulk_ingest_start_ms: u64,
    /// Ingest processing rate (rows per second) while `InProgress`.
    pub bulk_ingest_rows_per_sec: u64,
    /// How long a query job stays queued before `InProgress`.
    pub bulk_query_start_ms: u64,
    /// Query processing rate (rows per second) while `InProgress`.
    pub bulk_query_rows_per_sec: u64,
    /// Relative jitter in `[0, 1]`: each delay is scaled by `1 ± jitter` (uniform).
    pub jitter: f64,
}

impl LatencyProfile {
    /// No delays.
    pub const INSTANT: LatencyProfile = LatencyProfile {
        round_trip_ms: 0,
        per_record_ms: 0.0,
        bulk_ingest_start_ms: 0,
        bulk_ingest_rows_per_sec: 0,
        bulk_query_start_ms: 0,
        bulk_query_rows_per_sec: 0,
        jitter: 0.0,
    };

    /// A typical production org; see the module docs for where the numbers come from.
    pub const REALISTIC: LatencyProfile = LatencyProfile {
        round_trip_ms: 60,
        per_record_ms: 2.0,
        bulk_ingest_start_ms: 3_000,
        bulk_ingest_rows_per_sec: 10_000,
        bulk_query_start_ms: 2_000,
        bulk_query_rows_per_sec: 50_000,
        jitter: 0.2,
    };

    /// The figures of a named profile.
    pub fn named(name: ProfileName) -> LatencyProfile {
        match name {
            ProfileName::Instant => Self::INSTANT,
            ProfileName::Realistic => Self::REALISTIC,
        }
    }

    /// The named profile with the overrides applied, or the first invalid key and why.
    pub fn build(
        name: ProfileName,
        overrides: &LatencyOverrides,
    ) -> Result<LatencyProfile, LatencyError> {
        let mut p = Self::named(name);
        let o = overrides;
        p.round_trip_ms = o.round_trip_ms.unwrap_or(p.round_trip_ms);
        p.per_record_ms = o.per_record_ms.unwrap_or(p.per_record_ms);
        p.bulk_ingest_start_ms = o.bulk_ingest_start_ms.unwrap_or(p.bulk_ingest_start_ms);
        p.bulk_ingest_rows_per_sec = o
            .bulk_ingest_rows_per_sec
            .unwrap_or(p.bulk_ingest_rows_per_sec);
        p.bulk_query_start_ms = o.bulk_query_start_ms.unwrap_or(p.bulk_query_start_ms);
        p.bulk_query_rows_per_sec = o
            .bulk_query_rows_per_sec
            .unwrap_or(p.bulk_query_rows_per_sec);
        p.jitter = o.jitter.unwrap_or(p.jitter);
        if !(0.0..=1.0).contains(&p.jitter) {
            return Err(LatencyError {
                key: "latency.jitter",
                reason: format!("must be between 0 and 1, got {}", p.jitter),
            });
        }
        if !(p.per_record_ms.is_finite() && p.per_record_ms >= 0.0) {
            return Err(LatencyError {
                key: "latency.perRecordMs",
                reason: format!("must be a number >= 0, got {}", p.per_record_ms),
            });
        }
        Ok(p)
    }

    /// The unjittered duration of `delay` (zero when the profile adds none).
    pub fn base(&self, delay: Delay) -> Duration {
        let ms = |v: u64| Duration::from_millis(v);
        let rate = |rows: u64, per_sec: u64| {
            if per_sec == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(rows as f64 / per_sec as f64)
            }
        };
        match delay {
            Delay::RoundTrip => ms(self.round_trip_ms),
            Delay::Records(n) => Duration::from_secs_f64(n as f64 * self.per_record_ms / 1000.0),
            Delay::BulkIngestStart => ms(self.bulk_ingest_start_ms),
            Delay::BulkIngestRows(n) => rate(n, self.bulk_ingest_rows_per_sec),
            Delay::BulkQueryStart => ms(self.bulk_query_start_ms),
            Delay::BulkQueryRows(n) => rate(n, self.bulk_query_rows_per_sec),
        }
    }
}

/// Per-setting overrides of the named profile (config key `latency`, camelCase).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyOverrides {
    /// See [`LatencyProfile::round_trip_ms`].
    pub round_trip_ms: Option<u64>,
    /// See [`LatencyProfile::per_record_ms`].
    pub per_record_ms: Option<f64>,
    /// See [`LatencyProfile::bulk_ingest_start_ms`].
    pub bulk_ingest_start_ms: Option<u64>,
    /// See [`LatencyProfile::bulk_ingest_rows_per_sec`].
    pub bulk_ingest_rows_per_sec: Option<u64>,
    /// See [`LatencyProfile::bulk_query_start_ms`].
    pub bulk_query_start_ms: Option<u64>,
    /// See [`LatencyProfile::bulk_query_rows_per_sec`].
    pub bulk_query_rows_per_sec: Option<u64>,
    /// See [`LatencyProfile::jitter`].
    pub jitter: Option<f64>,
}

/// An invalid latency setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid emulator config: {key} {reason}")]
pub struct LatencyError {
    /// The config key.
    pub key: &'static str,
    /// Why it is invalid.
    pub reason: String,
}

/// What a delay stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
    /// One request's round trip.
    RoundTrip,
    /// The server cost of this many records (REST record call, Collections).
    Records(u64),
    /// An ingest job waiting in `UploadComplete`.
    BulkIngestStart,
    /// An ingest job processing this many rows.
    BulkIngestRows(u64),
    /// A query job waiting in `UploadComplete`.
    BulkQueryStart,
    /// A query job producing this many rows.
    BulkQueryRows(u64),
}

/// A boxed future the sleeper returns.
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Waits for a delay. The default is tokio's timer; tests install their own.
pub trait Sleeper: Send + Sync {
    /// Waits `duration` (already jittered) for `delay`.
    fn sleep(&self, delay: Delay, duration: Duration) -> SleepFuture;
}

/// The real timer.
#[derive(Debug, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, _: Delay, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The active profile and the sleeper delays go through.
pub struct Latency {
    profile: LatencyProfile,
    sleeper: RwLock<Arc<dyn Sleeper>>,
}

impl fmt::Debug for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latency")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl Latency {
    /// `profile` with tokio's timer.
    pub fn new(profile: LatencyProfile) -> Latency {
        Latency {
            profile,
            sleeper: RwLock::new(Arc::new(TokioSleeper)),
        }
    }

    /// The active figures.
    pub fn profile(&self) -> &LatencyProfile {
        &self.profile
    }

    /// Replaces the sleeper (tests: record delays or hold a job in a state).
    pub fn set_sleeper(&self, sleeper: Arc<dyn Sleeper>) {
        *self.sleeper.write() = sleeper;
    }

    /// The jittered duration of `delay`; zero when the profile adds none.
    pub fn duration(&self, delay: Delay) -> Duration {
        let base = self.profile.base(delay);
        let j = self.profile.jitter;
        if base.is_zero() || j == 0.0 {
            return base;
        }
        base.mul_f64(rand::rng().random_range(1.0 - j..=1.0 + j))
    }

    /// Waits for `delay`; returns at once (without calling the sleeper) when it is zero.
    pub async fn wait(&self, delay: Delay) {
        let d = self.duration(delay);
        if d.is_zero() {
            return;
        }
        let sleeper = self.sleeper.read().clone();
        sleeper.sleep(delay, d).await;
    }
}

/// The per-request delay: the round trip, plus one record's server cost for a REST record
/// call (`/sobjects/...` other than Collections, which charge per record themselves).
pub async fn charge_request(latency: &Latency, method: &str, path: &str) {
    latency.wait(Delay::RoundTrip).await;
    let record_call = path.contains("/sobjects/") && !path.contains("/composite/");
    if record_call && method != "GET" {
        latency.wait(Delay::Records(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_adds_nothing() {
        let p = LatencyProfile::named(ProfileName::Instant);
        for d in [
            Delay::RoundTrip,
            Delay::Records(200),
            Delay::BulkIngestStart,
            Delay::BulkIngestRows(10_000),
            Delay::BulkQueryStart,
            Delay::BulkQueryRows(10_000),
        ] {
            assert_eq!(p.base(d), Duration::ZERO, "{d:?}");
        }
    }

    #[test]
    fn rates_turn_rows_into_time() {
        let p = LatencyProfile::REALISTIC;
        assert_eq!(
            p.base(Delay::BulkIngestRows(10_000)),
            Duration::from_secs(1)
        );
        assert_eq!(p.base(Delay::Records(200)), Duration::from_millis(400));
        assert_eq!(p.base(Delay::RoundTrip), Duration::from_millis(60));
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let l = Latency::new(LatencyProfile::REALISTIC);
        for _ in 0..1000 {
            let d = l.duration(Delay::RoundTrip).as_secs_f64();
            assert!((0.048..=0.072).contains(&d), "{d}");
        }
    }

    #[test]
    fn overrides_apply_and_bad_values_name_the_key() {
        let o = LatencyOverrides {
            round_trip_ms: Some(5),
            ..Default::default()
        };
        let p = LatencyProfile::build(ProfileName::Realistic, &o).unwrap();
        assert_eq!(p.round_trip_ms, 5);
        assert_eq!(p.bulk_ingest_start_ms, 3_000);
        let bad = LatencyOverrides {
            jitter: Some(1.5),
            ..Default::default()
        };
        let e = LatencyProfile::build(ProfileName::Instant, &bad).unwrap_err();
        assert_eq!(e.key, "latency.jitter");
        let bad = LatencyOverrides {
            per_record_ms: Some(-1.0),
            ..Default::default()
        };
        let e = LatencyProfile::build(ProfileName::Instant, &bad).unwrap_err();
        assert_eq!(e.key, "latency.perRecordMs");
    }

    #[test]
    fn profile_names_parse() {
        assert_eq!(
            ProfileName::parse("realistic"),
            Some(ProfileName::Realistic)
        );
        assert_eq!(ProfileName::parse("instant"), Some(ProfileName::Instant));
        assert_eq!(ProfileName::parse("slow"), None);
    }
}
