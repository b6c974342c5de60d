//! One pipeline's life: take the HA lock, connect, preflight, backfill, then stream and
//! flush until told to stop. [`supervise`] restarts it after transient failures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{info, info_span, warn, Instrument};

use super::backfill_sink::FlushingBackfill;
use super::pending::Pending;
use super::setup::{database_url, salesforce_client, table_refs};
use super::PipelineError;
use crate::batch::{Epoch, FlushPolicy};
use crate::change::{Change, RowChange, TxEvent};
use crate::checkpoint::{DeadLetter, EpochPlan, StateStore};
use crate::config::validate::{has_errors, render_table};
use crate::config::PipelineConfig;
use crate::journal::{Journal, JournalOptions};
use crate::lsn::Lsn;
use crate::mapping::order::object_order;
use crate::mapping::{Mapper, MappingError};
use crate::metrics as m;
use crate::pgoutput::assembler::{Assembler, AssemblerConfig};
use crate::pgoutput::value::Value;
use crate::replication::{
    backfill, connect_client, ensure_publication, ensure_slot, preflight, slot_health,
    BackfillOptions, BackfillSnapshot, ConnectOptions, FeedbackHandle, PgProgressStore,
    PreflightSpec, PublicationPolicy, ReplicationConnection, ReplicationMessage, SlotState,
    StreamOptions,
};
use crate::server::{Health, PipelineState, PipelineStatus};
use crate::sink::{Destination, FlushReport, Flusher, FlusherOptions, SalesforceDestination};

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

fn err_repl(p: &str) -> impl FnOnce(crate::replication::ReplicationError) -> PipelineError + '_ {
    move |source| PipelineError::Replication {
        pipeline: p.to_string(),
        source,
    }
}

fn err_state(p: &str) -> impl FnOnce(crate::checkpoint::StateError) -> PipelineError + '_ {
    move |source| PipelineError::State {
        pipeline: p.to_string(),
        source,
    }
}

fn err_sink(p: &str) -> impl FnOnce(crate::sink::SinkError) -> PipelineError + '_ {
    move |source| PipelineError::Sink {
        pipeline: p.to_string(),
        source,
    }
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
    let state = Arc::new(
        StateStore::connect(&db, &cfg.state_schema, p)
            .await
            .map_err(err_state(p))?,
    );
    if !wait_for_lock(&state, opts).await? {
        return Ok(());
    }
    let writes_back = cfg.mappings.iter().any(|m| m.write_back.is_some());
    if writes_back && !use_origin(&state, cfg, opts).await? {
        return Ok(());
    }
    metrics::gauge!(m::PIPELINE_UP, "pipeline" => p.to_string()).set(1.0);
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
    let flusher = Flusher::new(
        SalesforceDestination::new(client.clone()),
        state.clone(),
        FlusherOptions {
            pipeline: p.into(),
            collections_threshold: cfg.batching.collections_threshold,
            max_rows: cfg.batching.max_batch_rows,
            object_order: order,
            transient_retries: 5,
        },
    );
    let conn_opts = ConnectOptions::parse(&db).map_err(err_repl(p))?;
    let pg = connect_client(&conn_opts).await.map_err(err_repl(p))?;
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
    preflight(&pg, &spec).await.map_err(err_repl(p))?;
    let mut repl = ReplicationConnection::connect_with(&conn_opts)
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
    let mut resume = state.open_epoch().await.map_err(err_state(p))?;
    let (snapshot, start_lsn, created) = match slot {
        SlotState::Created(c) => {
            info!(lsn = %c.consistent_point, "created replication slot; backfilling existing rows");
            let snap = c
                .snapshot_name
                .clone()
                .map_or(BackfillSnapshot::Fresh, BackfillSnapshot::Exported);
            (snap, c.consistent_point, true)
        }
        SlotState::Existing(info) => (
            BackfillSnapshot::Fresh,
            info.confirmed_flush_lsn
                .unwrap_or(Lsn::ZERO)
                .max(checkpoint),
            false,
        ),
    };
    let mut mapper = Mapper::new(cfg);

    opts.health
        .update(p, |s| s.state = PipelineState::Backfilling);
    let progress = PgProgressStore::new(connect_client(&conn_opts).await.map_err(err_repl(p))?)
        .await
        .map_err(err_repl(p))?;
    let mut bf_client = connect_client(&conn_opts).await.map_err(err_repl(p))?;
    let bf_resume = if resume.as_ref().is_some_and(|r| r.end_lsn == Lsn::ZERO) {
        resume.take()
    } else {
        None
    };
    let mut sink = FlushingBackfill {
        flusher: &flusher,
        mapper: &mut mapper,
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
    if created {
        state
            .store_checkpoint(start_lsn)
            .await
            .map_err(err_state(p))?;
    }

    let mut assembler = Assembler::new(AssemblerConfig {
        skip_origin: Some(cfg.replication_origin.clone()),
        ..AssemblerConfig::default()
    });
    register_enums(&pg, &mut assembler)
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
        skip_txn: false,
        applied_through: start_lsn.max(checkpoint),
        resume,
        last_checkpoint_write: Instant::now(),
        health: opts.health.clone(),
        journal: open_journal(cfg, opts)?,
    };
    let result = streamer.run(stream, &pg, opts).await;
    metrics::gauge!(m::SLOT_ACTIVE, "pipeline" => p.to_string()).set(0.0);
    metrics::gauge!(m::PIPELINE_UP, "pipeline" => p.to_string()).set(0.0);
    result
}

/// The pipeline's journal, when `[journal] dir` is set: `<dir>/<pipeline>/`.
fn open_journal(cfg: &PipelineConfig, opts: &RunOptions) -> Result<Option<Journal>, PipelineError> {
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
        let err = match state.use_origin(origin).await {
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

async fn register_enums(
    pg: &tokio_postgres::Client,
    assembler: &mut Assembler,
) -> Result<(), crate::replication::ReplicationError> {
    let rows = pg
        .query("SELECT oid, typarray FROM pg_type WHERE typtype = 'e'", &[])
        .await
        .map_err(|e| crate::replication::ReplicationError::Query {
            context: "reading enum types".into(),
            source: e,
        })?;
    for r in rows {
        let oid: u32 = r.get(0);
        let array: u32 = r.get(1);
        assembler.register_enum(oid, (array != 0).then_some(array));
    }
    Ok(())
}

/// Rows that could not be mapped go to the dead-letter table with the row itself.
pub(crate) async fn dead_letter_mapping_errors<D: Destination>(
    flusher: &Flusher<D>,
    failures: &[(RowChange, MappingError)],
    lsn: Lsn,
) -> Result<(), crate::sink::SinkError> {
    if failures.is_empty() {
        return Ok(());
    }
    let letters: Vec<DeadLetter> = failures
        .iter()
        .map(|(change, e)| DeadLetter {
            mapping: e.mapping.clone(),
            object: String::new(),
            external_id: row_key(change),
            operation: format!("{:?}", change.op).to_lowercase(),
            lsn,
            error_code: "PGFORCE_MAPPING".into(),
            message: e.to_string(),
            fields: e.field.clone().into_iter().collect(),
            row: row_json(change),
        })
        .collect();
    warn!(count = letters.len(), first = %letters[0].message, "rows could not be mapped; dead-lettered");
    for l in &letters {
        metrics::counter!(m::DEAD_LETTERS, "pipeline" => flusher.state().pipeline().to_string(), "mapping" => l.mapping.clone(), "error_code" => "PGFORCE_MAPPING").increment(1);
    }
    flusher.state().record_dead_letters(&letters).await?;
    Ok(())
}

/// The row's key columns as text, `a|b`; all columns when the relation has no key flags.
fn row_key(change: &RowChange) -> String {
    let row = change.new.as_ref().or(change.old.as_ref());
    let Some(row) = row else { return String::new() };
    let cols = &change.relation.columns;
    let keyed: Vec<String> = cols
        .iter()
        .zip(row)
        .filter(|(c, _)| c.is_key)
        .map(|(_, v)| value_text(v))
        .collect();
    if keyed.is_empty() {
        row.iter().map(value_text).collect::<Vec<_>>().join("|")
    } else {
        keyed.join("|")
    }
}

fn row_json(change: &RowChange) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    if let Some(row) = change.new.as_ref().or(change.old.as_ref()) {
        for (c, v) in change.relation.columns.iter().zip(row) {
            let j = match v {
                Value::Null => serde_json::Value::Null,
                other => serde_json::Value::String(value_text(other)),
            };
            out.insert(c.name.clone(), j);
        }
    }
    serde_json::Value::Object(out)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Unchanged => "(unchanged toast)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int2(i) => i.to_string(),
        Value::Int4(i) => i.to_string(),
        Value::Int8(i) => i.to_string(),
        Value::Float4(f) => f.to_string(),
        Value::Float8(f) => f.to_string(),
        Value::Numeric(s) | Value::Text(s) => s.clone(),
        Value::Uuid(u) => u.to_string(),
        Value::Json(j) => j.to_string(),
        Value::Enum { label, .. } => label.clone(),
        Value::Other { text, .. } => text.clone(),
        other => format!("{other:?}"),
    }
}

/// The streaming half of a pipeline.
struct Streamer<'a> {
    cfg: &'a PipelineConfig,
    flusher: &'a Flusher<SalesforceDestination>,
    mapper: Mapper,
    assembler: Assembler,
    feedback: FeedbackHandle,
    epoch: Epoch<Pending>,
    policy: FlushPolicy,
    in_txn: bool,
    txn_lsn: Lsn,
    /// The current transaction was applied before (its end is at or below the checkpoint).
    skip_txn: bool,
    /// Everything up to here is done in Salesforce and checkpointed.
    applied_through: Lsn,
    /// A plan a previous run left in flight; the epoch ending at its LSN resumes it.
    resume: Option<EpochPlan>,
    last_checkpoint_write: Instant,
    health: Health,
    journal: Option<Journal>,
}

impl Streamer<'_> {
    async fn run(
        &mut self,
        mut stream: crate::replication::ReplicationStream,
        pg: &tokio_postgres::Client,
        opts: &RunOptions,
    ) -> Result<(), PipelineError> {
        let p = self.cfg.name.clone();
        let mut shutdown = opts.shutdown.clone();
        let mut ticker = tokio::time::interval(opts.status_interval);
        // Age-based flushes when the stream goes quiet between transactions.
        let mut age_ticker =
            tokio::time::interval((self.policy.max_age / 2).max(Duration::from_millis(20)));
        age_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut pending_failures: Vec<(RowChange, MappingError)> = Vec::new();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                msg = stream.next_message() => {
                    match msg {
                        None => return Err(PipelineError::StreamEnded { pipeline: p }),
                        Some(Err(e)) => return Err(err_repl(&p)(e)),
                        Some(Ok(ReplicationMessage::XLogData { wal_start, data, .. })) => {
                            self.assembler
                                .push(wal_start, &data)
                                .map_err(|source| PipelineError::Decode { pipeline: p.clone(), source })?;
                            while let Some(ev) = self
                                .assembler
                                .next_event()
                                .map_err(|source| PipelineError::Decode { pipeline: p.clone(), source })?
                            {
                                self.on_event(ev, &mut pending_failures).await?;
                            }
                        }
                        Some(Ok(ReplicationMessage::Keepalive { wal_end, .. })) => self.on_idle(wal_end).await?,
                    }
                }
                _ = ticker.tick() => self.refresh_status(pg).await,
                _ = age_ticker.tick() => self.flush_if_aged().await?,
            }
        }
        self.graceful_stop().await?;
        stream.stop().await.map_err(err_repl(&p))
    }

    async fn on_event(
        &mut self,
        ev: TxEvent,
        failures: &mut Vec<(RowChange, MappingError)>,
    ) -> Result<(), PipelineError> {
        match ev {
            TxEvent::Begin { commit_lsn, .. } => {
                self.in_txn = true;
                self.txn_lsn = commit_lsn;
                // A commit record starting before what is applied ends at or before it:
                // the server sent it again (PostgreSQL 15 does after a restart).
                self.skip_txn = commit_lsn < self.applied_through;
            }
            TxEvent::Change(Change::Row(rc)) => {
                if self.skip_txn {
                    return Ok(());
                }
                metrics::counter!(m::CHANGES_DECODED, "pipeline" => self.cfg.name.clone())
                    .increment(1);
                for mapped in self.mapper.map(&rc) {
                    match mapped {
                        Ok(c) => {
                            let pending = Pending {
                                change: c,
                                lsn: self.txn_lsn,
                            };
                            self.journal_append(&pending)?;
                            self.epoch.push(pending);
                        }
                        Err(e) => failures.push((rc.clone(), e)),
                    }
                }
            }
            TxEvent::Change(Change::Truncate { relations, .. }) => {
                let names: Vec<String> = relations.iter().map(|r| r.qualified_name()).collect();
                warn!(tables = ?names, "TRUNCATE is not propagated to Salesforce (records stay); delete them explicitly if intended");
            }
            TxEvent::Change(Change::Message { .. }) | TxEvent::Message { .. } => {}
            TxEvent::Commit {
                end_lsn,
                commit_time,
                ..
            } => {
                self.in_txn = false;
                if self.skip_txn || end_lsn <= self.applied_through {
                    failures.clear();
                    return Ok(());
                }
                dead_letter_mapping_errors(self.flusher, failures, self.txn_lsn)
                    .await
                    .map_err(err_sink(&self.cfg.name))?;
                failures.clear();
                self.epoch.commit(end_lsn, commit_time);
                self.maybe_flush(end_lsn).await?;
            }
        }
        Ok(())
    }

    /// Flush when the epoch is due, or when it reaches the end of a plan left in flight.
    async fn maybe_flush(&mut self, end_lsn: Lsn) -> Result<(), PipelineError> {
        let resume_here = self.resume.as_ref().is_some_and(|r| end_lsn >= r.end_lsn);
        if resume_here {
            // Even when nothing was rebuilt, the recorded plan must be reconciled and closed.
            return self.flush().await;
        }
        if self.resume.is_some() {
            return Ok(());
        }
        if self.epoch.is_empty() {
            return self.mark_applied(end_lsn).await;
        }
        if self.epoch.due(&self.policy) {
            self.flush().await?;
        }
        Ok(())
    }

    fn journal_append(&mut self, pending: &Pending) -> Result<(), PipelineError> {
        if let Some(j) = self.journal.as_mut() {
            let payload = crate::journal::encode_change(pending);
            j.append(pending.lsn, &payload)
                .map_err(|e| PipelineError::Journal {
                    pipeline: self.cfg.name.clone(),
                    source: e,
                })?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), PipelineError> {
        if let Some(j) = self.journal.as_mut() {
            j.sync().map_err(|e| PipelineError::Journal {
                pipeline: self.cfg.name.clone(),
                source: e,
            })?;
        }
        let first_commit = self.epoch.first_commit();
        let resume = self.resume.take();
        let report: FlushReport = self
            .flusher
            .flush(&mut self.epoch, resume)
            .await
            .map_err(err_sink(&self.cfg.name))?;
        if let Some(t) = first_commit {
            let secs = (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!(m::FLUSH_LATENCY, "pipeline" => self.cfg.name.clone()).record(secs);
        }
        info!(lsn = %report.end_lsn, applied = report.applied, dead = report.dead_lettered, parked = report.parked, steps = report.steps, "flushed");
        self.confirm(report.end_lsn);
        self.last_checkpoint_write = Instant::now();
        Ok(())
    }

    fn confirm(&mut self, lsn: Lsn) {
        self.applied_through = self.applied_through.max(lsn);
        self.feedback.confirm(self.applied_through);
        metrics::gauge!(m::CONFIRMED_FLUSH_LSN, "pipeline" => self.cfg.name.clone())
            .set(self.applied_through.0 as f64);
        self.health
            .update(&self.cfg.name, |s| s.confirmed_lsn = Some(lsn.to_string()));
    }

    /// Nothing pending: the position may move (throttled checkpoint writes).
    async fn mark_applied(&mut self, lsn: Lsn) -> Result<(), PipelineError> {
        if lsn <= self.applied_through {
            return Ok(());
        }
        if self.last_checkpoint_write.elapsed() >= Duration::from_secs(1) {
            self.flusher
                .state()
                .store_checkpoint(lsn)
                .await
                .map_err(err_state(&self.cfg.name))?;
            self.last_checkpoint_write = Instant::now();
            self.confirm(lsn);
        }
        Ok(())
    }

    /// A keepalive while idle: everything the server has is applied, so its WAL end may be
    /// confirmed (keeps the slot from retaining WAL of unrelated activity).
    async fn on_idle(&mut self, wal_end: Lsn) -> Result<(), PipelineError> {
        let idle = !self.in_txn
            && self.epoch.is_empty()
            && self.resume.is_none()
            && self.assembler.pending_transactions() == 0;
        if idle {
            self.mark_applied(wal_end).await?;
        }
        Ok(())
    }

    /// Flush what is complete; a transaction cut off mid-way is left for the next start.
    async fn graceful_stop(&mut self) -> Result<(), PipelineError> {
        self.health
            .update(&self.cfg.name, |s| s.state = PipelineState::Stopping);
        if !self.in_txn && !self.epoch.is_empty() && self.resume.is_none() {
            info!("stopping: flushing the last complete transactions");
            self.flush().await?;
        }
        Ok(())
    }

    /// The age-based flush: between transactions, once the epoch is old enough.
    async fn flush_if_aged(&mut self) -> Result<(), PipelineError> {
        if !self.in_txn && self.resume.is_none() && self.epoch.due(&self.policy) {
            self.flush().await?;
        }
        Ok(())
    }

    async fn refresh_status(&mut self, pg: &tokio_postgres::Client) {
        let name = self.cfg.name.clone();
        let health = slot_health(pg, &self.cfg.slot).await;
        let dead = self.flusher.state().open_dead_letters().await.ok();
        let stuck = self.flusher.state().stuck().await.ok();
        let age = self
            .flusher
            .state()
            .checkpoint_age_secs()
            .await
            .ok()
            .flatten();
        let usage = self.flusher.destination().client().api_usage();
        if let Ok(h) = &health {
            metrics::gauge!(m::REPLICATION_LAG_BYTES, "pipeline" => name.clone())
                .set(h.lag_bytes as f64);
        }
        if let Some(a) = age {
            metrics::gauge!(m::CHECKPOINT_AGE, "pipeline" => name.clone()).set(a);
        }
        if let Some(d) = dead {
            metrics::gauge!(m::DEAD_LETTER_ROWS, "pipeline" => name.clone()).set(d as f64);
        }
        if let Some(stuck) = &stuck {
            super::stuck_metrics::record_parked(&name, self.cfg, stuck);
        }
        let paused = !matches!(
            self.flusher.destination().client().governor_state(),
            crate::salesforce::GovernorState::Normal
                | crate::salesforce::GovernorState::Slowed { .. }
        );
        metrics::gauge!(m::GOVERNOR_PAUSED, "pipeline" => name.clone()).set(if paused {
            1.0
        } else {
            0.0
        });
        self.health.update(&name, |s| {
            if let Ok(h) = &health {
                s.lag_bytes = h.lag_bytes.max(0) as u64;
                s.slot_active = h.active;
            }
            if let Some(d) = dead {
                s.dead_letters = d.max(0) as u64;
            }
            if let Some(stuck) = &stuck {
                s.set_stuck(stuck);
            }
            s.governor_paused = paused;
            if let Some(u) = &usage {
                s.api_max = Some(u.max);
                s.api_remaining = Some(u.max.saturating_sub(u.used));
            }
        });
    }
}
