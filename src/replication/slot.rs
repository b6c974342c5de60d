//! Logical replication slots: create (with an exported snapshot), inspect, drop.
//!
//! Creation goes through the replication connection (`CREATE_REPLICATION_SLOT`, the new
//! option syntax on PostgreSQL 15+, `EXPORT_SNAPSHOT` on 14), because only that returns
//! the consistent point and a snapshot name for the backfill. The exported snapshot lives
//! only until the next command on that same connection, so import it (see
//! [`super::backfill`]) before running anything else there. Inspection reads
//! `pg_replication_slots` through an ordinary client.

use tokio_postgres::Client;
use tracing::{info, instrument};

use super::conn::ReplicationConnection;
use super::error::{PreflightError, ReplicationError, Result};
use crate::lsn::Lsn;

/// What to do with the snapshot of a newly created slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotAction {
    /// Export it for `SET TRANSACTION SNAPSHOT` (needed for a consistent backfill).
    Export,
    /// Don't export a snapshot.
    NoExport,
}

/// A slot just created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    pub slot_name: String,
    /// Changes committed after this point are streamed; everything before is in the
    /// snapshot.
    pub consistent_point: Lsn,
    /// Name for `SET TRANSACTION SNAPSHOT`, when exported.
    pub snapshot_name: Option<String>,
    pub output_plugin: String,
}

/// A slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    pub slot_name: String,
    pub plugin: Option<String>,
    pub slot_type: String,
    pub database: Option<String>,
    pub active: bool,
    pub active_pid: Option<i32>,
    pub restart_lsn: Option<Lsn>,
    pub confirmed_flush_lsn: Option<Lsn>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
    /// Bytes of WAL that can still be written before the slot is in danger of `lost`.
    pub safe_wal_size: Option<i64>,
    pub two_phase: bool,
    /// PostgreSQL 16+: invalidated by a recovery conflict (on a standby).
    pub conflicting: Option<bool>,
    /// PostgreSQL 17+: why the slot was invalidated (`wal_removed`, `rows_removed`, ...).
    pub invalidation_reason: Option<String>,
}

impl SlotInfo {
    /// Why the slot can no longer stream, if it cannot.
    pub fn invalidation(&self) -> Option<String> {
        if let Some(reason) = &self.invalidation_reason {
            return Some(reason.clone());
        }
        if self.conflicting == Some(true) {
            return Some("conflict with recovery".into());
        }
        if self.wal_status.as_deref() == Some("lost") {
            return Some("wal_status = lost: required WAL was removed".into());
        }
        None
    }
}

/// Result of [`ensure_slot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// Created now: a backfill in `snapshot_name` is due.
    Created(CreatedSlot),
    /// Already there and usable: resume from its confirmed position.
    Existing(SlotInfo),
}

/// Slot names are `[a-z0-9_]{1,63}`; check before putting one in a command.
pub fn validate_slot_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ReplicationError::Config(format!(
            "invalid replication slot name {name:?}: use 1 to 63 lowercase letters, digits and underscores"
        )))
    }
}

impl ReplicationConnection {
    /// `CREATE_REPLICATION_SLOT name LOGICAL pgoutput`, exporting a snapshot if asked.
    #[instrument(skip(self), fields(slot = name))]
    pub async fn create_logical_slot(
        &mut self,
        name: &str,
        snapshot: SnapshotAction,
    ) -> Result<CreatedSlot> {
        validate_slot_name(name)?;
        let major = self.server_major().unwrap_or(0);
        let command = create_slot_command(name, snapshot, major)?;
        let rows = self.read_create_result(&command, name).await?;
        let row = rows.first().ok_or_else(|| {
            ReplicationError::Protocol("CREATE_REPLICATION_SLOT returned no row".into())
        })?;
        let cmd = "CREATE_REPLICATION_SLOT";
        let consistent_point: Lsn = row
            .require("consistent_point", cmd)?
            .parse()
            .map_err(|e| ReplicationError::Protocol(format!("{cmd}: {e}")))?;
        let created = CreatedSlot {
            slot_name: row.require("slot_name", cmd)?.to_string(),
            consistent_point,
            snapshot_name: row.get("snapshot_name").map(str::to_string),
            output_plugin: row.get("output_plugin").unwrap_or("pgoutput").to_string(),
        };
        info!(consistent_point = %created.consistent_point, snapshot = ?created.snapshot_name, "created replication slot");
        Ok(created)
    }

    async fn read_create_result(
        &mut self,
        command: &str,
        slot: &str,
    ) -> Result<Vec<super::conn::SimpleRow>> {
        match self.simple_query(command).await {
            Err(ReplicationError::Server(e)) if e.code == "42710" => Err(ReplicationError::Config(
                format!("replication slot {slot:?} already exists"),
            )),
            Err(ReplicationError::Preflight(PreflightError::SlotsExhausted { .. })) => {
                let max = self
                    .simple_query("SHOW max_replication_slots")
                    .await
                    .ok()
                    .and_then(|r| r.first()?.get_idx(0)?.parse().ok())
                    .unwrap_or(-1);
                Err(PreflightError::SlotsExhausted { max }.into())
            }
            other => other,
        }
    }

    /// `DROP_REPLICATION_SLOT name [WAIT]`.
    pub async fn drop_slot(&mut self, name: &str, wait: bool) -> Result<()> {
        validate_slot_name(name)?;
        let wait = if wait { " WAIT" } else { "" };
        self.simple_query(&format!("DROP_REPLICATION_SLOT \"{name}\"{wait}"))
            .await
            .map(|_| ())
    }
}

/// The command text for the server's major version.
fn create_slot_command(name: &str, snapshot: SnapshotAction, major: u32) -> Result<String> {
    if major < 14 {
        return Err(PreflightError::UnsupportedServerVersion {
            version: major.to_string(),
        }
        .into());
    }
    let command = if major >= 15 {
        let mode = match snapshot {
            SnapshotAction::Export => "export",
            SnapshotAction::NoExport => "nothing",
        };
        format!("CREATE_REPLICATION_SLOT \"{name}\" LOGICAL pgoutput (SNAPSHOT '{mode}')")
    } else {
        let mode = match snapshot {
            SnapshotAction::Export => "EXPORT_SNAPSHOT",
            SnapshotAction::NoExport => "NOEXPORT_SNAPSHOT",
        };
        format!("CREATE_REPLICATION_SLOT \"{name}\" LOGICAL pgoutput {mode}")
    };
    Ok(command)
}

/// `server_version_num` of the server behind `client`.
pub async fn server_version_num(client: &Client) -> Result<u32> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(ReplicationError::query("reading server_version_num"))?;
    Ok(row.get::<_, i32>(0) as u32)
}

/// Read one slot from `pg_replication_slots`; `None` when it does not exist.
#[instrument(skip(client))]
pub async fn read_slot(client: &Client, name: &str) -> Result<Option<SlotInfo>> {
    let version = server_version_num(client).await?;
    let conflicting = if version >= 160000 {
        "conflicting"
    } else {
        "NULL::bool"
    };
    let reason = if version >= 170000 {
        "invalidation_reason"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT slot_name::text, plugin::text, slot_type, database::text, active, active_pid,
                restart_lsn::text, confirmed_flush_lsn::text, wal_status, safe_wal_size,
                two_phase, {conflicting}, {reason}
           FROM pg_replication_slots WHERE slot_name = $1"
    );
    let row = client
        .query_opt(&sql, &[&name])
        .await
        .map_err(ReplicationError::query(format!(
            "reading replication slot {name:?}"
        )))?;
    let Some(row) = row else { return Ok(None) };
    let lsn = |idx: usize| -> Result<Option<Lsn>> {
        row.get::<_, Option<String>>(idx)
            .map(|s| {
                s.parse().map_err(|e: crate::lsn::ParseLsnError| {
                    ReplicationError::Protocol(e.to_string())
                })
            })
            .transpose()
    };
    Ok(Some(SlotInfo {
        slot_name: row.get(0),
        plugin: row.get(1),
        slot_type: row.get(2),
        database: row.get(3),
        active: row.get(4),
        active_pid: row.get(5),
        restart_lsn: lsn(6)?,
        confirmed_flush_lsn: lsn(7)?,
        wal_status: row.get(8),
        safe_wal_size: row.get(9),
        two_phase: row.get(10),
        conflicting: row.get(11),
        invalidation_reason: row.get(12),
    }))
}

/// Check that an existing slot can be streamed from by us, as a typed error if not.
pub fn check_slot_usable(slot: &SlotInfo) -> Result<(), PreflightError> {
    if let Some(reason) = slot.invalidation() {
        return Err(PreflightError::SlotInvalidated {
            slot: slot.slot_name.clone(),
            reason,
        });
    }
    if let Some(plugin) = slot.plugin.as_deref().filter(|p| *p != "pgoutput") {
        return Err(PreflightError::SlotWrongPlugin {
            slot: slot.slot_name.clone(),
            plugin: plugin.to_string(),
        });
    }
    if slot.active {
        return Err(PreflightError::SlotActive {
            slot: slot.slot_name.clone(),
            pid: slot.active_pid.unwrap_or(0),
        });
    }
    Ok(())
}

/// Use the slot if it exists and is usable, else create it with an exported snapshot.
/// `repl` must not have run anything since connecting if a snapshot is to be exported.
pub async fn ensure_slot(
    repl: &mut ReplicationConnection,
    client: &Client,
    name: &str,
) -> Result<SlotState> {
    validate_slot_name(name)?;
    if let Some(info) = read_slot(client, name).await? {
        check_slot_usable(&info)?;
        return Ok(SlotState::Existing(info));
    }
    let created = repl
        .create_logical_slot(name, SnapshotAction::Export)
        .await?;
    Ok(SlotState::Created(created))
}

/// `pg_drop_replication_slot` through an ordinary client; `false` when it did not exist.
pub async fn drop_slot_if_exists(client: &Client, name: &str) -> Result<bool> {
    let n = client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await
        .map_err(ReplicationError::query(format!("dropping replication slot {name:?}")))?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_are_validated() {
        assert!(validate_slot_name("pgforce_main_1").is_ok());
        assert!(validate_slot_name("").is_err());
        assert!(validate_slot_name("Upper").is_err());
        assert!(validate_slot_name("x\"; DROP").is_err());
        assert!(validate_slot_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn create_syntax_depends_on_version() {
        assert_eq!(
            create_slot_command("s", SnapshotAction::Export, 15).unwrap(),
            "CREATE_REPLICATION_SLOT \"s\" LOGICAL pgoutput (SNAPSHOT 'export')"
        );
        assert_eq!(
            create_slot_command("s", SnapshotAction::Export, 14).unwrap(),
            "CREATE_REPLICATION_SLOT \"s\" LOGICAL pgoutput EXPORT_SNAPSHOT"
        );
        assert!(create_slot_command("s", SnapshotAction::Export, 13).is_err());
    }
}
