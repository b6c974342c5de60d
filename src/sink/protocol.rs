//! The epoch protocol: an epoch's steps are planned and recorded before any data is sent,
//! each Bulk job id is recorded before its upload, each step's state moves forward as it
//! goes, and a plan left in flight by a crashed run is reconciled (its jobs' results taken,
//! or the jobs aborted) instead of sent again.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use tracing::{info, info_span, warn, Instrument};

use super::destination::{Destination, JobStatus, Outcome, SinkError};
use super::fence::fence;
use super::flusher::{FlushChange, FlushReport, Flusher, StepDone};
use super::state::SinkState;
use crate::batch::{Step, StepKind};
use crate::checkpoint::{EpochPlan, StepPath, StepPlan, StepState};
use crate::lsn::Lsn;
use crate::metrics as m;

/// A recorded step's job and state, as handed to the step that resumes it.
pub(super) type Recorded = Option<(Option<String>, StepState)>;

impl<D: Destination, S: SinkState> Flusher<D, S> {
    /// The plan of each step. A step whose content matches the recorded step at the same
    /// position keeps that step's path (its job is reconciled on that path).
    pub(super) fn plan<C: FlushChange>(
        &self,
        steps: &[Step<C>],
        resume: Option<&EpochPlan>,
    ) -> Vec<StepPlan> {
        steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut plan = StepPlan {
                    step: i as i32,
                    object: s.object.clone(),
                    key_field: s.key_field.clone(),
                    operation: s.kind,
                    path: self.path_for(s),
                    rows: s.changes.len() as i32,
                    keys_digest: keys_digest(s),
                };
                if let Some(r) = resume.and_then(|r| r.steps.get(i)) {
                    if same_content(&r.plan, &plan) && !s.json_only {
                        plan.path = r.plan.path;
                    }
                }
                plan
            })
            .collect()
    }

    /// Matched steps (`match_by`) go through Collections: a Bulk upsert by `Id` needs an
    /// `Id` column even when every record is new.
    fn path_for<C: FlushChange>(&self, step: &Step<C>) -> StepPath {
        let matched = step.changes.first().is_some_and(|c| c.match_by());
        if matched || step.json_only || step.changes.len() < self.opts.collections_threshold {
            StepPath::Collections
        } else {
            StepPath::Bulk
        }
    }

    /// Match the new plan to what a previous run recorded. If they agree step by step (the
    /// same keys, not only the same shape), each step gets its recorded job and state. If
    /// not (a backfill chunk re-read in a fresh snapshot, batch limits changed between
    /// runs), the recorded jobs are reconciled first and the new plan replaces the old one.
    pub(super) async fn recorded_steps(
        &self,
        end_lsn: Lsn,
        plans: &[StepPlan],
        resume: Option<EpochPlan>,
    ) -> Result<Vec<Recorded>, SinkError> {
        let Some(resume) = resume else {
            self.state.plan_epoch(end_lsn, plans).await?;
            return Ok(vec![None; plans.len()]);
        };
        let same = resume.steps.len() == plans.len()
            && resume.steps.iter().zip(plans).all(|(r, p)| r.plan == *p);
        if same {
            info!(steps = plans.len(), "resuming an epoch left in flight");
            return Ok(resume
                .steps
                .into_iter()
                .map(|r| Some((r.job_id, r.state)))
                .collect());
        }
        warn!(
            recorded = ?resume.steps.iter().map(|r| shape(&r.plan)).collect::<Vec<_>>(),
            rebuilt = ?plans.iter().map(shape).collect::<Vec<_>>(),
            recorded_end = %resume.end_lsn,
            "the in-flight plan differs from the rebuilt epoch; reconciling its jobs, then replanning"
        );
        for r in &resume.steps {
            let (Some(job), StepState::Uploaded | StepState::JobCreated) = (&r.job_id, &r.state)
            else {
                continue;
            };
            match self.dest.job_status(job).await? {
                // Never got its data: abort it rather than leave it open for a day.
                JobStatus::Open => {
                    fence(&*self.state).await?;
                    self.dest.abort_job(job).await?
                }
                // Wait for it so it cannot race the new plan; its rows are sent again by
                // the new plan (idempotent upserts), so the results themselves are unused.
                JobStatus::Running => {
                    self.dest.job_results(job, "Id").await?;
                }
                JobStatus::Finished | JobStatus::Gone => {}
            }
        }
        self.state.plan_epoch(end_lsn, plans).await?;
        Ok(vec![None; plans.len()])
    }

    /// Run a step (or finish a recorded one). A step recorded `done` settled all its
    /// changes in the earlier run; its upserted keys are still reported as landed, so
    /// children parked on them are retried.
    pub(super) async fn run_step<C: FlushChange>(
        &self,
        end_lsn: Lsn,
        step: &Step<C>,
        plan: &StepPlan,
        recorded: Recorded,
        report: &mut FlushReport,
    ) -> Result<StepDone, SinkError> {
        if let Some((_, StepState::Done)) = &recorded {
            let keys: Vec<String> = step.changes.iter().map(|c| c.key().to_string()).collect();
            return Ok(StepDone {
                settled: keys.iter().cloned().collect(),
                landed: if step.kind == StepKind::Upsert {
                    keys
                } else {
                    Vec::new()
                },
            });
        }
        let span = info_span!("step", object = %step.object, op = step.kind.as_str(), path = plan.path.as_str(), rows = plan.rows);
        let result = async {
            let done = match step.kind {
                StepKind::Upsert => {
                    self.upsert_step(end_lsn, step, plan, recorded, report)
                        .await?
                }
                StepKind::Delete => {
                    self.delete_step(end_lsn, step, plan, recorded, report)
                        .await?
                }
            };
            self.state
                .set_step(end_lsn, plan.step, StepState::Done, None)
                .await?;
            Ok(done)
        }
        .instrument(span)
        .await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(m::BATCHES, "pipeline" => self.opts.pipeline.clone(), "object" => step.object.clone(), "path" => plan.path.as_str(), "result" => outcome).increment(1);
        result
    }

    async fn upsert_step<C: FlushChange>(
        &self,
        end_lsn: Lsn,
        step: &Step<C>,
        plan: &StepPlan,
        recorded: Recorded,
        report: &mut FlushReport,
    ) -> Result<StepDone, SinkError> {
        let ext_field = step.key_field.as_str();
        let absent = self.absent_records(step).await?;
        let mut sent: Vec<&C> = step
            .changes
            .iter()
            .filter(|c| !absent.contains(c.key()))
            .collect();
        let matching = sent.first().is_some_and(|c| c.match_by());
        let (mut records, ambiguous) = if matching {
            self.matched(step, &mut sent).await?
        } else {
            (sent.iter().map(|c| c.record()).collect(), Vec::new())
        };
        let pair = self
            .opts
            .paired_objects
            .iter()
            .find(|p| p.object == step.object);
        let recorded_before = match pair {
            Some(pair) => self.guard_paired(step, pair, &sent, &mut records).await?,
            None => HashSet::new(),
        };
        // What the records are upserted by: the key field, or `Id` once matched.
        let upsert_field = if matching { "Id" } else { ext_field };
        // Known before anything can create them, so a record whose result is lost is not.
        let keys: Vec<&str> = sent.iter().map(|c| c.key()).collect();
        self.state.note_keys(&step.object, &keys).await?;
        let (mut outcomes, mut unprocessed) = match plan.path {
            _ if records.is_empty() => (Vec::new(), Vec::new()),
            StepPath::Bulk => {
                self.bulk(
                    end_lsn,
                    plan,
                    StepKind::Upsert,
                    ext_field,
                    &records,
                    recorded,
                )
                .await?
            }
            StepPath::Collections => {
                self.state
                    .set_step(end_lsn, plan.step, StepState::Uploaded, None)
                    .await?;
                fence(&*self.state).await?;
                let keyed = self.upsert_keyed(&step.object, upsert_field, ext_field, &records);
                (keyed.await?, Vec::new())
            }
        };
        let keys = sent.iter().map(|c| c.key().to_string());
        unprocessed.extend(without_outcome(keys, &outcomes, &unprocessed));
        let by_key: HashMap<&str, &C> = sent.iter().map(|c| (c.key(), *c)).collect();
        let records_by_key: HashMap<&str, &Map<String, Value>> =
            sent.iter().map(|c| c.key()).zip(&records).collect();
        // A pair's records not recorded as synced before the call (new ones) are after it.
        let record_after: HashMap<&str, &Map<String, Value>> = records_by_key
            .iter()
            .filter(|(k, _)| pair.is_some() && !recorded_before.contains(**k))
            .map(|(k, r)| (*k, *r))
            .collect();
        outcomes.extend(
            self.retry_transient(
                &step.object,
                (upsert_field, ext_field),
                &records_by_key,
                &outcomes,
                &unprocessed,
            )
            .await?,
        );
        let mut done = self
            .settle_upserts(&step.object, &by_key, &record_after, outcomes, report)
            .await?;
        // Filtered: a soft delete of a record that does not exist has nothing to do.
        done.settled.extend(absent);
        done.settled
            .extend(self.ambiguous(step, ambiguous, report).await?);
        Ok(done)
    }

    async fn delete_step<C: FlushChange>(
        &self,
        end_lsn: Lsn,
        step: &Step<C>,
        plan: &StepPlan,
        recorded: Recorded,
        report: &mut FlushReport,
    ) -> Result<StepDone, SinkError> {
        let ext_field = step.key_field.as_str();
        let keys: Vec<String> = step.changes.iter().map(|c| c.key().to_string()).collect();
        let mut ids = self.state.lookup_ids(&step.object, &keys).await?;
        let missing: Vec<String> = keys
            .iter()
            .filter(|k| !ids.contains_key(*k))
            .cloned()
            .collect();
        if !missing.is_empty() {
            ids.extend(
                self.dest
                    .find_ids(&step.object, ext_field, &missing)
                    .await?,
            );
        }
        let key_of: HashMap<String, String> =
            ids.iter().map(|(k, id)| (id.clone(), k.clone())).collect();
        let id_list: Vec<String> = ids.values().cloned().collect();
        let (mut outcomes, mut unprocessed) = if id_list.is_empty() {
            (Vec::new(), Vec::new())
        } else if plan.path == StepPath::Bulk {
            let records: Vec<Map<String, Value>> = id_list
                .iter()
                .map(|id| Map::from_iter([("Id".to_string(), Value::String(id.clone()))]))
                .collect();
            self.bulk(
                end_lsn,
                plan,
                StepKind::Delete,
                ext_field,
                &records,
                recorded,
            )
            .await?
        } else {
            self.state
                .set_step(end_lsn, plan.step, StepState::Uploaded, None)
                .await?;
            fence(&*self.state).await?;
            (self.dest.delete_ids(&id_list).await?, Vec::new())
        };
        unprocessed.extend(without_outcome(
            id_list.iter().cloned(),
            &outcomes,
            &unprocessed,
        ));
        outcomes.extend(
            self.retry_transient_deletes(&outcomes, &unprocessed)
                .await?,
        );
        let gone: Vec<String> = missing
            .into_iter()
            .filter(|k| !ids.contains_key(k))
            .collect();
        self.settle_deletes(step, &key_of, gone, outcomes, report)
            .await
    }

    /// Run (or reconcile) one Bulk job and return its outcomes and unprocessed keys.
    async fn bulk(
        &self,
        end_lsn: Lsn,
        plan: &StepPlan,
        kind: StepKind,
        ext_field: &str,
        records: &[Map<String, Value>],
        recorded: Recorded,
    ) -> Result<(Vec<Outcome>, Vec<String>), SinkError> {
        let key_column = if kind == StepKind::Delete {
            "Id"
        } else {
            ext_field
        };
        if let Some((Some(job), _)) = recorded {
            match self.dest.job_status(&job).await? {
                JobStatus::Running | JobStatus::Finished => {
                    info!(job_id = %job, "reconciling a Bulk job from before the restart");
                    return self.finish_job(&plan.object, &job, key_column).await;
                }
                JobStatus::Open => {
                    info!(job_id = %job, "aborting a Bulk job that never got its data; sending the step again");
                    fence(&*self.state).await?;
                    self.dest.abort_job(&job).await?;
                }
                JobStatus::Gone => {}
            }
        }
        fence(&*self.state).await?;
        let job = self.dest.create_job(&plan.object, kind, ext_field).await?;
        self.state
            .set_step(end_lsn, plan.step, StepState::JobCreated, Some(&job))
            .await?;
        metrics::gauge!(m::BULK_JOBS_IN_FLIGHT, "pipeline" => self.opts.pipeline.clone())
            .increment(1.0);
        let result = async {
            fence(&*self.state).await?;
            self.dest
                .upload_and_close(&job, kind, ext_field, records)
                .await?;
            self.state
                .set_step(end_lsn, plan.step, StepState::Uploaded, None)
                .await?;
            self.finish_job(&plan.object, &job, key_column).await
        }
        .await;
        metrics::gauge!(m::BULK_JOBS_IN_FLIGHT, "pipeline" => self.opts.pipeline.clone())
            .decrement(1.0);
        result
    }

    async fn finish_job(
        &self,
        object: &str,
        job: &str,
        key_column: &str,
    ) -> Result<(Vec<Outcome>, Vec<String>), SinkError> {
        let (outcomes, unprocessed) = self.dest.job_results(job, key_column).await?;
        let state = if unprocessed.is_empty() {
            "completed"
        } else {
            "failed"
        };
        metrics::counter!(m::BULK_JOBS, "pipeline" => self.opts.pipeline.clone(), "object" => object.to_string(), "state" => state).increment(1);
        Ok((outcomes, unprocessed))
    }
}

/// Keys (or Ids) the destination returned no outcome for and did not list as unprocessed
/// (e.g. a job that failed before reading its data): they are treated as unprocessed, so
/// they are retried and dead-lettered rather than silently dropped.
fn without_outcome(
    keys: impl Iterator<Item = String>,
    outcomes: &[Outcome],
    unprocessed: &[String],
) -> Vec<String> {
    let seen: HashSet<&str> = outcomes
        .iter()
        .map(|o| o.key.as_str())
        .chain(unprocessed.iter().map(String::as_str))
        .collect();
    keys.filter(|k| !seen.contains(k.as_str())).collect()
}

/// Two plans hold the same changes (path aside).
fn same_content(a: &StepPlan, b: &StepPlan) -> bool {
    a.object == b.object
        && a.key_field == b.key_field
        && a.operation == b.operation
        && a.rows == b.rows
        && a.keys_digest == b.keys_digest
}

/// A step's keys, in order, as a short digest.
fn keys_digest<C: FlushChange>(step: &Step<C>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for c in &step.changes {
        h.update(c.key().as_bytes());
        h.update([0u8]);
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn shape(p: &StepPlan) -> (&str, &str, i32, &str) {
    (
        p.object.as_str(),
        p.operation.as_str(),
        p.rows,
        &p.keys_digest[..p.keys_digest.len().min(8)],
    )
}
