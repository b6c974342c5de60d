//! [`Flusher`]: one epoch at a time, step by step, with every Bulk job recorded before its
//! upload and every result accounted for before the checkpoint moves. This file holds the
//! type, its options and report, and [`Flusher::flush`]; the step protocol is in
//! [`protocol`](super::protocol), result handling in [`settle`](super::settle),
//! [`parked`](super::parked), [`writeback`](super::writeback) and [`retry`](super::retry).

use std::sync::Arc;

use serde_json::{Map, Value};
use tracing::{info_span, Instrument};

use super::destination::{Destination, SinkError};
use crate::batch::{plan_steps, Coalesce, Epoch, StepKind, StepLimits};
use crate::checkpoint::{EpochPlan, StateStore};
use crate::lsn::Lsn;

/// What the sink needs from a mapped change, beyond coalescing.
pub trait FlushChange: Coalesce {
    fn mapping(&self) -> &str;
    fn external_id_field(&self) -> &str;
    /// Commit LSN of the transaction the change came from.
    fn lsn(&self) -> Lsn;
    /// The parent this change points at by external id: (object, external id).
    fn parent(&self) -> Option<(String, String)>;
    /// The REST-shaped record (absent field = unchanged, null = set null), including the
    /// external id field.
    fn record(&self) -> Map<String, Value>;
    /// Where to write the Salesforce Id back in Postgres once the upsert succeeded:
    /// (`schema.table`, column, key columns and their values as text).
    fn write_back(&self) -> Option<WriteBackTarget> {
        None
    }
}

/// A source row to receive its record's Salesforce Id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBackTarget {
    pub table: String,
    pub column: String,
    pub key: Vec<(String, String)>,
    /// The column's value in the source row the change came from (`None`: NULL or not
    /// known). The Id is written only when it differs, so a cleared or wrong column is
    /// repaired by the row's next change even when the record Id itself did not change.
    pub current: Option<String>,
}

/// Knobs for the flusher.
#[derive(Debug, Clone)]
pub struct FlusherOptions {
    pub pipeline: String,
    /// Steps with fewer rows than this go through sObject Collections, the rest through
    /// Bulk API 2.0.
    pub collections_threshold: usize,
    pub max_rows: usize,
    /// Objects, parents first.
    pub object_order: Vec<String>,
    /// How often a record failing with a transient error is retried before it is
    /// dead-lettered.
    pub transient_retries: u32,
}

/// What one flush did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushReport {
    pub end_lsn: Lsn,
    pub applied: usize,
    pub dead_lettered: usize,
    pub parked: usize,
    pub unparked: usize,
    pub steps: usize,
}

/// Drives epochs into a [`Destination`].
pub struct Flusher<D> {
    pub(super) dest: D,
    pub(super) state: Arc<StateStore>,
    pub(super) opts: FlusherOptions,
}

impl<D: Destination> Flusher<D> {
    pub fn new(dest: D, state: Arc<StateStore>, opts: FlusherOptions) -> Self {
        Flusher { dest, state, opts }
    }

    pub fn destination(&self) -> &D {
        &self.dest
    }

    pub fn state(&self) -> &Arc<StateStore> {
        &self.state
    }

    /// Flush an epoch. With `resume`, the epoch is the one a previous run planned and did
    /// not finish: recorded jobs are reconciled (their results taken) instead of sent again.
    pub async fn flush<C: FlushChange>(
        &self,
        epoch: &mut Epoch<C>,
        resume: Option<EpochPlan>,
    ) -> Result<FlushReport, SinkError> {
        let end_lsn = epoch.end_lsn();
        let span = info_span!("flush", pipeline = %self.opts.pipeline, lsn = %end_lsn);
        async {
            let steps = plan_steps(
                epoch.drain(),
                &self.opts.object_order,
                StepLimits::rows(self.opts.max_rows),
            );
            let plans = self.plan(&steps, resume.as_ref());
            let recorded = self.recorded_steps(end_lsn, &plans, resume).await?;
            let mut report = FlushReport {
                end_lsn,
                steps: steps.len(),
                ..Default::default()
            };
            let mut landed: Vec<(String, Vec<String>)> = Vec::new();
            for ((step, plan), rec) in steps.iter().zip(&plans).zip(recorded) {
                let keys = self.run_step(end_lsn, step, plan, rec, &mut report).await?;
                if step.kind == StepKind::Upsert && !keys.is_empty() {
                    landed.push((step.object.clone(), keys));
                }
            }
            for (object, keys) in landed {
                self.retry_parked(&object, &keys, &mut report).await?;
            }
            self.state.finish_epoch(end_lsn).await?;
            Ok(report)
        }
        .instrument(span)
        .await
    }
}
