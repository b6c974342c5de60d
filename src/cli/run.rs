//! `pgforce run`: the daemon. Every pipeline of the config runs under a supervisor; the ops
//! listener serves /metrics, /healthz, /readyz and /status. The first SIGTERM/SIGINT drains
//! (flush complete transactions, checkpoint, confirm) within the grace period; a second
//! exits at once — safe, because the next start reconciles whatever was in flight.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use pgforce::pipeline::{supervise, BackfillProgress, RunOptions};
use pgforce::server::{resolve_listen_addr, Health, OpsServer};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// Options of `pgforce run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The pgforce TOML config.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Ops listener address (overrides `[server] listen`).
    #[arg(long)]
    pub listen: Option<String>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let health = Health::new();
    // The command line wins over PGFORCE_OPS_LISTEN, which wins over the config file.
    let addr = match args.listen.as_deref() {
        Some(a) => a
            .parse()
            .map_err(|e| anyhow::anyhow!("--listen {a:?}: {e}"))?,
        None => resolve_listen_addr(config.server.listen.as_deref())?,
    };
    let ops = OpsServer::start(addr, health.clone()).await?;
    info!(addr = %ops.local_addr(), "ops listener up (/metrics, /healthz, /readyz, /status)");

    let (stop_tx, stop_rx) = watch::channel(false);
    spawn_signal_handler(stop_tx);
    let mut tasks = JoinSet::new();
    // Bars only on a terminal; a service's stderr gets the log lines instead.
    let terminal_progress: Option<Arc<dyn BackfillProgress>> = std::io::stderr()
        .is_terminal()
        .then(|| Arc::new(super::progress::TerminalProgress::new()) as Arc<dyn BackfillProgress>);
    for (index, p) in config.pipelines.clone().into_iter().enumerate() {
        let opts = RunOptions {
            health: health.clone(),
            shutdown: stop_rx.clone(),
            status_interval: Duration::from_secs(5),
            index,
            journal: Some(config.journal.clone()),
            progress: terminal_progress.clone(),
        };
        if !p.inbound.is_empty() {
            let (p, health, stop) = (p.clone(), health.clone(), stop_rx.clone());
            tasks.spawn(async move {
                let name = p.name.clone();
                super::inbound::run_inbound(p, health, stop)
                    .await
                    .map_err(|e| pgforce::pipeline::PipelineError::Config {
                        pipeline: name,
                        message: e.to_string(),
                    })
            });
        }
        if !p.jobs.is_empty() {
            tasks.spawn(run_jobs(p.clone(), health.clone(), stop_rx.clone()));
        }
        // Only a pipeline with mappings replicates (it owns a slot).
        if !p.mappings.is_empty() {
            tasks.spawn(supervise(p, opts));
        }
    }
    let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
    let failed = wait_for_pipelines(&mut tasks, stop_rx, grace).await;
    let _ = ops.shutdown().await;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Wait until every pipeline ends, or until the grace period after a stop signal runs out.
/// `true` if a pipeline failed.
async fn wait_for_pipelines(
    tasks: &mut JoinSet<Result<(), pgforce::pipeline::PipelineError>>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> bool {
    let mut failed = false;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => return failed,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    error!(error = %e, "pipeline stopped with an error");
                    failed = true;
                }
                Some(Err(e)) => {
                    error!(error = %e, "pipeline task panicked");
                    failed = true;
                }
            },
            _ = stop.changed(), if deadline.is_none() => {
                info!(grace = ?grace, "stopping: draining pipelines");
                deadline = Some(tokio::time::Instant::now() + grace);
            }
            _ = sleep => {
                warn!("grace period over; exiting with work in flight (the next start reconciles it)");
                tasks.abort_all();
                return failed;
            }
        }
    }
}

/// Run the pipeline's query-driven jobs on their triggers until the stop signal. They hold
/// no state that needs draining: a run cut short is resent by the next.
async fn run_jobs(
    p: pgforce::config::PipelineConfig,
    health: Health,
    stop: watch::Receiver<bool>,
) -> Result<(), pgforce::pipeline::PipelineError> {
    let pipeline = p.name.clone();
    pgforce::jobs::run_scheduled(p, health, stop)
        .await
        .map_err(|e| pgforce::pipeline::PipelineError::Config {
            pipeline,
            message: e.to_string(),
        })
}

fn spawn_signal_handler(stop: watch::Sender<bool>) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        let mut signals = 0;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            signals += 1;
            if signals == 1 {
                let _ = stop.send(true);
            } else {
                warn!("second signal: exiting now");
                std::process::exit(130);
            }
        }
    });
}
