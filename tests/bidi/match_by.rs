//! `external_id = { column = "email", match_by = "Email" }`: users reach Contacts that
//! already exist in the org by email (no External ID field), new ones are created, the
//! Contact Id is written back, a later change updates the same Contact by Id, and an email
//! two Contacts share is dead-lettered with both Ids instead of guessing.

use serde_json::json;

use crate::support::bidi::{human, record, records_where};
use crate::support::pipeline::*;

const USERS: &str = "
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, last_name text NOT NULL,
    phone text, salesforce_id text);
ALTER TABLE users REPLICA IDENTITY FULL;
";

const MAPPING: &str = r#"
[[pipelines.mappings]]
name = "users"
table = "public.users"
object = "Contact"
external_id = { column = "email", match_by = "Email" }
write_back = { column = "salesforce_id" }

[pipelines.mappings.fields]
last_name = "LastName"
phone = "Phone"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_match_existing_contacts_by_email_and_create_the_rest() {
    let h = Harness::start(USERS).await;
    let sf = human(&h.emulator).await;
    let ann = sf
        .create_record(
            "Contact",
            &record(json!({"LastName": "Old", "Email": "Ann@Example.com"})),
        )
        .await
        .unwrap();
    let mut dups = Vec::new();
    for _ in 0..2 {
        let r = record(json!({"LastName": "Twin", "Email": "dup@example.com"}));
        dups.push(sf.create_record("Contact", &r).await.unwrap());
    }
    dups.sort();
    let run = h.run(h.config(MAPPING, &Batching::default())).await;

    h.sql(
        "INSERT INTO users (id, email, last_name, phone) VALUES
           (1, 'ann@example.com', 'Ann', '111'),
           (2, 'bob@example.com', 'Bob', NULL),
           (3, 'dup@example.com', 'Dup', NULL)",
    )
    .await;
    wait_until("ann and bob are linked", DEADLINE, || async {
        let n: i64 =
            h.pg.query_one(
                "SELECT count(*) FROM users WHERE salesforce_id IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        check(n == 2, || format!("{n} of 2 linked"))
    })
    .await;
    let ann_row: Option<String> =
        h.pg.query_one("SELECT salesforce_id FROM users WHERE id = 1", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(
        ann_row.as_deref(),
        Some(ann.as_str()),
        "matched, not created"
    );
    let anns = records_where(&h.emulator, "Contact", "Email", "ann@example.com");
    assert_eq!(anns.len(), 1, "no second Ann");
    assert_eq!(anns[0]["LastName"], json!("Ann"));
    assert_eq!(anns[0]["Phone"], json!("111"));
    let bobs = records_where(&h.emulator, "Contact", "Email", "bob@example.com");
    assert_eq!(bobs.len(), 1, "bob created once");

    // Two Contacts with one email: a dead letter naming both, nothing written.
    wait_until("the shared email is dead-lettered", DEADLINE, || async {
        let open = h.dead_letters("open").await;
        check(open.len() == 1, || {
            format!("{} open dead letters", open.len())
        })
    })
    .await;
    let dead = h.dead_letters("open").await.remove(0);
    assert_eq!(dead.error_code, "AMBIGUOUS_MATCH");
    assert_eq!(dead.external_id, "dup@example.com");
    for id in &dups {
        assert!(
            dead.message.contains(id.as_str()),
            "{} names {id}",
            dead.message
        );
    }
    for twin in records_where(&h.emulator, "Contact", "Email", "dup@example.com") {
        assert_eq!(twin["LastName"], json!("Twin"), "neither twin was touched");
    }

    // A later change updates the linked Contact by Id (the id map), no lookup, no create.
    h.sql("UPDATE users SET last_name = 'Annie' WHERE id = 1")
        .await;
    wait_until("ann's change lands", DEADLINE, || async {
        let r = records_where(&h.emulator, "Contact", "Email", "ann@example.com");
        check(r.len() == 1 && r[0]["LastName"] == json!("Annie"), || {
            format!("{r:?}")
        })
    })
    .await;
    assert_eq!(
        h.count("Contact"),
        4,
        "ann (matched), bob (created), the twins"
    );
    run.stop().await.expect("clean stop");
}
