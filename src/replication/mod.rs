//! The logical replication connection: slot and publication management, the CopyBoth
//! stream with keepalives and standby status, the consistent-snapshot backfill, preflight
//! checks and slot health.
//!
//! # Layout
//! - [`conn`]: the replication-mode connection (startup, auth, simple commands,
//!   IDENTIFY_SYSTEM) built on `postgres_protocol`'s codec, since tokio-postgres has no
//!   CopyBoth mode; [`wire`] frames its messages.
//! - [`slot`] and [`publication`]: create/inspect slots and publications.
//! - [`stream`]: START_REPLICATION, the message stream and [`stream::FeedbackHandle`],
//!   the only way the slot's flush position moves.
//! - [`protocol`]: pure parsers for the CopyData sub-messages (XLogData, keepalive).
//! - [`backfill`] and [`copy_text`]: copy pre-existing rows in the slot's snapshot,
//!   resumable by key.
//! - [`preflight`], [`health`], [`error`]: checks, metrics, and errors that say what to do.
//!
//! # Typical start-up
//! 1. [`preflight::preflight`] and [`publication::ensure_publication`] on an ordinary client.
//! 2. [`slot::ensure_slot`] on a fresh [`ReplicationConnection`]: `Created` carries a
//!    snapshot name and consistent point, `Existing` a confirmed position.
//! 3. If created (or a saved backfill is unfinished): [`backfill::backfill`] on a second
//!    ordinary connection, importing the snapshot before the replication connection runs
//!    anything else.
//! 4. [`ReplicationConnection::start_replication`] at the consistent point / confirmed
//!    position; confirm Commit `end_lsn`s through the [`FeedbackHandle`] once durable.

pub mod backfill;
pub mod conn;
pub mod copy_text;
pub mod error;
pub mod health;
pub mod plugin;
pub mod preflight;
pub mod protocol;
pub mod publication;
pub mod slot;
pub mod stream;
pub mod table;
pub mod types;
mod wire;

pub use backfill::{
    backfill, BackfillChunk, BackfillOptions, BackfillProgressStore, BackfillSink,
    BackfillSnapshot, MemoryProgressStore, PgProgressStore, TableProgress,
};
pub use conn::{connect_client, ConnectOptions, ReplicationConnection, SimpleRow, SystemIdentity};
pub use error::{PreflightError, PreflightErrors, ReplicationError, ServerError};
pub use health::{slot_health, SlotHealth};
pub use preflight::{preflight, PreflightSpec};
pub use publication::{ensure_publication, PublicationPolicy};
pub use slot::{ensure_slot, read_slot, CreatedSlot, SlotInfo, SlotState, SnapshotAction};
pub use stream::{
    FeedbackHandle, ReplicationMessage, ReplicationStream, StreamOptions, StreamingMode,
};
pub use table::TableRef;
pub use types::load_types;
