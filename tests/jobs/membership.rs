//! The `membership` target: a segment query → one Campaign's members. Adds and removes
//! exactly the difference, looks people up by email (Contact, then Lead), never touches
//! members pgforce did not add, refuses a removal over the safety limit unless forced, and
//! names the job when the Campaign is missing.

use std::collections::BTreeSet;

use pgforce::jobs::{JobError, JobRunOptions};
use serde_json::json;

use super::*;
use crate::support::pipeline::Harness;

const SCHEMA: &str = "
CREATE TABLE segment (email text NOT NULL);
INSERT INTO segment SELECT 'user' || i || '@example.com' FROM generate_series(1, 100) i;
";

fn job(extra: &str) -> String {
    format!(
        r#"name = "segment"
trigger = {{ type = "schedule", cron = "0 6 * * *" }}
query = "SELECT email FROM segment"
target = {{ type = "membership", campaign = "Spring", column = "email"{extra} }}
"#
    )
}

/// Contacts user1..=n@example.com and Leads lead1..=5@example.com; their Ids by email.
fn seed_people(h: &Harness, n: usize) -> std::collections::HashMap<String, String> {
    let mut ids = std::collections::HashMap::new();
    for i in 1..=n {
        let email = format!("user{i}@example.com");
        let id = seed(
            h,
            "Contact",
            json!({"LastName": format!("User {i}"), "Email": email}),
        );
        ids.insert(email, id);
    }
    for i in 1..=5 {
        let email = format!("lead{i}@example.com");
        let id = seed(
            h,
            "Lead",
            json!({"LastName": format!("Lead {i}"), "Company": "Acme", "Email": email}),
        );
        ids.insert(email, id);
    }
    ids
}

/// The Campaign's members as (ContactId or LeadId), with duplicates kept.
fn members(h: &Harness, campaign: &str) -> Vec<String> {
    h.records("CampaignMember", false)
        .into_iter()
        .filter(|m| m["CampaignId"].as_str() == Some(campaign))
        .map(|m| {
            m.get("ContactId")
                .and_then(|v| v.as_str())
                .or_else(|| m.get("LeadId").and_then(|v| v.as_str()))
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_adds_and_removes_exactly_the_difference() {
    let h = Harness::start(SCHEMA).await;
    let people = seed_people(&h, 120);
    let campaign = seed(&h, "Campaign", json!({"Name": "Spring"}));
    // A member someone else added: in the segment too, but never pgforce's to touch.
    let theirs = people["user1@example.com"].clone();
    seed(
        &h,
        "CampaignMember",
        json!({"CampaignId": campaign, "ContactId": theirs}),
    );
    let r = runner(&config(&h, &job(""))).await;

    let first = run(&r, "segment").await;
    assert_eq!(
        (
            first.count("add"),
            first.count("not_added_by_pgforce"),
            first.sent
        ),
        (99, 1, 99),
        "{}",
        first.render()
    );
    let m = members(&h, &campaign);
    assert_eq!(m.len(), 100);
    assert_eq!(
        m.iter().collect::<BTreeSet<_>>().len(),
        100,
        "no duplicates"
    );

    let second = run(&r, "segment").await;
    assert_eq!((second.sent, second.count("kept")), (0, 99));

    // 3 leave (user2..4), 2 Contacts and 1 Lead join, 1 unknown email matches no one.
    h.pg.batch_execute(
        "DELETE FROM segment WHERE email IN ('user2@example.com', 'user3@example.com', 'user4@example.com');
         INSERT INTO segment VALUES ('user101@example.com'), ('USER102@example.com'), ('lead1@example.com'), ('nobody@example.com');",
    )
    .await
    .unwrap();
    let third = run(&r, "segment").await;
    assert_eq!(
        (
            third.count("add"),
            third.count("remove"),
            third.count("unmatched")
        ),
        (3, 3, 1),
        "{}",
        third.render()
    );
    let now: BTreeSet<String> = members(&h, &campaign).into_iter().collect();
    for gone in [
        "user2@example.com",
        "user3@example.com",
        "user4@example.com",
    ] {
        assert!(!now.contains(&people[gone]), "{gone} removed");
    }
    for joined in [
        "user101@example.com",
        "user102@example.com",
        "lead1@example.com",
    ] {
        assert!(now.contains(&people[joined]), "{joined} added");
    }
    assert!(
        now.contains(&theirs),
        "the member pgforce did not add stays"
    );
    assert_eq!(now.len(), 100);

    // Remove everyone from the segment: the member pgforce did not add is still left.
    h.pg.batch_execute("DELETE FROM segment").await.unwrap();
    let force = JobRunOptions {
        dry_run: false,
        force: true,
    };
    r.run("segment", force).await.unwrap();
    assert_eq!(members(&h, &campaign), [theirs]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_more_than_the_limit_is_refused_unless_forced() {
    let h = Harness::start(SCHEMA).await;
    seed_people(&h, 100);
    let campaign = seed(&h, "Campaign", json!({"Name": "Spring"}));
    let r = runner(&config(&h, &job(", max_remove_percent = 10"))).await;
    run(&r, "segment").await;
    h.pg.batch_execute("DELETE FROM segment WHERE email LIKE 'user1%'")
        .await
        .unwrap(); // 12 of 100
    let err = r
        .run("segment", JobRunOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            JobError::SafetyLimit {
                remove: 12,
                members: 100,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("job segment: refused to remove 12 of 100") && text.contains("--force"),
        "{text}"
    );
    assert_eq!(members(&h, &campaign).len(), 100, "nothing removed");
    let forced = r
        .run(
            "segment",
            JobRunOptions {
                dry_run: false,
                force: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(forced.count("remove"), 12);
    assert_eq!(members(&h, &campaign).len(), 88);
    assert_eq!(run_states(&h, "segment").await, ["done", "failed", "done"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_campaign_is_an_error_unless_it_may_be_created() {
    let h = Harness::start(SCHEMA).await;
    seed_people(&h, 10);
    let r = runner(&config(&h, &job(""))).await;
    let err = r
        .run("segment", JobRunOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, JobError::CampaignMissing { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("job segment: Campaign \"Spring\" does not exist"),
        "{err}"
    );
    assert_eq!(h.count("CampaignMember"), 0);

    let r = runner(&config(
        &h,
        &job(", create_campaign = true, departed_status = \"Responded\""),
    ))
    .await;
    let report = run(&r, "segment").await;
    assert_eq!(report.count("add"), 10);
    let campaigns = h.records("Campaign", false);
    assert_eq!(campaigns.len(), 1);
    assert_eq!(campaigns[0]["Name"], "Spring");
    // With departed_status, leaving sets the status instead of removing.
    h.pg.batch_execute("DELETE FROM segment WHERE email = 'user5@example.com'")
        .await
        .unwrap();
    let report = r
        .run(
            "segment",
            JobRunOptions {
                dry_run: false,
                force: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(report.count("remove"), 1);
    let statuses: Vec<String> = h
        .records("CampaignMember", false)
        .iter()
        .map(|m| m["Status"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(statuses.len(), 10);
    assert_eq!(statuses.iter().filter(|s| *s == "Responded").count(), 1);
}
