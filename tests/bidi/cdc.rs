//! A pair in CDC mode (the seed template with `source = "cdc"`, the emulator's Pub/Sub API
//! over real gRPC): Postgres and a person in Salesforce change one field of one record
//! between syncs, Salesforce last, and the Salesforce change event reaches pgforce only
//! after pgforce wrote the Postgres change of that record. Newest wins: the outbound write
//! leaves Salesforce's newer value in place (the guard reads it first), the event then
//! brings it into Postgres, both sides end equal and the conflict is counted.

use pgforce::config::PipelineConfig;
use pgforce::testing::pg::ClusterOptions;
use serde_json::json;

use super::pair::{column, contact, inbound, wait_column, wait_field, USERS};
use tokio_postgres::NoTls;

use crate::support::bidi::{edited_config, human, record};
use crate::support::inbound::emulator_config;
use crate::support::pipeline::*;
use crate::support::start;

/// Postgres (`track_commit_timestamp = on`, the users table) and an emulator whose
/// Pub/Sub API sends a keepalive every 250 ms (Salesforce: within 270 s), so a quiet
/// topic's position comes back quickly.
async fn harness() -> Harness {
    init_tracing();
    let opts = ClusterOptions {
        extra_conf: vec!["track_commit_timestamp = on".into()],
        ..ClusterOptions::default()
    };
    let cluster = start::postgres_with(opts).await;
    let emulator = start::emulator(emulator_config()).await;
    let db_url = cluster.url("postgres");
    let (pg, conn) = tokio_postgres::connect(&db_url, NoTls)
        .await
        .expect("connect to Postgres");
    tokio::spawn(conn);
    pg.batch_execute(USERS).await.expect("create the schema");
    Harness {
        emulator,
        pg,
        db_url,
        cluster,
    }
}

/// The template reading Salesforce changes through CDC from the emulator's Pub/Sub API.
fn config(h: &Harness) -> PipelineConfig {
    let pubsub = h.emulator.pubsub_url();
    edited_config(h, "users-contacts-bidi.toml", |t| {
        t.replace("source = \"poll\"", "source = \"cdc\"").replace(
            "[pipelines.salesforce]",
            &format!("[pipelines.salesforce]\npubsub_endpoint = \"{pubsub}\""),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_wins_when_the_salesforce_event_arrives_after_pgforce_wrote_the_field() {
    let h = harness().await;
    let person = human(&h.emulator).await;
    let cfg = config(&h);
    assert_eq!(
        cfg.inbound[0].source,
        pgforce::config::inbound::InboundSource::Cdc
    );
    let out = h.run_named(cfg.clone()).await;
    h.sql(
        "INSERT INTO users (email, first_name, last_name) VALUES
           ('ann@example.com', 'Ann', 'Lee'), ('bob@example.com', 'Bob', 'Ray')",
    )
    .await;
    let mut ids = Vec::new();
    for e in ["ann@example.com", "bob@example.com"] {
        wait_until(&format!("{e} linked"), DEADLINE, || async {
            column(&h, e, "salesforce_id")
                .await
                .ok_or_else(|| "not yet".to_string())
        })
        .await;
        ids.push(column(&h, e, "salesforce_id").await.unwrap());
    }
    // The inbound side subscribes and stores a position (an applied event).
    let inb = inbound(&cfg);
    person
        .update_record("Contact", &ids[1], &record(json!({"LeadSource": "Web"})))
        .await
        .unwrap();
    wait_column(&h, "bob@example.com", "lead_source", "Web").await;
    inb.stop().await.expect("inbound stops");
    out.stop().await.expect("outbound stops");

    // Both sides change ann's first name, Salesforce last; pgforce sees neither yet.
    let conflicts = pipeline_counter("pgforce_bidi_conflicts_total", &cfg.name);
    h.sql("UPDATE users SET first_name = 'PgAnn' WHERE email = 'ann@example.com'")
        .await;
    // Later at Salesforce's precision (SystemModstamp has milliseconds): pacing only.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    person
        .update_record("Contact", &ids[0], &record(json!({"FirstName": "SfAnn"})))
        .await
        .unwrap();

    // pgforce writes ann's change first (bob's later change landing means it did): the
    // newer Salesforce value stays.
    let out = h.run_named(cfg.clone()).await;
    h.sql("UPDATE users SET plan = 'Pro' WHERE email = 'bob@example.com'")
        .await;
    wait_field(&h, "bob@example.com", "Department", "Pro").await;
    assert_eq!(
        contact(&h, "ann@example.com")["FirstName"],
        json!("SfAnn"),
        "the older Postgres value did not overwrite Salesforce's newer one"
    );

    // Then the event arrives: Salesforce's value wins in Postgres too.
    let inb = inbound(&cfg);
    wait_column(&h, "ann@example.com", "first_name", "SfAnn").await;
    assert!(
        pipeline_counter("pgforce_bidi_conflicts_total", &cfg.name) > conflicts,
        "the conflict is counted"
    );
    super::pair::differences(&h)
        .await
        .expect("both sides equal");
    assert_eq!(contact(&h, "ann@example.com")["FirstName"], json!("SfAnn"));
    inb.stop().await.expect("inbound stops");
    out.stop().await.expect("outbound stops");
}
