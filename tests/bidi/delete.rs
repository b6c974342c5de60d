//! A pair's delete policy, the same both ways (seed template users ⇄ Contact, both
//! directions running): `propagate` deletes the other side's row or record, `soft` marks
//! it (a Postgres DELETE checks the record's `HasOptedOutOfEmail`, a Salesforce delete sets
//! the row's `deleted_at`), `ignore` leaves it. Each is tested deleting on the Postgres
//! side and on the Salesforce side; the other side's end state is asserted, and that
//! nothing comes back (no re-created row or record, the Salesforce writes and Postgres row
//! writes counted, a marker change after each delete proving the pipeline passed it).

use pgforce::config::PipelineConfig;
use pgforce::testing::pg::ClusterOptions;
use serde_json::json;

use super::pair::{column, inbound, wait_column, wait_field, writes, USERS};
use crate::support::bidi::{edited_config, human, record, records_where};
use crate::support::pipeline::*;

/// The policies under test, as the template's `delete` line.
const PROPAGATE: &str = r#"delete = "propagate""#;
const SOFT: &str = r#"delete = { soft = { column = "deleted_at", field = "HasOptedOutOfEmail" } }"#;
const IGNORE: &str = r#"delete = "ignore""#;

const EMAILS: [&str; 3] = ["ann@example.com", "bob@example.com", "marker@example.com"];

/// The template with `policy` and a 1 s poll.
fn config(h: &Harness, policy: &str) -> PipelineConfig {
    edited_config(h, "users-contacts-bidi.toml", |t| {
        t.replace(PROPAGATE, policy)
            .replace("poll_interval_secs = 5", "poll_interval_secs = 1")
    })
}

/// Whether the users row of `email` exists, and whether its `deleted_at` is set.
async fn row_state(h: &Harness, email: &str) -> Option<bool> {
    h.pg.query_opt(
        "SELECT deleted_at IS NOT NULL FROM users WHERE email = $1",
        &[&email],
    )
    .await
    .unwrap()
    .map(|r| r.get(0))
}

/// Live Contacts with `email`.
fn contacts(h: &Harness, email: &str) -> usize {
    records_where(&h.emulator, "Contact", "Email", email).len()
}

/// Runs one policy: ann deleted in Postgres, then bob deleted in Salesforce, each followed
/// by a marker change on the same side; returns nothing, asserting as it goes.
async fn deletes_follow(policy: &str) {
    let opts = ClusterOptions {
        extra_conf: vec!["track_commit_timestamp = on".into()],
        ..ClusterOptions::default()
    };
    let schema = format!("{USERS}\nALTER TABLE users ADD COLUMN deleted_at timestamptz;");
    let h = Harness::start_on(&schema, opts).await;
    let person = human(&h.emulator).await;
    let cfg = config(&h, policy);
    let out = h.run_named(cfg.clone()).await;
    for e in EMAILS {
        h.sql(&format!(
            "INSERT INTO users (email, first_name, last_name) VALUES ('{e}', 'F', 'L')"
        ))
        .await;
    }
    let mut ids = Vec::new();
    for e in EMAILS {
        wait_until(&format!("{e} linked"), DEADLINE, || async {
            column(&h, e, "salesforce_id")
                .await
                .ok_or_else(|| "not yet".to_string())
        })
        .await;
        ids.push(column(&h, e, "salesforce_id").await.unwrap());
    }
    let inb = inbound(&cfg);

    // Deleted in Postgres.
    let calls = h.calls("collections");
    h.sql("DELETE FROM users WHERE email = 'ann@example.com'")
        .await;
    match policy {
        PROPAGATE => {
            wait_until("ann's Contact deleted", DEADLINE, || async {
                check(contacts(&h, EMAILS[0]) == 0, || "still there".into())
            })
            .await
        }
        SOFT => wait_field_value(&h, EMAILS[0], "HasOptedOutOfEmail", json!(true)).await,
        _ => {}
    }
    h.sql("UPDATE users SET plan = 'm1' WHERE email = 'marker@example.com'")
        .await;
    wait_field(&h, EMAILS[2], "Department", "m1").await;
    // A later Salesforce change applied: the inbound side has passed the delete's echo.
    person
        .update_record("Contact", &ids[2], &record(json!({"Phone": "m2"})))
        .await
        .unwrap();
    wait_column(&h, EMAILS[2], "phone", "m2").await;
    let sent = h.calls("collections") - calls;
    let (want_calls, want_contacts) = match policy {
        PROPAGATE => (2, 0),
        SOFT => (2, 1),
        _ => (1, 1),
    };
    assert_eq!(
        sent, want_calls,
        "{policy}: the delete (if any) and the marker"
    );
    assert_eq!(contacts(&h, EMAILS[0]), want_contacts, "{policy}");
    if policy == IGNORE {
        let c = &records_where(&h.emulator, "Contact", "Email", EMAILS[0])[0];
        assert_eq!(c["HasOptedOutOfEmail"], json!(false), "ignore: untouched");
    }
    assert_eq!(
        row_state(&h, EMAILS[0]).await,
        None,
        "{policy}: not re-created"
    );

    // Deleted in Salesforce.
    let (calls, bob_writes) = (h.calls("collections"), writes(&h, EMAILS[1]).await);
    person.delete_record("Contact", &ids[1]).await.unwrap();
    match policy {
        PROPAGATE => {
            wait_until("bob's row deleted", DEADLINE, || async {
                let r = row_state(&h, EMAILS[1]).await;
                check(r.is_none(), || format!("{r:?}"))
            })
            .await
        }
        SOFT => {
            wait_until("bob's row marked deleted", DEADLINE, || async {
                let r = row_state(&h, EMAILS[1]).await;
                check(r == Some(true), || format!("{r:?}"))
            })
            .await
        }
        _ => {}
    }
    person
        .update_record("Contact", &ids[2], &record(json!({"Phone": "m3"})))
        .await
        .unwrap();
    wait_column(&h, EMAILS[2], "phone", "m3").await;
    h.sql("UPDATE users SET plan = 'm4' WHERE email = 'marker@example.com'")
        .await;
    wait_field(&h, EMAILS[2], "Department", "m4").await;
    let (want_row, want_writes) = match policy {
        PROPAGATE => (None, 0),
        SOFT => (Some(true), 1),
        _ => (Some(false), 0),
    };
    assert_eq!(row_state(&h, EMAILS[1]).await, want_row, "{policy}");
    assert_eq!(
        writes(&h, EMAILS[1]).await - bob_writes,
        want_writes,
        "{policy}: bob's row written once at most"
    );
    assert_eq!(
        h.calls("collections") - calls,
        1,
        "{policy}: only the marker went to Salesforce"
    );
    assert_eq!(contacts(&h, EMAILS[1]), 0, "{policy}: not re-created");
    let state = h.state_of(&cfg.name).await;
    let open = state.list_dead_letters(Some("open"), 100).await.unwrap();
    assert!(open.is_empty(), "{open:?}");
    inb.stop().await.expect("inbound stops");
    out.stop().await.expect("outbound stops");
}

async fn wait_field_value(h: &Harness, email: &str, field: &str, want: serde_json::Value) {
    wait_until(
        &format!("Contact {email} {field} = {want}"),
        DEADLINE,
        || async {
            let got = records_where(&h.emulator, "Contact", "Email", email);
            check(got.len() == 1 && got[0].get(field) == Some(&want), || {
                format!("{got:?}")
            })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagate_deletes_on_the_other_side_both_ways_without_a_loop() {
    deletes_follow(PROPAGATE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_delete_marks_the_other_side_both_ways_without_a_loop() {
    deletes_follow(SOFT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_keeps_the_other_side_both_ways_without_a_loop() {
    deletes_follow(IGNORE).await;
}
