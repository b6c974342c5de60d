//! Object and field definitions: everything `describe` reports and validation enforces.
//!
//! A [`Schema`] is built once at start (the built-in objects from [`super::standard`] plus an
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
//! Custom objects get the system fields, `OwnerId` and a `Name` (text 80) automatically and
//! the next free key prefix (`a00`, `a01`, ...) unless `keyPrefix` is given. Field attributes
//! not given take the defaults of [`FieldSpec`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

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

    /// The describe JSON of this field.
    pub fn describe(&self) -> Value {
        let t = self.field_type;
        let byte_length = if t.is_text() || t == FieldType::Id || t == FieldType::Reference {
            self.length * 3
        } else {
            0
        };
        let picklist: Vec<Value> = self
            .picklist_values
            .iter()
            .map(|p| {
                json!({"active": true, "defaultValue": p.default, "label": p.label,
                       "validFor": null, "value": p.value})
            })
            .collect();
        let numeric = matches!(
            t,
            FieldType::Int
                | FieldType::Long
                | FieldType::Double
                | FieldType::Currency
                | FieldType::Percent
        );
        let filterable =
            !(t == FieldType::Address || t == FieldType::Textarea && self.length > 255);
        let mut head = json!({
            "aggregatable": numeric || t.is_text() && self.length <= 255,
            "autoNumber": false,
            "byteLength": byte_length,
            "calculated": self.calculated,
            "calculatedFormula": null,
            "cascadeDelete": self.cascade_delete,
            "caseSensitive": self.case_sensitive,
            "compoundFieldName": self.compound_field_name,
            "controllerName": null,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.picklist_values.iter().find(|p| p.default).map(|p| p.value.clone()),
            "defaultedOnCreate": self.defaulted_on_create || t == FieldType::Boolean,
            "dependentPicklist": false,
            "deprecatedAndHidden": false,
            "digits": self.digits,
            "externalId": self.external_id,
            "extraTypeInfo": self.extra_type_info,
        });
        let tail = json!({
            "filterable": filterable,
            "groupable": filterable && !t.is_decimal() && t != FieldType::Datetime,
            "htmlFormatted": false,
            "idLookup": self.id_lookup,
            "label": self.label,
            "length": self.length,
            "name": self.name,
            "nameField": self.name_field,
            "nillable": self.nillable,
            "permissionable": self.nillable && !self.calculated,
            "picklistValues": picklist,
            "polymorphicForeignKey": self.reference_to.len() > 1,
            "precision": self.precision,
            "referenceTo": self.reference_to,
            "relationshipName": self.relationship_name,
            "relationshipOrder": null,
            "restrictedDelete": false,
            "restrictedPicklist": self.restricted_picklist,
            "scale": self.scale,
            "soapType": t.soap_type(),
            "sortable": filterable && t != FieldType::Multipicklist,
            "type": t.as_str(),
            "unique": self.unique,
            "updateable": self.updateable,
        });
        if let (Value::Object(h), Value::Object(t)) = (&mut head, tail) {
            h.extend(t);
        }
        head
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
    field_index: HashMap<String, usize>,
    /// Lower-cased relationship name → index of its reference field.
    relationship_index: HashMap<String, usize>,
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
            field_index: HashMap::new(),
            relationship_index: HashMap::new(),
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
        self.field_index
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.fields[i])
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

    /// The `urls` map of this object for API version `version` (`"60.0"`).
    pub fn urls(&self, version: &str) -> Value {
        let base = format!("/services/data/v{version}/sobjects/{}", self.name);
        json!({
            "compactLayouts": format!("{base}/describe/compactLayouts"),
            "rowTemplate": format!("{base}/{{ID}}"),
            "approvalLayouts": format!("{base}/describe/approvalLayouts"),
            "defaultValues": format!("{base}/defaultValues?recordTypeId&fields"),
            "listviews": format!("{base}/listviews"),
            "describe": format!("{base}/describe"),
            "quickActions": format!("{base}/quickActions"),
            "layouts": format!("{base}/describe/layouts"),
            "sobject": base,
        })
    }

    /// The describeGlobal entry (§3.1) of this object.
    pub fn describe_global_entry(&self, version: &str) -> Value {
        let mut v = self.flags();
        if let Value::Object(m) = &mut v {
            m.insert("urls".into(), self.urls(version));
        }
        v
    }

    /// The object-level attributes shared by describeGlobal, objectDescribe and describe.
    fn flags(&self) -> Value {
        let activity = matches!(self.name.as_str(), "Task" | "Event");
        json!({
            "activateable": false,
            "createable": true,
            "custom": self.custom,
            "customSetting": false,
            "deepCloneable": false,
            "deletable": true,
            "deprecatedAndHidden": false,
            "feedEnabled": !activity,
            "hasSubtypes": false,
            "isInterface": false,
            "isSubtype": false,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": true,
            "mergeable": matches!(self.name.as_str(), "Account" | "Contact" | "Lead"),
            "mruEnabled": true,
            "name": self.name,
            "queryable": true,
            "replicateable": true,
            "retrieveable": true,
            "searchable": true,
            "triggerable": true,
            "undeletable": true,
            "updateable": true,
        })
    }

    /// The `objectDescribe` of `GET /sobjects/X`.
    pub fn object_describe(&self, version: &str) -> Value {
        self.describe_global_entry(version)
    }

    /// The full describe (§3.2).
    pub fn describe(&self, version: &str) -> Value {
        let mut v = self.flags();
        let fields: Vec<Value> = self.fields.iter().map(FieldDef::describe).collect();
        let children: Vec<Value> = self
            .child_relationships
            .iter()
            .map(|c| {
                json!({"cascadeDelete": c.cascade_delete, "childSObject": c.child_sobject,
                       "deprecatedAndHidden": false, "field": c.field, "junctionIdListNames": [],
                       "junctionReferenceTo": [], "relationshipName": c.relationship_name,
                       "restrictedDelete": false})
            })
            .collect();
        if let Value::Object(m) = &mut v {
            m.insert("fields".into(), Value::Array(fields));
            m.insert("childRelationships".into(), Value::Array(children));
            m.insert("recordTypeInfos".into(), json!([{
                "active": true, "available": true, "defaultRecordTypeMapping": true,
                "developerName": "Master", "master": true, "name": "Master",
                "recordTypeId": "012000000000000AAA",
                "urls": {"layout": format!("/services/data/v{version}/sobjects/{}/describe/layouts/012000000000000AAA", self.name)}
            }]));
            m.insert("urls".into(), self.urls(version));
            m.insert(
                "supportedScopes".into(),
                json!([{"label": "All", "name": "everything"}]),
            );
            m.insert("namedLayoutInfos".into(), json!([]));
            m.insert("networkScopeFieldName".into(), Value::Null);
            m.insert("listviewable".into(), Value::Null);
            m.insert("lookupLayoutable".into(), Value::Null);
            m.insert("searchLayoutable".into(), json!(true));
            m.insert("sobjectDescribeOption".into(), json!("FULL"));
            m.insert("actionOverrides".into(), json!([]));
        }
        v
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
        Schema::build(super::standard::objects()).unwrap_or_else(|e| {
            // The built-in definitions are covered by tests; this cannot fail at run time.
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
        let mut objects = super::standard::objects();
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
            objects.push(super::standard::custom_object(
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
