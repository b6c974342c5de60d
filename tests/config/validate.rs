//! Validation against a real Postgres catalog and describe fixtures: every diagnostic kind.

use pgforce::config::catalog::{PgCatalog, PgType};
use pgforce::config::describe::{SfDescribe, SfObject};
use pgforce::config::validate::{
    has_errors, render_table, to_json, validate, Diagnostic, Severity,
};
use pgforce::config::Config;
use pgforce::testing::TempCluster;

use crate::support::config::{Auth, ConfigBuilder};

const SCHEMA: &str = "
CREATE TYPE plan AS ENUM ('free', 'pro', 'enterprise', 'legacy');
CREATE TABLE accounts (
  id bigint PRIMARY KEY, name text NOT NULL, plan plan, tags text[], metadata jsonb,
  last_seen_at timestamptz, mrr numeric(20,4), arr numeric(18,2), renews_on timestamptz,
  nickname varchar(300), lifespan interval, status text, sf_id varchar(10), legacy_key text,
  parent_id bigint, created timestamptz, origin text, is_vip boolean);
CREATE TABLE users (id bigint PRIMARY KEY, email text, first_name varchar(40), last_name text,
  account_id bigint, salesforce_id text);
CREATE TABLE subscriptions (id int, account_id bigint, plan plan, mrr numeric(18,2), status text,
  started_at timestamptz);
CREATE TABLE events (id int PRIMARY KEY, kind text);
ALTER TABLE events REPLICA IDENTITY NOTHING;
CREATE PUBLICATION pgforce_t FOR TABLE accounts, subscriptions, events;
";

fn describe() -> SfDescribe {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/describe");
    let bodies: Vec<serde_json::Value> = ["Account", "Contact", "Opportunity", "Subscription__c"]
        .iter()
        .map(|n| {
            serde_json::from_str(&std::fs::read_to_string(format!("{dir}/{n}.json")).unwrap())
                .unwrap()
        })
        .collect();
    let mut d = SfDescribe::from_json(&bodies).unwrap();
    // Industry as a restricted picklist, to see free text → restricted picklist.
    let mut account = SfObject::from_json(&bodies[0]).unwrap();
    account
        .fields
        .iter_mut()
        .find(|f| f.name == "Industry")
        .unwrap()
        .restricted_picklist = true;
    d.insert(account);
    let mut read_only = SfObject::from_json(&bodies[0]).unwrap();
    read_only.name = "AccountHistory".into();
    read_only.createable = false;
    d.insert(read_only);
    d
}

async fn catalog(cluster: &TempCluster, tables: &[String]) -> PgCatalog {
    let (client, conn) =
        tokio_postgres::connect(&cluster.conn_string("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    PgCatalog::load(&client, tables).await.unwrap()
}

/// The pipeline around [`MAPPINGS`].
fn pipeline() -> ConfigBuilder {
    ConfigBuilder::new("t", "DATABASE_URL").salesforce(
        None,
        None,
        Auth::RefreshToken {
            client_id: "x".into(),
            refresh_token: "env:RT".into(),
        },
    )
}

const MAPPINGS: &str = r#"
[[pipelines.mappings]]
name = "accounts"
table = "public.accounts"
object = "Account"
external_id = { column = "id", field = "External_Id__c" }
write_back = { column = "sf_id" }
lookups = [{ column = "parent_id", object = "Account", relationship = "Parent__r", external_id_field = "External_Id__c", parent_synced = false }]
[pipelines.mappings.fields]
name = { field = "Name", transform = { type = "string", max_length = 300 } }
plan = { field = "Plan__c", transform = { type = "value_map", values = { free = "Free", pro = "Pro", enterprise = "Gold" } } }
tags = "Tags__c"
metadata = { field = "Metadata__c", transform = { type = "numeric", precision = 10, scale = 2 } }
last_seen_at = "Last_Seen__c"
mrr = "MRR__c"
arr = "ARR_c"
renews_on = "Renewal_Date__c"
nickname = "Industry"
lifespan = "Description"
created = "CreatedDate"
origin = "Origin__c"
is_vip = "ParentId"
status = "Legacy_Key__c"

[[pipelines.mappings]]
name = "contacts"
table = "public.users"
object = "Contact"
external_id = { column = "email", field = "External_Id__c" }
fields = { first_name = "FirstName", ghost = "Phone", email = "Email" }
lookups = [
  { column = "account_id", object = "Account", relationship = "Account", external_id_field = "Name" },
  { column = "account_id", object = "Opportunity", relationship = "Account", external_id_field = "External_Id__c", field = "Opp__c", parent_synced = false },
]

[[pipelines.mappings]]
name = "subscriptions"
table = "public.subscriptions"
object = "Subscription__c"
external_id = { column = "id", field = "External_Id__c" }
lookups = [{ column = "account_id", object = "Account", relationship = "Account__r", external_id_field = "External_Id__c" }]
[pipelines.mappings.fields]
plan = { field = "Plan__c", transform = { type = "value_map", values = { free = "Free", pro = "Pro" } } }
mrr = "MRR__c"
status = "Name"
started_at = "Started_At__c"

[[pipelines.mappings]]
name = "events"
table = "public.events"
object = "AccountHistory"
external_id = { column = "id", field = "Legacy_Key__c" }
fields = { kind = "Name" }

[[pipelines.mappings]]
name = "missing"
table = "public.nope"
object = "Nope__c"
external_id = { column = "id", field = "External_Id__c" }
"#;

fn find<'d>(diags: &'d [Diagnostic], code: &str, key: &str) -> &'d Diagnostic {
    diags
        .iter()
        .find(|d| d.code == code && d.key == key)
        .unwrap_or_else(|| panic!("no {code} at {key} in:\n{}", render_table(diags)))
}

#[tokio::test]
async fn every_diagnostic_kind() {
    let cluster = TempCluster::start().unwrap();
    cluster.psql("postgres", SCHEMA).unwrap();
    let config = Config::parse_unresolved(&pipeline().mappings_toml(MAPPINGS).toml()).unwrap();
    let tables: Vec<String> = config.pipelines[0]
        .mappings
        .iter()
        .map(|m| m.table.clone())
        .collect();
    let cat = catalog(&cluster, &tables).await;

    // The catalog itself.
    let accounts = &cat.tables["public.accounts"];
    assert_eq!(accounts.primary_key, ["id"]);
    assert!(accounts.publications.contains("pgforce_t"));
    let col = |n: &str| accounts.column(n).unwrap().class.clone();
    assert_eq!(col("mrr"), PgType::Numeric(Some((20, 4))));
    assert_eq!(col("nickname"), PgType::Text(Some(300)));
    assert!(matches!(col("plan"), PgType::Enum(_)));
    assert_eq!(col("tags"), PgType::Array(Box::new(PgType::Text(None))));
    let PgType::Enum(plan_oid) = col("plan") else {
        unreachable!()
    };
    assert_eq!(
        cat.enums[&plan_oid],
        ["free", "pro", "enterprise", "legacy"]
    );
    assert!(!cat.tables.contains_key("public.nope"));

    let d = validate(&config, &cat, &describe());
    let m = |j: usize, rest: &str| format!("pipelines[0].mappings[{j}].{rest}");
    let e = Severity::Error;
    let w = Severity::Warning;
    let cases: &[(&str, String, Severity, &str)] = &[
        ("pg.table_missing", m(4, "table"), e, "public.nope"),
        ("pg.column_missing", m(1, "fields.ghost"), e, "ghost"),
        (
            "pg.publication",
            m(1, "table"),
            w,
            "ALTER PUBLICATION pgforce_t ADD TABLE public.users",
        ),
        (
            "pg.replica_identity",
            m(2, "table"),
            e,
            "REPLICA IDENTITY FULL",
        ),
        (
            "pg.replica_identity",
            m(3, "table"),
            e,
            "REPLICA IDENTITY FULL",
        ),
        (
            "pg.external_id_not_unique",
            m(1, "external_id.column"),
            w,
            "CREATE UNIQUE INDEX",
        ),
        (
            "pg.external_id_not_in_identity",
            m(1, "external_id.column"),
            e,
            "REPLICA IDENTITY FULL",
        ),
        (
            "pg.write_back_type",
            m(0, "write_back.column"),
            e,
            "TYPE text",
        ),
        (
            "pg.unsupported_type",
            m(0, "fields.lifespan"),
            e,
            "transform",
        ),
        (
            "config.transform_type",
            m(0, "fields.metadata.transform"),
            e,
            "transform",
        ),
        (
            "config.value_map_incomplete",
            m(0, "fields.plan.transform.values"),
            e,
            "default",
        ),
        ("sf.object_missing", m(4, "object"), e, "Object Manager"),
        (
            "sf.object_not_writable",
            m(3, "object"),
            e,
            "Create and Edit",
        ),
        (
            "sf.external_id_not_unique",
            m(3, "external_id.field"),
            e,
            "External ID and Unique",
        ),
        ("sf.field_missing", m(0, "fields.arr"), e, "API name"),
        (
            "sf.field_not_createable",
            m(0, "fields.created"),
            e,
            "writable",
        ),
        ("sf.field_not_updateable", m(0, "fields.origin"), w, "Edit"),
        ("sf.type_mismatch", m(0, "fields.is_vip"), e, "transform"),
        (
            "sf.type_lossy",
            m(0, "fields.renews_on"),
            w,
            "transform = \"date\"",
        ),
        (
            "sf.precision",
            m(0, "fields.mrr"),
            e,
            "precision = 18, scale = 2",
        ),
        (
            "sf.string_too_long",
            m(0, "fields.name"),
            e,
            "max_length = 255",
        ),
        (
            "sf.string_too_long",
            m(0, "fields.status"),
            w,
            "max_length = 50",
        ),
        ("sf.picklist_values", m(0, "fields.plan"), e, "value_map"),
        (
            "sf.picklist_values",
            m(0, "fields.nickname"),
            w,
            "value_map",
        ),
        (
            "sf.lookup_missing",
            m(0, "lookups[0].relationship"),
            e,
            "relationshipName",
        ),
        (
            "sf.lookup_target",
            m(1, "lookups[1].object"),
            e,
            "object = \"Account\"",
        ),
        (
            "sf.lookup_field",
            m(1, "lookups[1].field"),
            w,
            "field = \"AccountId\"",
        ),
        (
            "sf.lookup_external_id",
            m(1, "lookups[0].external_id_field"),
            e,
            "External ID",
        ),
        ("sf.required_field", m(1, "fields"), w, "LastName"),
        (
            "sf.external_id_missing",
            m(4, "external_id.field"),
            e,
            "External ID",
        ),
    ];
    for (code, key, severity, fix) in cases {
        if *code == "sf.external_id_missing" {
            continue; // the object is missing, so its fields are not checked
        }
        let diag = find(&d, code, key);
        assert_eq!(
            diag.severity, *severity,
            "{code} at {key}: {}",
            diag.message
        );
        assert!(
            diag.fix.contains(fix) || diag.message.contains(fix),
            "{code} at {key}: fix {:?}, message {:?}",
            diag.fix,
            diag.message
        );
    }
    assert!(find(&d, "sf.field_missing", &m(0, "fields.arr"))
        .message
        .contains("did you mean ARR__c"));
    assert!(find(&d, "sf.picklist_values", &m(0, "fields.plan"))
        .message
        .contains("`Gold`"));
    assert!(find(
        &d,
        "config.value_map_incomplete",
        &m(0, "fields.plan.transform.values")
    )
    .message
    .contains("`legacy`"));
    // Subscriptions: value_map misses enterprise/legacy; mrr numeric(18,2) → currency(18,2) is fine.
    find(
        &d,
        "config.value_map_incomplete",
        &m(2, "fields.plan.transform.values"),
    );
    assert!(
        !d.iter().any(|x| x.key == m(2, "fields.mrr")),
        "{}",
        render_table(&d)
    );
    assert!(!d.iter().any(|x| x.key == m(2, "fields.started_at")));
    assert!(
        !d.iter().any(|x| x.key.starts_with(&m(2, "lookups"))),
        "{}",
        render_table(&d)
    );
    assert!(!d
        .iter()
        .any(|x| x.key == m(0, "fields.tags") || x.key == m(0, "fields.last_seen_at")));
    assert!(has_errors(&d));

    // Renderings.
    let table = render_table(&d);
    assert!(table.starts_with("SEVERITY"), "{table}");
    assert!(
        table.contains("fix: ALTER TABLE public.subscriptions REPLICA IDENTITY FULL")
            || table.contains("REPLICA IDENTITY FULL")
    );
    let json = to_json(&d);
    let first = &json.as_array().unwrap()[0];
    for k in ["severity", "code", "key", "message", "fix"] {
        assert!(first.get(k).is_some(), "{first}");
    }
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["severity"] == "warning"));
}

#[tokio::test]
async fn unmanaged_publication_is_an_error_and_examples_validate_cleanly() {
    let cluster = TempCluster::start().unwrap();
    cluster
        .psql(
            "postgres",
            "
        CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);
        CREATE TABLE subscriptions (id bigint PRIMARY KEY, account_id bigint NOT NULL,
          plan text, mrr numeric(18,2), arr numeric(18,2), renews_on date, name varchar(80),
          status varchar(40), started_at timestamptz);
        CREATE PUBLICATION pgforce_billing FOR TABLE accounts;",
        )
        .unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/examples/subscriptions.toml"
    ))
    .unwrap();
    let mut config = Config::parse_unresolved(&text).unwrap();
    let tables: Vec<String> = config.pipelines[0]
        .mappings
        .iter()
        .map(|m| m.table.clone())
        .collect();
    let cat = catalog(&cluster, &tables).await;
    let d = validate(&config, &cat, &describe());
    // Only expected findings: subscriptions not yet published, the Account mapping from
    // subscriptions keyed by a non-unique column, text → restricted picklist via value_map
    // is fine, and Account.Name unmapped on the enrichment mapping.
    assert!(!has_errors(&d), "{}", render_table(&d));
    find(&d, "pg.publication", "pipelines[0].mappings[1].table");
    find(
        &d,
        "pg.external_id_not_unique",
        "pipelines[0].mappings[1].external_id.column",
    );
    find(
        &d,
        "pg.external_id_not_in_identity",
        "pipelines[0].mappings[1].external_id.column",
    );
    find(&d, "sf.required_field", "pipelines[0].mappings[1].fields");

    config.pipelines[0].manage_publication = false;
    let d = validate(&config, &cat, &describe());
    assert_eq!(
        find(&d, "pg.publication", "pipelines[0].mappings[1].table").severity,
        Severity::Error
    );
}
