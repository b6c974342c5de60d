//! Fault injection: added latency, HTTP 5xx, dropped connections, `UNABLE_TO_LOCK_ROW`,
//! `REQUEST_LIMIT_EXCEEDED`, forced token expiry, and a "Bulk job ends Failed" flag that
//! the Bulk engine polls with [`Faults::bulk_job_failure`].
//!
//! A fault matches requests by method (optional) and path prefix, and fires on every match,
//! with a probability, or on the Nth match only; `times` caps how often it fires. Faults are
//! configured in [`super::EmulatorConfig::faults`], at run time through
//! `POST /__emulator/faults` (body: one [`FaultSpec`] or an array) / `DELETE` to clear, or
//! with the handle's Rust API.
//!
//! ```json
//! {"kind": "http_status", "status": 503, "method": "POST", "pathPrefix": "/services/data/v60.0/sobjects", "nth": 2}
//! {"kind": "latency", "ms": 200, "probability": 0.5}
//! {"kind": "drop_connection", "pathPrefix": "/services/data", "times": 1}
//! ```
//!
//! Change Data Capture and Pub/Sub faults match the *topic* (`/data/AccountChangeEvent`)
//! with `pathPrefix` instead of a request path, and are read by those modules with
//! [`Faults::stream_fault`]:
//!
//! ```json
//! {"kind": "cdc_gap", "pathPrefix": "/data/Account", "times": 3}
//! {"kind": "pubsub_drop_stream", "afterEvents": 2, "times": 1}
//! {"kind": "pubsub_slow", "ms": 200}
//! ```
//! `cdc_gap` turns each of the next `times` changes into a `GAP_*` event (header only);
//! `pubsub_drop_stream` ends a subscription with `UNAVAILABLE` once it has delivered
//! `afterEvents` events; `pubsub_slow` delays every `FetchResponse`.

use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Delay the response.
    Latency {
        /// Milliseconds to wait before handling the request.
        ms: u64,
    },
    /// Answer with this HTTP status (5xx) and a Salesforce error body.
    HttpStatus {
        /// HTTP status code.
        status: u16,
    },
    /// Close the connection without sending a response.
    DropConnection,
    /// Answer 400 `UNABLE_TO_LOCK_ROW`.
    UnableToLockRow,
    /// Answer 403 `REQUEST_LIMIT_EXCEEDED`.
    RequestLimitExceeded,
    /// Invalidate every access token, then handle the request (which then fails with 401).
    ExpireTokens,
    /// Make the next matching Bulk job end `Failed` (read by the Bulk engine).
    BulkJobFailed {
        /// The job's `errorMessage`.
        #[serde(default)]
        message: Option<String>,
    },
    /// Publish the next matching change as a `GAP_*` event (read by Change Data Capture).
    CdcGap,
    /// End a matching subscription with `UNAVAILABLE` after it delivered this many events.
    PubsubDropStream {
        /// Events delivered before the stream is dropped.
        #[serde(rename = "afterEvents")]
        after_events: u64,
    },
    /// Delay every `FetchResponse` of a matching subscription.
    PubsubSlow {
        /// Milliseconds per response.
        ms: u64,
    },
}

impl FaultKind {
    /// Whether this fault acts on HTTP requests (the others are read by the Bulk engine,
    /// Change Data Capture or the Pub/Sub service).
    pub fn is_request_fault(&self) -> bool {
        !matches!(
            self,
            FaultKind::BulkJobFailed { .. }
                | FaultKind::CdcGap
                | FaultKind::PubsubDropStream { .. }
                | FaultKind::PubsubSlow { .. }
        )
    }
}

/// A fault and when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultSpec {
    /// The effect.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// HTTP method to match (any when absent), case-insensitive.
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix to match (`""` matches everything).
    #[serde(default)]
    pub path_prefix: String,
    /// Fire with this probability (0..=1) on each match.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Fire only on the Nth matching request (1-based).
    #[serde(default)]
    pub nth: Option<u64>,
    /// Fire at most this many times.
    #[serde(default)]
    pub times: Option<u64>,
}

impl FaultSpec {
    /// A fault firing on every request.
    pub fn always(kind: FaultKind) -> FaultSpec {
        FaultSpec {
            kind,
            method: None,
            path_prefix: String::new(),
            probability: None,
            nth: None,
            times: None,
        }
    }

    /// Restricts to a method and path prefix.
    pub fn matching(mut self, method: Option<&str>, path_prefix: &str) -> FaultSpec {
        self.method = method.map(str::to_string);
        self.path_prefix = path_prefix.to_string();
        self
    }

    /// Fires only on the Nth matching request.
    pub fn on_nth(mut self, n: u64) -> FaultSpec {
        self.nth = Some(n);
        self
    }

    /// Fires with probability `p`.
    pub fn with_probability(mut self, p: f64) -> FaultSpec {
        self.probability = Some(p);
        self
    }

    /// Fires at most `n` times.
    pub fn times(mut self, n: u64) -> FaultSpec {
        self.times = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.starts_with(&self.path_prefix)
    }
}

/// An installed fault with its counters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveFault {
    /// Id for removal.
    pub id: u64,
    /// The spec.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Requests matched so far.
    pub matched: u64,
    /// Times fired so far.
    pub fired: u64,
}

impl ActiveFault {
    /// Counts a match and decides whether the fault fires.
    fn hit(&mut self) -> bool {
        self.matched += 1;
        if self.spec.times.is_some_and(|t| self.fired >= t) {
            return false;
        }
        let fire = match (self.spec.nth, self.spec.probability) {
            (Some(n), _) => self.matched == n,
            (None, Some(p)) => rand::rng().random_bool(p.clamp(0.0, 1.0)),
            (None, None) => true,
        };
        if fire {
            self.fired += 1;
        }
        fire
    }
}

/// The installed faults. Cheap to check when empty.
#[derive(Debug, Default)]
pub struct Faults {
    active: Mutex<Vec<ActiveFault>>,
    next_id: Mutex<u64>,
}

impl Faults {
    /// Faults from a config list.
    pub fn new(specs: &[FaultSpec]) -> Faults {
        let f = Faults::default();
        for s in specs {
            f.add(s.clone());
        }
        f
    }

    /// Installs a fault; returns its id.
    pub fn add(&self, spec: FaultSpec) -> u64 {
        let id = {
            let mut n = self.next_id.lock();
            *n += 1;
            *n
        };
        self.active.lock().push(ActiveFault {
            id,
            spec,
            matched: 0,
            fired: 0,
        });
        id
    }

    /// Removes one fault.
    pub fn remove(&self, id: u64) -> bool {
        let mut a = self.active.lock();
        let before = a.len();
        a.retain(|f| f.id != id);
        a.len() != before
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.active.lock().clear();
    }

    /// The installed faults and their counters.
    pub fn list(&self) -> Vec<ActiveFault> {
        self.active.lock().clone()
    }

    /// The request faults that fire for this request, in installation order (Bulk job
    /// faults are not included).
    pub fn check(&self, method: &str, path: &str) -> Vec<FaultKind> {
        let mut active = self.active.lock();
        active
            .iter_mut()
            .filter(|f| f.spec.kind.is_request_fault())
            .filter(|f| f.spec.matches(method, path))
            .filter_map(|f| f.hit().then(|| f.spec.kind.clone()))
            .collect()
    }

    /// For Change Data Capture and the Pub/Sub service: the first fault `select`ed that
    /// matches `topic` (by `pathPrefix`) and fires now.
    pub fn stream_fault(&self, topic: &str, select: fn(&FaultKind) -> bool) -> Option<FaultKind> {
        let mut active = self.active.lock();
        active
            .iter_mut()
            .filter(|f| select(&f.spec.kind) && topic.starts_with(&f.spec.path_prefix))
            .find_map(|f| f.hit().then(|| f.spec.kind.clone()))
    }

    /// Whether any fault `select`ed is installed (a cheap check before [`Faults::stream_fault`]).
    pub fn has(&self, select: fn(&FaultKind) -> bool) -> bool {
        self.active.lock().iter().any(|f| select(&f.spec.kind))
    }

    /// For the Bulk engine: whether the job at `method path` (e.g. the close `PATCH
    /// /services/data/v60.0/jobs/ingest/750…`) must end `Failed`, and with which message.
    pub fn bulk_job_failure(&self, method: &str, path: &str) -> Option<String> {
        let mut active = self.active.lock();
        active
            .iter_mut()
            .filter(|f| matches!(f.spec.kind, FaultKind::BulkJobFailed { .. }))
            .filter(|f| f.spec.matches(method, path))
            .find_map(|f| {
                let FaultKind::BulkJobFailed { message } = &f.spec.kind else {
                    return None;
                };
                let message = message.clone();
                f.hit().then(|| {
                    message.unwrap_or_else(|| "InternalServerError : emulated failure".to_string())
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_fires_once_and_prefix_and_method_match() {
        let f = Faults::default();
        f.add(
            FaultSpec::always(FaultKind::UnableToLockRow)
                .matching(Some("post"), "/a")
                .on_nth(2),
        );
        assert!(f.check("POST", "/a/b").is_empty());
        assert!(f.check("GET", "/a/b").is_empty());
        assert_eq!(f.check("POST", "/a/c"), vec![FaultKind::UnableToLockRow]);
        assert!(f.check("POST", "/a/d").is_empty());
        assert!(f.check("POST", "/b").is_empty());
    }

    #[test]
    fn times_caps_and_bulk_flag_is_separate() {
        let f = Faults::default();
        f.add(FaultSpec::always(FaultKind::DropConnection).times(1));
        f.add(
            FaultSpec::always(FaultKind::BulkJobFailed { message: None }).matching(None, "/jobs"),
        );
        assert_eq!(f.check("GET", "/x"), vec![FaultKind::DropConnection]);
        assert!(f.check("GET", "/x").is_empty());
        assert!(f.bulk_job_failure("PATCH", "/jobs/1").is_some());
        assert!(f.bulk_job_failure("PATCH", "/other").is_none());
        let spec: FaultSpec = serde_json::from_str(
            r#"{"kind":"latency","ms":5,"pathPrefix":"/s","probability":1.0}"#,
        )
        .unwrap();
        assert_eq!(spec.kind, FaultKind::Latency { ms: 5 });
        f.clear();
        assert!(f.list().is_empty());
    }
}
