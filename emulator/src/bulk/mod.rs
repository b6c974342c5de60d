//! Bulk API 2.0: ingest jobs (`/jobs/ingest`, [`ingest`]) and query jobs (`/jobs/query`,
//! [`query_job`]), with the CSV dialects in [`csv_io`] and the header/cell rules in
//! [`columns`]. [`routes`] serves them under the core's version, session and limit layers.
//!
//! Allocations: every HTTP call counts as an API request (the core's middleware);
//! `DailyBulkApiBatches` is decremented once per internal 10,000-row chunk processed (an
//! approximation of Salesforce's accounting), `DailyBulkV2QueryJobs` once per query job.
//! Jobs stay in memory until deleted.

pub mod columns;
pub mod csv_io;
pub mod encoding;
mod error;
mod fast_insert;
pub mod ingest;
pub mod job;
pub mod query_job;
mod routes;

use std::sync::Arc;

use dashmap::DashMap;

pub use error::BulkError;
pub use routes::routes;

/// Bulk jobs of one emulator, kept in the core's extension slot.
#[derive(Debug, Default)]
pub struct BulkState {
    /// Ingest jobs by id.
    pub ingest: DashMap<String, ingest::SharedJob>,
    /// Query jobs by id.
    pub query: DashMap<String, query_job::SharedQueryJob>,
}

impl BulkState {
    /// The ingest job `id` (15 or 18 chars).
    pub fn ingest_job(&self, id: &str) -> Result<ingest::SharedJob, BulkError> {
        find(&self.ingest, id)
    }

    /// The query job `id` (15 or 18 chars).
    pub fn query_job(&self, id: &str) -> Result<query_job::SharedQueryJob, BulkError> {
        find(&self.query, id)
    }
}

/// Looks a job up by its 18-char id, or by the 15-char prefix.
fn find<T>(map: &DashMap<String, Arc<T>>, id: &str) -> Result<Arc<T>, BulkError> {
    if let Some(j) = map.get(id) {
        return Ok(j.clone());
    }
    if id.len() == 15 {
        if let Some(j) = map.iter().find(|e| e.key().starts_with(id)) {
            return Ok(j.value().clone());
        }
    }
    Err(BulkError::NotFound)
}
