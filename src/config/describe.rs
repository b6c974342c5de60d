//! A self-contained model of Salesforce describe results (`GET /sobjects/X/describe`),
//! just what validation needs. Parsed from the JSON so it does not depend on the client.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Describe results for the objects a config touches.
#[derive(Debug, Clone, Default)]
pub struct SfDescribe {
    objects: BTreeMap<String, SfObject>,
}

/// A describe body that is not the expected shape.
#[derive(Debug, thiserror::Error)]
#[error("describe result is not an sObject describe: {0}")]
pub struct DescribeError(#[from] serde_json::Error);

impl SfDescribe {
    /// An empty set (every object "does not exist").
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse and add several describe bodies.
    pub fn from_json<'a>(
        bodies: impl IntoIterator<Item = &'a serde_json::Value>,
    ) -> Result<Self, DescribeError> {
        let mut d = SfDescribe::new();
        for b in bodies {
            d.insert(SfObject::from_json(b)?);
        }
        Ok(d)
    }

    /// Add (or replace) one object.
    pub fn insert(&mut self, object: SfObject) {
        self.objects.insert(object.name.to_lowercase(), object);
    }

    /// An object by API name (case-insensitive, as Salesforce is).
    pub fn object(&self, name: &str) -> Option<&SfObject> {
        self.objects.get(&name.to_lowercase())
    }
}

/// One sObject's describe.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SfObject {
    pub name: String,
    #[serde(default)]
    pub custom: bool,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(default)]
    pub deletable: bool,
    #[serde(default)]
    pub fields: Vec<SfField>,
}

impl SfObject {
    /// Parse a describe body.
    pub fn from_json(body: &serde_json::Value) -> Result<SfObject, DescribeError> {
        Ok(SfObject::deserialize(body)?)
    }

    /// A field by API name (case-insensitive).
    pub fn field(&self, name: &str) -> Option<&SfField> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The lookup field whose relationship name is `relationship` (case-insensitive).
    pub fn relationship(&self, relationship: &str) -> Option<&SfField> {
        self.fields.iter().find(|f| {
            f.relationship_name
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(relationship))
        })
    }
}

/// One field of a describe (§3.2 of salesforce-api.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SfField {
    pub name: String,
    /// `string`, `picklist`, `currency`, `datetime`, `reference`, …
    #[serde(rename = "type")]
    pub field_type: String,
    /// Characters, for text types (0 otherwise).
    #[serde(default)]
    pub length: u32,
    /// Total digits, for double/currency/percent.
    #[serde(default)]
    pub precision: u32,
    /// Decimal places, for double/currency/percent.
    #[serde(default)]
    pub scale: u32,
    /// Digits, for int.
    #[serde(default)]
    pub digits: u32,
    #[serde(default = "yes")]
    pub nillable: bool,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(default)]
    pub defaulted_on_create: bool,
    #[serde(default)]
    pub external_id: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub id_lookup: bool,
    #[serde(default)]
    pub calculated: bool,
    #[serde(default)]
    pub reference_to: Vec<String>,
    #[serde(default)]
    pub relationship_name: Option<String>,
    #[serde(default)]
    pub picklist_values: Vec<SfPicklistValue>,
    #[serde(default)]
    pub restricted_picklist: bool,
}

impl SfField {
    /// Active picklist values.
    pub fn active_values(&self) -> impl Iterator<Item = &str> {
        self.picklist_values
            .iter()
            .filter(|v| v.active)
            .map(|v| v.value.as_str())
    }
}

/// One picklist entry.
#[derive(Debug, Clone, Deserialize)]
pub struct SfPicklistValue {
    pub value: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}
