//! REST-shaped records → Bulk API 2.0 CSV.
//!
//! Columns are the union of the records' fields in first-seen order; a nested parent
//! reference (`{"Account": {"External_Id__c": "42"}}`) becomes the relationship column
//! `Account.External_Id__c`. A field a record does not have is an empty cell (Bulk: leave
//! unchanged); `null` and `""` are `#N/A` (Bulk: set null — Salesforce stores an empty
//! string as null anyway). Numbers keep every digit (serde_json's arbitrary precision).

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value};

/// Bulk's "set this field to null".
pub const NULL_CELL: &str = "#N/A";

/// Render records as CSV (LF line endings, comma delimiter, quoting as needed), written
/// straight from the records: one pass finds the columns, one writes the rows (no copy of
/// the values in between).
pub fn records_to_csv(records: &[Map<String, Value>]) -> Vec<u8> {
    let mut columns = Columns::default();
    for r in records {
        let mut next = 0;
        cells(r, |name, _| {
            next = columns.find_or_add(&name, next) + 1;
        });
    }
    let width = columns.names.len();
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::with_capacity(records.len() * 16 * width.max(1)));
    // Writing into a Vec cannot fail.
    let _ = w.write_record(&columns.names);
    let mut row: Vec<Cow<'_, str>> = vec![Cow::Borrowed(""); width];
    for r in records {
        row.iter_mut().for_each(|c| *c = Cow::Borrowed(""));
        let mut next = 0;
        cells(r, |name, value| {
            if let Some(i) = columns.find(&name, next) {
                row[i] = cell(value);
                next = i + 1;
            }
        });
        let _ = w.write_record(row.iter().map(|c| c.as_bytes()));
    }
    w.into_inner().unwrap_or_default()
}

/// The CSV's columns in first-seen order. Records of one step almost always hold their
/// fields in one order, so a lookup tries the column after the previous cell's first and
/// hashes only when that is not it.
#[derive(Default)]
struct Columns {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Columns {
    /// The position of `name`, trying `next` first.
    fn find(&self, name: &str, next: usize) -> Option<usize> {
        if self.names.get(next).is_some_and(|n| n == name) {
            return Some(next);
        }
        self.index.get(name).copied()
    }

    /// The position of `name`, added at the end when new.
    fn find_or_add(&mut self, name: &str, next: usize) -> usize {
        if let Some(i) = self.find(name, next) {
            return i;
        }
        self.index.insert(name.to_string(), self.names.len());
        self.names.push(name.to_string());
        self.names.len() - 1
    }
}

/// Calls `f` with each cell of a record: (column, value); a nested parent reference is its
/// relationship column.
fn cells<'a>(record: &'a Map<String, Value>, mut f: impl FnMut(Cow<'a, str>, &'a Value)) {
    for (k, v) in record {
        if k == "attributes" {
            continue;
        }
        match v {
            Value::Object(parent) => {
                for (pk, pv) in parent {
                    if pk != "attributes" {
                        f(Cow::Owned(format!("{k}.{pk}")), pv);
                    }
                }
            }
            other => f(Cow::Borrowed(k.as_str()), other),
        }
    }
}

/// A value's cell text: null and "" are [`NULL_CELL`].
fn cell(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Null => Cow::Borrowed(NULL_CELL),
        Value::String(s) if s.is_empty() => Cow::Borrowed(NULL_CELL),
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        Value::Number(n) => Cow::Owned(n.to_string()),
        other => Cow::Owned(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn columns_are_found_whatever_order_a_record_holds_its_fields_in() {
        let recs = vec![
            obj(json!({"A": "1", "B": "2", "C": "3"})),
            obj(json!({"C": "6", "A": "4"})),
            obj(json!({"B": "8", "D": "9"})),
        ];
        let csv = String::from_utf8(records_to_csv(&recs)).unwrap();
        assert_eq!(csv, "A,B,C,D\n1,2,3,\n4,,6,\n,8,,9\n");
    }

    #[test]
    fn union_of_columns_unchanged_null_and_relationships() {
        let recs = vec![
            obj(
                json!({"External_Id__c": "1", "LastName": "O'Brien, \"Jr\"", "Account": {"External_Id__c": "a1"}}),
            ),
            serde_json::from_str(
                r#"{"External_Id__c": "2", "Email": null, "Amount": 12345678901234567890.12345}"#,
            )
            .unwrap(),
        ];
        let csv = String::from_utf8(records_to_csv(&recs)).unwrap();
        assert_eq!(
            csv,
            "External_Id__c,LastName,Account.External_Id__c,Email,Amount\n\
             1,\"O'Brien, \"\"Jr\"\"\",a1,,\n\
             2,,,#N/A,12345678901234567890.12345\n"
        );
    }
}
