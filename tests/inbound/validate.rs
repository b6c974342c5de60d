//! `validate` for inbound entries against a real Postgres catalog and the emulator's
//! describe: a missing table, a missing column, a field the object does not have and a
//! column type that cannot hold its field are each reported by key, all in one run.

use pgforce::config::catalog::PgCatalog;
use pgforce::config::describe::SfDescribe;
use pgforce::config::validate::{validate_pipeline, Severity};

use crate::support::inbound::Env;

const ENTRIES: &str = r#"
[[pipelines.inbound]]
object = "Opportunity"
table = "sf.opps"
source = "poll"

[pipelines.inbound.fields]
Name = "name"
StageName = "stage"
Amount = "amount"
CloseDate = "close_date"
Bogus__c = "bogus"

[[pipelines.inbound]]
object = "Account"
table = "sf.nowhere"
source = "poll"
fields = { Name = "name" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_every_inbound_problem_by_key_at_once() {
    let env = Env::start("invalid", ENTRIES).await;
    let pg = env.client().await;
    pg.batch_execute(
        "CREATE SCHEMA sf;
         CREATE TABLE sf.opps (id text PRIMARY KEY, system_modstamp timestamptz,
             name text, amount boolean, close_date date);",
    )
    .await
    .unwrap();
    let mut bodies = Vec::new();
    for object in ["Opportunity", "Account"] {
        bodies.push(env.sf.describe_json(object).await.expect("describe"));
    }
    let describe = SfDescribe::from_json(&bodies).unwrap();
    let tables: Vec<String> = env
        .pipeline
        .inbound
        .iter()
        .map(|e| e.qualified_table())
        .collect();
    let catalog = PgCatalog::load(&pg, &tables).await.unwrap();

    let found = validate_pipeline(0, &env.pipeline, &catalog, &describe);
    let mut got: Vec<(String, &str)> = found
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| (d.key.clone(), d.code))
        .collect();
    got.sort();
    let want = [
        ("pipelines[0].inbound[0].fields.Amount", "pg.type_mismatch"),
        (
            "pipelines[0].inbound[0].fields.Bogus__c",
            "sf.field_missing",
        ),
        ("pipelines[0].inbound[0].table", "pg.column_missing"),
        ("pipelines[0].inbound[0].table", "pg.column_missing"),
        ("pipelines[0].inbound[1].table", "pg.table_missing"),
    ];
    let want: Vec<(String, &str)> = want.iter().map(|(k, c)| (k.to_string(), *c)).collect();
    assert_eq!(got, want, "{found:#?}");
    let text = |code: &str| -> Vec<&str> {
        found
            .iter()
            .filter(|d| d.code == code)
            .map(|d| d.message.as_str())
            .collect()
    };
    let missing = text("pg.column_missing").join("\n");
    assert!(
        missing.contains("column stage") && missing.contains("column bogus"),
        "{missing}"
    );
    let mismatch = text("pg.type_mismatch").join("\n");
    assert!(
        mismatch.contains("sf.opps.amount") && mismatch.contains("Opportunity.Amount"),
        "{mismatch}"
    );
    assert!(
        text("pg.table_missing")
            .iter()
            .any(|m| m.contains("sf.nowhere")),
        "{found:#?}"
    );
}
