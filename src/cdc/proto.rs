//! The Pub/Sub API's messages and client stub (package `eventbus.v1`), generated at build
//! time by `build.rs` from `proto-fixtures/pubsub/pubsub_api.proto`. Nothing is written by
//! hand here, so the wire contract is exactly Salesforce's published one.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("eventbus.v1");
