//! pgforce keeps PostgreSQL and Salesforce in sync in real time.
//!
//! The data flow, one module per step:
//! `replication` (slot, CopyBoth stream) → `pgoutput` (pure decoder) → [`change`] events →
//! `mapping` (row → sObject record) → batching and the Salesforce sink (`salesforce`
//! client, Bulk API 2.0) → checkpoints. The `pgforce-emulator` crate (`emulator/`), a
//! Salesforce-compatible server, serves the demo, tests and benches; `testing` starts throwaway Postgres clusters.

pub mod backoff;
pub mod batch;
pub mod change;
pub mod checkpoint;
pub mod config;
pub mod error_class;
pub mod journal;
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
