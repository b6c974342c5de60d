//! What each pipeline tells the ops server: a [`PipelineStatus`] snapshot per pipeline, kept
//! in the shared [`Health`] registry, and the readiness verdict derived from it.
//!
//! Pipelines publish; the HTTP handlers only read. Publishing replaces the whole snapshot
//! (or edits it in place through [`Health::update`]), so a reader never sees half an update.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// The longest `last_error` kept, in bytes; longer text is cut at a character boundary.
pub const MAX_ERROR_LEN: usize = 1024;

/// Where a pipeline is in its life. Serialized in `snake_case` (`"streaming"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineState {
    /// Connecting, validating the config, creating the slot; not yet moving data.
    Starting,
    /// Healthy, waiting on the pipeline's Postgres advisory lock while another replica runs it.
    Standby,
    /// Copying the existing rows (initial snapshot) before streaming.
    Backfilling,
    /// Following the replication stream.
    Streaming,
    /// Flushing is held, by the API governor (see `governor_paused`) or by an operator.
    Paused,
    /// Draining: finishing or recording the in-flight Bulk job and writing the last checkpoint.
    Stopping,
    /// Stopped on an error that needs an operator; see `last_error`.
    Failed,
}

/// One pipeline's status, as published to the registry and served by `/status`.
///
/// Every field is cheap to fill from state the pipeline already holds. Counters here are
/// point-in-time conveniences for `pgforce status`; Prometheus metrics stay the source of truth
/// for rates and history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineStatus {
    /// The pipeline name from the config (also the `pipeline` metric label).
    pub name: String,
    /// Where the pipeline is in its life.
    pub state: PipelineState,
    /// The replication (or, in standby, the lock) connection to Postgres is up.
    pub postgres_connected: bool,
    /// The last Salesforce call authenticated and got an answer.
    pub salesforce_connected: bool,
    /// This process is streaming from the pipeline's replication slot.
    pub slot_active: bool,
    /// The API governor holds flushing to keep the daily API reserve.
    pub governor_paused: bool,
    /// Why the governor holds flushing, in words; `None` when not paused.
    pub governor_reason: Option<String>,
    /// Last LSN confirmed to the slot, in Postgres notation (`16/B374D848`).
    pub confirmed_lsn: Option<String>,
    /// Server WAL position minus the confirmed flush LSN.
    pub lag_bytes: u64,
    /// Bulk API 2.0 jobs recorded and not yet reconciled.
    pub in_flight_jobs: u64,
    /// Row changes applied per second, averaged over the pipeline's own short window. A
    /// non-finite value is published as 0 (JSON has no NaN).
    pub changes_per_sec: f64,
    /// Rows currently in the dead-letter table for this pipeline.
    pub dead_letters: u64,
    /// Daily API requests remaining, from the last `Sforce-Limit-Info` seen.
    pub api_remaining: Option<u64>,
    /// Daily API request allocation, from the last `Sforce-Limit-Info` seen.
    pub api_max: Option<u64>,
    /// The oldest open dead letter (its reason, never its row values or message); `None` when
    /// there is none or it was not read yet.
    #[serde(default)]
    pub oldest_dead_letter: Option<StuckDeadLetter>,
    /// Child changes parked until their parent lands in Salesforce.
    #[serde(default)]
    pub parked: u64,
    /// The parked changes grouped by why they wait, largest group first.
    #[serde(default)]
    pub parked_reasons: Vec<ParkedReason>,
    /// The last error, as one line of **sanitized** text. Callers must strip secrets (passwords,
    /// tokens, connection strings, keys) and row values before publishing: this field is served
    /// to anyone who can reach the ops port. Cut to [`MAX_ERROR_LEN`] bytes when published.
    pub last_error: Option<String>,
    /// When this snapshot was published.
    pub updated_at: DateTime<Utc>,
    /// Salesforce → Postgres entries, when this status is a pipeline's inbound side
    /// (published as `<pipeline>/inbound`); `None` for the replication side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<Vec<InboundEntryStatus>>,
    /// Query-driven jobs, when this status is a pipeline's jobs side (published as
    /// `<pipeline>/jobs`); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Vec<JobEntryStatus>>,
}

/// One query-driven job in `/status`: its last run and its next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEntryStatus {
    /// The job name from the config.
    pub job: String,
    /// `update`, `membership` or `enrich`.
    pub target: String,
    /// A run of this job is under way.
    pub running: bool,
    /// When the last run in this process started.
    pub last_run_at: Option<DateTime<Utc>>,
    /// How the last run ended: `done`, `done_with_errors` or the error kind.
    pub last_result: Option<String>,
    /// How long the last run took, in seconds.
    pub last_duration_seconds: Option<f64>,
    /// Records the last run sent (acknowledged by Salesforce).
    pub last_sent: u64,
    /// Rows the last run could not send.
    pub last_errors: u64,
    /// When the job runs next; `None` for event triggers (it runs when the event comes).
    pub next_run_at: Option<DateTime<Utc>>,
    /// The last failed run's error, sanitized (no row values, no secrets).
    pub last_error: Option<String>,
}

/// One Salesforce → Postgres entry in `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEntryStatus {
    /// The sObject.
    pub object: String,
    /// The target table.
    pub table: String,
    /// `mirror` or `audit`.
    pub mode: String,
    /// `cdc` or `poll`.
    pub source: String,
    /// Where the entry is in its life.
    pub state: InboundState,
    /// The stored position (hex replay id, or `<SystemModstamp>/<Id>`).
    pub position: Option<String>,
    /// When the position was last stored.
    pub position_stored_at: Option<DateTime<Utc>>,
    /// Now minus the commit time of the last applied change, in seconds.
    pub lag_seconds: Option<f64>,
    /// Events applied since start.
    pub events_applied: u64,
    /// Records loaded by the initial load since start.
    pub records_loaded: u64,
    /// Resyncs since start (position lost, overflow).
    pub resyncs: u64,
    /// The last error of this entry, sanitized.
    pub last_error: Option<String>,
}

/// Where an inbound entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundState {
    Starting,
    Loading,
    Streaming,
    /// The source lost its connection (a dropped Pub/Sub stream) and is reconnecting;
    /// not ready until it delivers again.
    Reconnecting,
    Resyncing,
    Failed,
}

impl PipelineStatus {
    /// A fresh status for a pipeline that is starting: nothing connected, no data yet.
    pub fn starting(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state: PipelineState::Starting,
            postgres_connected: false,
            salesforce_connected: false,
            slot_active: false,
            governor_paused: false,
            governor_reason: None,
            confirmed_lsn: None,
            lag_bytes: 0,
            in_flight_jobs: 0,
            changes_per_sec: 0.0,
            dead_letters: 0,
            api_remaining: None,
            api_max: None,
            oldest_dead_letter: None,
            parked: 0,
            parked_reasons: Vec::new(),
            last_error: None,
            updated_at: Utc::now(),
            inbound: None,
            jobs: None,
        }
    }

    /// Make a snapshot safe to serve: stamp `updated_at`, zero a non-finite rate, bound
    /// `last_error`.
    fn normalize(&mut self) {
        self.updated_at = Utc::now();
        if !self.changes_per_sec.is_finite() {
            self.changes_per_sec = 0.0;
        }
        if let Some(error) = self.last_error.as_mut() {
            truncate_at_char(error, MAX_ERROR_LEN);
        }
    }

    /// Why this pipeline is not ready; empty when it is.
    ///
    /// A standby (waiting on the advisory lock) is ready when its Postgres connection is up:
    /// it is healthy and able to take over, and Kubernetes rollouts and disruption budgets need
    /// it counted as available. An active pipeline is ready when it is backfilling or streaming,
    /// connected to Postgres and Salesforce, holds an active slot and is not paused.
    pub fn not_ready_reasons(&self) -> Vec<NotReadyReason> {
        let mut reasons = Vec::new();
        if let Some(reason) = NotReadyReason::from_state(self.state) {
            reasons.push(reason);
        }
        if !self.postgres_connected {
            reasons.push(NotReadyReason::PostgresDisconnected);
        }
        if self.state == PipelineState::Standby {
            return reasons;
        }
        if !self.salesforce_connected {
            reasons.push(NotReadyReason::SalesforceDisconnected);
        }
        // A job's failed run is an alert (metrics, `last_error`), not a reason to take the
        // process out of service: the next trigger retries it.
        if self.jobs.is_some() {
            return reasons;
        }
        if let Some(entries) = &self.inbound {
            if entries
                .iter()
                .any(|e| !matches!(e.state, InboundState::Loading | InboundState::Streaming))
            {
                reasons.push(NotReadyReason::InboundNotStreaming);
            }
            return reasons;
        }
        if !self.slot_active {
            reasons.push(NotReadyReason::SlotInactive);
        }
        if self.governor_paused {
            reasons.push(NotReadyReason::GovernorPaused);
        }
        reasons
    }
}

/// The oldest open dead letter as `/status` serves it: where and why, without the Salesforce
/// message (it may quote row values) or the row's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StuckDeadLetter {
    /// The mapping whose row Salesforce rejected.
    pub mapping: String,
    /// Its sObject.
    pub object: String,
    /// The Salesforce status code: the reason (`REQUIRED_FIELD_MISSING`, …).
    pub error_code: String,
    /// The fields Salesforce named.
    pub fields: Vec<String>,
    /// How often the row was tried.
    pub attempts: i32,
    /// When Salesforce first rejected it.
    pub first_seen: DateTime<Utc>,
}

/// Parked changes of one mapping waiting for the same parent object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedReason {
    /// The child mapping.
    pub mapping: String,
    /// The child sObject.
    pub object: String,
    /// The parent sObject they wait for (the reason they are parked).
    pub waiting_for: String,
    /// How many wait.
    pub count: u64,
    /// How many of them wait for a parent that is itself dead-lettered (fix that first).
    #[serde(default)]
    pub parent_dead_lettered: u64,
    /// When the longest-waiting of them was parked.
    pub oldest: DateTime<Utc>,
}

impl PipelineStatus {
    /// Take over what the state store says is stuck.
    pub fn set_stuck(&mut self, stuck: &crate::checkpoint::Stuck) {
        self.oldest_dead_letter = stuck.oldest_dead_letter.as_ref().map(|d| StuckDeadLetter {
            mapping: d.mapping.clone(),
            object: d.object.clone(),
            error_code: d.error_code.clone(),
            fields: d.fields.clone(),
            attempts: d.attempts,
            first_seen: d.first_seen,
        });
        self.parked = stuck.parked_total().max(0) as u64;
        self.parked_reasons = stuck
            .parked
            .iter()
            .map(|g| ParkedReason {
                mapping: g.mapping.clone(),
                object: g.object.clone(),
                waiting_for: g.waiting_for.clone(),
                count: g.count.max(0) as u64,
                parent_dead_lettered: g.parent_dead_lettered.max(0) as u64,
                oldest: g.oldest,
            })
            .collect();
    }
}

/// Cut `text` to at most `max` bytes without splitting a character.
fn truncate_at_char(text: &mut String, max: usize) {
    if text.len() > max {
        let cut = (0..=max)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
    }
}

/// One reason a pipeline is not ready, as served by `/readyz` (`snake_case`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotReadyReason {
    /// The state is `starting`.
    Starting,
    /// The state is `paused` (held by the governor or an operator).
    Paused,
    /// The state is `stopping`.
    Stopping,
    /// The state is `failed`.
    Failed,
    /// No connection to Postgres.
    PostgresDisconnected,
    /// No working connection to Salesforce.
    SalesforceDisconnected,
    /// This process is not streaming from the slot.
    SlotInactive,
    /// The API governor holds flushing.
    GovernorPaused,
    /// An inbound entry is starting, resyncing or failed.
    InboundNotStreaming,
}

impl NotReadyReason {
    /// The reason a state alone implies, if any.
    fn from_state(state: PipelineState) -> Option<Self> {
        match state {
            PipelineState::Starting => Some(Self::Starting),
            PipelineState::Paused => Some(Self::Paused),
            PipelineState::Stopping => Some(Self::Stopping),
            PipelineState::Failed => Some(Self::Failed),
            PipelineState::Standby | PipelineState::Backfilling | PipelineState::Streaming => None,
        }
    }
}

/// The `/readyz` verdict for one pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineReadiness {
    /// The pipeline name.
    pub name: String,
    /// Its state when checked.
    pub state: PipelineState,
    /// True when `reasons` is empty.
    pub ready: bool,
    /// Why it is not ready; empty when ready.
    pub reasons: Vec<NotReadyReason>,
}

/// The `/readyz` body: ready only when at least one pipeline is registered and all are ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    /// The overall verdict (HTTP 200 when true, 503 when false).
    pub ready: bool,
    /// One entry per registered pipeline, by name.
    pub pipelines: Vec<PipelineReadiness>,
}

/// The `/status` body, also what `pgforce status` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The pgforce version serving this report.
    pub version: String,
    /// One snapshot per registered pipeline, by name.
    pub pipelines: Vec<PipelineStatus>,
}

/// The shared registry of pipeline statuses: a cheap clonable handle.
///
/// A `parking_lot::RwLock` around a `BTreeMap` (sorted output, no poisoning); the lock is held
/// only to copy or replace a snapshot, never across an `.await`.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pipelines: Arc<RwLock<BTreeMap<String, PipelineStatus>>>,
}

impl Health {
    /// An empty registry. `/readyz` answers 503 until a pipeline registers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publish (insert or replace) a pipeline's snapshot, stamping `updated_at` with now.
    pub fn publish(&self, mut status: PipelineStatus) {
        status.normalize();
        self.pipelines.write().insert(status.name.clone(), status);
    }

    /// Edit a pipeline's snapshot in place, registering it as `starting` first if unknown;
    /// stamps `updated_at`. Keep `edit` short: it runs under the write lock.
    pub fn update(&self, name: &str, edit: impl FnOnce(&mut PipelineStatus)) {
        let mut pipelines = self.pipelines.write();
        let status = pipelines
            .entry(name.to_owned())
            .or_insert_with(|| PipelineStatus::starting(name));
        edit(status);
        status.normalize();
    }

    /// Forget a pipeline (e.g. removed from the config on reload).
    pub fn remove(&self, name: &str) -> Option<PipelineStatus> {
        self.pipelines.write().remove(name)
    }

    /// One pipeline's snapshot, if registered.
    pub fn get(&self, name: &str) -> Option<PipelineStatus> {
        self.pipelines.read().get(name).cloned()
    }

    /// Every pipeline's snapshot, sorted by name.
    pub fn snapshot(&self) -> Vec<PipelineStatus> {
        self.pipelines.read().values().cloned().collect()
    }

    /// The `/status` report.
    pub fn report(&self) -> StatusReport {
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pipelines: self.snapshot(),
        }
    }

    /// The `/readyz` verdict over every registered pipeline.
    pub fn readiness(&self) -> Readiness {
        let pipelines: Vec<PipelineReadiness> = self
            .snapshot()
            .into_iter()
            .map(|status| {
                let reasons = status.not_ready_reasons();
                PipelineReadiness {
                    ready: reasons.is_empty(),
                    name: status.name,
                    state: status.state,
                    reasons,
                }
            })
            .collect();
        let ready = !pipelines.is_empty() && pipelines.iter().all(|p| p.ready);
        Readiness { ready, pipelines }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streaming(name: &str) -> PipelineStatus {
        PipelineStatus {
            state: PipelineState::Streaming,
            postgres_connected: true,
            salesforce_connected: true,
            slot_active: true,
            ..PipelineStatus::starting(name)
        }
    }

    #[test]
    fn empty_registry_is_not_ready() {
        let readiness = Health::new().readiness();
        assert!(!readiness.ready);
        assert!(readiness.pipelines.is_empty());
    }

    #[test]
    fn starting_pipeline_lists_every_reason() {
        let reasons = PipelineStatus::starting("a").not_ready_reasons();
        assert_eq!(
            reasons,
            [
                NotReadyReason::Starting,
                NotReadyReason::PostgresDisconnected,
                NotReadyReason::SalesforceDisconnected,
                NotReadyReason::SlotInactive,
            ]
        );
    }

    #[test]
    fn streaming_pipeline_is_ready_until_governor_pauses() {
        let health = Health::new();
        health.publish(streaming("a"));
        assert!(health.readiness().ready);
        health.update("a", |s| {
            s.state = PipelineState::Paused;
            s.governor_paused = true;
        });
        let readiness = health.readiness();
        assert!(!readiness.ready);
        assert_eq!(
            readiness.pipelines[0].reasons,
            [NotReadyReason::Paused, NotReadyReason::GovernorPaused]
        );
    }

    #[test]
    fn connected_standby_is_ready() {
        let mut standby = PipelineStatus::starting("a");
        standby.state = PipelineState::Standby;
        assert_eq!(
            standby.not_ready_reasons(),
            [NotReadyReason::PostgresDisconnected]
        );
        standby.postgres_connected = true;
        assert!(standby.not_ready_reasons().is_empty());
    }

    #[test]
    fn one_unready_pipeline_makes_the_process_unready() {
        let health = Health::new();
        health.publish(streaming("a"));
        health.publish(PipelineStatus::starting("b"));
        let readiness = health.readiness();
        assert!(!readiness.ready);
        assert!(readiness.pipelines[0].ready);
        assert!(!readiness.pipelines[1].ready);
    }

    #[test]
    fn published_snapshots_are_safe_to_serve() {
        let health = Health::new();
        health.update("a", |s| {
            s.changes_per_sec = f64::NAN;
            s.last_error = Some("é".repeat(MAX_ERROR_LEN));
        });
        let status = health.get("a").unwrap();
        assert_eq!(status.changes_per_sec, 0.0);
        let error = status.last_error.unwrap();
        assert!(error.len() <= MAX_ERROR_LEN && error.starts_with('é'));
        let json = serde_json::to_string(&health.report()).unwrap();
        let back: StatusReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back.pipelines, health.snapshot());
    }

    #[test]
    fn state_serializes_snake_case() {
        let json = serde_json::to_string(&PipelineState::Backfilling).unwrap();
        assert_eq!(json, "\"backfilling\"");
    }
}
