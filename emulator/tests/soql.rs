//! The SOQL engine through its public API, against a small in-memory org: fields and parent
//! paths, every operator and literal, date literals, ordering, paging, counts, every error, and
//! a fuzz test that parsing and running arbitrary text never panics.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use pgforce_emulator::soql::{
    execute, flatten, parse, Catalog, ExecOptions, FieldInfo, FieldKind, Fields, ObjectInfo,
    QueryOutput, Record, RecordSource, SoqlError,
};
use proptest::prelude::*;
use serde_json::{json, Value};

// ---- an in-memory org ----------------------------------------------------------------------

/// Objects by lowercased name.
struct TestCatalog(HashMap<String, Arc<ObjectInfo>>);

impl Catalog for TestCatalog {
    fn object(&self, name: &str) -> Option<Arc<ObjectInfo>> {
        self.0.get(&name.to_ascii_lowercase()).cloned()
    }
}

/// Records per object, plus a count of scanned records.
#[derive(Default)]
struct TestSource {
    records: HashMap<String, Vec<Record>>,
    scanned: Cell<usize>,
}

impl RecordSource for TestSource {
    fn scan(
        &self,
        object: &str,
        include_deleted: bool,
        visit: &mut dyn FnMut(&dyn Fields) -> bool,
    ) {
        for r in self.records.get(object).into_iter().flatten() {
            if !include_deleted && r.get("IsDeleted") == Some(&Value::Bool(true)) {
                continue;
            }
            self.scanned.set(self.scanned.get() + 1);
            if !visit(r) {
                return;
            }
        }
    }

    fn get(&self, id: &str) -> Option<Record> {
        self.records
            .values()
            .flatten()
            .find(|r| r.get("Id").and_then(Value::as_str) == Some(id))
            .cloned()
    }
}

fn field(name: &str, kind: FieldKind) -> FieldInfo {
    FieldInfo::new(name, kind)
}

fn catalog() -> TestCatalog {
    let user = ObjectInfo {
        name: "User".into(),
        fields: vec![field("Id", FieldKind::Id), field("Name", FieldKind::String)],
    };
    let account = ObjectInfo {
        name: "Account".into(),
        fields: vec![
            field("Id", FieldKind::Id),
            field("Name", FieldKind::String),
            field("Industry", FieldKind::Picklist),
            field("AnnualRevenue", FieldKind::Currency),
            field("NumberOfEmployees", FieldKind::Int),
            field("IsDeleted", FieldKind::Boolean),
            field("CreatedDate", FieldKind::DateTime),
            FieldInfo::reference("OwnerId", "User", "Owner"),
            FieldInfo::reference("ParentId", "Account", "Parent"),
            field("Tags__c", FieldKind::MultiPicklist),
            FieldInfo {
                filterable: false,
                sortable: false,
                ..field("Description", FieldKind::TextArea)
            },
            field("Founded__c", FieldKind::Date),
        ],
    };
    let contact = ObjectInfo {
        name: "Contact".into(),
        fields: vec![
            field("Id", FieldKind::Id),
            field("LastName", FieldKind::String),
            FieldInfo::reference("AccountId", "Account", "Account"),
            FieldInfo::reference("Boss__c", "Contact", "Boss__r"),
            field("Birthdate", FieldKind::Date),
            field("IsDeleted", FieldKind::Boolean),
        ],
    };
    TestCatalog(
        [user, account, contact]
            .into_iter()
            .map(|o| (o.name.to_ascii_lowercase(), Arc::new(o)))
            .collect(),
    )
}

fn rec(v: Value) -> Record {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

const ACME: &str = "001000000000001AAA";
const GLOBEX: &str = "001000000000002AAA";
const INITECH: &str = "001000000000003AAA";
const UMBRELLA: &str = "001000000000004AAA";
const GONE: &str = "001000000000005AAA";
const ALICE: &str = "005000000000001AAA";

fn source() -> TestSource {
    let accounts = vec![
        rec(
            json!({"Id": ACME, "Name": "Acme", "Industry": "Tech", "AnnualRevenue": 1500000.5,
            "NumberOfEmployees": 50, "IsDeleted": false, "CreatedDate": "2024-03-15T08:00:00.000+0000",
            "OwnerId": ALICE, "ParentId": null, "Tags__c": "A;B;C", "Description": "first",
            "Founded__c": "1999-01-01"}),
        ),
        rec(
            json!({"Id": GLOBEX, "Name": "globex", "Industry": "Energy", "AnnualRevenue": 200,
            "NumberOfEmployees": 5, "IsDeleted": false, "CreatedDate": "2024-03-14T23:59:59.000+0000",
            "OwnerId": ALICE, "ParentId": ACME, "Tags__c": "B", "Founded__c": "2023-06-30"}),
        ),
        rec(
            json!({"Id": INITECH, "Name": "Initech", "Industry": null, "AnnualRevenue": null,
            "NumberOfEmployees": 500, "IsDeleted": false, "CreatedDate": "2024-01-10T10:00:00.000+0000",
            "OwnerId": null, "ParentId": GLOBEX, "Founded__c": "2024-03-20"}),
        ),
        rec(
            json!({"Id": UMBRELLA, "Name": "Umbrella_100%", "Industry": "tech", "AnnualRevenue": -3,
            "NumberOfEmployees": 7, "IsDeleted": false, "CreatedDate": "2023-12-31T23:00:00.000-02:00",
            "Tags__c": "c;a"}),
        ),
        rec(json!({"Id": GONE, "Name": "Gone", "IsDeleted": true,
            "CreatedDate": "2024-03-01T00:00:00.000+0000"})),
    ];
    let contacts = vec![
        rec(
            json!({"Id": "003000000000001AAA", "LastName": "Smith", "AccountId": ACME,
            "Boss__c": null, "Birthdate": "1980-05-05", "IsDeleted": false}),
        ),
        rec(
            json!({"Id": "003000000000002AAA", "LastName": "Jones", "AccountId": INITECH,
            "Boss__c": "003000000000001AAA", "Birthdate": null, "IsDeleted": false}),
        ),
        rec(
            json!({"Id": "003000000000003AAA", "LastName": "Orphan", "AccountId": null,
            "Boss__c": "003000000000002AAA", "IsDeleted": false}),
        ),
    ];
    let users = vec![rec(json!({"Id": ALICE, "Name": "Alice"}))];
    TestSource {
        records: [
            ("Account".to_owned(), accounts),
            ("Contact".to_owned(), contacts),
            ("User".to_owned(), users),
        ]
        .into_iter()
        .collect(),
        scanned: Cell::new(0),
    }
}

fn opts(include_deleted: bool) -> ExecOptions {
    ExecOptions {
        include_deleted,
        // A Friday.
        now: Utc.with_ymd_and_hms(2024, 3, 15, 12, 0, 0).unwrap(),
        api_version: "60.0".into(),
    }
}

fn run_with(soql: &str, src: &TestSource, deleted: bool) -> Result<QueryOutput, SoqlError> {
    let q = parse(soql)?;
    execute(&q, &catalog(), src, &opts(deleted))
}

fn run(soql: &str) -> QueryOutput {
    run_with(soql, &source(), false).unwrap_or_else(|e| panic!("{soql}: {}", e.message))
}

fn err(soql: &str) -> SoqlError {
    run_with(soql, &source(), false).expect_err(soql)
}

/// The reason line of an error.
fn reason(e: &SoqlError) -> &str {
    e.message.rsplit('\n').next().unwrap_or_default()
}

/// The values of `key` in result order.
fn col(out: &QueryOutput, key: &str) -> Vec<Value> {
    out.records
        .iter()
        .map(|r| r.get(key).cloned().unwrap_or(Value::Null))
        .collect()
}

/// Names of the accounts matching `cond`, sorted by Name.
fn names(cond: &str) -> Vec<String> {
    let out = run(&format!(
        "SELECT Name FROM Account WHERE {cond} ORDER BY Name"
    ));
    col(&out, "Name")
        .into_iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect()
}

// ---- SELECT and record shape ----------------------------------------------------------------

#[test]
fn select_returns_rest_shape_in_select_order() {
    let out = run("SELECT Name, Id, Industry FROM Account WHERE Id = '001000000000003AAA'");
    assert_eq!(out.total_size, 1);
    assert!(!out.is_count);
    assert_eq!(out.columns, ["Name", "Id", "Industry"]);
    let r = &out.records[0];
    assert_eq!(
        Value::Object(r.clone()).to_string(),
        json!({
            "attributes": {"type": "Account", "url": "/services/data/v60.0/sobjects/Account/001000000000003AAA"},
            "Name": "Initech", "Id": INITECH, "Industry": null
        })
        .to_string()
    );
}

#[test]
fn missing_keys_come_back_as_explicit_null() {
    let out = run("SELECT Id, Founded__c FROM Account WHERE Name = 'Umbrella_100%'");
    assert_eq!(out.records[0].get("Founded__c"), Some(&Value::Null));
}

#[test]
fn canonical_keys_for_lowercase_query() {
    let out = run(
        "select lastname, account.name, account.owner.name from contact where lastname = 'smith'",
    );
    assert_eq!(
        out.columns,
        ["LastName", "Account.Name", "Account.Owner.Name"]
    );
    let r = Value::Object(out.records[0].clone());
    assert_eq!(r["LastName"], "Smith");
    assert_eq!(r["Account"]["Name"], "Acme");
    assert_eq!(r["Account"]["Owner"]["Name"], "Alice");
    assert_eq!(r["Account"]["attributes"]["type"], "Account");
    assert_eq!(r["Account"]["Owner"]["attributes"]["type"], "User");
    assert_eq!(
        r["Account"]["Owner"]["attributes"]["url"],
        "/services/data/v60.0/sobjects/User/005000000000001AAA"
    );
}

#[test]
fn parent_paths_nest_and_null_lookups_are_null() {
    let out = run(
        "SELECT LastName, Account.Name, Boss__r.LastName, Boss__r.Account.Name FROM Contact ORDER BY LastName",
    );
    let rows: Vec<Value> = out
        .records
        .iter()
        .map(|r| Value::Object(r.clone()))
        .collect();
    // Jones: account Initech, boss Smith (whose account is Acme).
    assert_eq!(rows[0]["Account"]["Name"], "Initech");
    assert_eq!(rows[0]["Boss__r"]["LastName"], "Smith");
    assert_eq!(rows[0]["Boss__r"]["Account"]["Name"], "Acme");
    // Orphan: no account.
    assert_eq!(rows[1]["Account"], Value::Null);
    assert_eq!(rows[1]["Boss__r"]["Account"]["Name"], "Initech");
    // Smith: no boss.
    assert_eq!(rows[2]["Boss__r"], Value::Null);
    let keys: Vec<&String> = out.records[0].keys().collect();
    assert_eq!(keys, ["attributes", "LastName", "Account", "Boss__r"]);
}

#[test]
fn object_name_prefix_is_accepted() {
    let out = run("SELECT Account.Name FROM Account WHERE Account.Name = 'Acme'");
    assert_eq!(out.columns, ["Name"]);
    assert_eq!(col(&out, "Name"), [json!("Acme")]);
}

#[test]
fn parent_paths_go_five_levels_deep() {
    let out = run("SELECT Parent.Parent.Owner.Name FROM Account WHERE Name = 'Initech'");
    let r = Value::Object(out.records[0].clone());
    assert_eq!(r["Parent"]["Parent"]["Owner"]["Name"], "Alice");
    let six = "SELECT Parent.Parent.Parent.Parent.Parent.Parent.Name FROM Account";
    assert_eq!(err(six).code, "MALFORMED_QUERY");
}

#[test]
fn flatten_walks_nested_parents() {
    let out =
        run("SELECT Id, LastName, Account.Name, Account.Owner.Name FROM Contact ORDER BY LastName");
    let cells: Vec<_> = out
        .records
        .iter()
        .map(|r| flatten(r, &out.columns))
        .collect();
    assert_eq!(
        cells[0],
        vec![
            Some(json!("003000000000002AAA")),
            Some(json!("Jones")),
            Some(json!("Initech")),
            None
        ]
    );
    assert_eq!(cells[1][2], None);
    assert_eq!(cells[2][3], Some(json!("Alice")));
}

#[test]
fn fields_standard_expands_to_every_standard_field() {
    let out = run("SELECT FIELDS(STANDARD) FROM Contact WHERE LastName = 'Smith'");
    assert_eq!(
        out.columns,
        ["Id", "LastName", "AccountId", "Birthdate", "IsDeleted"]
    );
    let out = run("SELECT Id, FIELDS(CUSTOM) FROM Contact LIMIT 200");
    assert_eq!(out.columns, ["Id", "Boss__c"]);
}

#[test]
fn duplicate_fields_are_rejected() {
    let e = err("SELECT Id, id FROM Account");
    assert_eq!(reason(&e), "duplicate field selected: Id");
}

// ---- WHERE: operators ------------------------------------------------------------------------

#[test]
fn equality_ignores_case_on_text() {
    assert_eq!(names("Name = 'ACME'"), ["Acme"]);
    assert_eq!(names("Industry = 'TECH'"), ["Acme", "Umbrella_100%"]);
}

#[test]
fn not_equal_matches_nulls() {
    assert_eq!(names("Industry != 'tech'"), ["globex", "Initech"]);
    assert_eq!(names("Industry <> 'tech'"), ["globex", "Initech"]);
}

#[test]
fn null_comparisons() {
    assert_eq!(names("Industry = null"), ["Initech"]);
    assert_eq!(
        names("Industry != NULL"),
        ["Acme", "globex", "Umbrella_100%"]
    );
    assert_eq!(names("Tags__c = null"), ["Initech"]);
}

#[test]
fn number_comparisons() {
    assert_eq!(names("NumberOfEmployees > 7"), ["Acme", "Initech"]);
    assert_eq!(
        names("NumberOfEmployees >= 7"),
        ["Acme", "Initech", "Umbrella_100%"]
    );
    assert_eq!(names("NumberOfEmployees < 7"), ["globex"]);
    assert_eq!(names("NumberOfEmployees <= 7"), ["globex", "Umbrella_100%"]);
    assert_eq!(names("AnnualRevenue = 1500000.50"), ["Acme"]);
    assert_eq!(names("AnnualRevenue < 0"), ["Umbrella_100%"]);
    assert_eq!(
        names("AnnualRevenue > -5"),
        ["Acme", "globex", "Umbrella_100%"]
    );
    assert_eq!(names("AnnualRevenue >= 2e2"), ["Acme", "globex"]);
}

#[test]
fn text_ordering_comparisons_ignore_case() {
    assert_eq!(names("Name > 'H'"), ["Initech", "Umbrella_100%"]);
    assert_eq!(names("Name < 'h'"), ["Acme", "globex"]);
}

#[test]
fn boolean_literals() {
    let out = run_with(
        "SELECT Name FROM Account WHERE IsDeleted = TRUE",
        &source(),
        true,
    )
    .unwrap();
    assert_eq!(col(&out, "Name"), [json!("Gone")]);
    assert_eq!(names("IsDeleted = false").len(), 4);
}

#[test]
fn like_wildcards_escapes_and_case() {
    assert_eq!(names("Name LIKE 'a%'"), ["Acme"]);
    assert_eq!(
        names("Name LIKE '%E%'"),
        ["Acme", "globex", "Initech", "Umbrella_100%"]
    );
    assert_eq!(names("Name LIKE '_lobex'"), ["globex"]);
    assert_eq!(names("Name LIKE '%\\_100\\%'"), ["Umbrella_100%"]);
    assert_eq!(names("Name LIKE 'Umbrella\\_1%'"), ["Umbrella_100%"]);
    assert!(names("Name LIKE 'Umbrella\\%'").is_empty());
    assert_eq!(names("NOT Name LIKE '%e%'"), Vec::<String>::new());
    assert_eq!(names("Industry LIKE 't%'"), ["Acme", "Umbrella_100%"]);
}

#[test]
fn in_and_not_in() {
    assert_eq!(
        names("Name IN ('acme', 'Initech', 'nope')"),
        ["Acme", "Initech"]
    );
    assert_eq!(names("Industry NOT IN ('Tech')"), ["globex", "Initech"]);
    assert_eq!(
        names("NumberOfEmployees IN (5, 7)"),
        ["globex", "Umbrella_100%"]
    );
    assert_eq!(names("Industry IN (null, 'Energy')"), ["globex", "Initech"]);
}

#[test]
fn includes_and_excludes_on_multipicklists() {
    assert_eq!(names("Tags__c INCLUDES ('a')"), ["Acme", "Umbrella_100%"]);
    assert_eq!(names("Tags__c INCLUDES ('a;b')"), ["Acme"]);
    assert_eq!(names("Tags__c INCLUDES ('a;b', 'B')"), ["Acme", "globex"]);
    assert_eq!(names("Tags__c EXCLUDES ('a')"), ["globex", "Initech"]);
    assert_eq!(names("Tags__c = 'a;c'"), ["Umbrella_100%"]);
    assert_eq!(names("Tags__c = 'C;A'"), ["Umbrella_100%"]);
}

#[test]
fn and_or_not_and_parentheses() {
    assert_eq!(
        names("Industry = 'tech' AND NumberOfEmployees > 10"),
        ["Acme"]
    );
    assert_eq!(
        names("Name = 'Acme' OR Name = 'globex'"),
        ["Acme", "globex"]
    );
    assert_eq!(
        names("(Name = 'Acme' OR Name = 'globex') AND NOT NumberOfEmployees = 5"),
        ["Acme"]
    );
    assert_eq!(
        names("NOT (Industry = 'tech' OR Industry = null)"),
        ["globex"]
    );
    assert_eq!(names("NOT NOT Name = 'Acme'"), ["Acme"]);
}

#[test]
fn ids_match_15_and_18_char_forms() {
    assert_eq!(names("Id = '001000000000001'"), ["Acme"]);
    assert_eq!(names("Id = '001000000000001aaa'"), ["Acme"]);
    assert_eq!(names("OwnerId = '005000000000001AAA'"), ["Acme", "globex"]);
    let e = err("SELECT Id FROM Account WHERE Id = 'nope'");
    assert_eq!(e.code, "INVALID_QUERY_FILTER_OPERATOR");
    assert_eq!(reason(&e), "invalid ID field: nope");
}

#[test]
fn parent_paths_filter() {
    let out = run("SELECT LastName FROM Contact WHERE Account.Owner.Name = 'alice'");
    assert_eq!(col(&out, "LastName"), [json!("Smith")]);
    let out = run("SELECT LastName FROM Contact WHERE Account.Name != 'Acme' ORDER BY LastName");
    assert_eq!(col(&out, "LastName"), [json!("Jones"), json!("Orphan")]);
}

#[test]
fn semi_and_anti_joins() {
    assert_eq!(
        names("Id IN (SELECT AccountId FROM Contact)"),
        ["Acme", "Initech"]
    );
    assert_eq!(
        names("Id NOT IN (SELECT AccountId FROM Contact WHERE LastName = 'Smith')"),
        ["globex", "Initech", "Umbrella_100%"]
    );
}

#[test]
fn nested_semi_joins_are_rejected() {
    let e = err(
        "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE Id IN (SELECT Boss__c FROM Contact))",
    );
    assert_eq!(e.code, "MALFORMED_QUERY");
    assert_eq!(
        reason(&e),
        "Nesting of semi join sub-selects is not supported"
    );
}

#[test]
fn resolve_object_gives_the_canonical_name() {
    let q = parse("select id from ACCOUNT").unwrap();
    assert_eq!(q.object_name(), "ACCOUNT");
    assert_eq!(q.resolve_object(&catalog()).unwrap().name, "Account");
    let q = parse("select id from Nope").unwrap();
    assert_eq!(
        q.resolve_object(&catalog()).unwrap_err().code,
        "INVALID_TYPE"
    );
}

#[test]
fn string_escapes() {
    let mut src = source();
    src.records.get_mut("Account").unwrap().push(rec(json!({
        "Id": "001000000000009AAA", "Name": "O'Brien \\ \"Co\"\n", "IsDeleted": false
    })));
    let out = run_with(
        r#"SELECT Id FROM Account WHERE Name = 'O\'Brien \\ \"Co\"\n'"#,
        &src,
        false,
    )
    .unwrap();
    assert_eq!(out.total_size, 1);
}

// ---- WHERE: dates ----------------------------------------------------------------------------

#[test]
fn datetime_literals_in_every_form() {
    assert_eq!(names("CreatedDate > 2024-03-14T23:59:59Z"), ["Acme"]);
    assert_eq!(
        names("CreatedDate >= 2024-03-14T23:59:59.000+00:00"),
        ["Acme", "globex"]
    );
    assert_eq!(names("CreatedDate = 2024-03-15T13:30:00+0530"), ["Acme"]);
    assert_eq!(
        names("CreatedDate < 2024-01-01T00:00:00Z"),
        Vec::<String>::new()
    );
    // Umbrella was created 2024-01-01T01:00Z (stored with a -02:00 offset).
    assert_eq!(
        names("CreatedDate = 2024-01-01T01:00:00Z"),
        ["Umbrella_100%"]
    );
}

#[test]
fn date_literals_on_date_fields() {
    assert_eq!(names("Founded__c = 1999-01-01"), ["Acme"]);
    assert_eq!(names("Founded__c > 2023-06-30"), ["Initech"]);
    assert_eq!(names("Founded__c = NEXT_N_DAYS:5"), ["Initech"]);
    assert_eq!(names("Founded__c = LAST_YEAR"), ["globex"]);
    assert_eq!(names("Founded__c < THIS_YEAR"), ["Acme", "globex"]);
    assert_eq!(names("Founded__c = THIS_MONTH"), ["Initech"]);
    assert_eq!(names("Founded__c = THIS_WEEK"), Vec::<String>::new());
    assert_eq!(names("Founded__c = NEXT_WEEK"), ["Initech"]);
}

#[test]
fn date_literals_on_datetime_fields_use_utc_day_ranges() {
    assert_eq!(names("CreatedDate = TODAY"), ["Acme"]);
    assert_eq!(names("CreatedDate = YESTERDAY"), ["globex"]);
    assert_eq!(
        names("CreatedDate < TODAY"),
        ["globex", "Initech", "Umbrella_100%"]
    );
    assert_eq!(names("CreatedDate > YESTERDAY"), ["Acme"]);
    assert_eq!(names("CreatedDate >= YESTERDAY"), ["Acme", "globex"]);
    assert_eq!(
        names("CreatedDate <= YESTERDAY"),
        ["globex", "Initech", "Umbrella_100%"]
    );
    assert_eq!(names("CreatedDate = TOMORROW"), Vec::<String>::new());
    assert_eq!(names("CreatedDate = LAST_N_DAYS:1"), ["Acme", "globex"]);
    assert_eq!(names("CreatedDate = LAST_N_DAYS:0"), ["Acme"]);
    assert_eq!(
        names("CreatedDate = LAST_90_DAYS"),
        ["Acme", "globex", "Initech", "Umbrella_100%"]
    );
    assert_eq!(names("CreatedDate = THIS_WEEK"), ["Acme", "globex"]);
    assert_eq!(names("CreatedDate = THIS_MONTH"), ["Acme", "globex"]);
    assert_eq!(names("CreatedDate = LAST_MONTH"), Vec::<String>::new());
    assert_eq!(
        names("CreatedDate = LAST_N_MONTHS:2"),
        ["Initech", "Umbrella_100%"]
    );
    assert_eq!(
        names("CreatedDate = THIS_QUARTER"),
        ["Acme", "globex", "Initech", "Umbrella_100%"]
    );
    assert_eq!(
        names("CreatedDate = THIS_YEAR"),
        ["Acme", "globex", "Initech", "Umbrella_100%"]
    );
    assert_eq!(names("CreatedDate = LAST_YEAR"), Vec::<String>::new());
    assert_eq!(
        names("CreatedDate != TODAY"),
        ["globex", "Initech", "Umbrella_100%"]
    );
    assert_eq!(
        names("CreatedDate IN (TODAY, YESTERDAY)"),
        ["Acme", "globex"]
    );
}

#[test]
fn date_and_datetime_do_not_mix() {
    let e = err("SELECT Id FROM Account WHERE CreatedDate > 2024-01-01");
    assert_eq!(e.code, "INVALID_FIELD");
    assert_eq!(
        reason(&e),
        "value of filter criterion for field 'CreatedDate' must be of type dateTime and should not be enclosed in quotes"
    );
    let e = err("SELECT Id FROM Account WHERE Founded__c > 2024-01-01T00:00:00Z");
    assert_eq!(
        reason(&e),
        "value of filter criterion for field 'Founded__c' must be of type date and should not be enclosed in quotes"
    );
    let e = err("SELECT Id FROM Account WHERE Founded__c > '2024-01-01'");
    assert_eq!(e.code, "INVALID_FIELD");
}

#[test]
fn literal_types_must_fit_the_field() {
    let cases = [
        (
            "Name = 5",
            "must be of type string and should be enclosed in quotes",
        ),
        (
            "NumberOfEmployees = '5'",
            "must be of type integer and should not be enclosed in quotes",
        ),
        (
            "AnnualRevenue = TRUE",
            "must be of type double and should not be enclosed in quotes",
        ),
        (
            "IsDeleted = 'true'",
            "must be of type boolean and should not be enclosed in quotes",
        ),
        (
            "Name = TODAY",
            "must be of type string and should be enclosed in quotes",
        ),
    ];
    for (cond, tail) in cases {
        let e = err(&format!("SELECT Id FROM Account WHERE {cond}"));
        assert_eq!(e.code, "INVALID_FIELD", "{cond}");
        assert!(reason(&e).ends_with(tail), "{cond}: {}", e.message);
    }
}

#[test]
fn operators_must_fit_the_field() {
    let e = err("SELECT Id FROM Account WHERE Name INCLUDES ('a')");
    assert_eq!(e.code, "INVALID_QUERY_FILTER_OPERATOR");
    assert_eq!(
        reason(&e),
        "includes or excludes operator only valid on multipicklist field"
    );
    let e = err("SELECT Id FROM Account WHERE IsDeleted LIKE 'x'");
    assert_eq!(e.code, "INVALID_QUERY_FILTER_OPERATOR");
    let e = err("SELECT Id FROM Account WHERE IsDeleted > false");
    assert_eq!(e.code, "INVALID_QUERY_FILTER_OPERATOR");
}

// ---- ORDER BY, LIMIT, OFFSET -------------------------------------------------------------------

#[test]
fn order_by_ignores_case_and_puts_nulls_first_by_default() {
    let out = run("SELECT Name FROM Account ORDER BY Name");
    assert_eq!(
        col(&out, "Name"),
        [
            json!("Acme"),
            json!("globex"),
            json!("Initech"),
            json!("Umbrella_100%")
        ]
    );
    let out = run("SELECT Name FROM Account ORDER BY Industry, Name");
    assert_eq!(col(&out, "Name")[0], json!("Initech"));
    let out = run("SELECT Name FROM Account ORDER BY AnnualRevenue DESC");
    assert_eq!(
        col(&out, "Name"),
        [
            json!("Initech"),
            json!("Acme"),
            json!("globex"),
            json!("Umbrella_100%")
        ]
    );
    let out = run("SELECT Name FROM Account ORDER BY AnnualRevenue DESC NULLS LAST");
    assert_eq!(col(&out, "Name")[3], json!("Initech"));
    let out = run("SELECT Name FROM Account ORDER BY AnnualRevenue ASC NULLS LAST");
    assert_eq!(
        col(&out, "Name"),
        [
            json!("Umbrella_100%"),
            json!("globex"),
            json!("Acme"),
            json!("Initech")
        ]
    );
}

#[test]
fn order_by_several_keys_and_types() {
    let out = run("SELECT Name FROM Account ORDER BY Industry DESC NULLS LAST, Name DESC");
    assert_eq!(
        col(&out, "Name"),
        [
            json!("Umbrella_100%"),
            json!("Acme"),
            json!("globex"),
            json!("Initech")
        ]
    );
    let out = run("SELECT Name FROM Account ORDER BY CreatedDate");
    assert_eq!(
        col(&out, "Name"),
        [
            json!("Umbrella_100%"),
            json!("Initech"),
            json!("globex"),
            json!("Acme")
        ]
    );
    let out = run("SELECT Name FROM Account ORDER BY NumberOfEmployees DESC");
    assert_eq!(col(&out, "Name")[0], json!("Initech"));
}

#[test]
fn order_by_parent_fields() {
    let out = run("SELECT LastName FROM Contact ORDER BY Account.Name NULLS LAST, LastName");
    assert_eq!(
        col(&out, "LastName"),
        [json!("Smith"), json!("Jones"), json!("Orphan")]
    );
}

#[test]
fn limit_and_offset_with_and_without_order() {
    let out = run("SELECT Name FROM Account ORDER BY Name LIMIT 2");
    assert_eq!(col(&out, "Name"), [json!("Acme"), json!("globex")]);
    assert_eq!(out.total_size, 2);
    let out = run("SELECT Name FROM Account ORDER BY Name LIMIT 2 OFFSET 1");
    assert_eq!(col(&out, "Name"), [json!("globex"), json!("Initech")]);
    let out = run("SELECT Name FROM Account ORDER BY Name DESC OFFSET 3");
    assert_eq!(col(&out, "Name"), [json!("Acme")]);
    let out = run("SELECT Name FROM Account ORDER BY Name OFFSET 10");
    assert_eq!(out.total_size, 0);
    let out = run("SELECT Name FROM Account LIMIT 0");
    assert_eq!(out.total_size, 0);
    let out = run("SELECT Name FROM Account LIMIT 2 OFFSET 1");
    assert_eq!(out.total_size, 2);
}

#[test]
fn limit_without_order_stops_the_scan() {
    let src = source();
    let out = run_with("SELECT Id FROM Account LIMIT 1", &src, false).unwrap();
    assert_eq!(out.total_size, 1);
    assert_eq!(src.scanned.get(), 1);
}

#[test]
fn unsortable_fields_are_rejected() {
    let e = err("SELECT Id FROM Account ORDER BY Description");
    assert_eq!(e.code, "INVALID_FIELD");
    assert_eq!(
        reason(&e),
        "field 'Description' can not be sorted in a query call"
    );
    let e = err("SELECT Id FROM Account WHERE Description = 'x'");
    assert_eq!(
        reason(&e),
        "field 'Description' can not be filtered in a query call"
    );
}

// ---- COUNT, queryAll -----------------------------------------------------------------------

#[test]
fn count_returns_only_a_total() {
    let out = run("SELECT COUNT() FROM Account");
    assert!(out.is_count);
    assert_eq!(out.total_size, 4);
    assert!(out.records.is_empty());
    assert!(out.columns.is_empty());
    assert_eq!(
        run("SELECT COUNT() FROM Account WHERE Industry = 'tech'").total_size,
        2
    );
    assert_eq!(run("SELECT COUNT() FROM Account LIMIT 3").total_size, 3);
    let all = run_with("SELECT COUNT() FROM Account", &source(), true).unwrap();
    assert_eq!(all.total_size, 5);
}

#[test]
fn count_of_a_field_is_an_aggregate_result() {
    let out = run("SELECT COUNT(Id), COUNT(Industry) withIndustry FROM Account");
    assert_eq!(out.total_size, 1);
    assert_eq!(out.columns, ["expr0", "withIndustry"]);
    assert_eq!(
        Value::Object(out.records[0].clone()),
        json!({"attributes": {"type": "AggregateResult"}, "expr0": 4, "withIndustry": 3})
    );
    let e = err("SELECT COUNT(Id), Name FROM Account");
    assert_eq!(reason(&e), "Field must be grouped or aggregated: Name");
}

#[test]
fn query_all_includes_deleted_records() {
    let out = run_with(
        "SELECT Name FROM Account WHERE Name = 'Gone'",
        &source(),
        true,
    )
    .unwrap();
    assert_eq!(out.total_size, 1);
    assert_eq!(
        run("SELECT Name FROM Account WHERE Name = 'Gone'").total_size,
        0
    );
}

// ---- errors ----------------------------------------------------------------------------------

#[test]
fn unknown_object_is_invalid_type() {
    let e = err("SELECT Id FROM Foo");
    assert_eq!(e.code, "INVALID_TYPE");
    assert_eq!(
        e.message,
        "\nSELECT Id FROM Foo\n               ^\nERROR at Row:1:Column:16\n\
         sObject type 'Foo' is not supported. If you are attempting to use a custom object, be \
         sure to append the '__c' after the entity name. Please reference your WSDL or the \
         describe call for the appropriate names."
    );
    assert_eq!(e.to_string(), e.message);
}

#[test]
fn unknown_field_is_invalid_field() {
    let e = err("SELECT Id, Foo FROM Account");
    assert_eq!(e.code, "INVALID_FIELD");
    assert_eq!(
        e.message,
        "\nSELECT Id, Foo FROM Account\n           ^\nERROR at Row:1:Column:12\n\
         No such column 'Foo' on entity 'Account'. If you are attempting to use a custom field, \
         be sure to append the '__c' after the custom field name. Please reference your WSDL or \
         the describe call for the appropriate names."
    );
    let e = err("SELECT Account.Foo FROM Contact");
    assert!(reason(&e).starts_with("No such column 'Foo' on entity 'Account'."));
    let e = err("SELECT Id FROM Account WHERE Foo = 1");
    assert!(reason(&e).starts_with("No such column 'Foo' on entity 'Account'."));
    let e = err("SELECT Id FROM Account ORDER BY Foo");
    assert_eq!(e.code, "INVALID_FIELD");
}

#[test]
fn unknown_relationship_is_invalid_field() {
    let e = err("SELECT Boss__c.Name FROM Contact");
    assert_eq!(e.code, "INVALID_FIELD");
    assert_eq!(
        reason(&e),
        "Didn't understand relationship 'Boss__c' in field path. If you are attempting to use a \
         custom relationship, be sure to append the '__r' after the custom relationship name. \
         Please reference your WSDL or the describe call for the appropriate names."
    );
    assert!(e.message.contains("ERROR at Row:1:Column:8\n"));
}

#[test]
fn syntax_errors_are_malformed_query() {
    let e = run_with("SELECT Id FRM Account", &source(), false).unwrap_err();
    assert_eq!(e.code, "MALFORMED_QUERY");
    assert_eq!(reason(&e), "unexpected token: 'FRM'");
    assert!(e.message.contains("ERROR at Row:1:Column:11"));
    let e = parse("SELECT Id FROM Account OFFSET 2001").unwrap_err();
    assert_eq!(e.code, "NUMBER_OUTSIDE_VALID_RANGE");
}

// ---- fuzz ------------------------------------------------------------------------------------

/// Valid queries the mutations start from.
const SEEDS: &[&str] = &[
    "SELECT Id, LastName, Account.Owner.Name FROM Contact WHERE (LastName LIKE 'a%' OR Account.Name IN ('x','y')) AND NOT Birthdate = LAST_N_DAYS:30 ORDER BY LastName DESC NULLS LAST LIMIT 10 OFFSET 2",
    "SELECT COUNT() FROM Account WHERE CreatedDate > 2024-01-01T00:00:00.000+00:00 AND Tags__c INCLUDES ('a;b','c')",
    "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE Birthdate < 2000-01-01) FOR VIEW",
    "SELECT FIELDS(ALL) FROM Account WHERE AnnualRevenue >= -1.5e3 AND IsDeleted = false LIMIT 200",
];

/// A seed with bytes replaced, inserted or removed.
fn mutated() -> impl Strategy<Value = String> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 1..6);
    (prop::sample::select(SEEDS), edits).prop_map(|(seed, edits)| {
        let mut chars: Vec<char> = seed.chars().collect();
        for (at, kind, c) in edits {
            let i = at.index(chars.len().max(1));
            match kind {
                0 if i < chars.len() => chars[i] = c,
                1 => chars.insert(i.min(chars.len()), c),
                _ if i < chars.len() => {
                    chars.remove(i);
                }
                _ => {}
            }
        }
        chars.into_iter().collect()
    })
}

/// Token soup from SOQL's vocabulary.
fn token_soup() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "(",
        ")",
        ",",
        "Id",
        "Name",
        "Account",
        "Contact",
        ".",
        "=",
        "!=",
        "<",
        ">=",
        "LIKE",
        "IN",
        "INCLUDES",
        "'x'",
        "5",
        "null",
        "TODAY",
        "LAST_N_DAYS",
        ":",
        "3",
        "2024-01-01",
        "2024-01-01T00:00:00Z",
        "ORDER",
        "BY",
        "DESC",
        "NULLS",
        "LAST",
        "LIMIT",
        "OFFSET",
        "COUNT()",
        "FIELDS(ALL)",
    ]);
    prop::collection::vec(words, 0..40).prop_map(|w| w.join(" "))
}

/// Parses and, if it parses, runs `soql`: must return, never panic.
fn parse_and_run(soql: &str) {
    if let Ok(q) = parse(soql) {
        let _ = execute(&q, &catalog(), &source(), &opts(false));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        parse_and_run(&s);
    }

    #[test]
    fn mutated_queries_never_panic(s in mutated()) {
        parse_and_run(&s);
    }

    #[test]
    fn token_soup_never_panics(s in token_soup()) {
        parse_and_run(&s);
    }
}

#[test]
fn seeds_are_valid() {
    for s in SEEDS {
        let q = parse(s).unwrap_or_else(|e| panic!("{s}: {}", e.message));
        execute(&q, &catalog(), &source(), &opts(false))
            .unwrap_or_else(|e| panic!("{s}: {}", e.message));
    }
}

/// A rough timing of a scan over many records (run with `--ignored --nocapture`).
#[test]
#[ignore = "timing, not correctness"]
fn large_scan_timing() {
    let n = 300_000;
    let accounts: Vec<Record> = (0..n)
        .map(|i| {
            rec(json!({"Id": format!("001{i:012}AAA"), "Name": format!("Account {i}"),
                "NumberOfEmployees": i % 1000, "IsDeleted": false, "OwnerId": ALICE,
                "CreatedDate": "2024-03-15T08:00:00.000+0000", "Industry": if i % 3 == 0 { "Tech" } else { "Energy" }}))
        })
        .collect();
    let mut src = source();
    src.records.insert("Account".into(), accounts);
    src.records.insert(
        "User".into(),
        vec![rec(json!({"Id": ALICE, "Name": "Alice"}))],
    );
    for soql in [
        "SELECT COUNT() FROM Account WHERE Industry = 'tech' AND NumberOfEmployees > 500",
        "SELECT Id, Name FROM Account WHERE Name LIKE '%99%' AND CreatedDate = TODAY",
        "SELECT Id, Name FROM Account ORDER BY NumberOfEmployees DESC, Name LIMIT 10",
        "SELECT Id, Owner.Name FROM Account WHERE Owner.Name = 'alice' LIMIT 2000",
        "SELECT Id, Name FROM Account WHERE Industry = 'energy' ORDER BY Name",
    ] {
        let t = std::time::Instant::now();
        let out = run_with(soql, &src, false).unwrap();
        println!(
            "{:>8.1} ms  {:>7} rows  {soql}",
            t.elapsed().as_secs_f64() * 1e3,
            out.total_size
        );
    }
}
