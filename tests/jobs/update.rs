//! The `update` target: only rows whose values changed since the last acknowledged run are
//! sent; Collections when few, Bulk when many; per-row rejections are recorded with
//! Salesforce's code and resent; a run that failed as a whole resends everything.

use pgforce::jobs::{JobError, JobRunOptions};
use pgforce_emulator::faults::{FaultKind, FaultSpec};

use super::*;
use crate::support::pipeline::{Batching, Harness};

const SCHEMA: &str = "
CREATE TABLE usage (account_id bigint PRIMARY KEY, seats int NOT NULL, logins int NOT NULL);
INSERT INTO usage SELECT i, i % 50, i * 3 FROM generate_series(1, 1000) i;
CREATE SEQUENCE ticks;
";

fn job(bulk_threshold: usize) -> String {
    format!(
        r#"name = "usage"
trigger = {{ type = "interval", seconds = 3600 }}
query = "SELECT account_id::text AS account_id, seats, logins FROM usage"
target = {{ type = "update", object = "Account", match = {{ column = "account_id", field = "External_Id__c" }}, fields = {{ seats = "Seats__c", logins = "Logins_30d__c" }}, bulk_threshold = {bulk_threshold} }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_sends_all_then_nothing_then_only_what_changed() {
    let h = Harness::start(SCHEMA).await;
    seed_accounts(&h, 1000);
    let r = runner(&config(&h, &job(5000))).await;

    let (first, calls) = calls_during(&h, run(&r, "usage")).await;
    assert_eq!(
        (first.rows_seen, first.sent),
        (1000, 1000),
        "{}",
        first.render()
    );
    assert_eq!(calls, 5, "1000 rows in Collections calls of 200");
    let rec = h.record("Account", "7").unwrap();
    assert_eq!(
        (
            rec["Seats__c"].to_string(),
            rec["Logins_30d__c"].to_string()
        ),
        ("7".into(), "21".into())
    );

    let (second, calls) = calls_during(&h, run(&r, "usage")).await;
    assert_eq!((second.sent, second.count("unchanged")), (0, 1000));
    assert_eq!(calls, 0, "no change, no API call");

    h.pg.batch_execute("UPDATE usage SET logins = logins + 1 WHERE account_id % 100 = 0")
        .await
        .unwrap();
    let (third, calls) = calls_during(&h, run(&r, "usage")).await;
    assert_eq!(
        (third.count("changed"), third.sent),
        (10, 10),
        "1% changed, 1% sent"
    );
    assert_eq!(calls, 1);
    assert_eq!(
        h.record("Account", "100").unwrap()["Logins_30d__c"].to_string(),
        "301"
    );
    assert_eq!(run_states(&h, "usage").await, ["done", "done", "done"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_run_goes_through_one_bulk_job() {
    let h = Harness::start(SCHEMA).await;
    seed_accounts(&h, 1000);
    let r = runner(&config(&h, &job(500))).await;
    let report = run(&r, "usage").await;
    assert_eq!(report.sent, 1000);
    let uploads = h.bulk_uploads();
    assert_eq!(uploads.len(), 1, "one Bulk job");
    assert_eq!(uploads[0].2.len(), 1000);
    assert_eq!(h.calls("collections"), 0);
    // Unchanged: no Bulk job.
    assert_eq!(run(&r, "usage").await.sent, 0);
    assert_eq!(h.bulk_uploads().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_rows_are_recorded_with_their_code_and_resent() {
    let h = Harness::start(SCHEMA).await;
    // Accounts 1..=990 exist; 991..=1000 do not, and an upsert cannot create them
    // (no Name): REQUIRED_FIELD_MISSING.
    seed_accounts(&h, 990);
    let r = runner(&config(&h, &job(5000))).await;
    let first = run(&r, "usage").await;
    assert_eq!((first.sent, first.errors.len()), (990, 10));
    let errors = job_errors(&h).await;
    assert_eq!(errors.len(), 10);
    assert!(
        errors
            .iter()
            .all(|(k, c)| k.parse::<i64>().unwrap() > 990 && c == "REQUIRED_FIELD_MISSING"),
        "{errors:?}"
    );
    // The rejected rows (only they) are sent again.
    let second = run(&r, "usage").await;
    assert_eq!(
        (second.count("changed"), second.sent, second.errors.len()),
        (10, 0, 10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_not_recorded_as_done_and_the_next_resends() {
    let h = Harness::start(SCHEMA).await;
    seed_accounts(&h, 1000);
    let r = runner(&config(&h, &job(5000))).await;
    // Every Collections call fails (503, retried by the client, then given up).
    h.emulator.add_fault(
        FaultSpec::always(FaultKind::HttpStatus { status: 503 })
            .matching(Some("PATCH"), "/services/data/v62.0/composite/sobjects"),
    );
    let err = r.run("usage", JobRunOptions::default()).await.unwrap_err();
    assert!(matches!(err, JobError::Salesforce { .. }), "{err}");
    assert!(err.to_string().starts_with("job usage:"), "{err}");
    h.emulator.clear_faults();
    let next = run(&r, "usage").await;
    assert_eq!(next.sent, 1000, "nothing was recorded as sent");
    assert_eq!(run_states(&h, "usage").await, ["failed", "done"]);
}

/// The org's API limit reached mid-run (`REQUEST_LIMIT_EXCEEDED`): the run pauses (the
/// shared governor, `salesforce.limit_exceeded_pause_secs`), then goes on and sends every
/// row once; the next run has nothing to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_limit_pauses_the_run_which_then_sends_every_row_once() {
    let h = Harness::start(SCHEMA).await;
    seed_accounts(&h, 1000);
    let batching = Batching {
        limit_pause_secs: 1,
        ..Batching::default()
    };
    let cfg = h
        .builder(&batching)
        .job_toml(&job(5000))
        .pipeline(&h.secrets());
    let r = runner(&cfg.expect("the job config parses")).await;
    h.emulator.add_fault(
        FaultSpec::always(FaultKind::RequestLimitExceeded)
            .matching(Some("PATCH"), "/services/data/v62.0/composite/sobjects")
            .times(1),
    );
    let report = run(&r, "usage").await;
    assert_eq!(report.sent, 1000, "every row, after the pause");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(run(&r, "usage").await.sent, 0, "nothing twice");
    assert_eq!(run_states(&h, "usage").await, ["done", "done"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_counts_and_samples_without_sending() {
    let h = Harness::start(SCHEMA).await;
    seed_accounts(&h, 1000);
    let r = runner(&config(&h, &job(5000))).await;
    let opts = JobRunOptions {
        dry_run: true,
        force: false,
    };
    let (report, calls) = calls_during(&h, r.run("usage", opts)).await;
    let report = report.unwrap();
    assert_eq!((report.count("changed"), report.sent, calls), (1000, 0, 0));
    assert_eq!(report.sample.len(), pgforce::jobs::runner::SAMPLE);
    let text = report.render();
    assert!(
        text.contains("would send") && text.contains("Seats__c"),
        "{text}"
    );
    // Nothing recorded: a real run sends everything.
    assert_eq!(run(&r, "usage").await.sent, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_error_names_the_job_and_postgres_reason() {
    let h = Harness::start(SCHEMA).await;
    let bad = job(5000).replace("FROM usage", "FROM no_such_table");
    let r = runner(&config(&h, &bad)).await;
    let err = r.run("usage", JobRunOptions::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("job usage: the query failed")
            && text.contains("no_such_table")
            && text.contains("42P01"),
        "{text}"
    );
    let slow = job(5000)
        .replace("FROM usage", "FROM usage, pg_sleep(5)")
        .replace("query =", "statement_timeout_ms = 100\nquery =");
    let r = runner(&config(&h, &slow)).await;
    let text = r
        .run("usage", JobRunOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("statement_timeout_ms = 100"), "{text}");
    assert_eq!(run_states(&h, "usage").await, ["failed", "failed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_runs_read_only() {
    let h = Harness::start(SCHEMA).await;
    let writing = job(5000).replace(
        "SELECT account_id::text AS account_id, seats, logins FROM usage",
        "SELECT nextval('ticks')::text AS account_id, seats, logins FROM usage",
    );
    let r = runner(&config(&h, &writing)).await;
    let text = r
        .run("usage", JobRunOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("read-only transaction"), "{text}");
    let called: bool =
        h.pg.query_one("SELECT is_called FROM ticks", &[])
            .await
            .unwrap()
            .get(0);
    assert!(!called, "the sequence did not move");
}
