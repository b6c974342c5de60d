//! What is stuck, as an operator sees it: with a row Salesforce rejects and a child whose
//! parent never arrives, the ops `/status` of a running `pgforce run` and `pgforce status`
//! (table and `--json`) name the oldest open dead letter with its reason and the parked
//! changes with the parent they wait for. Real Postgres, the emulator over HTTP, the real
//! binary.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::crash::*;
use pgforce_emulator::config as emu;
use serde_json::Value;

/// The pipeline's entry of `/status`, once `ready` accepts it.
async fn wait_status(env: &Env, addr: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Some((200, body)) = http_get(addr, "/status").await {
            let report: Value = serde_json::from_str(&body).unwrap();
            if let Some(p) = report["pipelines"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == PIPELINE))
            {
                if ready(p) {
                    return p.clone();
                }
                last = p.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "/status never showed what is stuck; last: {last}\n{}",
        env.log_tail("pgforce", 30)
    );
}

fn pgforce_status(env: &Env, addr: &str, json: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgforce"));
    cmd.arg("status")
        .arg("--config")
        .arg(&env.config)
        .arg("--endpoint")
        .arg(format!("http://{addr}"))
        .env("PGFORCE_TEST_DATABASE_URL", &env.db_url)
        .env("PGFORCE_TEST_SF_SECRET", emu::DEMO_CLIENT_SECRET);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run pgforce status");
    assert!(
        out.status.success(),
        "pgforce status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_names_the_oldest_dead_letter_and_parked_reasons() {
    let env = Env::start(ConfigOptions::default()).await;
    let pg = env.client().await;
    seed(&pg, 5, 5).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let _child = env.spawn("pgforce", Some(&addr));
    wait_status(&env, &addr, |p| p["state"] == "streaming").await;

    // Nothing stuck yet.
    let calm = wait_status(&env, &addr, |p| p["state"] == "streaming").await;
    assert!(calm["oldest_dead_letter"].is_null(), "{calm}");
    assert_eq!(calm["parked"], 0, "{calm}");

    // A Contact without LastName (rejected), and one whose Account never arrives (parked).
    pg.batch_execute(
        "ALTER TABLE contacts ALTER COLUMN last_name DROP NOT NULL;
         INSERT INTO contacts (id, account_id, last_name) VALUES (800001, 1, NULL);
         INSERT INTO contacts (id, account_id, last_name) VALUES (800002, 777777, 'Orphan');",
    )
    .await
    .unwrap();
    let stuck = wait_status(&env, &addr, |p| {
        p["oldest_dead_letter"].is_object() && p["parked"].as_u64() >= Some(1)
    })
    .await;
    let dead = &stuck["oldest_dead_letter"];
    assert_eq!(dead["mapping"], "contacts", "{stuck}");
    assert_eq!(dead["object"], "Contact", "{stuck}");
    assert_eq!(dead["error_code"], "REQUIRED_FIELD_MISSING", "{stuck}");
    assert!(
        dead.get("message").is_none() && dead.get("external_id").is_none(),
        "/status must not carry row values: {dead}"
    );
    let reasons = stuck["parked_reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{stuck}");
    assert_eq!(reasons[0]["mapping"], "contacts");
    assert_eq!(reasons[0]["waiting_for"], "Account");
    assert_eq!(reasons[0]["count"], 1);

    // `pgforce status` reads the same from the state store.
    let json: Value = serde_json::from_str(&pgforce_status(&env, &addr, true)).unwrap();
    let row = &json[0];
    assert_eq!(row["parked"], 1, "{row}");
    assert_eq!(
        row["oldest_dead_letter"]["error_code"], "REQUIRED_FIELD_MISSING",
        "{row}"
    );
    assert_eq!(row["parked_reasons"][0]["waiting_for"], "Account", "{row}");
    let table = pgforce_status(&env, &addr, false);
    assert!(
        table.contains("oldest dead letter since")
            && table.contains("rejected with REQUIRED_FIELD_MISSING"),
        "{table}"
    );
    assert!(
        table.contains("1 contacts change(s) parked since")
            && table.contains("waiting for their Account parent"),
        "{table}"
    );
}
