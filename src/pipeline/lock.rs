//! Start-up phase 1, [`acquire_lock`]: the state store, the pipeline's HA advisory lock
//! (another replica may own it; this one then stands by) and, when the pipeline writes
//! Salesforce Ids back, the replication origin that keeps those writes out of the stream.

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::error::err_state;
use super::run::RunOptions;
use super::PipelineError;
use crate::checkpoint::StateStore;
use crate::config::PipelineConfig;
use crate::server::PipelineState;

/// Connect the state store and own the pipeline: its advisory lock, then (when writing
/// back) its replication origin. `None` on shutdown while waiting.
pub(super) async fn acquire_lock(
    cfg: &PipelineConfig,
    db: &str,
    opts: &RunOptions,
) -> Result<Option<Arc<StateStore>>, PipelineError> {
    let p = cfg.name.as_str();
    let state = Arc::new(
        StateStore::connect(db, &cfg.state_schema, p)
            .await
            .map_err(err_state(p))?,
    );
    if !wait_for_lock(&state, opts).await? {
        return Ok(None);
    }
    let writes_back = cfg.mappings.iter().any(|m| m.write_back.is_some());
    if writes_back && !use_origin(&state, cfg, opts).await? {
        return Ok(None);
    }
    Ok(Some(state))
}

/// Wait for the pipeline's advisory lock (another replica may own it). `false` on shutdown.
async fn wait_for_lock(state: &StateStore, opts: &RunOptions) -> Result<bool, PipelineError> {
    let p = state.pipeline().to_string();
    let mut shutdown = opts.shutdown.clone();
    let mut announced = false;
    loop {
        if state.try_lock_pipeline().await.map_err(err_state(&p))? {
            return Ok(true);
        }
        if !announced {
            info!("another replica owns this pipeline; standing by");
            opts.health.update(&p, |s| {
                s.state = PipelineState::Standby;
                s.postgres_connected = true;
            });
            announced = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return Ok(false),
        }
    }
}

/// Mark the state store's session (the one that writes Salesforce Ids back) with the
/// pipeline's replication origin, so the decoder skips pgforce's own writes (no echo).
///
/// An origin is active in one session at a time. Right after a restart the previous
/// session may still hold it for a moment (Postgres releases the advisory lock before the
/// origin), so "in use" is retried briefly; if it persists, another pipeline on this
/// database uses the same `replication_origin`. `false` on shutdown.
async fn use_origin(
    state: &StateStore,
    cfg: &PipelineConfig,
    opts: &RunOptions,
) -> Result<bool, PipelineError> {
    let p = cfg.name.as_str();
    let origin = cfg.replication_origin.as_str();
    let mut shutdown = opts.shutdown.clone();
    let mut attempts = 0;
    loop {
        let err = match crate::sink::use_origin(state, origin).await {
            Ok(()) => return Ok(true),
            Err(e) => e,
        };
        match err.sql_state() {
            Some("42501") => {
                return Err(PipelineError::Config {
                    pipeline: p.into(),
                    message: format!(
                        "writing Salesforce Ids back (`write_back`) needs the replication origin \
                         `{origin}`, and the database role may not use replication origins ({err}); \
                         connect as a superuser or grant EXECUTE on \
                         pg_replication_origin_create(text) and \
                         pg_replication_origin_session_setup(text) to the role"
                    ),
                })
            }
            Some("55006") if attempts < 20 => attempts += 1,
            Some("55006") => {
                return Err(PipelineError::Config {
                    pipeline: p.into(),
                    message: format!(
                        "replication origin `{origin}` is active in another session ({err}); \
                         every pipeline that writes back into the same database needs its own \
                         `replication_origin` (pipelines[{}].replication_origin)",
                        opts.index
                    ),
                })
            }
            _ => return Err(err_state(p)(err)),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = shutdown.changed() => return Ok(false),
        }
    }
}
