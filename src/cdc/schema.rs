//! Event schemas: the writer schema of each `schema_id`, parsed once and cached, with the
//! field layout the decoder and the bitmaps need (top-level positions, which fields are
//! compound and what their components are called in REST, which values are dates).
//!
//! Salesforce gives every field of the object a `["null", T]` union. Dates and datetimes
//! arrive as numbers: either with an Avro logical type (`timestamp-millis`, `date`) or as a
//! plain `long`/`int` whose `doc` ends in the Salesforce type (`…:DateTime`, `…:Date`,
//! `…:Time`); both are recognised. Compound fields (address, name, geolocation) are nested
//! records; their components get the REST names (`BillingAddress.City` → `BillingCity`,
//! `Name.FirstName` → `FirstName`, `Loc__c.Latitude` → `Loc__Latitude__s`).
//! A schema changes when the object's fields change; events name their schema, so a change
//! mid-stream only means one more GetSchema.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::schema::{RecordField, RecordSchema};
use apache_avro::Schema;

/// The name of the header field (position 0).
pub const HEADER: &str = "ChangeEventHeader";

/// At most this many schemas are kept; the cache starts over when full (schemas change
/// rarely, so this only bounds memory against a misbehaving server).
const MAX_SCHEMAS: usize = 256;

/// How a field's value is turned into REST JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// `ChangeEventHeader`.
    Header,
    /// As the Avro value says (string, number, boolean).
    Plain,
    /// Epoch milliseconds → `"2024-01-01T00:00:00.000+0000"`.
    DateTime,
    /// Epoch days (or milliseconds) → `"YYYY-MM-DD"`.
    Date,
    /// Milliseconds since midnight → `"13:15:00.000Z"`.
    Time,
    /// A nested record of components.
    Compound,
}

/// A top-level field of an event schema.
#[derive(Debug, Clone, PartialEq)]
pub struct TopField {
    /// The Avro field name (`BillingAddress`, `Name`, `Amount`).
    pub name: String,
    pub kind: FieldKind,
    /// The components of a compound field, in nested-schema order; empty otherwise.
    pub components: Vec<Component>,
}

impl TopField {
    pub fn is_compound(&self) -> bool {
        self.kind == FieldKind::Compound
    }

    pub fn is_header(&self) -> bool {
        self.kind == FieldKind::Header
    }
}

/// A component of a compound field.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// The nested Avro field name (`City`).
    pub name: String,
    /// The object's REST field name (`BillingCity`).
    pub rest_name: String,
    pub kind: FieldKind,
}

/// One parsed writer schema.
#[derive(Debug)]
pub struct EventSchema {
    pub id: String,
    pub avro: Schema,
    /// The top-level fields by position.
    pub fields: Vec<TopField>,
}

/// A schema that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event schema {id}: {reason}")]
pub struct SchemaError {
    pub id: String,
    pub reason: String,
}

impl EventSchema {
    /// Parses `schema_json` (from GetSchema) for `id`.
    pub fn parse(id: &str, schema_json: &str) -> Result<EventSchema, SchemaError> {
        let fail = |reason: String| SchemaError {
            id: id.to_string(),
            reason,
        };
        let avro = Schema::parse_str(schema_json).map_err(|e| fail(format!("not Avro: {e}")))?;
        let Schema::Record(record) = &avro else {
            return Err(fail("the top level is not a record".into()));
        };
        let mut named = HashMap::new();
        let fields = record
            .fields
            .iter()
            .map(|f| top_field(f, &mut named))
            .collect::<Vec<_>>();
        match fields.first() {
            Some(f) if f.is_header() => {}
            _ => return Err(fail(format!("field 0 is not {HEADER}"))),
        }
        Ok(EventSchema {
            id: id.to_string(),
            avro,
            fields,
        })
    }

    /// The field at `pos`.
    pub fn field(&self, pos: usize) -> Option<&TopField> {
        self.fields.get(pos)
    }
}

/// Named records seen so far (for `Ref`s to a record defined earlier, e.g. `ShippingAddress`
/// reusing `Address`), by simple name.
type Named = HashMap<String, Vec<RecordField>>;

fn top_field(f: &RecordField, named: &mut Named) -> TopField {
    if f.name == HEADER {
        remember(&f.schema, named);
        return TopField {
            name: f.name.clone(),
            kind: FieldKind::Header,
            components: Vec::new(),
        };
    }
    let value = value_schema(&f.schema);
    if let Some(nested) = record_fields(value, named) {
        let components = nested
            .iter()
            .map(|c| Component {
                name: c.name.clone(),
                rest_name: component_rest_name(&f.name, &c.name),
                kind: kind(value_schema(&c.schema), c.doc.as_deref()),
            })
            .collect();
        return TopField {
            name: f.name.clone(),
            kind: FieldKind::Compound,
            components,
        };
    }
    TopField {
        name: f.name.clone(),
        kind: kind(value, f.doc.as_deref()),
        components: Vec::new(),
    }
}

/// The fields of `schema` if it is (or refers to) a record; records are remembered.
fn record_fields(schema: &Schema, named: &mut Named) -> Option<Vec<RecordField>> {
    match schema {
        Schema::Record(r) => {
            remember_record(r, named);
            Some(r.fields.clone())
        }
        Schema::Ref { name } => named.get(name.name()).cloned(),
        _ => None,
    }
}

fn remember(schema: &Schema, named: &mut Named) {
    if let Schema::Record(r) = value_schema(schema) {
        remember_record(r, named);
    }
}

fn remember_record(r: &RecordSchema, named: &mut Named) {
    named.insert(r.name.name().to_string(), r.fields.clone());
    for f in &r.fields {
        remember(&f.schema, named);
    }
}

/// The value branch of an optional field: `["null", T]` → `T`; for Salesforce's
/// switchable person name `["null", "string", record]` / `["string", record]` → the record.
fn value_schema(schema: &Schema) -> &Schema {
    let Schema::Union(u) = schema else {
        return schema;
    };
    let variants = u.variants();
    variants
        .iter()
        .find(|s| matches!(s, Schema::Record(_) | Schema::Ref { .. }))
        .or_else(|| variants.iter().find(|s| !matches!(s, Schema::Null)))
        .unwrap_or(schema)
}

/// How a (non-compound) value schema converts.
fn kind(value: &Schema, doc: Option<&str>) -> FieldKind {
    match value {
        Schema::TimestampMillis | Schema::TimestampMicros => FieldKind::DateTime,
        Schema::LocalTimestampMillis | Schema::LocalTimestampMicros => FieldKind::DateTime,
        Schema::Date => FieldKind::Date,
        Schema::TimeMillis | Schema::TimeMicros => FieldKind::Time,
        Schema::Long | Schema::Int => doc_kind(doc),
        _ => FieldKind::Plain,
    }
}

/// `"CreatedDate:DateTime"` → DateTime, `"…:Date"` → Date, `"…:Time"` → Time.
fn doc_kind(doc: Option<&str>) -> FieldKind {
    let Some(ty) = doc.and_then(|d| d.rsplit(':').next()) else {
        return FieldKind::Plain;
    };
    match ty.trim().to_ascii_lowercase().as_str() {
        "datetime" => FieldKind::DateTime,
        "date" => FieldKind::Date,
        "time" => FieldKind::Time,
        _ => FieldKind::Plain,
    }
}

/// The REST name of component `component` of compound field `parent`: custom compounds
/// (`Loc__c`) → `Loc__Latitude__s`; addresses (`BillingAddress`, `Address`) → the prefix
/// plus the component (`BillingCity`, `City`); names (`Name`) → the component itself
/// (`FirstName`).
pub fn component_rest_name(parent: &str, component: &str) -> String {
    if let Some(base) = parent.strip_suffix("__c") {
        return format!("{base}__{component}__s");
    }
    if let Some(prefix) = parent.strip_suffix("Address") {
        return format!("{prefix}{component}");
    }
    component.to_string()
}

/// Parsed schemas by id.
#[derive(Debug, Default)]
pub struct SchemaCache {
    schemas: HashMap<String, Arc<EventSchema>>,
}

impl SchemaCache {
    pub fn get(&self, id: &str) -> Option<Arc<EventSchema>> {
        self.schemas.get(id).cloned()
    }

    pub fn insert(&mut self, schema: EventSchema) -> Arc<EventSchema> {
        if self.schemas.len() >= MAX_SCHEMAS {
            self.schemas.clear();
        }
        let schema = Arc::new(schema);
        self.schemas.insert(schema.id.clone(), schema.clone());
        schema
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An `AccountChangeEvent`-shaped schema: header, plain fields, two addresses (the
    /// second a `Ref` to the first's record), a datetime with a logical type, one with only
    /// a `doc`, a date, a checkbox, a number.
    pub(crate) const ACCOUNT_SCHEMA: &str = r#"{
      "type": "record", "name": "AccountChangeEvent", "namespace": "com.sforce.eventbus",
      "fields": [
        {"name": "ChangeEventHeader", "type": {"type": "record", "name": "ChangeEventHeader",
          "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": {"type": "array", "items": "string"}},
            {"name": "changeType", "type": {"type": "enum", "name": "ChangeType",
              "symbols": ["CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE",
                          "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW", "SNAPSHOT"]}},
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
            {"name": "diffFields", "type": {"type": "array", "items": "string"}},
            {"name": "changedFields", "type": {"type": "array", "items": "string"}}
          ]}},
        {"name": "Name", "type": ["null", "string"], "default": null},
        {"name": "BillingAddress", "type": ["null", {"type": "record", "name": "Address",
          "fields": [
            {"name": "Street", "type": ["null", "string"], "default": null},
            {"name": "City", "type": ["null", "string"], "default": null},
            {"name": "State", "type": ["null", "string"], "default": null},
            {"name": "PostalCode", "type": ["null", "string"], "default": null},
            {"name": "Country", "type": ["null", "string"], "default": null},
            {"name": "Latitude", "type": ["null", "double"], "default": null},
            {"name": "Longitude", "type": ["null", "double"], "default": null}
          ]}], "default": null},
        {"name": "ShippingAddress", "type": ["null", "Address"], "default": null},
        {"name": "Description", "type": ["null", "string"], "default": null},
        {"name": "CreatedDate", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
         "default": null},
        {"name": "LastModifiedDate", "type": ["null", "long"], "doc": "LastModifiedDate:DateTime",
         "default": null},
        {"name": "SLAExpirationDate__c", "type": ["null", {"type": "int", "logicalType": "date"}],
         "default": null},
        {"name": "IsActive__c", "type": ["null", "boolean"], "default": null},
        {"name": "NumberOfEmployees", "type": ["null", "int"], "default": null},
        {"name": "AnnualRevenue", "type": ["null", "double"], "default": null}
      ]}"#;

    #[test]
    fn layout_of_an_account_schema() {
        let s = EventSchema::parse("sch1", ACCOUNT_SCHEMA).unwrap();
        let names: Vec<_> = s.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names[..4],
            [HEADER, "Name", "BillingAddress", "ShippingAddress"]
        );
        assert!(s.fields[0].is_header());
        let billing = &s.fields[2];
        assert!(billing.is_compound());
        assert_eq!(billing.components[1].rest_name, "BillingCity");
        let shipping = &s.fields[3];
        assert!(shipping.is_compound(), "a Ref to Address is compound too");
        assert_eq!(shipping.components[0].rest_name, "ShippingStreet");
        assert_eq!(s.fields[5].kind, FieldKind::DateTime);
        assert_eq!(s.fields[6].kind, FieldKind::DateTime, "from the doc");
        assert_eq!(s.fields[7].kind, FieldKind::Date);
        assert_eq!(s.fields[9].kind, FieldKind::Plain);
    }

    #[test]
    fn rest_names_of_components() {
        assert_eq!(component_rest_name("BillingAddress", "City"), "BillingCity");
        assert_eq!(
            component_rest_name("MailingAddress", "GeocodeAccuracy"),
            "MailingGeocodeAccuracy"
        );
        assert_eq!(component_rest_name("Address", "Street"), "Street");
        assert_eq!(component_rest_name("Name", "FirstName"), "FirstName");
        assert_eq!(
            component_rest_name("Loc__c", "Latitude"),
            "Loc__Latitude__s"
        );
    }

    #[test]
    fn unusable_schemas_are_errors() {
        assert!(EventSchema::parse("x", "not json").is_err());
        assert!(EventSchema::parse("x", r#""string""#).is_err());
        let no_header = r#"{"type":"record","name":"E","fields":[{"name":"a","type":"int"}]}"#;
        let err = EventSchema::parse("x", no_header).unwrap_err();
        assert!(err.to_string().contains(HEADER), "{err}");
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut c = SchemaCache::default();
        for i in 0..(MAX_SCHEMAS + 3) {
            c.insert(EventSchema::parse(&format!("s{i}"), ACCOUNT_SCHEMA).unwrap());
        }
        assert!(c.schemas.len() <= MAX_SCHEMAS);
        assert!(c.get(&format!("s{}", MAX_SCHEMAS + 2)).is_some());
    }
}
