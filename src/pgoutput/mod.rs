//! Pure pgoutput decoder: bytes of the logical replication stream → messages → typed
//! values → transactions. No network I/O here, so every function is fuzzable; every
//! failure is a typed error, never a panic.
//!
//! - [`messages`]: one message's bytes → [`LogicalMessage`] ([`decode`]).
//! - [`value`]: column text → [`Value`] ([`parse_text`]); [`types`]: enums and domains.
//! - [`row`]: tuple data + relation → typed row.
//! - [`assembler`]: messages in stream order → [`crate::change::TxEvent`]s in commit
//!   order (streamed and two-phase transactions, spill to disk, origin filtering).
//! - [`fixture`]: the `proto-fixtures/` capture format, shared by tests and the bench.

pub mod assembler;
pub mod fixture;
pub mod messages;
mod reader;
pub mod row;
mod spill;
pub mod types;
pub mod value;

pub use assembler::{Assembler, AssemblerConfig, AssemblerError};
pub use messages::{decode, DecodeContext, DecodeError, LogicalMessage};
pub use types::TypeRegistry;
pub use value::{parse_text, Value, ValueError};
