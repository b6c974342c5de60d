//! [`Pending`]: a mapped change waiting in an epoch, with the commit LSN it came from.

use serde_json::{Map, Value};

use crate::batch::Coalesce;
use crate::lsn::Lsn;
use crate::mapping::{FieldValue, MappedChange, MappedOp};
use crate::sink::FlushChange;

/// A mapped change and its transaction's commit LSN.
#[derive(Debug, Clone)]
pub struct Pending {
    pub change: MappedChange,
    pub lsn: Lsn,
}

impl Coalesce for Pending {
    fn object(&self) -> &str {
        &self.change.object
    }

    fn key(&self) -> &str {
        &self.change.external_id
    }

    fn is_delete(&self) -> bool {
        self.change.op == MappedOp::Delete
    }

    /// Fields this (newer) change leaves unchanged take the older change's value; fields the
    /// older one set that this one does not mention are kept too.
    fn absorb_older(&mut self, older: Self) {
        for (name, old_value) in older.change.fields {
            match self.change.fields.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) if *v == FieldValue::Unchanged => *v = old_value,
                Some(_) => {}
                None => self.change.fields.push((name, old_value)),
            }
        }
        for p in older.change.parents {
            if !self.change.parents.iter().any(|q| q.object == p.object) {
                self.change.parents.push(p);
            }
        }
        if self.change.write_back.is_none() {
            self.change.write_back = older.change.write_back;
        }
    }

    fn approx_bytes(&self) -> usize {
        self.change
            .fields
            .iter()
            .map(|(n, v)| n.to_string().len() + v.csv().len() + 3)
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

    fn parent(&self) -> Option<(String, String)> {
        self.change
            .parents
            .first()
            .map(|p| (p.object.to_string(), p.external_id.clone()))
    }

    fn record(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            self.change.external_id_field.to_string(),
            Value::String(self.change.external_id.clone()),
        );
        m.extend(self.change.json_fields());
        m
    }
}
