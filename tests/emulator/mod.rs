//! The Salesforce emulator over real HTTP, one module per API family, plus a real client.

mod auth;
mod bulk;
mod collections;
mod conformance;
mod query;
mod rest;
