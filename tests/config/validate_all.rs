//! `validate` reports every problem it finds in one run: the config's own errors together
//! with every secret that does not resolve, and the findings of every pipeline it could
//! check even when an earlier one could not be checked.

use std::process::Command;

use pgforce::config::{Config, ConfigError};
use pgforce::testing::TempCluster;
use pgforce_emulator::{config as emu, Emulator, EmulatorConfig};

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A pipeline section; `db` and `sf` are the database URL reference and the org's URL.
fn pipeline(name: &str, db: &str, sf: &str, column: &str) -> String {
    format!(
        r#"
[[pipelines]]
name = "{name}"
publication = "pgforce_{name}"
slot = "pgforce_{name}"
source = {{ database_url = "{db}" }}

[pipelines.salesforce]
login_url = "{sf}"
auth = {{ type = "client_credentials", client_id = "{client_id}", client_secret = "env:PGFORCE_VALIDATE_ALL_SECRET" }}
instance_url = "{sf}"

[[pipelines.mappings]]
name = "accounts"
table = "public.accounts"
object = "Account"
external_id = {{ column = "id", field = "External_Id__c" }}

[pipelines.mappings.fields]
{column} = "Name"
"#,
        client_id = emu::DEMO_CLIENT_ID,
    )
}

#[test]
fn config_errors_and_unresolvable_secrets_are_reported_together() {
    let toml = format!(
        "{}\n[pipelines.batching]\nmax_batch_rows = 0\n",
        pipeline(
            "first",
            "env:PGFORCE_VALIDATE_ALL_NEVER_SET",
            "http://127.0.0.1:9",
            "name"
        )
    );
    let Err(ConfigError::Invalid(errors)) = Config::from_toml(&toml) else {
        panic!("the config is invalid");
    };
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert!(
        keys.contains(&"pipelines[0].batching.max_batch_rows"),
        "the rule error is reported: {keys:?}"
    );
    assert!(
        keys.contains(&"pipelines[0].source.database_url"),
        "and so is the secret that does not resolve: {keys:?}"
    );
}

#[tokio::test]
async fn a_pipeline_that_cannot_be_checked_does_not_hide_the_next_ones_findings() {
    let cluster = TempCluster::start().unwrap();
    let (pg, conn) =
        tokio_postgres::connect(&cluster.conn_string("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    pg.batch_execute("CREATE TABLE public.accounts (id int PRIMARY KEY, name text)")
        .await
        .unwrap();
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgforce.toml");
    // The first org is unreachable; the second is checked and maps a missing column.
    let toml = pipeline(
        "unreachable",
        "env:PGFORCE_VALIDATE_ALL_DB",
        "http://127.0.0.1:9",
        "name",
    ) + &pipeline(
        "checked",
        "env:PGFORCE_VALIDATE_ALL_DB",
        emulator.base_url(),
        "no_such_column",
    );
    std::fs::write(&path, toml).unwrap();
    let cfg = path.to_str().unwrap().to_string();
    let db = cluster.url("postgres");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_pgforce"))
            .args(["validate", "--config", &cfg])
            .env("PGFORCE_VALIDATE_ALL_DB", db)
            .env("PGFORCE_VALIDATE_ALL_SECRET", emu::DEMO_CLIENT_SECRET)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let all = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a pipeline could not be checked: {all}"
    );
    assert!(
        all.contains("could not check pipelines[0] (unreachable)"),
        "names the pipeline it could not check: {all}"
    );
    assert!(
        all.contains("pipelines[1].mappings[0].fields.no_such_column")
            && all.contains("pg.column_missing"),
        "still reports the second pipeline's findings: {all}"
    );
    assert!(
        !all.contains(emu::DEMO_CLIENT_SECRET),
        "no secret in the output: {all}"
    );
}
