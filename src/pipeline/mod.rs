//! The Postgres → Salesforce pipeline: ties the replication stream, the decoder, the
//! mappings, the epoch batcher and the Salesforce sink together, and owns the one rule that
//! makes it crash-safe: the slot's flush position is confirmed only after the epoch that
//! ends there is finished in the state store (applied, parked or dead-lettered).
//!
//! - [`runner`]: one pipeline's life: lock, connect, preflight, backfill, stream, flush.
//! - [`backfill_sink`]: backfilled rows go through the same mapping and sink as the stream.
//! - [`pending`]: a mapped change with its commit LSN, as the batcher and sink see it.
//! - [`setup`]: building the Salesforce client and other connections from config.

// PipelineError carries the failing layer's error by value: it is returned once, when a
// pipeline stops, so its size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

mod backfill_sink;
mod check;
mod error;
mod pending;
mod progress;
mod runner;
mod setup;
mod stuck_metrics;
mod zero_series;

pub use check::check_pipeline;
pub use error::PipelineError;
pub use pending::Pending;
pub use progress::{BackfillProgress, LogProgress};
pub use runner::{run_pipeline, supervise, RunOptions};
pub use setup::{salesforce_client, table_refs};
