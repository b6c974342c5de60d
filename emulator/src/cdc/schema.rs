//! The Avro schema of an object's change events, derived from its describe the way
//! Salesforce derives `AccountChangeEvent`: record `<Object>ChangeEvent` (custom
//! `Name__c` → `Name__ChangeEvent`) in namespace `com.sforce.eventbus`; field 0 is the
//! `ChangeEventHeader` record, then every field of the object as a `["null", T]` union with
//! default null, in describe order.
//!
//! Left out, as Salesforce leaves them out of change events: `Id` (it is in `recordIds`),
//! `IsDeleted`, `SystemModstamp`, `LastViewedDate`, `LastReferencedDate`,
//! `LastActivityDate`, calculated fields, and the components of compound fields: a compound
//! address (`BillingAddress`) is one nested record `Address` {Street, City, State,
//! PostalCode, Country, Latitude, Longitude, GeocodeAccuracy} at the position of the
//! compound field, and a person name (`Contact.Name`) is a nested record
//! `Switchable_PersonName` of its components (Salutation, FirstName, LastName).
//!
//! Types: text-like → `string`; boolean; int; long; double/currency/percent → `double`;
//! datetime → `long` epoch ms; date → `{"type": "int", "logicalType": "date"}` (days since
//! the epoch); time → `{"type": "int", "logicalType": "time-millis"}`.
//!
//! The schema id is a fingerprint of the schema JSON (SHA-256, first 16 bytes, base64url),
//! so it changes exactly when the object's fields change.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use crate::schema::{Derived, FieldDef, FieldType, ObjectDef};

/// Namespace of every change-event record.
pub const NAMESPACE: &str = "com.sforce.eventbus";

/// `changeType` symbols in Salesforce's order.
pub const CHANGE_TYPES: [&str; 10] = [
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
    "SNAPSHOT",
];

/// Fields of the object that never appear in a change event.
const EXCLUDED: [&str; 6] = [
    "Id",
    "IsDeleted",
    "SystemModstamp",
    "LastViewedDate",
    "LastReferencedDate",
    "LastActivityDate",
];

/// Address record fields and the component suffix each reads.
pub const ADDRESS_PARTS: [&str; 8] = [
    "Street",
    "City",
    "State",
    "PostalCode",
    "Country",
    "Latitude",
    "Longitude",
    "GeocodeAccuracy",
];

/// How a value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Avro string.
    String,
    /// Avro boolean.
    Boolean,
    /// Avro int.
    Int,
    /// Avro long.
    Long,
    /// Avro double.
    Double,
    /// Epoch days (int, logicalType date).
    Date,
    /// Epoch ms (long).
    DateTime,
    /// Milliseconds of the day (int, logicalType time-millis).
    Time,
}

impl Kind {
    fn of(t: FieldType) -> Kind {
        match t {
            FieldType::Boolean => Kind::Boolean,
            FieldType::Int => Kind::Int,
            FieldType::Long => Kind::Long,
            FieldType::Double | FieldType::Currency | FieldType::Percent => Kind::Double,
            FieldType::Date => Kind::Date,
            FieldType::Datetime => Kind::DateTime,
            FieldType::Time => Kind::Time,
            _ => Kind::String,
        }
    }

    fn avro(self) -> Json {
        match self {
            Kind::String => json!("string"),
            Kind::Boolean => json!("boolean"),
            Kind::Int => json!("int"),
            Kind::Long | Kind::DateTime => json!("long"),
            Kind::Double => json!("double"),
            Kind::Date => json!({"type": "int", "logicalType": "date"}),
            Kind::Time => json!({"type": "int", "logicalType": "time-millis"}),
        }
    }
}

/// One scalar value of the event: the record field it is read from and its encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar {
    /// Avro field name.
    pub name: String,
    /// The record field (API name) holding the value.
    pub source: String,
    /// Encoding.
    pub kind: Kind,
}

/// A top-level field of the event body (schema position = index + 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// A plain field.
    Field(Scalar),
    /// A compound field: a nested record of components.
    Compound {
        /// Avro field name (`BillingAddress`, `Name`).
        name: String,
        /// The nested fields, in nested-record order.
        parts: Vec<Scalar>,
    },
}

impl Slot {
    /// The Avro field name.
    pub fn name(&self) -> &str {
        match self {
            Slot::Field(s) => &s.name,
            Slot::Compound { name, .. } => name,
        }
    }
}

/// The change-event schema of one object.
#[derive(Debug, Clone)]
pub struct EventSchema {
    /// `AccountChangeEvent`.
    pub event_name: String,
    /// The body fields, in schema order after the header.
    pub slots: Vec<Slot>,
    /// The schema JSON (GetSchema's `schema_json`).
    pub json: String,
    /// The fingerprint id.
    pub id: String,
    /// The parsed schema (encoding).
    pub avro: apache_avro::Schema,
}

/// `AccountChangeEvent`, `Invoice__ChangeEvent` for `Invoice__c`.
pub fn event_name(object: &str) -> String {
    match object.strip_suffix("__c") {
        Some(base) => format!("{base}__ChangeEvent"),
        None => format!("{object}ChangeEvent"),
    }
}

/// Why a schema could not be built (a bug, never bad input: the JSON is ours).
#[derive(Debug, thiserror::Error)]
#[error("change-event schema of {object} is invalid: {source}")]
pub struct SchemaBuildError {
    /// The object.
    pub object: String,
    /// The Avro parser's complaint.
    pub source: apache_avro::Error,
}

impl EventSchema {
    /// Derives the schema of `object`'s change events.
    pub fn build(object: &ObjectDef) -> Result<EventSchema, SchemaBuildError> {
        let slots = slots(object);
        let event_name = event_name(&object.name);
        let json = schema_json(&event_name, &slots).to_string();
        let avro = apache_avro::Schema::parse_str(&json).map_err(|source| SchemaBuildError {
            object: object.name.clone(),
            source,
        })?;
        Ok(EventSchema {
            id: fingerprint(&json),
            event_name,
            slots,
            json,
            avro,
        })
    }
}

/// SHA-256 of the JSON, first 16 bytes, base64url without padding (22 chars).
pub fn fingerprint(json: &str) -> String {
    let digest = Sha256::digest(json.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// The body slots of an object.
fn slots(object: &ObjectDef) -> Vec<Slot> {
    let person_parts: Vec<&FieldDef> = ["Salutation", "FirstName", "LastName"]
        .iter()
        .filter_map(|n| object.field(n))
        .collect();
    let mut components: BTreeMap<&str, ()> = BTreeMap::new();
    for f in &object.fields {
        if f.compound_field_name.is_some() {
            components.insert(f.name.as_str(), ());
        }
        if f.derived == Some(Derived::PersonName) {
            for p in &person_parts {
                components.insert(p.name.as_str(), ());
            }
        }
    }
    object
        .fields
        .iter()
        .filter(|f| !EXCLUDED.contains(&f.name.as_str()))
        .filter(|f| !components.contains_key(f.name.as_str()))
        .filter(|f| !f.calculated || f.derived.is_some())
        .map(|f| match &f.derived {
            Some(Derived::Address { prefix }) => Slot::Compound {
                name: f.name.clone(),
                parts: address_parts(object, prefix),
            },
            Some(Derived::PersonName) => Slot::Compound {
                name: f.name.clone(),
                parts: person_parts.iter().map(|p| scalar(p, &p.name)).collect(),
            },
            None => Slot::Field(scalar(f, &f.name)),
        })
        .collect()
}

fn scalar(f: &FieldDef, name: &str) -> Scalar {
    Scalar {
        name: name.to_string(),
        source: f.name.clone(),
        kind: Kind::of(f.field_type),
    }
}

/// The Address record's fields for components `prefix*` (all eight, typed from describe).
fn address_parts(object: &ObjectDef, prefix: &str) -> Vec<Scalar> {
    ADDRESS_PARTS
        .iter()
        .map(|part| {
            let source = format!("{prefix}{part}");
            let kind = object
                .field(&source)
                .map_or(Kind::String, |f| Kind::of(f.field_type));
            Scalar {
                name: (*part).to_string(),
                source,
                kind,
            }
        })
        .collect()
}

fn header_json() -> Json {
    let strings = json!({"type": "array", "items": "string"});
    json!({
        "type": "record", "name": "ChangeEventHeader", "namespace": NAMESPACE,
        "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": strings},
            {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "namespace": NAMESPACE, "symbols": CHANGE_TYPES}},
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": strings},
            {"name": "diffFields", "type": strings},
            {"name": "changedFields", "type": strings},
        ]
    })
}

fn optional(t: Json) -> Json {
    json!(["null", t])
}

fn schema_json(event_name: &str, slots: &[Slot]) -> Json {
    let mut fields = vec![
        json!({"name": "ChangeEventHeader", "type": header_json(), "doc": "Data:ChangeEventHeader"}),
    ];
    let mut address_defined = false;
    for slot in slots {
        let t = match slot {
            Slot::Field(s) => s.kind.avro(),
            Slot::Compound { name, parts } => {
                let record_name = if parts.iter().any(|p| p.name == "Street") {
                    "Address"
                } else {
                    "Switchable_PersonName"
                };
                if record_name == "Address" && address_defined {
                    json!(format!("{NAMESPACE}.Address"))
                } else {
                    address_defined |= record_name == "Address";
                    let nested: Vec<Json> = parts
                        .iter()
                        .map(|p| json!({"name": p.name, "type": optional(p.kind.avro()), "default": null}))
                        .collect();
                    let _ = name;
                    json!({"type": "record", "name": record_name, "namespace": NAMESPACE, "fields": nested})
                }
            }
        };
        fields.push(json!({"name": slot.name(), "type": optional(t), "default": null}));
    }
    json!({"type": "record", "name": event_name, "namespace": NAMESPACE, "fields": fields})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    #[test]
    fn account_schema_matches_salesforce_shape() {
        let schema = Schema::standard();
        let account = schema.object("Account").unwrap();
        let s = EventSchema::build(account).unwrap();
        assert_eq!(s.event_name, "AccountChangeEvent");
        let names: Vec<&str> = s.slots.iter().map(Slot::name).collect();
        assert!(!names.contains(&"Id") && !names.contains(&"IsDeleted"));
        assert!(!names.contains(&"SystemModstamp") && !names.contains(&"BillingCity"));
        assert!(names.contains(&"BillingAddress") && names.contains(&"ShippingAddress"));
        assert_eq!(names[0], "Name");
        assert_eq!(s.id.len(), 22);
        assert_eq!(s.id, EventSchema::build(account).unwrap().id);
        let contact = EventSchema::build(schema.object("Contact").unwrap()).unwrap();
        assert_ne!(contact.id, s.id);
        assert!(!contact.slots.iter().any(|x| x.name() == "FirstName"));
        assert_eq!(event_name("Invoice__c"), "Invoice__ChangeEvent");
    }
}
