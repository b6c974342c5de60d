//! The Bulk insert of a chunk by column position, for the common upload: every column a
//! plain createable field of the job's object (no `Id`, no lookups, no parents by external
//! id, no column twice). Each cell is normalized straight into its field's slot, without the
//! per-row request map of the general path ([`super::columns::row_body`] and
//! [`crate::validation::normalize`]).
//!
//! Guarantee: every row gets the outcome the general path would give it. A row the fast
//! path cannot take as is (bad UTF-8, a value that does not normalize, a required field
//! missing) goes through the general path on its own, after the rows before it were
//! written, so errors carry the general path's exact messages and ids stay in row order.

use csv::ByteRecord;
use serde_json::Value;

use super::columns::Column;
use super::ingest::{Outcome, Plan, RowResult};
use crate::error::FieldError;
use crate::ids::Id;
use crate::schema::{FieldDef, FieldType, ObjectDef};
use crate::store::Store;
use crate::txn::Writer;
use crate::validation::{normalize_str, normalize_value};

/// A header the fast path can take: each column's slot and field, and the required slots.
pub struct FastInsert<'a> {
    /// Per column: the field's slot and definition.
    columns: Vec<(usize, &'a FieldDef)>,
    /// Slots of the fields an insert must set.
    required: Vec<usize>,
}

impl<'a> FastInsert<'a> {
    /// The fast path for `plan`'s header on `object`, if the header qualifies.
    pub fn new(plan: &Plan, object: &'a ObjectDef) -> Option<FastInsert<'a>> {
        if plan.header.key.is_some() {
            return None;
        }
        let mut columns = Vec::with_capacity(plan.header.columns.len());
        for column in &plan.header.columns {
            let Column::Field(name) = column else {
                return None;
            };
            let slot = object.slot(name)?;
            let field = object.fields.get(slot)?;
            let plain = field.createable
                && !matches!(field.field_type, FieldType::Reference | FieldType::Id)
                && !columns.iter().any(|(s, _)| *s == slot);
            if !plain {
                return None;
            }
            columns.push((slot, field));
        }
        let required = (0..object.fields.len())
            .filter(|&i| object.fields[i].is_required())
            .collect();
        Some(FastInsert { columns, required })
    }

    /// The normalized values of one row by slot, or `None` when the general path must
    /// take it.
    fn values(&self, row: &ByteRecord) -> Option<Vec<(usize, Value)>> {
        let mut values = Vec::with_capacity(self.columns.len());
        for ((slot, field), raw) in self.columns.iter().zip(row.iter()) {
            let cell = std::str::from_utf8(raw).ok()?;
            if cell.is_empty() {
                continue;
            }
            let value = if cell == "#N/A" {
                normalize_value(field, &Value::Null)
            } else {
                normalize_str(field, cell)
            };
            values.push((*slot, value.ok()?));
        }
        let set = |slot: &usize| values.iter().any(|(s, v)| s == slot && !v.is_null());
        self.required.iter().all(set).then_some(values)
    }

    /// Inserts `rows`; one result per row, in order.
    pub fn run(
        &self,
        store: &Store,
        plan: &Plan,
        w: &Writer,
        rows: &[(u64, ByteRecord)],
    ) -> Vec<RowResult> {
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(rows.len());
        let mut batch: Vec<Vec<(usize, Value)>> = Vec::new();
        for (_, row) in rows {
            match self.values(row) {
                Some(v) => batch.push(v),
                None => {
                    flush(store, plan, w, &mut batch, &mut outcomes);
                    outcomes.push(super::ingest::insert_one(store, plan, w, row));
                }
            }
        }
        flush(store, plan, w, &mut batch, &mut outcomes);
        rows.iter()
            .zip(outcomes)
            .map(|((start, _), outcome)| RowResult {
                start: *start,
                outcome,
            })
            .collect()
    }
}

/// Writes the rows gathered so far and appends their outcomes.
fn flush(
    store: &Store,
    plan: &Plan,
    w: &Writer,
    batch: &mut Vec<Vec<(usize, Value)>>,
    outcomes: &mut Vec<Outcome>,
) {
    if batch.is_empty() {
        return;
    }
    let written = store.insert_slots(&plan.object, std::mem::take(batch), w);
    outcomes.extend(written.into_iter().map(|r| match r {
        Ok(id) => Outcome::Success { id, created: true },
        Err(e) => failure(&e),
    }));
}

/// The outcome of a row the store refused.
fn failure(errors: &[FieldError]) -> Outcome {
    let error = errors.first().map_or_else(
        || "UNKNOWN_EXCEPTION:unknown error: --".to_string(),
        |e| e.to_bulk_string(),
    );
    Outcome::Failure {
        id: None::<Id>,
        error,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::bulk::columns;
    use crate::bulk::csv_io::Dialect;
    use crate::bulk::ingest::Operation;
    use crate::clock::Clock;
    use crate::schema::Schema;

    /// A plan and the data rows of `csv`.
    fn plan_and_rows(store: &Store, csv: &str) -> (Plan, Vec<(u64, ByteRecord)>) {
        let mut reader = Dialect::default().reader(csv.as_bytes());
        let mut rows = Vec::new();
        let mut header = ByteRecord::new();
        assert!(reader.read_byte_record(&mut header).unwrap());
        let mut row = ByteRecord::new();
        while reader.read_byte_record(&mut row).unwrap() {
            rows.push((reader.position().byte(), row.clone()));
        }
        let object = store.schema().object("Account").unwrap();
        let header = columns::analyze(store.schema(), object, &header, None).unwrap();
        let plan = Plan {
            object: "Account".into(),
            op: Operation::Insert,
            external_id_field: None,
            user: Id::from_parts("005", 1),
            origin: String::new(),
            dialect: Dialect::default(),
            header: Arc::new(header),
        };
        (plan, rows)
    }

    fn store() -> Store {
        Store::new(Arc::new(Schema::standard()), Arc::new(Clock::new()))
    }

    /// The stored records without the fields that differ between two stores.
    fn stored(store: &Store) -> Vec<crate::store::Record> {
        let mut out = Vec::new();
        let _ = store.scan("Account", true, |r| {
            let mut r = (**r).clone();
            for k in ["Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"] {
                r.remove(k);
            }
            out.push(r);
            std::ops::ControlFlow::Continue(())
        });
        out
    }

    #[test]
    fn fast_path_gives_every_row_the_general_outcome() {
        let csv = "Name,NumberOfEmployees,Rating,Phone,Website,BillingCity,Tags__c,Plan__c\n\
                   A,12,Hot,555,https://a.example,Paris,vip;beta,Pro\n\
                   ,3,,,,,,\n\
                   B,not a number,,,,,,\n\
                   C,#N/A,Warm,,,Lyon,,\n\
                   D,1,,,,,,Platinum\n\
                   E,7,Cold,,,,trial,Free\n";
        let (fast_store, slow_store) = (store(), store());
        let (plan, rows) = plan_and_rows(&fast_store, csv);
        let object = fast_store.schema().object("Account").cloned().unwrap();
        let fast = FastInsert::new(&plan, &object).expect("a plain header");
        let w = Writer::from(plan.user);
        let a = fast.run(&fast_store, &plan, &w, &rows);
        let b = super::super::ingest::insert_rows_for_test(&slow_store, &plan, &w, &rows);
        let outcomes = |r: &[RowResult]| -> Vec<String> {
            r.iter()
                .map(|x| match &x.outcome {
                    Outcome::Success { .. } => "ok".to_string(),
                    Outcome::Failure { error, .. } => error.clone(),
                })
                .collect()
        };
        assert_eq!(outcomes(&a), outcomes(&b));
        assert_eq!(outcomes(&a).iter().filter(|o| *o == "ok").count(), 3);
        assert_eq!(stored(&fast_store), stored(&slow_store));
    }

    #[test]
    fn headers_with_lookups_or_ids_take_the_general_path() {
        let s = store();
        for csv in [
            "Name,ParentId\nA,\n",
            "Name,Parent.External_Id__c\nA,x\n",
            "Name,Name\nA,B\n",
        ] {
            let (plan, _) = plan_and_rows(&s, csv);
            let object = s.schema().object("Account").cloned().unwrap();
            assert!(FastInsert::new(&plan, &object).is_none(), "{csv}");
        }
    }
}
