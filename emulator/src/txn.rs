//! Write transactions: who writes, through which API, and the record changes one API call
//! commits together. The store reports every change it makes ([`Change`]) to the writer's
//! [`Txn`]; the API path that opened the transaction commits it once (or rolls part of it
//! back), and only then are its changes handed, in order, to the [`ChangeSink`] (Change Data
//! Capture). A write without a transaction is its own transaction, committed at once.
//!
//! Guarantees: a change reaches the sink at most once (a commit drains the buffer); changes
//! rolled back with [`Txn::rollback_to`] never reach it; the order of changes within a
//! transaction is the order the store made them.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use super::ids::Id;
use super::row::Row;
use super::schema::ObjectDef;

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Inserted.
    Create,
    /// Fields changed.
    Update,
    /// Soft- or hard-deleted.
    Delete,
    /// Restored from the recycle bin.
    Undelete,
}

/// One record change as the store made it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The record's object.
    pub object: Arc<ObjectDef>,
    /// The record.
    pub id: Id,
    /// What happened.
    pub kind: ChangeKind,
    /// The record before the change (none for a create).
    pub before: Option<Arc<Row>>,
    /// The record after the change (none for a hard delete).
    pub after: Option<Arc<Row>>,
    /// When the store made the change.
    pub at: DateTime<Utc>,
}

/// The identity of a committed transaction, as Change Data Capture reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnInfo {
    /// UUID-like key shared by every change of the transaction.
    pub key: String,
    /// `com/salesforce/api/rest/60.0;client=...` (empty when unknown).
    pub origin: String,
    /// The acting user.
    pub user: Id,
}

impl TxnInfo {
    /// A new transaction identity with a fresh key.
    pub fn new(origin: String, user: Id) -> TxnInfo {
        TxnInfo {
            key: transaction_key(),
            origin,
            user,
        }
    }
}

/// `com/salesforce/api/{api}/{version};client={client}` as Salesforce's `changeOrigin`.
pub fn change_origin(api: &str, version: &str, client: Option<&str>) -> String {
    format!(
        "com/salesforce/api/{api}/{version};client={}",
        client.unwrap_or("")
    )
}

/// The `client=` value of a `Sforce-Call-Options` header (`client=abc, defaultNamespace=x`).
pub fn call_options_client(header: &str) -> Option<&str> {
    header
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("client"))
        .map(|(_, v)| v.trim())
}

/// A random key formatted like a UUID (`0001a2b3-...`).
pub fn transaction_key() -> String {
    uuid_text(&rand::random())
}

/// 16 bytes as UUID text (`0001a2b3-c4d5-...`, lower-case hex).
pub fn uuid_text(b: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            key.push('-');
        }
        key.push(char::from(HEX[usize::from(x >> 4)]));
        key.push(char::from(HEX[usize::from(x & 0xf)]));
    }
    key
}

/// Where committed changes go (Change Data Capture). The contract: `commit` is called once
/// per committed transaction with all of its changes in order (never with rolled-back
/// ones), possibly while the store holds the written table's lock, so it must not call
/// back into the store.
pub trait ChangeSink: Send + Sync + fmt::Debug {
    /// Records the changes one transaction committed; `first_sequence` is the sequence
    /// number of the first of them (1, or more when the transaction committed before).
    fn commit(&self, txn: &TxnInfo, first_sequence: usize, changes: Vec<Change>);
}

/// An open transaction: buffers the changes of one API call until it commits.
#[derive(Debug)]
pub struct Txn {
    info: TxnInfo,
    sink: Option<Arc<dyn ChangeSink>>,
    pending: Mutex<Vec<Change>>,
    /// Changes committed so far.
    committed: Mutex<usize>,
}

impl Txn {
    /// Opens a transaction that commits into `sink` (nothing is published without one).
    pub fn new(sink: Option<Arc<dyn ChangeSink>>, info: TxnInfo) -> Arc<Txn> {
        Arc::new(Txn {
            info,
            sink,
            pending: Mutex::new(Vec::new()),
            committed: Mutex::new(0),
        })
    }

    /// The transaction's identity.
    pub fn info(&self) -> &TxnInfo {
        &self.info
    }

    /// A writer acting as the transaction's user inside it.
    pub fn writer(self: &Arc<Txn>) -> Writer {
        Writer {
            user: self.info.user,
            txn: Some(self.clone()),
        }
    }

    /// Buffers a change.
    pub fn record(&self, change: Change) {
        self.pending.lock().push(change);
    }

    /// A point to roll back to: the number of changes buffered so far.
    pub fn savepoint(&self) -> usize {
        self.pending.lock().len()
    }

    /// Forgets every change buffered after `savepoint` (the API call undid them).
    pub fn rollback_to(&self, savepoint: usize) {
        self.pending.lock().truncate(savepoint);
    }

    /// Hands the buffered changes to the sink; later changes form a new batch of the same
    /// transaction (its sequence numbers continue in the sink).
    pub fn commit(&self) {
        let mut committed = self.committed.lock();
        let changes = std::mem::take(&mut *self.pending.lock());
        if changes.is_empty() {
            return;
        }
        let first = *committed + 1;
        *committed += changes.len();
        if let Some(sink) = &self.sink {
            sink.commit(&self.info, first, changes);
        }
    }
}

/// Who performs a store write, and in which transaction (none: the write commits alone).
#[derive(Debug, Clone)]
pub struct Writer {
    /// The acting user (owner, CreatedById, LastModifiedById, commitUser).
    pub user: Id,
    /// The open transaction, if any.
    pub txn: Option<Arc<Txn>>,
}

impl From<Id> for Writer {
    fn from(user: Id) -> Writer {
        Writer { user, txn: None }
    }
}

impl From<&Writer> for Writer {
    fn from(w: &Writer) -> Writer {
        w.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_and_client_option() {
        assert_eq!(
            change_origin("rest", "60.0", call_options_client("client=pgforce, x=y")),
            "com/salesforce/api/rest/60.0;client=pgforce"
        );
        assert_eq!(
            change_origin("bulkapi", "60.0", None),
            "com/salesforce/api/bulkapi/60.0;client="
        );
        assert_eq!(call_options_client("defaultNamespace=abc"), None);
        let k = transaction_key();
        assert_eq!(k.len(), 36);
        assert_eq!(k.matches('-').count(), 4);
    }
}
