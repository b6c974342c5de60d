//! The `pgforce` command line: the only place `anyhow` is used.

use clap::{Parser, Subcommand};

/// Keeps PostgreSQL and Salesforce in sync in real time.
#[derive(Debug, Parser)]
#[command(name = "pgforce", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a throwaway Postgres (or use DATABASE_URL) and the built-in Salesforce emulator.
    Demo,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Demo => demo().await,
    }
}

async fn demo() -> anyhow::Result<()> {
    let cluster = pgforce::testing::TempCluster::start()?;
    println!("throwaway Postgres up at {}", cluster.url("postgres"));
    Ok(())
}
