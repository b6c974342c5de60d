//! The epoch protocol: an epoch's steps are planned and recorded before any data is sent,
//! each Bulk job id is recorded before its upload, each step's state moves forward as it
//! goes, and a plan left in flight by a crashed run is reconciled (its jobs' results taken,
//! or the jobs aborted) instead of sent again.

use std::collections::HashMap;

use serde_json::{Map, Value};
use tracing::{info, info_span, warn, Instrument};

use super::destination::{Destination, JobStatus, Outcome, SinkError};
use super::flusher::{FlushChange, FlushReport, Flusher};
use crate::batch::{Step, StepKind};
use crate::checkpoint::{EpochPlan, StepPlan, StepState};
use crate::lsn::Lsn;
use crate::metrics as m;

impl<D: Destination> Flusher<D> {
    pub(super) fn plan<C>(&self, steps: &[Step<C>], resume: Option<&EpochPlan>) -> Vec<StepPlan> {
        steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let recorded = resume.and_then(|r| r.steps.get(i)).map(|(p, _, _)| p);
                let path = match recorded {
                    Some(p) if p.object == s.object && p.operation == s.kind.as_str() => {
                        p.path.clone()
                    }
                    _ if s.changes.len() < self.opts.collections_threshold => "collections".into(),
                    _ => "bulk".into(),
                };
                StepPlan {
                    step: i as i32,
                    object: s.object.clone(),
                    operation: s.kind.as_str().into(),
                    path,
                    rows: s.changes.len() as i32,
                }
            })
            .collect()
    }

    /// Match the new plan to what a previous run recorded. If they agree, each step gets its
    /// recorded job and state. If not (e.g. batch limits changed between runs), the
    /// recorded jobs are reconciled first and the new plan replaces the old one.
    pub(super) async fn recorded_steps(
        &self,
        end_lsn: Lsn,
        plans: &[StepPlan],
        resume: Option<EpochPlan>,
    ) -> Result<Vec<Option<(Option<String>, StepState)>>, SinkError> {
        let Some(resume) = resume else {
            self.state.plan_epoch(end_lsn, plans).await?;
            return Ok(vec![None; plans.len()]);
        };
        let same = resume.steps.len() == plans.len()
            && resume.steps.iter().zip(plans).all(|((r, _, _), p)| r == p);
        if same {
            info!(steps = plans.len(), "resuming an epoch left in flight");
            return Ok(resume
                .steps
                .into_iter()
                .map(|(_, job, st)| Some((job, st)))
                .collect());
        }
        warn!(
            recorded = ?resume.steps.iter().map(|(p, _, _)| (p.object.as_str(), p.operation.as_str(), p.rows)).collect::<Vec<_>>(),
            rebuilt = ?plans.iter().map(|p| (p.object.as_str(), p.operation.as_str(), p.rows)).collect::<Vec<_>>(),
            recorded_end = %resume.end_lsn,
            "the in-flight plan differs from the rebuilt epoch; reconciling its jobs, then replanning"
        );
        for (_, job, state) in &resume.steps {
            let (Some(job), StepState::Uploaded | StepState::JobCreated) = (job, state) else {
                continue;
            };
            match self.dest.job_status(job).await? {
                // Never got its data: abort it rather than leave it open for a day.
                JobStatus::Open => self.dest.abort_job(job).await?,
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

    pub(super) async fn run_step<C: FlushChange>(
        &self,
        end_lsn: Lsn,
        step: &Step<C>,
        plan: &StepPlan,
        recorded: Option<(Option<String>, StepState)>,
        report: &mut FlushReport,
    ) -> Result<Vec<String>, SinkError> {
        if let Some((_, StepState::Done)) = &recorded {
            return Ok(Vec::new());
        }
        let span = info_span!("step", object = %step.object, op = step.kind.as_str(), path = %plan.path, rows = plan.rows);
        async {
            let landed = match step.kind {
                StepKind::Upsert => {
                    self.upsert_step(end_lsn, step, plan, recorded, report)
                        .await?
                }
                StepKind::Delete => {
                    self.delete_step(end_lsn, step, plan, recorded, report)
                        .await?;
                    Vec::new()
                }
            };
            self.state
                .set_step(end_lsn, plan.step, StepState::Done, None)
                .await?;
            Ok(landed)
        }
        .instrument(span)
        .await
    }

    async fn upsert_step<C: FlushChange>(
        &self,
        end_lsn: Lsn,
        step: &Step<C>,
        plan: &StepPlan,
        recorded: Option<(Option<String>, StepState)>,
        report: &mut FlushReport,
    ) -> Result<Vec<String>, SinkError> {
        let Some(ext_field) = step
            .changes
            .first()
            .map(|c| c.external_id_field().to_string())
        else {
            return Ok(Vec::new());
        };
        let records: Vec<Map<String, Value>> = step.changes.iter().map(|c| c.record()).collect();
        let (mut outcomes, unprocessed) = if plan.path == "bulk" {
            self.bulk(
                end_lsn,
                plan,
                StepKind::Upsert,
                &ext_field,
                &records,
                recorded,
            )
            .await?
        } else {
            self.state
                .set_step(end_lsn, plan.step, StepState::Uploaded, None)
                .await?;
            (
                self.dest
                    .upsert_records(&step.object, &ext_field, &records)
                    .await?,
                Vec::new(),
            )
        };
        outcomes.extend(
            self.retry_transient(&step.object, &ext_field, step, &outcomes, &unprocessed)
                .await?,
        );
        let by_key: HashMap<&str, &C> = step.changes.iter().map(|c| (c.key(), c)).collect();
        self.settle_upserts(&step.object, &by_key, outcomes, report)
            .await
    }

    async fn delete_step<C: FlushChange>(
        &self,
        end_lsn: Lsn,
        step: &Step<C>,
        plan: &StepPlan,
        recorded: Option<(Option<String>, StepState)>,
        report: &mut FlushReport,
    ) -> Result<(), SinkError> {
        let Some(ext_field) = step
            .changes
            .first()
            .map(|c| c.external_id_field().to_string())
        else {
            return Ok(());
        };
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
                    .find_ids(&step.object, &ext_field, &missing)
                    .await?,
            );
        }
        let key_of: HashMap<String, String> =
            ids.iter().map(|(k, id)| (id.clone(), k.clone())).collect();
        let id_list: Vec<String> = ids.values().cloned().collect();
        let (mut outcomes, unprocessed) = if id_list.is_empty() {
            (Vec::new(), Vec::new())
        } else if plan.path == "bulk" {
            let records: Vec<Map<String, Value>> = id_list
                .iter()
                .map(|id| Map::from_iter([("Id".to_string(), Value::String(id.clone()))]))
                .collect();
            self.bulk(
                end_lsn,
                plan,
                StepKind::Delete,
                &ext_field,
                &records,
                recorded,
            )
            .await?
        } else {
            self.state
                .set_step(end_lsn, plan.step, StepState::Uploaded, None)
                .await?;
            (self.dest.delete_ids(&id_list).await?, Vec::new())
        };
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
        recorded: Option<(Option<String>, StepState)>,
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
                    self.dest.abort_job(&job).await?;
                }
                JobStatus::Gone => {}
            }
        }
        let job = self.dest.create_job(&plan.object, kind, ext_field).await?;
        self.state
            .set_step(end_lsn, plan.step, StepState::JobCreated, Some(&job))
            .await?;
        metrics::gauge!(m::BULK_JOBS_IN_FLIGHT, "pipeline" => self.opts.pipeline.clone())
            .increment(1.0);
        let result = async {
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
