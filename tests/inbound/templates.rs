//! The Salesforce → Postgres templates in `deploy/examples/` end to end: the template's
//! `[[pipelines.inbound]]` entries as shipped (`opportunities.toml` in CDC mode over the
//! emulator's Pub/Sub API, the others polling), pointed at the emulator and a throwaway
//! Postgres, tables from `pgforce schema`'s planner.

use serde_json::json;

use crate::support::inbound::{col, text_row, wait_row, Env};
use crate::support::wait::{wait_until, DEADLINE};

/// The template's inbound entries, as shipped.
fn entries(name: &str) -> String {
    let path = format!("{}/deploy/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let at = text
        .find("[[pipelines.inbound]]")
        .expect("the template has inbound entries");
    text[at..].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_and_contacts_template_end_to_end() {
    let env = Env::start("tplpeople", &entries("leads-contacts.toml")).await;
    env.create_tables().await;
    let pg = env.client().await;
    let running = env.run();
    let account = env.create("Account", json!({"Name": "Acme"})).await;
    let contact = env
        .create(
            "Contact",
            json!({"LastName": "Doe", "AccountId": account, "MailingCity": "Lyon", "Birthdate": "1990-02-03"}),
        )
        .await;
    let lead = env
        .create(
            "Lead",
            json!({"LastName": "Roe", "Company": "Beta", "AnnualRevenue": 2500000}),
        )
        .await;
    wait_until("the contact and the lead", DEADLINE, || async {
        let c = pg
            .query_opt(
                "SELECT account_name, mailing_city, birthdate::text FROM sf.contacts WHERE id = $1",
                &[&contact],
            )
            .await
            .map_err(|e| e.to_string())?
            .map(|r| {
                (
                    r.get::<_, Option<String>>(0),
                    r.get::<_, Option<String>>(1),
                    r.get::<_, Option<String>>(2),
                )
            });
        let l = pg
            .query_opt(
                "SELECT company, annual_revenue::text FROM sf.leads WHERE id = $1",
                &[&lead],
            )
            .await
            .map_err(|e| e.to_string())?
            .map(|r| (r.get::<_, Option<String>>(0), r.get::<_, Option<String>>(1)));
        let want_c = Some((
            Some("Acme".to_string()),
            Some("Lyon".to_string()),
            Some("1990-02-03".to_string()),
        ));
        if c == want_c && l.as_ref().is_some_and(|l| l.0.as_deref() == Some("Beta")) {
            Ok(())
        } else {
            Err(format!("contact {c:?}, lead {l:?}"))
        }
    })
    .await;
    running.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_audit_template_end_to_end() {
    let env = Env::start("tplacts", &entries("activities-audit.toml")).await;
    env.create_tables().await;
    let pg = env.client().await;
    let running = env.run();
    let task = env
        .create("Task", json!({"Subject": "Call", "Status": "Not Started"}))
        .await;
    let event = env
        .create(
            "Event",
            json!({"Subject": "Meet", "StartDateTime": "2025-01-01T10:00:00Z", "EndDateTime": "2025-01-01T11:00:00Z", "DurationInMinutes": 60, "ActivityDateTime": "2025-01-01T10:00:00Z"}),
        )
        .await;
    wait_until("a Task row and an Event row", DEADLINE, || async {
        let rows: Vec<(String, String, String)> = pg
            .query(
                "SELECT object, record_id, change_type FROM audit.activity_log ORDER BY object",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let want = vec![
            ("Event".to_string(), event.clone(), "CREATE".to_string()),
            ("Task".to_string(), task.clone(), "CREATE".to_string()),
        ];
        (rows == want).then_some(()).ok_or(format!("{rows:?}"))
    })
    .await;
    running.stop().await.expect("a clean stop");
}

const OPPORTUNITY: &str = "SELECT name, account_id, account_name, account_external_id, stage, \
     amount::text, probability::text, close_date::text, is_closed::text, forecast_category, \
     deleted_at::text, created_at::text, updated_at::text FROM sf.opportunities WHERE id = $1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opportunities_template_end_to_end_in_cdc_mode() {
    let env = Env::start("tplopps", &entries("opportunities.toml")).await;
    assert_eq!(
        env.pipeline.inbound[0].source,
        pgforce::config::inbound::InboundSource::Cdc
    );
    env.create_tables().await;
    let pg = env.client().await;
    let account = env
        .create(
            "Account",
            json!({"Name": "Acme", "External_Id__c": "acme-1"}),
        )
        .await;
    let existing = env
        .create(
            "Opportunity",
            json!({"Name": "Renewal", "AccountId": account, "StageName": "Prospecting",
                   "CloseDate": "2025-09-30", "Amount": 5000, "ForecastCategoryName": "Pipeline"}),
        )
        .await;
    let running = env.run();
    wait_row(&pg, OPPORTUNITY, &existing, "the initial load", |r| {
        col(r, "name") == Some("Renewal")
    })
    .await;
    let r = text_row(&pg, OPPORTUNITY, &existing).await.unwrap();
    assert_eq!(col(&r, "account_name"), Some("Acme"));
    assert_eq!(col(&r, "account_external_id"), Some("acme-1"));
    assert_eq!(col(&r, "forecast_category"), Some("pipeline"));
    assert_eq!(col(&r, "amount"), Some("5000.00"));

    // Created, stage changes, closed; through the change events.
    let new = env
        .create(
            "Opportunity",
            json!({"Name": "Upsell", "AccountId": account, "StageName": "Qualification",
                   "CloseDate": "2025-12-31", "Amount": 750.25, "Probability": 20,
                   "ForecastCategoryName": "Best Case"}),
        )
        .await;
    wait_row(&pg, OPPORTUNITY, &new, "a created opportunity", |r| {
        col(r, "name") == Some("Upsell")
    })
    .await;
    let r = text_row(&pg, OPPORTUNITY, &new).await.unwrap();
    assert_eq!(col(&r, "account_external_id"), Some("acme-1"));
    assert_eq!(col(&r, "forecast_category"), Some("best_case"));
    assert_eq!(col(&r, "probability"), Some("20"));
    assert_eq!(col(&r, "close_date"), Some("2025-12-31"));
    env.update(
        "Opportunity",
        &new,
        json!({"StageName": "Negotiation/Review"}),
    )
    .await;
    wait_row(&pg, OPPORTUNITY, &new, "a stage change", |r| {
        col(r, "stage") == Some("Negotiation/Review")
    })
    .await;
    env.update(
        "Opportunity",
        &new,
        json!({"StageName": "Closed Won", "ForecastCategoryName": "Closed"}),
    )
    .await;
    wait_row(&pg, OPPORTUNITY, &new, "closed won", |r| {
        col(r, "stage") == Some("Closed Won") && col(r, "forecast_category") == Some("closed")
    })
    .await;
    let r = text_row(&pg, OPPORTUNITY, &new).await.unwrap();
    assert_eq!(
        col(&r, "amount"),
        Some("750.25"),
        "untouched by the updates"
    );
    assert_eq!(
        col(&r, "account_name"),
        Some("Acme"),
        "untouched by the updates"
    );
    // A delete keeps the row, marked.
    env.delete("Opportunity", &existing).await;
    wait_row(&pg, OPPORTUNITY, &existing, "a deleted opportunity", |r| {
        col(r, "deleted_at").is_some()
    })
    .await;
    running.stop().await.expect("a clean stop");
}
