//! The Salesforce sink: drives an epoch's steps through a [`Destination`], records each
//! Bulk job before its data is uploaded, processes per-record results (id map, dead
//! letters, parked children) and reconciles the jobs a crashed run left in flight.
//!
//! [`Destination`] is the seam: the real one talks to Salesforce (Bulk API 2.0 and sObject
//! Collections); benches can swap in one that drops everything.

mod csv;
mod destination;
mod existing;
mod fence;
mod flusher;
mod paired;
mod parked;
mod poll;
mod protocol;
#[cfg(test)]
mod protocol_tests;
mod retry;
mod salesforce;
mod settle;
mod state;
mod writeback;

pub use csv::{records_to_csv, NULL_CELL};
pub use destination::{Destination, JobStatus, Outcome, RecordFailure, SinkError};
pub use fence::fence;
pub use flusher::{
    FlushChange, FlushReport, Flusher, FlusherOptions, WriteBackTarget, MAX_STEP_BYTES,
};
pub use salesforce::SalesforceDestination;
pub use state::{SinkState, SyncedValues};
pub use writeback::use_origin;
