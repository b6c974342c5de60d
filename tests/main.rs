//! pgforce's integration tests: one test binary (`cargo test --test main`), one module per
//! area of the product, and `support/` for what several areas share (throwaway Postgres,
//! the in-process emulator, pipeline harnesses, pgoutput scenarios).
//!
//! Run one area or one test by its module path, e.g. `cargo test --test main replication::`
//! or `cargo test --test main pipeline::e2e::inserts_updates`.
//!
//! # How to add a test module
//!
//! - A new topic of an existing area: a file `tests/<area>/<topic>.rs` and a line
//!   `mod <topic>;` in `tests/<area>/mod.rs`.
//! - A new area: `tests/<area>.rs` (or `tests/<area>/mod.rs` once it has several topics) and
//!   a line `mod <area>;` below, in alphabetical order.
//! - A file written for the old layout (`tests/<area>_<topic>.rs`, its own test binary):
//!   move it to `tests/<area>/<topic>.rs`, drop its `mod <x>_support;` lines and import
//!   helpers from `crate::support::…` instead.
//! - Start each file with a `//!` paragraph saying what it checks. Shared helpers go in
//!   `support/` (never a second copy in a test file): the pipeline config builder, the one
//!   `wait_until` and the one Postgres ⇄ Salesforce comparison live there.
//! - Do not add `[[test]]` targets: `Cargo.toml` has `autotests = false` so that every test
//!   links into this one binary.

mod support;

mod bidi;
mod checkpoint_store;
mod cli;
mod config;
mod deploy_manifests;
mod inbound;
mod jobs;
mod mapping;
mod ops;
mod pg_tls;
mod pgoutput;
mod pipeline;
mod replay;
mod replication;
mod salesforce_client;
mod server_http;
mod temp_cluster;
mod torture;
