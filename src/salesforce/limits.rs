//! API usage and the limits governor.
//!
//! Every Salesforce response carries `Sforce-Limit-Info: api-usage=N/M` (optionally with
//! `per-app-api-usage=N/M(appName=…)`); the client records it in [`ApiUsage`]. The
//! [`GovernorConfig`] turns usage into a decision: run normally, slow down above a soft
//! threshold, or pause once only the configured reserve of the daily allocation is left, so
//! other integrations and people keep working. `REQUEST_LIMIT_EXCEEDED` (HTTP 403) pauses for a
//! long, configurable backoff. [`GovernorState`] is what health and status pages show.
//!
//! The decision logic ([`GovernorConfig::assess`]) is pure; [`Governor`] adds the state and
//! pause bookkeeping. Sleeping and probing `/limits` is done by the client.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::time::Instant;

use super::metrics;

/// The org's (and optionally the connected app's) API usage, as last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUsage {
    /// Calls used in the rolling 24-hour window.
    pub used: u64,
    /// The org's allocation for the window.
    pub max: u64,
    /// The connected app's own allocation, when the org set one.
    pub per_app: Option<AppApiUsage>,
    /// When this was observed.
    pub updated_at: DateTime<Utc>,
}

/// A connected app's share of the API allocation (`per-app-api-usage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppApiUsage {
    /// Calls used by the app.
    pub used: u64,
    /// The app's allocation.
    pub max: u64,
    /// The connected app's name.
    pub app_name: String,
}

impl ApiUsage {
    /// Parses a `Sforce-Limit-Info` header value such as
    /// `api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)`.
    /// Returns `None` when there is no `api-usage` entry or it is malformed.
    pub fn parse_header(value: &str, now: DateTime<Utc>) -> Option<ApiUsage> {
        let mut org = None;
        let mut per_app = None;
        for part in value.split([';', ',']).map(str::trim) {
            if let Some(rest) = part.strip_prefix("per-app-api-usage=") {
                per_app = parse_app_usage(rest);
            } else if let Some(rest) = part.strip_prefix("api-usage=") {
                org = parse_ratio(rest);
            }
        }
        let (used, max) = org?;
        Some(ApiUsage {
            used,
            max,
            per_app,
            updated_at: now,
        })
    }

    /// Calls left in the org's window.
    pub fn remaining(&self) -> u64 {
        self.max.saturating_sub(self.used)
    }

    /// The smallest fraction of allocation left, over the org and the app allocation.
    pub fn remaining_fraction(&self) -> f64 {
        let org = fraction_left(self.used, self.max);
        match &self.per_app {
            Some(app) => org.min(fraction_left(app.used, app.max)),
            None => org,
        }
    }
}

/// `used/max` → fraction left. A zero max means "no allocation reported" (Salesforce shows
/// `0` for apps without their own share), not "nothing left".
fn fraction_left(used: u64, max: u64) -> f64 {
    if max == 0 {
        return 1.0;
    }
    (max.saturating_sub(used) as f64) / (max as f64)
}

/// Parses `N/M`.
fn parse_ratio(s: &str) -> Option<(u64, u64)> {
    let (used, max) = s.trim().split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

/// Parses `N/M(appName=name)`.
fn parse_app_usage(s: &str) -> Option<AppApiUsage> {
    let (ratio, rest) = match s.split_once('(') {
        Some((ratio, rest)) => (ratio, rest),
        None => (s, ""),
    };
    let (used, max) = parse_ratio(ratio)?;
    let app_name = rest
        .trim_end_matches(')')
        .strip_prefix("appName=")
        .unwrap_or_default()
        .to_string();
    Some(AppApiUsage {
        used,
        max,
        app_name,
    })
}

/// How the governor protects the org's API allocation.
#[derive(Debug, Clone)]
pub struct GovernorConfig {
    /// Fraction of the allocation pgforce leaves for others: at or below this much left,
    /// calls pause. Default 0.10 (keep 10%).
    pub reserve_fraction: f64,
    /// Below this fraction left, calls are slowed (delay grows linearly toward
    /// `max_slow_delay` at the reserve). Default 0.20.
    pub slow_fraction: f64,
    /// The longest delay added per call when slowed. Default 2 s.
    pub max_slow_delay: Duration,
    /// While paused for the reserve, how often to re-check `/limits`. Default 5 min.
    pub reserve_recheck: Duration,
    /// How long to pause after `REQUEST_LIMIT_EXCEEDED`. Default 15 min.
    pub limit_exceeded_backoff: Duration,
    /// The longest one call waits for a pause to lift before failing with
    /// `SalesforceError::LimitExceeded`. `None` (default) waits until there is room.
    pub max_pause_wait: Option<Duration>,
}

impl Default for GovernorConfig {
    fn default() -> Self {
        Self {
            reserve_fraction: 0.10,
            slow_fraction: 0.20,
            max_slow_delay: Duration::from_secs(2),
            reserve_recheck: Duration::from_secs(300),
            limit_exceeded_backoff: Duration::from_secs(900),
            max_pause_wait: None,
        }
    }
}

/// What the governor decides for a given usage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Assessment {
    /// Plenty left.
    Normal,
    /// Getting close: wait this long before each call.
    Slow(Duration),
    /// Only the reserve is left: stop.
    Reserve,
}

impl GovernorConfig {
    /// Decides from usage alone. Pure; the thresholds are fractions of allocation left.
    pub fn assess(&self, usage: &ApiUsage) -> Assessment {
        let left = usage.remaining_fraction();
        if left <= self.reserve_fraction {
            return Assessment::Reserve;
        }
        if left >= self.slow_fraction || self.slow_fraction <= self.reserve_fraction {
            return Assessment::Normal;
        }
        let depth = (self.slow_fraction - left) / (self.slow_fraction - self.reserve_fraction);
        if !depth.is_finite() {
            return Assessment::Normal; // NaN thresholds in the config: do not slow
        }
        Assessment::Slow(self.max_slow_delay.mul_f64(depth.clamp(0.0, 1.0)))
    }
}

/// Why the governor paused calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseReason {
    /// Usage reached the configured reserve.
    Reserve {
        /// Calls used.
        used: u64,
        /// Allocation.
        max: u64,
    },
    /// Salesforce answered `REQUEST_LIMIT_EXCEEDED`.
    RequestLimitExceeded {
        /// Salesforce's message, e.g. `TotalRequests Limit exceeded.`
        message: String,
    },
}

impl fmt::Display for PauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reserve { used, max } => write!(
                f,
                "API usage {used}/{max} reached pgforce's reserve; keeping the rest for other users"
            ),
            Self::RequestLimitExceeded { message } => {
                write!(
                    f,
                    "Salesforce refused calls: REQUEST_LIMIT_EXCEEDED ({message})"
                )
            }
        }
    }
}

/// The governor's state, for health and status endpoints.
#[derive(Debug, Clone, PartialEq)]
pub enum GovernorState {
    /// Calls go out without delay.
    Normal,
    /// Calls are delayed to spread the remaining allocation.
    Slowed {
        /// Delay added per call.
        delay: Duration,
        /// Calls used.
        used: u64,
        /// Allocation.
        max: u64,
    },
    /// Calls wait until `until` (then usage is re-checked).
    Paused {
        /// When calls may resume (or usage is re-checked).
        until: DateTime<Utc>,
        /// Why.
        reason: PauseReason,
    },
}

/// What a caller about to send a request must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Permit {
    /// Send now.
    Go,
    /// Sleep this long, then send.
    Delay(Duration),
    /// Paused until this instant.
    Wait(Instant, DateTime<Utc>, PauseReason),
    /// The pause ended: re-check `/limits`, then call [`Governor::finish_probe`].
    Probe,
}

/// An active pause.
#[derive(Debug, Clone)]
struct Pause {
    /// Monotonic deadline (tokio time, so tests can pause the clock).
    until: Instant,
    /// The same deadline as wall-clock time, for status.
    until_utc: DateTime<Utc>,
    /// Why.
    reason: PauseReason,
}

/// Shared governor state: last usage and the current pause.
#[derive(Debug)]
pub(crate) struct Governor {
    /// Thresholds.
    config: GovernorConfig,
    /// The `pipeline` label of the budget gauges.
    pipeline: String,
    /// Mutable state; never held across an await.
    inner: Mutex<Inner>,
}

/// The governor's mutable part.
#[derive(Debug, Default)]
struct Inner {
    /// Last usage seen.
    usage: Option<ApiUsage>,
    /// Current pause, if any.
    pause: Option<Pause>,
}

impl Governor {
    /// A governor with no usage seen yet.
    pub(crate) fn new(config: GovernorConfig, pipeline: String) -> Self {
        Self {
            config,
            pipeline,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &GovernorConfig {
        &self.config
    }

    /// Last usage seen.
    pub(crate) fn usage(&self) -> Option<ApiUsage> {
        self.inner.lock().usage.clone()
    }

    /// Records usage from a response header or `/limits`, pausing at the reserve and lifting a
    /// reserve pause once there is room again.
    pub(crate) fn observe(&self, usage: ApiUsage) {
        metrics::record_usage(&self.pipeline, usage.remaining(), usage.max);
        let assessment = self.config.assess(&usage);
        let mut inner = self.inner.lock();
        match (&assessment, &inner.pause) {
            (Assessment::Reserve, None) => {
                let reason = PauseReason::Reserve {
                    used: usage.used,
                    max: usage.max,
                };
                tracing::warn!(
                    used = usage.used,
                    max = usage.max,
                    "salesforce api reserve reached, pausing calls"
                );
                inner.pause = Some(new_pause(self.config.reserve_recheck, reason));
            }
            (Assessment::Normal | Assessment::Slow(_), Some(p))
                if matches!(p.reason, PauseReason::Reserve { .. }) =>
            {
                tracing::info!(
                    used = usage.used,
                    max = usage.max,
                    "salesforce api usage has room again, resuming"
                );
                inner.pause = None;
            }
            _ => {}
        }
        metrics::record_paused(&self.pipeline, inner.pause.is_some());
        inner.usage = Some(usage);
    }

    /// Pauses after `REQUEST_LIMIT_EXCEEDED`.
    pub(crate) fn limit_exceeded(&self, message: &str) -> (DateTime<Utc>, PauseReason) {
        let reason = PauseReason::RequestLimitExceeded {
            message: message.to_string(),
        };
        let pause = new_pause(self.config.limit_exceeded_backoff, reason.clone());
        let until = pause.until_utc;
        tracing::warn!(%until, "salesforce REQUEST_LIMIT_EXCEEDED, pausing calls");
        self.inner.lock().pause = Some(pause);
        metrics::record_paused(&self.pipeline, true);
        (until, reason)
    }

    /// Decides what a request about to be sent must do.
    pub(crate) fn permit(&self) -> Permit {
        let inner = self.inner.lock();
        if let Some(p) = &inner.pause {
            return if Instant::now() < p.until {
                Permit::Wait(p.until, p.until_utc, p.reason.clone())
            } else {
                Permit::Probe
            };
        }
        match inner.usage.as_ref().map(|u| self.config.assess(u)) {
            Some(Assessment::Slow(d)) if !d.is_zero() => Permit::Delay(d),
            _ => Permit::Go,
        }
    }

    /// Ends an expired pause after a `/limits` probe. With fresh usage the reserve rule decides
    /// again (and may re-pause); without it (the probe failed) calls resume and the next
    /// response's header decides.
    pub(crate) fn finish_probe(&self, usage: Option<ApiUsage>) {
        {
            let mut inner = self.inner.lock();
            match &inner.pause {
                Some(p) if Instant::now() >= p.until => inner.pause = None,
                _ => return,
            }
        }
        metrics::record_paused(&self.pipeline, false);
        if let Some(usage) = usage {
            self.observe(usage);
        }
    }

    /// The current state, for status pages.
    pub(crate) fn state(&self) -> GovernorState {
        let inner = self.inner.lock();
        if let Some(p) = &inner.pause {
            return GovernorState::Paused {
                until: p.until_utc,
                reason: p.reason.clone(),
            };
        }
        match &inner.usage {
            Some(u) => match self.config.assess(u) {
                Assessment::Slow(delay) => GovernorState::Slowed {
                    delay,
                    used: u.used,
                    max: u.max,
                },
                _ => GovernorState::Normal,
            },
            None => GovernorState::Normal,
        }
    }
}

/// A pause lasting `d` from now (capped at about a century, so huge configs cannot overflow).
fn new_pause(d: Duration, reason: PauseReason) -> Pause {
    let d = d.min(Duration::from_secs(100 * 365 * 24 * 3600));
    let now = Utc::now();
    Pause {
        until: Instant::now() + d,
        until_utc: chrono::Duration::from_std(d)
            .ok()
            .and_then(|cd| now.checked_add_signed(cd))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(used: u64, max: u64) -> ApiUsage {
        ApiUsage {
            used,
            max,
            per_app: None,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn parses_plain_header() {
        let u = ApiUsage::parse_header("api-usage=18/5000", Utc::now()).unwrap();
        assert_eq!((u.used, u.max, u.remaining()), (18, 5000, 4982));
        assert!(u.per_app.is_none());
    }

    #[test]
    fn parses_per_app_header() {
        let u = ApiUsage::parse_header(
            "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)",
            Utc::now(),
        )
        .unwrap();
        assert_eq!((u.used, u.max), (25, 5000));
        let app = u.per_app.unwrap();
        assert_eq!((app.used, app.max), (17, 250));
        assert_eq!(app.app_name, "sample-connected-app");
    }

    #[test]
    fn rejects_garbage() {
        assert!(ApiUsage::parse_header("", Utc::now()).is_none());
        assert!(ApiUsage::parse_header("api-usage=x/y", Utc::now()).is_none());
        assert!(ApiUsage::parse_header("per-app-api-usage=1/2", Utc::now()).is_none());
    }

    #[test]
    fn thresholds() {
        let cfg = GovernorConfig::default();
        assert_eq!(cfg.assess(&usage(100, 1000)), Assessment::Normal);
        assert_eq!(cfg.assess(&usage(800, 1000)), Assessment::Normal);
        match cfg.assess(&usage(850, 1000)) {
            Assessment::Slow(d) => {
                assert!(d > Duration::from_millis(900) && d < Duration::from_millis(1100))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(cfg.assess(&usage(900, 1000)), Assessment::Reserve);
        assert_eq!(cfg.assess(&usage(1200, 1000)), Assessment::Reserve);
        assert_eq!(
            cfg.assess(&usage(0, 0)),
            Assessment::Normal,
            "no allocation reported"
        );
    }

    #[test]
    fn per_app_allocation_counts() {
        let cfg = GovernorConfig::default();
        let mut u = usage(10, 1000);
        u.per_app = Some(AppApiUsage {
            used: 240,
            max: 250,
            app_name: "pgforce".into(),
        });
        assert_eq!(cfg.assess(&u), Assessment::Reserve);
    }

    /// Defaults with pauses short enough to wait out in a test.
    fn quick() -> GovernorConfig {
        GovernorConfig {
            reserve_recheck: Duration::from_millis(20),
            limit_exceeded_backoff: Duration::from_millis(20),
            ..GovernorConfig::default()
        }
    }

    #[tokio::test]
    async fn reserve_pauses_and_room_resumes() {
        let g = Governor::new(quick(), String::new());
        g.observe(usage(100, 1000));
        assert_eq!(g.state(), GovernorState::Normal);
        assert_eq!(g.permit(), Permit::Go);
        g.observe(usage(850, 1000));
        assert!(matches!(g.state(), GovernorState::Slowed { .. }));
        assert!(matches!(g.permit(), Permit::Delay(_)));
        g.observe(usage(950, 1000));
        assert!(matches!(
            g.state(),
            GovernorState::Paused {
                reason: PauseReason::Reserve {
                    used: 950,
                    max: 1000
                },
                ..
            }
        ));
        assert!(matches!(g.permit(), Permit::Wait(..)));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(g.permit(), Permit::Probe);
        g.finish_probe(Some(usage(950, 1000)));
        assert!(
            matches!(g.permit(), Permit::Wait(..)),
            "still at the reserve"
        );
        g.observe(usage(10, 1000));
        assert_eq!(
            g.state(),
            GovernorState::Normal,
            "room again lifts a reserve pause"
        );
    }

    #[tokio::test]
    async fn limit_exceeded_pause_outlives_headers() {
        let g = Governor::new(quick(), String::new());
        g.limit_exceeded("TotalRequests Limit exceeded.");
        g.observe(usage(10, 1000));
        assert!(matches!(g.state(), GovernorState::Paused { .. }));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(g.permit(), Permit::Probe);
        g.finish_probe(None);
        assert_eq!(g.permit(), Permit::Go);
    }
}
