//! Daily API allocations (`DailyApiRequests`, Bulk batches, Bulk query jobs), reset at UTC
//! midnight of the emulator clock, and per-endpoint-family call statistics for benches
//! (`GET /__emulator/stats`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::{json, Value};

/// One daily allocation.
#[derive(Debug)]
pub struct Counter {
    max: AtomicU64,
    used: AtomicU64,
}

impl Counter {
    fn new(max: u64) -> Counter {
        Counter {
            max: AtomicU64::new(max),
            used: AtomicU64::new(0),
        }
    }

    /// Uses `n` units; returns the new usage, or `None` (nothing used) if that would pass max.
    pub fn try_use(&self, n: u64) -> Option<u64> {
        let max = self.max.load(Ordering::Relaxed);
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u + n <= max).then_some(u + n)
            })
            .ok()
            .map(|u| u + n)
    }

    /// (used, max).
    pub fn usage(&self) -> (u64, u64) {
        (
            self.used.load(Ordering::Relaxed),
            self.max.load(Ordering::Relaxed),
        )
    }

    /// Changes the maximum.
    pub fn set_max(&self, max: u64) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// Sets the usage (tests: simulate a nearly spent allocation).
    pub fn set_used(&self, used: u64) {
        self.used.store(used, Ordering::Relaxed);
    }

    fn json(&self) -> Value {
        let (used, max) = self.usage();
        json!({"Max": max, "Remaining": max.saturating_sub(used)})
    }
}

/// The org's daily allocations.
#[derive(Debug)]
pub struct Limits {
    /// REST/Bulk API requests (`DailyApiRequests`).
    pub api_requests: Counter,
    /// Bulk ingest batches (`DailyBulkApiBatches`; Bulk 2.0 counts internal 10,000-row batches).
    pub bulk_batches: Counter,
    /// Bulk 2.0 query jobs (`DailyBulkV2QueryJobs`).
    pub bulk_query_jobs: Counter,
    /// Days since epoch of the current period.
    day: AtomicI64,
}

impl Limits {
    /// Allocations with the given daily API request maximum.
    pub fn new(daily_api_limit: u64, now: DateTime<Utc>) -> Limits {
        Limits {
            api_requests: Counter::new(daily_api_limit),
            bulk_batches: Counter::new(15_000),
            bulk_query_jobs: Counter::new(10_000),
            day: AtomicI64::new(day_of(now)),
        }
    }

    /// Resets every counter when `now` is on a later day than the current period.
    pub fn roll(&self, now: DateTime<Utc>) {
        let today = day_of(now);
        let prev = self.day.swap(today, Ordering::Relaxed);
        if prev != today {
            for c in [
                &self.api_requests,
                &self.bulk_batches,
                &self.bulk_query_jobs,
            ] {
                c.set_used(0);
            }
        }
    }

    /// Counts one API request; `None` when the allocation is spent.
    pub fn use_api_request(&self, now: DateTime<Utc>) -> Option<u64> {
        self.roll(now);
        self.api_requests.try_use(1)
    }

    /// The `Sforce-Limit-Info` header value (`api-usage=N/MAX`).
    pub fn header_value(&self) -> String {
        let (used, max) = self.api_requests.usage();
        format!("api-usage={used}/{max}")
    }

    /// The body of `GET /limits`.
    pub fn json(&self) -> Value {
        let fixed = |max: u64| json!({"Max": max, "Remaining": max});
        json!({
            "ActiveScratchOrgs": fixed(3),
            "AnalyticsExternalDataSizeMB": fixed(40960),
            "ConcurrentAsyncGetReportInstances": fixed(200),
            "ConcurrentSyncReportRuns": fixed(20),
            "DailyApiRequests": self.api_requests.json(),
            "DailyAsyncApexExecutions": fixed(250000),
            "DailyBulkApiBatches": self.bulk_batches.json(),
            "DailyBulkV2QueryFileStorageMB": fixed(976562),
            "DailyBulkV2QueryJobs": self.bulk_query_jobs.json(),
            "DailyDurableGenericStreamingApiEvents": fixed(10000),
            "DailyDurableStreamingApiEvents": fixed(10000),
            "DailyGenericStreamingApiEvents": fixed(10000),
            "DailyStreamingApiEvents": fixed(10000),
            "DataStorageMB": fixed(1073),
            "FileStorageMB": fixed(1073),
            "HourlyPublishedPlatformEvents": fixed(50000),
            "MonthlyPlatformEventsUsageEntitlement": fixed(0),
            "SingleEmail": fixed(5000),
        })
    }
}

fn day_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

/// The endpoint family of a request path, for statistics.
pub fn family(path: &str) -> &'static str {
    if path.starts_with("/services/oauth2") {
        return "oauth";
    }
    let Some(rest) = path.strip_prefix("/services/data/") else {
        return "other";
    };
    let mut segs = rest.split('/').skip(1);
    match (segs.next(), segs.next()) {
        (None, _) | (Some(""), _) => "resources",
        (Some("sobjects"), _) => "sobjects",
        (Some("query" | "queryAll"), _) => "query",
        (Some("composite"), Some("sobjects")) => "collections",
        (Some("composite"), _) => "composite",
        (Some("jobs"), Some("ingest")) => "bulk_ingest",
        (Some("jobs"), Some("query")) => "bulk_query",
        (Some("limits"), _) => "limits",
        _ => "other",
    }
}

/// Call counts by endpoint family and by `METHOD family`.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    api_calls: u64,
    by_family: BTreeMap<&'static str, u64>,
    by_method: BTreeMap<String, u64>,
}

impl Stats {
    /// Records one request; `counted` says whether it counted against the API allocation.
    pub fn record(&self, method: &str, path: &str, counted: bool) {
        let fam = family(path);
        let mut s = self.inner.lock();
        if counted {
            s.api_calls += 1;
        }
        *s.by_family.entry(fam).or_default() += 1;
        *s.by_method.entry(format!("{method} {fam}")).or_default() += 1;
    }

    /// Number of requests that counted against the API allocation.
    pub fn api_calls(&self) -> u64 {
        self.inner.lock().api_calls
    }

    /// Requests seen for a family (`sobjects`, `bulk_ingest`, `oauth`, ...).
    pub fn family_count(&self, family: &str) -> u64 {
        self.inner
            .lock()
            .by_family
            .get(family)
            .copied()
            .unwrap_or(0)
    }

    /// Zeroes every counter.
    pub fn reset(&self) {
        *self.inner.lock() = StatsInner::default();
    }

    /// `{"apiCalls": N, "byFamily": {...}, "byMethod": {...}}`.
    pub fn json(&self) -> Value {
        let s = self.inner.lock();
        json!({"apiCalls": s.api_calls, "byFamily": s.by_family, "byMethod": s.by_method})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_recognised() {
        assert_eq!(family("/services/data/v60.0/sobjects/Account"), "sobjects");
        assert_eq!(
            family("/services/data/v60.0/composite/sobjects"),
            "collections"
        );
        assert_eq!(family("/services/data/v60.0/composite"), "composite");
        assert_eq!(
            family("/services/data/v60.0/jobs/ingest/750x/batches"),
            "bulk_ingest"
        );
        assert_eq!(family("/services/data/v60.0/queryAll"), "query");
        assert_eq!(family("/services/data/v60.0"), "resources");
        assert_eq!(family("/services/oauth2/token"), "oauth");
    }

    #[test]
    fn allocation_is_enforced_and_rolls_daily() {
        let now = Utc::now();
        let l = Limits::new(2, now);
        assert_eq!(l.use_api_request(now), Some(1));
        assert_eq!(l.use_api_request(now), Some(2));
        assert_eq!(l.use_api_request(now), None);
        assert_eq!(l.header_value(), "api-usage=2/2");
        assert_eq!(l.use_api_request(now + chrono::Duration::days(1)), Some(1));
    }
}
