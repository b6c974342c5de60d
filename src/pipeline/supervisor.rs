//! [`supervise`]: keeps one pipeline running, restarting it after retryable failures
//! (transient or throttled, per [`crate::error_class`]) with the one backoff helper, and
//! stops for good, with a `failed` status naming the error, on shutdown or a permanent or
//! authentication error (retrying those cannot help until an operator acts).

use std::time::{Duration, Instant};

use tracing::{info_span, warn, Instrument};

use super::run::{run_pipeline, RunOptions};
use super::PipelineError;
use crate::backoff::RetryPolicy;
use crate::config::PipelineConfig;
use crate::error_class::Classify;
use crate::server::PipelineState;

/// Run a pipeline, restarting it after transient failures with capped backoff, until
/// shutdown or a permanent error.
pub async fn supervise(cfg: PipelineConfig, opts: RunOptions) -> Result<(), PipelineError> {
    let policy = RetryPolicy {
        max_attempts: u32::MAX,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(30),
    };
    let mut retry = 0u32;
    loop {
        let started = Instant::now();
        let span = info_span!("pipeline", pipeline = %cfg.name, slot = %cfg.slot);
        let result = run_pipeline(&cfg, &opts).instrument(span).await;
        if *opts.shutdown.borrow() {
            return result;
        }
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.class().is_retryable() => {
                if started.elapsed() > Duration::from_secs(60) {
                    retry = 0;
                }
                retry += 1;
                let backoff = policy.delay(retry).max(Duration::from_millis(200));
                warn!(pipeline = %cfg.name, error = %e, class = e.class().as_str(), retry_in = ?backoff, "pipeline stopped; restarting");
                opts.health.update(&cfg.name, |s| {
                    s.state = PipelineState::Starting;
                    s.last_error = Some(e.to_string());
                });
                let mut shutdown = opts.shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
            Err(e) => {
                tracing::error!(pipeline = %cfg.name, error = %e, class = e.class().as_str(), "pipeline failed; not restarting (fix the cause, then start again)");
                opts.health.update(&cfg.name, |s| {
                    s.state = PipelineState::Failed;
                    s.last_error = Some(e.to_string());
                });
                return Err(e);
            }
        }
    }
}
