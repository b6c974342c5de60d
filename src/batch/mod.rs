//! Batching: changes are coalesced per object and key into an epoch, and an epoch is cut
//! into flush steps in dependency order.
//!
//! - Within an epoch a key appears at most once per object and key field among upserts
//!   and once among deletes (the latest change wins; a delete supersedes earlier upserts;
//!   an upsert after a delete keeps the delete, which runs first, so the record is
//!   recreated; an update whose columns are unchanged-TOAST keeps the earlier value of
//!   those fields), so a Bulk job never holds the same external id twice.
//! - An epoch ends at a transaction commit, so its end LSN is a position the slot may be
//!   confirmed to once every step is acknowledged.
//! - Steps run recreate-deletes children-first, upserts parents-first, then deletes
//!   children-first; they are cut by rows and by bytes.

mod coalesce;
mod plan;

pub use coalesce::{Coalesce, Drained, Epoch, FlushPolicy, Group, GroupChanges};
pub use plan::{plan_steps, Step, StepKind, StepLimits};
