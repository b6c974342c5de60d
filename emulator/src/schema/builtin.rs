//! The built-in objects, kept as data in the schema file format users write for their own
//! objects ([`SchemaFile`]) and embedded in the binary:
//!
//! - `emulator/schema/standard-objects.json`: Salesforce's standard objects (Account,
//!   Contact, Lead, Opportunity, Campaign, CampaignMember, Task, Event, User), each with
//!   every field listed in describe order (`"systemFields": false`).
//! - `emulator/schema/custom-object-fields.json`: the custom fields and the
//!   `Subscription__c` object that pgforce's examples and tests use.
//!
//! They are parsed once per process; the describe snapshot test
//! (`schema::describe_snapshot`) pins what describe reports for every one of them.

use std::sync::OnceLock;

use super::{ObjectDef, SchemaError, SchemaFile};

/// Salesforce's standard objects.
const STANDARD_OBJECTS: &str = include_str!("../../schema/standard-objects.json");

/// The custom fields and objects pgforce's examples and tests use.
const CUSTOM_OBJECT_FIELDS: &str = include_str!("../../schema/custom-object-fields.json");

/// The built-in objects in describeGlobal order, or why the embedded files do not load
/// (a bug the tests catch).
pub fn objects() -> Result<Vec<ObjectDef>, String> {
    static BUILTIN: OnceLock<Result<Vec<ObjectDef>, String>> = OnceLock::new();
    BUILTIN
        .get_or_init(|| load().map_err(|e| e.to_string()))
        .clone()
}

/// Parses and applies both embedded files.
fn load() -> Result<Vec<ObjectDef>, SchemaError> {
    let mut objects = Vec::new();
    for text in [STANDARD_OBJECTS, CUSTOM_OBJECT_FIELDS] {
        let file: SchemaFile = serde_json::from_str(text)?;
        file.apply(&mut objects)?;
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::super::Schema;

    #[test]
    fn builtin_files_load_in_describe_global_order() {
        let objects = super::objects().unwrap();
        let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Account",
                "Campaign",
                "CampaignMember",
                "Contact",
                "Event",
                "Lead",
                "Opportunity",
                "Task",
                "User",
                "Subscription__c"
            ]
        );
        for o in &objects {
            assert_eq!(o.fields[0].name, "Id", "{}", o.name);
        }
    }

    #[test]
    fn standard_schema_builds_with_child_relationships() {
        let s = Schema::standard();
        let account = s.object("account").unwrap();
        assert_eq!(account.key_prefix, "001");
        assert!(account.child_relationship("Contacts").is_some());
        assert!(account.child_relationship("Subscriptions__r").is_some());
        let contact = s.object("Contact").unwrap();
        assert_eq!(contact.relationship("account").unwrap().name, "AccountId");
        assert!(contact.field("lastname").unwrap().is_required());
        assert!(!contact.field("Name").unwrap().createable);
        assert_eq!(s.object_by_prefix("a00").unwrap().name, "Subscription__c");
        assert_eq!(s.object_by_prefix("00v").unwrap().name, "CampaignMember");
    }

    #[test]
    fn describe_reports_byte_length_and_picklists() {
        let s = Schema::standard();
        let f = s
            .object("Contact")
            .unwrap()
            .field("LastName")
            .unwrap()
            .describe();
        assert_eq!(f["byteLength"], 240);
        assert_eq!(f["nillable"], false);
        let stage = s
            .object("Opportunity")
            .unwrap()
            .field("StageName")
            .unwrap()
            .describe();
        assert_eq!(stage["restrictedPicklist"], true);
        assert_eq!(stage["picklistValues"][0]["value"], "Prospecting");
    }
}
