//! [`Flusher`]: one epoch at a time, with every Bulk job recorded before its upload and
//! every result accounted for before the checkpoint moves. Steps that cannot affect each
//! other (the same object and operation, split only by size, so no key is in two of them,
//! and none pointing at a record of its own object) run concurrently, at most
//! `max_bulk_jobs` at once; groups run in plan order (parents first, deletes last). This
//! file holds the type, its options and report, and [`Flusher::flush`]; the step protocol is in
//! [`protocol`](super::protocol), result handling in [`settle`](super::settle),
//! [`parked`](super::parked), [`writeback`](super::writeback) and [`retry`](super::retry).

use std::collections::HashSet;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use serde_json::{Map, Value};
use tracing::{info_span, Instrument};

use super::destination::{Destination, SinkError};
use super::state::SinkState;
use crate::batch::{plan_steps, Coalesce, Epoch, Step, StepKind, StepLimits};
use crate::checkpoint::{EpochPlan, StateStore, StepPlan};
use crate::lsn::Lsn;

/// What the sink needs from a mapped change, beyond coalescing.
pub trait FlushChange: Coalesce {
    fn mapping(&self) -> &str;
    fn external_id_field(&self) -> &str;
    /// Commit LSN of the transaction the change came from.
    fn lsn(&self) -> Lsn;
    /// Every synced parent this change points at by external id: (object, external id).
    fn parents(&self) -> Vec<(String, String)>;
    /// The first of [`parents`](Self::parents).
    fn parent(&self) -> Option<(String, String)> {
        self.parents().into_iter().next()
    }
    /// Whether this change landing resolves its record's open dead letters. False when a
    /// newer change of the same record failed (its dead letter must stay open).
    fn resolves_dead_letters(&self) -> bool {
        true
    }
    /// Update the record only if it exists in Salesforce, never create it (a soft delete).
    /// When it does not exist (neither in the id map nor found by external id), the
    /// change's outcome is "filtered": nothing to do.
    fn existing_only(&self) -> bool {
        false
    }
    /// The key field is not an External ID but an ordinary field records are matched by:
    /// the sink finds each record's Id (the id map, then a batched SOQL lookup by value)
    /// and upserts by `Id` (a blank Id creates); a value two records share is
    /// dead-lettered with both Ids. Every change of one step agrees on this (one mapping
    /// per object and key field).
    fn match_by(&self) -> bool {
        false
    }
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

/// The default payload estimate per step: half of Bulk API 2.0's 100 MB upload limit, for
/// CSV quoting, headers and multi-byte text the estimate does not count exactly.
pub const MAX_STEP_BYTES: usize = 50 * 1024 * 1024;

/// Knobs for the flusher.
#[derive(Debug, Clone)]
pub struct FlusherOptions {
    pub pipeline: String,
    /// Steps with fewer rows than this go through sObject Collections, the rest through
    /// Bulk API 2.0.
    pub collections_threshold: usize,
    pub max_rows: usize,
    /// Payload bytes per step (Bulk accepts 100 MB per upload; CSV quoting and headers
    /// come on top of the estimate, so keep a margin).
    pub max_step_bytes: usize,
    /// Objects, parents first.
    pub object_order: Vec<String>,
    /// How often a record failing with a transient error is retried before it is
    /// dead-lettered.
    pub transient_retries: u32,
    /// Most steps of one epoch in flight at once (Bulk jobs, or Collections steps).
    pub max_bulk_jobs: usize,
    /// Two-way pairs: what pgforce writes to their objects is guarded against what
    /// Salesforce holds now (`bidi::guard`: a newer Salesforce value of a field is not
    /// overwritten) and recorded as synced (`bidi::synced`) before the call.
    pub paired_objects: Vec<crate::config::pair::PairConfig>,
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

impl FlushReport {
    /// Adds what a concurrently run step counted.
    fn add(&mut self, other: &FlushReport) {
        self.applied += other.applied;
        self.dead_lettered += other.dead_lettered;
        self.parked += other.parked;
        self.unparked += other.unparked;
    }
}

/// Drives epochs into a [`Destination`].
/// Generic over where it writes ([`Destination`]) and where it keeps its bookkeeping
/// ([`SinkState`]; the service uses the Postgres [`StateStore`]).
pub struct Flusher<D, S = StateStore> {
    pub(super) dest: D,
    pub(super) state: Arc<S>,
    pub(super) opts: FlusherOptions,
}

impl<D: Destination, S: SinkState> Flusher<D, S> {
    pub fn new(dest: D, state: Arc<S>, opts: FlusherOptions) -> Self {
        Flusher { dest, state, opts }
    }

    pub fn destination(&self) -> &D {
        &self.dest
    }

    pub fn state(&self) -> &Arc<S> {
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
            let limits = StepLimits {
                max_rows: self.opts.max_rows,
                max_bytes: self.opts.max_step_bytes,
            };
            let steps = plan_steps(epoch.drain(), &self.opts.object_order, limits);
            let plans = self.plan(&steps, resume.as_ref());
            let recorded = self.recorded_steps(end_lsn, &plans, resume).await?;
            let mut report = FlushReport {
                end_lsn,
                steps: steps.len(),
                ..Default::default()
            };
            let mut landed: Vec<(String, Vec<String>)> = Vec::new();
            let mut work = steps.iter().zip(&plans).zip(recorded);
            for len in concurrent_groups(&steps) {
                let group: Vec<_> = work
                    .by_ref()
                    .take(len)
                    .map(|((step, plan), rec)| self.run_counted(end_lsn, step, plan, rec))
                    .collect();
                let results: Vec<_> = stream::iter(group)
                    .buffer_unordered(self.opts.max_bulk_jobs.max(1))
                    .collect()
                    .await;
                // Every step of the group ran to its end before an error stops the epoch.
                let mut first_err = None;
                for (step, done, r) in results {
                    report.add(&r);
                    let done =
                        done.and_then(|d| check_settled(end_lsn, step, &d.settled).map(|()| d));
                    match done {
                        Ok(d) if step.kind == StepKind::Upsert && !d.landed.is_empty() => {
                            landed.push((step.object.clone(), d.landed));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                if let Some(e) = first_err {
                    return Err(e);
                }
            }
            self.retry_parked(landed, &mut report).await?;
            self.state.finish_epoch(end_lsn).await?;
            Ok(report)
        }
        .instrument(span)
        .await
    }
}

/// Lengths of the runs of consecutive steps that may run concurrently: the same object and
/// operation (the planner splits such a group only by size, so their keys are disjoint),
/// and no change pointing at a record of its own object (a self-lookup's parent may be in
/// a sibling step: those steps run one after another, parents first, as planned).
pub(super) fn concurrent_groups<C: FlushChange>(steps: &[Step<C>]) -> Vec<usize> {
    let self_ref = |s: &Step<C>| {
        s.changes
            .iter()
            .any(|c| c.parents().iter().any(|(o, _)| *o == s.object))
    };
    let mut groups: Vec<usize> = Vec::new();
    let mut prev: Option<(&Step<C>, bool)> = None;
    for s in steps {
        let refs_own = self_ref(s);
        let joins = prev.is_some_and(|(p, p_refs_own)| {
            p.object == s.object && p.kind == s.kind && !p_refs_own && !refs_own
        });
        match groups.last_mut() {
            Some(n) if joins => *n += 1,
            _ => groups.push(1),
        }
        prev = Some((s, refs_own));
    }
    groups
}

impl<D: Destination, S: SinkState> Flusher<D, S> {
    /// [`Self::run_step`] with its own report (steps of a group run concurrently).
    async fn run_counted<'s, C: FlushChange>(
        &self,
        end_lsn: Lsn,
        step: &'s Step<C>,
        plan: &StepPlan,
        recorded: super::protocol::Recorded,
    ) -> (&'s Step<C>, Result<StepDone, SinkError>, FlushReport) {
        let mut r = FlushReport::default();
        let done = self.run_step(end_lsn, step, plan, recorded, &mut r).await;
        (step, done, r)
    }
}

/// What a step did with its changes: the keys that landed (upserts: they may be parents of
/// parked children) and every key that got an outcome.
#[derive(Debug, Default)]
pub(super) struct StepDone {
    pub landed: Vec<String>,
    pub settled: HashSet<String>,
}

/// The invariant: every change of a step ended with exactly one recorded outcome (applied,
/// dead-lettered, parked, or filtered: a soft delete of a record that does not exist)
/// before the epoch may finish. A change without one stops the
/// epoch, and the checkpoint does not move.
pub(super) fn check_settled<C: FlushChange>(
    end_lsn: Lsn,
    step: &Step<C>,
    settled: &HashSet<String>,
) -> Result<(), SinkError> {
    let mut missing = step.changes.iter().filter(|c| !settled.contains(c.key()));
    let Some(first) = missing.next() else {
        return Ok(());
    };
    Err(SinkError::Unsettled {
        end_lsn,
        count: 1 + missing.count(),
        mapping: first.mapping().to_string(),
        object: step.object.clone(),
        key: first.key().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct T(&'static str);

    impl Coalesce for T {
        fn object(&self) -> &str {
            "Account"
        }
        fn key_field(&self) -> &str {
            "Ext__c"
        }
        fn key(&self) -> &str {
            self.0
        }
        fn is_delete(&self) -> bool {
            false
        }
        fn absorb_older(&mut self, _older: Self) {}
        fn approx_bytes(&self) -> usize {
            1
        }
    }

    impl FlushChange for T {
        fn mapping(&self) -> &str {
            "accounts"
        }
        fn external_id_field(&self) -> &str {
            "Ext__c"
        }
        fn lsn(&self) -> Lsn {
            Lsn(7)
        }
        fn parents(&self) -> Vec<(String, String)> {
            Vec::new()
        }
        fn record(&self) -> Map<String, Value> {
            Map::new()
        }
    }

    fn step(keys: &[&'static str]) -> Step<T> {
        Step {
            object: "Account".into(),
            key_field: "Ext__c".into(),
            kind: StepKind::Upsert,
            json_only: false,
            changes: keys.iter().map(|k| T(k)).collect(),
        }
    }

    #[test]
    fn steps_of_one_object_and_operation_form_one_concurrent_group() {
        let mut steps = vec![step(&["1"]), step(&["2"]), step(&["3"]), step(&["4"])];
        steps[2].kind = StepKind::Delete;
        steps[3].object = "Contact".into();
        assert_eq!(concurrent_groups(&steps), [2, 1, 1]);
        assert!(concurrent_groups::<T>(&[]).is_empty());
    }

    #[test]
    fn an_epoch_step_with_every_change_settled_passes() {
        let settled: HashSet<String> = ["1", "2"].iter().map(|s| s.to_string()).collect();
        assert!(check_settled(Lsn(9), &step(&["1", "2"]), &settled).is_ok());
    }

    #[test]
    fn a_change_without_an_outcome_stops_the_epoch_and_is_named() {
        let settled: HashSet<String> = ["1"].iter().map(|s| s.to_string()).collect();
        let err = check_settled(Lsn(9), &step(&["1", "2", "3"]), &settled).unwrap_err();
        match &err {
            SinkError::Unsettled {
                count, key, object, ..
            } => {
                assert_eq!((*count, key.as_str(), object.as_str()), (2, "2", "Account"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            crate::error_class::Classify::class(&err),
            crate::error_class::ErrorClass::Permanent,
            "a pgforce bug is not retried in a loop"
        );
        assert!(err.to_string().contains("checkpoint was not moved"));
    }
}
