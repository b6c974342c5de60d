//! REST-shaped records → Bulk API 2.0 CSV.
//!
//! Columns are the union of the records' fields in first-seen order; a nested parent
//! reference (`{"Account": {"External_Id__c": "42"}}`) becomes the relationship column
//! `Account.External_Id__c`. A field a record does not have is an empty cell (Bulk: leave
//! unchanged); `null` and `""` are `#N/A` (Bulk: set null — Salesforce stores an empty
//! string as null anyway). Numbers keep every digit (serde_json's arbitrary precision).

use serde_json::{Map, Value};

/// Bulk's "set this field to null".
pub const NULL_CELL: &str = "#N/A";

/// Render records as CSV (LF line endings, comma delimiter, quoting as needed).
pub fn records_to_csv(records: &[Map<String, Value>]) -> Vec<u8> {
    let mut columns: Vec<String> = Vec::new();
    let flat: Vec<Vec<(String, Option<String>)>> = records.iter().map(flatten).collect();
    for row in &flat {
        for (name, _) in row {
            if !columns.iter().any(|c| c == name) {
                columns.push(name.clone());
            }
        }
    }
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = w.write_record(&columns);
    for row in flat {
        let cells = columns
            .iter()
            .map(|c| match row.iter().find(|(n, _)| n == c) {
                None => String::new(),
                Some((_, None)) => NULL_CELL.to_string(),
                Some((_, Some(v))) => v.clone(),
            });
        let _ = w.write_record(cells);
    }
    w.into_inner().unwrap_or_default()
}

/// One record's cells: (column, None = null, Some(text)).
fn flatten(record: &Map<String, Value>) -> Vec<(String, Option<String>)> {
    let mut out = Vec::with_capacity(record.len());
    for (k, v) in record {
        if k == "attributes" {
            continue;
        }
        match v {
            Value::Object(parent) => {
                for (pk, pv) in parent {
                    if pk != "attributes" {
                        out.push((format!("{k}.{pk}"), cell(pv)));
                    }
                }
            }
            other => out.push((k.clone(), cell(other))),
        }
    }
    out
}

fn cell(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
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
