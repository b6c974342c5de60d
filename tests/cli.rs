//! The command line as a script sees it: subcommands, exit codes, and messages for bad
//! input, run as the real binary against a throwaway Postgres.

use std::process::Command;

use pgforce::checkpoint::{DeadLetter, StateStore};
use pgforce::lsn::Lsn;
use pgforce::testing::TempCluster;

use crate::support::config::{Auth, ConfigBuilder, Mapping};
use crate::support::start;

fn pgforce(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pgforce"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run pgforce")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn help_lists_the_built_subcommands() {
    let out = pgforce(&["--help"]);
    assert!(out.status.success());
    let help = text(&out);
    for cmd in [
        "run", "validate", "status", "errors", "replay", "emulator", "demo",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from --help:\n{help}");
    }
}

#[test]
fn a_missing_config_file_exits_2_and_names_the_file() {
    let out = pgforce(&["run", "--config", "/nonexistent/pgforce.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("/nonexistent/pgforce.toml"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_bad_key_exits_2_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[pipelines]]\nname = \"p\"\npublication = \"p\"\nslot = \"p\"\nsource = { database_url = \"env:X\" }\nbogus_key = 1\n",
    )
    .unwrap();
    let out = pgforce(&["validate", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("bogus_key"), "{}", text(&out));
}

fn config_for(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("pgforce.toml");
    ConfigBuilder::new("cli", "PGFORCE_TEST_DB")
        .salesforce(
            Some("http://127.0.0.1:9"),
            Some("http://127.0.0.1:9"),
            Auth::ClientCredentials {
                client_id: "x".into(),
                client_secret: "env:PGFORCE_TEST_SECRET".into(),
            },
        )
        .mapping(Mapping::new("accounts", "public.accounts", "Account").field("name", "Name"))
        .write(&path);
    path
}

#[tokio::test]
async fn errors_list_discard_and_status_read_the_state_schema() {
    let cluster = TempCluster::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(dir.path());
    let state = StateStore::connect(&cluster.conn_string("postgres"), "pgforce", "cli")
        .await
        .unwrap();
    state
        .record_dead_letters(&[DeadLetter {
            mapping: "accounts".into(),
            object: "Account".into(),
            external_id: "42".into(),
            operation: "upsert".into(),
            lsn: Lsn(0x1000),
            error_code: "STRING_TOO_LONG".into(),
            message: "Account Name: data value too large".into(),
            fields: vec!["Name".into()],
            row: serde_json::json!({"Name": "x"}),
        }])
        .await
        .unwrap();
    state.store_checkpoint(Lsn(0x2000)).await.unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pgforce"))
            .args(args)
            .env("PGFORCE_TEST_DB", cluster.url("postgres"))
            .env("PGFORCE_TEST_SECRET", "s3cret-value")
            .output()
            .unwrap()
    };
    let cfg = config.to_str().unwrap();

    let out = run(&["errors", "list", "--config", cfg, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["error_code"], "STRING_TOO_LONG");
    assert_eq!(rows[0]["external_id"], "42");

    let out = run(&[
        "status",
        "--config",
        cfg,
        "--json",
        "--endpoint",
        "http://127.0.0.1:9",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status[0]["confirmed_lsn"], "0/2000");
    assert_eq!(status[0]["dead_letters"], 1);
    assert!(
        !text(&out).contains("s3cret-value"),
        "secrets never printed"
    );

    let out = run(&["errors", "discard", "--config", cfg]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(state.open_dead_letters().await.unwrap(), 0);

    // Salesforce unreachable: validate fails with an error, not a panic, and no secret.
    let out = run(&["validate", "--config", cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!text(&out).contains("s3cret-value"), "{}", text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
}

#[tokio::test]
async fn errors_retry_sends_dead_letters_again_and_resolves_them() {
    use pgforce_emulator::{config as emu, EmulatorConfig};
    let cluster = TempCluster::start().unwrap();
    let emulator = start::emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = config_for(dir.path());
    let text_cfg = std::fs::read_to_string(&path)
        .unwrap()
        .replace("http://127.0.0.1:9", emulator.base_url())
        .replace(
            "client_id = \"x\"",
            &format!("client_id = \"{}\"", emu::DEMO_CLIENT_ID),
        );
    std::fs::write(&path, text_cfg).unwrap();
    let state = StateStore::connect(&cluster.conn_string("postgres"), "pgforce", "cli")
        .await
        .unwrap();
    let letter = |key: &str, name: &str| DeadLetter {
        mapping: "accounts".into(),
        object: "Account".into(),
        external_id: key.into(),
        operation: "upsert".into(),
        lsn: Lsn(0x1000),
        error_code: "UNABLE_TO_LOCK_ROW".into(),
        message: "unable to obtain exclusive access to this record".into(),
        fields: vec![],
        row: serde_json::json!({"External_Id__c": key, "Name": name}),
    };
    // One that now goes through, one Salesforce still rejects (name too long).
    state
        .record_dead_letters(&[letter("7", "Acme"), letter("8", &"x".repeat(300))])
        .await
        .unwrap();
    let cfg = path.to_str().unwrap().to_string();
    let db = cluster.url("postgres");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_pgforce"))
            .args(["errors", "retry", "--config", &cfg])
            .env("PGFORCE_TEST_DB", db)
            .env("PGFORCE_TEST_SECRET", emu::DEMO_CLIENT_SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "one row fails again: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("1 applied, 1 failed again"),
        "{}",
        text(&out)
    );
    let open = state.list_dead_letters(Some("open"), 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].external_id, "8");
    assert_eq!(
        open[0].error_code, "STRING_TOO_LONG",
        "the latest error is kept"
    );
    assert_eq!(open[0].attempts, 2);
    let ids = emulator
        .state()
        .store
        .find_by_external_id("Account", "External_Id__c", "7")
        .unwrap();
    assert_eq!(ids.len(), 1, "the retried row is in Salesforce");
}
