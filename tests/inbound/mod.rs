//! Salesforce → Postgres: the `[[pipelines.inbound]]` config and templates, the poll-mode
//! engine end to end against the emulator and a throwaway Postgres (REST, Collections and
//! Bulk changes, nulls, untouched columns, stale events, hard deletes, audit rows written
//! once across restarts and kills, a lost position resynced), gap/overflow/diff re-reads,
//! the Bulk initial load, the templates end to end, `pgforce schema`, and both directions
//! in one pipeline without echo (`origin`).

mod cdc;
mod cdc_crash;
mod cdc_ops;
mod config;
mod crash;
mod load_resume;
mod origin;
mod poll;
mod resolve;
mod schema;
mod templates;
mod validate;
