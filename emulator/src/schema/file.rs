//! Loading schema files: the JSON shape users give for custom objects and extra fields
//! (see the [`super`] docs for an example), turned into [`FieldDef`]s and [`ObjectDef`]s.

use std::collections::HashMap;

use serde::Deserialize;

use super::{FieldDef, FieldType, ObjectDef, PicklistValue, SchemaError};

/// The JSON schema file: extra objects and extra fields on existing objects.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchemaFile {
    /// New (custom) objects.
    #[serde(default)]
    pub objects: Vec<ObjectSpec>,
    /// Extra fields by existing object name.
    #[serde(default)]
    pub fields: HashMap<String, Vec<FieldSpec>>,
}

/// An object in the schema file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectSpec {
    /// API name; custom objects end in `__c`.
    pub name: String,
    /// Label (defaults to the name without `__c`).
    pub label: Option<String>,
    /// Plural label (defaults to label + "s").
    pub label_plural: Option<String>,
    /// Key prefix (defaults to the next free `aNN`).
    pub key_prefix: Option<String>,
    /// Fields besides the automatic system fields, OwnerId and Name.
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
}

/// A field in the schema file. Omitted attributes get Salesforce-like defaults for the type.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldSpec {
    /// API name.
    pub name: String,
    /// Data type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Label (defaults to the name).
    pub label: Option<String>,
    /// Max length for text (default 255; 131072 for textarea if `long`).
    pub length: Option<u32>,
    /// Precision for decimals (default 18).
    pub precision: Option<u32>,
    /// Scale for decimals (default 2 for currency, 0 otherwise).
    pub scale: Option<u32>,
    /// Required on insert.
    #[serde(default)]
    pub required: bool,
    /// External ID.
    #[serde(default)]
    pub external_id: bool,
    /// Unique.
    #[serde(default)]
    pub unique: bool,
    /// Case-sensitive uniqueness.
    #[serde(default)]
    pub case_sensitive: bool,
    /// Targets of a reference.
    #[serde(default)]
    pub reference_to: Vec<String>,
    /// Relationship name of a reference.
    pub relationship_name: Option<String>,
    /// Child relationship name on the parent.
    pub child_relationship_name: Option<String>,
    /// Picklist values (first listed is not the default unless `defaultValue` says so).
    #[serde(default)]
    pub picklist_values: Vec<String>,
    /// Default picklist value.
    pub default_value: Option<String>,
    /// Restricted picklist.
    #[serde(default)]
    pub restricted_picklist: bool,
    /// Read-only (not createable/updateable).
    #[serde(default)]
    pub read_only: bool,
}

impl FieldSpec {
    /// Turns the spec into a field definition.
    pub fn into_def(self) -> FieldDef {
        let label = self
            .label
            .clone()
            .unwrap_or_else(|| default_label(&self.name));
        let mut f = FieldDef::new(&self.name, &label, self.field_type);
        match self.field_type {
            t if t.is_text() => {
                let default_len = match t {
                    FieldType::Email => 80,
                    FieldType::Phone => 40,
                    FieldType::Multipicklist => 4099,
                    _ => 255,
                };
                f.length = self.length.unwrap_or(default_len);
            }
            t if t.is_decimal() => {
                f.precision = self.precision.unwrap_or(18);
                f.scale = self
                    .scale
                    .unwrap_or(if t == FieldType::Currency { 2 } else { 0 });
            }
            FieldType::Int => f.digits = self.precision.unwrap_or(9),
            FieldType::Long => f.digits = self.precision.unwrap_or(18),
            FieldType::Reference => f.length = 18,
            _ => {}
        }
        f.nillable = !self.required;
        f.external_id = self.external_id;
        f.unique = self.unique;
        f.id_lookup = self.external_id || self.unique;
        f.case_sensitive = self.case_sensitive;
        f.reference_to = self.reference_to;
        f.relationship_name = self.relationship_name;
        f.child_relationship_name = self.child_relationship_name;
        f.restricted_picklist = self.restricted_picklist;
        let default = self.default_value;
        f.picklist_values = self
            .picklist_values
            .into_iter()
            .map(|v| PicklistValue {
                default: default.as_deref() == Some(v.as_str()),
                label: v.clone(),
                value: v,
            })
            .collect();
        if f.picklist_values.iter().any(|p| p.default) {
            f.defaulted_on_create = true;
        }
        if self.read_only {
            f.createable = false;
            f.updateable = false;
        }
        f
    }
}

/// `My_Field__c` → `My Field`.
fn default_label(name: &str) -> String {
    name.trim_end_matches("__c").replace('_', " ")
}

impl SchemaFile {
    /// Adds this file's objects and fields to `objects`.
    pub fn apply(self, objects: &mut Vec<ObjectDef>) -> Result<(), SchemaError> {
        for spec in self.objects {
            let prefix = match spec.key_prefix {
                Some(p) if p.len() == 3 && p.bytes().all(|b| b.is_ascii_alphanumeric()) => p,
                Some(p) => return Err(SchemaError::Invalid(format!("bad key prefix {p}"))),
                None => next_custom_prefix(objects),
            };
            let label = spec.label.unwrap_or_else(|| default_label(&spec.name));
            let plural = spec.label_plural.unwrap_or_else(|| format!("{label}s"));
            let fields = spec.fields.into_iter().map(FieldSpec::into_def).collect();
            objects.push(crate::standard::custom_object(
                &spec.name, &label, &plural, &prefix, fields,
            ));
        }
        for (object, fields) in self.fields {
            let Some(o) = objects
                .iter_mut()
                .find(|o| o.name.eq_ignore_ascii_case(&object))
            else {
                return Err(SchemaError::Invalid(format!(
                    "fields given for unknown object {object}"
                )));
            };
            for f in fields {
                o.add_field(f.into_def());
            }
        }
        Ok(())
    }
}

/// The next unused custom-object key prefix (`a00`, `a01`, ..., `a0Z`, `a10`, ...).
pub fn next_custom_prefix(objects: &[ObjectDef]) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for hi in DIGITS {
        for lo in DIGITS {
            let p = format!("a{}{}", *hi as char, *lo as char);
            if !objects.iter().any(|o| o.key_prefix == p) {
                return p;
            }
        }
    }
    "z99".to_string()
}
