//! pgforce's durable state, in a `pgforce` schema (in the source database by default):
//! the confirmed LSN per pipeline, the in-flight flush plan with its Bulk job ids, the
//! external id → Salesforce Id map, the dead-letter table and parked children.
//!
//! The invariants the pipeline builds on:
//! - an epoch's plan (its end LSN and its steps) is written **before** any of its data is
//!   uploaded, and each Bulk job id is written **before** the job's data is uploaded, so a
//!   restart finds the jobs and reconciles them instead of sending them again;
//! - the checkpoint moves only in [`StateStore::finish_epoch`], in the same transaction that
//!   removes the finished plan.

//!
//! One file per kind of state: [`store`] (the session), [`schema`] (migrations),
//! [`progress`] (the checkpoint), [`inflight`] (epoch plans), [`id_map`], [`dead_letters`],
//! [`parked`] and [`lock`] (the HA lock); [`error`] holds [`StateError`]. Writing Ids back
//! into source rows is the sink's (`sink::writeback`).

mod dead_letters;
mod error;
mod id_map;
mod inflight;
mod lock;
mod parked;
mod progress;
mod schema;
mod store;
mod stuck;

pub use dead_letters::{DeadLetter, DeadLetterRow};
pub use error::StateError;
pub use inflight::{EpochPlan, RecordedStep, StepPath, StepPlan, StepState};
pub use parked::ParkedChange;
pub use schema::{quote_ident, SCHEMA_VERSION};
pub use store::StateStore;
pub use stuck::{OldestDeadLetter, ParkedGroup, Stuck};
