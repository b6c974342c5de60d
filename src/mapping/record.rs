//! The mapped record: field values and their Bulk CSV and REST JSON renderings.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::{Map, Value as Json};

use crate::pgoutput::value::Value;

/// Bulk CSV cell meaning "set to null".
pub const CSV_NULL: &str = "#N/A";

/// A field's value in a record. Its serde form (snake-case variant names) is what the
/// change journal stores: renaming a variant breaks reading older journals.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldValue {
    /// Leave the field alone (an unchanged TOASTed value): empty CSV cell, omitted in JSON.
    Unchanged,
    /// Clear the field: `#N/A` in CSV, `null` in JSON.
    Null,
    Bool(bool),
    Int(i64),
    /// An exact decimal in plain notation; JSON keeps every digit.
    Number(String),
    Text(String),
    Date(NaiveDate),
    /// Rendered `yyyy-MM-ddTHH:mm:ss.SSSZ` (sub-millisecond digits are cut: Salesforce keeps ms).
    DateTime(DateTime<Utc>),
    /// Rendered `HH:mm:ss.SSSZ`.
    Time(NaiveTime),
}

impl FieldValue {
    /// The Bulk API 2.0 CSV cell (unquoted; the CSV writer quotes). Empty text becomes
    /// `#N/A` because an empty cell would mean "unchanged" (Salesforce stores empty text as
    /// null anyway).
    pub fn csv(&self) -> Cow<'_, str> {
        match self {
            FieldValue::Unchanged => Cow::Borrowed(""),
            FieldValue::Null => Cow::Borrowed(CSV_NULL),
            FieldValue::Text(s) if s.is_empty() => Cow::Borrowed(CSV_NULL),
            FieldValue::Text(s) | FieldValue::Number(s) => Cow::Borrowed(s),
            other => Cow::Owned(other.plain_text()),
        }
    }

    /// The REST JSON value; `None` for [`FieldValue::Unchanged`] (omit the field).
    pub fn json(&self) -> Option<Json> {
        Some(match self {
            FieldValue::Unchanged => return None,
            FieldValue::Null => Json::Null,
            FieldValue::Bool(b) => Json::Bool(*b),
            FieldValue::Int(i) => Json::from(*i),
            FieldValue::Number(n) => n
                .parse::<serde_json::Number>()
                .map(Json::Number)
                .unwrap_or_else(|_| Json::String(n.clone())),
            FieldValue::Text(s) => Json::String(s.clone()),
            other => Json::String(other.plain_text()),
        })
    }

    /// Text of a non-null value, as both CSV and the `string` transform use it.
    pub(crate) fn plain_text(&self) -> String {
        match self {
            FieldValue::Unchanged | FieldValue::Null => String::new(),
            FieldValue::Bool(b) => b.to_string(),
            FieldValue::Int(i) => i.to_string(),
            FieldValue::Number(s) | FieldValue::Text(s) => s.clone(),
            FieldValue::Date(d) => d.format("%Y-%m-%d").to_string(),
            FieldValue::DateTime(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            FieldValue::Time(t) => t.format("%H:%M:%S%.3fZ").to_string(),
        }
    }
}

/// Where a value goes in the record. Serialized (snake case) in the change journal, like
/// [`FieldValue`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldName {
    /// A plain field, e.g. `Email` or `Plan__c`.
    Field(String),
    /// A parent reference by external id: CSV column `Account.External_Id__c`, JSON
    /// `{"Account": {"External_Id__c": "42"}}`.
    Parent {
        relationship: String,
        external_id_field: String,
    },
}

impl FieldName {
    /// The length of the Bulk CSV column header ([`fmt::Display`]), without writing it.
    pub fn csv_len(&self) -> usize {
        match self {
            FieldName::Field(n) => n.len(),
            FieldName::Parent {
                relationship,
                external_id_field,
            } => relationship.len() + 1 + external_id_field.len(),
        }
    }
}

impl fmt::Display for FieldName {
    /// The Bulk CSV column header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldName::Field(n) => f.write_str(n),
            FieldName::Parent {
                relationship,
                external_id_field,
            } => write!(f, "{relationship}.{external_id_field}"),
        }
    }
}

/// Upsert by external id, or delete the record with that external id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MappedOp {
    Upsert,
    Delete,
}

/// A parent record a change refers to (a synced lookup), for parents-first ordering.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParentRef {
    pub object: Arc<str>,
    pub external_id_field: Arc<str>,
    pub external_id: String,
}

/// Write the Salesforce Id into `column` of the source row identified by `key`, once
/// the upsert succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBack {
    /// `schema.table`.
    pub table: String,
    /// Column receiving the Id.
    pub column: String,
    /// The columns that find the row(s) to update and their values: the mapping's external
    /// id column and the record's key.
    pub key: Vec<(String, Value)>,
    /// The column's value in the row (`None`: NULL, or not known such as an unchanged
    /// TOASTed value). The Id is written only when it differs.
    pub current: Option<String>,
}

/// One record operation produced from a row change.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedChange {
    /// The mapping's name.
    pub mapping: Arc<str>,
    /// Target sObject.
    pub object: Arc<str>,
    /// External ID field the record is keyed by.
    pub external_id_field: Arc<str>,
    /// The record's external id value.
    pub external_id: String,
    pub op: MappedOp,
    /// In mapping order (fields, then lookups); empty for deletes. Does not contain the
    /// external id field; [`MappedChange::csv_value`] and the JSON forms add it.
    pub fields: Vec<(FieldName, FieldValue)>,
    /// Synced parents referenced by this record.
    pub parents: Vec<ParentRef>,
    /// Where to write the record Id back, for upserts of mappings with `write_back`.
    pub write_back: Option<WriteBack>,
    /// Update the record only if it exists, never create it: a soft delete (an upsert of
    /// the soft-delete field) of a row that may never have reached Salesforce (outside
    /// the filter, which a delete under a non-FULL replica identity cannot check).
    pub existing_only: bool,
    /// The key field is an ordinary field records are matched by (SOQL, then by Id), not
    /// an External ID upserts can key on (`external_id.match_by`).
    pub match_by: bool,
}

impl MappedChange {
    /// Synced parent records this one refers to: the batcher sends them first.
    pub fn parents(&self) -> &[ParentRef] {
        &self.parents
    }

    /// The value of a field, by CSV column name.
    pub fn field(&self, column: &str) -> Option<&FieldValue> {
        self.fields
            .iter()
            .find(|(n, _)| n.to_string() == column)
            .map(|(_, v)| v)
    }

    /// The CSV cell for `column` (the external id field, a mapped field or a relationship
    /// column); empty (= unchanged) when this record has no value for it.
    pub fn csv_value(&self, column: &str) -> Cow<'_, str> {
        if column == &*self.external_id_field {
            return Cow::Borrowed(&self.external_id);
        }
        self.field(column)
            .map_or(Cow::Borrowed(""), FieldValue::csv)
    }

    /// The fields as a REST JSON body (external id not included, as a single-record upsert
    /// `PATCH /sobjects/X/Field/value` wants). Parents nest under the relationship name.
    pub fn json_fields(&self) -> Map<String, Json> {
        let mut out = Map::with_capacity(self.fields.len());
        self.json_fields_into(&mut out);
        out
    }

    /// [`Self::json_fields`] into `out` (a map the caller sized once for everything it
    /// holds).
    pub fn json_fields_into(&self, out: &mut Map<String, Json>) {
        for (name, value) in &self.fields {
            let Some(v) = value.json() else { continue };
            match name {
                FieldName::Field(n) => {
                    out.insert(n.clone(), v);
                }
                FieldName::Parent {
                    relationship,
                    external_id_field,
                } => {
                    let mut parent = Map::with_capacity(1);
                    parent.insert(external_id_field.clone(), v);
                    out.insert(relationship.clone(), Json::Object(parent));
                }
            }
        }
    }

    /// A record for an sObject Collections upsert: `attributes.type`, the external id field
    /// and the fields.
    pub fn collections_record(&self) -> Json {
        let mut out = Map::new();
        out.insert(
            "attributes".into(),
            serde_json::json!({ "type": &*self.object }),
        );
        out.insert(
            self.external_id_field.to_string(),
            Json::String(self.external_id.clone()),
        );
        out.extend(self.json_fields());
        Json::Object(out)
    }
}

/// The CSV header for a set of changes to one object: the external id field first, then
/// every field any change sets, in first-seen order.
pub fn csv_columns(changes: &[MappedChange]) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    if let Some(first) = changes.first() {
        cols.push(first.external_id_field.to_string());
    }
    for c in changes {
        for (name, _) in &c.fields {
            let n = name.to_string();
            if !cols.contains(&n) {
                cols.push(n);
            }
        }
    }
    cols
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_name_knows_its_header_length_without_writing_it() {
        let names = [
            FieldName::Field("Name".into()),
            FieldName::Parent {
                relationship: "Account".into(),
                external_id_field: "External_Id__c".into(),
            },
        ];
        for n in names {
            assert_eq!(n.csv_len(), n.to_string().len(), "{n}");
        }
    }
}
