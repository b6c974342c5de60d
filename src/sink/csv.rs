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
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut columns: Vec<String> = Vec::new();
    for r in records {
        cells(r, |name, _| {
            if !index.contains_key(name.as_ref()) {
                index.insert(name.to_string(), columns.len());
                columns.push(name.into_owned());
            }
        });
    }
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::with_capacity(
            records.len() * 16 * columns.len().max(1),
        ));
    // Writing into a Vec cannot fail.
    let _ = w.write_record(&columns);
    let mut row: Vec<Cow<'_, str>> = vec![Cow::Borrowed(""); columns.len()];
    for r in records {
        row.iter_mut().for_each(|c| *c = Cow::Borrowed(""));
        cells(r, |name, value| {
            if let Some(&i) = index.get(name.as_ref()) {
                row[i] = cell(value);
            }
        });
        let _ = w.write_record(row.iter().map(|c| c.as_bytes()));
    }
    w.into_inner().unwrap_or_default()
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
