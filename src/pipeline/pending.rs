//! [`Pending`]: a mapped change waiting in an epoch, with the commit LSN it came from.

use serde_json::{Map, Value};

use crate::batch::Coalesce;
use crate::lsn::Lsn;
use crate::mapping::{FieldName, FieldValue, MappedChange, MappedOp};
use crate::pgoutput::value::Value as PgValue;
use crate::sink::NULL_CELL as CSV_NULL;
use crate::sink::{FlushChange, WriteBackTarget};

/// A mapped change and its transaction's commit LSN.
#[derive(Debug, Clone)]
pub struct Pending {
    pub change: MappedChange,
    pub lsn: Lsn,
    /// A newer change of the same record could not be mapped (it was dead-lettered): this
    /// one landing must not resolve that dead letter. A still newer good change absorbing
    /// this one starts clear again.
    pub newer_failed: bool,
}

impl Pending {
    pub fn new(change: MappedChange, lsn: Lsn) -> Self {
        Pending {
            change,
            lsn,
            newer_failed: false,
        }
    }
}

impl Coalesce for Pending {
    fn object(&self) -> &str {
        &self.change.object
    }

    fn key_field(&self) -> &str {
        &self.change.external_id_field
    }

    fn key(&self) -> &str {
        &self.change.external_id
    }

    fn is_delete(&self) -> bool {
        self.change.op == MappedOp::Delete
    }

    /// Fields this (newer) change leaves unchanged take the older change's value; fields the
    /// older one set that this one does not mention are kept too.
    ///
    /// A lookup is one field under two names (the parent reference `Account`, or null on
    /// `AccountId`): a newer value under either name supersedes the older one under the
    /// other, and the older parent reference goes with it.
    fn absorb_older(&mut self, older: Self) {
        let mut superseded = Vec::new();
        for (name, old_value) in older.change.fields {
            let slot = field_slot(&name);
            let newer = self.change.fields.iter_mut().find(|(n, _)| {
                *n == name
                    || (matches!(name, FieldName::Parent { .. })
                        != matches!(n, FieldName::Parent { .. })
                        && field_slot(n) == slot)
            });
            match newer {
                Some((n, v)) if *v == FieldValue::Unchanged && *n == name => *v = old_value,
                Some(_) => {
                    if let (
                        FieldName::Parent {
                            external_id_field, ..
                        },
                        FieldValue::Text(id),
                    ) = (&name, &old_value)
                    {
                        superseded.push((external_id_field.clone(), id.clone()));
                    }
                }
                None => self.change.fields.push((name, old_value)),
            }
        }
        for p in older.change.parents {
            let replaced = superseded
                .iter()
                .any(|(f, id)| *f == *p.external_id_field && *id == p.external_id);
            if !replaced && !self.change.parents.iter().any(|q| q.object == p.object) {
                self.change.parents.push(p);
            }
        }
        if self.change.write_back.is_none() {
            self.change.write_back = older.change.write_back;
        }
        // A soft delete of a row upserted earlier in the epoch creates the record (marked),
        // as it would have with an epoch boundary between the two.
        self.change.existing_only &= older.change.existing_only;
    }

    /// Bulk CSV reads a cell of exactly `#N/A` as NULL, so a text (or key) holding it
    /// goes through Collections.
    fn needs_json(&self) -> bool {
        self.change.external_id == CSV_NULL
            || self
                .change
                .fields
                .iter()
                .any(|(_, v)| matches!(v, FieldValue::Text(t) if t == CSV_NULL))
    }

    fn approx_bytes(&self) -> usize {
        self.change
            .fields
            .iter()
            .map(|(n, v)| n.csv_len() + v.csv().len() + 3)
            .sum::<usize>()
            + self.change.external_id.len()
            + 2
    }
}

impl FlushChange for Pending {
    fn mapping(&self) -> &str {
        &self.change.mapping
    }

    fn external_id_field(&self) -> &str {
        &self.change.external_id_field
    }

    fn lsn(&self) -> Lsn {
        self.lsn
    }

    fn parents(&self) -> Vec<(String, String)> {
        self.change
            .parents
            .iter()
            .map(|p| (p.object.to_string(), p.external_id.clone()))
            .collect()
    }

    fn resolves_dead_letters(&self) -> bool {
        !self.newer_failed
    }

    fn existing_only(&self) -> bool {
        self.change.existing_only
    }

    fn match_by(&self) -> bool {
        self.change.match_by
    }

    fn write_back(&self) -> Option<WriteBackTarget> {
        let wb = self.change.write_back.as_ref()?;
        let key = wb
            .key
            .iter()
            .map(|(c, v)| value_literal(v).map(|t| (c.clone(), t)))
            .collect::<Option<Vec<_>>>()?;
        Some(WriteBackTarget {
            table: wb.table.clone(),
            column: wb.column.clone(),
            key,
            current: wb.current.clone(),
        })
    }

    fn record(&self) -> Map<String, Value> {
        // Sized once: the external id and every field.
        let mut m = Map::with_capacity(1 + self.change.fields.len());
        m.insert(
            self.change.external_id_field.to_string(),
            Value::String(self.change.external_id.clone()),
        );
        self.change.json_fields_into(&mut m);
        m
    }
}

/// The field a column name writes: a parent reference's relationship names its lookup
/// field by Salesforce's convention (`Contact__r` → `Contact__c`, `Account` → `AccountId`).
fn field_slot(name: &FieldName) -> String {
    match name {
        FieldName::Field(f) => f.clone(),
        FieldName::Parent { relationship, .. } => match relationship.strip_suffix("__r") {
            Some(base) => format!("{base}__c"),
            None => format!("{relationship}Id"),
        },
    }
}

/// A key value as SQL text (key columns are integers, text, uuids, numerics, enums...).
fn value_literal(v: &PgValue) -> Option<String> {
    Some(match v {
        PgValue::Bool(b) => b.to_string(),
        PgValue::Int2(i) => i.to_string(),
        PgValue::Int4(i) => i.to_string(),
        PgValue::Int8(i) => i.to_string(),
        PgValue::Numeric(s) | PgValue::Text(s) => s.clone(),
        PgValue::Uuid(u) => u.to_string(),
        PgValue::Enum { label, .. } => label.clone(),
        PgValue::Other { text, .. } => text.clone(),
        _ => return None,
    })
}
