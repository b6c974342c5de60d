//! The replication client against real servers: streaming, backfill, and typed errors.

mod backfill;
mod errors;
mod stream;
