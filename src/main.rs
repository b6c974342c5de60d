//! The `pgforce` command line: the only place `anyhow` is used (see `cli`).

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Keeps PostgreSQL and Salesforce in sync in real time.
#[derive(Debug, Parser)]
#[command(name = "pgforce", version, about, long_about = None)]
struct Cli {
    /// Log format: human-readable text, or JSON lines for clusters.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pipelines of a config (the daemon).
    Run(cli::run::RunArgs),
    /// Check a config against the Postgres catalog and the Salesforce describe.
    Validate(cli::validate::ValidateArgs),
    /// Create the inbound entries' target tables from describe, or show their differences.
    Schema(cli::schema::SchemaArgs),
    /// Show each pipeline's checkpoint, slot lag, in-flight jobs and dead letters.
    Status(cli::status::StatusArgs),
    /// List, retry or discard dead letters.
    Errors(cli::errors::ErrorsArgs),
    /// Run the Salesforce-compatible API emulator.
    #[cfg(feature = "embedded-emulator")]
    Emulator(cli::emulator::EmulatorArgs),
    /// Demo: the emulator, a throwaway Postgres (or DATABASE_URL) and a live pipeline.
    #[cfg(feature = "embedded-emulator")]
    Demo(cli::demo::DemoArgs),
    /// Re-apply a range of the change journal to Salesforce (the live checkpoint stays put).
    Replay(cli::replay::ReplayArgs),
    /// List the query-driven jobs, or run one now (`--dry-run` shows what would change).
    Jobs(cli::jobs::JobsArgs),
}

fn init_logging(format: LogFormat, quiet: bool) {
    // The demo prints its own status table; its logs only need to show trouble.
    let default = if quiet {
        "warn"
    } else {
        "info,tokio_postgres=warn"
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The demo and replay print their own output; their logs only need to show trouble.
fn quiet_logs(command: &Command) -> bool {
    match command {
        Command::Replay(_) => true,
        #[cfg(feature = "embedded-emulator")]
        Command::Demo(_) => true,
        _ => false,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, quiet_logs(&cli.command));
    let result = match cli.command {
        Command::Run(a) => cli::run::run(a).await,
        Command::Validate(a) => cli::validate::validate(a).await,
        Command::Schema(a) => cli::schema::schema(a).await,
        Command::Status(a) => cli::status::status(a).await,
        Command::Errors(a) => cli::errors::errors(a).await,
        #[cfg(feature = "embedded-emulator")]
        Command::Emulator(a) => cli::emulator::emulator(a).await,
        #[cfg(feature = "embedded-emulator")]
        Command::Demo(a) => cli::demo::demo(a).await,
        Command::Replay(a) => cli::replay::replay(a).await,
        Command::Jobs(a) => cli::jobs::jobs(a).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
