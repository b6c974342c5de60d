//! `pgforce replay` end to end: a real Postgres (TempCluster), the in-process Salesforce
//! emulator, the pipeline running in-process (`pipeline::supervise`) with a journal in a
//! temp dir, and the `pgforce` binary for the replay itself (exit codes and output).
//!
//! - records changed or deleted by hand in Salesforce are restored from a journal range;
//!   records outside the range are left alone; a key deleted in Postgres and re-created by
//!   hand is deleted again; replaying twice changes nothing;
//! - `--dry-run` prints the plan and makes no Salesforce call at all;
//! - an LSN older than the journal keeps is a usage error naming the oldest retained;
//! - a child whose parent is not in Salesforce is reported and exits 1;
//! - the live pipeline's checkpoint and slot do not move.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use pgforce::checkpoint::StateStore;
use pgforce::config::Config;
use pgforce::journal::JournalError;
use pgforce::lsn::Lsn;
use pgforce::pipeline::{supervise, RunOptions};
use pgforce::replay::{self, ReplayError, ReplayRequest};
use pgforce::server::{Health, PipelineState};
use pgforce::testing::TempCluster;
use pgforce_emulator::{config as emu, EmulatorConfig, EmulatorHandle};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_postgres::NoTls;

use crate::support::config::{Batching, ConfigBuilder, Mapping, Secrets};
use crate::support::start;
use crate::support::wait::{check, wait_until, Deadline};

const DB_ENV: &str = "PGFORCE_REPLAY_TEST_DB";
const SECRET_ENV: &str = "PGFORCE_REPLAY_TEST_SF_SECRET";

fn config(emulator_url: &str, journal: &Path, collections_threshold: usize) -> ConfigBuilder {
    ConfigBuilder::new("t", DB_ENV)
        .emulator(emulator_url, SECRET_ENV)
        .journal(journal)
        .batching(Batching {
            max_batch_rows: Some(1000),
            max_batch_age_ms: Some(100),
            collections_threshold: Some(collections_threshold),
        })
        .mapping(
            Mapping::new("accounts", "public.accounts", "Account")
                .set("delete", "\"delete\"")
                .field("name", "Name")
                .field("phone", "Phone"),
        )
        .mapping(
            Mapping::new("contacts", "public.contacts", "Contact")
                .set("delete", "\"delete\"")
                .lookup("account_id", "Account", "Account")
                .field("last_name", "LastName"),
        )
}

struct Env {
    _cluster: TempCluster,
    emulator: EmulatorHandle,
    _dir: tempfile::TempDir,
    config_path: PathBuf,
    config: Config,
    db_url: String,
    pg: tokio_postgres::Client,
    http: reqwest::Client,
    token: String,
}

/// `collections_threshold` 0 sends every step through Bulk API 2.0, 200 through Collections.
async fn setup(collections_threshold: usize) -> Env {
    let cluster = start::postgres().await;
    let emulator = start::emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let builder = config(
        emulator.base_url(),
        &dir.path().join("journal"),
        collections_threshold,
    );
    let config_path = dir.path().join("pgforce.toml");
    builder.write(&config_path);
    let db_url = cluster.url("postgres");
    let secrets = Secrets::new(&[(DB_ENV, &db_url), (SECRET_ENV, emu::DEMO_CLIENT_SECRET)]);
    let config = builder.resolve(&secrets).expect("test config is valid");
    let (pg, conn) = tokio_postgres::connect(&db_url, NoTls).await.unwrap();
    tokio::spawn(conn);
    pg.batch_execute(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, phone text);
         CREATE TABLE contacts (id bigint PRIMARY KEY, account_id bigint REFERENCES accounts(id),
                                last_name text NOT NULL);",
    )
    .await
    .unwrap();
    let token = emulator.issue_default_token().expect("token");
    Env {
        _cluster: cluster,
        emulator,
        _dir: dir,
        config_path,
        config,
        db_url,
        pg,
        http: reqwest::Client::new(),
        token,
    }
}

/// How long replay tests wait for the pipeline (the deadline only bounds a broken run).
const PATIENCE: Deadline = Deadline::secs(90);

/// A field of the live record with this external id (`None`: no such record).
fn sf(env: &Env, object: &str, key: &str, field: &str) -> Option<Value> {
    let store = &env.emulator.state().store;
    let ids = store
        .find_by_external_id(object, "External_Id__c", key)
        .ok()?;
    let rec = store.get(ids.first()?)?;
    Some(rec.get(field).cloned().unwrap_or(Value::Null))
}

/// Change a record by hand, through the REST API (as a Salesforce user would).
async fn patch(env: &Env, object: &str, key: &str, body: Value) {
    let url = format!(
        "{}/services/data/v62.0/sobjects/{object}/External_Id__c/{key}",
        env.emulator.base_url()
    );
    let r = env
        .http
        .patch(url)
        .bearer_auth(&env.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "PATCH {object}/{key}: {:?}",
        r.status()
    );
}

async fn delete(env: &Env, object: &str, key: &str) {
    let url = format!(
        "{}/services/data/v62.0/sobjects/{object}/External_Id__c/{key}",
        env.emulator.base_url()
    );
    let r = env
        .http
        .delete(url)
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "DELETE {object}/{key}: {:?}",
        r.status()
    );
}

async fn stats(env: &Env) -> Value {
    env.http
        .get(format!("{}/__emulator/stats", env.emulator.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn reset_stats(env: &Env) {
    env.http
        .delete(format!("{}/__emulator/stats", env.emulator.base_url()))
        .send()
        .await
        .unwrap();
}

/// Run `pgforce replay` with the test's secrets in its environment.
async fn pgforce_replay(env: &Env, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgforce"));
    cmd.arg("replay")
        .arg("--config")
        .arg(&env.config_path)
        .args(args)
        .env(DB_ENV, &env.db_url)
        .env(SECRET_ENV, emu::DEMO_CLIENT_SECRET)
        .env_remove("RUST_LOG");
    let out = cmd.output().await.unwrap();
    eprintln!(
        "pgforce replay {args:?} -> {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn current_lsn(pg: &tokio_postgres::Client) -> Lsn {
    let text: String = pg
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    text.parse().unwrap()
}

async fn slot_confirmed(pg: &tokio_postgres::Client) -> String {
    pg.query_one(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'pgforce_t'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// Runs the live pipeline through two phases of changes and stops it. Returns the LSN
/// between the phases.
async fn run_live_pipeline(env: &Env) -> Lsn {
    let health = Health::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let runner = tokio::spawn(supervise(
        env.config.pipelines[0].clone(),
        RunOptions {
            health: health.clone(),
            shutdown: stop_rx,
            status_interval: Duration::from_millis(500),
            index: 0,
            journal: Some(env.config.journal.clone()),
            progress: None,
        },
    ));
    wait_until("the pipeline streams", PATIENCE, || async {
        let state = health.snapshot().first().map(|s| s.state);
        check(state == Some(PipelineState::Streaming), || {
            format!("{state:?}")
        })
    })
    .await;

    // Phase 1: before the replayed range.
    env.pg
        .batch_execute(
            "INSERT INTO accounts SELECT g, 'Acct ' || g, '555-000' || g FROM generate_series(1, 5) g;
             INSERT INTO contacts SELECT g, g, 'Last ' || g FROM generate_series(1, 5) g;",
        )
        .await
        .unwrap();
    wait_until("phase 1 in Salesforce", PATIENCE, || async {
        check(sf(env, "Contact", "5", "LastName").is_some(), || {
            "not yet".into()
        })
    })
    .await;
    let between = current_lsn(&env.pg).await;

    // Phase 2: the replayed range.
    env.pg
        .batch_execute(
            "UPDATE accounts SET name = name || ' v2' WHERE id IN (1, 2, 3);
             UPDATE contacts SET last_name = 'Last 1 v2' WHERE id = 1;
             DELETE FROM contacts WHERE id = 5;
             INSERT INTO accounts VALUES (6, 'Acct 6', NULL);
             INSERT INTO contacts VALUES (6, 6, 'Last 6');
             UPDATE accounts SET phone = '555-0003-new' WHERE id = 3;",
        )
        .await
        .unwrap();
    wait_until("phase 2 in Salesforce", PATIENCE, || async {
        let landed = sf(env, "Contact", "5", "LastName").is_none()
            && sf(env, "Contact", "6", "LastName").is_some()
            && sf(env, "Account", "3", "Phone") == Some(json!("555-0003-new"));
        check(landed, || "not yet".into())
    })
    .await;
    stop_tx.send(true).unwrap();
    runner.await.unwrap().expect("the pipeline stops cleanly");
    between
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_restores_hand_changed_records_without_moving_the_live_checkpoint() {
    let env = setup(200).await;
    let from = run_live_pipeline(&env).await;
    let live = StateStore::connect(&env.db_url, "pgforce", "t")
        .await
        .unwrap();
    let checkpoint_before = live.checkpoint().await.unwrap();
    assert!(checkpoint_before.is_some());
    let slot_before = slot_confirmed(&env.pg).await;

    // Someone edits Salesforce by hand.
    patch(&env, "Account", "1", json!({"Name": "hand edit 1"})).await;
    patch(&env, "Account", "4", json!({"Name": "hand edit 4"})).await; // outside the range
    patch(&env, "Account", "6", json!({"Name": "hand edit 6"})).await;
    delete(&env, "Contact", "1").await;
    patch(
        &env,
        "Contact",
        "5",
        json!({"LastName": "zombie", "Account": {"External_Id__c": "5"}}),
    )
    .await; // re-creates a key Postgres deleted
    assert_eq!(sf(&env, "Contact", "1", "LastName"), None);
    assert_eq!(sf(&env, "Contact", "5", "LastName"), Some(json!("zombie")));

    // Dry run: prints the plan, sends nothing (not even a login).
    reset_stats(&env).await;
    let from_arg = from.to_string();
    let out = pgforce_replay(&env, &["--from-lsn", &from_arg, "--dry-run"]).await;
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Account: 4 upsert(s), 0 delete(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Contact: 2 upsert(s), 1 delete(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("Acct 1 v2"), "{stdout}");
    assert!(!stdout.contains("Acct 4"), "phase 1 only: {stdout}");
    let s = stats(&env).await;
    assert_eq!(s["apiCalls"], json!(0), "{s}");
    assert_eq!(s["byFamily"], json!({}), "{s}");
    assert_eq!(sf(&env, "Account", "1", "Name"), Some(json!("hand edit 1")));
    let out = pgforce_replay(&env, &["--from-lsn", &from_arg, "--dry-run", "--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("JSON plan");
    assert_eq!(plan["rows"], json!(7));
    assert_eq!(plan["objects"][0]["object"], json!("Account"));

    // A child whose parent is not in Salesforce is reported, and the run exits 1.
    delete(&env, "Account", "6").await;
    let out = pgforce_replay(&env, &["--from-lsn", &from_arg, "--mapping", "contacts"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PARENT_NOT_IN_SALESFORCE"), "{stdout}");
    assert!(stdout.contains("1 failed"), "{stdout}");

    // The replay.
    let out = pgforce_replay(&env, &["--from-lsn", &from_arg]).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(sf(&env, "Account", "1", "Name"), Some(json!("Acct 1 v2")));
    assert_eq!(sf(&env, "Account", "2", "Name"), Some(json!("Acct 2 v2")));
    assert_eq!(
        sf(&env, "Account", "3", "Phone"),
        Some(json!("555-0003-new"))
    );
    assert_eq!(sf(&env, "Account", "4", "Name"), Some(json!("hand edit 4")));
    assert_eq!(sf(&env, "Account", "6", "Name"), Some(json!("Acct 6")));
    assert_eq!(
        sf(&env, "Contact", "1", "LastName"),
        Some(json!("Last 1 v2"))
    );
    assert_eq!(sf(&env, "Contact", "5", "LastName"), None);
    assert_eq!(sf(&env, "Contact", "6", "LastName"), Some(json!("Last 6")));
    let account6 = env
        .emulator
        .state()
        .store
        .find_by_external_id("Account", "External_Id__c", "6")
        .unwrap()[0]
        .to_string();
    assert_eq!(sf(&env, "Contact", "6", "AccountId"), Some(json!(account6)));

    // Again, as JSON: idempotent (the delete of a gone record counts as done).
    let out = pgforce_replay(&env, &["--from-lsn", &from_arg, "--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["applied"], json!(7), "{report}");
    assert_eq!(report["failures"], json!([]));
    assert_eq!(sf(&env, "Account", "1", "Name"), Some(json!("Acct 1 v2")));
    assert_eq!(sf(&env, "Contact", "5", "LastName"), None);

    // The live pipeline's position did not move.
    assert_eq!(live.checkpoint().await.unwrap(), checkpoint_before);
    assert_eq!(slot_confirmed(&env.pg).await, slot_before);
    // The replay kept its own state, and left nothing parked or dead-lettered.
    let own = StateStore::connect(&env.db_url, "pgforce", &replay::replay_state_name("t"))
        .await
        .unwrap();
    assert_eq!(own.parked_count().await.unwrap(), 0);
    assert_eq!(own.open_dead_letters().await.unwrap(), 0);
    assert_eq!(live.open_dead_letters().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lsn_older_than_the_journal_is_refused_naming_the_oldest() {
    let env = setup(0).await;
    let between = run_live_pipeline(&env).await;
    let p = &env.config.pipelines[0];
    let req = ReplayRequest {
        from: Lsn(1),
        ..Default::default()
    };
    let err = replay::plan(p, &env.config.journal, &req).unwrap_err();
    let ReplayError::Journal(JournalError::TooOld { requested, oldest }) = &err else {
        panic!("expected TooOld, got {err}");
    };
    assert_eq!(*requested, Lsn(1));
    assert!(*oldest > Lsn(1) && *oldest < between, "oldest {oldest}");
    assert!(err.is_usage());
    // The oldest retained LSN itself is fine; applied through the library API and, with
    // this config, Bulk API 2.0 jobs.
    let live = StateStore::connect(&env.db_url, "pgforce", "t")
        .await
        .unwrap();
    let checkpoint_before = live.checkpoint().await.unwrap();
    patch(&env, "Account", "2", json!({"Name": "hand edit 2"})).await;
    delete(&env, "Contact", "3").await;
    let plan = replay::plan(
        p,
        &env.config.journal,
        &ReplayRequest {
            from: *oldest,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(plan.rows(), 12, "6 accounts and 6 contacts, coalesced");
    reset_stats(&env).await;
    let mut steps = Vec::new();
    let report = replay::apply(p, plan, |s| steps.push((s.object.clone(), s.kind, s.rows)))
        .await
        .unwrap();
    assert_eq!(report.applied, 12);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert_eq!(steps[0].0, "Account", "parents first: {steps:?}");
    assert!(
        stats(&env).await["byFamily"]["bulk_ingest"].as_u64() > Some(0),
        "went through Bulk API 2.0"
    );
    assert_eq!(sf(&env, "Account", "2", "Name"), Some(json!("Acct 2 v2")));
    assert_eq!(sf(&env, "Contact", "3", "LastName"), Some(json!("Last 3")));
    assert_eq!(sf(&env, "Contact", "5", "LastName"), None);
    assert_eq!(live.checkpoint().await.unwrap(), checkpoint_before);

    let out = pgforce_replay(&env, &["--from-lsn", "0/1"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("older than the oldest retained"),
        "{stderr}"
    );
    assert!(stderr.contains(&oldest.to_string()), "{stderr}");
    // Nothing of the pipeline was touched: the check happens before any connection.
    let out = pgforce_replay(&env, &["--from-lsn", "0/1", "--mapping", "nope"]).await;
    assert_eq!(out.status.code(), Some(2));
}
