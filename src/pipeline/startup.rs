//! The start-up phases after the lock, in the order [`run_pipeline`](super::run) calls them:
//! [`open_flusher`] (log in to Salesforce, check the config against the database and the
//! org), [`prepare_slot`] (publication, preflight, slot, where to start),
//! [`backfill_existing`] (rows that exist before the slot) and [`start_stream`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::backfill_sink::FlushingBackfill;
use super::error::{err_repl, err_state};
use super::run::RunOptions;
use super::setup::{salesforce_client, table_refs};
use super::PipelineError;
use crate::checkpoint::{EpochPlan, StateStore};
use crate::config::order::object_order;
use crate::config::validate::{has_errors, render_table};
use crate::config::PipelineConfig;
use crate::journal::{Journal, JournalOptions};
use crate::lsn::Lsn;
use crate::mapping::Mapper;
use crate::metrics as m;
use crate::pgoutput::assembler::{Assembler, AssemblerConfig};
use crate::replication::{
    backfill, connect_client, ensure_publication, ensure_slot, preflight, BackfillOptions,
    BackfillSnapshot, ConnectOptions, PgProgressStore, PreflightError, PreflightErrors,
    PreflightSpec, PublicationPolicy, ReplicationConnection, ReplicationError, ReplicationStream,
    SlotState, StreamOptions,
};
use crate::server::PipelineState;
use crate::sink::{Flusher, FlusherOptions, SalesforceDestination};

/// Log in to Salesforce, check the pipeline against the database and the org, and build
/// the flusher that writes to it.
pub(super) async fn open_flusher(
    cfg: &PipelineConfig,
    opts: &RunOptions,
    state: Arc<StateStore>,
) -> Result<Flusher<SalesforceDestination>, PipelineError> {
    let p = cfg.name.as_str();
    let client = salesforce_client(cfg)?;
    client
        .login()
        .await
        .map_err(|source| PipelineError::Salesforce {
            pipeline: p.into(),
            source,
        })?;
    opts.health.update(p, |s| {
        s.postgres_connected = true;
        s.salesforce_connected = true;
    });
    let findings = super::check_pipeline(opts.index, cfg, &client).await?;
    if has_errors(&findings) {
        return Err(PipelineError::Config {
            pipeline: p.into(),
            message: format!(
                "the config does not fit the database or the org; fix these first (`pgforce validate` shows the same):\n{}",
                render_table(&findings)
            ),
        });
    }
    let order = object_order(cfg).map_err(|e| PipelineError::Config {
        pipeline: p.into(),
        message: e.to_string(),
    })?;
    Ok(Flusher::new(
        SalesforceDestination::new(client.clone())
            .with_calls_in_flight(cfg.batching.max_concurrent_calls),
        state,
        FlusherOptions {
            pipeline: p.into(),
            collections_threshold: cfg.batching.collections_threshold,
            max_rows: cfg.batching.max_batch_rows,
            max_step_bytes: crate::sink::MAX_STEP_BYTES,
            object_order: order,
            transient_retries: 5,
            max_bulk_jobs: cfg.batching.max_concurrent_bulk_jobs,
            paired_objects: cfg.pairs.clone(),
        },
    ))
}

/// Where the pipeline starts, and the connections it starts with.
pub(super) struct SlotStart {
    /// An ordinary session (enum types, slot health).
    pub pg: tokio_postgres::Client,
    pub repl: ReplicationConnection,
    /// The snapshot the backfill reads (the slot's own when it was just created).
    pub snapshot: BackfillSnapshot,
    /// The position streaming starts from.
    pub start_lsn: Lsn,
    /// The slot is new to this pipeline: created by this start, or an existing slot it
    /// never confirmed (created by a start that stopped before its resync began, by hand,
    /// or advanced past the checkpoint). Its consistent point starts a resync.
    pub fresh: bool,
    /// The stored checkpoint ([`Lsn::ZERO`] when there is none).
    pub checkpoint: Lsn,
    /// An epoch a previous run left in flight.
    pub resume: Option<EpochPlan>,
}

/// [`preflight`], waiting (up to a minute) while the slot is active: this process holds the
/// pipeline's lock, so an active slot is the previous owner still stopping (a fenced
/// process finishes its flush, without writing, before its stream closes).
async fn preflight_after_takeover(
    pg: &tokio_postgres::Client,
    spec: &PreflightSpec,
) -> Result<(), ReplicationError> {
    let mut attempts = 0;
    loop {
        let err = match preflight(pg, spec).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let only_active = match &err {
            ReplicationError::Preflight(e) => matches!(e, PreflightError::SlotActive { .. }),
            ReplicationError::PreflightMany(PreflightErrors(v)) => v
                .iter()
                .all(|e| matches!(e, PreflightError::SlotActive { .. })),
            _ => false,
        };
        if !only_active || attempts >= 60 {
            return Err(err);
        }
        if attempts == 0 {
            info!(
                "the slot is still active in the previous owner's session; waiting for it to stop"
            );
        }
        attempts += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Make sure the publication (when managed) and the slot exist and fit, and work out where
/// to start from the slot and the checkpoint.
pub(super) async fn prepare_slot(
    cfg: &PipelineConfig,
    conn_opts: &ConnectOptions,
    state: &StateStore,
) -> Result<SlotStart, PipelineError> {
    let p = cfg.name.as_str();
    let pg = connect_client(conn_opts).await.map_err(err_repl(p))?;
    let tables = table_refs(cfg);
    if cfg.manage_publication {
        ensure_publication(&pg, &cfg.publication, &tables, PublicationPolicy::default())
            .await
            .map_err(err_repl(p))?;
    }
    let spec = PreflightSpec {
        slot: cfg.slot.clone(),
        publication: cfg.publication.clone(),
        tables: tables.clone(),
        manage_publication: cfg.manage_publication,
    };
    preflight_after_takeover(&pg, &spec)
        .await
        .map_err(err_repl(p))?;
    let mut repl = ReplicationConnection::connect_with(conn_opts)
        .await
        .map_err(err_repl(p))?;
    let slot = ensure_slot(&mut repl, &pg, &cfg.slot)
        .await
        .map_err(err_repl(p))?;
    let checkpoint = state
        .checkpoint()
        .await
        .map_err(err_state(p))?
        .unwrap_or(Lsn::ZERO);
    let resume = state.open_epoch().await.map_err(err_state(p))?;
    let (snapshot, start_lsn, fresh) = match slot {
        SlotState::Created(c) => {
            info!(lsn = %c.consistent_point, "created replication slot; backfilling existing rows");
            let snap = c
                .snapshot_name
                .clone()
                .map_or(BackfillSnapshot::Fresh, BackfillSnapshot::Exported);
            (snap, c.consistent_point, true)
        }
        SlotState::Existing(info) => {
            let confirmed = info.confirmed_flush_lsn.unwrap_or(Lsn::ZERO);
            // This pipeline confirms a position only after its checkpoint got there, so a
            // slot ahead of the checkpoint holds nothing this pipeline saw before it.
            let unconfirmed = confirmed > checkpoint;
            if unconfirmed {
                info!(slot_lsn = %confirmed, checkpoint = %checkpoint,
                    "the slot is ahead of the checkpoint (new to this pipeline); resyncing");
            }
            (
                BackfillSnapshot::Fresh,
                confirmed.max(checkpoint),
                unconfirmed,
            )
        }
    };
    Ok(SlotStart {
        pg,
        repl,
        snapshot,
        start_lsn,
        fresh,
        checkpoint,
        resume,
    })
}

/// Backfill the tables (resumable: progress is kept per table) through the same mapping and
/// flusher as the stream. A plan left in flight by an interrupted backfill (end LSN zero)
/// is taken out of `resume` and finished here. A slot new to this pipeline (`fresh_slot`:
/// its consistent point) comes with a new consistent snapshot: progress of an earlier
/// slot's backfill is forgotten and every table is read again (idempotent upserts), so
/// nothing written while there was no slot is lost. Once the resync is set up (progress
/// reset, sweep armed) the checkpoint moves to the slot's start, so a start after a crash
/// from here on resumes this resync instead of beginning another.
pub(super) async fn backfill_existing(
    cfg: &PipelineConfig,
    opts: &RunOptions,
    conn_opts: &ConnectOptions,
    flusher: &Flusher<SalesforceDestination>,
    mapper: &mut Mapper,
    (snapshot, fresh_slot): (BackfillSnapshot, Option<Lsn>),
    resume: &mut Option<EpochPlan>,
) -> Result<(), PipelineError> {
    let p = cfg.name.as_str();
    let tables = table_refs(cfg);
    opts.health
        .update(p, |s| s.state = PipelineState::Backfilling);
    let progress = PgProgressStore::new(connect_client(conn_opts).await.map_err(err_repl(p))?)
        .await
        .map_err(err_repl(p))?;
    let mut bf_client = connect_client(conn_opts).await.map_err(err_repl(p))?;
    let mut gone = None;
    if let Some(slot_start) = fresh_slot {
        progress.reset(p).await.map_err(err_repl(p))?;
        // A resync (records from an earlier slot exist) sweeps deleted rows afterwards,
        // read in the new slot's snapshot; a first start has nothing to sweep.
        if super::sweep::has_records(flusher).await? {
            if let BackfillSnapshot::Exported(name) = &snapshot {
                gone =
                    Some(super::sweep::gone_in_snapshot(cfg, &mut bf_client, name, flusher).await?);
            }
            let stored = gone.as_ref().map(super::sweep::keys_json);
            progress
                .arm_sweep(p, stored.as_ref())
                .await
                .map_err(err_repl(p))?;
        }
        flusher
            .state()
            .store_checkpoint(slot_start)
            .await
            .map_err(err_state(p))?;
    }
    let bf_resume = if resume.as_ref().is_some_and(|r| r.end_lsn == Lsn::ZERO) {
        resume.take()
    } else {
        None
    };
    let mut sink = FlushingBackfill {
        flusher,
        mapper,
        resume: bf_resume,
        relations: HashMap::new(),
        rows: 0,
        pipeline: p.into(),
        progress: opts
            .progress
            .clone()
            .unwrap_or_else(|| Arc::new(super::progress::LogProgress)),
    };
    let mut bf_opts = BackfillOptions::new(p);
    bf_opts.publication = Some(cfg.publication.clone());
    bf_opts.chunk_rows = super::backfill_sink::chunk_rows(&cfg.batching);
    let summary = backfill(
        &mut bf_client,
        snapshot,
        &tables,
        &progress,
        &mut sink,
        &bf_opts,
    )
    .await
    .map_err(err_repl(p))?;
    if sink.rows > 0 {
        info!(
            rows = sink.rows,
            tables = summary.tables.len(),
            "backfill done"
        );
    }
    sink.finish(&summary);
    super::sweep::sweep_if_armed(cfg, &progress, flusher, gone).await
}

/// Start streaming from `start_lsn` with a decoder that skips pgforce's own writes.
pub(super) async fn start_stream(
    cfg: &PipelineConfig,
    opts: &RunOptions,
    pg: &tokio_postgres::Client,
    repl: ReplicationConnection,
    start_lsn: Lsn,
) -> Result<(ReplicationStream, Assembler), PipelineError> {
    let p = cfg.name.as_str();
    let mut assembler = Assembler::new(AssemblerConfig {
        skip_origins: vec![cfg.replication_origin.clone(), cfg.inbound_origin()],
        ..AssemblerConfig::default()
    });
    *assembler.types_mut() = crate::replication::load_types(pg)
        .await
        .map_err(err_repl(p))?;
    let mut sopts = StreamOptions::new(cfg.slot.clone(), vec![cfg.publication.clone()]);
    sopts.start_lsn = start_lsn;
    // Prepared transactions arrive whole at COMMIT PREPARED. With two_phase on, the server
    // would send their changes at PREPARE, and a confirmed position past a PREPARE whose
    // COMMIT PREPARED is still to come would lose them across a restart.
    sopts.two_phase = Some(false);
    let stream = repl.start_replication(sopts).await.map_err(err_repl(p))?;
    info!(lsn = %start_lsn, "streaming");
    opts.health.update(p, |s| {
        s.state = PipelineState::Streaming;
        s.slot_active = true;
        s.confirmed_lsn = Some(start_lsn.to_string());
    });
    metrics::gauge!(m::SLOT_ACTIVE, "pipeline" => p.to_string()).set(1.0);
    Ok((stream, assembler))
}

/// The pipeline's journal, when `[journal] dir` is set: `<dir>/<pipeline>/`.
pub(super) fn open_journal(
    cfg: &PipelineConfig,
    opts: &RunOptions,
) -> Result<Option<Journal>, PipelineError> {
    let Some(jc) = opts.journal.as_ref() else {
        return Ok(None);
    };
    let Some(dir) = jc.dir.as_ref() else {
        return Ok(None);
    };
    let options = JournalOptions {
        max_bytes: jc.max_mib * 1024 * 1024,
        max_age: Duration::from_secs(jc.max_age_hours * 3600),
        ..JournalOptions::default()
    };
    Journal::open(std::path::Path::new(dir).join(&cfg.name), options)
        .map(Some)
        .map_err(|source| PipelineError::Journal {
            pipeline: cfg.name.clone(),
            source,
        })
}
