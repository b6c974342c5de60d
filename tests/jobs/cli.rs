//! The `pgforce jobs` commands of the real binary: `jobs run --dry-run` prints counts and a
//! sample and sends nothing, `jobs run` sends, `jobs list` and `status` show the last run
//! and the next one, and an unknown job is a config error naming it.

use std::process::{Command, Output};

use pgforce_emulator::config as emu;

use super::*;
use crate::support::config::ConfigBuilder;
use crate::support::pipeline::Harness;

const SCHEMA: &str = "
CREATE TABLE usage (account_id bigint PRIMARY KEY, seats int NOT NULL);
INSERT INTO usage SELECT i, i FROM generate_series(1, 20) i;
";

const JOB: &str = r#"name = "usage"
trigger = { type = "schedule", cron = "0 * * * *" }
query = "SELECT account_id::text AS account_id, seats FROM usage"
target = { type = "update", object = "Account", match = { column = "account_id", field = "External_Id__c" }, fields = { seats = "Seats__c" } }
"#;

fn pgforce(h: &Harness, config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgforce"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("DATABASE_URL", &h.db_url)
        .env("SF_CLIENT_SECRET", emu::DEMO_CLIENT_SECRET)
        .env_remove("PGFORCE_OPS_LISTEN")
        .output()
        .expect("run pgforce")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_commands_run_list_and_report_status() {
    let h = Harness::start(SCHEMA).await;
    seed_accounts(&h, 20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgforce.toml");
    ConfigBuilder::new("e2e", "DATABASE_URL")
        .emulator(h.emulator.base_url(), "SF_CLIENT_SECRET")
        .job_toml(JOB)
        .write(&path);

    let dry = pgforce(&h, &path, &["jobs", "run", "usage", "--dry-run"]);
    let out = text(&dry);
    assert!(dry.status.success(), "{out}");
    assert!(
        out.contains("dry run") && out.contains("changed: 20") && out.contains("Seats__c"),
        "{out}"
    );
    assert_eq!(
        h.records("Account", false)
            .iter()
            .filter(|a| !a["Seats__c"].is_null())
            .count(),
        0
    );

    let real = pgforce(&h, &path, &["jobs", "run", "usage"]);
    assert!(real.status.success(), "{}", text(&real));
    assert!(text(&real).contains("sent: 20"), "{}", text(&real));

    let list = text(&pgforce(&h, &path, &["jobs", "list"]));
    assert!(
        list.contains("usage") && list.contains("update") && list.contains("done"),
        "{list}"
    );

    let status = pgforce(
        &h,
        &path,
        &["status", "--json", "--endpoint", "http://127.0.0.1:1"],
    );
    assert!(status.status.success(), "{}", text(&status));
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let job = &v[0]["jobs"][0];
    assert_eq!(
        (job["job"].as_str(), job["last_state"].as_str()),
        (Some("usage"), Some("done")),
        "{v}"
    );
    assert_eq!(job["rows_sent"], 20);
    assert!(job["next_run"].is_string(), "{job}");

    let unknown = pgforce(&h, &path, &["jobs", "run", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown).contains("no job named \"nope\""),
        "{}",
        text(&unknown)
    );
}
