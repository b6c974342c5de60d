//! Describe rendering: the JSON `describe`, `describeGlobal` and the object summary report
//! for an [`ObjectDef`] and its [`FieldDef`]s. Pure functions of the model; no state.

use serde_json::{json, Value};

use super::{FieldDef, FieldType, ObjectDef};

impl FieldDef {
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

impl ObjectDef {
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
