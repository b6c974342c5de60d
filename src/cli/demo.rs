//! `pgforce demo`: the whole product on one machine in a minute. Starts the built-in
//! Salesforce emulator and a throwaway Postgres (or uses `DATABASE_URL`), creates a sample
//! schema (accounts, users, orders), runs the `deploy/examples/demo.toml` pipeline, drives
//! a small workload and prints both sides until the workload is done or Ctrl-C.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use pgforce::config::{Config, SecretRef, SecretResolver};
use pgforce::pipeline::{supervise, RunOptions};
use pgforce::server::Health;
use pgforce::testing::TempCluster;
use pgforce_emulator::{config as emu, Emulator, EmulatorConfig, EmulatorHandle};
use rand::Rng;
use secrecy::SecretString;
use tokio::sync::watch;

const DEMO_CONFIG: &str = include_str!("../../deploy/examples/demo.toml");

/// Options of `pgforce demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Accounts to create (users and orders scale with it).
    #[arg(long, default_value_t = 50)]
    pub accounts: usize,
    /// Seconds of updates and deletes after the initial load.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
}

struct Resolver(HashMap<String, String>);

impl SecretResolver for Resolver {
    fn resolve(&self, reference: &SecretRef) -> Result<SecretString, String> {
        let SecretRef::Env(name) = reference else {
            return Err("the demo resolves env: references only".into());
        };
        self.0
            .get(name)
            .map(|v| SecretString::from(v.clone()))
            .ok_or_else(|| format!("environment variable {name} is not set"))
    }
}

const SCHEMA: &str = "
CREATE TYPE plan AS ENUM ('free', 'pro', 'enterprise');
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, plan plan NOT NULL DEFAULT 'free',
    tags text[], metadata jsonb, last_seen_at timestamptz);
CREATE TABLE users (id bigint PRIMARY KEY, account_id bigint REFERENCES accounts(id),
    first_name text, last_name text NOT NULL, email text, status text NOT NULL DEFAULT 'active');
CREATE TABLE orders (id bigint PRIMARY KEY, account_id bigint REFERENCES accounts(id), title text NOT NULL,
    stage text NOT NULL, amount numeric(18,2), close_date date NOT NULL);
";

pub async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse()?).await?;
    println!("Salesforce emulator: {}", emulator.base_url());
    let (_cluster, db_url) = match std::env::var("DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            println!("starting a throwaway PostgreSQL (wal_level=logical)...");
            let c = tokio::task::spawn_blocking(TempCluster::start).await??;
            let url = c.url("postgres");
            (Some(c), url)
        }
    };
    println!("PostgreSQL: {db_url}");
    let (pg, conn) = pgforce::pgconn::connect(&db_url).await?;
    tokio::spawn(conn);
    pg.batch_execute(SCHEMA).await?;

    let config = demo_config(&emulator, &db_url)?;
    let health = Health::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let pipeline = config.pipelines[0].clone();
    let runner = tokio::spawn(supervise(
        pipeline,
        RunOptions {
            health: health.clone(),
            shutdown: stop_rx,
            status_interval: Duration::from_secs(1),
            index: 0,
            journal: None,
            progress: None,
        },
    ));

    let started = Instant::now();
    let workload = drive_workload(&pg, args.accounts, Duration::from_secs(args.seconds));
    tokio::pin!(workload);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut interrupted = false;
    loop {
        tokio::select! {
            done = &mut workload => { done?; break; }
            _ = ticker.tick() => {
                print_status(&pg, &emulator, &health, started).await?;
                if runner.is_finished() { break; }
            }
            _ = tokio::signal::ctrl_c() => { interrupted = true; break; }
        }
    }
    if !interrupted {
        println!("workload done; waiting for the pipeline to catch up...");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && !runner.is_finished() && !in_sync(&pg, &emulator).await?
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    print_status(&pg, &emulator, &health, started).await?;
    let _ = stop_tx.send(true);
    if let Ok(Err(e)) = runner.await {
        eprintln!("pipeline error: {e}");
    }
    let ok = in_sync(&pg, &emulator).await?;
    println!(
        "\n{}",
        if ok {
            "Postgres and Salesforce hold the same record counts."
        } else {
            "Counts differ (interrupted, or still catching up)."
        }
    );
    emulator.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn demo_config(emulator: &EmulatorHandle, db_url: &str) -> anyhow::Result<Config> {
    let text = DEMO_CONFIG
        .replace("http://127.0.0.1:8080", emulator.base_url())
        .replace(
            "client_id = \"pgforce-demo\"",
            &format!("client_id = \"{}\"", emu::DEMO_CLIENT_ID),
        );
    let secrets = Resolver(HashMap::from([
        ("DATABASE_URL".to_string(), db_url.to_string()),
        (
            "SF_CLIENT_SECRET".to_string(),
            emu::DEMO_CLIENT_SECRET.to_string(),
        ),
    ]));
    Ok(Config::from_toml_with(&text, &secrets)?)
}

async fn counts(pg: &tokio_postgres::Client) -> anyhow::Result<[i64; 3]> {
    let r = pg
        .query_one(
            "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM users WHERE status <> 'deleted'), (SELECT count(*) FROM orders)",
            &[],
        )
        .await?;
    Ok([r.get(0), r.get(1), r.get(2)])
}

fn sf_counts(emulator: &EmulatorHandle) -> [i64; 3] {
    let store = &emulator.state().store;
    ["Account", "Contact", "Opportunity"].map(|o| store.count(o, false).unwrap_or(0) as i64)
}

async fn in_sync(pg: &tokio_postgres::Client, emulator: &EmulatorHandle) -> anyhow::Result<bool> {
    Ok(counts(pg).await? == sf_counts(emulator))
}

async fn print_status(
    pg: &tokio_postgres::Client,
    emulator: &EmulatorHandle,
    health: &Health,
    started: Instant,
) -> anyhow::Result<()> {
    let pgc = counts(pg).await?;
    let sfc = sf_counts(emulator);
    let st = health.snapshot().into_iter().next();
    let state = st.as_ref().map_or("starting".to_string(), |s| {
        format!("{:?}", s.state).to_lowercase()
    });
    let lsn = st
        .as_ref()
        .and_then(|s| s.confirmed_lsn.clone())
        .unwrap_or_else(|| "-".into());
    println!(
        "[{:>4}s] {:<11} lsn {:<12} | accounts {:>5} → Account {:>5} | users {:>5} → Contact {:>5} | orders {:>5} → Opportunity {:>5}",
        started.elapsed().as_secs(),
        state,
        lsn,
        pgc[0],
        sfc[0],
        pgc[1],
        sfc[1],
        pgc[2],
        sfc[2]
    );
    Ok(())
}

const STAGES: &[&str] = &["Prospecting", "Qualification", "Closed Won", "Closed Lost"];
const TAGS: &[&str] = &["vip", "beta", "partner", "trial"];

/// Initial load, then a steady mix of updates, inserts and deletes.
async fn drive_workload(
    pg: &tokio_postgres::Client,
    accounts: usize,
    run_for: Duration,
) -> anyhow::Result<()> {
    let n = accounts as i64;
    pg.execute(
        "INSERT INTO accounts SELECT g, 'Account ' || g, (ARRAY['free','pro','enterprise']::plan[])[1 + g % 3],
            ARRAY['vip','beta'], jsonb_build_object('seats', g), now() FROM generate_series(1, $1::bigint) g",
        &[&n],
    )
    .await?;
    pg.execute(
        "INSERT INTO users SELECT g, 1 + g % $1::bigint, 'First' || g, 'Last' || g, 'user' || g || '@example.com', 'active'
         FROM generate_series(1, $1::bigint * 3) g",
        &[&n],
    )
    .await?;
    pg.execute(
        "INSERT INTO orders SELECT g, 1 + g % $1::bigint, 'Order ' || g, 'Prospecting', g * 10.5, current_date + 30
         FROM generate_series(1, $1::bigint * 2) g",
        &[&n],
    )
    .await?;
    let end = Instant::now() + run_for;
    let mut next_order = n * 2 + 1;
    while Instant::now() < end {
        let (acct, user, stage, tag) = {
            let mut rng = rand::rng();
            (
                rng.random_range(1..=n),
                rng.random_range(1..=n * 3),
                STAGES[rng.random_range(0..STAGES.len())],
                TAGS[rng.random_range(0..TAGS.len())],
            )
        };
        pg.execute(
            "UPDATE accounts SET last_seen_at = now(), tags = ARRAY[$2::text] WHERE id = $1",
            &[&acct, &tag],
        )
        .await?;
        pg.execute(
            "UPDATE orders SET stage = $2 WHERE account_id = $1",
            &[&acct, &stage],
        )
        .await?;
        pg.execute(
            "INSERT INTO orders VALUES ($1, $2, $3, 'Prospecting', 99.95, current_date + 14)",
            &[&next_order, &acct, &format!("Order {next_order}")],
        )
        .await?;
        next_order += 1;
        pg.execute(
            "UPDATE users SET status = 'deleted' WHERE id = $1",
            &[&user],
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
