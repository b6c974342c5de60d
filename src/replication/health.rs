//! Slot health: how far behind the slot is and how close it is to losing its WAL.
//!
//! A plain struct read with one query, for metrics and `/readyz`. `lag_bytes` is the WAL
//! written since the last position the downstream confirmed; `safe_wal_size` shrinking
//! towards zero (with `max_slot_wal_keep_size` set) means the slot is about to be
//! invalidated.

use tokio_postgres::Client;
use tracing::instrument;

use super::error::{PreflightError, ReplicationError, Result};
use super::slot::server_version_num;
use crate::lsn::Lsn;

/// A snapshot of one slot's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotHealth {
    pub slot_name: String,
    pub active: bool,
    pub active_pid: Option<i32>,
    pub restart_lsn: Option<Lsn>,
    pub confirmed_flush_lsn: Option<Lsn>,
    /// The server's current WAL insert position.
    pub current_wal_lsn: Lsn,
    /// `pg_current_wal_lsn() - confirmed_flush_lsn` in bytes (0 when unknown).
    pub lag_bytes: i64,
    /// `pg_current_wal_lsn() - restart_lsn`: WAL the slot holds back.
    pub retained_bytes: i64,
    pub wal_status: Option<String>,
    pub safe_wal_size: Option<i64>,
    /// Set when the slot is invalidated (PostgreSQL 17+ reports the reason).
    pub invalidation_reason: Option<String>,
}

impl SlotHealth {
    /// The slot can no longer stream.
    pub fn is_lost(&self) -> bool {
        self.wal_status.as_deref() == Some("lost") || self.invalidation_reason.is_some()
    }
}

/// Read the health of slot `name`.
#[instrument(skip(client))]
pub async fn slot_health(client: &Client, name: &str) -> Result<SlotHealth> {
    let version = server_version_num(client).await?;
    let reason = if version >= 170000 {
        "invalidation_reason"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT active, active_pid, restart_lsn::text, confirmed_flush_lsn::text,
                pg_current_wal_lsn()::text,
                COALESCE((pg_current_wal_lsn() - confirmed_flush_lsn)::bigint, 0),
                COALESCE((pg_current_wal_lsn() - restart_lsn)::bigint, 0),
                wal_status, safe_wal_size, {reason}
           FROM pg_replication_slots WHERE slot_name = $1"
    );
    let row = client
        .query_opt(&sql, &[&name])
        .await
        .map_err(ReplicationError::query(format!(
            "reading health of slot {name:?}"
        )))?
        .ok_or_else(|| PreflightError::SlotMissing {
            slot: name.to_string(),
        })?;
    let lsn = |idx: usize| -> Result<Option<Lsn>> {
        row.get::<_, Option<String>>(idx)
            .map(|s| {
                s.parse().map_err(|e: crate::lsn::ParseLsnError| {
                    ReplicationError::Protocol(e.to_string())
                })
            })
            .transpose()
    };
    Ok(SlotHealth {
        slot_name: name.to_string(),
        active: row.get(0),
        active_pid: row.get(1),
        restart_lsn: lsn(2)?,
        confirmed_flush_lsn: lsn(3)?,
        current_wal_lsn: lsn(4)?.unwrap_or_default(),
        lag_bytes: row.get(5),
        retained_bytes: row.get(6),
        wal_status: row.get(7),
        safe_wal_size: row.get(8),
        invalidation_reason: row.get(9),
    })
}
