//! The Postgres → Salesforce pipeline: ties the replication stream, the decoder, the
//! mappings, the epoch batcher and the Salesforce sink together, and owns the one rule that
//! makes it crash-safe: the slot's flush position is confirmed only after the epoch that
//! ends there is finished in the state store (applied, parked or dead-lettered).
//!
//! - [`supervisor`]: restarts a pipeline after transient failures.
//! - [`run`]: one pipeline's life: the start-up phases in order, then the stream loop.
//! - [`lock`], [`startup`]: the start-up phases (lock and origin; Salesforce login and
//!   checks; publication and slot; backfill; starting the stream).
//! - [`streamer`]: the stream loop (decode, map, batch, flush, confirm).
//! - [`status`]: the periodic status page and gauge refresh.
//! - [`dead_letter`]: rows the mapper rejects, rendered for the dead-letter table.
//! - [`backfill_sink`]: backfilled rows go through the same mapping and sink as the stream.
//! - [`pending`]: a mapped change with its commit LSN, as the batcher and sink see it.
//! - [`setup`]: building the Salesforce client and other connections from config.

// PipelineError carries the failing layer's error by value: it is returned once, when a
// pipeline stops, so its size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

mod backfill_sink;
mod check;
mod complete;
mod dead_letter;
mod dead_letter_retry;
mod error;
mod lock;
mod pending;
pub mod pending_codec;
mod progress;
mod run;
mod setup;
mod startup;
mod status;
mod streamer;
mod stuck_metrics;
mod supervisor;
mod sweep;
mod zero_series;

pub use check::check_pipeline;
pub use dead_letter_retry::{retry_dead_letters, RetrySummary};
pub use error::PipelineError;
pub use pending::Pending;
pub use progress::{BackfillProgress, LogProgress};
pub use run::{run_pipeline, RunOptions};
pub use setup::{salesforce_client, table_refs};
pub use supervisor::supervise;
