//! kill -9 of the real `pgforce jobs run` binary in the middle of a membership run (Campaign
//! members are not idempotent to create): the next run adopts what the killed run created
//! and adds the rest, so the Campaign ends with every member exactly once.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use pgforce_emulator::config as emu;
use pgforce_emulator::faults::{FaultKind, FaultSpec};
use serde_json::json;

use super::*;
use crate::support::config::ConfigBuilder;
use crate::support::pipeline::Harness;
use crate::support::wait::{wait_until, Deadline};

const SCHEMA: &str = "
CREATE TABLE segment (email text NOT NULL);
INSERT INTO segment SELECT 'user' || i || '@example.com' FROM generate_series(1, 1000) i;
";

const JOB: &str = r#"name = "segment"
trigger = { type = "schedule", cron = "0 6 * * *" }
query = "SELECT email FROM segment"
target = { type = "membership", campaign = "Spring", column = "email" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_the_next_run_completes_without_duplicates() {
    let h = Harness::start(SCHEMA).await;
    let bodies: Vec<_> = (1..=1000)
        .map(|i| {
            json!({"LastName": format!("U{i}"), "Email": format!("user{i}@example.com")})
                .as_object()
                .cloned()
                .unwrap()
        })
        .collect();
    let user = h.emulator.state().default_user().unwrap().id;
    for r in h
        .emulator
        .state()
        .store
        .insert_many("Contact", &bodies, user)
    {
        r.unwrap();
    }
    let campaign = seed(&h, "Campaign", json!({"Name": "Spring"}));
    // Each member-creating call (200 members) takes a while, so the kill lands mid-run.
    h.emulator.add_fault(
        FaultSpec::always(FaultKind::Latency { ms: 400 })
            .matching(Some("POST"), "/services/data/v62.0/composite/sobjects"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgforce.toml");
    ConfigBuilder::new("e2e", "DATABASE_URL")
        .emulator(h.emulator.base_url(), "SF_CLIENT_SECRET")
        .job_toml(JOB)
        .write(&path);
    let log = std::fs::File::create(dir.path().join("child.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgforce"))
        .args(["jobs", "run", "segment", "--config"])
        .arg(&path)
        .env("DATABASE_URL", &h.db_url)
        .env("SF_CLIENT_SECRET", emu::DEMO_CLIENT_SECRET)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn pgforce jobs run");
    let count = |h: &Harness| h.count("CampaignMember");
    wait_until("the run created some members", Deadline::secs(120), || {
        let n = count(&h);
        async move {
            if n > 0 {
                Ok(())
            } else {
                Err(format!("{n} members"))
            }
        }
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    // A call the killed process had in flight is still finished by the emulator (as by
    // Salesforce): count the members once nothing changes any more (well past the
    // injected 400 ms per call).
    let mut last = (count(&h), std::time::Instant::now());
    let partial = wait_until(
        "the killed run's last call settled",
        Deadline::secs(60),
        || {
            let n = count(&h);
            if n != last.0 {
                last = (n, std::time::Instant::now());
            }
            let settled = last.1.elapsed() >= std::time::Duration::from_millis(1500);
            async move {
                if settled {
                    Ok(n)
                } else {
                    Err(format!("{n} members, still changing"))
                }
            }
        },
    )
    .await;
    assert!(partial < 1000, "killed mid-run ({partial} of 1000 created)");
    h.emulator.clear_faults();

    let r = runner(&config(&h, JOB)).await;
    let report = run(&r, "segment").await;
    assert_eq!(
        report.count("add") as usize,
        1000 - partial,
        "{}",
        report.render()
    );
    let members: Vec<String> = h
        .records("CampaignMember", false)
        .into_iter()
        .filter(|m| m["CampaignId"].as_str() == Some(campaign.as_str()))
        .map(|m| m["ContactId"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(members.len(), 1000);
    assert_eq!(
        members.iter().collect::<BTreeSet<_>>().len(),
        1000,
        "no duplicates"
    );
    let again = run(&r, "segment").await;
    assert_eq!((again.sent, again.count("kept")), (0, 1000));
}
