//! Loading schema files: the JSON shape users give for custom objects and extra fields
//! (see the [`super`] docs for an example), turned into [`FieldDef`]s and [`ObjectDef`]s.

use std::collections::HashMap;

use serde::Deserialize;

use serde_json::json;

use super::{Derived, FieldDef, FieldType, ObjectDef, PicklistValue, SchemaError};

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
    /// Whether the system fields, `OwnerId` and `Name` are added automatically (default
    /// true, as for custom objects; the built-in standard objects list every field).
    pub system_fields: Option<bool>,
    /// Fields besides the automatic system fields, OwnerId and Name (every field when
    /// `systemFields` is false).
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
}

/// A field in the schema file. Omitted attributes get Salesforce-like defaults for the type.
///
/// Two behaviours follow from the type: an `address` field is the compound field built from
/// the components named by its prefix (`BillingAddress` from `BillingStreet`, ...), and a
/// field whose `extraTypeInfo` is `personname` is `FirstName LastName`.
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
    /// Settable on insert (default true unless `readOnly`).
    pub createable: Option<bool>,
    /// Settable on update (default true unless `readOnly`).
    pub updateable: Option<bool>,
    /// The system supplies a value on insert when none is given.
    #[serde(default)]
    pub defaulted_on_create: bool,
    /// The object's name field (also usable to identify a record).
    #[serde(default)]
    pub name_field: bool,
    /// Usable to identify a record (default: external ids, unique and name fields).
    pub id_lookup: Option<bool>,
    /// The compound field this field is a component of (`BillingAddress`).
    pub compound_field_name: Option<String>,
    /// Describe's `extraTypeInfo` (`plaintextarea`, `personname`, `url`, ...).
    pub extra_type_info: Option<String>,
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
            FieldType::Reference | FieldType::Id => f.length = 18,
            FieldType::Address => {
                let prefix = self.name.strip_suffix("Address").unwrap_or_default();
                f.derived = Some(Derived::Address {
                    prefix: prefix.to_string(),
                });
            }
            _ => {}
        }
        f.nillable = !self.required;
        f.external_id = self.external_id;
        f.unique = self.unique;
        f.name_field = self.name_field;
        f.id_lookup = self
            .id_lookup
            .unwrap_or(self.external_id || self.unique || self.name_field);
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
        f.createable = self.createable.unwrap_or(f.createable);
        f.updateable = self.updateable.unwrap_or(f.updateable);
        f.defaulted_on_create |= self.defaulted_on_create;
        f.compound_field_name = self.compound_field_name;
        if self.extra_type_info.as_deref() == Some("personname") {
            f.derived = Some(Derived::PersonName);
        }
        f.extra_type_info = self.extra_type_info;
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
            let mut fields = Vec::new();
            if spec.system_fields.unwrap_or(true) {
                fields.extend(system_fields(&label)?);
            }
            fields.extend(spec.fields.into_iter().map(FieldSpec::into_def));
            objects.push(ObjectDef::new(&spec.name, &label, &plural, &prefix, fields));
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

/// The fields every custom object gets, in describe order: Id, IsDeleted, OwnerId, Name
/// (text 80, defaulted to the Id when not given) and the audit fields.
fn system_fields(label: &str) -> Result<Vec<FieldDef>, SchemaError> {
    let user = |name: &str, label: &str, relationship: &str| {
        json!({"name": name, "type": "reference", "label": label, "referenceTo": ["User"],
               "relationshipName": relationship, "required": true, "defaultedOnCreate": true})
    };
    let audit = |name: &str, label: &str| {
        json!({"name": name, "type": "datetime", "label": label, "required": true,
               "readOnly": true, "defaultedOnCreate": true})
    };
    let read_only = |mut v: serde_json::Value| {
        v["readOnly"] = json!(true);
        v
    };
    let specs = json!([
        {"name": "Id", "type": "id", "label": "Record ID", "required": true, "readOnly": true,
         "defaultedOnCreate": true, "idLookup": true},
        {"name": "IsDeleted", "type": "boolean", "label": "Deleted", "required": true,
         "readOnly": true, "defaultedOnCreate": true},
        user("OwnerId", "Owner ID", "Owner"),
        {"name": "Name", "type": "string", "label": format!("{label} Name"), "length": 80,
         "nameField": true, "defaultedOnCreate": true},
        audit("CreatedDate", "Created Date"),
        read_only(user("CreatedById", "Created By ID", "CreatedBy")),
        audit("LastModifiedDate", "Last Modified Date"),
        read_only(user("LastModifiedById", "Last Modified By ID", "LastModifiedBy")),
        audit("SystemModstamp", "System Modstamp"),
    ]);
    let specs: Vec<FieldSpec> = serde_json::from_value(specs)?;
    Ok(specs.into_iter().map(FieldSpec::into_def).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(json: serde_json::Value) -> Vec<ObjectDef> {
        let file: SchemaFile = serde_json::from_value(json).unwrap();
        let mut objects = Vec::new();
        file.apply(&mut objects).unwrap();
        objects
    }

    #[test]
    fn custom_objects_get_the_system_fields_first() {
        let o = &apply(json!({"objects": [{"name": "Ticket__c", "keyPrefix": "a05",
            "fields": [{"name": "Priority__c", "type": "int"}]}]}))[0];
        let names: Vec<&str> = o.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Id",
                "IsDeleted",
                "OwnerId",
                "Name",
                "CreatedDate",
                "CreatedById",
                "LastModifiedDate",
                "LastModifiedById",
                "SystemModstamp",
                "Priority__c"
            ]
        );
        assert_eq!(o.field("Name").unwrap().label, "Ticket Name");
        assert!(o.field("Name").unwrap().defaulted_on_create);
        assert_eq!(o.field("Id").unwrap().length, 18);
        assert!(!o.field("CreatedById").unwrap().createable);
    }

    #[test]
    fn standard_attributes_and_derived_fields() {
        let objects = apply(json!({"objects": [{"name": "Thing", "keyPrefix": "x01",
            "systemFields": false, "fields": [
                {"name": "Id", "type": "id", "readOnly": true, "idLookup": true},
                {"name": "Name", "type": "string", "extraTypeInfo": "personname",
                 "readOnly": true, "nameField": true},
                {"name": "Code", "type": "string", "updateable": false, "defaultedOnCreate": true},
                {"name": "MailingCity", "type": "string", "compoundFieldName": "MailingAddress"},
                {"name": "MailingAddress", "type": "address", "readOnly": true}]}]}));
        let o = &objects[0];
        assert_eq!(o.fields.len(), 5, "no system fields added");
        assert!(o.field("Id").unwrap().id_lookup);
        let name = o.field("Name").unwrap();
        assert_eq!(name.derived, Some(Derived::PersonName));
        assert!(name.name_field && name.id_lookup);
        let code = o.field("Code").unwrap();
        assert!(code.createable && !code.updateable && code.defaulted_on_create);
        assert_eq!(
            o.field("MailingCity")
                .unwrap()
                .compound_field_name
                .as_deref(),
            Some("MailingAddress")
        );
        assert_eq!(
            o.field("MailingAddress").unwrap().derived,
            Some(Derived::Address {
                prefix: "Mailing".into()
            })
        );
    }
}
