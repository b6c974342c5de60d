//! [`run_pipeline`]: one pipeline's life, start to stop. The start-up phases in order —
//! acquire the lock, open the flusher, prepare the slot, backfill, start the stream — then
//! the stream loop until shutdown or an error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::error::err_repl;
use super::lock::acquire_lock;
use super::setup::database_url;
use super::startup::{
    backfill_existing, open_flusher, open_journal, prepare_slot, start_stream, SlotStart,
};
use super::streamer::Streamer;
use super::PipelineError;
use crate::batch::{Epoch, FlushPolicy};
use crate::config::PipelineConfig;
use crate::lsn::Lsn;
use crate::mapping::Mapper;
use crate::metrics as m;
use crate::replication::ConnectOptions;
use crate::server::{Health, PipelineStatus};

/// What a running pipeline shares with the process.
#[derive(Clone)]
pub struct RunOptions {
    pub health: Health,
    /// Flips to `true` when the process should stop (SIGTERM/SIGINT).
    pub shutdown: watch::Receiver<bool>,
    /// How often slot health and status are refreshed.
    pub status_interval: Duration,
    /// The pipeline's position in the config (for key paths in validation findings).
    pub index: usize,
    /// Where to keep the replay journal (`None`: no journal).
    pub journal: Option<crate::config::JournalConfig>,
    /// Where backfill progress goes (`None`: log lines).
    pub progress: Option<Arc<dyn super::progress::BackfillProgress>>,
}

/// Run one pipeline until shutdown or an error.
pub async fn run_pipeline(cfg: &PipelineConfig, opts: &RunOptions) -> Result<(), PipelineError> {
    let p = cfg.name.as_str();
    opts.health.publish(PipelineStatus::starting(p));
    // Exported from the start: a standby, or a pipeline that cannot reach Postgres, reports
    // 0 (the alerts aggregate over replicas) instead of having no series at all.
    metrics::gauge!(m::SLOT_ACTIVE, "pipeline" => p.to_string()).set(0.0);
    metrics::gauge!(m::PIPELINE_UP, "pipeline" => p.to_string()).set(0.0);
    super::zero_series::register(cfg);
    let db = database_url(cfg)?;
    let Some(state) = acquire_lock(cfg, &db, opts).await? else {
        return Ok(());
    };
    metrics::gauge!(m::PIPELINE_UP, "pipeline" => p.to_string()).set(1.0);
    let flusher = open_flusher(cfg, opts, state.clone()).await?;
    let conn_opts = ConnectOptions::parse(&db).map_err(err_repl(p))?;
    let SlotStart {
        pg,
        repl,
        snapshot,
        start_lsn,
        fresh,
        checkpoint,
        mut resume,
    } = prepare_slot(cfg, &conn_opts, &state).await?;
    let mut mapper = Mapper::new(cfg);
    backfill_existing(
        cfg,
        opts,
        &conn_opts,
        &flusher,
        &mut mapper,
        (snapshot, fresh.then_some(start_lsn)),
        &mut resume,
    )
    .await?;
    let (stream, assembler) = start_stream(cfg, opts, &pg, repl, start_lsn).await?;
    let mut streamer = Streamer {
        cfg,
        flusher: &flusher,
        mapper,
        assembler,
        feedback: stream.feedback(),
        epoch: Epoch::new(),
        policy: FlushPolicy {
            max_rows: cfg.batching.max_batch_rows,
            max_bytes: cfg.batching.max_batch_bytes as usize,
            max_age: Duration::from_millis(cfg.batching.max_batch_age_ms),
        },
        in_txn: false,
        txn_lsn: Lsn::ZERO,
        txn_time: chrono::Utc::now(),
        skip_txn: false,
        applied_through: start_lsn.max(checkpoint),
        resume,
        last_checkpoint_write: Instant::now(),
        health: opts.health.clone(),
        journal: open_journal(cfg, opts)?,
        pg: &pg,
        decoded: metrics::counter!(m::CHANGES_DECODED, "pipeline" => cfg.name.clone()),
    };
    let result = streamer.run(stream, &pg, opts).await;
    metrics::gauge!(m::SLOT_ACTIVE, "pipeline" => p.to_string()).set(0.0);
    metrics::gauge!(m::PIPELINE_UP, "pipeline" => p.to_string()).set(0.0);
    result
}
