//! The inserts of one API call made visible together ([`Store::insert_together`]), as
//! Salesforce commits an sObject Collections create at once: a reader sees none of the
//! call's records or all of its successful ones, never some of them.
//!
//! Every record is validated first, in request order, against the store and the records of
//! the call validated before it (a Contact may name an Account of the same call as its
//! parent, by id or by external id). Then the write locks of every table the call writes are
//! taken in object-name order (so two such calls cannot deadlock), uniqueness is checked
//! and the rows are written, and the locks are released together. With `all_or_none` a
//! failure writes nothing: every record is still checked (so each failing one reports its
//! own error), then the rows placed under the locks are taken out again before any reader
//! could see them, and no change is reported.

use std::sync::Arc;

use parking_lot::RwLockWriteGuard;
use serde_json::{Map, Value};

use super::{created, FieldError, Id, Row, Store, Table, TableData, Writer};
use crate::validation::{normalize, WriteKind};

/// A record of the call that passed validation and waits to be written.
pub(super) struct PendingRow<'a> {
    /// Its table.
    pub(super) table: &'a Table,
    /// Its position in the call.
    pub(super) index: usize,
    /// Its new id.
    pub(super) id: Id,
    /// The complete new row.
    pub(super) row: Row,
}

/// What [`Store::insert_together`] did.
#[derive(Debug)]
pub struct Together {
    /// One result per record in request order: the new id, or why the record failed. With
    /// `all_or_none` and `committed == false`, an `Ok` id names a valid record that was not
    /// written.
    pub results: Vec<Result<Id, Vec<FieldError>>>,
    /// Whether the successful records were written (false only with `all_or_none`).
    pub committed: bool,
}

impl Store {
    /// Inserts `(object, body)` records of one call so that they become visible together;
    /// see the module docs. Each record is validated as [`Store::insert`] validates it.
    pub fn insert_together(
        &self,
        records: &[(&str, &Map<String, Value>)],
        writer: impl Into<Writer>,
        all_or_none: bool,
    ) -> Together {
        let w = writer.into();
        let mut pending: Vec<PendingRow<'_>> = Vec::new();
        let mut results = Vec::with_capacity(records.len());
        for (index, (object, fields)) in records.iter().enumerate() {
            match self.prepare_insert(object, fields, w.user, index, &pending) {
                Ok(p) => {
                    results.push(Ok(p.id));
                    pending.push(p);
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let committed = self.write_together(pending, &mut results, &w, all_or_none);
        Together { results, committed }
    }

    /// Validates one record of the call and builds its row.
    fn prepare_insert<'a>(
        &'a self,
        object: &str,
        fields: &Map<String, Value>,
        user: Id,
        index: usize,
        pending: &[PendingRow<'_>],
    ) -> Result<PendingRow<'a>, Vec<FieldError>> {
        let table = self.table(object).map_err(|e| vec![e])?;
        let body = normalize(&table.object, fields, WriteKind::Insert)?;
        let values = self.resolve_in(&table.object, body, pending)?;
        let id = self.ids.next(&table.object.key_prefix);
        let row = self.new_record(&table.object, id, values, user);
        Ok(PendingRow {
            table,
            index,
            id,
            row,
        })
    }

    /// Writes the validated rows under every involved table's write lock; returns whether
    /// they stay written (false when `all_or_none` and any record failed, in validation or
    /// its uniqueness check: then every row is taken out again before the locks are
    /// released).
    fn write_together(
        &self,
        pending: Vec<PendingRow<'_>>,
        results: &mut [Result<Id, Vec<FieldError>>],
        w: &Writer,
        all_or_none: bool,
    ) -> bool {
        let mut tables: Vec<&Table> = pending.iter().map(|p| p.table).collect();
        tables.sort_by(|a, b| a.object.name.cmp(&b.object.name));
        tables.dedup_by(|a, b| a.object.name == b.object.name);
        let mut guards: Vec<(&str, RwLockWriteGuard<'_, TableData>)> = tables
            .iter()
            .map(|t| (t.object.name.as_str(), t.data.write()))
            .collect();
        let now = self.clock.now();
        let mut written: Vec<(&Table, Id, Arc<Row>)> = Vec::with_capacity(pending.len());
        for p in pending {
            let Some((_, data)) = guards.iter_mut().find(|(n, _)| *n == p.table.object.name) else {
                continue;
            };
            if let Err(e) = data.check_unique(&p.table.object, p.id, &p.row) {
                results[p.index] = Err(vec![e]);
                continue;
            }
            data.index(p.id, &p.row);
            let row = Arc::new(p.row);
            data.rows.insert(p.id, row.clone());
            written.push((p.table, p.id, row));
        }
        if all_or_none && results.iter().any(Result::is_err) {
            take_out(&mut guards, &written);
            return false;
        }
        for (table, id, row) in written {
            self.emit(w, created(table, id, row, now));
        }
        true
    }
}

/// Removes rows placed under the still-held locks (an allOrNone call that failed).
fn take_out(
    guards: &mut [(&str, RwLockWriteGuard<'_, TableData>)],
    written: &[(&Table, Id, Arc<Row>)],
) {
    for (table, id, row) in written.iter().rev() {
        if let Some((_, data)) = guards.iter_mut().find(|(n, _)| *n == table.object.name) {
            data.rows.remove(id);
            data.unindex(*id, row);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde_json::json;

    use super::*;
    use crate::clock::Clock;
    use crate::error::ErrorCode;
    use crate::schema::Schema;

    fn store() -> (Store, Id) {
        let s = Store::new(Arc::new(Schema::standard()), Arc::new(Clock::new()));
        (s, Id::from_parts("005", 1))
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn insert_together_shows_a_call_all_at_once() {
        let (s, u) = store();
        let bodies: Vec<Map<String, Value>> = (0..5)
            .map(|i| body(json!({"Name": format!("A{i}")})))
            .collect();
        let call: Vec<(&str, &Map<String, Value>)> =
            bodies.iter().map(|b| ("Account", b)).collect();
        let done = AtomicBool::new(false);
        let seen = std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut seen = Vec::new();
                while !done.load(Ordering::Acquire) {
                    seen.push(s.count("Account", false).unwrap_or(0));
                }
                seen
            });
            for _ in 0..300 {
                assert!(s.insert_together(&call, u, false).committed);
            }
            done.store(true, Ordering::Release);
            reader.join().unwrap_or_default()
        });
        assert!(
            seen.iter().all(|n| n % 5 == 0),
            "a reader saw part of a call"
        );
        assert_eq!(s.count("Account", false).unwrap(), 1500);
    }

    #[test]
    fn insert_together_resolves_parents_of_the_same_call() {
        let (s, u) = store();
        let account = body(json!({"Name": "P", "External_Id__c": "P-1"}));
        let contact = body(json!({"LastName": "C", "Account": {"External_Id__c": "p-1"}}));
        let done = s.insert_together(&[("Account", &account), ("Contact", &contact)], u, true);
        assert!(done.committed);
        let (Ok(a), Ok(c)) = (&done.results[0], &done.results[1]) else {
            panic!("both inserted: {:?}", done.results);
        };
        assert_eq!(s.get(c).unwrap()["AccountId"], a.to_string());
    }

    #[test]
    fn insert_together_all_or_none_failure_writes_nothing() {
        let (s, u) = store();
        let start = s.clock().now();
        let a = body(json!({"Name": "A", "External_Id__c": "X-1"}));
        let dup = body(json!({"Name": "B", "External_Id__c": "x-1"}));
        let bad = body(json!({"FirstName": "no last name"}));
        // A uniqueness clash found under the locks.
        let late = s.insert_together(&[("Account", &a), ("Account", &dup)], u, true);
        assert!(!late.committed);
        assert!(late.results[0].is_ok());
        let e = late.results[1].as_ref().unwrap_err();
        assert_eq!(e[0].code, ErrorCode::DuplicateValue);
        // A validation failure found before any lock.
        let early = s.insert_together(&[("Account", &a), ("Contact", &bad)], u, true);
        assert!(!early.committed);
        assert_eq!(s.count("Account", true).unwrap(), 0);
        let end = s.clock().now() + chrono::Duration::seconds(1);
        assert!(s.deleted_between("Account", start, end).unwrap().is_empty());
        assert!(s
            .find_by_external_id("Account", "External_Id__c", "X-1")
            .unwrap()
            .is_empty());
        // Without allOrNone the valid records are written.
        let partial = s.insert_together(&[("Account", &a), ("Account", &dup)], u, false);
        assert!(partial.committed);
        assert!(partial.results[0].is_ok() && partial.results[1].is_err());
        assert_eq!(s.count("Account", false).unwrap(), 1);
    }
}
