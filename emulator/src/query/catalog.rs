//! Adapts the emulator core's schema and store to the SOQL engine's [`Catalog`] and
//! [`RecordSource`] seams.
//!
//! Describe facts are converted once per schema into [`ObjectInfo`]s and cached; scans
//! borrow the store's `Arc<Row>` snapshots, so a query copies only what it keeps.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use crate::ids::Id;
use crate::schema::{FieldDef, FieldType, ObjectDef, Schema};
use crate::soql::{Catalog, FieldInfo, FieldKind, Fields, ObjectInfo, Record, RecordSource};
use crate::store::Store;

/// The SOQL view of a schema: lower-cased object name → converted object.
#[derive(Debug, Default)]
pub struct SoqlCatalog {
    objects: HashMap<String, Arc<ObjectInfo>>,
    /// (lower-cased parent, lower-cased relationship) → (child, field, relationship).
    children: HashMap<(String, String), (String, String, String)>,
}

impl SoqlCatalog {
    /// Converts every object of `schema`.
    pub fn new(schema: &Schema) -> SoqlCatalog {
        let objects = schema
            .objects()
            .iter()
            .map(|o| (o.name.to_ascii_lowercase(), Arc::new(object_info(o))))
            .collect();
        let children = schema
            .objects()
            .iter()
            .flat_map(|o| {
                o.child_relationships.iter().filter_map(move |c| {
                    let rel = c.relationship_name.clone()?;
                    let key = (o.name.to_ascii_lowercase(), rel.to_ascii_lowercase());
                    Some((key, (c.child_sobject.clone(), c.field.clone(), rel)))
                })
            })
            .collect();
        SoqlCatalog { objects, children }
    }
}

impl Catalog for SoqlCatalog {
    fn object(&self, name: &str) -> Option<Arc<ObjectInfo>> {
        self.objects.get(&name.to_ascii_lowercase()).cloned()
    }

    fn child_relationship(
        &self,
        parent: &str,
        relationship: &str,
    ) -> Option<(String, String, String)> {
        let key = (
            parent.to_ascii_lowercase(),
            relationship.to_ascii_lowercase(),
        );
        self.children.get(&key).cloned()
    }
}

/// One object's describe facts as the engine wants them.
fn object_info(o: &ObjectDef) -> ObjectInfo {
    ObjectInfo {
        name: o.name.clone(),
        fields: o.fields.iter().map(field_info).collect(),
    }
}

/// One field's facts.
fn field_info(f: &FieldDef) -> FieldInfo {
    let kind = field_kind(f.field_type);
    let long_text = f.field_type == FieldType::Textarea && f.length > 255;
    let compound = f.field_type == FieldType::Address;
    FieldInfo {
        name: f.name.clone(),
        kind,
        reference_to: f.reference_to.clone(),
        relationship_name: f.relationship_name.clone(),
        filterable: !long_text && !compound,
        sortable: !long_text && !compound && f.field_type != FieldType::Multipicklist,
    }
}

/// Maps a describe type to the engine's comparison kind.
pub fn field_kind(t: FieldType) -> FieldKind {
    match t {
        FieldType::Id => FieldKind::Id,
        FieldType::String => FieldKind::String,
        FieldType::Textarea => FieldKind::TextArea,
        FieldType::Email => FieldKind::Email,
        FieldType::Phone => FieldKind::Phone,
        FieldType::Url => FieldKind::Url,
        FieldType::Picklist | FieldType::Combobox => FieldKind::Picklist,
        FieldType::Multipicklist => FieldKind::MultiPicklist,
        FieldType::Boolean => FieldKind::Boolean,
        FieldType::Int | FieldType::Long => FieldKind::Int,
        FieldType::Double => FieldKind::Double,
        FieldType::Currency => FieldKind::Currency,
        FieldType::Percent => FieldKind::Percent,
        FieldType::Date => FieldKind::Date,
        FieldType::Datetime => FieldKind::DateTime,
        FieldType::Time => FieldKind::Time,
        FieldType::Reference => FieldKind::Reference,
        FieldType::Address => FieldKind::Other,
    }
}

/// The store as a [`RecordSource`].
#[derive(Debug, Clone, Copy)]
pub struct StoreSource<'a>(pub &'a Store);

impl RecordSource for StoreSource<'_> {
    fn scan(
        &self,
        object: &str,
        include_deleted: bool,
        visit: &mut dyn FnMut(&dyn Fields) -> bool,
    ) {
        let _ = self.0.scan_rows(object, None, include_deleted, |r| {
            if visit(&**r) {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        });
    }

    fn lookup(
        &self,
        object: &str,
        field: &str,
        values: &[&str],
        include_deleted: bool,
        visit: &mut dyn FnMut(&dyn Fields) -> bool,
    ) -> bool {
        let Some(rows) = self.0.lookup_rows(object, field, values, include_deleted) else {
            return false;
        };
        for r in &rows {
            if !visit(&**r) {
                break;
            }
        }
        true
    }

    fn get(&self, id: &str) -> Option<Record> {
        let id = Id::parse(id).ok()?;
        self.0.row(&id).map(|r| r.to_sparse_map())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use serde_json::{json, Value};

    use super::*;
    use crate::clock::Clock;
    use crate::soql::{execute, parse, ExecOptions};

    /// The store as a source that counts the records its scans visit.
    struct Counting<'a> {
        inner: StoreSource<'a>,
        scanned: Cell<usize>,
    }

    impl RecordSource for Counting<'_> {
        fn scan(&self, object: &str, deleted: bool, visit: &mut dyn FnMut(&dyn Fields) -> bool) {
            self.inner.scan(object, deleted, &mut |r| {
                self.scanned.set(self.scanned.get() + 1);
                visit(r)
            });
        }

        fn get(&self, id: &str) -> Option<Record> {
            self.inner.get(id)
        }

        fn lookup(
            &self,
            object: &str,
            field: &str,
            values: &[&str],
            deleted: bool,
            visit: &mut dyn FnMut(&dyn Fields) -> bool,
        ) -> bool {
            self.inner.lookup(object, field, values, deleted, visit)
        }
    }

    #[test]
    fn soql_on_an_indexed_field_does_not_scan() {
        let schema = Arc::new(Schema::standard());
        let store = Store::new(schema.clone(), Arc::new(Clock::new()));
        let user = Id::from_parts("005", 1);
        let mut ids = Vec::new();
        for i in 0..50 {
            let body = json!({"Name": format!("A{i}"), "External_Id__c": format!("E-{i}")});
            let body = body.as_object().cloned().unwrap_or_default();
            ids.push(store.insert("Account", &body, user).unwrap());
        }
        let catalog = SoqlCatalog::new(&schema);
        let opts = ExecOptions {
            include_deleted: false,
            now: chrono::Utc::now(),
            api_version: "60.0".into(),
        };
        let run = |soql: &str| {
            let source = Counting {
                inner: StoreSource(&store),
                scanned: Cell::new(0),
            };
            let out = execute(&parse(soql).unwrap(), &catalog, &source, &opts).unwrap();
            let names: Vec<Value> = out.records.iter().map(|r| r["Name"].clone()).collect();
            (names, source.scanned.get())
        };
        let by_ext = run("SELECT Name FROM Account WHERE External_Id__c = 'e-7'");
        assert_eq!(by_ext, (vec![json!("A7")], 0));
        let by_ids = run(&format!(
            "SELECT Name FROM Account WHERE Id IN ('{}', '{}') AND Name != 'A3'",
            ids[3], ids[9]
        ));
        assert_eq!(by_ids, (vec![json!("A9")], 0));
        let by_name = run("SELECT Name FROM Account WHERE Name = 'A7'");
        assert_eq!(by_name, (vec![json!("A7")], 50), "an unindexed field scans");
    }
}
