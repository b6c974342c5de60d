//! What the sink needs from Salesforce, as a trait.

use std::collections::HashMap;
use std::future::Future;

use serde_json::{Map, Value};

use crate::batch::StepKind;

/// One record's result, keyed by the caller's key (the external id), never by position.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub key: String,
    pub result: Result<(String, bool), RecordFailure>,
}

/// Why Salesforce rejected one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl RecordFailure {
    /// The child's parent (by external id) does not exist in Salesforce (yet).
    pub fn is_missing_parent(&self) -> bool {
        self.code == "INVALID_FIELD" && self.message.contains("Foreign key external ID")
    }

    /// Worth retrying as is (lock contention, a busy org); see
    /// [`crate::error_class::record_class`].
    pub fn is_transient(&self) -> bool {
        crate::error_class::record_class(&self.code).is_retryable()
    }

    /// The record is already gone (a delete that is therefore done).
    pub fn is_already_deleted(&self) -> bool {
        matches!(
            self.code.as_str(),
            "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY" | "NOT_FOUND"
        )
    }
}

/// Where a Bulk job stands, as far as reconciliation cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    /// Created, data maybe not uploaded: abort it and run the step again.
    Open,
    /// Uploaded: wait for it and take its results.
    Running,
    /// Finished (complete or failed); results are available.
    Finished,
    /// Aborted or gone: run the step again.
    Gone,
}

/// A failure of a whole call (not of one record).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The destination failed a whole call (after its own retries).
    #[error(transparent)]
    Remote(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    State(#[from] crate::checkpoint::StateError),
    #[error("Bulk job {job_id} for {object}: {message}")]
    Job {
        job_id: String,
        object: String,
        message: String,
    },
    /// This process no longer holds the pipeline's lock (its state-store session died; a
    /// standby may own the pipeline now): it writes nothing more to Salesforce.
    #[error("pipeline {pipeline} is fenced: {reason}; another replica may own it now, so this one writes nothing more to Salesforce and waits for the lock again")]
    Fenced { pipeline: String, reason: String },
    /// The epoch-end check found changes without a recorded outcome; the epoch does not
    /// finish and the checkpoint does not move (a bug in pgforce: please report it).
    #[error("epoch ending at {end_lsn}: {count} change(s) without a recorded outcome, first {object} {key:?} (mapping {mapping}); the checkpoint was not moved")]
    Unsettled {
        end_lsn: crate::lsn::Lsn,
        count: usize,
        mapping: String,
        object: String,
        key: String,
    },
}

/// Salesforce as the sink sees it. Records are REST-shaped JSON objects: a field absent
/// means "leave unchanged", `null` means "set null", a parent lookup by external id is a
/// nested object (`{"Account": {"External_Id__c": "42"}}`).
pub trait Destination: Sync {
    /// Create a Bulk API 2.0 ingest job; returns its id. Nothing is uploaded yet.
    fn create_job(
        &self,
        object: &str,
        kind: StepKind,
        external_id_field: &str,
    ) -> impl Future<Output = Result<String, SinkError>> + Send;
    /// Upload the records (or, for deletes, the Salesforce Ids) and close the job.
    fn upload_and_close(
        &self,
        job_id: &str,
        kind: StepKind,
        external_id_field: &str,
        records: &[serde_json::Map<String, serde_json::Value>],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
    fn job_status(&self, job_id: &str)
        -> impl Future<Output = Result<JobStatus, SinkError>> + Send;
    fn abort_job(&self, job_id: &str) -> impl Future<Output = Result<(), SinkError>> + Send;
    /// Wait for the job to finish and return per-record outcomes keyed by `key_column`
    /// (the external id field for upserts, `Id` for deletes), plus the keys of rows
    /// Salesforce never processed.
    fn job_results(
        &self,
        job_id: &str,
        key_column: &str,
    ) -> impl Future<Output = Result<(Vec<Outcome>, Vec<String>), SinkError>> + Send;
    /// sObject Collections upsert (at most 200 per call; the implementation chunks).
    fn upsert_records(
        &self,
        object: &str,
        external_id_field: &str,
        records: &[serde_json::Map<String, serde_json::Value>],
    ) -> impl Future<Output = Result<Vec<Outcome>, SinkError>> + Send;
    /// sObject Collections delete by Salesforce Id; outcomes keyed by Id.
    fn delete_ids(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Outcome>, SinkError>> + Send;
    /// Salesforce Ids of records by external id (SOQL); missing keys are absent.
    fn find_ids(
        &self,
        object: &str,
        external_id_field: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, String>, SinkError>> + Send;
    /// Every live record whose `field` (any filterable field, not only an External ID)
    /// holds one of `keys`, by batched SOQL with each value written as the field's type
    /// wants: key → Ids (several when records share a value; missing keys are absent).
    /// Text matches case-insensitively, as SOQL compares.
    fn find_matches(
        &self,
        object: &str,
        field: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Vec<String>>, SinkError>> + Send;
    /// Two-way pairs: the live records `ids` of `object` as they are now, by Id, with
    /// `fields`, `Id` and `SystemModstamp` (SOQL by Id, 200 a query); records not found
    /// are absent.
    fn read_records(
        &self,
        object: &str,
        ids: &[String],
        fields: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Map<String, Value>>, SinkError>> + Send;
}

impl crate::error_class::Classify for SinkError {
    fn class(&self) -> crate::error_class::ErrorClass {
        use crate::error_class::ErrorClass;
        match self {
            SinkError::Remote(e) => match e.downcast_ref::<crate::salesforce::SalesforceError>() {
                Some(e) => e.class(),
                None => ErrorClass::Transient,
            },
            SinkError::State(e) => e.class(),
            // A job that ended without results it should have: running the epoch again
            // reconciles it.
            SinkError::Job { .. } => ErrorClass::Transient,
            SinkError::Unsettled { .. } => ErrorClass::Permanent,
            // Restarted after a backoff, the pipeline waits for the lock as a standby (it
            // does not spin); a lost session with no successor takes the lock back.
            SinkError::Fenced { .. } => ErrorClass::Transient,
        }
    }
}
