//! Regression tests for the silent-loss defects of the reliability issue: each reproduces a
//! workload that used to lose (or wrongly resolve) a change while the checkpoint moved past
//! it. A real Postgres, the emulator over real HTTP, the pipeline in-process. Defect 3
//! (parked children: a resumed `done` step, grandchildren, a second lookup) is reproduced by
//! the torture harness's `grandchildren`, `two_lookups` and `kill` vocabulary (tests/torture).

use crate::support::config::Mapping;
use crate::support::pipeline::*;
use pgforce_emulator::{FaultKind, FaultSpec};
use serde_json::Value;

async fn wait_in_sync(h: &Harness) {
    wait_until(
        "accounts and contacts match Salesforce",
        DEADLINE,
        || async {
            h.compare("accounts", "Account", ACCOUNT_FIELDS).await?;
            h.compare("contacts", "Contact", CONTACT_FIELDS).await
        },
    )
    .await;
}

fn bulk_always() -> Batching {
    Batching {
        collections_threshold: 1,
        ..Batching::default()
    }
}

fn sf_id(h: &Harness, object: &str, key: &str) -> Option<String> {
    h.record(object, key)
        .and_then(|r| r.get("Id").and_then(Value::as_str).map(str::to_string))
}

/// Defect 14: `#N/A` is data, not NULL; Bulk CSV cannot carry it, Collections can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn na_text_reaches_salesforce_and_nothing_is_dead_lettered() {
    let h = Harness::start(SCHEMA).await;
    let run = h.run(h.config(&mappings(), &bulk_always())).await;
    h.sql(
        "INSERT INTO accounts (id, name, description) VALUES
           (1, '#N/A', 'a'), (2, 'Plain', '#N/A'), (3, 'Other', NULL);
         INSERT INTO contacts (id, account_id, last_name) VALUES (10, 1, '#N/A'), (11, 2, 'x');",
    )
    .await;
    wait_in_sync(&h).await;
    assert_eq!(
        h.record("Account", "1").unwrap()["Name"],
        Value::String("#N/A".into())
    );
    let open = h.dead_letters("open").await;
    assert!(open.is_empty(), "{open:#?}");
    run.stop().await.expect("clean stop");
}

/// Defect 13, decided: DELETE then INSERT of one key in one transaction keeps the record
/// (same Id, new values), because recreating it would lose what Salesforce hangs off it
/// (history, children it cascade-deletes). Documented in `batch::coalesce`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_reinsert_in_one_transaction_keeps_the_record() {
    let h = Harness::start(SCHEMA).await;
    let run = h.run(h.config(&mappings(), &Batching::default())).await;
    h.sql("INSERT INTO accounts (id, name, rating) VALUES (1, 'Old', 'Hot')")
        .await;
    wait_in_sync(&h).await;
    let old_id = sf_id(&h, "Account", "1").unwrap();
    h.sql(
        "BEGIN; DELETE FROM accounts WHERE id = 1;
         INSERT INTO accounts (id, name) VALUES (1, 'New'); COMMIT;",
    )
    .await;
    wait_in_sync(&h).await;
    assert_eq!(sf_id(&h, "Account", "1"), Some(old_id), "the same record");
    assert_eq!(h.records("Account", true).len(), 1, "nothing deleted");
    run.stop().await.expect("clean stop");
}

/// Defect 2: after the slot is dropped (what the slot-invalidated error tells operators to
/// do), the new slot's snapshot is backfilled again, so rows written while there was no
/// slot reach Salesforce, and a record whose row was deleted meanwhile is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_slot_backfills_again() {
    let h = Harness::start(SCHEMA).await;
    h.sql("INSERT INTO accounts (id, name) VALUES (1, 'Before'), (3, 'Deleted while no slot')")
        .await;
    let run = h.run(h.config(&mappings(), &Batching::default())).await;
    wait_in_sync(&h).await;
    run.stop().await.expect("clean stop");
    h.sql("SELECT pg_drop_replication_slot('pgforce_e2e')")
        .await;
    h.sql(
        "INSERT INTO accounts (id, name) VALUES (2, 'While no slot');
         UPDATE accounts SET name = 'Changed while no slot' WHERE id = 1;
         DELETE FROM accounts WHERE id = 3;",
    )
    .await;
    let run = h.run(h.config(&mappings(), &Batching::default())).await;
    wait_in_sync(&h).await;
    run.stop().await.expect("clean stop");
}

/// Defects 4 and 15: a mapping error of a later change stays open although an earlier
/// good change of the same record landed in the same epoch; it is keyed by the record
/// (object and external id), so the next good change resolves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_mapping_error_is_not_resolved_by_an_older_change() {
    let h = Harness::start(SCHEMA).await;
    let run = h.run(h.config(&mappings(), &Batching::default())).await;
    h.sql("INSERT INTO accounts (id, name) VALUES (1, 'Acme')")
        .await;
    wait_in_sync(&h).await;
    // One transaction: A (good), then B (employees beyond numeric(8,0): a mapping error).
    h.sql(
        "BEGIN; UPDATE accounts SET name = 'Acme A' WHERE id = 1;
         UPDATE accounts SET employees = 1000000000 WHERE id = 1; COMMIT;",
    )
    .await;
    wait_until("A landed", DEADLINE, || async {
        match h.record("Account", "1") {
            Some(r) if r["Name"] == Value::String("Acme A".into()) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // A later, unrelated commit flows through, so A's epoch is certainly settled.
    h.sql("INSERT INTO accounts (id, name) VALUES (2, 'Later')")
        .await;
    wait_until("the later row landed", DEADLINE, || async {
        h.record("Account", "2").map(|_| ()).ok_or("not yet".into())
    })
    .await;
    let open = h.dead_letters("open").await;
    assert_eq!(open.len(), 1, "B's dead letter stays open: {open:#?}");
    assert_eq!(open[0].object, "Account");
    assert_eq!(open[0].external_id, "1");
    assert_eq!(open[0].error_code, "PGFORCE_MAPPING");
    // The fix in Postgres resolves it.
    h.sql("UPDATE accounts SET employees = 5 WHERE id = 1")
        .await;
    wait_until("the dead letter is resolved", DEADLINE, || async {
        let open = h.dead_letters("open").await;
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("{open:#?}"))
        }
    })
    .await;
    wait_in_sync(&h).await;
    run.stop().await.expect("clean stop");
}

/// Defect 1: after a failure between a backfill chunk's upload and its settling, the chunk
/// is re-read in a fresh snapshot; a row deleted meanwhile shifts the chunk by one key. The
/// recorded job holds other keys than the new chunk, so it must not be taken as the chunk's
/// result: every row of the new chunk reaches Salesforce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_chunk_reread_after_a_failure_sends_its_own_keys() {
    let h = Harness::start(SCHEMA).await;
    // Two chunks of the default 1,000 rows (plus some).
    h.sql("INSERT INTO accounts (id, name) SELECT g, 'Row ' || g FROM generate_series(1, 1200) g")
        .await;
    // Every job-status poll fails until the fault is cleared: the first chunk's job is
    // uploaded and recorded, and the flush fails before its results are taken.
    let status = FaultSpec::always(FaultKind::HttpStatus { status: 500 })
        .matching(Some("GET"), "/services/data/v62.0/jobs/ingest/");
    h.emulator.add_fault(status);
    let run = h.spawn(h.config(&mappings(), &Batching::default()));
    wait_until("the first chunk is uploaded", DEADLINE, || async {
        if h.bulk_uploads().is_empty() {
            Err("no upload yet".into())
        } else {
            Ok(())
        }
    })
    .await;
    // Row 1 goes: the chunk re-read after the restart is 2..=1001, as many rows as before.
    h.sql("DELETE FROM accounts WHERE id = 1").await;
    h.emulator.clear_faults();
    wait_until("accounts match Salesforce", DEADLINE, || async {
        h.compare("accounts", "Account", ACCOUNT_FIELDS).await
    })
    .await;
    run.stop().await.expect("clean stop");
}

fn contact_letter(key: &str, last_name: &str) -> pgforce::checkpoint::DeadLetter {
    pgforce::checkpoint::DeadLetter {
        mapping: "contacts".into(),
        object: "Contact".into(),
        external_id: key.into(),
        operation: "upsert".into(),
        lsn: pgforce::lsn::Lsn(1),
        error_code: "FIELD_CUSTOM_VALIDATION_EXCEPTION".into(),
        message: "rejected by a validation rule".into(),
        fields: vec![],
        row: serde_json::json!({"External_Id__c": key, "LastName": last_name}),
    }
}

async fn wait_contact_name(h: &Harness, key: &str, name: &str) {
    wait_until("the contact's last name", DEADLINE, || async {
        match h.record("Contact", key) {
            Some(r) if r["LastName"] == Value::String(name.into()) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// Defect 9: a change of a record whose older version is dead-lettered waits parked for
/// its parent and then lands through the parked retry. That landing is a later change
/// like any other: it resolves the older dead letter, so `errors retry` cannot send the
/// old row back over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_change_that_lands_resolves_the_older_dead_letter() {
    let h = Harness::start(SCHEMA).await;
    let run = h.run(h.config(&mappings(), &Batching::default())).await;
    let state = h.state().await;
    state
        .record_dead_letters(&[contact_letter("10", "Old v1")])
        .await
        .unwrap();
    // v2 of contact 10 names account 1, which is not in Salesforce yet: it is parked.
    h.sql("INSERT INTO contacts (id, account_id, last_name) VALUES (10, 1, 'New v2')")
        .await;
    wait_until("contact 10 is parked", DEADLINE, || async {
        let row =
            h.pg.query_one("SELECT count(*) FROM pgforce.parked", &[])
                .await
                .map_err(|e| e.to_string())?;
        match row.get::<_, i64>(0) {
            0 => Err("nothing parked yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;
    h.sql("INSERT INTO accounts (id, name) VALUES (1, 'Parent')")
        .await;
    wait_contact_name(&h, "10", "New v2").await;
    wait_until("the older dead letter is resolved", DEADLINE, || async {
        let open = h.dead_letters("open").await;
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("{open:#?}"))
        }
    })
    .await;
    // Asking for a retry now finds nothing to send: v2 stays.
    assert_eq!(state.request_dead_letter_retry(&[]).await.unwrap(), 0);
    wait_in_sync(&h).await;
    run.stop().await.expect("clean stop");
}

/// Defect 9: `errors retry` while the pipeline runs does not race it: the letters are
/// handed over, and the pipeline sends them between its epochs and resolves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_requested_while_running_is_done_by_the_pipeline() {
    let h = Harness::start(SCHEMA).await;
    let run = h.run(h.config(&mappings(), &Batching::default())).await;
    let state = h.state().await;
    assert!(
        !state.try_lock_pipeline().await.unwrap(),
        "the running pipeline holds its lock, so the CLI hands the retry over"
    );
    h.sql("INSERT INTO accounts (id, name) VALUES (1, 'Parent')")
        .await;
    state
        .record_dead_letters(&[contact_letter("11", "From the retry")])
        .await
        .unwrap();
    assert_eq!(state.request_dead_letter_retry(&[]).await.unwrap(), 1);
    wait_contact_name(&h, "11", "From the retry").await;
    wait_until("the retried dead letter is resolved", DEADLINE, || async {
        let open = h.dead_letters("open").await;
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("{open:#?}"))
        }
    })
    .await;
    run.stop().await.expect("clean stop");
}

/// Accounts with a filter (`rating != 'Cold'`) and a soft-delete policy that marks the
/// record's Description, under the default replica identity (deletes carry only the key,
/// so the filter cannot be checked on them).
fn soft_delete_accounts() -> String {
    Mapping::new("accounts", "public.accounts", "Account")
        .field("name", "Name")
        .field("rating", "Rating")
        .set(
            "filter",
            r#"[{ column = "rating", op = "!=", value = "Cold" }]"#,
        )
        .set(
            "delete",
            r#"{ soft = { field = "Description", value = "deleted in Postgres" } }"#,
        )
        .toml()
}

/// Defect 11: a soft delete only updates a record that exists. Deleting a row that never
/// passed the filter (so never reached Salesforce) must not create a stub record holding
/// only the external id and the soft-delete field; a synced row's record is marked. (The
/// emulator's Account requires Name, so the old code's stub attempt ended as a dead letter;
/// on an object without required fields it creates the stub.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_delete_of_a_never_synced_row_creates_no_stub() {
    for batching in [Batching::default(), bulk_always()] {
        let h = Harness::start(SCHEMA).await;
        let run = h.run(h.config(&soft_delete_accounts(), &batching)).await;
        h.sql(
            "INSERT INTO accounts (id, name, rating) VALUES
               (1, 'Synced', 'Hot'), (2, 'Filtered out', 'Cold'), (3, 'Also out', 'Cold')",
        )
        .await;
        wait_until("account 1 synced", DEADLINE, || async {
            h.record("Account", "1")
                .map(|_| ())
                .ok_or_else(|| "no record 1".to_string())
        })
        .await;
        h.sql("DELETE FROM accounts WHERE id IN (1, 2, 3)").await;
        h.sql("INSERT INTO accounts (id, name, rating) VALUES (4, 'Marker', 'Hot')")
            .await;
        wait_until("the deletes and the marker flushed", DEADLINE, || async {
            let marked = h.record("Account", "1").and_then(|r| {
                r.get("Description")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            match (marked.as_deref(), h.record("Account", "4")) {
                (Some("deleted in Postgres"), Some(_)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert_eq!(h.record("Account", "2"), None, "a stub record was created");
        assert_eq!(h.record("Account", "3"), None, "a stub record was created");
        assert_eq!(h.records("Account", true).len(), 2, "records 1 and 4 only");
        let open = h.dead_letters("open").await;
        assert!(open.is_empty(), "{open:#?}");
        run.stop().await.expect("clean stop");
    }
}

/// The session holding the pipeline's advisory lock (the active pipeline's state store).
const LOCK_HOLDER: &str = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
    AND objsubid = 1
    AND ((classid::int8 << 32) | objid::int8) = hashtextextended('pgforce:pipeline:e2e', 0)";

/// Defect 12: a pipeline whose state-store session died (so a standby may own the
/// pipeline) writes nothing more to Salesforce. Its Bulk job fails, so the job's rows go
/// again through Collections after a backoff, with no state-store query in between (slow
/// job polls keep the step in flight); its state session is killed while the step waits,
/// and the retry must not be sent. The standby then takes over and syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_that_lost_its_lock_writes_nothing_more() {
    let h = Harness::start(SCHEMA).await;
    let cfg = h.config(&mappings(), &bulk_always());
    let a = h.run(cfg.clone()).await;
    let b = h.spawn(cfg);
    wait_until("the second pipeline stands by", DEADLINE, || async {
        match b.health.get(PIPELINE).map(|s| s.state) {
            Some(pgforce::server::PipelineState::Standby) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let jobs = "/services/data/v62.0/jobs/ingest/";
    h.emulator.add_fault(
        FaultSpec::always(FaultKind::BulkJobFailed { message: None })
            .matching(Some("PATCH"), jobs)
            .times(1),
    );
    h.emulator
        .add_fault(FaultSpec::always(FaultKind::Latency { ms: 1500 }).matching(Some("GET"), jobs));
    h.sql("INSERT INTO accounts (id, name) VALUES (1, 'v1'), (2, 'v1')")
        .await;
    wait_until("the Bulk step is uploaded", DEADLINE, || async {
        let rows =
            h.pg.query(
                "SELECT 1 FROM pgforce.inflight WHERE path = 'bulk' AND state = 'uploaded'",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        check(!rows.is_empty(), || "no uploaded Bulk step yet".into())
    })
    .await;
    let before = h.calls("collections");
    let killed =
        h.pg.query(
            &format!("SELECT pg_terminate_backend(pid) FROM ({LOCK_HOLDER}) l"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 1, "one session holds the lock");
    let error = wait_until("the first pipeline stops", DEADLINE, || async {
        a.health
            .get(PIPELINE)
            .and_then(|s| s.last_error)
            .ok_or_else(|| "still running".to_string())
    })
    .await;
    assert_eq!(
        h.calls("collections"),
        before,
        "the pipeline wrote after it lost its lock ({error})"
    );
    assert!(error.contains("fenced"), "{error}");
    h.emulator.clear_faults();
    h.sql("UPDATE accounts SET name = 'v2' WHERE id = 1").await;
    wait_in_sync(&h).await;
    assert!(h.dead_letters("open").await.is_empty());
    a.stop().await.expect("clean stop");
    b.stop().await.expect("clean stop");
}

/// Defect 12, the check itself: a state store passes the fence only while its session
/// holds the pipeline's lock; never taken, or the session gone, it is fenced (transient:
/// the supervisor restarts the pipeline after a backoff, as a standby).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fence_passes_only_while_the_session_holds_the_lock() {
    use pgforce::error_class::{Classify, ErrorClass};
    let h = Harness::start(SCHEMA).await;
    let state = h.state().await;
    let fenced = pgforce::sink::fence(&*state).await.unwrap_err();
    assert!(fenced.to_string().contains("no longer holds"), "{fenced}");
    assert_eq!(fenced.class(), ErrorClass::Transient);
    assert!(state.try_lock_pipeline().await.unwrap());
    pgforce::sink::fence(&*state).await.expect("holds the lock");
    h.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM ({LOCK_HOLDER}) l"
    ))
    .await;
    let fenced = pgforce::sink::fence(&*state).await.unwrap_err();
    assert!(fenced.to_string().contains("session is gone"), "{fenced}");
    let successor = h.state().await;
    assert!(successor.try_lock_pipeline().await.unwrap());
    assert!(pgforce::sink::fence(&*state).await.is_err());
    pgforce::sink::fence(&*successor)
        .await
        .expect("the successor holds it");
}

/// A flusher on `state` (which may not hold the lock) writing through the emulator.
async fn flusher_on(
    h: &Harness,
    state: std::sync::Arc<pgforce::checkpoint::StateStore>,
) -> pgforce::sink::Flusher<pgforce::sink::SalesforceDestination> {
    use pgforce::sink::{Flusher, FlusherOptions, SalesforceDestination, MAX_STEP_BYTES};
    let client = pgforce::pipeline::salesforce_client(&h.config(&mappings(), &bulk_always()))
        .expect("a client for the emulator");
    client.login().await.expect("log in to the emulator");
    Flusher::new(
        SalesforceDestination::new(client),
        state,
        FlusherOptions {
            pipeline: PIPELINE.into(),
            collections_threshold: 1,
            max_rows: 100,
            max_step_bytes: MAX_STEP_BYTES,
            object_order: vec!["Account".into()],
            transient_retries: 0,
            max_bulk_jobs: 1,
            paired_objects: Vec::new(),
        },
    )
}

/// An epoch of one Account upsert, ending at `lsn`.
fn one_upsert(lsn: u64) -> pgforce::batch::Epoch<pgforce::pipeline::Pending> {
    use pgforce::mapping::{FieldName, FieldValue, MappedChange, MappedOp};
    let mut epoch = pgforce::batch::Epoch::new();
    let change = MappedChange {
        mapping: "accounts".into(),
        object: "Account".into(),
        external_id_field: "External_Id__c".into(),
        external_id: "1".into(),
        op: MappedOp::Upsert,
        fields: vec![(
            FieldName::Field("Name".into()),
            FieldValue::Text("x".into()),
        )],
        parents: Vec::new(),
        write_back: None,
        existing_only: false,
        match_by: false,
    };
    epoch.push(pgforce::pipeline::Pending::new(
        change,
        pgforce::lsn::Lsn(lsn),
    ));
    epoch.commit(pgforce::lsn::Lsn(lsn), chrono::Utc::now());
    epoch
}

/// Defect 12, the Bulk job calls: a process without the lock neither creates a Bulk job
/// nor aborts one a previous owner left open (the owner may be using it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_without_the_lock_neither_creates_nor_aborts_a_bulk_job() {
    use pgforce::batch::StepKind;
    use pgforce::checkpoint::{EpochPlan, RecordedStep, StepPath, StepPlan, StepState};
    use pgforce::salesforce::{IngestJobRequest, JobState};
    let h = Harness::start(SCHEMA).await;
    let flusher = flusher_on(&h, h.state().await).await;
    let jobs = || {
        h.emulator
            .state()
            .ext::<pgforce_emulator::bulk::BulkState>()
            .ingest
            .len()
    };
    let err = flusher.flush(&mut one_upsert(10), None).await.unwrap_err();
    assert!(err.to_string().contains("fenced"), "{err}");
    assert_eq!(jobs(), 0, "a Bulk job was created without the lock");

    // A job a previous owner recorded and left Open, in a plan that differs from the
    // rebuilt epoch: it is left alone.
    let client = flusher.destination().client();
    let open = client
        .create_ingest_job(&IngestJobRequest::upsert("Account", "External_Id__c"))
        .await
        .unwrap()
        .id;
    let resume = EpochPlan {
        end_lsn: pgforce::lsn::Lsn(20),
        steps: vec![RecordedStep {
            plan: StepPlan {
                step: 0,
                object: "Account".into(),
                key_field: "External_Id__c".into(),
                operation: StepKind::Upsert,
                path: StepPath::Bulk,
                rows: 99,
                keys_digest: "another plan".into(),
            },
            job_id: Some(open.clone()),
            state: StepState::JobCreated,
        }],
    };
    let err = flusher
        .flush(&mut one_upsert(20), Some(resume))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("fenced"), "{err}");
    assert_eq!(client.job_info(&open).await.unwrap().state, JobState::Open);
    assert_eq!(jobs(), 1);
}

/// Two changes of one contact in one epoch, the later one clearing its lookup: the
/// record's lookup is cleared (the older change's parent reference does not survive the
/// coalescing under its other column name), and it waits on no parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_cleared_by_a_later_change_in_the_epoch_is_cleared() {
    let h = Harness::start(SCHEMA).await;
    let run = h.run(h.config(&mappings(), &Batching::default())).await;
    h.sql(
        "INSERT INTO accounts (id, name) VALUES (1, 'Parent');
         INSERT INTO contacts (id, last_name) VALUES (10, 'Child');",
    )
    .await;
    wait_in_sync(&h).await;
    h.sql(
        "BEGIN; UPDATE contacts SET account_id = 1 WHERE id = 10;
         UPDATE contacts SET account_id = NULL, last_name = 'Orphaned' WHERE id = 10; COMMIT;",
    )
    .await;
    wait_in_sync(&h).await;
    run.stop().await.expect("clean stop");
}

/// Defect 14, second half: a child waiting for a parent that Salesforce rejected is shown as
/// such (on the parent's dead letter in `errors list`, and in the status's parked groups),
/// and lands once the parent is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_of_a_dead_lettered_parent_are_shown_and_land_once_it_is_fixed() {
    let h = Harness::start(SCHEMA).await;
    let run = h.run(h.config(&mappings(), &Batching::default())).await;
    let long_name = "N".repeat(300);
    h.sql(&format!(
        "INSERT INTO accounts (id, name) VALUES (1, '{long_name}');
         INSERT INTO contacts (id, account_id, last_name) VALUES (10, 1, 'Waits');"
    ))
    .await;
    let state = h.state().await;
    wait_until(
        "the parent is dead-lettered, its child parked",
        DEADLINE,
        || async {
            let open = h.dead_letters("open").await;
            let stuck = state.stuck().await.map_err(|e| e.to_string())?;
            check(
                open.len() == 1 && open[0].children_waiting == 1 && stuck.parked_total() == 1,
                || format!("open {open:?}, stuck {stuck:?}"),
            )
        },
    )
    .await;
    let stuck = state.stuck().await.unwrap();
    assert_eq!(stuck.parked[0].waiting_for, "Account");
    assert_eq!(stuck.parked[0].parent_dead_lettered, 1);
    assert_eq!(
        h.dead_letters("open").await[0].error_code,
        "STRING_TOO_LONG"
    );
    h.sql("UPDATE accounts SET name = 'Fixed' WHERE id = 1")
        .await;
    wait_until("the parent and its child land", DEADLINE, || async {
        h.compare("accounts", "Account", ACCOUNT_FIELDS).await?;
        h.compare("contacts", "Contact", CONTACT_FIELDS).await?;
        let parked = state.parked_count().await.map_err(|e| e.to_string())?;
        check(parked == 0, || format!("parked {parked}"))
    })
    .await;
    assert!(h.dead_letters("open").await.is_empty());
    run.stop().await.expect("clean stop");
}
