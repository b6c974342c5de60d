//! Errors of the replication connection, each carrying what a user needs to act on it.
//!
//! [`ReplicationError`] is the one error type of this module. Server errors keep their
//! SQLSTATE, message, detail and hint ([`ServerError`]); the common misconfigurations
//! (wal_level, missing REPLICATION, slot in use or invalidated, publication gaps, tables
//! without a replica identity, no free slots) are recognised and turned into a
//! [`PreflightError`] whose message says what to run to fix it.

use std::fmt;

/// Result alias for this module.
pub type Result<T, E = ReplicationError> = std::result::Result<T, E>;

/// An `ErrorResponse` (or FATAL during startup) sent by the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerError {
    /// `ERROR`, `FATAL` or `PANIC`.
    pub severity: String,
    /// Five-character SQLSTATE, e.g. `55006`.
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " (detail: {detail})")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerError {}

impl ServerError {
    /// SQLSTATEs that mean "the server went away or is restarting; reconnect later".
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code.as_str(),
            // admin_shutdown, crash_shutdown, cannot_connect_now
            "57P01" | "57P02" | "57P03"
            // connection_exception class
            | "08000" | "08003" | "08006" | "08001" | "08004"
        )
    }
}

/// A configuration problem found before (or while) replicating, with the fix in its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "wal_level is {actual:?}, but logical replication needs `logical`: set \
         `wal_level = logical` in postgresql.conf (or `ALTER SYSTEM SET wal_level = logical`) \
         and restart PostgreSQL"
    )]
    WalLevelNotLogical { actual: String },

    #[error(
        "role {role:?} may not use replication: run `ALTER ROLE {role} REPLICATION` as a \
         superuser (or connect as a role that has REPLICATION)"
    )]
    MissingReplicationPrivilege { role: String },

    #[error(
        "publication {publication:?} is owned by {owner:?}, not by {role:?}, so pgforce \
         cannot add tables to it: run `ALTER PUBLICATION {publication} ADD TABLE {}` as \
         {owner:?}, or `ALTER PUBLICATION {publication} OWNER TO {role}`",
        missing.join(", ")
    )]
    PublicationNotOwned {
        publication: String,
        owner: String,
        role: String,
        missing: Vec<String>,
    },

    #[error(
        "cannot create publication {publication:?} as role {role:?}: {reason}. Create it \
         yourself: `CREATE PUBLICATION {publication} FOR TABLE {}` (needs CREATE on the \
         database and ownership of the tables), or grant them to {role:?}",
        tables.join(", ")
    )]
    CannotCreatePublication {
        publication: String,
        role: String,
        tables: Vec<String>,
        reason: String,
    },

    #[error("publication {publication:?} does not exist: create it with `CREATE PUBLICATION {publication} FOR TABLE ...` or let pgforce create it")]
    PublicationMissing { publication: String },

    #[error(
        "publication {publication:?} does not publish {}: run `ALTER PUBLICATION \
         {publication} ADD TABLE {}`",
        tables.join(", "),
        tables.join(", ")
    )]
    PublicationMissingTables {
        publication: String,
        tables: Vec<String>,
    },

    #[error("table {table} does not exist (or is not visible to this role): check the table mapping and `GRANT SELECT ON {table}`")]
    TableNotFound { table: String },

    #[error(
        "table {table} has no primary key and no usable replica identity ({identity}), so \
         updates and deletes cannot be identified: add a primary key, or run `ALTER TABLE \
         {table} REPLICA IDENTITY FULL`"
    )]
    NoReplicaIdentity { table: String, identity: String },

    #[error(
        "replication slot {slot:?} is already in use by process {pid}: another pgforce (or \
         subscriber) is streaming from it. Stop that process, or terminate it with `SELECT \
         pg_terminate_backend({pid})`"
    )]
    SlotActive { slot: String, pid: i32 },

    #[error(
        "replication slot {slot:?} has been invalidated ({reason}) and can no longer stream \
         changes: the WAL it needed is gone. Drop it (`SELECT \
         pg_drop_replication_slot('{slot}')`) and let pgforce recreate it; a full resync \
         (backfill) is needed because changes were lost. Raise max_slot_wal_keep_size to \
         avoid this"
    )]
    SlotInvalidated { slot: String, reason: String },

    #[error("replication slot {slot:?} does not exist: let pgforce create it, or check the slot name in the configuration")]
    SlotMissing { slot: String },

    #[error(
        "replication slot {slot:?} uses output plugin {plugin:?}, not pgoutput: drop it \
         (`SELECT pg_drop_replication_slot('{slot}')`) or choose another slot name"
    )]
    SlotWrongPlugin { slot: String, plugin: String },

    #[error(
        "all {max} replication slots are in use (max_replication_slots = {max}): drop an \
         unused slot (`SELECT pg_drop_replication_slot(name)` from pg_replication_slots) or \
         raise max_replication_slots and restart PostgreSQL"
    )]
    SlotsExhausted { max: i64 },

    #[error("PostgreSQL {version} is not supported: pgforce needs PostgreSQL 14 or newer")]
    UnsupportedServerVersion { version: String },
}

/// Several preflight problems at once, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightErrors(pub Vec<PreflightError>);

impl fmt::Display for PreflightErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} replication preflight problem(s):", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PreflightErrors {}

/// Everything that can go wrong on the replication connection.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("invalid connection string: {0}")]
    Config(String),

    #[error("could not connect to PostgreSQL at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    /// TLS and ordinary-connection failures (server refused TLS, untrusted certificate,
    /// host name mismatch, ...), already worded for the operator.
    #[error(transparent)]
    Pg(#[from] crate::pgconn::ConnectError),

    #[error("I/O error on the replication connection while {context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("authentication failed: {0}")]
    Auth(String),

    #[error("the server closed the replication connection{}", .context.map(|c| format!(" while {c}")).unwrap_or_default())]
    ConnectionClosed { context: Option<&'static str> },

    #[error("protocol error on the replication connection: {0}")]
    Protocol(String),

    #[error("server error: {0}")]
    Server(#[from] ServerError),

    #[error(transparent)]
    Preflight(#[from] PreflightError),

    #[error(transparent)]
    PreflightMany(#[from] PreflightErrors),

    #[error("query failed while {context}: {source}")]
    Query {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },

    #[error("backfill of {table} failed: {reason}")]
    Backfill { table: String, reason: String },

    #[error("backfill sink rejected a chunk of {table}: {source}")]
    Sink {
        table: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("backfill progress store failed: {source}")]
    ProgressStore {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ReplicationError {
    /// True when retrying after a reconnect may succeed: the connection dropped or the
    /// server is shutting down/restarting. Configuration errors are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            ReplicationError::Connect { .. }
            | ReplicationError::Io { .. }
            | ReplicationError::ConnectionClosed { .. } => true,
            ReplicationError::Server(e) => e.is_transient(),
            ReplicationError::Pg(e) => e.is_transient(),
            ReplicationError::Query { source, .. } => {
                source.is_closed()
                    || source
                        .code()
                        .map(|c| c.code().starts_with("57P") || c.code().starts_with("08"))
                        .unwrap_or(false)
            }
            _ => false,
        }
    }

    /// The SQLSTATE, when the server reported one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ReplicationError::Server(e) => Some(&e.code),
            ReplicationError::Query { source, .. } => source.code().map(|c| c.code()),
            ReplicationError::Pg(e) => e.code(),
            _ => None,
        }
    }

    /// The preflight problem this error is, if it is one.
    pub fn as_preflight(&self) -> Option<&PreflightError> {
        match self {
            ReplicationError::Preflight(p) => Some(p),
            ReplicationError::PreflightMany(PreflightErrors(v)) => v.first(),
            _ => None,
        }
    }

    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> ReplicationError {
        move |source| ReplicationError::Io { context, source }
    }

    pub(crate) fn query(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| ReplicationError::Query { context, source }
    }
}

/// Recognise a server error that is really a known misconfiguration, given what we were
/// doing (`slot` names the slot involved, when any).
pub(crate) fn classify_server_error(
    err: ServerError,
    slot: Option<&str>,
    role: &str,
) -> ReplicationError {
    let msg = err.message.as_str();
    let slot_name = || slot.unwrap_or("?").to_string();
    let pf = match err.code.as_str() {
        "42501"
            if msg.contains("replication")
                || msg.contains("WAL sender")
                || msg.contains("walsender") =>
        {
            Some(PreflightError::MissingReplicationPrivilege {
                role: role.to_string(),
            })
        }
        "55006" if msg.contains("is active for PID") => Some(PreflightError::SlotActive {
            slot: slot_name(),
            pid: trailing_number(msg).unwrap_or(0),
        }),
        "55000" if msg.contains("wal_level") => Some(PreflightError::WalLevelNotLogical {
            actual: "not logical".into(),
        }),
        "55000" if is_invalidated_slot(&err) => Some(PreflightError::SlotInvalidated {
            slot: slot_name(),
            reason: err.detail.clone().unwrap_or_else(|| msg.to_string()),
        }),
        "42704" if msg.contains("replication slot") => {
            Some(PreflightError::SlotMissing { slot: slot_name() })
        }
        "42704" if msg.starts_with("publication") => Some(PreflightError::PublicationMissing {
            publication: quoted_name(msg).unwrap_or_default(),
        }),
        "53400" if msg.contains("replication slots") => {
            Some(PreflightError::SlotsExhausted { max: -1 })
        }
        _ => None,
    };
    match pf {
        Some(p) => ReplicationError::Preflight(p),
        None => ReplicationError::Server(err),
    }
}

/// "can no longer get changes from replication slot" (≤16), or "cannot read from
/// logical replication slot" with a detail saying it was invalidated (17+).
fn is_invalidated_slot(err: &ServerError) -> bool {
    let detail = err.detail.as_deref().unwrap_or_default();
    err.message.contains("can no longer")
        || err.message.contains("invalidated")
        || detail.contains("invalidated")
}

/// The last run of digits in `s`, e.g. the PID in `... is active for PID 1234`.
fn trailing_number(s: &str) -> Option<i32> {
    let digits: String = s
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

/// The first `"quoted"` name in a server message.
fn quoted_name(s: &str) -> Option<String> {
    let start = s.find('"')? + 1;
    let len = s.get(start..)?.find('"')?;
    s.get(start..start + len).map(str::to_string)
}

impl crate::error_class::Classify for ReplicationError {
    fn class(&self) -> crate::error_class::ErrorClass {
        use crate::error_class::{Classified, ErrorClass};
        match self {
            ReplicationError::Auth(_) => ErrorClass::Auth,
            ReplicationError::Sink { source, .. } | ReplicationError::ProgressStore { source } => {
                Classified::class_of(source.as_ref())
                    .or_else(|| source.downcast_ref::<ReplicationError>().map(|e| e.class()))
                    .unwrap_or(ErrorClass::Transient)
            }
            e if e.is_transient() => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_pid_and_names_in_server_messages() {
        assert_eq!(
            trailing_number("replication slot \"s\" is active for PID 4242"),
            Some(4242)
        );
        assert_eq!(trailing_number("no digits"), None);
        assert_eq!(
            quoted_name("publication \"p1\" does not exist").as_deref(),
            Some("p1")
        );
    }

    #[test]
    fn classifies_slot_in_use() {
        let err = ServerError {
            severity: "ERROR".into(),
            code: "55006".into(),
            message: "replication slot \"s\" is active for PID 77".into(),
            ..Default::default()
        };
        match classify_server_error(err, Some("s"), "me") {
            ReplicationError::Preflight(PreflightError::SlotActive { slot, pid }) => {
                assert_eq!((slot.as_str(), pid), ("s", 77));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
