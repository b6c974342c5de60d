//! Salesforce → Postgres: the `[[pipelines.inbound]]` config and templates, the engine
//! end to end against the emulator and a throwaway Postgres: the scenario both sources pass
//! (`mirror`), poll mode (`poll`, `crash`) and CDC mode over the emulator's Pub/Sub API
//! (`cdc`, `cdc_crash`, `cdc_ops`): REST, Collections and Bulk changes, nulls, untouched columns, stale events, hard deletes,
//! audit rows written once across restarts and kills, dropped streams, a lost position
//! resynced, metrics and `/readyz` over HTTP; gap/overflow/diff re-reads, the Bulk initial
//! load, the templates end to end, `pgforce schema`, and both directions in one pipeline
//! without echo (`origin`).

mod cdc;
mod cdc_crash;
mod cdc_ops;
mod config;
mod crash;
mod load_resume;
mod mirror;
mod origin;
mod poll;
mod resolve;
mod schema;
mod templates;
mod validate;
