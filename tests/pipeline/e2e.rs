//! End to end: a real Postgres (TempCluster), the in-process Salesforce emulator over real
//! HTTP, and the pipeline run in-process by `pgforce::pipeline::supervise` with a config
//! built in code. Every test waits for Salesforce to match Postgres field by field; none
//! asserts on timing.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::pipeline::*;
use pgforce::pipeline::PipelineError;
use pgforce_emulator::{FaultKind, FaultSpec};
use serde_json::Value;

/// Wait until both tables match their objects.
async fn wait_in_sync(h: &Harness) {
    wait_until(
        "accounts and contacts match Salesforce",
        DEADLINE,
        || async {
            h.in_sync(&[
                Table::new("accounts", "Account", ACCOUNT_FIELDS),
                Table::new("contacts", "Contact", CONTACT_FIELDS),
            ])
            .await
        },
    )
    .await;
}

async fn assert_no_dead_letters(h: &Harness) {
    let open = h.dead_letters("open").await;
    assert!(open.is_empty(), "unexpected dead letters: {open:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_updates_and_deletes_land_in_salesforce() {
    let h = Harness::start(SCHEMA).await;
    let run = h.run(h.config(&mappings(), &Batching::default())).await;

    h.sql(
        "INSERT INTO accounts VALUES
           (1, 'Acme', 'Anvils and more', 'Hot', 120, 1000000, 'Pro'),
           (2, 'Globex', NULL, 'Warm', NULL, NULL, NULL),
           (3, 'Initech', 'TPS reports', NULL, 7, 12345678901, 'Free'),
           (4, 'Umbrella', '', 'Cold', 0, 0, 'Enterprise'),
           (5, 'Hooli', 'Ünïcödé ✓ \"quotes\", commas', 'Hot', 99999, 42, 'Free')",
    )
    .await;
    wait_in_sync(&h).await;

    h.sql(
        "UPDATE accounts SET name = 'Acme Corp', employees = 121, description = NULL WHERE id = 1",
    )
    .await;
    h.sql("UPDATE accounts SET rating = 'Cold', revenue = 5 WHERE id = 2")
        .await;
    h.sql("DELETE FROM accounts WHERE id = 3").await;
    // A key change: the old record goes, a new one comes.
    h.sql("UPDATE accounts SET id = 6 WHERE id = 5").await;
    wait_in_sync(&h).await;

    let deleted: Vec<_> = h
        .records("Account", true)
        .into_iter()
        .filter(|r| r.get("External_Id__c") == Some(&Value::String("3".into())))
        .collect();
    assert_eq!(
        deleted.len(),
        1,
        "the deleted Account is in the recycle bin"
    );
    assert_eq!(deleted[0].get("IsDeleted"), Some(&Value::Bool(true)));
    assert_eq!(h.count("Account"), 4);
    assert!(h.record("Account", "5").is_none() && h.record("Account", "6").is_some());
    assert_no_dead_letters(&h).await;
    run.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_point_at_their_accounts_in_one_or_separate_transactions() {
    let h = Harness::start(SCHEMA).await;
    let run = h.run(h.config(&mappings(), &Batching::default())).await;

    // Children inserted before their parent inside one transaction.
    h.sql(
        "BEGIN;
         INSERT INTO contacts VALUES (10, 1, 'Ada', 'Lovelace', 'ada@example.com');
         INSERT INTO accounts (id, name) VALUES (1, 'Analytical Engines');
         INSERT INTO contacts VALUES (11, 1, 'Charles', 'Babbage', NULL);
         COMMIT;",
    )
    .await;
    wait_in_sync(&h).await;

    // Parent and children in separate transactions.
    h.sql("INSERT INTO accounts (id, name) VALUES (2, 'Difference Ltd')")
        .await;
    h.sql("INSERT INTO contacts VALUES (20, 2, 'Grace', 'Hopper', 'grace@example.com')")
        .await;
    h.sql("INSERT INTO contacts VALUES (21, 2, NULL, 'Turing', NULL)")
        .await;
    // Moving a contact to another account, and detaching one.
    h.sql("UPDATE contacts SET account_id = 2 WHERE id = 10")
        .await;
    h.sql("UPDATE contacts SET account_id = NULL WHERE id = 11")
        .await;
    wait_in_sync(&h).await;

    let acme = h.record("Account", "2").unwrap();
    let c10 = h.record("Contact", "10").unwrap();
    assert_eq!(c10["AccountId"], acme["Id"]);
    assert_eq!(h.record("Contact", "11").unwrap()["AccountId"], Value::Null);
    assert_eq!(h.state().await.parked_count().await.unwrap(), 0);
    assert_no_dead_letters(&h).await;
    run.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_updates_of_one_row_in_one_batch_end_with_the_last_value() {
    let h = Harness::start(SCHEMA).await;
    let batching = Batching {
        collections_threshold: 5,
        ..Batching::default()
    };
    let run = h.run(h.config(&mappings(), &batching)).await;

    // One transaction: many updates of row 1 among other rows, so the epoch goes by Bulk.
    let mut sql = String::from("BEGIN;\nINSERT INTO accounts (id, name) SELECT g, 'Row ' || g FROM generate_series(1, 20) g;\n");
    for i in 0..50 {
        sql.push_str(&format!(
            "UPDATE accounts SET name = 'Version {i}', employees = {i} WHERE id = 1;\n"
        ));
        if i % 10 == 0 {
            sql.push_str(&format!(
                "UPDATE accounts SET rating = 'Hot', description = 'pass {i}' WHERE id = 2;\n"
            ));
        }
    }
    sql.push_str("COMMIT;");
    h.sql(&sql).await;
    wait_in_sync(&h).await;
    let one = h.record("Account", "1").unwrap();
    assert_eq!(one["Name"], "Version 49");
    assert_eq!(one["NumberOfEmployees"], 49);
    assert_eq!(h.record("Account", "2").unwrap()["Description"], "pass 40");

    // Many small transactions updating the same row in quick succession.
    for i in 0..30 {
        h.sql(&format!(
            "UPDATE accounts SET name = 'Burst {i}' WHERE id = 3"
        ))
        .await;
    }
    wait_in_sync(&h).await;
    assert_eq!(h.record("Account", "3").unwrap()["Name"], "Burst 29");

    let uploads = h.bulk_uploads();
    assert!(!uploads.is_empty(), "the big epoch went through Bulk");
    for (object, op, rows) in uploads {
        let mut seen = HashSet::new();
        for r in &rows {
            let key = r.get("External_Id__c").cloned().unwrap_or_default();
            assert!(
                seen.insert(key.clone()),
                "{object} {op} job holds external id {key} twice"
            );
        }
    }
    assert_no_dead_letters(&h).await;
    run.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_toast_leaves_the_long_text_field_alone() {
    let h = Harness::start(
        "CREATE TABLE docs (id bigint PRIMARY KEY, name text NOT NULL, body text);
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;",
    )
    .await;
    let mappings = r#"
[[pipelines.mappings]]
name = "docs"
table = "public.docs"
object = "Account"
external_id = { column = "id", field = "External_Id__c" }

[pipelines.mappings.fields]
name = "Name"
body = "Description"
"#;
    let batching = Batching {
        collections_threshold: 3,
        ..Batching::default()
    };
    let run = h.run(h.config(mappings, &batching)).await;
    let fields = &[
        ("name", "Name", Kind::Text),
        ("body", "Description", Kind::Text),
    ];
    // 6 kB that does not compress away (EXTERNAL stores it out of line uncompressed anyway).
    h.sql(
        "INSERT INTO docs SELECT g, 'Doc ' || g,
            (SELECT string_agg(md5(g::text || ':' || i::text), '') FROM generate_series(1, 190) i)
         FROM generate_series(1, 8) g",
    )
    .await;
    wait_until("docs land", DEADLINE, || {
        h.compare("docs", "Account", fields)
    })
    .await;
    let big = h.record("Account", "1").unwrap()["Description"].clone();
    assert!(big.as_str().unwrap().len() > 2000);

    // Collections path: one row, only the small column changes.
    h.sql("UPDATE docs SET name = 'Renamed 1' WHERE id = 1")
        .await;
    // Bulk path: several rows in one transaction.
    h.sql("UPDATE docs SET name = name || ' (bulk)' WHERE id BETWEEN 2 AND 7")
        .await;
    wait_until("renames land", DEADLINE, || {
        h.compare("docs", "Account", fields)
    })
    .await;
    assert_eq!(h.record("Account", "1").unwrap()["Description"], big);

    // Insert and unchanged-TOAST update coalesced in one epoch (one transaction).
    h.sql(
        "BEGIN;
         INSERT INTO docs SELECT 100, 'New', string_agg(md5(i::text), '') FROM generate_series(1, 100) i;
         UPDATE docs SET name = 'New, renamed' WHERE id = 100;
         COMMIT;",
    )
    .await;
    wait_until("the coalesced insert lands", DEADLINE, || {
        h.compare("docs", "Account", fields)
    })
    .await;
    let bulk_cells: Vec<String> = h
        .bulk_uploads()
        .into_iter()
        .flat_map(|(_, _, rows)| rows)
        .filter_map(|r| r.get("Description").cloned())
        .collect();
    assert!(
        bulk_cells.iter().all(|c| c != "#N/A"),
        "an unchanged TOASTed value was sent as null"
    );
    run.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_rows_are_dead_lettered_and_resolved_by_a_later_good_change() {
    let h = Harness::start(SCHEMA).await;
    let batching = Batching {
        collections_threshold: 5,
        ..Batching::default()
    };
    let run = h.run(h.config(&mappings(), &batching)).await;

    let long_name = "N".repeat(300);
    h.sql(&format!(
        "INSERT INTO accounts (id, name, plan) VALUES
           (1, 'Good', 'Pro'), (2, '{long_name}', NULL), (3, 'Bad plan', 'Platinum'), (4, 'Also good', NULL)"
    ))
    .await;
    wait_until("two dead letters", DEADLINE, || async {
        let open = h.dead_letters("open").await;
        check(open.len() == 2, || format!("{} open", open.len()))
    })
    .await;
    let open = h.dead_letters("open").await;
    let by_key = |k: &str| open.iter().find(|d| d.external_id == k).unwrap().clone();
    let too_long = by_key("2");
    assert_eq!(too_long.error_code, "STRING_TOO_LONG");
    assert_eq!(too_long.object, "Account");
    assert_eq!(too_long.mapping, "accounts");
    assert_eq!(too_long.row["Name"], long_name.as_str());
    assert_eq!(too_long.row["External_Id__c"], "2");
    let bad_plan = by_key("3");
    assert_eq!(
        bad_plan.error_code,
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    assert_eq!(bad_plan.row["Plan__c"], "Platinum");
    assert!(h.record("Account", "1").is_some() && h.record("Account", "4").is_some());
    assert!(h.record("Account", "2").is_none() && h.record("Account", "3").is_none());

    // The stream keeps flowing.
    h.sql("INSERT INTO accounts (id, name) VALUES (5, 'After')")
        .await;
    wait_until("later rows flow", DEADLINE, || async {
        check(h.record("Account", "5").is_some(), || "5 missing".into())
    })
    .await;

    // A failing row failing again stays one open dead letter with more attempts.
    h.sql("UPDATE accounts SET description = 'still too long' WHERE id = 2")
        .await;
    wait_until("attempts counted", DEADLINE, || async {
        let open = h.dead_letters("open").await;
        check(
            open.iter().any(|d| d.external_id == "2" && d.attempts >= 2) && open.len() == 2,
            || format!("{open:?}"),
        )
    })
    .await;

    // Rejections in a Bulk job carry Salesforce's code too.
    h.sql(&format!(
        "INSERT INTO accounts (id, name) SELECT g, CASE WHEN g = 305 THEN '{long_name}' ELSE 'Bulk ' || g END
         FROM generate_series(300, 309) g"
    ))
    .await;
    wait_until("the Bulk rejection is dead-lettered", DEADLINE, || async {
        let open = h.dead_letters("open").await;
        check(
            open.iter()
                .any(|d| d.external_id == "305" && d.error_code == "STRING_TOO_LONG"),
            || format!("{open:?}"),
        )
    })
    .await;
    assert!(h.calls("bulk_ingest") > 0);
    h.sql("DELETE FROM accounts WHERE id = 305").await;

    // Later good changes resolve them.
    h.sql("UPDATE accounts SET name = 'Short now' WHERE id = 2")
        .await;
    h.sql("UPDATE accounts SET plan = 'Enterprise' WHERE id = 3")
        .await;
    wait_in_sync(&h).await;
    wait_until("dead letters resolved", DEADLINE, || async {
        let open = h.dead_letters("open").await;
        let resolved = h.dead_letters("resolved").await;
        check(open.is_empty() && resolved.len() == 3, || {
            format!("open {open:?} resolved {resolved:?}")
        })
    })
    .await;
    run.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_children_are_parked_until_their_parent_arrives() {
    let h = Harness::start(SCHEMA).await;
    let batching = Batching {
        collections_threshold: 10,
        ..Batching::default()
    };
    let run = h.run(h.config(&mappings(), &batching)).await;

    h.sql("INSERT INTO accounts (id, name) VALUES (1, 'Present')")
        .await;
    h.sql("INSERT INTO contacts VALUES (100, 99, 'Orphan', 'Child', NULL)")
        .await;
    h.sql("INSERT INTO contacts VALUES (101, 1, 'Normal', 'Child', NULL)")
        .await;
    let state = h.state().await;
    wait_until(
        "the orphan is parked and the other child lands",
        DEADLINE,
        || async {
            let parked = state.parked_count().await.map_err(|e| e.to_string())?;
            check(parked == 1 && h.record("Contact", "101").is_some(), || {
                format!("parked {parked}")
            })
        },
    )
    .await;
    assert!(h.record("Contact", "100").is_none());
    assert_no_dead_letters(&h).await;

    // A later change of the parked child replaces the parked version.
    h.sql("UPDATE contacts SET first_name = 'Still orphan' WHERE id = 100")
        .await;
    h.sql("INSERT INTO contacts VALUES (102, 1, 'More', 'Flow', NULL)")
        .await;
    wait_until("the stream flows past the orphan", DEADLINE, || async {
        check(h.record("Contact", "102").is_some(), || {
            "102 missing".into()
        })
    })
    .await;

    // Orphans in a step big enough for Bulk are parked the same way.
    h.sql(
        "INSERT INTO contacts SELECT g, CASE WHEN g % 2 = 0 THEN 1 ELSE 98 END, 'Bulk', 'Child ' || g, NULL
         FROM generate_series(200, 219) g",
    )
    .await;
    wait_until("the Bulk orphans are parked", DEADLINE, || async {
        let parked = state.parked_count().await.map_err(|e| e.to_string())?;
        check(parked == 11 && h.record("Contact", "200").is_some(), || {
            format!("parked {parked}")
        })
    })
    .await;
    assert!(
        h.calls("bulk_ingest") > 0,
        "the second batch went through Bulk"
    );

    h.sql("INSERT INTO accounts (id, name) VALUES (99, 'Late parent'), (98, 'Later parent')")
        .await;
    wait_in_sync(&h).await;
    let child = h.record("Contact", "100").unwrap();
    assert_eq!(child["FirstName"], "Still orphan");
    assert_eq!(child["AccountId"], h.record("Account", "99").unwrap()["Id"]);
    assert_eq!(
        h.record("Contact", "201").unwrap()["AccountId"],
        h.record("Account", "98").unwrap()["Id"]
    );
    // The retried children are unparked once Salesforce acknowledged them, a moment after
    // their records became visible.
    wait_until("nothing is parked", DEADLINE, || async {
        let parked = state.parked_count().await.map_err(|e| e.to_string())?;
        check(parked == 0, || format!("parked {parked}"))
    })
    .await;
    assert_no_dead_letters(&h).await;
    run.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_renewed_and_nothing_is_lost() {
    let h = Harness::start(SCHEMA).await;
    let run = h.run(h.config(&mappings(), &Batching::default())).await;
    h.sql("INSERT INTO accounts (id, name) SELECT g, 'Before ' || g FROM generate_series(1, 10) g")
        .await;
    wait_in_sync(&h).await;
    let logins = h.calls("oauth");

    h.emulator.expire_tokens();
    h.sql("INSERT INTO accounts (id, name) SELECT g, 'After ' || g FROM generate_series(11, 20) g")
        .await;
    h.sql("UPDATE accounts SET rating = 'Warm' WHERE id <= 5")
        .await;
    h.sql("INSERT INTO contacts VALUES (1, 15, 'Token', 'Renewed', NULL)")
        .await;
    wait_in_sync(&h).await;
    assert!(h.calls("oauth") > logins, "the pipeline logged in again");

    // Expired twice more, between batches.
    for round in 0..2 {
        h.emulator.expire_tokens();
        h.sql(&format!(
            "UPDATE accounts SET description = 'round {round}' WHERE id % 2 = 0"
        ))
        .await;
        wait_in_sync(&h).await;
    }
    assert_no_dead_letters(&h).await;
    assert!(!run.is_finished());
    run.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limit_exceeded_backs_off_then_completes() {
    let h = Harness::start(SCHEMA).await;
    let batching = Batching {
        collections_threshold: 10,
        limit_pause_secs: 1,
        ..Batching::default()
    };
    let run = h.run(h.config(&mappings(), &batching)).await;
    h.sql("INSERT INTO accounts (id, name) VALUES (1, 'Before the limit')")
        .await;
    wait_in_sync(&h).await;

    h.emulator.add_fault(
        FaultSpec::always(FaultKind::RequestLimitExceeded).matching(None, "/services/data"),
    );
    h.sql("INSERT INTO accounts (id, name) SELECT g, 'During ' || g FROM generate_series(2, 4) g")
        .await;
    h.sql("INSERT INTO accounts (id, name) SELECT g, 'Bulk ' || g FROM generate_series(5, 40) g")
        .await;
    h.sql(
        "INSERT INTO contacts SELECT g, g, 'C', 'During ' || g, NULL FROM generate_series(1, 3) g",
    )
    .await;
    h.sql("UPDATE accounts SET rating = 'Hot' WHERE id = 1")
        .await;
    // Let the pipeline hit the limit a few times.
    wait_until(
        "the pipeline runs into the limit a few times",
        DEADLINE,
        || async {
            let fired = h.emulator.state().faults.list()[0].fired;
            check(fired >= 3, || format!("fired {fired} times"))
        },
    )
    .await;
    assert_eq!(h.count("Account"), 1, "nothing got through while limited");
    h.emulator.clear_faults();

    wait_in_sync(&h).await;
    assert_eq!(h.records("Account", true).len(), 40, "no duplicates");
    assert_eq!(h.records("Contact", true).len(), 3, "no duplicates");
    assert_no_dead_letters(&h).await;
    run.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_bulk_job_is_retried_not_lost() {
    let h = Harness::start(SCHEMA).await;
    let batching = Batching {
        collections_threshold: 5,
        ..Batching::default()
    };
    let run = h.run(h.config(&mappings(), &batching)).await;
    h.emulator.add_fault(
        FaultSpec::always(FaultKind::BulkJobFailed {
            message: Some("InternalServerError : emulated".into()),
        })
        .matching(Some("PATCH"), "/services/data")
        .times(1),
    );
    h.sql("INSERT INTO accounts (id, name, rating) SELECT g, 'Row ' || g, 'Hot' FROM generate_series(1, 50) g")
        .await;
    wait_in_sync(&h).await;
    assert_eq!(h.records("Account", true).len(), 50);
    assert_no_dead_letters(&h).await;

    // A failed Bulk delete job: the undeleted rows are retried too.
    h.emulator.add_fault(
        FaultSpec::always(FaultKind::BulkJobFailed { message: None })
            .matching(Some("PATCH"), "/services/data")
            .times(1),
    );
    h.sql("DELETE FROM accounts WHERE id > 20").await;
    wait_in_sync(&h).await;
    assert_no_dead_letters(&h).await;
    run.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_steps_use_collections_and_big_ones_bulk() {
    let h = Harness::start(SCHEMA).await;
    let batching = Batching {
        collections_threshold: 5,
        ..Batching::default()
    };
    let run = h.run(h.config(&mappings(), &batching)).await;
    let bulk_before = h.calls("bulk_ingest");
    let coll_before = h.calls("collections");

    h.sql("INSERT INTO accounts (id, name) VALUES (1, 'Small'), (2, 'Step')")
        .await;
    wait_in_sync(&h).await;
    assert!(
        h.calls("collections") > coll_before,
        "small step via Collections"
    );
    assert_eq!(
        h.calls("bulk_ingest"),
        bulk_before,
        "no Bulk job for a small step"
    );

    let coll_mid = h.calls("collections");
    h.sql("INSERT INTO accounts (id, name) SELECT g, 'Big ' || g FROM generate_series(3, 30) g")
        .await;
    wait_in_sync(&h).await;
    assert!(h.calls("bulk_ingest") > bulk_before, "big step via Bulk");
    assert_eq!(
        h.calls("collections"),
        coll_mid,
        "no Collections call for a big step"
    );
    let uploads = h.bulk_uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].2.len(), 28);
    run.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_copies_existing_rows_then_streams() {
    let h = Harness::start(SCHEMA).await;
    h.sql(
        "INSERT INTO accounts (id, name, employees) SELECT g, 'Existing ' || g, g FROM generate_series(1, 300) g;
         INSERT INTO contacts SELECT g, g, 'First', 'Existing ' || g, NULL FROM generate_series(1, 300) g;",
    )
    .await;
    let cfg = h.config(&mappings(), &Batching::default());
    // A writer keeps changing rows while the pipeline starts (slot, snapshot, backfill).
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let url = h.db_url.clone();
    let writer = tokio::spawn(async move {
        let (pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut i: i64 = 1000;
        while !*stop_rx.borrow_and_update() {
            pg.batch_execute(&format!(
                "INSERT INTO accounts (id, name) VALUES ({i}, 'Concurrent {i}');
                 UPDATE accounts SET employees = employees + 1 WHERE id = {};
                 INSERT INTO contacts VALUES ({i}, {i}, 'Con', 'Current', NULL);",
                i % 300 + 1
            ))
            .await
            .unwrap();
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let run = h.run(cfg).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_tx.send(true).unwrap();
    writer.await.unwrap();
    h.sql("UPDATE accounts SET name = 'Streamed' WHERE id = 7; DELETE FROM contacts WHERE id = 8;")
        .await;
    wait_in_sync(&h).await;
    let accounts: i64 =
        h.pg.query_one("SELECT count(*) FROM accounts", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(
        h.records("Account", true).len() as i64,
        accounts,
        "no doubles"
    );
    assert_no_dead_letters(&h).await;
    run.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_to_a_missing_field_refuses_to_start() {
    let h = Harness::start(SCHEMA).await;
    let mappings = mappings().replace("rating = \"Rating\"", "rating = \"No_Such_Field__c\"");
    let cfg = h.config(&mappings, &Batching::default());
    match h.run_to_failure(cfg).await {
        e @ PipelineError::Config { .. } => {
            let text = e.to_string();
            assert!(text.contains("No_Such_Field__c"), "{text}");
            assert!(
                text.contains("pipelines[0].mappings[0].fields.rating"),
                "names the key: {text}"
            );
        }
        other => panic!("expected a Config error, got {other:?}"),
    }
    assert_eq!(h.count("Account"), 0);
}
