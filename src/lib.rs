//! pgforce keeps PostgreSQL and Salesforce in sync in real time.
//!
//! The data flow, one module per step:
//! `replication` (slot, CopyBoth stream) → `pgoutput` (pure decoder) → [`change`] events →
//! `mapping` (row → sObject record) → batching and the Salesforce sink (`salesforce`
//! client, Bulk API 2.0) → checkpoints. The `pgforce-emulator` crate (`emulator/`), a
//! Salesforce-compatible server, serves the demo, tests and benches; `testing` starts
//! throwaway Postgres clusters.
//!
//! # Layering
//!
//! A module may use the modules on its own line's right-hand side and anything they
//! use; nothing below uses anything above it, so the module graph has no cycle
//! (`layering.rs` tests that on every build of the tests):
//!
//! - [`lsn`], [`metrics`], [`backoff`], [`error_class`] (the one retry classification:
//!   [`error_class::ErrorClass`] and the rules for HTTP statuses, SQLSTATEs and record
//!   codes; each error type's `Classify` impl lives beside the type): leaves.
//! - [`salesforce`] (the HTTP client): `backoff`, `error_class`.
//! - [`change`] (the change model and [`change::Value`]), [`batch`], [`checkpoint`]: `lsn`.
//! - [`pgoutput`] (the decoder): `change`, `lsn`. [`config`]: `change`.
//!   [`server`]: `metrics`.
//! - [`bidi`] (two-way pairs: echo suppression, synced values, conflicts): `checkpoint`,
//!   `config`, `metrics`, `lsn`.
//! - [`mapping`]: `change`, `config`, `pgoutput`. [`replication`]: `change`, `pgoutput`,
//!   `lsn`. [`sink`]: `batch`, `checkpoint`, `salesforce`, `metrics`, `lsn`, `bidi`
//!   (synced values of paired objects).
//! - [`journal`] (segments of opaque payloads by LSN): `lsn`.
//! - [`inbound`] (Salesforce → Postgres: the event model and source contract, the poller,
//!   the applier and the engine): `config`, `checkpoint`, `salesforce`, `sink` (the
//!   replication origin), `bidi` (a pair's echo filter), `server` (status), `metrics`,
//!   `backoff`, `error_class`.
//! - [`cdc`] (the Pub/Sub API subscriber, a `ChangeSource`): `inbound`, `salesforce`.
//! - [`pipeline`]: everything above.
//! - [`replay`]: `pipeline` and everything above.
//! - [`jobs`] (query-driven jobs: scheduler, update / membership / enrich targets):
//!   `pipeline` (the Salesforce client it builds) and everything above.
//! - The binary (`src/main.rs`, `src/cli`) on top. `testing` is tooling outside the
//!   layering.

// No unsafe code in the library (one reviewed exception in `testing`).
#![deny(unsafe_code)]

pub mod backoff;
pub mod batch;
pub mod bidi;
pub mod cdc;
pub mod change;
pub mod checkpoint;
pub mod config;
pub mod error_class;
pub mod inbound;
pub mod jobs;
pub mod journal;
#[cfg(test)]
mod layering;
pub mod lsn;
pub mod mapping;
pub mod metrics;
pub mod pgconn;
pub mod pgoutput;
pub mod pipeline;
pub mod replay;
pub mod replication;
pub mod salesforce;
pub mod server;
pub mod sink;
pub mod testing;
