//! [`SinkState`]: what the sink needs from pgforce's state store, as a trait whose rustdoc
//! is the contract. [`StateStore`] (the Postgres state schema) is the implementation the
//! service runs; `testing::MemoryState` is an in-memory one for unit tests of the epoch
//! protocol above it.
//!
//! The guarantees the flusher relies on, which every implementation must keep:
//! - **The plan comes first.** [`plan_epoch`](SinkState::plan_epoch) records an epoch's
//!   steps before any of their data leaves the process, and
//!   [`set_step`](SinkState::set_step) records a Bulk job's id before its upload, so a
//!   restart finds every job it may have to reconcile.
//! - **Finishing an epoch is atomic.** [`finish_epoch`](SinkState::finish_epoch) drops the
//!   in-flight plan and moves the checkpoint to the epoch's end in one step: after a crash
//!   either both happened or neither did.
//! - **The checkpoint never moves backwards**: finishing an epoch older than the
//!   checkpoint leaves it where it is.
//! - Every write is durable when its future resolves (the flusher moves on at once).

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::flusher::WriteBackTarget;
use crate::bidi::synced::Synced;
use crate::checkpoint::{DeadLetter, ParkedChange, StateError, StateStore, StepPlan, StepState};
use crate::lsn::Lsn;

/// Synced values of paired records, keyed by (record Id, field).
pub type SyncedValues = HashMap<(String, String), Synced>;

/// The sink's view of the state store. See the module docs for the guarantees.
pub trait SinkState: Send + Sync {
    /// The pipeline this state belongs to (for errors and metrics).
    fn pipeline(&self) -> &str;

    /// Record an epoch's plan (every step `Planned`) before any of its data is sent,
    /// replacing an earlier plan for the same end LSN.
    fn plan_epoch(
        &self,
        end_lsn: Lsn,
        steps: &[StepPlan],
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Move a step of the planned epoch forward; a job id given is recorded (and kept by
    /// later calls that give none).
    fn set_step(
        &self,
        end_lsn: Lsn,
        step: i32,
        state: StepState,
        job_id: Option<&str>,
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// The epoch is done: drop its plan (and any older one) and move the checkpoint to
    /// `end_lsn` unless it is further already, atomically.
    fn finish_epoch(&self, end_lsn: Lsn) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Salesforce Ids by external id; keys noted but without a known Id are absent.
    fn lookup_ids(
        &self,
        object: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, String>, StateError>> + Send;

    /// Note keys whose records a coming write may create, before the write (Id unknown),
    /// so a record whose result is lost is still known to exist maybe. Keeps a known Id.
    fn note_keys(
        &self,
        object: &str,
        keys: &[&str],
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Record (external id, Salesforce Id) pairs that landed.
    fn store_ids(
        &self,
        object: &str,
        pairs: &[(String, String)],
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Forget keys whose records are gone.
    fn forget_ids(
        &self,
        object: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Record rejected changes, all or none.
    fn record_dead_letters(
        &self,
        letters: &[DeadLetter],
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// A later change of these keys landed: their open dead letters are resolved.
    fn resolve_dead_letters(
        &self,
        mapping: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<u64, StateError>> + Send;

    /// Changes landed at these LSNs: open dead letters no newer than each are resolved,
    /// a newer one stays open.
    fn resolve_dead_letters_through(
        &self,
        mapping: &str,
        landed: &[(String, Lsn)],
    ) -> impl Future<Output = Result<u64, StateError>> + Send;

    /// Park children whose parent is missing, all or none; the latest change of a
    /// (mapping, key) replaces an earlier one, with every parent it names.
    fn park(&self, changes: &[ParkedChange])
        -> impl Future<Output = Result<(), StateError>> + Send;

    /// Parked changes waiting on any of these parents, oldest first, each with every
    /// parent it waits on. They stay parked until [`unpark_keys`](Self::unpark_keys).
    fn parked_for(
        &self,
        parent_object: &str,
        landed: &[String],
    ) -> impl Future<Output = Result<Vec<ParkedChange>, StateError>> + Send;

    /// Drop the parked entries of these keys (they went through or were superseded).
    fn unpark_keys(
        &self,
        mapping: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<u64, StateError>> + Send;

    /// Whether this process still owns the pipeline (its lock); checked before every
    /// Salesforce write ([`fence`](super::fence)).
    fn holds_pipeline_lock(&self) -> impl Future<Output = Result<bool, StateError>> + Send;

    /// Write a landed record's Salesforce Id into its source row (never echoed back into
    /// the replication stream); the rows updated.
    fn write_back_id(
        &self,
        target: &WriteBackTarget,
        id: &str,
    ) -> impl Future<Output = Result<u64, StateError>> + Send;

    /// Two-way pairs: record what pgforce wrote to these records (Id, record as sent).
    fn remember_outbound(
        &self,
        object: &str,
        written: Vec<(String, Map<String, Value>)>,
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Two-way pairs: the last synced value of each field of these records.
    fn synced_values(
        &self,
        object: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<SyncedValues, StateError>> + Send;

    /// Two-way pairs: the commit time of each row of `table` (`schema.table`) named by
    /// its key columns and their values as text, as the row is now, in order; `None` for
    /// a row not found or when `track_commit_timestamp` is off.
    fn row_commit_times(
        &self,
        table: &str,
        keys: &[Vec<(String, String)>],
    ) -> impl Future<Output = Result<Vec<Option<DateTime<Utc>>>, StateError>> + Send;
}

impl SinkState for StateStore {
    fn pipeline(&self) -> &str {
        StateStore::pipeline(self)
    }
    async fn plan_epoch(&self, end_lsn: Lsn, steps: &[StepPlan]) -> Result<(), StateError> {
        StateStore::plan_epoch(self, end_lsn, steps).await
    }
    async fn set_step(
        &self,
        end_lsn: Lsn,
        step: i32,
        state: StepState,
        job_id: Option<&str>,
    ) -> Result<(), StateError> {
        StateStore::set_step(self, end_lsn, step, state, job_id).await
    }
    async fn finish_epoch(&self, end_lsn: Lsn) -> Result<(), StateError> {
        StateStore::finish_epoch(self, end_lsn).await
    }
    async fn lookup_ids(
        &self,
        object: &str,
        keys: &[String],
    ) -> Result<HashMap<String, String>, StateError> {
        StateStore::lookup_ids(self, object, keys).await
    }
    async fn note_keys(&self, object: &str, keys: &[&str]) -> Result<(), StateError> {
        StateStore::note_keys(self, object, keys).await
    }
    async fn store_ids(&self, object: &str, pairs: &[(String, String)]) -> Result<(), StateError> {
        StateStore::store_ids(self, object, pairs).await
    }
    async fn forget_ids(&self, object: &str, keys: &[String]) -> Result<(), StateError> {
        StateStore::forget_ids(self, object, keys).await
    }
    async fn record_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StateError> {
        StateStore::record_dead_letters(self, letters).await
    }
    async fn resolve_dead_letters(
        &self,
        mapping: &str,
        keys: &[String],
    ) -> Result<u64, StateError> {
        StateStore::resolve_dead_letters(self, mapping, keys).await
    }
    async fn resolve_dead_letters_through(
        &self,
        mapping: &str,
        landed: &[(String, Lsn)],
    ) -> Result<u64, StateError> {
        StateStore::resolve_dead_letters_through(self, mapping, landed).await
    }
    async fn park(&self, changes: &[ParkedChange]) -> Result<(), StateError> {
        StateStore::park(self, changes).await
    }
    async fn parked_for(
        &self,
        parent_object: &str,
        landed: &[String],
    ) -> Result<Vec<ParkedChange>, StateError> {
        StateStore::parked_for(self, parent_object, landed).await
    }
    async fn unpark_keys(&self, mapping: &str, keys: &[String]) -> Result<u64, StateError> {
        StateStore::unpark_keys(self, mapping, keys).await
    }
    async fn holds_pipeline_lock(&self) -> Result<bool, StateError> {
        StateStore::holds_pipeline_lock(self).await
    }
    async fn write_back_id(&self, target: &WriteBackTarget, id: &str) -> Result<u64, StateError> {
        super::writeback::update_source_row(self, &target.table, &target.column, &target.key, id)
            .await
    }
    async fn remember_outbound(
        &self,
        object: &str,
        written: Vec<(String, Map<String, Value>)>,
    ) -> Result<(), StateError> {
        let (ids, records): (Vec<String>, Vec<_>) = written.into_iter().unzip();
        let written = ids.iter().map(String::as_str).zip(records);
        crate::bidi::synced::remember_outbound(self, object, written).await
    }
    async fn synced_values(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<SyncedValues, StateError> {
        crate::bidi::synced::load(self, object, ids).await
    }
    async fn row_commit_times(
        &self,
        table: &str,
        keys: &[Vec<(String, String)>],
    ) -> Result<Vec<Option<DateTime<Utc>>>, StateError> {
        crate::bidi::guard::row_commit_times(self, table, keys).await
    }
}
