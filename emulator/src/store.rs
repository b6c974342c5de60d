//! The in-memory record store: one table per object, indexes for ids, external ids, unique
//! fields, lookups and SystemModstamp, soft and hard delete, and the system fields.
//!
//! # Record contract
//!
//! Records are stored sparse, as [`Row`]s: only the fields that hold a value, names interned
//! as slots of the object's describe order, values in REST JSON wire format (see
//! [`super::validation`]): datetime `"2024-01-01T00:00:00.000+0000"`, date `"2024-01-01"`,
//! numbers as JSON numbers, multipicklist `"A;B"`, compound address fields as nested objects;
//! a missing field is null. The hot readers (SOQL, Bulk, Change Data Capture) read
//! `Arc<Row>` snapshots ([`Store::row`], [`Store::scan_rows`]); the convenience readers
//! ([`Store::get`], [`Store::scan`]) hand out a [`Record`]: a `serde_json::Map` keyed by
//! canonical field API names holding **every** field of its object (explicit `null`s) in
//! describe order, never `attributes`. A write replaces the `Arc`, it never mutates a row a
//! reader holds.
//!
//! # Concurrency and cost
//!
//! Each object's table sits behind its own `parking_lot::RwLock`: reads are concurrent,
//! writes to one object are serialized, writes to different objects are independent. Id
//! lookups are `O(log n)` (a `BTreeMap` ordered by id, which is creation order), external-id
//! and unique lookups are hash lookups, lookups by parent use an ordered `(parent, child)`
//! index (child relationships only), and getUpdated/getDeleted use ordered timestamp
//! indexes. [`Store::scan`] copies
//! `Arc`s out in chunks and calls back without holding a lock, so a callback may read the
//! store (even the same object) freely.
//!
//! Validation that needs other records (lookups, parents by external id, uniqueness) runs
//! before the table's write lock is taken; uniqueness is re-checked under the lock.
//!
//! # Change reporting
//!
//! Every write method takes a [`Writer`] (a bare user `Id` converts into one) and reports
//! each record it creates, updates, deletes or undeletes as a [`Change`] while it still holds
//! the table's write lock, so changes of one record are reported in the order they were
//! made: into the writer's transaction when it has one, else straight to the change sink
//! as a transaction of its own. [`Store::put_raw`] and [`Store::hard_delete`] report nothing
//! (snapshots, configured users, and the rollbacks of allOrNone calls use them);
//! [`Store::hard_delete_by`] is the reported hard delete.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Bound, ControlFlow};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use super::clock::Clock;
use super::error::{ErrorCode, FieldError};
use super::ids::{Id, IdGenerator};
use super::row::Row;
use super::schema::{Derived, FieldDef, FieldType, ObjectDef, Schema};
use super::txn::{Change, ChangeKind, ChangeSink, TxnInfo, Writer};
use super::validation::{
    self, format_datetime, normalize, Normalized, ParentRef, RefState, WriteKind,
};

mod together;

use together::PendingRow;
pub use together::Together;

/// A record as the convenience readers return it (every field); see the module docs.
pub type Record = Map<String, Value>;

/// How many records [`Store::scan`] copies per lock acquisition.
const SCAN_CHUNK: usize = 1024;

/// Successful upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upserted {
    /// The record written.
    pub id: Id,
    /// True if it was inserted, false if an existing record was updated.
    pub created: bool,
}

/// Why an upsert failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpsertError {
    /// More than one live record has this external id; nothing was written.
    #[error("more than one record matches the external id")]
    Multiple(Vec<Id>),
    /// The field is not an external-id (or Id) field of the object.
    #[error("{0} is not an external id field")]
    NotExternalId(String),
    /// Validation or write error.
    #[error("invalid record: {0:?}")]
    Invalid(Vec<FieldError>),
}

impl From<Vec<FieldError>> for UpsertError {
    fn from(e: Vec<FieldError>) -> Self {
        UpsertError::Invalid(e)
    }
}

/// A deleted record as reported by getDeleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedRecord {
    /// Record id.
    pub id: Id,
    /// When it was deleted.
    pub deleted_date: DateTime<Utc>,
}

/// Values of one external-id or unique field → ids of live records holding them.
#[derive(Debug, Default)]
struct FieldIndex {
    case_sensitive: bool,
    map: FxHashMap<String, Ids>,
}

/// The ids holding one value: almost always one, so that one is kept inline.
#[derive(Debug)]
enum Ids {
    /// One record.
    One(Id),
    /// Several (a non-unique external id), in insertion order.
    Many(Vec<Id>),
}

impl Ids {
    fn as_slice(&self) -> &[Id] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(ids) => ids,
        }
    }
}

/// The key of `v` in a value index (lower-cased unless `case_sensitive`); none for null.
fn index_key(case_sensitive: bool, v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if case_sensitive => Some(s.clone()),
        Value::String(s) => Some(s.to_lowercase()),
        other if case_sensitive => Some(other.to_string()),
        other => Some(other.to_string().to_lowercase()),
    }
}

impl FieldIndex {
    fn key(&self, v: &Value) -> Option<String> {
        index_key(self.case_sensitive, v)
    }

    fn add(&mut self, v: &Value, id: Id) {
        let Some(k) = self.key(v) else { return };
        match self.map.get_mut(&k) {
            None => {
                self.map.insert(k, Ids::One(id));
            }
            Some(Ids::One(first)) => {
                let first = *first;
                self.map.insert(k, Ids::Many(vec![first, id]));
            }
            Some(Ids::Many(ids)) => ids.push(id),
        }
    }

    fn remove(&mut self, v: &Value, id: Id) {
        let Some(k) = self.key(v) else { return };
        let empty = match self.map.get_mut(&k) {
            None => false,
            Some(Ids::One(x)) => *x == id,
            Some(Ids::Many(ids)) => {
                ids.retain(|x| *x != id);
                if let [only] = ids.as_slice() {
                    let only = *only;
                    self.map.insert(k.clone(), Ids::One(only));
                }
                ids_empty(self.map.get(&k))
            }
        };
        if empty {
            self.map.remove(&k);
        }
    }

    fn get(&self, v: &Value) -> &[Id] {
        self.key(v)
            .and_then(|k| self.map.get(&k))
            .map(Ids::as_slice)
            .unwrap_or_default()
    }
}

/// Whether an index entry holds no id.
fn ids_empty(ids: Option<&Ids>) -> bool {
    matches!(ids, Some(Ids::Many(v)) if v.is_empty())
}

/// The mutable part of one object's table.
#[derive(Debug, Default)]
struct TableData {
    /// All records (live and soft-deleted) by id.
    rows: BTreeMap<Id, Arc<Row>>,
    /// Number of soft-deleted rows.
    deleted: usize,
    /// Field name → value index, for external-id and unique fields (live rows only).
    indexes: HashMap<String, FieldIndex>,
    /// Child-relationship reference field name → (parent id, child id), live rows only.
    refs: HashMap<String, BTreeSet<(Id, Id)>>,
    /// (SystemModstamp ms, id) of live rows.
    modstamps: BTreeSet<(i64, Id)>,
    /// (deleted ms, id) of deletions, for getDeleted.
    deletions: BTreeSet<(i64, Id)>,
}

/// One object's table.
#[derive(Debug)]
struct Table {
    object: Arc<ObjectDef>,
    data: RwLock<TableData>,
}

impl Table {
    fn new(object: Arc<ObjectDef>) -> Table {
        let mut data = TableData::default();
        for f in object.indexed_fields() {
            data.indexes.insert(
                f.name.clone(),
                FieldIndex {
                    case_sensitive: f.case_sensitive,
                    map: FxHashMap::default(),
                },
            );
        }
        // Only references that make a child relationship are indexed: OwnerId, CreatedById
        // and LastModifiedById point every record at a handful of users, and indexing them
        // would cost three index entries per record for lookups nobody makes.
        for f in object
            .fields
            .iter()
            .filter(|f| f.field_type == FieldType::Reference && f.child_relationship_name.is_some())
        {
            data.refs.insert(f.name.clone(), BTreeSet::new());
        }
        Table {
            object,
            data: RwLock::new(data),
        }
    }
}

impl TableData {
    /// Adds a live record to the secondary indexes.
    fn index(&mut self, id: Id, r: &Row) {
        for (name, idx) in self.indexes.iter_mut() {
            if let Some(v) = r.get(name) {
                idx.add(&v, id);
            }
        }
        for (name, set) in self.refs.iter_mut() {
            if let Some(parent) = r.get_str(name).and_then(|s| Id::parse(s).ok()) {
                set.insert((parent, id));
            }
        }
        if let Some(ms) = modstamp_ms(r) {
            self.modstamps.insert((ms, id));
        }
    }

    /// Removes a record from the secondary indexes.
    fn unindex(&mut self, id: Id, r: &Row) {
        for (name, idx) in self.indexes.iter_mut() {
            if let Some(v) = r.get(name) {
                idx.remove(&v, id);
            }
        }
        for (name, set) in self.refs.iter_mut() {
            if let Some(parent) = r.get_str(name).and_then(|s| Id::parse(s).ok()) {
                set.remove(&(parent, id));
            }
        }
        if let Some(ms) = modstamp_ms(r) {
            self.modstamps.remove(&(ms, id));
        }
    }

    /// DUPLICATE_VALUE if a unique field of `r` collides with another live record.
    fn check_unique(&self, object: &ObjectDef, id: Id, r: &Row) -> Result<(), FieldError> {
        for f in object.unique_fields() {
            let (Some(idx), Some(v)) = (self.indexes.get(&f.name), r.get(&f.name)) else {
                continue;
            };
            if let Some(other) = idx.get(&v).iter().find(|x| **x != id) {
                return Err(FieldError::with_fields(
                    ErrorCode::DuplicateValue,
                    format!(
                        "duplicate value found: {} duplicates value on record with id: {other}",
                        f.name
                    ),
                    vec![f.name.clone()],
                ));
            }
        }
        Ok(())
    }
}

/// SystemModstamp of a record in epoch ms.
fn modstamp_ms(r: &Row) -> Option<i64> {
    r.get_str("SystemModstamp")
        .and_then(validation::parse_datetime)
        .map(|d| d.timestamp_millis())
}

/// The record store. Cheap to share as `Arc<Store>`; all methods take `&self`.
#[derive(Debug)]
pub struct Store {
    schema: Arc<Schema>,
    /// Lower-cased object name → table.
    tables: HashMap<String, Table>,
    ids: IdGenerator,
    clock: Arc<Clock>,
    /// When the store was created (start of the delete log).
    created_at: DateTime<Utc>,
    /// Where changes go (Change Data Capture), once set.
    sink: RwLock<Option<Arc<dyn ChangeSink>>>,
}

impl Store {
    /// An empty store for every object of `schema`.
    pub fn new(schema: Arc<Schema>, clock: Arc<Clock>) -> Store {
        let tables = schema
            .objects()
            .iter()
            .map(|o| (o.name.to_ascii_lowercase(), Table::new(o.clone())))
            .collect();
        let created_at = clock.now();
        Store {
            schema,
            tables,
            ids: IdGenerator::new(1000),
            clock,
            created_at,
            sink: RwLock::new(None),
        }
    }

    /// Sends every later change to `sink`.
    pub fn set_change_sink(&self, sink: Arc<dyn ChangeSink>) {
        *self.sink.write() = Some(sink);
    }

    /// The change sink, if one is set (API paths open their transactions on it).
    pub fn change_sink(&self) -> Option<Arc<dyn ChangeSink>> {
        self.sink.read().clone()
    }

    /// Reports one change: into the writer's transaction, or as a transaction of its own.
    fn emit(&self, w: &Writer, change: Change) {
        match &w.txn {
            Some(txn) => txn.record(change),
            None => {
                if let Some(sink) = self.sink.read().as_ref() {
                    sink.commit(&TxnInfo::new(String::new(), w.user), 1, vec![change]);
                }
            }
        }
    }

    /// The schema this store holds records of.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The clock used for system timestamps.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// The id generator (the Bulk and query modules use it for job and locator ids).
    pub fn ids(&self) -> &IdGenerator {
        &self.ids
    }

    /// When the delete log starts (getDeleted's lower bound for `earliestDateAvailable`).
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    fn table(&self, object: &str) -> Result<&Table, FieldError> {
        self.tables
            .get(&object.to_ascii_lowercase())
            .ok_or_else(|| {
                FieldError::new(
                    ErrorCode::InvalidType,
                    format!("sObject type '{object}' is not supported."),
                )
            })
    }

    fn table_of(&self, id: &Id) -> Option<&Table> {
        let object = self.schema.object_by_prefix(id.key_prefix())?;
        self.tables.get(&object.name.to_ascii_lowercase())
    }

    /// The record with this id, live or soft-deleted, with every field.
    pub fn get(&self, id: &Id) -> Option<Arc<Record>> {
        self.row(id).map(|r| Arc::new(r.to_map()))
    }

    /// The stored row with this id, live or soft-deleted.
    pub fn row(&self, id: &Id) -> Option<Arc<Row>> {
        self.table_of(id)?.data.read().rows.get(id).cloned()
    }

    /// The live record with this id, or NOT_FOUND / ENTITY_IS_DELETED.
    pub fn get_live(&self, id: &Id) -> Result<Arc<Record>, FieldError> {
        let r = self.row(id).ok_or_else(FieldError::not_found)?;
        if r.is_deleted() {
            return Err(FieldError::entity_is_deleted());
        }
        Ok(Arc::new(r.to_map()))
    }

    /// NOT_FOUND / ENTITY_IS_DELETED unless a live record has this id (without copying it).
    fn check_live(&self, id: &Id) -> Result<(), FieldError> {
        match self.row(id) {
            None => Err(FieldError::not_found()),
            Some(r) if r.is_deleted() => Err(FieldError::entity_is_deleted()),
            Some(_) => Ok(()),
        }
    }

    /// The object name of an id's key prefix.
    pub fn object_of(&self, id: &Id) -> Option<&str> {
        self.schema
            .object_by_prefix(id.key_prefix())
            .map(|o| o.name.as_str())
    }

    /// Live records of `object` whose external-id / unique `field` equals `value`
    /// (case-insensitively unless the field is case-sensitive). `field` may be `Id`.
    pub fn find_by_external_id(
        &self,
        object: &str,
        field: &str,
        value: &str,
    ) -> Result<Vec<Id>, FieldError> {
        let table = self.table(object)?;
        if field.eq_ignore_ascii_case("Id") {
            let found = Id::parse(value).ok().filter(|id| {
                table
                    .data
                    .read()
                    .rows
                    .get(id)
                    .is_some_and(|r| !r.is_deleted())
            });
            return Ok(found.into_iter().collect());
        }
        let Some(f) = table.object.field(field) else {
            return Err(validation::unknown_field(&table.object, field));
        };
        let data = table.data.read();
        let Some(idx) = data.indexes.get(&f.name) else {
            return Err(not_external_id(&f.name));
        };
        Ok(idx.get(&Value::String(value.to_string())).to_vec())
    }

    /// The rows of `object` whose `field` may equal one of `values`, in id order, found
    /// through an index: `Id` (live and soft-deleted rows), or a case-insensitive external-id
    /// or unique field (live rows only, so `None` when `include_deleted`). `None` when there
    /// is no such index; the caller then scans. Values are matched as the index keys them
    /// (ASCII case folded); callers re-check their own comparison on every row.
    pub fn lookup_rows(
        &self,
        object: &str,
        field: &str,
        values: &[&str],
        include_deleted: bool,
    ) -> Option<Vec<Arc<Row>>> {
        let table = self.table(object).ok()?;
        let data = table.data.read();
        let mut ids: Vec<Id> = if field.eq_ignore_ascii_case("Id") {
            values.iter().filter_map(|v| Id::parse(v).ok()).collect()
        } else {
            let f = table.object.field(field)?;
            let idx = data.indexes.get(&f.name)?;
            if include_deleted || idx.case_sensitive || !values.iter().all(|v| v.is_ascii()) {
                return None;
            }
            values
                .iter()
                .flat_map(|v| idx.get(&Value::String((*v).to_string())).iter().copied())
                .collect()
        };
        ids.sort_unstable();
        ids.dedup();
        Some(
            ids.iter()
                .filter_map(|id| data.rows.get(id))
                .filter(|r| include_deleted || !r.is_deleted())
                .cloned()
                .collect(),
        )
    }

    /// Live children of `parent` through `object.field` (e.g. Contacts of an Account via
    /// `Contact.AccountId`), in id order: from the index for child relationships, by a scan
    /// for other references (`OwnerId`).
    pub fn children(&self, object: &str, field: &str, parent: &Id) -> Result<Vec<Id>, FieldError> {
        let table = self.table(object)?;
        let data = table.data.read();
        let canonical = table
            .object
            .field(field)
            .map(|f| f.name.as_str())
            .unwrap_or(field);
        let Some(set) = data.refs.get(canonical) else {
            if table.object.field(field).is_none() {
                return Err(validation::unknown_field(&table.object, field));
            }
            let parent = parent.to_string();
            return Ok(data
                .rows
                .iter()
                .filter(|(_, r)| !r.is_deleted() && r.get_str(canonical) == Some(parent.as_str()))
                .map(|(id, _)| *id)
                .collect());
        };
        let lo = (*parent, Id::MIN);
        Ok(set
            .range(lo..)
            .take_while(|(p, _)| p == parent)
            .map(|(_, c)| *c)
            .collect())
    }

    /// The newest id of `object` (ids grow in creation order), if it has any record.
    pub fn last_id(&self, object: &str) -> Option<Id> {
        let data = self.table(object).ok()?.data.read();
        data.rows.keys().next_back().copied()
    }

    /// Number of records of `object` (live only, or also soft-deleted).
    pub fn count(&self, object: &str, include_deleted: bool) -> Result<usize, FieldError> {
        let data = self.table(object)?.data.read();
        Ok(if include_deleted {
            data.rows.len()
        } else {
            data.rows.len() - data.deleted
        })
    }

    /// Calls `f` for each record of `object` in id order (live only unless
    /// `include_deleted`), with every field, until it returns `ControlFlow::Break`. No lock
    /// is held while `f` runs; records written during the scan may or may not be seen.
    pub fn scan<F>(&self, object: &str, include_deleted: bool, mut f: F) -> Result<(), FieldError>
    where
        F: FnMut(&Arc<Record>) -> ControlFlow<()>,
    {
        self.scan_rows(object, None, include_deleted, |r| f(&Arc::new(r.to_map())))
    }

    /// Like [`Store::scan`] over the stored rows, starting after `after` (for chunked scans
    /// by id range): no copy of any record is made.
    pub fn scan_rows<F>(
        &self,
        object: &str,
        after: Option<Id>,
        include_deleted: bool,
        mut f: F,
    ) -> Result<(), FieldError>
    where
        F: FnMut(&Arc<Row>) -> ControlFlow<()>,
    {
        let table = self.table(object)?;
        let mut cursor = after;
        loop {
            let chunk: Vec<(Id, Arc<Row>)> = {
                let data = table.data.read();
                let lower = match cursor {
                    Some(c) => Bound::Excluded(c),
                    None => Bound::Unbounded,
                };
                data.rows
                    .range((lower, Bound::Unbounded))
                    .take(SCAN_CHUNK)
                    .map(|(id, r)| (*id, r.clone()))
                    .collect()
            };
            let Some((last, _)) = chunk.last() else {
                return Ok(());
            };
            cursor = Some(*last);
            for (_, r) in &chunk {
                if !include_deleted && r.is_deleted() {
                    continue;
                }
                if f(r).is_break() {
                    return Ok(());
                }
            }
            if chunk.len() < SCAN_CHUNK {
                return Ok(());
            }
        }
    }

    /// The `n` most recently created live records of `object`.
    pub fn recent(&self, object: &str, n: usize) -> Result<Vec<Arc<Record>>, FieldError> {
        let data = self.table(object)?.data.read();
        Ok(data
            .rows
            .values()
            .rev()
            .filter(|r| !r.is_deleted())
            .take(n)
            .map(|r| Arc::new(r.to_map()))
            .collect())
    }

    /// Ids of live records of `object` whose SystemModstamp is in `[start, end)`.
    pub fn updated_between(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Id>, FieldError> {
        let data = self.table(object)?.data.read();
        let lo = (start.timestamp_millis(), Id::MIN);
        let hi = (end.timestamp_millis(), Id::MIN);
        Ok(data.modstamps.range(lo..hi).map(|(_, id)| *id).collect())
    }

    /// Records of `object` deleted in `[start, end)`, oldest first.
    pub fn deleted_between(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<DeletedRecord>, FieldError> {
        let data = self.table(object)?.data.read();
        let lo = (start.timestamp_millis(), Id::MIN);
        let hi = (end.timestamp_millis(), Id::MIN);
        Ok(data
            .deletions
            .range(lo..hi)
            .filter_map(|(ms, id)| {
                DateTime::from_timestamp_millis(*ms).map(|deleted_date| DeletedRecord {
                    id: *id,
                    deleted_date,
                })
            })
            .collect())
    }

    /// Inserts a record from a request body; returns its id.
    pub fn insert(
        &self,
        object: &str,
        fields: &Map<String, Value>,
        writer: impl Into<Writer>,
    ) -> Result<Id, Vec<FieldError>> {
        let w = writer.into();
        let table = self.table(object).map_err(|e| vec![e])?;
        let body = normalize(&table.object, fields, WriteKind::Insert)?;
        let values = self.resolve(&table.object, body)?;
        let id = self.ids.next(&table.object.key_prefix);
        let record = self.new_record(&table.object, id, values, w.user);
        let mut data = table.data.write();
        data.check_unique(&table.object, id, &record)
            .map_err(|e| vec![e])?;
        data.index(id, &record);
        let record = Arc::new(record);
        data.rows.insert(id, record.clone());
        self.emit(&w, created(table, id, record, self.clock.now()));
        Ok(id)
    }

    /// Inserts many records of one object, as if by [`Store::insert`] on each body in
    /// order: the same validation, errors and ids. Validated records are written under one
    /// acquisition of the table's write lock per run of rows; a row whose lookups read this
    /// same object (a self lookup or a parent of this object by external id) first writes
    /// the rows before it, so it sees them exactly as sequential inserts would.
    pub fn insert_many(
        &self,
        object: &str,
        bodies: &[Map<String, Value>],
        writer: impl Into<Writer>,
    ) -> Vec<Result<Id, Vec<FieldError>>> {
        let w = writer.into();
        let user = w.user;
        let table = match self.table(object) {
            Ok(t) => t,
            Err(e) => return bodies.iter().map(|_| Err(vec![e.clone()])).collect(),
        };
        let mut results: Vec<Option<Result<Id, Vec<FieldError>>>> = Vec::new();
        results.resize_with(bodies.len(), || None);
        let mut pending: Vec<(usize, Id, Row)> = Vec::new();
        for (i, fields) in bodies.iter().enumerate() {
            let body = match normalize(&table.object, fields, WriteKind::Insert) {
                Ok(b) => b,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            if reads_own_table(&table.object, &body) {
                self.write_pending(table, &mut pending, &mut results, &w);
            }
            let values = match self.resolve(&table.object, body) {
                Ok(v) => v,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            let id = self.ids.next(&table.object.key_prefix);
            pending.push((i, id, self.new_record(&table.object, id, values, user)));
        }
        self.write_pending(table, &mut pending, &mut results, &w);
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(vec![FieldError::not_found()])))
            .collect()
    }

    /// Inserts rows of `object` given as already normalized values by field slot, as
    /// [`Store::insert_many`] would insert bodies that normalize to exactly these values.
    /// The caller guarantees what [`validation::normalize`] and the lookups would check:
    /// every value came through [`validation::normalize_value`] for its field, the fields
    /// are createable and not references, and every required field holds a value. Only
    /// uniqueness is checked here (the Bulk insert path, see `bulk::fast_insert`).
    pub fn insert_slots(
        &self,
        object: &str,
        rows: Vec<Vec<(usize, Value)>>,
        writer: impl Into<Writer>,
    ) -> Vec<Result<Id, Vec<FieldError>>> {
        let w = writer.into();
        let table = match self.table(object) {
            Ok(t) => t,
            Err(e) => return rows.iter().map(|_| Err(vec![e.clone()])).collect(),
        };
        let mut results: Vec<Option<Result<Id, Vec<FieldError>>>> = Vec::new();
        results.resize_with(rows.len(), || None);
        let mut pending: Vec<(usize, Id, Row)> = Vec::with_capacity(rows.len());
        for (i, values) in rows.into_iter().enumerate() {
            let id = self.ids.next(&table.object.key_prefix);
            let row = self.new_record_slots(&table.object, id, values, w.user);
            pending.push((i, id, row));
        }
        self.write_pending(table, &mut pending, &mut results, &w);
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(vec![FieldError::not_found()])))
            .collect()
    }

    /// Writes validated new records in order under one write lock (the tail of
    /// [`Store::insert`] for each).
    fn write_pending(
        &self,
        table: &Table,
        pending: &mut Vec<(usize, Id, Row)>,
        results: &mut [Option<Result<Id, Vec<FieldError>>>],
        w: &Writer,
    ) {
        if pending.is_empty() {
            return;
        }
        let now = self.clock.now();
        let mut data = table.data.write();
        for (i, id, record) in pending.drain(..) {
            results[i] = Some(match data.check_unique(&table.object, id, &record) {
                Ok(()) => {
                    data.index(id, &record);
                    let record = Arc::new(record);
                    data.rows.insert(id, record.clone());
                    self.emit(w, created(table, id, record, now));
                    Ok(id)
                }
                Err(e) => Err(vec![e]),
            });
        }
    }

    /// Updates a live record from a request body.
    pub fn update(
        &self,
        object: &str,
        id: &Id,
        fields: &Map<String, Value>,
        writer: impl Into<Writer>,
    ) -> Result<(), Vec<FieldError>> {
        let table = self.table(object).map_err(|e| vec![e])?;
        self.check_id_object(table, id).map_err(|e| vec![e])?;
        self.check_live(id).map_err(|e| vec![e])?;
        let body = normalize(&table.object, fields, WriteKind::Update)?;
        let values = self.resolve(&table.object, body)?;
        self.apply_update(table, *id, values, &writer.into())
    }

    /// Upserts by an external-id field (or `Id`): updates the single live match, inserts
    /// when there is none (setting the field to `value`), fails on several matches.
    pub fn upsert_by_external_id(
        &self,
        object: &str,
        field: &str,
        value: &str,
        fields: &Map<String, Value>,
        writer: impl Into<Writer>,
    ) -> Result<Upserted, UpsertError> {
        let user = writer.into();
        let table = self.table(object).map_err(|e| vec![e])?;
        let canonical = self.upsert_field(table, field)?;
        let matches = if canonical == "Id" {
            if value.is_empty() {
                Vec::new()
            } else {
                let id = Id::parse(value).map_err(|_| {
                    vec![FieldError::new(
                        ErrorCode::MalformedId,
                        format!("Id: id value of incorrect type: {value}"),
                    )]
                })?;
                self.check_live(&id).map_err(|e| vec![e])?;
                vec![id]
            }
        } else {
            self.find_by_external_id(object, &canonical, value)
                .map_err(|e| vec![e])?
        };
        match matches.as_slice() {
            [] => {
                let mut body = fields.clone();
                if canonical != "Id" {
                    body.retain(|k, _| !k.eq_ignore_ascii_case(&canonical));
                    body.insert(canonical.clone(), Value::String(value.to_string()));
                }
                let id = self.insert(object, &body, &user)?;
                Ok(Upserted { id, created: true })
            }
            [id] => {
                let mut body = fields.clone();
                body.retain(|k, _| !k.eq_ignore_ascii_case(&canonical));
                self.update(object, id, &body, &user)?;
                Ok(Upserted {
                    id: *id,
                    created: false,
                })
            }
            many => Err(UpsertError::Multiple(many.to_vec())),
        }
    }

    /// The canonical name of an upsert key field, which must be `Id` or an external id.
    fn upsert_field(&self, table: &Table, field: &str) -> Result<String, UpsertError> {
        if field.eq_ignore_ascii_case("Id") {
            return Ok("Id".to_string());
        }
        match table.object.field(field) {
            Some(f) if f.external_id || f.id_lookup && f.unique => Ok(f.name.clone()),
            Some(f) => Err(UpsertError::NotExternalId(f.name.clone())),
            None => Err(UpsertError::NotExternalId(field.to_string())),
        }
    }

    /// Soft-deletes a live record (kept for queryAll and getDeleted).
    pub fn delete(&self, id: &Id, writer: impl Into<Writer>) -> Result<(), FieldError> {
        let w = writer.into();
        let user = w.user;
        let table = self.table_of(id).ok_or_else(FieldError::not_found)?;
        let now = self.clock.now();
        let mut data = table.data.write();
        let old = data
            .rows
            .get(id)
            .cloned()
            .ok_or_else(FieldError::not_found)?;
        if old.is_deleted() {
            return Err(FieldError::entity_is_deleted());
        }
        data.unindex(*id, &old);
        let mut r = old.to_sparse_map();
        r.insert("IsDeleted".into(), Value::Bool(true));
        stamp(&table.object, &mut r, now, user);
        data.deleted += 1;
        data.deletions.insert((now.timestamp_millis(), *id));
        let r = Arc::new(Row::from_map(table.object.clone(), &r));
        data.rows.insert(*id, r.clone());
        self.emit(
            &w,
            Change {
                object: table.object.clone(),
                id: *id,
                kind: ChangeKind::Delete,
                before: Some(old),
                after: Some(r),
                at: now,
            },
        );
        Ok(())
    }

    /// Removes a record for good (live or soft-deleted) without reporting a change (the
    /// undo of an allOrNone call); it is still reported by getDeleted.
    pub fn hard_delete(&self, id: &Id) -> Result<(), FieldError> {
        self.remove_row(id).map(|_| ())
    }

    /// Removes a record for good (Bulk `hardDelete`) and reports a DELETE change unless it
    /// was already soft-deleted (that delete was reported then).
    pub fn hard_delete_by(&self, id: &Id, writer: impl Into<Writer>) -> Result<(), FieldError> {
        let w = writer.into();
        let (table, old, now) = self.remove_row(id)?;
        if !old.is_deleted() {
            self.emit(
                &w,
                Change {
                    object: table.object.clone(),
                    id: *id,
                    kind: ChangeKind::Delete,
                    before: Some(old),
                    after: None,
                    at: now,
                },
            );
        }
        Ok(())
    }

    /// The removal both hard deletes share.
    fn remove_row(&self, id: &Id) -> Result<(&Table, Arc<Row>, DateTime<Utc>), FieldError> {
        let table = self.table_of(id).ok_or_else(FieldError::not_found)?;
        let now = self.clock.now();
        let mut data = table.data.write();
        let old = data.rows.remove(id).ok_or_else(FieldError::not_found)?;
        if old.is_deleted() {
            data.deleted -= 1;
        } else {
            data.unindex(*id, &old);
            data.deletions.insert((now.timestamp_millis(), *id));
        }
        Ok((table, old, now))
    }

    /// Restores a soft-deleted record (fails with DUPLICATE_VALUE if a unique value was
    /// taken meanwhile).
    pub fn undelete(&self, id: &Id, writer: impl Into<Writer>) -> Result<(), FieldError> {
        let w = writer.into();
        let user = w.user;
        let table = self.table_of(id).ok_or_else(FieldError::not_found)?;
        let now = self.clock.now();
        let mut data = table.data.write();
        let old = data
            .rows
            .get(id)
            .cloned()
            .ok_or_else(FieldError::not_found)?;
        if !old.is_deleted() {
            return Err(FieldError::new(
                ErrorCode::UnknownException,
                "record is not deleted",
            ));
        }
        let mut r = old.to_sparse_map();
        r.insert("IsDeleted".into(), Value::Bool(false));
        stamp(&table.object, &mut r, now, user);
        let r = Row::from_map(table.object.clone(), &r);
        data.check_unique(&table.object, *id, &r)?;
        data.deleted -= 1;
        data.deletions.retain(|(_, d)| d != id);
        data.index(*id, &r);
        let r = Arc::new(r);
        data.rows.insert(*id, r.clone());
        self.emit(
            &w,
            Change {
                object: table.object.clone(),
                id: *id,
                kind: ChangeKind::Undelete,
                before: Some(old),
                after: Some(r),
                at: now,
            },
        );
        Ok(())
    }

    /// Stores a complete record as is (no validation); used for configured users and
    /// snapshots. The record must carry a valid `Id` of this object.
    pub fn put_raw(&self, object: &str, mut record: Record) -> Result<Id, FieldError> {
        let table = self.table(object)?;
        let id = record
            .get("Id")
            .and_then(Value::as_str)
            .and_then(|s| Id::parse(s).ok())
            .ok_or_else(|| FieldError::new(ErrorCode::MalformedId, "record has no valid Id"))?;
        self.check_id_object(table, &id)?;
        record.insert("Id".into(), Value::String(id.to_string()));
        let record = Row::from_map(table.object.clone(), &record);
        if let Some(n) = super::ids::counter_of(&id) {
            self.ids.bump_past(n);
        }
        let mut data = table.data.write();
        if let Some(old) = data.rows.remove(&id) {
            if old.is_deleted() {
                data.deleted -= 1;
            } else {
                data.unindex(id, &old);
            }
        }
        if record.is_deleted() {
            data.deleted += 1;
        } else {
            data.index(id, &record);
        }
        data.rows.insert(id, Arc::new(record));
        Ok(id)
    }

    /// Records a deletion in the delete log (snapshot restore).
    pub fn put_deletion(&self, object: &str, id: Id, at: DateTime<Utc>) -> Result<(), FieldError> {
        self.table(object)?
            .data
            .write()
            .deletions
            .insert((at.timestamp_millis(), id));
        Ok(())
    }

    /// The whole delete log of `object`.
    pub fn deletions(&self, object: &str) -> Result<Vec<DeletedRecord>, FieldError> {
        self.deleted_between(object, DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC)
    }

    /// NOT_FOUND unless `id` belongs to the table's object.
    fn check_id_object(&self, table: &Table, id: &Id) -> Result<(), FieldError> {
        if id.key_prefix() == table.object.key_prefix {
            Ok(())
        } else {
            Err(FieldError::not_found())
        }
    }

    /// Resolves parents given by external id and checks every lookup value.
    fn resolve(
        &self,
        object: &ObjectDef,
        body: Normalized,
    ) -> Result<Map<String, Value>, Vec<FieldError>> {
        self.resolve_in(object, body, &[])
    }

    /// [`Store::resolve`] against the store and the not yet visible rows of `pending`.
    fn resolve_in(
        &self,
        object: &ObjectDef,
        body: Normalized,
        pending: &[PendingRow<'_>],
    ) -> Result<Map<String, Value>, Vec<FieldError>> {
        let mut values = body.values;
        for p in &body.parent_refs {
            let id = self.resolve_parent(p, pending).map_err(|e| vec![e])?;
            values.insert(p.field.clone(), Value::String(id.to_string()));
        }
        for (name, v) in &values {
            let (Some(f), Some(s)) = (object.field(name), v.as_str()) else {
                continue;
            };
            if f.field_type != FieldType::Reference {
                continue;
            }
            self.check_lookup(f, s, pending).map_err(|e| vec![e])?;
        }
        Ok(values)
    }

    /// Checks one lookup value (an 18-char id string) against the store and `pending`.
    fn check_lookup(
        &self,
        f: &FieldDef,
        value: &str,
        pending: &[PendingRow<'_>],
    ) -> Result<(), FieldError> {
        let id = Id::parse(value).map_err(|_| validation::malformed_id(f, value))?;
        let state = match self.row(&id) {
            None if pending.iter().any(|p| p.id == id) => RefState::Live,
            None => RefState::Missing,
            Some(r) if r.is_deleted() => RefState::Deleted,
            Some(_) => RefState::Live,
        };
        validation::check_reference(f, self.object_of(&id), value, state)
    }

    /// The id of the parent a [`ParentRef`] names, in the store or among `pending`.
    fn resolve_parent(&self, p: &ParentRef, pending: &[PendingRow<'_>]) -> Result<Id, FieldError> {
        let mut ids = self.find_by_external_id(&p.object, &p.ext_field, &p.value)?;
        ids.extend(pending_matches(p, pending));
        match ids.as_slice() {
            [id] => Ok(*id),
            [] => Err(FieldError::with_fields(
                ErrorCode::InvalidField,
                format!(
                    "Foreign key external ID: {} not found for field {} in entity {}",
                    p.value, p.ext_field, p.object
                ),
                vec![p.field.clone()],
            )),
            _ => Err(FieldError::with_fields(
                ErrorCode::DuplicateExternalId,
                format!(
                    "Foreign key external ID: {} matched more than one record for field {} in entity {}",
                    p.value, p.ext_field, p.object
                ),
                vec![p.field.clone()],
            )),
        }
    }

    /// A new record: defaults, the given values, system and derived fields. Built by slot
    /// ([`Draft`]), not through a map keyed by field names: this runs for every inserted row.
    fn new_record(
        &self,
        object: &Arc<ObjectDef>,
        id: Id,
        values: Map<String, Value>,
        user: Id,
    ) -> Row {
        let mut r = Draft::with_defaults(object);
        for (k, v) in values {
            r.set(&k, v);
        }
        self.finish_record(r, id, user)
    }

    /// [`Store::new_record`] from values by field slot.
    fn new_record_slots(
        &self,
        object: &Arc<ObjectDef>,
        id: Id,
        values: Vec<(usize, Value)>,
        user: Id,
    ) -> Row {
        let mut r = Draft::with_defaults(object);
        for (slot, v) in values {
            r.set_slot(slot, v);
        }
        self.finish_record(r, id, user)
    }

    /// The system and derived fields of a new record's draft, and its row.
    fn finish_record(&self, mut r: Draft<'_>, id: Id, user: Id) -> Row {
        let object = r.object;
        let now = self.clock.now();
        let ts = format_datetime(now);
        let user_id = user.to_string();
        r.set("Id", Value::String(id.to_string()));
        r.set("IsDeleted", Value::Bool(false));
        if has(object, "CreatedDate") {
            r.set("CreatedDate", Value::String(ts.clone()));
            r.set("CreatedById", Value::String(user_id.clone()));
        }
        if has(object, "OwnerId") && r.get("OwnerId").is_none() {
            r.set("OwnerId", Value::String(user_id.clone()));
        }
        if object.custom && has(object, "Name") && r.get("Name").is_none() {
            r.set("Name", Value::String(id.to_string()));
        }
        if has(object, "LastModifiedDate") {
            r.set("LastModifiedDate", Value::String(ts.clone()));
            r.set("LastModifiedById", Value::String(user_id));
        }
        if has(object, "SystemModstamp") {
            r.set("SystemModstamp", Value::String(ts));
        }
        for f in object.derived_fields() {
            let v = derived_value(f, |k| r.get(k));
            r.set(&f.name, v);
        }
        r.into_row()
    }

    /// Merges `values` into the live record under the write lock.
    fn apply_update(
        &self,
        table: &Table,
        id: Id,
        values: Map<String, Value>,
        w: &Writer,
    ) -> Result<(), Vec<FieldError>> {
        let user = w.user;
        let now = self.clock.now();
        let mut data = table.data.write();
        let old = data
            .rows
            .get(&id)
            .cloned()
            .ok_or_else(|| vec![FieldError::not_found()])?;
        if old.is_deleted() {
            return Err(vec![FieldError::entity_is_deleted()]);
        }
        let mut r = old.to_sparse_map();
        for (k, v) in values {
            r.insert(k, v);
        }
        stamp(&table.object, &mut r, now, user);
        derive(&table.object, &mut r);
        let r = Row::from_map(table.object.clone(), &r);
        data.check_unique(&table.object, id, &r)
            .map_err(|e| vec![e])?;
        data.unindex(id, &old);
        data.index(id, &r);
        let r = Arc::new(r);
        data.rows.insert(id, r.clone());
        self.emit(
            w,
            Change {
                object: table.object.clone(),
                id,
                kind: ChangeKind::Update,
                before: Some(old),
                after: Some(r),
                at: now,
            },
        );
        Ok(())
    }
}

/// The CREATE change of a new record.
fn created(table: &Table, id: Id, record: Arc<Row>, at: DateTime<Utc>) -> Change {
    Change {
        object: table.object.clone(),
        id,
        kind: ChangeKind::Create,
        before: None,
        after: Some(record),
        at,
    }
}

/// Whether resolving `body` reads `object`'s own table (a lookup value with its key prefix,
/// or a parent of the same object by external id). Conservative: a false positive only costs
/// an extra lock acquisition in [`Store::insert_many`].
fn reads_own_table(object: &ObjectDef, body: &Normalized) -> bool {
    body.parent_refs
        .iter()
        .any(|p| p.object.eq_ignore_ascii_case(&object.name))
        || body.values.iter().any(|(name, v)| {
            v.as_str().is_some_and(|s| {
                s.len() >= 3
                    && s.as_bytes()[..3].eq_ignore_ascii_case(object.key_prefix.as_bytes())
                    && object
                        .field(name)
                        .is_some_and(|f| f.field_type == FieldType::Reference)
            })
        })
}

/// The pending rows a [`ParentRef`] names (same object, same external-id value).
fn pending_matches<'a>(
    p: &'a ParentRef,
    pending: &'a [PendingRow<'_>],
) -> impl Iterator<Item = Id> + 'a {
    pending.iter().filter_map(move |r| {
        let object = &r.table.object;
        if !object.name.eq_ignore_ascii_case(&p.object) {
            return None;
        }
        let f = object.field(&p.ext_field)?;
        let wanted = index_key(f.case_sensitive, &Value::String(p.value.clone()))?;
        let have = index_key(f.case_sensitive, &r.row.get(&f.name)?)?;
        (have == wanted).then_some(r.id)
    })
}

/// FieldError for an upsert/lookup on a field that is not an external id.
fn not_external_id(field: &str) -> FieldError {
    FieldError::with_fields(
        ErrorCode::InvalidField,
        format!("Invalid field for upsert, must be an External Id custom or standard indexed field: {field}"),
        vec![field.to_string()],
    )
}

/// Whether a record is soft-deleted.
pub fn is_deleted(r: &Record) -> bool {
    r.get("IsDeleted").and_then(Value::as_bool).unwrap_or(false)
}

/// Whether `object` has a field called exactly `name`.
fn has(object: &ObjectDef, name: &str) -> bool {
    object.slot(name).is_some()
}

/// Sets LastModifiedDate/ById and SystemModstamp (when the object has them) on a draft.
/// A record's stamp only moves forward: a change in the same millisecond as the record's
/// last one gets the next millisecond, so an update always changes LastModifiedDate (as
/// its change event's `changedFields` always lists it) and `SystemModstamp > t` pollers
/// see every change.
fn stamp(object: &ObjectDef, r: &mut Map<String, Value>, now: DateTime<Utc>, user: Id) {
    let previous = ["SystemModstamp", "LastModifiedDate"].iter().find_map(|f| {
        r.get(*f)
            .and_then(Value::as_str)
            .and_then(validation::parse_datetime)
    });
    let now = match previous {
        Some(p) if p >= now => p + chrono::Duration::milliseconds(1),
        _ => now,
    };
    let ts = Value::String(format_datetime(now));
    if has(object, "LastModifiedDate") {
        set(r, "LastModifiedDate", ts.clone());
        set(r, "LastModifiedById", Value::String(user.to_string()));
    }
    if has(object, "SystemModstamp") {
        set(r, "SystemModstamp", ts);
    }
}

/// `r.insert(key, v)` without allocating the key when it is already present; the entry
/// keeps its position either way.
fn set(r: &mut Map<String, Value>, key: &str, v: Value) {
    match r.get_mut(key) {
        Some(slot) => *slot = v,
        None => {
            r.insert(key.to_string(), v);
        }
    }
}

/// Recomputes derived fields (person Name, compound addresses) on a draft.
fn derive(object: &ObjectDef, r: &mut Map<String, Value>) {
    for f in object.derived_fields() {
        let v = derived_value(f, |k| r.get(k));
        set(r, &f.name, v);
    }
}

/// The value of derived field `f` from the other fields (`get` reads one by name).
fn derived_value<'a>(f: &FieldDef, get: impl Fn(&str) -> Option<&'a Value>) -> Value {
    match &f.derived {
        Some(Derived::PersonName) => person_name(get),
        Some(Derived::Address { prefix }) => address(get, prefix),
        None => Value::Null,
    }
}

/// A new record being built, one cell per field slot (the insert path's draft).
struct Draft<'o> {
    /// The record's object.
    object: &'o Arc<ObjectDef>,
    /// Slot `i` holds field `i`'s value, if set.
    cells: Vec<Option<Value>>,
}

impl<'o> Draft<'o> {
    /// An empty draft of `object`.
    fn new(object: &'o Arc<ObjectDef>) -> Draft<'o> {
        Draft {
            object,
            cells: vec![None; object.fields.len()],
        }
    }

    /// A draft holding the object's default values (picklist defaults, checkboxes).
    fn with_defaults(object: &'o Arc<ObjectDef>) -> Draft<'o> {
        let mut r = Draft::new(object);
        for f in object.defaulted_fields() {
            if let Some(v) = f.default_value() {
                r.set(&f.name, v);
            }
        }
        r
    }

    /// Sets field `name` (ignored when `object` has no such field, as [`Row::from_map`]
    /// drops unknown keys).
    fn set(&mut self, name: &str, v: Value) {
        if let Some(slot) = self.object.slot(name) {
            self.set_slot(slot, v);
        }
    }

    /// Sets the field of `slot` (ignored past the object's fields).
    fn set_slot(&mut self, slot: usize, v: Value) {
        if let Some(cell) = self.cells.get_mut(slot) {
            *cell = Some(v);
        }
    }

    /// The non-null value of field `name`.
    fn get(&self, name: &str) -> Option<&Value> {
        let i = self.object.slot(name)?;
        self.cells.get(i)?.as_ref().filter(|v| !v.is_null())
    }

    /// The stored row: the non-null cells in slot order.
    fn into_row(self) -> Row {
        let cells: Vec<(u16, &Value)> = self
            .cells
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((u16::try_from(i).ok()?, v.as_ref()?)))
            .filter(|(_, v)| !v.is_null())
            .collect();
        Row::from_cells(self.object.clone(), &cells)
    }
}

fn person_name<'a>(get: impl Fn(&str) -> Option<&'a Value>) -> Value {
    let parts: Vec<&str> = ["FirstName", "LastName"]
        .iter()
        .filter_map(|k| get(k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        Value::Null
    } else {
        Value::String(parts.join(" "))
    }
}

/// The compound address of `prefix` (`Billing`): `null` when every component is null, else
/// the object of its non-null components in this key order (a stored row keeps no null
/// members; its readers add all eight back, see [`crate::row`]).
fn address<'a>(get: impl Fn(&str) -> Option<&'a Value>, prefix: &str) -> Value {
    const PARTS: [(&str, &str); 8] = [
        ("city", "City"),
        ("country", "Country"),
        ("geocodeAccuracy", "GeocodeAccuracy"),
        ("latitude", "Latitude"),
        ("longitude", "Longitude"),
        ("postalCode", "PostalCode"),
        ("state", "State"),
        ("street", "Street"),
    ];
    // One reused key buffer: this runs for every address of every written record.
    let mut key = String::with_capacity(prefix.len() + 16);
    let mut component = |suffix: &str| {
        key.clear();
        key.push_str(prefix);
        key.push_str(suffix);
        get(key.as_str()).filter(|v| !v.is_null()).cloned()
    };
    let values: [Option<Value>; 8] = PARTS.map(|(_, suffix)| component(suffix));
    if values.iter().all(Option::is_none) {
        return Value::Null;
    }
    let mut m = Map::new();
    for ((name, _), v) in PARTS.iter().zip(values) {
        if let Some(v) = v {
            m.insert((*name).to_string(), v);
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> (Store, Id) {
        let s = Store::new(Arc::new(Schema::standard()), Arc::new(Clock::new()));
        let user = Id::from_parts("005", 1);
        s.put_raw(
            "User",
            json!({"Id": user.to_string(), "Username": "u@x.com", "LastName": "U"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .unwrap();
        (s, user)
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn insert_fills_every_field_and_system_fields() {
        let (s, u) = store();
        let id = s
            .insert(
                "Account",
                &body(json!({"Name": "Acme", "BillingCity": "Paris"})),
                u,
            )
            .unwrap();
        let r = s.get(&id).unwrap();
        assert_eq!(r["Name"], "Acme");
        assert_eq!(r["OwnerId"], u.to_string());
        assert_eq!(r["CreatedById"], u.to_string());
        assert_eq!(r["IsDeleted"], false);
        assert_eq!(r["Phone"], Value::Null);
        assert_eq!(r["BillingAddress"]["city"], "Paris");
        assert!(r["CreatedDate"].as_str().unwrap().ends_with("+0000"));
        assert_eq!(r.len(), s.schema().object("Account").unwrap().fields.len());
    }

    #[test]
    fn every_update_moves_the_records_stamps_forward_even_within_a_millisecond() {
        let (s, u) = store();
        let id = s.insert("Account", &body(json!({"Name": "A"})), u).unwrap();
        let mut last = s.get(&id).unwrap()["SystemModstamp"].clone();
        for i in 0..20 {
            s.update("Account", &id, &body(json!({"Name": format!("A{i}")})), u)
                .unwrap();
            let r = s.get(&id).unwrap();
            let parse = |v: &Value| validation::parse_datetime(v.as_str().unwrap()).unwrap();
            assert!(parse(&r["SystemModstamp"]) > parse(&last), "update {i}");
            assert_eq!(r["LastModifiedDate"], r["SystemModstamp"]);
            last = r["SystemModstamp"].clone();
        }
    }

    #[test]
    fn external_ids_are_unique_and_case_insensitive() {
        let (s, u) = store();
        let a = s
            .insert(
                "Account",
                &body(json!({"Name": "A", "External_Id__c": "Ext-1"})),
                u,
            )
            .unwrap();
        assert_eq!(
            s.find_by_external_id("Account", "external_id__c", "EXT-1")
                .unwrap(),
            vec![a]
        );
        let e = s
            .insert(
                "Account",
                &body(json!({"Name": "B", "External_Id__c": "ext-1"})),
                u,
            )
            .unwrap_err();
        assert_eq!(e[0].code, ErrorCode::DuplicateValue);
        assert!(e[0].message.ends_with(&a.to_string()));
        let up = s
            .upsert_by_external_id(
                "Account",
                "External_Id__c",
                "EXT-1",
                &body(json!({"Name": "A2"})),
                u,
            )
            .unwrap();
        assert_eq!(
            up,
            Upserted {
                id: a,
                created: false
            }
        );
        assert_eq!(s.get(&a).unwrap()["Name"], "A2");
        let up = s
            .upsert_by_external_id(
                "Account",
                "External_Id__c",
                "Ext-2",
                &body(json!({"Name": "C"})),
                u,
            )
            .unwrap();
        assert!(up.created);
        assert!(matches!(
            s.upsert_by_external_id("Account", "Name", "x", &Map::new(), u),
            Err(UpsertError::NotExternalId(_))
        ));
    }

    #[test]
    fn lookups_parents_and_children() {
        let (s, u) = store();
        let a = s
            .insert(
                "Account",
                &body(json!({"Name": "A", "External_Id__c": "A-1"})),
                u,
            )
            .unwrap();
        let c = s.insert("Contact", &body(json!({"LastName": "S", "FirstName": "Jo", "Account": {"External_Id__c": "a-1"}})), u).unwrap();
        let r = s.get(&c).unwrap();
        assert_eq!(r["AccountId"], a.to_string());
        assert_eq!(r["Name"], "Jo S");
        assert_eq!(s.children("Contact", "AccountId", &a).unwrap(), vec![c]);
        assert_eq!(
            s.children("Contact", "OwnerId", &u).unwrap(),
            vec![c],
            "references without a child relationship are found by a scan"
        );
        let e = s
            .insert(
                "Contact",
                &body(json!({"LastName": "S", "AccountId": c.to_string()})),
                u,
            )
            .unwrap_err();
        assert_eq!(e[0].code, ErrorCode::FieldIntegrityException);
        let missing = Id::from_parts("001", 999_999);
        let e = s
            .insert(
                "Contact",
                &body(json!({"LastName": "S", "AccountId": missing.to_string()})),
                u,
            )
            .unwrap_err();
        assert_eq!(e[0].code, ErrorCode::InvalidCrossReferenceKey);
        let e = s
            .insert(
                "Contact",
                &body(json!({"LastName": "S", "Account": {"External_Id__c": "nope"}})),
                u,
            )
            .unwrap_err();
        assert_eq!(
            e[0].message,
            "Foreign key external ID: nope not found for field External_Id__c in entity Account"
        );
        s.delete(&a, u).unwrap();
        let e = s
            .insert(
                "Contact",
                &body(json!({"LastName": "S", "AccountId": a.to_string()})),
                u,
            )
            .unwrap_err();
        assert_eq!(e[0].code, ErrorCode::EntityIsDeleted);
    }

    #[test]
    fn delete_keeps_record_for_query_all_and_logs_it() {
        let (s, u) = store();
        let start = s.clock().now();
        let a = s
            .insert(
                "Account",
                &body(json!({"Name": "A", "External_Id__c": "X"})),
                u,
            )
            .unwrap();
        s.delete(&a, u).unwrap();
        assert_eq!(
            s.delete(&a, u).unwrap_err().code,
            ErrorCode::EntityIsDeleted
        );
        assert_eq!(s.get_live(&a).unwrap_err().code, ErrorCode::EntityIsDeleted);
        assert_eq!(s.count("Account", false).unwrap(), 0);
        assert_eq!(s.count("Account", true).unwrap(), 1);
        assert!(s
            .find_by_external_id("Account", "External_Id__c", "X")
            .unwrap()
            .is_empty());
        let end = s.clock().now() + chrono::Duration::seconds(1);
        assert_eq!(s.deleted_between("Account", start, end).unwrap()[0].id, a);
        assert!(s.updated_between("Account", start, end).unwrap().is_empty());
        let mut seen = 0;
        s.scan("Account", true, |_| {
            seen += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(seen, 1);
        s.undelete(&a, u).unwrap();
        assert_eq!(s.count("Account", false).unwrap(), 1);
        s.hard_delete(&a).unwrap();
        assert!(s.get(&a).is_none());
    }

    #[test]
    fn scan_crosses_chunks_and_may_read_the_store() {
        let (s, u) = store();
        let mut ids = Vec::new();
        for i in 0..(SCAN_CHUNK + 10) {
            ids.push(
                s.insert("Account", &body(json!({"Name": format!("A{i}")})), u)
                    .unwrap(),
            );
        }
        let mut seen = Vec::new();
        s.scan("Account", false, |r| {
            let id = Id::parse(r["Id"].as_str().unwrap_or_default()).unwrap();
            assert!(s.get(&id).is_some());
            seen.push(id);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(seen, ids);
        let start = s.clock().now() - chrono::Duration::minutes(1);
        let end = s.clock().now() + chrono::Duration::minutes(1);
        assert_eq!(
            s.updated_between("Account", start, end).unwrap().len(),
            ids.len()
        );
    }

    #[test]
    fn insert_many_matches_sequential_inserts() {
        let bodies: Vec<Map<String, Value>> = [
            json!({"Name": "A", "External_Id__c": "E-1"}),
            json!({"Name": "B", "External_Id__c": "e-1"}),
            json!({"Name": "C", "Parent": {"External_Id__c": "E-1"}}),
            json!({"Name": "D", "NoSuchField__c": "x"}),
            json!({"Name": "E", "Parent": {"External_Id__c": "nope"}}),
            json!({"External_Id__c": "E-2"}),
            json!({"Name": "F", "External_Id__c": "E-3"}),
            json!({"Name": "G", "Parent": {"External_Id__c": "E-3"}}),
        ]
        .into_iter()
        .map(body)
        .collect();
        let (one, u) = store();
        let sequential: Vec<_> = bodies.iter().map(|b| one.insert("Account", b, u)).collect();
        let (many, u) = store();
        let batched = many.insert_many("Account", &bodies, u);
        assert_eq!(batched, sequential);
        assert!(batched[2].is_ok() && batched[7].is_ok());
        for r in sequential.iter().flatten() {
            let (a, b) = (one.get(r).unwrap(), many.get(r).unwrap());
            assert_eq!(a["ParentId"], b["ParentId"]);
            assert_eq!(a["Name"], b["Name"]);
        }
        assert_eq!(
            many.count("Account", false).unwrap(),
            one.count("Account", false).unwrap()
        );
        let unknown = many.insert_many("Nope", &bodies[..1], u);
        assert_eq!(
            unknown[0].as_ref().unwrap_err()[0].code,
            ErrorCode::InvalidType
        );
    }

    #[test]
    fn update_validates_and_restamps() {
        let (s, u) = store();
        let id = s
            .insert("Contact", &body(json!({"LastName": "S"})), u)
            .unwrap();
        s.update(
            "Contact",
            &id,
            &body(json!({"Email": "a@b.co", "FirstName": "Al"})),
            u,
        )
        .unwrap();
        let r = s.get(&id).unwrap();
        assert_eq!(r["Name"], "Al S");
        let e = s
            .update("Contact", &id, &body(json!({"Email": "bad"})), u)
            .unwrap_err();
        assert_eq!(e[0].code, ErrorCode::InvalidEmailAddress);
        let other = Id::from_parts("003", 999_999);
        assert_eq!(
            s.update("Contact", &other, &Map::new(), u).unwrap_err()[0].code,
            ErrorCode::NotFound
        );
        let custom = s.insert("Subscription__c", &Map::new(), u).unwrap();
        assert_eq!(s.get(&custom).unwrap()["Name"], custom.to_string());
    }
}
