//! A mapping compiled against one `Relation`, and the row change → records logic.
//!
//! Semantics (also in the `mapping` module docs):
//! - INSERT: upsert if the row passes the filter.
//! - UPDATE: upsert if the new row passes. If the external id changed (seen when the old
//!   key is sent: the column is in the replica identity, or identity is FULL), the old
//!   record is first removed per the `delete` policy. If the new row fails the filter and
//!   the old one passed (or is unknown), `on_filter_exit` decides: `delete` applies the
//!   `delete` policy, `ignore` leaves the record.
//! - DELETE: the `delete` policy, unless the old row (identity FULL) shows it never
//!   passed the filter.

use std::sync::Arc;

use super::convert;
use super::error::{value_type, ErrorKind, MappingError, RecordKey};
use super::filter::CompiledFilter;
use super::record::{FieldName, FieldValue, MappedChange, MappedOp, ParentRef, WriteBack};
use crate::change::{Operation, Relation, ReplicaIdentity, Row, RowChange};
use crate::config::{DeletePolicy, FilterExit, MappingConfig, Scalar, Transform, Zone};
use crate::pgoutput::value::Value;

/// A mapping with every column resolved to an index of one relation version.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    name: Arc<str>,
    object: Arc<str>,
    external_id_field: Arc<str>,
    /// The key field is matched by value, not upserted by (`external_id.match_by`).
    match_by: bool,
    relation: Arc<Relation>,
    key: Column,
    /// Whether the old row of UPDATE/DELETE carries the external id column.
    key_in_old: bool,
    fields: Vec<(Column, FieldName, Option<Transform>)>,
    lookups: Vec<Lookup>,
    filter: CompiledFilter,
    on_filter_exit: FilterExit,
    delete: DeletePolicy,
    /// The column receiving the record Id.
    write_back: Option<Column>,
    zone: Zone,
}

/// A resolved source column.
#[derive(Debug, Clone)]
struct Column {
    idx: usize,
    name: String,
}

/// A resolved lookup.
#[derive(Debug, Clone)]
struct Lookup {
    column: Column,
    parent: ParentTemplate,
    csv: FieldName,
    lookup_field: String,
}

/// The parent part of a [`ParentRef`], without the id.
#[derive(Debug, Clone)]
struct ParentTemplate {
    object: Arc<str>,
    external_id_field: Arc<str>,
    synced: bool,
}

impl CompiledMapping {
    /// Resolve `mapping`'s columns in `relation`. A missing column (dropped, renamed) is an
    /// error naming it.
    pub fn compile(mapping: &MappingConfig, relation: Arc<Relation>) -> Result<Self, MappingError> {
        let err = |column: &str| MappingError {
            mapping: mapping.name.clone(),
            column: Some(column.to_string()),
            field: None,
            value_type: None,
            kind: ErrorKind::MissingColumn,
            record: None,
        };
        let col = |name: &str| {
            relation
                .column_index(name)
                .map(|idx| Column {
                    idx,
                    name: name.to_string(),
                })
                .ok_or_else(|| err(name))
        };
        let key = col(&mapping.external_id.column)?;
        let key_in_old =
            relation.replica_identity == ReplicaIdentity::Full || relation.columns[key.idx].is_key;
        let fields = mapping
            .fields
            .iter()
            .map(|(c, spec)| {
                Ok((
                    col(c)?,
                    FieldName::Field(spec.field.clone()),
                    spec.transform.clone(),
                ))
            })
            .collect::<Result<_, MappingError>>()?;
        let lookups = mapping
            .lookups
            .iter()
            .map(|l| {
                Ok(Lookup {
                    column: col(&l.column)?,
                    parent: ParentTemplate {
                        object: l.object.as_str().into(),
                        external_id_field: l.external_id_field.as_str().into(),
                        synced: l.parent_synced,
                    },
                    csv: FieldName::Parent {
                        relationship: l.relationship.clone(),
                        external_id_field: l.external_id_field.clone(),
                    },
                    lookup_field: l.lookup_field(),
                })
            })
            .collect::<Result<_, MappingError>>()?;
        let filter = CompiledFilter::compile(&mapping.filter, &relation).map_err(|c| err(&c))?;
        let write_back = match &mapping.write_back {
            Some(w) => Some(col(&w.column)?),
            None => None,
        };
        Ok(CompiledMapping {
            name: mapping.name.as_str().into(),
            object: mapping.object.as_str().into(),
            external_id_field: mapping.external_id.field.as_str().into(),
            match_by: mapping.external_id.match_by,
            relation,
            key,
            key_in_old,
            fields,
            lookups,
            filter,
            on_filter_exit: mapping.on_filter_exit,
            delete: mapping.delete.clone(),
            write_back,
            zone: mapping.timezone.unwrap_or(Zone::utc()),
        })
    }

    /// The relation version this was compiled against.
    pub fn relation(&self) -> &Arc<Relation> {
        &self.relation
    }

    /// The mapping's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records for one row change: none (filtered, ignored), one, or two (a key change:
    /// removal of the old record, then the upsert).
    /// An error names the record (object, external id) whenever the key can be read.
    pub fn map(&self, change: &RowChange) -> Result<Vec<MappedChange>, MappingError> {
        let result = match change.op {
            Operation::Insert => self.map_insert(self.row(change.new.as_ref(), "new")?),
            Operation::Update => self.map_update(change),
            Operation::Delete => self.map_delete(self.row(change.old.as_ref(), "old")?),
        };
        result.map_err(|mut e| {
            e.record = self.readable_key(change).map(|external_id| {
                Box::new(RecordKey {
                    object: self.object.to_string(),
                    external_id,
                })
            });
            e
        })
    }

    /// The change's external id, from the new row (an unchanged value from the old one)
    /// or else the old row.
    fn readable_key(&self, change: &RowChange) -> Option<String> {
        let old = change.old.as_ref();
        let from_new = change.new.as_ref().and_then(|n| self.key_text(n, old).ok());
        from_new.or_else(|| old.and_then(|o| self.key_text(o, None).ok()))
    }

    fn map_insert(&self, new: &Row) -> Result<Vec<MappedChange>, MappingError> {
        if !self.passes(new, None)? {
            return Ok(vec![]);
        }
        Ok(vec![self.upsert(new)?])
    }

    fn map_update(&self, change: &RowChange) -> Result<Vec<MappedChange>, MappingError> {
        let new = self.row(change.new.as_ref(), "new")?;
        let old_full = change
            .old
            .as_ref()
            .filter(|_| self.relation.replica_identity == ReplicaIdentity::Full);
        let old_key = match change.old.as_ref().filter(|_| self.key_in_old) {
            Some(old) => Some(self.key_text(old, None)?),
            None => None,
        };
        let old_passed = match old_full {
            Some(old) => self.passes(old, None)?,
            None => true, // unknown: assume the record exists
        };
        let mut out = Vec::new();
        if self.passes(new, old_full)? {
            let new_key = self.key_text(new, old_full)?;
            if let Some(old_key) = old_key.filter(|k| *k != new_key && old_passed) {
                out.extend(self.removal(old_key));
            }
            out.push(self.upsert(new)?);
        } else if old_passed && self.on_filter_exit == FilterExit::Delete {
            // The new key is needed only when the old one is unknown: a row leaving the
            // filter because its key became NULL (`email is_not_null`) removes the old record.
            let key = match old_key {
                Some(k) => k,
                None => self.key_text(new, old_full)?,
            };
            out.extend(self.removal(key));
        }
        Ok(out)
    }

    fn map_delete(&self, old: &Row) -> Result<Vec<MappedChange>, MappingError> {
        if self.delete == DeletePolicy::Ignore {
            return Ok(vec![]);
        }
        if !self.key_in_old {
            return Err(self.column_error(
                &self.key,
                Some(&self.external_id_field),
                None,
                ErrorKind::OldKeyMissing,
            ));
        }
        let full = self.relation.replica_identity == ReplicaIdentity::Full;
        if full && !self.passes(old, None)? {
            return Ok(vec![]);
        }
        Ok(self
            .removal(self.key_text(old, None)?)
            .into_iter()
            .collect())
    }

    /// The row, or an error if the change lacks it.
    fn row<'r>(&self, row: Option<&'r Row>, which: &'static str) -> Result<&'r Row, MappingError> {
        row.ok_or_else(|| MappingError {
            mapping: self.name.to_string(),
            column: None,
            field: None,
            value_type: None,
            kind: ErrorKind::MissingRow(which),
            record: None,
        })
    }

    fn passes(&self, row: &Row, fallback: Option<&Row>) -> Result<bool, MappingError> {
        if self.filter.is_empty() {
            return Ok(true);
        }
        self.filter
            .matches(row, fallback)
            .map_err(|(column, kind)| MappingError {
                mapping: self.name.to_string(),
                column: Some(column),
                field: None,
                value_type: None,
                kind,
                record: None,
            })
    }

    /// The external id text of a row (an unchanged value is taken from `fallback`).
    fn key_text(&self, row: &Row, fallback: Option<&Row>) -> Result<String, MappingError> {
        let mut v = self.value(row, &self.key)?;
        if matches!(v, Value::Unchanged) {
            v = fallback.and_then(|r| r.get(self.key.idx)).unwrap_or(v);
        }
        external_id_text(v)
            .map_err(|k| self.column_error(&self.key, Some(&self.external_id_field), Some(v), k))
    }

    fn value<'r>(&self, row: &'r Row, c: &Column) -> Result<&'r Value, MappingError> {
        row.get(c.idx)
            .ok_or_else(|| self.column_error(c, None, None, ErrorKind::MissingColumn))
    }

    /// The record removal for `key` under the delete policy.
    fn removal(&self, key: String) -> Option<MappedChange> {
        let (op, fields) = match &self.delete {
            DeletePolicy::Ignore => return None,
            DeletePolicy::Delete => (MappedOp::Delete, vec![]),
            DeletePolicy::Soft { field, value } => (
                MappedOp::Upsert,
                vec![(FieldName::Field(field.clone()), scalar_field(value))],
            ),
        };
        let mut change = self.record(key, op, fields, vec![], None);
        // A soft delete marks a record that exists; it never creates a stub.
        change.existing_only = op == MappedOp::Upsert;
        Some(change)
    }

    /// The upsert for a new row.
    fn upsert(&self, new: &Row) -> Result<MappedChange, MappingError> {
        let key = self.key_text(new, None)?;
        let mut fields = Vec::with_capacity(self.fields.len() + self.lookups.len());
        for (col, name, transform) in &self.fields {
            let v = self.value(new, col)?;
            let converted = match transform {
                Some(t) => convert::apply(t, v, self.zone),
                None => convert::default(v, self.zone),
            };
            let fv = converted
                .map_err(|k| self.column_error(col, Some(&name.to_string()), Some(v), k))?;
            fields.push((name.clone(), fv));
        }
        let mut parents = Vec::new();
        for l in &self.lookups {
            self.lookup(new, l, &mut fields, &mut parents)?;
        }
        // Keyed by the external id column: every row carrying this key maps to the record,
        // and the key is always known (a backfilled row has no replica identity flags, and
        // under REPLICA IDENTITY FULL every column, NULLs included, would be "key").
        let write_back = self.write_back.as_ref().map(|column| WriteBack {
            table: self.relation.qualified_name(),
            column: column.name.clone(),
            key: vec![(
                self.key.name.clone(),
                self.value(new, &self.key).cloned().unwrap_or(Value::Null),
            )],
            current: match new.get(column.idx) {
                Some(Value::Text(t)) | Some(Value::Other { text: t, .. }) => Some(t.clone()),
                _ => None,
            },
        });
        Ok(self.record(key, MappedOp::Upsert, fields, parents, write_back))
    }

    /// Add a lookup's field: the parent reference, or null on the lookup field.
    fn lookup(
        &self,
        row: &Row,
        l: &Lookup,
        fields: &mut Vec<(FieldName, FieldValue)>,
        parents: &mut Vec<ParentRef>,
    ) -> Result<(), MappingError> {
        match self.value(row, &l.column)? {
            Value::Unchanged => {}
            Value::Null => {
                fields.push((FieldName::Field(l.lookup_field.clone()), FieldValue::Null))
            }
            v => {
                let id = external_id_text(v).map_err(|k| {
                    self.column_error(&l.column, Some(&l.csv.to_string()), Some(v), k)
                })?;
                if l.parent.synced {
                    parents.push(ParentRef {
                        object: l.parent.object.clone(),
                        external_id_field: l.parent.external_id_field.clone(),
                        external_id: id.clone(),
                    });
                }
                fields.push((l.csv.clone(), FieldValue::Text(id)));
            }
        }
        Ok(())
    }

    fn record(
        &self,
        external_id: String,
        op: MappedOp,
        fields: Vec<(FieldName, FieldValue)>,
        parents: Vec<ParentRef>,
        write_back: Option<WriteBack>,
    ) -> MappedChange {
        MappedChange {
            mapping: self.name.clone(),
            object: self.object.clone(),
            external_id_field: self.external_id_field.clone(),
            external_id,
            op,
            fields,
            parents,
            write_back,
            existing_only: false,
            match_by: self.match_by,
        }
    }

    fn column_error(
        &self,
        c: &Column,
        field: Option<&str>,
        v: Option<&Value>,
        kind: ErrorKind,
    ) -> MappingError {
        MappingError {
            mapping: self.name.to_string(),
            column: Some(c.name.clone()),
            field: field.map(str::to_string),
            value_type: v.map(value_type),
            kind,
            record: None,
        }
    }
}

/// The text of an external id value.
fn external_id_text(v: &Value) -> Result<String, ErrorKind> {
    match v {
        Value::Null => Err(ErrorKind::NullExternalId),
        Value::Unchanged => Err(ErrorKind::UnchangedExternalId),
        Value::Text(s) | Value::Other { text: s, .. } if s.is_empty() => {
            Err(ErrorKind::NullExternalId)
        }
        Value::Bool(_) | Value::Date(_) => Err(ErrorKind::Unsupported(" as an external id")),
        v => convert::scalar_text(v).ok_or(ErrorKind::Unsupported(" as an external id")),
    }
}

/// A soft-delete value as a field value.
fn scalar_field(s: &Scalar) -> FieldValue {
    match s {
        Scalar::Bool(b) => FieldValue::Bool(*b),
        Scalar::Int(i) => FieldValue::Int(*i),
        Scalar::Text(t) => FieldValue::Text(t.clone()),
    }
}
