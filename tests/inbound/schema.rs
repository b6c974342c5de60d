//! `pgforce schema` (the real binary): a dry run prints the CREATE TABLE for a missing
//! target and exits 3; `--apply` creates it with the right types and key; afterwards the
//! table is "as needed"; a column added to the config is reported and added.

use std::process::Command;

use pgforce_emulator::config as emu;

use crate::support::inbound::Env;

const ENTRY: &str = r#"
[[pipelines.inbound]]
object = "Opportunity"
table = "sf.deals"
source = "poll"
fields = { Name = "name", Amount = "amount", CloseDate = "close_date", IsWon = "is_won" }
"#;

fn schema(env: &Env, config: &std::path::Path, apply: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgforce"));
    cmd.args(["schema", "--config"]).arg(config);
    if apply {
        cmd.arg("--apply");
    }
    let out = cmd
        .env("PGFORCE_TEST_DATABASE_URL", &env.db_url)
        .env("PGFORCE_TEST_SF_SECRET", emu::DEMO_CLIENT_SECRET)
        .output()
        .expect("run pgforce schema");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_creates_and_diffs_the_target_table() {
    let env = Env::start("inschema", ENTRY).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pgforce.toml");
    env.builder.write(&config);

    let (code, out) = schema(&env, &config, false);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("CREATE TABLE \"sf\".\"deals\""), "{out}");
    let pg = env.client().await;
    let exists: bool = pg
        .query_one("SELECT to_regclass('sf.deals') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "a dry run changes nothing");

    let (code, out) = schema(&env, &config, true);
    assert_eq!(code, 0, "{out}");
    let types: Vec<(String, String)> = pg
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'sf.deals'::regclass AND attnum > 0 ORDER BY attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let t = |c: &str| types.iter().find(|(n, _)| n == c).map(|(_, t)| t.as_str());
    assert_eq!(t("id"), Some("text"));
    assert_eq!(t("amount"), Some("numeric(16,2)"));
    assert_eq!(t("close_date"), Some("date"));
    assert_eq!(t("is_won"), Some("boolean"));
    assert_eq!(t("system_modstamp"), Some("timestamp with time zone"));
    let pk: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'sf.deals'::regclass AND indisprimary",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pk, 1);

    let (code, out) = schema(&env, &config, false);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("as needed"), "{out}");

    // A field added to the config: the difference is printed, then added.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "IsWon = \"is_won\"",
        "IsWon = \"is_won\", Probability = \"probability\"",
    );
    std::fs::write(&config, text).unwrap();
    let (code, out) = schema(&env, &config, false);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("ADD COLUMN \"probability\" numeric(3,0)"),
        "{out}"
    );
    let (code, out) = schema(&env, &config, true);
    assert_eq!(code, 0, "{out}");
}
