//! The Salesforce client: OAuth, REST, sObject Collections, Bulk API 2.0, limits governor and retries.
//!
//! # Layout
//! - [`auth`] — credentials and the OAuth token request per grant.
//! - [`client`] — [`SalesforceClient`], the HTTP core (token refresh, retries, limits).
//! - [`limits`] — `Sforce-Limit-Info` usage and the governor that slows or pauses calls.
//! - [`retry`] — which failures are retried and the backoff.
//! - [`rest`] — describe, limits, SOQL query, single-record CRUD and upsert.
//! - [`collections`] — sObject Collections upsert/delete, 200 records per call.
//! - [`bulk`], [`bulk_csv`], [`bulk_query`] — Bulk API 2.0 ingest, its CSV, and query.
//! - [`replication`] — getDeleted.
//! - [`error`] — [`SalesforceError`].
//! - [`metrics`] — metric names.
//!
//! The wire contract is `shared/salesforce-api.md`; Salesforce's documentation decides where
//! they differ.

pub mod auth;
pub mod bulk;
pub mod bulk_csv;
pub mod bulk_query;
pub mod client;
pub mod collections;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod replication;
pub mod rest;
pub mod retry;

pub use auth::{Credentials, LOGIN_URL, TEST_LOGIN_URL};
pub use bulk::{
    IngestJobRequest, IngestOperation, JobInfo, JobState, PollPolicy, MAX_UPLOAD_BYTES,
};
pub use bulk_csv::{
    index_by, BulkRowError, ColumnDelimiter, CsvRow, FailedRecord, LineEnding, ResultColumns,
    SuccessfulRecord, UnprocessedRecord,
};
pub use bulk_query::{QueryOperation, QueryResultsPage};
pub use client::{ClientConfig, SalesforceClient, SessionCredentials, DEFAULT_API_VERSION};
pub use collections::{RecordError, RecordResult, COLLECTION_LIMIT};
pub use error::{Result, SalesforceError};
pub use limits::{ApiUsage, AppApiUsage, GovernorConfig, GovernorState, PauseReason};
pub use rest::{
    FieldDescribe, FieldType, Limits, PicklistValue, QueryPage, Record, SObjectDescribe,
    UpsertResult,
};
pub use retry::RetryPolicy;
