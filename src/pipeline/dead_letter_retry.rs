//! Retrying dead letters on request (`pgforce errors retry`): each open dead letter's
//! stored record is upserted again, in order with the pipeline's own changes.
//!
//! Guarantees:
//! - It runs only under the pipeline's advisory lock: either the CLI holds the lock (no
//!   pipeline is running) or the running pipeline does it itself between epochs, after
//!   the CLI marked the letters (`retry_requested_at`). A retry therefore never races a
//!   newer change of the same record in flight.
//! - A letter is open only while no later change of its record landed (a later change
//!   that lands, parked children included, resolves it), so sending its row cannot go
//!   backwards over newer data.
//! - A letter that fails again keeps its newest row and error (see
//!   [`StateStore::record_dead_letters`]).

use tracing::info;

use crate::checkpoint::{DeadLetter, DeadLetterRow, StateStore};
use crate::config::MappingConfig;
use crate::lsn::Lsn;
use crate::sink::{Destination, SinkError};

/// What a retry did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetrySummary {
    pub applied: usize,
    pub failed: usize,
    /// Mapping errors and deletes: fix the row in Postgres; its next change flows again.
    pub not_retriable: usize,
}

/// Retries the open dead letters with these ids (all open ones when `ids` is empty). The
/// caller holds the pipeline's lock.
pub async fn retry_dead_letters<D: Destination>(
    state: &StateStore,
    dest: &D,
    mappings: &[MappingConfig],
    ids: &[i64],
) -> Result<RetrySummary, SinkError> {
    let mut summary = RetrySummary::default();
    let rows = state.list_dead_letters(Some("open"), 10_000).await?;
    for r in rows
        .into_iter()
        .filter(|r| ids.is_empty() || ids.contains(&r.id))
    {
        let mapping = mappings.iter().find(|m| m.name == r.mapping);
        match mapping.filter(|_| retriable(&r)) {
            Some(m) => match retry_one(state, dest, m, &r).await? {
                true => summary.applied += 1,
                false => summary.failed += 1,
            },
            None => summary.not_retriable += 1,
        }
    }
    info!(
        applied = summary.applied,
        failed = summary.failed,
        not_retriable = summary.not_retriable,
        "dead letters retried"
    );
    Ok(summary)
}

fn retriable(r: &DeadLetterRow) -> bool {
    r.error_code != "PGFORCE_MAPPING" && r.operation == "upsert" && r.row.is_object()
}

/// One letter; `true` if it landed.
async fn retry_one<D: Destination>(
    state: &StateStore,
    dest: &D,
    m: &MappingConfig,
    r: &DeadLetterRow,
) -> Result<bool, SinkError> {
    let Some(record) = r.row.as_object() else {
        return Ok(false);
    };
    let lsn: Lsn = r.lsn.parse().unwrap_or_default();
    state.note_keys(&m.object, &[&r.external_id]).await?;
    crate::sink::fence(state).await?;
    let outcome = dest
        .upsert_records(
            &m.object,
            &m.external_id.field,
            std::slice::from_ref(record),
        )
        .await?;
    match outcome.into_iter().next().map(|o| o.result) {
        Some(Ok((id, _))) => {
            state
                .store_ids(&m.object, &[(r.external_id.clone(), id)])
                .await?;
            state
                .resolve_dead_letters_through(&r.mapping, &[(r.external_id.clone(), lsn)])
                .await?;
            Ok(true)
        }
        Some(Err(f)) => {
            state
                .record_dead_letters(&[DeadLetter {
                    mapping: r.mapping.clone(),
                    object: r.object.clone(),
                    external_id: r.external_id.clone(),
                    operation: r.operation.clone(),
                    lsn,
                    error_code: f.code,
                    message: f.message,
                    fields: f.fields,
                    row: r.row.clone(),
                }])
                .await?;
            Ok(false)
        }
        None => Ok(false),
    }
}

/// Between epochs: the retries `pgforce errors retry` asked for while this pipeline held
/// the lock.
pub(super) async fn run_requested_retries<D: Destination>(
    state: &StateStore,
    dest: &D,
    mappings: &[MappingConfig],
) -> Result<(), SinkError> {
    let ids = state.take_dead_letter_retry_requests().await?;
    if ids.is_empty() {
        return Ok(());
    }
    retry_dead_letters(state, dest, mappings, &ids).await?;
    Ok(())
}
