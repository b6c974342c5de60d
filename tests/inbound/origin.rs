//! Both directions in one pipeline on one database: the outbound side writes Salesforce
//! Ids back under `replication_origin` while the inbound side writes rows under its own
//! origin (`<replication_origin>_inbound`), so neither hits "origin is active in another
//! session" (55006), and the outbound decoder skips both: a row pgforce wrote into
//! Postgres is never sent back to Salesforce, even from a table the outbound side maps.

use std::time::Duration;

use pgforce::pipeline::{supervise, RunOptions};
use pgforce::server::{Health, PipelineState};
use serde_json::json;
use tokio::sync::watch;

use crate::support::inbound::Env;
use crate::support::wait::{wait_until, DEADLINE};

/// `accounts` → Account with a write-back, and (deliberately, to catch an echo) the
/// inbound mirror table `contacts_mirror` → Account keyed by the Contact's Id.
const MAPPINGS: &str = r#"
[[pipelines.mappings]]
name = "accounts"
table = "public.accounts"
object = "Account"
external_id = { column = "id", field = "External_Id__c" }
write_back = { column = "sf_id" }

[pipelines.mappings.fields]
name = "Name"

[[pipelines.mappings]]
name = "echo"
table = "public.contacts_mirror"
object = "Account"
external_id = { column = "id", field = "External_Id__c" }

[pipelines.mappings.fields]
last_name = "Name"
"#;

const CONTACTS: &str = r#"
[[pipelines.inbound]]
object = "Contact"
table = "public.contacts_mirror"
mode = "mirror"
source = "poll"
poll_interval_secs = 1

[pipelines.inbound.fields]
LastName = "last_name"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_and_inbound_share_a_database_without_echo() {
    let env = Env::start_with("inorigin", MAPPINGS, CONTACTS).await;
    assert_eq!(env.pipeline.inbound_origin(), "pgforce_inbound");
    env.create_tables().await;
    let pg = env.client().await;
    pg.batch_execute("CREATE TABLE accounts (id text PRIMARY KEY, name text NOT NULL, sf_id text)")
        .await
        .unwrap();
    let before = env.create("Contact", json!({"LastName": "Before"})).await;

    // The outbound side first, so its snapshot (backfill) sees an empty mirror table and
    // everything the inbound side writes reaches it through the stream.
    let health = Health::new();
    let (stop_out, shutdown) = watch::channel(false);
    let outbound = tokio::spawn(supervise(
        env.pipeline.clone(),
        RunOptions {
            health: health.clone(),
            shutdown,
            status_interval: Duration::from_millis(200),
            index: 0,
            journal: None,
            progress: None,
        },
    ));
    wait_until("the outbound side streams", DEADLINE, || async {
        assert!(!outbound.is_finished(), "the outbound side stopped");
        match health.get("inorigin") {
            Some(s) if s.state == PipelineState::Streaming => Ok(()),
            other => Err(format!("state {:?}", other.map(|s| s.state))),
        }
    })
    .await;
    let inbound = env.run();
    let after = env.create("Contact", json!({"LastName": "After"})).await;
    wait_until("both Contacts are mirrored", DEADLINE, || async {
        let n: i64 = pg
            .query_one(
                "SELECT count(*) FROM contacts_mirror WHERE id = ANY($1)",
                &[&vec![before.clone(), after.clone()]],
            )
            .await
            .unwrap()
            .get(0);
        if n == 2 {
            Ok(())
        } else {
            Err(format!("{n} of 2 mirrored"))
        }
    })
    .await;

    // The write-back session holds `pgforce` meanwhile: an outbound row after the inbound
    // writes goes out and gets its Id back, so the decoder has passed them.
    pg.batch_execute("INSERT INTO accounts (id, name) VALUES ('a1', 'Acme')")
        .await
        .unwrap();
    wait_until(
        "the account is synced and its Id written back",
        DEADLINE,
        || async {
            let sf_id: Option<String> = pg
                .query_one("SELECT sf_id FROM accounts WHERE id = 'a1'", &[])
                .await
                .unwrap()
                .get(0);
            sf_id.map(|_| ()).ok_or_else(|| "no sf_id yet".to_string())
        },
    )
    .await;

    // Nothing the inbound side wrote came back as an Account.
    let mut external_ids = Vec::new();
    env.emulator
        .state()
        .store
        .scan("Account", true, |r| {
            external_ids.push(r.get("External_Id__c").cloned());
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(
        external_ids,
        vec![Some(json!("a1"))],
        "only the outbound row reached Salesforce"
    );
    let origins: Vec<String> = pg
        .query(
            "SELECT roname FROM pg_replication_origin ORDER BY roname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(origins, ["pgforce", "pgforce_inbound"]);

    inbound
        .stop()
        .await
        .expect("the inbound side stops cleanly");
    let _ = stop_out.send(true);
    outbound
        .await
        .expect("no panic")
        .expect("the outbound side stops cleanly");
}
