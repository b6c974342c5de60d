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
    /// Run the Salesforce-compatible API emulator.
    Emulator(EmulatorArgs),
}

/// Options of `pgforce emulator`.
#[derive(Debug, clap::Args)]
struct EmulatorArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8484)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// JSON config file (users, connected apps, limits, faults, schema and snapshot files).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
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
        Command::Emulator(args) => emulator(args).await,
    }
}

async fn demo() -> anyhow::Result<()> {
    let cluster = pgforce::testing::TempCluster::start()?;
    println!("throwaway Postgres up at {}", cluster.url("postgres"));
    Ok(())
}

async fn emulator(args: EmulatorArgs) -> anyhow::Result<()> {
    use pgforce::emulator::{config, Emulator, EmulatorConfig};
    let cfg = match &args.config {
        Some(path) => EmulatorConfig::from_file(path)?,
        None => EmulatorConfig::default(),
    };
    let handle = Emulator::start(cfg, std::net::SocketAddr::new(args.bind, args.port)).await?;
    let state = handle.state();
    println!("Salesforce emulator listening on {}", handle.base_url());
    println!(
        "  token endpoint: {}/services/oauth2/token",
        handle.base_url()
    );
    for app in &state.config.connected_apps {
        println!("  connected app client_id: {}", app.client_id);
        if app.client_secret.as_deref() == Some(config::DEMO_CLIENT_SECRET) {
            println!(
                "  client_secret (demo default): {}",
                config::DEMO_CLIENT_SECRET
            );
        }
    }
    for user in &state.config.users {
        println!("  user: {}", user.username);
        if user.password.as_deref() == Some(config::DEMO_PASSWORD) {
            println!("  password (demo default): {}", config::DEMO_PASSWORD);
        }
    }
    tokio::signal::ctrl_c().await?;
    println!("shutting down");
    handle.shutdown().await;
    Ok(())
}
