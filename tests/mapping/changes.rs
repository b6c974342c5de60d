//! Row changes → records: upserts, deletes, TOAST, lookups, key changes, filters, write-back.

use crate::support::mapping::*;
use pgforce::change::ReplicaIdentity;
use pgforce::mapping::{
    csv_columns, ErrorKind, FieldName, FieldValue, MappedChange, MappedOp, Mapper,
};
use pgforce::pgoutput::value::Value;
use serde_json::json;

const CONTACTS: &str = r#"
[[pipelines.mappings]]
name = "accounts"
table = "public.accounts"
object = "Account"
external_id = { column = "id", field = "External_Id__c" }
fields = { name = "Name" }

[[pipelines.mappings]]
name = "contacts"
table = "public.users"
object = "Contact"
external_id = { column = "id", field = "External_Id__c" }
fields = { email = "Email", bio = "Description" }
lookups = [{ column = "account_id", object = "Account", relationship = "Account", external_id_field = "External_Id__c" }]
filter = [{ column = "status", op = "!=", value = "deleted" }]
write_back = { column = "sf_id" }
"#;

fn users(identity: ReplicaIdentity) -> std::sync::Arc<pgforce::change::Relation> {
    relation(
        "users",
        identity,
        &[
            ("id", 20, true),
            ("email", 25, false),
            ("bio", 25, false),
            ("account_id", 20, false),
            ("status", 25, false),
            ("sf_id", 25, false),
        ],
    )
}

fn row(id: i64, email: &str, bio: Value, account: Value, status: &str) -> Vec<Value> {
    vec![
        Value::Int8(id),
        Value::Text(email.into()),
        bio,
        account,
        Value::Text(status.into()),
        Value::Null,
    ]
}

fn ok(results: Vec<Result<MappedChange, pgforce::mapping::MappingError>>) -> Vec<MappedChange> {
    results.into_iter().map(|r| r.expect("mapped")).collect()
}

#[test]
fn insert_with_lookup_renders_csv_and_json() {
    let mut m = Mapper::new(&pipeline(CONTACTS));
    let rel = users(ReplicaIdentity::Default);
    let out = ok(m.map(&insert(
        &rel,
        row(7, "a@x.io", Value::Null, Value::Int8(42), "active"),
    )));
    assert_eq!(out.len(), 1);
    let c = &out[0];
    assert_eq!(
        (&*c.object, c.op, c.external_id.as_str()),
        ("Contact", MappedOp::Upsert, "7")
    );
    assert_eq!(
        csv_columns(&out),
        [
            "External_Id__c",
            "Description",
            "Email",
            "Account.External_Id__c"
        ]
    );
    assert_eq!(c.csv_value("External_Id__c"), "7");
    assert_eq!(c.csv_value("Account.External_Id__c"), "42");
    assert_eq!(c.csv_value("Description"), "#N/A");
    assert_eq!(c.csv_value("NotThere__c"), "");
    assert_eq!(c.parents().len(), 1);
    assert_eq!(
        (&*c.parents()[0].object, c.parents()[0].external_id.as_str()),
        ("Account", "42")
    );
    assert_eq!(
        c.collections_record(),
        json!({"attributes": {"type": "Contact"}, "External_Id__c": "7", "Description": null,
               "Email": "a@x.io", "Account": {"External_Id__c": "42"}})
    );
    assert!(!c.json_fields().contains_key("External_Id__c"));
    let wb = c.write_back.as_ref().unwrap();
    assert_eq!(
        (wb.table.as_str(), wb.column.as_str()),
        ("public.users", "sf_id")
    );
    assert_eq!(wb.key, vec![("id".to_string(), Value::Int8(7))]);
}

#[test]
fn null_lookup_clears_the_lookup_field_and_unchanged_is_omitted() {
    let mut m = Mapper::new(&pipeline(CONTACTS));
    let rel = users(ReplicaIdentity::Default);
    let out = ok(m.map(&update(
        &rel,
        None,
        row(7, "a@x.io", Value::Unchanged, Value::Null, "active"),
    )));
    let c = &out[0];
    assert_eq!(c.field("AccountId"), Some(&FieldValue::Null));
    assert_eq!(c.csv_value("AccountId"), "#N/A");
    assert!(c.parents().is_empty());
    assert_eq!(c.field("Description"), Some(&FieldValue::Unchanged));
    assert_eq!(
        c.csv_value("Description"),
        "",
        "unchanged TOAST stays an empty cell"
    );
    let json = c.json_fields();
    assert!(!json.contains_key("Description"));
    assert_eq!(json["AccountId"], serde_json::Value::Null);
}

#[test]
fn delete_uses_old_key() {
    let mut m = Mapper::new(&pipeline(CONTACTS));
    let rel = users(ReplicaIdentity::Default);
    let old = vec![
        Value::Int8(7),
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
    ];
    let out = ok(m.map(&delete(&rel, old)));
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].op, out[0].external_id.as_str()),
        (MappedOp::Delete, "7")
    );
    assert!(out[0].fields.is_empty());
}

#[test]
fn key_change_deletes_old_then_upserts_new() {
    let mut m = Mapper::new(&pipeline(CONTACTS));
    let rel = users(ReplicaIdentity::Default);
    let old = vec![
        Value::Int8(7),
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
    ];
    let out = ok(m.map(&update(
        &rel,
        Some(old),
        row(8, "a@x.io", Value::Null, Value::Null, "active"),
    )));
    let ops: Vec<_> = out.iter().map(|c| (c.op, c.external_id.as_str())).collect();
    assert_eq!(ops, [(MappedOp::Delete, "7"), (MappedOp::Upsert, "8")]);
}

#[test]
fn filter_on_insert_update_and_exit() {
    let mut m = Mapper::new(&pipeline(CONTACTS));
    let rel = users(ReplicaIdentity::Default);
    assert!(m
        .map(&insert(
            &rel,
            row(1, "a", Value::Null, Value::Null, "deleted")
        ))
        .is_empty());
    // Leaving the filter (old unknown under DEFAULT identity) deletes.
    let out = ok(m.map(&update(
        &rel,
        None,
        row(1, "a", Value::Null, Value::Null, "deleted"),
    )));
    assert_eq!(
        (out[0].op, out[0].external_id.as_str()),
        (MappedOp::Delete, "1")
    );
    // With FULL identity and an old row already outside the filter: nothing.
    let full = users(ReplicaIdentity::Full);
    let old = row(1, "a", Value::Null, Value::Null, "deleted");
    assert!(m
        .map(&update(
            &full,
            Some(old.clone()),
            row(1, "b", Value::Null, Value::Null, "deleted")
        ))
        .is_empty());
    assert!(m.map(&delete(&full, old)).is_empty());
    // Entering the filter upserts.
    let out = ok(m.map(&update(
        &full,
        Some(row(1, "a", Value::Null, Value::Null, "deleted")),
        row(1, "a", Value::Null, Value::Null, "active"),
    )));
    assert_eq!(out[0].op, MappedOp::Upsert);
}

#[test]
fn filter_exit_ignore_and_soft_delete() {
    let p = pipeline(&CONTACTS.replace(
        "write_back = { column = \"sf_id\" }",
        "on_filter_exit = \"ignore\"\ndelete = { soft = { field = \"Inactive__c\", value = true } }",
    ));
    let mut m = Mapper::new(&p);
    let rel = users(ReplicaIdentity::Default);
    assert!(m
        .map(&update(
            &rel,
            None,
            row(1, "a", Value::Null, Value::Null, "deleted")
        ))
        .is_empty());
    let old = vec![
        Value::Int8(1),
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
    ];
    let out = ok(m.map(&delete(&rel, old)));
    assert_eq!(out[0].op, MappedOp::Upsert);
    assert_eq!(
        out[0].fields,
        vec![(
            FieldName::Field("Inactive__c".into()),
            FieldValue::Bool(true)
        )]
    );
}

#[test]
fn filter_ops() {
    let cond = |f: &str| {
        pipeline(&CONTACTS.replace(
            "filter = [{ column = \"status\", op = \"!=\", value = \"deleted\" }]",
            &format!("filter = [{f}]"),
        ))
    };
    let rel = users(ReplicaIdentity::Default);
    let passes = |f: &str, status: Value| {
        let mut m = Mapper::new(&cond(f));
        let mut r = row(1, "a", Value::Null, Value::Null, "x");
        r[4] = status;
        !m.map(&insert(&rel, r)).is_empty()
    };
    let t = |s: &str| Value::Text(s.into());
    assert!(passes(
        r#"{ column = "status", op = "in", value = ["a", "b"] }"#,
        t("b")
    ));
    assert!(!passes(
        r#"{ column = "status", op = "not_in", value = ["a", "b"] }"#,
        t("b")
    ));
    assert!(passes(
        r#"{ column = "status", op = "=", value = 15 }"#,
        Value::Numeric("15.00".into())
    ));
    assert!(passes(
        r#"{ column = "status", op = "=", value = true }"#,
        Value::Bool(true)
    ));
    assert!(passes(
        r#"{ column = "status", op = "is_null" }"#,
        Value::Null
    ));
    assert!(
        !passes(
            r#"{ column = "status", op = "!=", value = "x" }"#,
            Value::Null
        ),
        "NULL fails != like SQL"
    );
    assert!(passes(
        r#"{ column = "status", op = "is_not_null" }"#,
        t("")
    ));
    // Unevaluable filters are errors, not guesses.
    let mut m = Mapper::new(&cond(r#"{ column = "status", op = "=", value = "a" }"#));
    let mut r = row(1, "a", Value::Null, Value::Null, "x");
    r[4] = Value::Unchanged;
    let err = m.map(&update(&rel, None, r)).remove(0).unwrap_err();
    assert_eq!(
        (err.kind.clone(), err.column.as_deref()),
        (ErrorKind::FilterUnknown, Some("status"))
    );
    let mut r = row(1, "a", Value::Null, Value::Null, "x");
    r[4] = Value::Json(json!(1));
    assert_eq!(
        m.map(&insert(&rel, r)).remove(0).unwrap_err().kind,
        ErrorKind::FilterType
    );
}

#[test]
fn external_id_errors() {
    let mut m = Mapper::new(&pipeline(CONTACTS));
    let rel = users(ReplicaIdentity::Default);
    let mut r = row(1, "a", Value::Null, Value::Null, "x");
    r[0] = Value::Null;
    let e = m.map(&insert(&rel, r)).remove(0).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NullExternalId);
    assert_eq!(e.field.as_deref(), Some("External_Id__c"));
    let mut r = row(1, "a", Value::Null, Value::Null, "x");
    r[3] = Value::Json(json!({}));
    let e = m.map(&insert(&rel, r)).remove(0).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Unsupported(_)));
    assert_eq!(e.field.as_deref(), Some("Account.External_Id__c"));
    assert!(m
        .map(&pgforce::change::RowChange {
            relation: rel.clone(),
            op: pgforce::change::Operation::Insert,
            new: None,
            old: None
        })
        .remove(0)
        .unwrap_err()
        .to_string()
        .contains("no new row"));
}

#[test]
fn delete_needs_external_id_in_old_row() {
    let p = pipeline(&CONTACTS.replace(
        "external_id = { column = \"id\", field = \"External_Id__c\" }\nfields = { email",
        "external_id = { column = \"email\", field = \"External_Id__c\" }\nfields = { email",
    ));
    let mut m = Mapper::new(&p);
    let rel = users(ReplicaIdentity::Default);
    let old = vec![
        Value::Int8(7),
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
    ];
    let e = m.map(&delete(&rel, old)).remove(0).unwrap_err();
    assert_eq!(
        (e.kind.clone(), e.column.as_deref()),
        (ErrorKind::OldKeyMissing, Some("email"))
    );
    assert!(e.to_string().contains("REPLICA IDENTITY FULL"), "{e}");
    // Under FULL, the old email is known: an email change is a key change.
    let full = users(ReplicaIdentity::Full);
    let out = ok(m.map(&update(
        &full,
        Some(row(7, "old@x", Value::Null, Value::Null, "a")),
        row(7, "new@x", Value::Null, Value::Null, "a"),
    )));
    let ops: Vec<_> = out.iter().map(|c| (c.op, c.external_id.as_str())).collect();
    assert_eq!(
        ops,
        [(MappedOp::Delete, "old@x"), (MappedOp::Upsert, "new@x")]
    );
}

#[test]
fn relation_change_recompiles() {
    let mut m = Mapper::new(&pipeline(CONTACTS));
    let rel = users(ReplicaIdentity::Default);
    assert!(m.map(&insert(&rel, row(1, "a", Value::Null, Value::Null, "x")))[0].is_ok());
    // ALTER TABLE: a column added in front moves every index.
    let moved = relation(
        "users",
        ReplicaIdentity::Default,
        &[
            ("new_col", 25, false),
            ("id", 20, true),
            ("email", 25, false),
            ("bio", 25, false),
            ("account_id", 20, false),
            ("status", 25, false),
            ("sf_id", 25, false),
        ],
    );
    let mut r = vec![Value::Text("zzz".into())];
    r.extend(row(2, "b@x", Value::Null, Value::Null, "x"));
    let out = ok(m.map(&insert(&moved, r)));
    assert_eq!(
        (
            out[0].external_id.as_str(),
            out[0].csv_value("Email").into_owned()
        ),
        ("2", "b@x".to_string())
    );
    // Dropping a mapped column makes the mapping fail with a named error.
    let dropped = relation(
        "users",
        ReplicaIdentity::Default,
        &[
            ("id", 20, true),
            ("account_id", 20, false),
            ("status", 25, false),
            ("sf_id", 25, false),
        ],
    );
    let e = m
        .map(&insert(
            &dropped,
            vec![Value::Int8(1), Value::Null, Value::Null, Value::Null],
        ))
        .remove(0)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::MissingColumn);
    assert!(e.column.is_some());
}

#[test]
fn one_table_many_mappings_and_unmapped_tables() {
    let p = pipeline(
        r#"
[[pipelines.mappings]]
name = "sub_account"
table = "subscriptions"
object = "Account"
external_id = { column = "account_id", field = "External_Id__c" }
fields = { plan = "Plan__c" }
delete = "ignore"

[[pipelines.mappings]]
name = "sub"
table = "subscriptions"
object = "Subscription__c"
external_id = { column = "id", field = "External_Id__c" }
fields = { plan = "Plan__c" }
lookups = [{ column = "account_id", object = "Account", relationship = "Account__r", external_id_field = "External_Id__c" }]
"#,
    );
    let mut m = Mapper::new(&p);
    let rel = relation(
        "subscriptions",
        ReplicaIdentity::Default,
        &[
            ("id", 23, true),
            ("account_id", 23, false),
            ("plan", 25, false),
        ],
    );
    let out = ok(m.map(&insert(
        &rel,
        vec![Value::Int4(1), Value::Int4(9), Value::Text("Pro".into())],
    )));
    assert_eq!(
        out.iter().map(|c| &*c.object).collect::<Vec<_>>(),
        ["Account", "Subscription__c"]
    );
    assert_eq!(out[1].csv_value("Account__r.External_Id__c"), "9");
    let out = ok(m.map(&delete(
        &rel,
        vec![Value::Int4(1), Value::Null, Value::Null],
    )));
    assert_eq!(out.len(), 1, "the Account mapping ignores deletes");
    assert_eq!(out[0].op, MappedOp::Delete);
    let other = relation("other", ReplicaIdentity::Default, &[("id", 23, true)]);
    assert!(m.map(&insert(&other, vec![Value::Int4(1)])).is_empty());
    assert!(m.is_mapped("public.subscriptions") && !m.is_mapped("public.other"));
}

#[test]
fn object_order_parents_first() {
    let p = pipeline(CONTACTS);
    assert_eq!(
        pgforce::mapping::order::object_order(&p).unwrap(),
        ["Account", "Contact"]
    );
}
