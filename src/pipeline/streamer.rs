//! [`Streamer`]: the stream loop. Decodes the replication stream into transactions, maps
//! their rows into the open epoch, flushes the epoch when it is due, and confirms the slot's
//! position only once what precedes it is finished in the state store.
//!
//! Memory stays bounded on any transaction size: an epoch is cut at a commit when it is
//! due, and also **inside** a transaction as soon as it reaches the batch limits
//! (`max_batch_rows`, `max_batch_bytes`). A part cut inside a transaction is flushed like
//! any epoch (planned, sent, every change given its outcome) but finishes at the end of
//! the last commit before the transaction, so the checkpoint and the slot stay before the
//! transaction until its last part, cut at its commit, finishes. A crash in between
//! replays the whole transaction from the slot; its parts are sent again (upserts by
//! external id and deletes of records already gone are idempotent), cut at the same
//! points, so a part left in flight resumes its recorded plan.

use super::complete::complete_unchanged;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::dead_letter::dead_letter_mapping_errors;
use super::dead_letter_retry::run_requested_retries;
use super::error::{err_repl, err_sink, err_state};
use super::pending::Pending;
use super::run::RunOptions;
use super::status::refresh_status;
use super::PipelineError;
use crate::batch::{Epoch, FlushPolicy};
use crate::change::{Change, RowChange, TxEvent};
use crate::checkpoint::EpochPlan;
use crate::config::PipelineConfig;
use crate::journal::Journal;
use crate::lsn::Lsn;
use crate::mapping::{Mapper, MappingError};
use crate::metrics as m;
use crate::pgoutput::assembler::Assembler;
use crate::replication::{FeedbackHandle, ReplicationMessage};
use crate::server::{Health, PipelineState};
use crate::sink::{FlushReport, Flusher, SalesforceDestination};

/// The streaming half of a pipeline.
pub(super) struct Streamer<'a> {
    pub(super) cfg: &'a PipelineConfig,
    pub(super) flusher: &'a Flusher<SalesforceDestination>,
    pub(super) mapper: Mapper,
    pub(super) assembler: Assembler,
    pub(super) feedback: FeedbackHandle,
    pub(super) epoch: Epoch<Pending>,
    pub(super) policy: FlushPolicy,
    pub(super) in_txn: bool,
    pub(super) txn_lsn: Lsn,
    /// Commit time of the current transaction (from its Begin).
    pub(super) txn_time: chrono::DateTime<chrono::Utc>,
    /// The current transaction was applied before (its end is at or below the checkpoint).
    pub(super) skip_txn: bool,
    /// Everything up to here is done in Salesforce and checkpointed.
    pub(super) applied_through: Lsn,
    /// A plan a previous run left in flight; the epoch ending at its LSN resumes it.
    pub(super) resume: Option<EpochPlan>,
    pub(super) last_checkpoint_write: Instant,
    pub(super) health: Health,
    pub(super) journal: Option<Journal>,
    /// An ordinary session on the source database (unchanged-TOAST completion).
    pub(super) pg: &'a tokio_postgres::Client,
    /// `pgforce_changes_decoded_total` of this pipeline (looked up once, not per change).
    pub(super) decoded: metrics::Counter,
}

impl Streamer<'_> {
    pub(super) async fn run(
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
                _ = ticker.tick() => {
                    refresh_status(self.cfg, self.flusher, &self.health, pg).await;
                    self.requested_retries().await?;
                }
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
            TxEvent::Begin {
                commit_lsn,
                commit_time,
                ..
            } => {
                self.in_txn = true;
                self.txn_lsn = commit_lsn;
                self.txn_time = commit_time;
                // A commit record starting before what is applied ends at or before it:
                // the server sent it again (PostgreSQL 15 does after a restart).
                self.skip_txn = commit_lsn < self.applied_through;
            }
            TxEvent::Change(Change::Row(rc)) => {
                if self.skip_txn {
                    return Ok(());
                }
                self.decoded.increment(1);
                for mapped in self.mapper.map(&rc) {
                    match mapped {
                        Ok(c) => {
                            let pending = Pending::new(c, self.txn_lsn);
                            self.journal_append(&pending)?;
                            self.epoch.push(pending);
                            self.split_if_full().await?;
                        }
                        Err(e) => {
                            // An older change of this record held in the epoch must not
                            // resolve this newer failure when it lands.
                            if let Some(r) = &e.record {
                                self.epoch.update_key(&r.object, &r.external_id, |p| {
                                    p.newer_failed = true
                                });
                            }
                            failures.push((rc.clone(), e));
                        }
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
            let payload = super::pending_codec::encode(pending);
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
        complete_unchanged(
            self.cfg,
            self.pg,
            self.flusher.state(),
            &mut self.mapper,
            self.assembler.types(),
            &mut self.epoch,
        )
        .await?;
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

    /// Dead-letter retries `pgforce errors retry` asked for: run here, between flushes,
    /// so they are ordered with this pipeline's own changes.
    async fn requested_retries(&mut self) -> Result<(), PipelineError> {
        run_requested_retries(
            self.flusher.state(),
            self.flusher.destination(),
            &self.cfg.mappings,
        )
        .await
        .map_err(err_sink(&self.cfg.name))
    }

    /// Inside a transaction: once the epoch reaches the batch limits, flush it as a part that
    /// finishes before the transaction (see the module doc). While a plan left in flight
    /// ends later, the epoch keeps growing until it is rebuilt up to that plan.
    async fn split_if_full(&mut self) -> Result<(), PipelineError> {
        let full = self.epoch.rows() >= self.policy.max_rows.max(1)
            || self.epoch.bytes() >= self.policy.max_bytes.max(1);
        if !full {
            return Ok(());
        }
        let part_end = self.applied_through.max(self.epoch.end_lsn());
        if self.resume.as_ref().is_some_and(|r| r.end_lsn > part_end) {
            return Ok(());
        }
        self.epoch.commit(part_end, self.txn_time);
        metrics::counter!(m::TRANSACTION_SPLITS, "pipeline" => self.cfg.name.clone()).increment(1);
        info!(txn_lsn = %self.txn_lsn, rows = self.epoch.rows(), "large transaction: flushing a part");
        self.flush().await
    }

    /// The age-based flush: between transactions, once the epoch is old enough.
    async fn flush_if_aged(&mut self) -> Result<(), PipelineError> {
        if !self.in_txn && self.resume.is_none() && self.epoch.due(&self.policy) {
            self.flush().await?;
        }
        Ok(())
    }
}
