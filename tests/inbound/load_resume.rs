//! The paged SOQL initial load resumes part-way: the real `pgforce run` is killed (-9)
//! after it committed a page of a few thousand existing records, and the restarted binary
//! goes on after the stored Id — every record ends up in Postgres once, none missing. Then
//! `pgforce status` (table and `--json`) shows the inbound entry: object, table, mode,
//! source, phase and position.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pgforce_emulator::{config as emu, EmulatorConfig, ProfileName};
use serde_json::{json, Map, Value};

use crate::support::inbound::Env;
use crate::support::wait::{wait_until, Deadline};

const RECORDS: usize = 7_000;

const ACCOUNTS: &str = r#"
[[pipelines.inbound]]
object = "Account"
table = "sf.accounts"
source = "poll"
initial_load = "soql"
poll_interval_secs = 1
fields = { Name = "name" }
"#;

fn spawn(env: &Env, config: &std::path::Path, log: &std::path::Path, listen: &str) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_pgforce"))
        .args(["run", "--config"])
        .arg(config)
        .args(["--listen", listen])
        .env("PGFORCE_TEST_DATABASE_URL", &env.db_url)
        .env("PGFORCE_TEST_SF_SECRET", emu::DEMO_CLIENT_SECRET)
        .env_remove("PGFORCE_OPS_LISTEN")
        .env("RUST_LOG", "info,tokio_postgres=warn")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn pgforce run")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soql_load_resumes_after_kill_9_and_status_shows_the_entry() {
    // Realistic latency: each 2,000-record page takes seconds, so the kill lands mid-load.
    let emulator = EmulatorConfig {
        daily_api_limit: 50_000_000,
        profile: ProfileName::Realistic,
        ..EmulatorConfig::default()
    };
    let env = Env::start_on("inresume", "", ACCOUNTS, emulator).await;
    env.create_tables().await;
    let state = env.emulator.state();
    let user = state.default_user().expect("the demo user").id;
    let bodies: Vec<Map<String, Value>> = (0..RECORDS)
        .map(|i| Map::from_iter([("Name".to_string(), json!(format!("acct-{i}")))]))
        .collect();
    let ids: Vec<String> = state
        .store
        .insert_many("Account", &bodies, user)
        .into_iter()
        .map(|r| r.expect("seed an Account").to_string())
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pgforce.toml");
    env.builder.write(&config);
    let log = dir.path().join("run.log");
    let tail = || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        t[t.len().saturating_sub(3000)..].to_string()
    };
    let pg = env.client().await;
    let count = || async {
        pg.query_one("SELECT count(*) FROM sf.accounts", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .map_err(|e| e.to_string())
    };

    let mut child = spawn(&env, &config, &log, "127.0.0.1:0");
    wait_until(
        "a page is loaded and the load is still going",
        Deadline::within(Duration::from_secs(90)),
        || async {
            let loading: i64 = pg
                .query_one(
                    "SELECT count(*) FROM pgforce.inbound_positions \
                     WHERE phase = 'loading' AND load_after_id IS NOT NULL",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?
                .get(0);
            let n = count().await?;
            (loading == 1 && n > 0)
                .then_some(())
                .ok_or_else(|| format!("{n} rows, loading {loading}\n{}", tail()))
        },
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = count().await.unwrap();
    assert!(
        at_kill > 0 && (at_kill as usize) < RECORDS,
        "killed part-way: {at_kill} of {RECORDS}"
    );

    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = spawn(&env, &config, &log, &addr);
    wait_until(
        "the load finished after the restart",
        Deadline::within(Duration::from_secs(120)),
        || async {
            let streaming: i64 = pg
                .query_one(
                    "SELECT count(*) FROM pgforce.inbound_positions WHERE phase = 'streaming'",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?
                .get(0);
            let n = count().await?;
            (streaming == 1 && n as usize == RECORDS)
                .then_some(())
                .ok_or_else(|| format!("{n} of {RECORDS} rows, streaming {streaming}\n{}", tail()))
        },
    )
    .await;
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("resuming the initial load"),
        "the restart resumed, not reloaded:\n{}",
        tail()
    );
    let rows: Vec<(String, String)> = pg
        .query("SELECT id, name FROM sf.accounts ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut want: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), format!("acct-{i}")))
        .collect();
    want.sort();
    assert_eq!(rows.len(), RECORDS);
    assert!(rows == want, "every record once, with its name");

    // `pgforce status` shows the entry, durable and live.
    let status = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgforce"));
        cmd.args(["status", "--config"])
            .arg(&config)
            .args(["--endpoint", &format!("http://{addr}")])
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
    };
    let table = status(false);
    let line = table
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("inbound Account -> sf.accounts (mirror, poll)")
        })
        .unwrap_or_else(|| panic!("no inbound line:\n{table}"));
    assert!(line.contains("streaming position "), "{line}");
    let report: Value = serde_json::from_str(&status(true)).unwrap();
    let entry = &report[0]["inbound"][0];
    assert_eq!(entry["object"], "Account", "{report:#}");
    assert_eq!(entry["table"], "sf.accounts");
    assert_eq!(
        (entry["mode"].as_str(), entry["source"].as_str()),
        (Some("mirror"), Some("poll"))
    );
    assert_eq!(entry["phase"], "streaming");
    assert!(entry["position"].is_string(), "{entry:#}");
    assert_eq!(entry["state"], "streaming", "the live view: {entry:#}");
    // Loaded records are not change events: the counter starts at zero.
    assert!(entry["events_applied"].is_u64(), "{entry:#}");
    child.kill().unwrap();
    child.wait().unwrap();
}
