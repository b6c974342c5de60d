//! Batching: changes are coalesced per object and key into an epoch, and an epoch is cut
//! into flush steps in dependency order.
//!
//! - Within an epoch a key appears at most once per object and key field (the latest
//!   change wins; a delete supersedes earlier upserts; an upsert after a delete is one
//!   upsert of the existing record, see `coalesce`; an update whose columns are
//!   unchanged-TOAST keeps the earlier value of those fields), so a Bulk job never holds
//!   the same external id twice.
//! - An epoch ends at a transaction commit, so its end LSN is a position the slot may be
//!   confirmed to once every step is acknowledged.
//! - Steps run upserts parents-first, then deletes children-first; they are cut by rows
//!   and by bytes.

mod coalesce;
mod plan;

pub use coalesce::{Coalesce, Drained, Epoch, FlushPolicy, Group, GroupChanges};
pub use plan::{plan_steps, Step, StepKind, StepLimits};
