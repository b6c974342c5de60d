//! The decoded change model: what the replication stream hands to the rest of pgforce.
//!
//! The decoder (`pgoutput`) and the stream (`replication`) produce these; mapping,
//! batching and the sink consume them. Nothing here does I/O.
//!
//! Transactions arrive as a stream of [`TxEvent`]s in commit order:
//! `Begin`, zero or more `Change`s, `Commit`. A streamed (in-progress) transaction is
//! buffered by the replication layer and only emitted, whole and in order, once it
//! commits; an aborted one is never emitted. Consumers may act on changes before the
//! `Commit` arrives (for bounded memory) but must only confirm an LSN at or after a
//! `Commit`'s `end_lsn` once everything up to it is durable downstream.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::lsn::Lsn;

pub mod value;

pub use value::Value;

/// How the table identifies the old row on UPDATE/DELETE (`pg_class.relreplident`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// 'd': primary key columns.
    Default,
    /// 'n': nothing; updates/deletes carry no old key.
    Nothing,
    /// 'f': all columns.
    Full,
    /// 'i': a chosen unique index.
    Index,
}

/// One column of a published relation, as the Relation message describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
    /// Part of the replica identity key.
    pub is_key: bool,
}

/// A published table as last described by the server. Replaced (not mutated) when a new
/// Relation message arrives after a schema change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<Column>,
}

impl Relation {
    /// `schema.name`, the key mappings use.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// Column values in the relation's column order. [`Value::Unchanged`] marks an unchanged
/// TOASTed value (leave the field alone), which is not [`Value::Null`].
pub type Row = Vec<Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Insert,
    Update,
    Delete,
}

/// One row-level change.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub relation: Arc<Relation>,
    pub op: Operation,
    /// Insert and Update: the new row.
    pub new: Option<Row>,
    /// Update with a changed key ('K') or REPLICA IDENTITY FULL ('O'), and Delete: the old
    /// key or old row. Non-key columns are `Null` when only the key was sent.
    pub old: Option<Row>,
}

/// A change inside a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Row(RowChange),
    Truncate {
        relations: Vec<Arc<Relation>>,
        cascade: bool,
        restart_identity: bool,
    },
    /// A `pg_logical_emit_message` with `transactional = true`.
    Message {
        prefix: String,
        content: Vec<u8>,
    },
}

/// What the replication stream yields, in commit order.
#[derive(Debug, Clone, PartialEq)]
pub enum TxEvent {
    Begin {
        xid: u32,
        /// LSN of the commit record.
        commit_lsn: Lsn,
        commit_time: DateTime<Utc>,
        /// Replication origin name, when the transaction was replayed under one.
        origin: Option<String>,
    },
    Change(Change),
    Commit {
        xid: u32,
        commit_lsn: Lsn,
        /// The position after the commit: what to confirm once the transaction is done.
        end_lsn: Lsn,
        commit_time: DateTime<Utc>,
    },
    /// A non-transactional logical message.
    Message {
        lsn: Lsn,
        prefix: String,
        content: Vec<u8>,
    },
}
