//! SOQL records → [`InboundEvent`]s: relationship fields flattened to `Account.Name`, the
//! `attributes` dropped, the change kind read from `IsDeleted` and the audit fields, and
//! the SOQL text that selects an entry's fields.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::convert::{format_sf_datetime, parse_datetime};
use super::event::{ChangeKind, InboundEvent, Position};
use crate::config::inbound::InboundConfig;
use crate::salesforce::rest::Record;

/// The fields a poll or re-read selects: the entry's fields (relationship paths too), and
/// the ones pgforce needs (Id, SystemModstamp, IsDeleted, CreatedDate, LastModifiedById).
pub fn select_list(entry: &InboundConfig) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |f: &str| {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(f)) {
            out.push(f.to_string());
        }
    };
    for f in [
        "Id",
        "SystemModstamp",
        "IsDeleted",
        "CreatedDate",
        "LastModifiedById",
    ] {
        add(f);
    }
    for f in entry.fields.keys() {
        add(f);
    }
    out
}

/// A SOQL string literal.
pub fn soql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A SOQL datetime literal (unquoted, UTC).
pub fn soql_datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The record's fields flattened: `{"Account": {"Name": "A"}}` → `Account.Name`.
pub fn flatten(record: &Record) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    flatten_into("", record, &mut out);
    out
}

fn flatten_into(prefix: &str, record: &Record, out: &mut BTreeMap<String, Value>) {
    for (k, v) in record {
        if k == "attributes" {
            continue;
        }
        let name = format!("{prefix}{k}");
        match v {
            Value::Object(inner) if inner.contains_key("attributes") => {
                flatten_into(&format!("{name}."), inner, out)
            }
            other => {
                out.insert(name, other.clone());
            }
        }
    }
}

/// Fills relationship paths a null parent left out (`Account: null` → `Account.Name:
/// null`), so the mirror sets them to NULL.
pub fn fill_null_paths(entry: &InboundConfig, values: &mut BTreeMap<String, Value>) {
    for f in entry.fields.keys().filter(|f| f.contains('.')) {
        if !values.contains_key(f) {
            let parent = f.split('.').next().unwrap_or(f);
            if values.get(parent).is_some_and(Value::is_null) || !values.contains_key(parent) {
                values.insert(f.clone(), Value::Null);
            }
        }
    }
}

/// One polled or re-read record version as an event.
pub fn record_event(
    entry: &InboundConfig,
    record: &Record,
    position: Position,
) -> Option<InboundEvent> {
    let mut values = flatten(record);
    fill_null_paths(entry, &mut values);
    let id = values.get("Id").and_then(Value::as_str)?.to_string();
    let modstamp = values
        .get("SystemModstamp")
        .and_then(Value::as_str)
        .and_then(parse_datetime)?;
    let deleted = values.get("IsDeleted").and_then(Value::as_bool) == Some(true);
    let created = values
        .get("CreatedDate")
        .and_then(Value::as_str)
        .and_then(parse_datetime);
    let kind = if deleted {
        ChangeKind::Delete
    } else if created == Some(modstamp) {
        ChangeKind::Create
    } else {
        ChangeKind::Update
    };
    let commit_user = values
        .get("LastModifiedById")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let changed_fields = if deleted {
        Vec::new()
    } else {
        entry.fields.keys().cloned().collect()
    };
    let nulled_fields = changed_fields
        .iter()
        .filter(|f| values.get(*f).is_some_and(Value::is_null))
        .cloned()
        .collect();
    if deleted {
        values.retain(|k, _| k == "Id" || k == "SystemModstamp");
    }
    Some(InboundEvent {
        object: entry.object.clone(),
        record_ids: vec![id],
        kind,
        commit_timestamp: modstamp,
        commit_user,
        change_origin: String::new(),
        transaction_key: String::new(),
        sequence_number: 0,
        values,
        changed_fields,
        nulled_fields,
        diff_fields: Vec::new(),
        position,
    })
}

/// A hard (or soft) delete reported by getDeleted, as an event.
pub fn deleted_event(
    entry: &InboundConfig,
    id: &str,
    at: DateTime<Utc>,
    position: Position,
) -> InboundEvent {
    InboundEvent {
        object: entry.object.clone(),
        record_ids: vec![id.to_string()],
        kind: ChangeKind::Delete,
        commit_timestamp: at,
        commit_user: String::new(),
        change_origin: String::new(),
        transaction_key: String::new(),
        sequence_number: 0,
        values: [
            ("Id".to_string(), Value::String(id.to_string())),
            (
                "SystemModstamp".to_string(),
                Value::String(format_sf_datetime(at)),
            ),
        ]
        .into(),
        changed_fields: Vec::new(),
        nulled_fields: Vec::new(),
        diff_fields: Vec::new(),
        position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn relationships_flatten_and_nulls_fill() {
        let r: Record = serde_json::from_value(json!({
            "attributes": {"type": "Opportunity"},
            "Id": "006A", "Account": {"attributes": {"type": "Account"}, "Name": "Acme"},
            "BillingAddress": {"city": "Paris"}
        }))
        .unwrap();
        let v = flatten(&r);
        assert_eq!(v["Account.Name"], json!("Acme"));
        assert_eq!(v["BillingAddress"], json!({"city": "Paris"}));
        assert!(!v.contains_key("attributes"));
    }

    #[test]
    fn literals_escape() {
        assert_eq!(soql_literal("it's"), "'it\\'s'");
    }
}
