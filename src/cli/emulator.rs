//! `pgforce emulator`: run the Salesforce-compatible API emulator in the foreground.

use std::process::ExitCode;

use pgforce_emulator::{config, Emulator, EmulatorConfig, ProfileName};

/// Options of `pgforce emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8484)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// JSON config file (users, connected apps, limits, faults, schema and snapshot files).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Latency profile: `instant` answers at once; `realistic` answers like a typical
    /// production org (round trips, per-record cost, Bulk jobs that take seconds). Overrides
    /// the config file's `profile`.
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    /// Log every request (method, path, status, duration; never tokens or bodies).
    #[arg(long)]
    pub log_requests: bool,
}

/// The `--profile` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Profile {
    /// No added latency (the default).
    Instant,
    /// A typical production org.
    Realistic,
}

impl From<Profile> for ProfileName {
    fn from(p: Profile) -> Self {
        match p {
            Profile::Instant => ProfileName::Instant,
            Profile::Realistic => ProfileName::Realistic,
        }
    }
}

pub async fn emulator(args: EmulatorArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = match &args.config {
        Some(path) => EmulatorConfig::from_file(path)?,
        None => EmulatorConfig::default(),
    };
    if let Some(p) = args.profile {
        cfg.profile = p.into();
    }
    cfg.log_requests |= args.log_requests;
    let handle = Emulator::start(cfg, std::net::SocketAddr::new(args.bind, args.port)).await?;
    let state = handle.state();
    println!("Salesforce emulator listening on {}", handle.base_url());
    println!("  latency profile: {:?}", state.config.profile);
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
    Ok(ExitCode::SUCCESS)
}
