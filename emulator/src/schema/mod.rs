//! Object and field definitions: everything `describe` reports and validation enforces.
//! This module holds the model; [`describe`] renders it as describe JSON, [`file`] loads
//! schema files and [`builtin`] holds the built-in objects as embedded schema files.
//!
//! A [`Schema`] is built once at start (the built-in objects of [`builtin`] plus an
//! optional JSON file, see [`SchemaFile`]) and is immutable afterwards, so it is shared as
//! `Arc<Schema>` without locks. Lookups by object or field name are case-insensitive, like
//! Salesforce API names.
//!
//! # Schema file shape
//!
//! ```json
//! {"objects": [{"name": "Invoice__c", "label": "Invoice", "labelPlural": "Invoices",
//!               "fields": [{"name": "Amount__c", "type": "currency", "precision": 18, "scale": 2},
//!                          {"name": "Account__c", "type": "reference", "referenceTo": ["Account"],
//!                           "relationshipName": "Account__r", "childRelationshipName": "Invoices__r"}]}],
//!  "fields": {"Account": [{"name": "Region__c", "type": "picklist",
//!                          "picklistValues": ["EMEA", "AMER"], "restrictedPicklist": true}]}}
//! ```
//! Custom objects get the system fields, `OwnerId` and a `Name` (text 80) automatically
//! (unless `"systemFields": false`, then every field is listed) and the next free key prefix
//! (`a00`, `a01`, ...) unless `keyPrefix` is given. Field attributes not given take the
//! defaults of [`FieldSpec`], which also lists the describe attributes a field may set
//! (`createable`, `updateable`, `defaultedOnCreate`, `nameField`, `idLookup`,
//! `compoundFieldName`, `extraTypeInfo`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::Value;

pub mod builtin;
mod describe;
#[cfg(test)]
mod describe_snapshot;
mod file;

pub use file::{next_custom_prefix, FieldSpec, ObjectSpec, SchemaFile};

/// The Salesforce field types the emulator models (describe's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// The record id.
    Id,
    /// Text.
    String,
    /// Text area or long text area.
    Textarea,
    /// Email address (syntax checked).
    Email,
    /// Phone number (free text).
    Phone,
    /// URL (free text).
    Url,
    /// Single-select picklist.
    Picklist,
    /// Multi-select picklist, values joined by `;`.
    Multipicklist,
    /// Picklist that also accepts free text.
    Combobox,
    /// Checkbox.
    Boolean,
    /// 32-bit integer.
    Int,
    /// 64-bit integer.
    Long,
    /// Number with precision and scale.
    Double,
    /// Currency with precision and scale.
    Currency,
    /// Percent with precision and scale (stored as the number shown).
    Percent,
    /// Date.
    Date,
    /// Date and time (UTC on the wire).
    Datetime,
    /// Time of day.
    Time,
    /// Lookup / master-detail to one or more objects.
    Reference,
    /// Compound address (read-only, built from its component fields).
    Address,
}

impl FieldType {
    /// The name describe reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Textarea => "textarea",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Picklist => "picklist",
            FieldType::Multipicklist => "multipicklist",
            FieldType::Combobox => "combobox",
            FieldType::Boolean => "boolean",
            FieldType::Int => "int",
            FieldType::Long => "long",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Time => "time",
            FieldType::Reference => "reference",
            FieldType::Address => "address",
        }
    }

    /// The SOAP type describe reports.
    pub fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Int => "xsd:int",
            FieldType::Long => "xsd:long",
            FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
            FieldType::Date => "xsd:date",
            FieldType::Datetime => "xsd:dateTime",
            FieldType::Time => "xsd:time",
            FieldType::Address => "urn:address",
            _ => "xsd:string",
        }
    }

    /// True for types whose values are text with a maximum `length`.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::String
                | FieldType::Textarea
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Picklist
                | FieldType::Multipicklist
                | FieldType::Combobox
        )
    }

    /// True for decimal number types described by precision and scale.
    pub fn is_decimal(self) -> bool {
        matches!(
            self,
            FieldType::Double | FieldType::Currency | FieldType::Percent
        )
    }
}

/// One picklist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PicklistValue {
    /// API value.
    pub value: String,
    /// Display label.
    pub label: String,
    /// Whether this is the default value on create.
    pub default: bool,
}

/// A field definition: the union of what describe reports and validation needs.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// API name, canonical case (e.g. `AccountId`, `External_Id__c`).
    pub name: String,
    /// Label.
    pub label: String,
    /// Data type.
    pub field_type: FieldType,
    /// Max characters for text types, 18 for ids; 0 otherwise.
    pub length: u32,
    /// Total digits for decimal types.
    pub precision: u32,
    /// Digits after the decimal point for decimal types.
    pub scale: u32,
    /// Digits for integer types.
    pub digits: u32,
    /// Whether the field may be null.
    pub nillable: bool,
    /// Whether the field may be set on insert.
    pub createable: bool,
    /// Whether the field may be set on update.
    pub updateable: bool,
    /// Whether the system supplies a value on insert when none is given.
    pub defaulted_on_create: bool,
    /// Custom field (`__c`).
    pub custom: bool,
    /// Marked External ID (usable for upsert and parent references).
    pub external_id: bool,
    /// Values must be unique among live records of the object.
    pub unique: bool,
    /// Usable to identify a record (Id, Name-like, external ids).
    pub id_lookup: bool,
    /// Uniqueness/matching is case-sensitive.
    pub case_sensitive: bool,
    /// Formula or system-computed.
    pub calculated: bool,
    /// The object's name field.
    pub name_field: bool,
    /// Objects a reference may point to.
    pub reference_to: Vec<String>,
    /// Relationship name of a reference (`Account`, `Account__r`).
    pub relationship_name: Option<String>,
    /// Name of the child relationship this reference creates on its parent (`Contacts`).
    pub child_relationship_name: Option<String>,
    /// Deleting the parent deletes children (master-detail).
    pub cascade_delete: bool,
    /// Picklist entries.
    pub picklist_values: Vec<PicklistValue>,
    /// Only listed picklist values are accepted.
    pub restricted_picklist: bool,
    /// Compound field this component belongs to (`BillingAddress`).
    pub compound_field_name: Option<String>,
    /// Extra type info (`plaintextarea`, `richtextarea`, `personname`, ...).
    pub extra_type_info: Option<String>,
    /// How the store computes this field, if it does.
    pub derived: Option<Derived>,
}

/// Fields the store computes from other fields on every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Derived {
    /// `FirstName LastName`.
    PersonName,
    /// Compound address from the components sharing `prefix` (`Billing` → `BillingStreet`, ...).
    Address {
        /// Component prefix.
        prefix: String,
    },
}

impl FieldDef {
    /// A field with the given name, label and type and neutral defaults: nillable,
    /// createable, updateable, not unique.
    pub fn new(name: &str, label: &str, field_type: FieldType) -> FieldDef {
        FieldDef {
            name: name.to_string(),
            label: label.to_string(),
            field_type,
            length: 0,
            precision: 0,
            scale: 0,
            digits: 0,
            nillable: true,
            createable: true,
            updateable: true,
            defaulted_on_create: false,
            custom: name.ends_with("__c"),
            external_id: false,
            unique: false,
            id_lookup: false,
            case_sensitive: false,
            calculated: false,
            name_field: false,
            reference_to: Vec::new(),
            relationship_name: None,
            child_relationship_name: None,
            cascade_delete: false,
            picklist_values: Vec::new(),
            restricted_picklist: false,
            compound_field_name: None,
            extra_type_info: None,
            derived: None,
        }
    }

    /// Must be supplied (non-null) on insert.
    pub fn is_required(&self) -> bool {
        !self.nillable
            && self.createable
            && !self.defaulted_on_create
            && self.field_type != FieldType::Boolean
    }

    /// The default value on insert, if any (picklist default, `false` for checkboxes).
    pub fn default_value(&self) -> Option<Value> {
        if self.field_type == FieldType::Boolean {
            return Some(Value::Bool(false));
        }
        self.picklist_values
            .iter()
            .find(|p| p.default)
            .map(|p| Value::String(p.value.clone()))
    }

    /// Whether `value` is one of this picklist's values (exact match, like Salesforce
    /// restricted picklists on the API).
    pub fn has_picklist_value(&self, value: &str) -> bool {
        self.picklist_values.iter().any(|p| p.value == value)
    }
}

/// A child relationship of an object, derived from the references pointing at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRelationship {
    /// Child object name (`Contact`).
    pub child_sobject: String,
    /// Reference field on the child (`AccountId`).
    pub field: String,
    /// Relationship name used in subqueries (`Contacts`).
    pub relationship_name: Option<String>,
    /// Whether deleting the parent deletes the children.
    pub cascade_delete: bool,
}

/// An object definition.
#[derive(Debug, Clone)]
pub struct ObjectDef {
    /// API name (`Account`, `Subscription__c`).
    pub name: String,
    /// Label.
    pub label: String,
    /// Plural label.
    pub label_plural: String,
    /// 3-char id prefix.
    pub key_prefix: String,
    /// Custom object.
    pub custom: bool,
    /// Field definitions in describe order.
    pub fields: Vec<FieldDef>,
    /// Child relationships (filled in when the schema is built).
    pub child_relationships: Vec<ChildRelationship>,
    /// Lower-cased field name → index in `fields`.
    field_index: FxHashMap<String, usize>,
    /// Canonical field name → index in `fields` (the allocation-free fast path of lookups;
    /// the index is the field's slot in stored rows, see [`crate::row`]).
    exact_index: FxHashMap<String, usize>,
    /// Lower-cased relationship name → index of its reference field.
    relationship_index: FxHashMap<String, usize>,
    /// Indexes of the fields with a default value on insert (picklist defaults, checkboxes).
    defaulted: Vec<usize>,
    /// Indexes of the fields the store derives ([`Derived`]).
    derived: Vec<usize>,
    /// Indexes of the unique fields.
    unique: Vec<usize>,
    /// Slot of `IsDeleted`, read on every scanned row.
    is_deleted: Option<usize>,
}

impl ObjectDef {
    /// An object with the given fields (indexes are built here).
    pub fn new(
        name: &str,
        label: &str,
        label_plural: &str,
        key_prefix: &str,
        fields: Vec<FieldDef>,
    ) -> ObjectDef {
        let mut def = ObjectDef {
            name: name.to_string(),
            label: label.to_string(),
            label_plural: label_plural.to_string(),
            key_prefix: key_prefix.to_string(),
            custom: name.ends_with("__c"),
            fields,
            child_relationships: Vec::new(),
            field_index: FxHashMap::default(),
            exact_index: FxHashMap::default(),
            relationship_index: FxHashMap::default(),
            defaulted: Vec::new(),
            derived: Vec::new(),
            unique: Vec::new(),
            is_deleted: None,
        };
        def.reindex();
        def
    }

    /// Rebuilds the name indexes after `fields` changed.
    fn reindex(&mut self) {
        self.field_index = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
            .collect();
        self.exact_index = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        self.relationship_index = self
            .fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                f.relationship_name
                    .as_ref()
                    .map(|r| (r.to_ascii_lowercase(), i))
            })
            .collect();
        let positions = |keep: fn(&FieldDef) -> bool| -> Vec<usize> {
            (0..self.fields.len())
                .filter(|&i| keep(&self.fields[i]))
                .collect()
        };
        self.defaulted = positions(|f| f.default_value().is_some());
        self.derived = positions(|f| f.derived.is_some());
        self.unique = positions(|f| f.unique);
        self.is_deleted = self.exact_index.get("IsDeleted").copied();
    }

    /// The slot of `IsDeleted`, if the object has it.
    pub fn is_deleted_slot(&self) -> Option<usize> {
        self.is_deleted
    }

    /// The fields with a default value on insert, in describe order.
    pub fn defaulted_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.defaulted.iter().filter_map(|&i| self.fields.get(i))
    }

    /// The fields the store derives from others, in describe order.
    pub fn derived_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.derived.iter().filter_map(|&i| self.fields.get(i))
    }

    /// The unique fields, in describe order.
    pub fn unique_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.unique.iter().filter_map(|&i| self.fields.get(i))
    }

    /// Adds or replaces a field.
    pub fn add_field(&mut self, field: FieldDef) {
        match self.field_index.get(&field.name.to_ascii_lowercase()) {
            Some(&i) => self.fields[i] = field,
            None => self.fields.push(field),
        }
        self.reindex();
    }

    /// The field with this name, case-insensitively.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.slot(name).and_then(|i| self.fields.get(i))
    }

    /// The position of field `name` (any case) in `fields`: its slot in stored rows.
    /// Canonical names are found without allocating.
    pub fn slot(&self, name: &str) -> Option<usize> {
        if let Some(&i) = self.exact_index.get(name) {
            return Some(i);
        }
        self.field_index.get(&name.to_ascii_lowercase()).copied()
    }

    /// The reference field whose relationship name is `name` (`Account` → `AccountId`).
    pub fn relationship(&self, name: &str) -> Option<&FieldDef> {
        self.relationship_index
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.fields[i])
    }

    /// The child relationship with this name (`Contacts`), case-insensitively.
    pub fn child_relationship(&self, name: &str) -> Option<&ChildRelationship> {
        self.child_relationships.iter().find(|c| {
            c.relationship_name
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(name))
        })
    }

    /// The name field (`Name`, or `Subject` for activities).
    pub fn name_field(&self) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name_field)
    }

    /// Fields whose values are indexed for lookups: external ids and unique fields.
    pub fn indexed_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.iter().filter(|f| f.external_id || f.unique)
    }
}

/// Why a schema could not be built or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema file could not be read.
    #[error("cannot read schema file {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The schema file is not valid JSON of the documented shape.
    #[error("invalid schema file: {0}")]
    Parse(#[from] serde_json::Error),
    /// A definition is inconsistent (unknown object, duplicate prefix, bad reference).
    #[error("invalid schema: {0}")]
    Invalid(String),
}

/// All objects of the emulated org. Immutable once built.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Objects in describeGlobal order.
    objects: Vec<Arc<ObjectDef>>,
    /// Lower-cased object name → index.
    by_name: HashMap<String, usize>,
    /// Key prefix → index.
    by_prefix: HashMap<String, usize>,
}

impl Schema {
    /// The built-in standard and pgforce custom objects.
    pub fn standard() -> Schema {
        builtin::objects()
            .and_then(|objects| Schema::build(objects).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| {
                // The embedded files are covered by tests; this cannot fail at run time.
                panic!("built-in schema is invalid: {e}")
            })
    }

    /// The built-in objects extended by a schema file.
    pub fn standard_with_file(path: &Path) -> Result<Schema, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let file: SchemaFile = serde_json::from_str(&text)?;
        Schema::standard_with(file)
    }

    /// The built-in objects extended by a parsed schema file.
    pub fn standard_with(file: SchemaFile) -> Result<Schema, SchemaError> {
        let mut objects = builtin::objects().map_err(SchemaError::Invalid)?;
        file.apply(&mut objects)?;
        Schema::build(objects)
    }

    /// Builds the indexes and child relationships; checks references and key prefixes.
    pub fn build(mut objects: Vec<ObjectDef>) -> Result<Schema, SchemaError> {
        let mut by_name = HashMap::new();
        let mut by_prefix = HashMap::new();
        for (i, o) in objects.iter().enumerate() {
            if by_name.insert(o.name.to_ascii_lowercase(), i).is_some() {
                return Err(SchemaError::Invalid(format!(
                    "object {} defined twice",
                    o.name
                )));
            }
            if by_prefix.insert(o.key_prefix.clone(), i).is_some() {
                return Err(SchemaError::Invalid(format!(
                    "key prefix {} used twice",
                    o.key_prefix
                )));
            }
        }
        let mut children: Vec<Vec<ChildRelationship>> = vec![Vec::new(); objects.len()];
        for o in &objects {
            for f in o
                .fields
                .iter()
                .filter(|f| f.field_type == FieldType::Reference)
            {
                for target in &f.reference_to {
                    let Some(&t) = by_name.get(&target.to_ascii_lowercase()) else {
                        return Err(SchemaError::Invalid(format!(
                            "{}.{} references unknown object {target}",
                            o.name, f.name
                        )));
                    };
                    children[t].push(ChildRelationship {
                        child_sobject: o.name.clone(),
                        field: f.name.clone(),
                        relationship_name: f.child_relationship_name.clone(),
                        cascade_delete: f.cascade_delete,
                    });
                }
            }
        }
        for (o, c) in objects.iter_mut().zip(children) {
            o.child_relationships = c;
        }
        Ok(Schema {
            objects: objects.into_iter().map(Arc::new).collect(),
            by_name,
            by_prefix,
        })
    }

    /// The object with this name, case-insensitively.
    pub fn object(&self, name: &str) -> Option<&Arc<ObjectDef>> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.objects[i])
    }

    /// The object whose records have this key prefix.
    pub fn object_by_prefix(&self, key_prefix: &str) -> Option<&Arc<ObjectDef>> {
        self.by_prefix.get(key_prefix).map(|&i| &self.objects[i])
    }

    /// All objects in describeGlobal order.
    pub fn objects(&self) -> &[Arc<ObjectDef>] {
        &self.objects
    }
}
