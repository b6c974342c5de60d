//! The change journal's payload: a [`Pending`] change as JSON, and back. The live pipeline
//! writes it ([`encode`]) and `pgforce replay` reads it ([`decode`]) into the same type, so
//! a replay coalesces, orders and renders changes exactly as the live epoch did (unchanged
//! TOAST values, lookups under either name, parents first).
//!
//! Guarantees:
//! - [`decode`] of [`encode`] gives back the change with every field, value type, parent,
//!   and the `existing_only` / `match_by` flags. Not journaled: the Id write-back target
//!   (the live pipeline wrote the Id back when the record was created) and the
//!   `newer_failed` mark (a replay runs under its own state, with its own dead letters).
//! - Payloads are versioned (`"v": 2`). Entries written before the version field existed
//!   (a REST-shaped `record`, the form earlier releases wrote) still decode: plain values
//!   become fields, a nested `{"Rel": {"Ext__c": "7"}}` a parent reference.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Pending;
use crate::lsn::Lsn;
use crate::mapping::{FieldName, FieldValue, MappedChange, MappedOp, ParentRef};

/// The payload version [`encode`] writes.
const VERSION: u8 = 2;

#[derive(Serialize, Deserialize)]
struct Payload<'a> {
    v: u8,
    #[serde(borrow)]
    mapping: Cow<'a, str>,
    #[serde(borrow)]
    object: Cow<'a, str>,
    #[serde(borrow)]
    external_id_field: Cow<'a, str>,
    #[serde(borrow)]
    external_id: Cow<'a, str>,
    delete: bool,
    fields: Cow<'a, [(FieldName, FieldValue)]>,
    parents: Vec<ParentForm<'a>>,
    #[serde(default)]
    existing_only: bool,
    #[serde(default)]
    match_by: bool,
}

#[derive(Serialize, Deserialize)]
struct ParentForm<'a> {
    #[serde(borrow)]
    object: Cow<'a, str>,
    #[serde(borrow)]
    external_id_field: Cow<'a, str>,
    #[serde(borrow)]
    external_id: Cow<'a, str>,
}

/// The form earlier releases journaled: the REST-shaped record.
#[derive(Deserialize)]
struct Legacy {
    mapping: String,
    object: String,
    external_id_field: String,
    external_id: String,
    op: String,
    #[serde(default)]
    record: Map<String, Value>,
    #[serde(default, alias = "parent", deserialize_with = "parents_or_one")]
    parents: Vec<(String, String)>,
}

/// The journal payload of `p`.
pub fn encode(p: &Pending) -> Vec<u8> {
    let c = &p.change;
    let payload = Payload {
        v: VERSION,
        mapping: Cow::Borrowed(&c.mapping),
        object: Cow::Borrowed(&c.object),
        external_id_field: Cow::Borrowed(&c.external_id_field),
        external_id: Cow::Borrowed(&c.external_id),
        delete: c.op == MappedOp::Delete,
        fields: Cow::Borrowed(&c.fields),
        parents: c
            .parents
            .iter()
            .map(|r| ParentForm {
                object: Cow::Borrowed(&r.object),
                external_id_field: Cow::Borrowed(&r.external_id_field),
                external_id: Cow::Borrowed(&r.external_id),
            })
            .collect(),
        existing_only: c.existing_only,
        match_by: c.match_by,
    };
    // Serializing strings, booleans and the value enum cannot fail.
    serde_json::to_vec(&payload).unwrap_or_default()
}

/// The change journaled at `lsn`, from a payload [`encode`] (or an earlier release) wrote.
pub fn decode(payload: &[u8], lsn: Lsn) -> Result<Pending, serde_json::Error> {
    let change = match serde_json::from_slice::<VersionOnly>(payload)?.v {
        None => from_legacy(serde_json::from_slice(payload)?),
        Some(VERSION) => from_payload(serde_json::from_slice(payload)?),
        Some(v) => {
            return Err(serde::de::Error::custom(format!(
                "journal payload version {v} is not one this pgforce reads ({VERSION}); \
                 replay it with the release that wrote it"
            )))
        }
    };
    Ok(Pending::new(change, lsn))
}

#[derive(Deserialize)]
struct VersionOnly {
    #[serde(default)]
    v: Option<u8>,
}

fn from_payload(p: Payload<'_>) -> MappedChange {
    MappedChange {
        mapping: Arc::from(&*p.mapping),
        object: Arc::from(&*p.object),
        external_id_field: Arc::from(&*p.external_id_field),
        external_id: p.external_id.into_owned(),
        op: if p.delete {
            MappedOp::Delete
        } else {
            MappedOp::Upsert
        },
        fields: p.fields.into_owned(),
        parents: p
            .parents
            .into_iter()
            .map(|r| ParentRef {
                object: Arc::from(&*r.object),
                external_id_field: Arc::from(&*r.external_id_field),
                external_id: r.external_id.into_owned(),
            })
            .collect(),
        write_back: None,
        existing_only: p.existing_only,
        match_by: p.match_by,
    }
}

fn from_legacy(l: Legacy) -> MappedChange {
    let mut fields = Vec::new();
    let mut refs: Vec<(String, String)> = Vec::new();
    for (name, value) in l.record {
        if name == l.external_id_field {
            continue;
        }
        match value {
            Value::Object(inner) if inner.len() == 1 => {
                let Some((ext_field, v)) = inner.into_iter().next() else {
                    continue;
                };
                let id = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                refs.push((ext_field.clone(), id.clone()));
                let name = FieldName::Parent {
                    relationship: name,
                    external_id_field: ext_field,
                };
                fields.push((name, FieldValue::Text(id)));
            }
            other => fields.push((FieldName::Field(name), legacy_value(other))),
        }
    }
    // Older entries named a parent by (object, external id); its external id field is the
    // one of the nested reference holding that id.
    let parents = l
        .parents
        .into_iter()
        .map(|(object, external_id)| {
            let field = refs
                .iter()
                .find(|(_, id)| *id == external_id)
                .map_or("", |(f, _)| f.as_str());
            ParentRef {
                object: Arc::from(object.as_str()),
                external_id_field: Arc::from(field),
                external_id,
            }
        })
        .collect();
    MappedChange {
        mapping: Arc::from(l.mapping.as_str()),
        object: Arc::from(l.object.as_str()),
        external_id_field: Arc::from(l.external_id_field.as_str()),
        external_id: l.external_id,
        op: if l.op == "delete" {
            MappedOp::Delete
        } else {
            MappedOp::Upsert
        },
        fields,
        parents,
        write_back: None,
        existing_only: false,
        match_by: false,
    }
}

/// A REST JSON value as a field value that renders back to the same JSON.
fn legacy_value(v: Value) -> FieldValue {
    match v {
        Value::Null => FieldValue::Null,
        Value::Bool(b) => FieldValue::Bool(b),
        Value::Number(n) => FieldValue::Number(n.to_string()),
        Value::String(s) => FieldValue::Text(s),
        other => FieldValue::Text(other.to_string()),
    }
}

/// `parents` as a list, or the single (possibly null) `parent` of the oldest entries.
fn parents_or_one<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, String)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Many(Vec<(String, String)>),
        One(Option<(String, String)>),
    }
    Ok(match Either::deserialize(d)? {
        Either::Many(v) => v,
        Either::One(one) => one.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::sink::FlushChange;

    fn contact() -> MappedChange {
        MappedChange {
            mapping: Arc::from("contacts"),
            object: Arc::from("Contact"),
            external_id_field: Arc::from("Ext__c"),
            external_id: "42".into(),
            op: MappedOp::Upsert,
            fields: vec![
                (
                    FieldName::Field("LastName".into()),
                    FieldValue::Text("O'Neil".into()),
                ),
                (FieldName::Field("Phone".into()), FieldValue::Unchanged),
                (FieldName::Field("Email".into()), FieldValue::Null),
                (
                    FieldName::Field("Score__c".into()),
                    FieldValue::Number("12.50".into()),
                ),
                (FieldName::Field("Seats__c".into()), FieldValue::Int(3)),
                (FieldName::Field("Vip__c".into()), FieldValue::Bool(true)),
                (
                    FieldName::Field("Birthdate".into()),
                    FieldValue::Date(NaiveDate::from_ymd_opt(1990, 2, 28).unwrap()),
                ),
                (
                    FieldName::Field("Seen__c".into()),
                    FieldValue::DateTime(Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()),
                ),
                (
                    FieldName::Parent {
                        relationship: "Account".into(),
                        external_id_field: "Acct_Ext__c".into(),
                    },
                    FieldValue::Text("7".into()),
                ),
            ],
            parents: vec![ParentRef {
                object: Arc::from("Account"),
                external_id_field: Arc::from("Acct_Ext__c"),
                external_id: "7".into(),
            }],
            write_back: None,
            existing_only: true,
            match_by: false,
        }
    }

    #[test]
    fn a_change_round_trips_with_every_value_type_and_parent() {
        let p = Pending::new(contact(), Lsn(99));
        let back = decode(&encode(&p), Lsn(99)).unwrap();
        assert_eq!(back.change, p.change);
        assert_eq!(back.lsn, Lsn(99));
        assert_eq!(back.record(), p.record(), "renders the same REST record");
    }

    #[test]
    fn the_payload_format_is_pinned() {
        let mut c = contact();
        c.fields.truncate(2);
        c.parents.clear();
        let text = String::from_utf8(encode(&Pending::new(c, Lsn(1)))).unwrap();
        assert_eq!(
            text,
            r#"{"v":2,"mapping":"contacts","object":"Contact","external_id_field":"Ext__c","external_id":"42","delete":false,"fields":[[{"field":"LastName"},{"text":"O'Neil"}],[{"field":"Phone"},"unchanged"]],"parents":[],"existing_only":true,"match_by":false}"#
        );
    }

    #[test]
    fn entries_of_earlier_releases_still_decode() {
        let old = json!({
            "mapping": "contacts", "object": "Contact", "external_id_field": "Ext__c",
            "external_id": "42", "op": "upsert",
            "record": {"Ext__c": "42", "LastName": "Lee", "Email": null, "Score__c": 1.5,
                       "Account": {"Acct_Ext__c": "7"}},
            "parents": [["Account", "7"]]
        });
        let p = decode(old.to_string().as_bytes(), Lsn(5)).unwrap();
        assert_eq!(
            Value::Object(p.record()),
            json!({"Ext__c": "42", "LastName": "Lee", "Email": null, "Score__c": 1.5,
                   "Account": {"Acct_Ext__c": "7"}})
        );
        assert_eq!(
            p.change.parents[0].external_id_field.as_ref(),
            "Acct_Ext__c"
        );
        let single = json!({"mapping": "m", "object": "Contact", "external_id_field": "E__c",
                            "external_id": "1", "op": "delete", "record": {}, "parent": null});
        let d = decode(single.to_string().as_bytes(), Lsn(6)).unwrap();
        assert_eq!(d.change.op, MappedOp::Delete);
        assert!(d.change.parents.is_empty());
    }

    #[test]
    fn a_payload_of_a_newer_version_is_refused_not_misread() {
        let text = String::from_utf8(encode(&Pending::new(contact(), Lsn(1)))).unwrap();
        let newer = text.replacen(r#""v":2"#, r#""v":3"#, 1);
        let err = decode(newer.as_bytes(), Lsn(1)).unwrap_err().to_string();
        assert!(err.contains("version 3"), "{err}");
    }

    #[test]
    fn bytes_that_are_not_a_change_are_an_error() {
        for bad in [
            &b"\xff\x00"[..],
            b"{}",
            br#"{"v":2}"#,
            b"[1,2]",
            br#"{"v":3}"#,
        ] {
            assert!(decode(bad, Lsn(1)).is_err(), "{bad:?}");
        }
    }
}
