//! End to end for the product templates in `deploy/examples/`: each test loads the shipped
//! file, swaps only the Salesforce login for the in-process emulator's client-credentials
//! demo app (secrets through a resolver), runs it against a throwaway Postgres, and checks
//! the records field by field.
//!
//! - `users-to-contacts.toml`: Contacts keyed by email, the Contact Id written back to
//!   `users.salesforce_id` under pgforce's replication origin, without echo.
//! - `subscriptions.toml`: subscription fields onto the Account, and `Subscription__c`
//!   children with the custom lookup `Account__r`.

use std::str::FromStr;

use crate::support::pipeline::*;
use pgforce::metrics::CHANGES_DECODED;
use pgforce::pipeline::PipelineError;
use pgforce_emulator::ids::Id;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

const USERS: &str = "
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email text UNIQUE,
    first_name text,
    last_name text NOT NULL,
    phone text,
    salesforce_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
";

/// `users` columns against Contact fields: copied verbatim, FirstName truncated to 40
/// characters by the template, and the Contact's Id written back to `salesforce_id`.
const USER_FIELDS: &[(&str, &str, Kind)] = &[
    ("email", "Email", Kind::Text),
    ("last_name", "LastName", Kind::Text),
    ("phone", "Phone", Kind::Text),
    ("first_name", "FirstName", Kind::Truncated(40)),
    ("salesforce_id", "Id", Kind::OwnId),
];

/// The live record of `object` whose `External_Id__c` is `key`.
fn live(h: &Harness, object: &str, key: &str) -> Option<Map<String, Value>> {
    h.record(object, key)
}

/// The Salesforce Id of a record as its canonical 18-character form.
fn id18(rec: &Map<String, Value>) -> String {
    let id = rec["Id"].as_str().expect("Id is text");
    Id::parse(id).expect("a Salesforce Id").to_string()
}

/// `users` rows as (id, email, salesforce_id), by id.
async fn users(h: &Harness) -> Vec<(i64, Option<String>, Option<String>)> {
    h.pg.query(
        "SELECT id, email, salesforce_id FROM users ORDER BY id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Every user with an email has its Contact (same fields), the Contact's Id in
/// `salesforce_id`, and no other Contact is live.
async fn users_in_sync(h: &Harness) -> Result<(), String> {
    h.in_sync(&[Table::new("users", "Contact", USER_FIELDS)
        .key("email")
        .rows("email IS NOT NULL")])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_to_contacts_template_writes_contact_ids_back_without_echo() {
    let h = Harness::start(USERS).await;
    // The recorder must be in place before the pipeline counts anything.
    pipeline_counter(CHANGES_DECODED, "contacts");
    let cfg = template_config(&h, "users-to-contacts.toml").expect("the template loads");
    assert_eq!(cfg.name, "contacts");

    // Without REPLICA IDENTITY FULL the pipeline refuses to start, and says what to do.
    match h.run_to_failure(cfg.clone()).await {
        e @ PipelineError::Config { .. } => {
            let text = e.to_string();
            assert!(
                text.contains("REPLICA IDENTITY FULL") && text.contains("external_id.column"),
                "{text}"
            );
        }
        other => panic!("expected a Config error, got {other:?}"),
    }
    h.sql("ALTER TABLE users REPLICA IDENTITY FULL").await;

    // A user from before the start: backfilled, and its Id written back too.
    h.sql("INSERT INTO users (email, first_name, last_name, phone) VALUES ('ada@example.com', 'Ada', 'Lovelace', '+44 20 1234')")
        .await;
    let run = h.run_named(cfg).await;
    wait_until("the backfilled user has its Contact Id", DEADLINE, || {
        users_in_sync(&h)
    })
    .await;

    let long_first = "Bartholomew-Maximilian-Alexander-Konstantin-Ferdinand";
    h.sql(&format!(
        "INSERT INTO users (email, first_name, last_name, phone) VALUES
           ('grace@example.com', 'Grace', 'Hopper', NULL),
           ('alan@example.com', '{long_first}', 'Turing', '+44 161 000');
         INSERT INTO users (email, first_name, last_name) VALUES (NULL, 'No', 'Email');"
    ))
    .await;
    wait_until("new users have their Contact Ids", DEADLINE, || {
        users_in_sync(&h)
    })
    .await;
    let rows = users(&h).await;
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[3].2, None,
        "a user without email has no Contact and no Id"
    );
    assert_eq!(
        live(&h, "Contact", "alan@example.com").unwrap()["FirstName"],
        long_first.chars().take(40).collect::<String>()
    );

    // No echo: pgforce's own UPDATEs of users.salesforce_id are not decoded, so they cause
    // neither a decoded change nor another upsert. Marker rows make this deterministic: the
    // second marker's Contact is written after the first marker's write-back was committed
    // and streamed past, so an echo of it would have been counted by then.
    let decoded = pipeline_counter(CHANGES_DECODED, "contacts");
    let calls = h.data_calls();
    h.sql("INSERT INTO users (email, last_name) VALUES ('marker1@example.com', 'One')")
        .await;
    wait_until("marker 1 has its Id", DEADLINE, || users_in_sync(&h)).await;
    let marker1 = live(&h, "Contact", "marker1@example.com").unwrap();
    h.sql("INSERT INTO users (email, last_name) VALUES ('marker2@example.com', 'Two')")
        .await;
    wait_until("marker 2 has its Id", DEADLINE, || users_in_sync(&h)).await;
    assert_eq!(
        pipeline_counter(CHANGES_DECODED, "contacts"),
        decoded + 2,
        "only the two INSERTs were decoded, not pgforce's write-backs"
    );
    assert_eq!(
        h.data_calls(),
        calls + 2,
        "one upsert call per marker, nothing for the write-backs"
    );
    assert_eq!(
        live(&h, "Contact", "marker1@example.com").unwrap(),
        marker1,
        "marker 1's Contact was not written again"
    );

    // A change of another column: the Contact follows; the Id stays.
    let ada_id = users(&h).await[0].2.clone().unwrap();
    h.sql("UPDATE users SET phone = '+44 20 9999', last_name = 'King' WHERE email = 'ada@example.com'")
        .await;
    wait_until("the update lands", DEADLINE, || users_in_sync(&h)).await;
    assert_eq!(users(&h).await[0].2.as_deref(), Some(ada_id.as_str()));

    // A cleared or wrong salesforce_id is repaired by the row's next sync, although the
    // Contact's Id did not change.
    h.sql("UPDATE users SET salesforce_id = NULL WHERE email = 'ada@example.com'")
        .await;
    h.sql("UPDATE users SET salesforce_id = 'wrong' WHERE email = 'grace@example.com'")
        .await;
    wait_until("the ids are repaired", DEADLINE, || users_in_sync(&h)).await;
    assert_eq!(users(&h).await[0].2.as_deref(), Some(ada_id.as_str()));

    // An email change deletes the old Contact and creates a new one, whose Id is written back.
    let grace_old = id18(&live(&h, "Contact", "grace@example.com").unwrap());
    h.sql("UPDATE users SET email = 'grace.hopper@navy.example' WHERE email = 'grace@example.com'")
        .await;
    wait_until("the email change lands", DEADLINE, || async {
        users_in_sync(&h).await?;
        check(live(&h, "Contact", "grace@example.com").is_none(), || {
            "the old Contact is still live".into()
        })
    })
    .await;
    let old: Vec<_> = h
        .records("Contact", true)
        .into_iter()
        .filter(|r| r["External_Id__c"] == "grace@example.com")
        .collect();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0]["IsDeleted"], Value::Bool(true));
    assert_eq!(id18(&old[0]), grace_old);
    let grace_new = id18(&live(&h, "Contact", "grace.hopper@navy.example").unwrap());
    assert_ne!(grace_new, grace_old);

    // A user losing its email leaves the filter: its Contact is deleted. A deleted user
    // deletes its Contact (the old email comes with REPLICA IDENTITY FULL).
    h.sql("UPDATE users SET email = NULL WHERE email = 'marker2@example.com'")
        .await;
    h.sql("DELETE FROM users WHERE email = 'alan@example.com'")
        .await;
    let state = h.state_of("contacts").await;
    wait_until("the removals land", DEADLINE, || async {
        let m2 = live(&h, "Contact", "marker2@example.com").is_some();
        let alan = live(&h, "Contact", "alan@example.com").is_some();
        let open = state.list_dead_letters(Some("open"), 100).await;
        check(!m2 && !alan, || {
            format!("live: marker2 {m2}, alan {alan}; dead letters {open:?}")
        })
    })
    .await;
    h.sql("UPDATE users SET salesforce_id = NULL WHERE email IS NULL")
        .await;
    wait_until("everything matches", DEADLINE, || users_in_sync(&h)).await;

    assert_eq!(state.parked_count().await.unwrap(), 0);
    let open = state.list_dead_letters(Some("open"), 100).await.unwrap();
    assert!(open.is_empty(), "unexpected dead letters: {open:#?}");
    run.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_needs_origin_rights_and_an_origin_of_its_own() {
    let h = Harness::start(USERS).await;
    h.sql(
        "ALTER TABLE users REPLICA IDENTITY FULL;
         CREATE ROLE app LOGIN REPLICATION;
         GRANT CREATE ON DATABASE postgres TO app;
         GRANT USAGE, CREATE ON SCHEMA public TO app;
         ALTER TABLE users OWNER TO app;
         ALTER SEQUENCE users_id_seq OWNER TO app;",
    )
    .await;
    let app_url = h.db_url.replacen("postgres@", "app@", 1);
    assert_ne!(app_url, h.db_url);
    let mut cfg = template_config_as(&h, "users-to-contacts.toml", &app_url).unwrap();
    // Its own name: the decoded-change counter of `contacts` belongs to the test above.
    cfg.name = "contacts_app".into();

    // An ordinary role may not use replication origins: a Config error that says what to grant.
    match h.run_to_failure(cfg.clone()).await {
        e @ PipelineError::Config { .. } => {
            let text = e.to_string();
            for want in [
                "superuser",
                "pg_replication_origin_create",
                "pg_replication_origin_session_setup",
            ] {
                assert!(text.contains(want), "{want} missing: {text}");
            }
        }
        other => panic!("expected a Config error, got {other:?}"),
    }

    // The two EXECUTE grants are enough (the origin catalog is not read).
    h.sql(
        "GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text),
             pg_replication_origin_session_setup(text) TO app",
    )
    .await;
    let run = h.run_named(cfg.clone()).await;
    h.sql("INSERT INTO users (email, last_name) VALUES ('app@example.com', 'Role')")
        .await;
    wait_until(
        "the write-back works for the granted role",
        DEADLINE,
        || users_in_sync(&h),
    )
    .await;

    // A second pipeline on the same database with the same replication origin cannot mark
    // its session: the error says each pipeline needs its own origin.
    let mut second = cfg.clone();
    second.name = "contacts_two".into();
    second.slot = "pgforce_contacts_two".into();
    match h.run_to_failure(second.clone()).await {
        e @ PipelineError::Config { .. } => {
            let text = e.to_string();
            assert!(
                text.contains("replication_origin") && text.contains("another session"),
                "{text}"
            );
        }
        other => panic!("expected a Config error, got {other:?}"),
    }
    second.replication_origin = "pgforce_contacts_two".into();
    let run2 = h.run_named(second).await;
    h.sql("UPDATE users SET last_name = 'Two pipelines' WHERE email = 'app@example.com'")
        .await;
    wait_until("both pipelines keep the Contact in sync", DEADLINE, || {
        users_in_sync(&h)
    })
    .await;
    run2.stop().await.expect("clean stop");
    run.stop().await.expect("clean stop");
}

const BILLING: &str = "
CREATE TYPE plan_tier AS ENUM ('free', 'pro', 'enterprise');
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE subscriptions (
    id bigint PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts DEFERRABLE,
    name text NOT NULL,
    plan plan_tier NOT NULL,
    status text NOT NULL,
    mrr numeric(12,4),
    arr numeric(14,2),
    renews_on date,
    started_at timestamptz
);
";

/// A Salesforce decimal as an exact decimal.
fn dec(v: &Value) -> Option<Decimal> {
    match v {
        Value::Null => None,
        Value::String(s) => Decimal::from_str(s).ok(),
        other => Decimal::from_str(&other.to_string()).ok(),
    }
}

fn d(s: &str) -> Option<Decimal> {
    Some(Decimal::from_str(s).unwrap())
}

/// The Account's subscription fields: (Plan__c, MRR__c, ARR__c, Renewal_Date__c).
fn account_fields(
    h: &Harness,
    key: &str,
) -> Option<(Value, Option<Decimal>, Option<Decimal>, Value)> {
    let a = live(h, "Account", key)?;
    Some((
        a.get("Plan__c").cloned().unwrap_or(Value::Null),
        dec(a.get("MRR__c").unwrap_or(&Value::Null)),
        dec(a.get("ARR__c").unwrap_or(&Value::Null)),
        a.get("Renewal_Date__c").cloned().unwrap_or(Value::Null),
    ))
}

/// Wait until `key`'s Account carries these subscription fields.
async fn wait_account(h: &Harness, key: &str, want: (&str, &str, &str, &str)) {
    let want = (
        Value::String(want.0.into()),
        d(want.1),
        d(want.2),
        Value::String(want.3.into()),
    );
    wait_until(&format!("Account {key} has {want:?}"), DEADLINE, || async {
        let got = account_fields(h, key);
        check(got.as_ref() == Some(&want), || format!("{got:?}"))
    })
    .await;
}

/// The live `Subscription__c` `key` once it satisfies `ok`.
async fn wait_subscription(
    h: &Harness,
    key: &str,
    ok: impl Fn(&Map<String, Value>) -> bool,
) -> Map<String, Value> {
    wait_until(&format!("Subscription__c {key}"), DEADLINE, || async {
        let got = live(h, "Subscription__c", key);
        check(got.as_ref().is_some_and(&ok), || format!("{got:?}"))
    })
    .await;
    live(h, "Subscription__c", key).unwrap()
}

/// The lookup points at the Account with this external id.
fn points_at(h: &Harness, sub: &Map<String, Value>, account: &str) -> bool {
    let parent = live(h, "Account", account).expect("the parent Account exists");
    sub.get("Account__c")
        .and_then(Value::as_str)
        .and_then(|s| Id::parse(s).ok())
        .is_some_and(|id| id.to_string() == id18(&parent))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_template_fills_account_fields_and_subscription_children() {
    let h = Harness::start(BILLING).await;
    // Before the start: backfilled.
    h.sql(
        "INSERT INTO accounts VALUES (1, 'Acme');
         INSERT INTO subscriptions VALUES
           (10, 1, 'Acme Pro', 'pro', 'active', 99.5, 1194, '2026-03-31', '2025-03-31 09:15:00+02');",
    )
    .await;
    let cfg = template_config(&h, "subscriptions.toml").expect("the template loads");
    assert_eq!(cfg.name, "billing");
    let run = h.run_named(cfg).await;

    wait_account(&h, "1", ("Pro", "99.50", "1194.00", "2026-03-31")).await;
    assert_eq!(live(&h, "Account", "1").unwrap()["Name"], "Acme");
    let s10 = wait_subscription(&h, "10", |_| true).await;
    assert!(points_at(&h, &s10, "1"), "{s10:?}");
    assert_eq!(s10["Name"], "Acme Pro");
    assert_eq!(s10["Plan__c"], "Pro");
    assert_eq!(dec(&s10["MRR__c"]), d("99.5"));
    assert_eq!(s10["Status__c"], "Active");
    let started = s10["Started_At__c"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        started.starts_with("2025-03-31T07:15:00.000"),
        "Started_At__c in UTC: {started}"
    );

    // Parent and children in one transaction, children first; rounding half away from zero.
    h.sql(
        "BEGIN;
         SET CONSTRAINTS ALL DEFERRED;
         INSERT INTO subscriptions VALUES
           (20, 2, 'Globex Enterprise', 'enterprise', 'trialing', 1234.5650, 14814.78, '2027-01-01', now()),
           (30, 3, 'Initech Free', 'free', 'past_due', 0.0050, 0, NULL, NULL);
         INSERT INTO accounts VALUES (2, 'Globex'), (3, 'Initech');
         COMMIT;",
    )
    .await;
    wait_account(&h, "2", ("Enterprise", "1234.57", "14814.78", "2027-01-01")).await;
    let s30 = wait_subscription(&h, "30", |_| true).await;
    assert_eq!(s30["Status__c"], "Past Due");
    assert_eq!(dec(&s30["MRR__c"]), d("0.01"), "half away from zero");
    assert!(points_at(&h, &s30, "3"));
    let a3 = live(&h, "Account", "3").unwrap();
    assert_eq!(a3["Plan__c"], "Free");
    assert_eq!(dec(&a3["ARR__c"]), d("0"));
    assert_eq!(a3["Renewal_Date__c"], Value::Null);
    let s20 = wait_subscription(&h, "20", |_| true).await;
    assert!(points_at(&h, &s20, "2"));
    assert_eq!(s20["Status__c"], "Trialing");

    // An upgrade moves the Account's fields; the subscription follows.
    h.sql(
        "UPDATE subscriptions SET plan = 'enterprise', mrr = 2500.999, arr = 30011.99,
             renews_on = '2027-03-31', status = 'active' WHERE id = 10",
    )
    .await;
    wait_account(&h, "1", ("Enterprise", "2501.00", "30011.99", "2027-03-31")).await;
    wait_subscription(&h, "10", |s| {
        s["Plan__c"] == "Enterprise" && dec(&s["MRR__c"]) == d("2501.00")
    })
    .await;

    // A cancellation leaves the Account's fields alone (on_filter_exit = "ignore"), the
    // subscription shows it.
    h.sql("UPDATE subscriptions SET status = 'canceled', mrr = 0, arr = 0 WHERE id = 20")
        .await;
    wait_subscription(&h, "20", |s| s["Status__c"] == "Canceled").await;
    wait_account(&h, "2", ("Enterprise", "1234.57", "14814.78", "2027-01-01")).await;

    // Moving a subscription to another Account moves its lookup.
    h.sql("UPDATE subscriptions SET account_id = 2 WHERE id = 30")
        .await;
    let s30 = wait_subscription(&h, "30", |s| points_at(&h, s, "2")).await;
    assert_eq!(s30["Name"], "Initech Free");

    // Deleting a subscription deletes its Subscription__c and leaves the Account alone.
    h.sql("DELETE FROM subscriptions WHERE id = 10").await;
    wait_until("Subscription__c 10 is deleted", DEADLINE, || async {
        check(live(&h, "Subscription__c", "10").is_none(), || {
            "still live".into()
        })
    })
    .await;
    wait_account(&h, "1", ("Enterprise", "2501.00", "30011.99", "2027-03-31")).await;
    assert_eq!(h.count("Account"), 3);
    assert_eq!(h.count("Subscription__c"), 2);

    let state = h.state_of("billing").await;
    assert_eq!(state.parked_count().await.unwrap(), 0);
    let open = state.list_dead_letters(Some("open"), 100).await.unwrap();
    assert!(open.is_empty(), "unexpected dead letters: {open:#?}");
    run.stop().await.expect("clean stop");
}
