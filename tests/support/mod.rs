//! Helpers shared by the integration tests. Each module serves the areas named in its own
//! docs; nothing here is a test.

pub mod bidi;
pub mod compare;
pub mod config;
pub mod crash;
pub mod inbound;
pub mod mapping;
pub mod pgoutput;
pub mod pipeline;
pub mod replication;
pub mod sf_stub;
pub mod start;
pub mod wait;
