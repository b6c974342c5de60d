//! [`supervise`]: keeps one pipeline running, restarting it after transient failures with
//! capped backoff, and stops for good on shutdown or a permanent error.

use std::time::{Duration, Instant};

use tracing::{info_span, warn, Instrument};

use super::run::{run_pipeline, RunOptions};
use super::PipelineError;
use crate::config::PipelineConfig;
use crate::server::PipelineState;

/// Run a pipeline, restarting it after transient failures with capped backoff, until
/// shutdown or a permanent error.
pub async fn supervise(cfg: PipelineConfig, opts: RunOptions) -> Result<(), PipelineError> {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let span = info_span!("pipeline", pipeline = %cfg.name, slot = %cfg.slot);
        let result = run_pipeline(&cfg, &opts).instrument(span).await;
        if *opts.shutdown.borrow() {
            return result;
        }
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() => {
                warn!(pipeline = %cfg.name, error = %e, retry_in = ?backoff, "pipeline stopped; restarting");
                opts.health.update(&cfg.name, |s| {
                    s.state = PipelineState::Starting;
                    s.last_error = Some(e.to_string());
                });
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                let mut shutdown = opts.shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                tracing::error!(pipeline = %cfg.name, error = %e, "pipeline failed; not restarting (fix the cause, then start again)");
                opts.health.update(&cfg.name, |s| {
                    s.state = PipelineState::Failed;
                    s.last_error = Some(e.to_string());
                });
                return Err(e);
            }
        }
    }
}
