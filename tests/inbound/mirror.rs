//! The mirror scenario both inbound sources must pass, run once per source (poll over
//! REST/SOQL, CDC over the emulator's Pub/Sub gRPC): records that existed before the start
//! are loaded with Postgres types; changes made through REST, Collections and Bulk
//! (hardDelete included) appear with the right values; a nulled field nulls its column and
//! the fields a change did not touch stay; a column pgforce does not own stays; every row
//! pgforce writes carries its replication origin. CDC adds its audit entry's checks: an
//! UPDATE event carries only the changed fields, each event is written once, a hard delete
//! is a DELETE.

use pgforce::salesforce::IngestOperation;
use serde_json::{json, Value};
use tokio_postgres::Client;

use crate::support::inbound::{col, text_row, wait_gone, wait_row, Env};
use crate::support::wait::{wait_until, DEADLINE};

/// The inbound source a scenario runs through.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Poll,
    Cdc,
}

const OPP_FIELDS: &str = r#"
[pipelines.inbound.fields]
Name = "name"
StageName = "stage"
Amount = "amount"
Probability = "probability"
CloseDate = "close_date"
IsClosed = "is_closed"
AccountId = "account_id"
"Account.Name" = "account_name"
Description = "description"
CreatedDate = "created_at"
"#;

/// CDC only: an audit entry beside the mirror, to see what each event carried.
const CDC_AUDIT: &str = r#"
[[pipelines.inbound]]
object = "Opportunity"
table = "audit.opportunity_changes"
mode = "audit"
source = "cdc"
fields = { Name = "name", StageName = "stage", Amount = "amount", Description = "description" }
"#;

/// The `[[pipelines.inbound]]` TOML of the Opportunity mirror for `source`.
pub(super) fn opportunities(source: Source) -> String {
    let head = "[[pipelines.inbound]]\nobject = \"Opportunity\"\ntable = \"sf.opportunities\"\n\
                mode = \"mirror\"\n";
    match source {
        Source::Poll => format!(
            "{head}source = \"poll\"\npoll_interval_secs = 1\npoll_overlap_secs = 5\n{OPP_FIELDS}"
        ),
        Source::Cdc => format!("{head}source = \"cdc\"\n{OPP_FIELDS}{CDC_AUDIT}"),
    }
}

/// The mirror row of an Opportunity, as text, with the column types.
const OPP_ROW: &str = "SELECT name, stage, amount::text, probability::text, close_date::text, \
     is_closed::text, account_id, account_name, description, note, created_at::text, \
     pg_typeof(amount)::text AS amount_type, pg_typeof(close_date)::text AS close_date_type, \
     pg_typeof(created_at)::text AS created_type, pg_typeof(is_closed)::text AS is_closed_type \
     FROM sf.opportunities WHERE id = $1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_mirror_follows_rest_collections_and_bulk() {
    mirror_follows_rest_collections_and_bulk("inpoll", Source::Poll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_mirror_follows_rest_collections_and_bulk() {
    mirror_follows_rest_collections_and_bulk("incdc", Source::Cdc).await;
}

async fn mirror_follows_rest_collections_and_bulk(name: &str, source: Source) {
    let env = Env::start(name, &opportunities(source)).await;
    env.create_tables().await;
    let pg = env.client().await;
    // A column of the analysts' own: pgforce never writes it.
    pg.batch_execute("ALTER TABLE sf.opportunities ADD COLUMN note text")
        .await
        .unwrap();
    // Rows written by pgforce carry its replication origin: a local-only decoding skips them.
    pg.execute(
        "SELECT pg_create_logical_replication_slot('watch', 'test_decoding')",
        &[],
    )
    .await
    .unwrap();
    let account = env.create("Account", json!({"Name": "Acme"})).await;
    let before = env
        .create(
            "Opportunity",
            json!({"Name": "Existing", "StageName": "Prospecting", "CloseDate": "2025-03-31",
                   "Amount": 1200.5, "Probability": 10, "AccountId": account, "Description": "long text"}),
        )
        .await;
    let running = env.run();
    wait_row(&pg, OPP_ROW, &before, "initial load", |r| {
        col(r, "name") == Some("Existing")
    })
    .await;
    running.wait_ready().await;
    let r = text_row(&pg, OPP_ROW, &before).await.unwrap();
    assert_eq!(col(&r, "amount"), Some("1200.50"));
    assert_eq!(col(&r, "amount_type"), Some("numeric"));
    assert_eq!(col(&r, "close_date"), Some("2025-03-31"));
    assert_eq!(col(&r, "close_date_type"), Some("date"));
    assert_eq!(col(&r, "created_type"), Some("timestamp with time zone"));
    assert_eq!(col(&r, "is_closed_type"), Some("boolean"));
    assert_eq!(col(&r, "is_closed"), Some("false"));
    assert_eq!(col(&r, "account_id"), Some(account.as_str()));
    assert_eq!(col(&r, "account_name"), Some("Acme"));

    rest_update_nulls_a_field_and_keeps_the_rest(&env, &pg, &before, source).await;
    rest_create_then_delete(&env, &pg, &account).await;
    let ids = collections_then_bulk(&env, &pg, source).await;
    running.stop().await.expect("a clean stop");
    if source == Source::Cdc {
        audit_rows_once_each(&pg, &ids[1]).await;
    }
    only_the_tests_own_write_is_local(&pg).await;
}

/// REST update: the nulled field nulls its column; the fields the change does not touch and
/// the analysts' column stay.
async fn rest_update_nulls_a_field_and_keeps_the_rest(
    env: &Env,
    pg: &Client,
    id: &str,
    source: Source,
) {
    pg.execute(
        "UPDATE sf.opportunities SET note = 'call back' WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
    env.update(
        "Opportunity",
        id,
        json!({"Amount": null, "StageName": "Closed Won"}),
    )
    .await;
    wait_row(pg, OPP_ROW, id, "REST update", |r| {
        col(r, "stage") == Some("Closed Won")
    })
    .await;
    let r = text_row(pg, OPP_ROW, id).await.unwrap();
    assert_eq!(col(&r, "amount"), None, "nulled field → NULL");
    assert_eq!(col(&r, "description"), Some("long text"), "untouched");
    assert_eq!(col(&r, "name"), Some("Existing"), "untouched");
    assert_eq!(col(&r, "close_date"), Some("2025-03-31"), "untouched");
    assert_eq!(col(&r, "account_name"), Some("Acme"), "untouched");
    assert_eq!(
        col(&r, "note"),
        Some("call back"),
        "a column pgforce does not own stays"
    );
    if source == Source::Cdc {
        wait_until("the audit row of the update", DEADLINE, || async {
            let rows = audit(pg, id).await;
            match rows.as_slice() {
                [(t, values, nulled)] if t == "UPDATE" => {
                    assert_eq!(
                        values,
                        &json!({"Amount": null, "StageName": "Closed Won"}),
                        "an UPDATE event carries only the changed fields"
                    );
                    assert_eq!(nulled, &vec!["Amount".to_string()]);
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }
}

/// REST create with values of every type, then a delete (to the recycle bin).
async fn rest_create_then_delete(env: &Env, pg: &Client, account: &str) {
    let created = env
        .create(
            "Opportunity",
            json!({"Name": "New", "StageName": "Qualification", "CloseDate": "2025-06-30",
                   "Amount": 99.99, "Probability": 25, "AccountId": account}),
        )
        .await;
    wait_row(pg, OPP_ROW, &created, "REST create", |r| {
        col(r, "name") == Some("New")
    })
    .await;
    let r = text_row(pg, OPP_ROW, &created).await.unwrap();
    assert_eq!(col(&r, "amount"), Some("99.99"));
    assert_eq!(col(&r, "probability"), Some("25"));
    assert_eq!(col(&r, "close_date"), Some("2025-06-30"));
    assert_eq!(col(&r, "is_closed"), Some("false"));
    assert_eq!(col(&r, "account_id"), Some(account));
    assert_eq!(
        col(&r, "account_name"),
        Some("Acme"),
        "relationship re-read"
    );
    assert!(col(&r, "created_at").is_some());
    env.delete("Opportunity", &created).await;
    wait_gone(pg, OPP_ROW, &created, "REST delete").await;
}

/// A Collections upsert of two records, a Bulk update of the first (its other fields stay)
/// and a Bulk hard delete of the second (poll mode finds it through getDeleted, which is
/// minute-granular). Returns the two Ids.
async fn collections_then_bulk(env: &Env, pg: &Client, source: Source) -> Vec<String> {
    let ids = env
        .upsert_collection(
            "Opportunity",
            vec![
                json!({"External_Id__c": "c-1", "Name": "Coll 1", "StageName": "Prospecting", "CloseDate": "2025-01-01", "Amount": 5}),
                json!({"External_Id__c": "c-2", "Name": "Coll 2", "StageName": "Prospecting", "CloseDate": "2025-01-02"}),
            ],
        )
        .await;
    for (id, name) in ids.iter().zip(["Coll 1", "Coll 2"]) {
        wait_row(pg, OPP_ROW, id, "collections upsert", |r| {
            col(r, "name") == Some(name)
        })
        .await;
    }
    env.bulk(
        "Opportunity",
        IngestOperation::Update,
        &format!("Id,Name\n{},Bulk renamed\n", ids[0]),
    )
    .await;
    wait_row(pg, OPP_ROW, &ids[0], "bulk update", |r| {
        col(r, "name") == Some("Bulk renamed")
    })
    .await;
    let r = text_row(pg, OPP_ROW, &ids[0]).await.unwrap();
    assert_eq!(
        col(&r, "amount"),
        Some("5.00"),
        "untouched by the bulk update"
    );
    env.bulk(
        "Opportunity",
        IngestOperation::HardDelete,
        &format!("Id\n{}\n", ids[1]),
    )
    .await;
    if source == Source::Poll {
        env.next_minute();
    }
    wait_gone(pg, OPP_ROW, &ids[1], "bulk hardDelete").await;
    assert!(text_row(pg, OPP_ROW, &ids[0]).await.is_some());
    ids
}

/// The audit rows of a record: (change type, values, nulled fields), in event order.
async fn audit(pg: &Client, id: &str) -> Vec<(String, Value, Vec<String>)> {
    pg.query(
        "SELECT change_type, \"values\", nulled_fields FROM audit.opportunity_changes \
         WHERE record_id = $1 ORDER BY event_id",
        &[&id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Every change event reached the audit entry once; the hard-deleted record's events are
/// its CREATE and a DELETE.
async fn audit_rows_once_each(pg: &Client, hard_deleted: &str) {
    let dup: i64 = pg
        .query_one(
            "SELECT count(*) FROM (SELECT position, record_id FROM audit.opportunity_changes \
             GROUP BY 1, 2 HAVING count(*) > 1) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dup, 0, "no event written twice");
    let kinds: Vec<String> = audit(pg, hard_deleted)
        .await
        .into_iter()
        .map(|(t, _, _)| t)
        .collect();
    assert_eq!(
        kinds,
        vec!["CREATE", "DELETE"],
        "the hard delete is a DELETE"
    );
}

/// Of every change to `sf.opportunities`, only the test's own UPDATE of `note` is local:
/// pgforce wrote everything else under its replication origin.
async fn only_the_tests_own_write_is_local(pg: &Client) {
    let count = |sql: &'static str| async move {
        let n: i64 = pg.query_one(sql, &[]).await.unwrap().get(0);
        n
    };
    let local_only = count(
        "SELECT count(*) FROM pg_logical_slot_peek_changes('watch', NULL, NULL, 'only-local', '1') \
         WHERE data LIKE '%sf.opportunities%'",
    )
    .await;
    let all = count(
        "SELECT count(*) FROM pg_logical_slot_peek_changes('watch', NULL, NULL) \
         WHERE data LIKE '%sf.opportunities%'",
    )
    .await;
    assert!(all > 0, "the decoding saw pgforce's writes");
    assert_eq!(
        local_only, 1,
        "every row pgforce wrote carries its replication origin"
    );
    pg.execute("SELECT pg_drop_replication_slot('watch')", &[])
        .await
        .unwrap();
}
