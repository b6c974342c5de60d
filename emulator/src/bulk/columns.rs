//! The header row of an ingest upload: which field (or parent by external id) each column
//! writes, and how one CSV row becomes a request body the store validates like a REST body.
//!
//! Cell rules (Salesforce's): an empty cell leaves the field unchanged (on insert: not set),
//! `#N/A` sets it to null, and a `Relationship.ExternalIdField` column names the parent by
//! external id (`"Account": {"External_Id__c": "42"}` in REST terms).

use csv::ByteRecord;
use serde_json::{json, Map, Value};

use crate::schema::{ObjectDef, Schema};

/// What one header column writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    /// A field of the job's object, by canonical name (`Id` included).
    Field(String),
    /// A parent by external id: relationship name, parent object and its field.
    Parent {
        /// The lookup field (`AccountId`), nulled by `#N/A`.
        field: String,
        /// Relationship name (`Account`).
        relationship: String,
        /// Parent object (`Account`), used for polymorphic lookups.
        object: Option<String>,
        /// External-id field of the parent (`External_Id__c`).
        ext_field: String,
    },
}

/// The analysed header of an upload.
#[derive(Clone, Debug)]
pub struct Header {
    /// One entry per column, in file order.
    pub columns: Vec<Column>,
    /// The column holding the record key (`Id`, or the upsert external-id field).
    pub key: Option<usize>,
}

/// Reads the header row; an unknown column fails the job with Salesforce's message.
pub fn analyze(
    schema: &Schema,
    object: &ObjectDef,
    header: &ByteRecord,
    key_field: Option<&str>,
) -> Result<Header, String> {
    let mut columns = Vec::with_capacity(header.len());
    let mut key = None;
    for (i, raw) in header.iter().enumerate() {
        let name = std::str::from_utf8(raw)
            .map_err(|_| "InvalidBatch : Field name not found : <invalid UTF-8>".to_string())?
            .trim_start_matches('\u{feff}');
        let column = column(schema, object, name)
            .ok_or_else(|| format!("InvalidBatch : Field name not found : {name}"))?;
        if let (Column::Field(f), Some(k)) = (&column, key_field) {
            if f.eq_ignore_ascii_case(k) {
                key = Some(i);
            }
        }
        columns.push(column);
    }
    Ok(Header { columns, key })
}

/// Resolves one header name.
fn column(schema: &Schema, object: &ObjectDef, name: &str) -> Option<Column> {
    if let Some(f) = object.field(name) {
        return Some(Column::Field(f.name.clone()));
    }
    let (relationship, ext_field) = name.split_once('.')?;
    let reference = object.relationship(relationship)?;
    let target = match reference.reference_to.as_slice() {
        [only] => only.clone(),
        many => many
            .iter()
            .find(|o| o.as_str() == "User")
            .or_else(|| many.first())?
            .clone(),
    };
    let parent = schema.object(&target)?;
    let ext = if ext_field.eq_ignore_ascii_case("Id") {
        "Id".to_string()
    } else {
        parent.field(ext_field)?.name.clone()
    };
    Some(Column::Parent {
        field: reference.name.clone(),
        relationship: reference.relationship_name.clone().unwrap_or_default(),
        object: (reference.reference_to.len() > 1).then_some(target),
        ext_field: ext,
    })
}

/// A CSV row turned into a request body, plus the key cell.
#[derive(Debug, Default)]
pub struct RowBody {
    /// Field name → JSON value (strings, `null`, or parent objects).
    pub body: Map<String, Value>,
    /// The key column's cell, if the header has one (empty string when the cell is empty).
    pub key: Option<String>,
}

/// Builds the body for one row. The key column is left out of the body.
pub fn row_body(header: &Header, row: &ByteRecord) -> Result<RowBody, String> {
    let mut out = RowBody {
        body: Map::with_capacity(header.columns.len()),
        key: None,
    };
    for (i, (column, raw)) in header.columns.iter().zip(row.iter()).enumerate() {
        let cell = std::str::from_utf8(raw)
            .map_err(|_| "INVALID_FIELD:Invalid UTF-8 in CSV data: --".to_string())?;
        if Some(i) == header.key {
            out.key = Some(cell.to_string());
            continue;
        }
        if cell.is_empty() {
            continue;
        }
        let value = if cell == "#N/A" {
            Value::Null
        } else {
            Value::String(cell.to_string())
        };
        match column {
            Column::Field(name) => {
                out.body.insert(name.clone(), value);
            }
            Column::Parent { field, .. } if value.is_null() => {
                out.body.insert(field.clone(), Value::Null);
            }
            Column::Parent {
                relationship,
                object,
                ext_field,
                ..
            } => {
                let mut parent = Map::new();
                if let Some(o) = object {
                    parent.insert("attributes".into(), json!({"type": o}));
                }
                parent.insert(ext_field.clone(), value);
                out.body.insert(relationship.clone(), Value::Object(parent));
            }
        }
    }
    Ok(out)
}
