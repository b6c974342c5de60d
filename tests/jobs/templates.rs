//! The job templates in `deploy/examples/` (usage metrics, subscription figures, a segment
//! Campaign, Lead enrichment): each loads with only the login swapped for the emulator's,
//! validates against its tables and the org's describe, and runs end to end. Also: a
//! result column whose type does not fit its field is a validation error naming the job.

use std::time::Duration;

use pgforce::config::validate::{has_errors, Severity};
use pgforce::jobs::check_jobs;
use serde_json::json;
use tokio::sync::watch;

use super::*;
use crate::support::pipeline::{template_config, wait_until, Harness, DEADLINE};

/// The product database every template reads.
const SCHEMA: &str = "
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, seats int NOT NULL);
CREATE TABLE users (id bigint PRIMARY KEY, account_id bigint NOT NULL, email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), last_active_at timestamptz);
CREATE TABLE product_usage (account_id bigint NOT NULL, day date NOT NULL, logins int NOT NULL,
    active_users int NOT NULL, PRIMARY KEY (account_id, day));
CREATE TABLE subscriptions (id bigint PRIMARY KEY, account_id bigint NOT NULL, plan text NOT NULL,
    status text NOT NULL, mrr numeric(18,2) NOT NULL, renews_on date);
CREATE TABLE support_tickets (id bigint PRIMARY KEY, user_id bigint NOT NULL);
INSERT INTO accounts VALUES (1, 'Acme', 10), (2, 'Globex', 3);
INSERT INTO users VALUES
    (1, 1, 'ada@acme.example', '2024-01-15T09:00:00Z', now() - interval '1 day'),
    (2, 1, 'bob@acme.example', '2024-02-01T09:00:00Z', now() - interval '90 days'),
    (3, 2, 'cy@globex.example', '2024-03-01T09:00:00Z', now() - interval '2 days');
INSERT INTO product_usage VALUES (1, current_date - 1, 40, 7), (1, current_date - 2, 2, 5),
    (2, current_date - 1, 5, 1);
INSERT INTO subscriptions VALUES (1, 1, 'pro', 'active', 99.00, '2027-01-01'),
    (2, 2, 'free', 'active', 0.00, NULL);
INSERT INTO support_tickets VALUES (1, 1), (2, 1), (3, 3);
";

const TEMPLATES: &[&str] = &[
    "usage-metrics.toml",
    "subscription-figures.toml",
    "segment-campaign.toml",
    "lead-enrichment.toml",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_template_validates_against_its_tables_and_the_org() {
    let h = Harness::start(SCHEMA).await;
    for file in TEMPLATES {
        let cfg = template_config(&h, file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let r = runner(&cfg).await;
        let findings = check_jobs(0, &cfg, r.salesforce()).await.unwrap();
        assert!(!has_errors(&findings), "{file}: {findings:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_that_does_not_fit_its_field_is_an_error_naming_the_job() {
    let h = Harness::start(SCHEMA).await;
    let job = r#"name = "bad_types"
trigger = { type = "interval", seconds = 60 }
query = "SELECT id::text AS account_id, name AS mrr, seats, now() AS renews FROM accounts"
target = { type = "update", object = "Account", match = { column = "account_id", field = "External_Id__c" }, fields = { mrr = "MRR__c", renews = "Renewal_Date__c", seats = "Nope__c" } }
"#;
    let cfg = config(&h, job);
    let r = runner(&cfg).await;
    let findings = check_jobs(0, &cfg, r.salesforce()).await.unwrap();
    let errors: Vec<_> = findings
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    let codes: Vec<&str> = errors.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        ["job.type_mismatch", "job.type_mismatch", "sf.field_missing"],
        "{findings:#?}"
    );
    assert!(
        errors
            .iter()
            .all(|d| d.message.starts_with("job bad_types:")),
        "{errors:#?}"
    );
    assert_eq!(errors[0].key, "pipelines[0].jobs[0].target.fields.mrr");
    assert!(
        errors[0].message.contains("text") && errors[0].message.contains("currency"),
        "{}",
        errors[0].message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_metrics_template_sets_account_fields() {
    let h = Harness::start(SCHEMA).await;
    seed_accounts(&h, 2);
    let r = runner(&template_config(&h, "usage-metrics.toml").unwrap()).await;
    let report = run(&r, "usage_metrics").await;
    assert_eq!(report.sent, 2, "{}", report.render());
    let acme = h.record("Account", "1").unwrap();
    assert_eq!(acme["Seats__c"].to_string(), "10");
    assert_eq!(acme["Logins_30d__c"].to_string(), "42");
    assert_eq!(acme["Weekly_Active_Users__c"].to_string(), "7");
    assert!(acme["Last_Seen__c"].is_string(), "{acme:?}");
    assert_eq!(run(&r, "usage_metrics").await.sent, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_figures_template_follows_table_changes() {
    let h = Harness::start(SCHEMA).await;
    seed_accounts(&h, 2);
    let cfg = template_config(&h, "subscription-figures.toml").unwrap();
    let (stop, shutdown) = watch::channel(false);
    let health = pgforce::server::Health::new();
    let task = tokio::spawn(pgforce::jobs::run_scheduled(cfg, health.clone(), shutdown));
    let mrr = |h: &Harness| {
        h.record("Account", "1")
            .and_then(|a| a.get("MRR__c").map(|v| v.to_string()))
    };
    wait_until("the first run sets MRR", DEADLINE, || {
        let v = mrr(&h);
        async move {
            if v.as_deref() == Some("99.00") || v.as_deref() == Some("99") {
                Ok(())
            } else {
                Err(format!("{v:?}"))
            }
        }
    })
    .await;
    let acme = h.record("Account", "1").unwrap();
    assert_eq!(
        (acme["Plan__c"].as_str(), acme["Renewal_Date__c"].as_str()),
        (Some("Pro"), Some("2027-01-01"))
    );
    h.pg.batch_execute("UPDATE subscriptions SET mrr = 149.00, plan = 'enterprise' WHERE id = 1")
        .await
        .unwrap();
    wait_until("the change reaches the Account", DEADLINE, || {
        let a = h.record("Account", "1").unwrap();
        async move {
            if a["Plan__c"] == "Enterprise" {
                Ok(())
            } else {
                Err(format!("{:?} {:?}", a["Plan__c"], a["ARR__c"]))
            }
        }
    })
    .await;
    assert!(h.record("Account", "1").unwrap()["ARR__c"]
        .to_string()
        .starts_with("1788"));
    // `/status` serves the registry: the job's last run is there, and the jobs side is ready.
    wait_until("the last run shows in /status", DEADLINE, || {
        let report = serde_json::to_value(health.report()).unwrap();
        let ready = health.readiness().ready;
        async move {
            let jobs = report["pipelines"]
                .as_array()
                .and_then(|ps| {
                    ps.iter()
                        .find(|p| p["name"].as_str().is_some_and(|n| n.ends_with("/jobs")))
                })
                .map(|p| p["jobs"].clone());
            let done = jobs.as_ref().and_then(|j| j.as_array()).is_some_and(|j| {
                j.iter().any(|e| {
                    e["last_result"] == "done"
                        && e["last_run_at"].is_string()
                        && e["last_duration_seconds"].is_number()
                        && e["target"] == "update"
                })
            });
            if done && ready {
                Ok(())
            } else {
                Err(format!("ready {ready}: {jobs:?}"))
            }
        }
    })
    .await;
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_template_creates_the_campaign_with_its_members() {
    let h = Harness::start(SCHEMA).await;
    for email in ["ada@acme.example", "bob@acme.example", "cy@globex.example"] {
        seed(&h, "Contact", json!({"LastName": email, "Email": email}));
    }
    let r = runner(&template_config(&h, "segment-campaign.toml").unwrap()).await;
    let report = run(&r, "power_users").await;
    // Only Ada: on Pro and active in the last 30 days.
    assert_eq!(
        (report.count("add"), report.sent),
        (1, 1),
        "{}",
        report.render()
    );
    let campaigns = h.records("Campaign", false);
    assert_eq!(campaigns.len(), 1);
    assert_eq!(campaigns[0]["Name"], "Power users");
    assert_eq!(h.count("CampaignMember"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_enrichment_template_enriches_from_users_subscriptions_and_tickets() {
    let h = Harness::start(SCHEMA).await;
    let r = runner(&template_config(&h, "lead-enrichment.toml").unwrap()).await;
    let lead = |email: &str| {
        json!({"LastName": "L", "Company": "C", "Email": email})
            .as_object()
            .cloned()
            .unwrap()
    };
    let ada = r
        .salesforce()
        .create_record("Lead", &lead("ada@acme.example"))
        .await
        .unwrap();
    let stranger = r
        .salesforce()
        .create_record("Lead", &lead("who@nowhere.example"))
        .await
        .unwrap();
    let report = run(&r, "lead_enrichment").await;
    assert_eq!(report.sent, 2, "{}", report.render());
    let get = |id: &str| {
        let id = pgforce_emulator::ids::Id::parse(id).unwrap();
        (*h.emulator.state().store.get(&id).unwrap()).clone()
    };
    let a = get(&ada);
    assert_eq!(a["Signup_Date__c"], "2024-01-15");
    assert_eq!(a["Plan_Tier__c"], "Pro");
    assert_eq!(a["Prior_Support_Tickets__c"].to_string(), "2");
    assert!(
        a["Lifetime_Value__c"].to_string().starts_with("1188"),
        "{:?}",
        a["Lifetime_Value__c"]
    );
    assert_eq!(a["Enrichment_Status__c"], "matched");
    assert_eq!(get(&stranger)["Enrichment_Status__c"], "no match");
    assert_eq!(run(&r, "lead_enrichment").await.sent, 0, "each Lead once");
}
