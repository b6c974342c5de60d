//! [`Flusher`]: one epoch at a time, step by step, with every Bulk job recorded before its
//! upload and every result accounted for before the checkpoint moves.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use tracing::{info, info_span, warn, Instrument};

use super::destination::{Destination, JobStatus, Outcome, RecordFailure, SinkError};
use crate::batch::{plan_steps, Coalesce, Epoch, Step, StepKind};
use crate::checkpoint::{DeadLetter, EpochPlan, ParkedChange, StateStore, StepPlan, StepState};
use crate::lsn::Lsn;
use crate::metrics as m;

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
    dest: D,
    state: Arc<StateStore>,
    opts: FlusherOptions,
}

const PARKED_RECORD: &str = "record";
const PARKED_EXT_FIELD: &str = "external_id_field";

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
            let steps = plan_steps(epoch.drain(), &self.opts.object_order, self.opts.max_rows);
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

    fn plan<C>(&self, steps: &[Step<C>], resume: Option<&EpochPlan>) -> Vec<StepPlan> {
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
    async fn recorded_steps(
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

    async fn run_step<C: FlushChange>(
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
        let result = async {
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
        .await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(m::BATCHES, "pipeline" => self.opts.pipeline.clone(), "object" => step.object.clone(), "path" => plan.path.clone(), "result" => outcome).increment(1);
        result
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

    /// Records failing transiently (or never processed) are sent again through
    /// Collections, up to the configured number of times.
    async fn retry_transient<C: FlushChange>(
        &self,
        object: &str,
        ext_field: &str,
        step: &Step<C>,
        outcomes: &[Outcome],
        unprocessed: &[String],
    ) -> Result<Vec<Outcome>, SinkError> {
        self.retry_loop(outcomes, unprocessed, |pending: Vec<String>| {
            let records: Vec<Map<String, Value>> = step
                .changes
                .iter()
                .filter(|c| pending.iter().any(|k| k == c.key()))
                .map(|c| c.record())
                .collect();
            Box::pin(async move { self.dest.upsert_records(object, ext_field, &records).await })
        })
        .await
    }

    /// The retry policy shared by upserts and deletes: keys that failed transiently or were
    /// never processed go again via `send`, with exponential backoff, up to
    /// `transient_retries` times; rows still never processed come back as `UNPROCESSED`
    /// failures, so they are dead-lettered, never lost.
    async fn retry_loop<'a>(
        &'a self,
        outcomes: &[Outcome],
        unprocessed: &[String],
        send: impl Fn(Vec<String>) -> BoxFuture<'a, Result<Vec<Outcome>, SinkError>>,
    ) -> Result<Vec<Outcome>, SinkError> {
        let mut pending: Vec<String> = outcomes
            .iter()
            .filter(|o| matches!(&o.result, Err(f) if f.is_transient()))
            .map(|o| o.key.clone())
            .chain(unprocessed.iter().cloned())
            .collect();
        let mut final_outcomes = Vec::new();
        let mut attempt = 0;
        while !pending.is_empty() && attempt < self.opts.transient_retries {
            attempt += 1;
            let backoff = std::time::Duration::from_millis(200 * 2u64.pow(attempt.min(6)));
            tokio::time::sleep(backoff).await;
            let results = send(pending.clone()).await?;
            pending.clear();
            for o in results {
                match &o.result {
                    Err(f) if f.is_transient() && attempt < self.opts.transient_retries => {
                        pending.push(o.key)
                    }
                    _ => final_outcomes.push(o),
                }
            }
        }
        for key in pending.iter().filter(|k| unprocessed.contains(k)) {
            final_outcomes.push(unprocessed_failure(key));
        }
        Ok(final_outcomes)
    }

    async fn settle_upserts<C: FlushChange>(
        &self,
        object: &str,
        by_key: &HashMap<&str, &C>,
        outcomes: Vec<Outcome>,
        report: &mut FlushReport,
    ) -> Result<Vec<String>, SinkError> {
        // Later outcomes for a key (a retry) override earlier ones.
        let mut last: HashMap<String, Result<(String, bool), RecordFailure>> = HashMap::new();
        for o in outcomes {
            last.insert(o.key, o.result);
        }
        let mut ids = Vec::new();
        let mut ok_by_mapping: HashMap<String, Vec<String>> = HashMap::new();
        let mut parked = Vec::new();
        let mut dead = Vec::new();
        for (key, result) in last {
            let Some(change) = by_key.get(key.as_str()) else {
                continue;
            };
            match result {
                Ok((id, _created)) => {
                    ids.push((key.clone(), id));
                    ok_by_mapping
                        .entry(change.mapping().to_string())
                        .or_default()
                        .push(key);
                }
                Err(f) if f.is_missing_parent() && change.parent().is_some() => {
                    parked.push(self.parked(object, *change))
                }
                Err(f) => dead.push(self.dead_letter(object, *change, "upsert", f)),
            }
        }
        self.write_back(by_key, &ids).await?;
        self.state.store_ids(object, &ids).await?;
        for (mapping, keys) in &ok_by_mapping {
            self.state.resolve_dead_letters(mapping, keys).await?;
            self.state.unpark_keys(mapping, keys).await?;
            metrics::counter!(m::CHANGES_APPLIED, "pipeline" => self.opts.pipeline.clone(), "mapping" => mapping.clone(), "object" => object.to_string(), "operation" => "upsert").increment(keys.len() as u64);
        }
        report.applied += ids.len();
        self.record_losses(parked, dead, report).await?;
        Ok(ids.into_iter().map(|(k, _)| k).collect())
    }

    /// Write Salesforce Ids back into the source rows that ask for it, where the row's
    /// column does not hold that Id already.
    async fn write_back<C: FlushChange>(
        &self,
        by_key: &HashMap<&str, &C>,
        ids: &[(String, String)],
    ) -> Result<(), SinkError> {
        for (key, id) in ids {
            let Some(target) = by_key.get(key.as_str()).and_then(|c| c.write_back()) else {
                continue;
            };
            if target.current.as_deref() != Some(id.as_str()) {
                self.state
                    .write_back(&target.table, &target.column, &target.key, id)
                    .await?;
            }
        }
        Ok(())
    }

    async fn record_losses(
        &self,
        parked: Vec<ParkedChange>,
        dead: Vec<DeadLetter>,
        report: &mut FlushReport,
    ) -> Result<(), SinkError> {
        if !parked.is_empty() {
            info!(
                count = parked.len(),
                "parking children whose parent is not in Salesforce yet"
            );
            report.parked += parked.len();
            self.state.park(&parked).await?;
        }
        if !dead.is_empty() {
            for d in &dead {
                metrics::counter!(m::DEAD_LETTERS, "pipeline" => self.opts.pipeline.clone(), "mapping" => d.mapping.clone(), "error_code" => d.error_code.clone()).increment(1);
            }
            warn!(count = dead.len(), first_code = %dead[0].error_code, "rows rejected by Salesforce went to the dead-letter table");
            report.dead_lettered += dead.len();
            self.state.record_dead_letters(&dead).await?;
        }
        Ok(())
    }

    fn parked<C: FlushChange>(&self, object: &str, change: &C) -> ParkedChange {
        let (parent_object, parent_external_id) = change.parent().unwrap_or_default();
        let mut row = Map::new();
        row.insert(
            PARKED_EXT_FIELD.into(),
            Value::String(change.external_id_field().into()),
        );
        row.insert(PARKED_RECORD.into(), Value::Object(change.record()));
        ParkedChange {
            mapping: change.mapping().into(),
            object: object.into(),
            external_id: change.key().into(),
            parent_object,
            parent_external_id,
            lsn: change.lsn(),
            row: Value::Object(row),
        }
    }

    fn dead_letter<C: FlushChange>(
        &self,
        object: &str,
        change: &C,
        op: &str,
        f: RecordFailure,
    ) -> DeadLetter {
        DeadLetter {
            mapping: change.mapping().into(),
            object: object.into(),
            external_id: change.key().into(),
            operation: op.into(),
            lsn: change.lsn(),
            error_code: f.code,
            message: f.message,
            fields: f.fields,
            row: Value::Object(change.record()),
        }
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
        let by_key: HashMap<&str, &C> = step.changes.iter().map(|c| (c.key(), c)).collect();
        let mut gone: Vec<String> = missing
            .into_iter()
            .filter(|k| !ids.contains_key(k))
            .collect();
        // Later outcomes for an Id (a retry) override earlier ones.
        let mut last: HashMap<String, Result<(String, bool), RecordFailure>> = HashMap::new();
        for o in outcomes {
            last.insert(o.key, o.result);
        }
        let mut dead = Vec::new();
        for (id, result) in last {
            let Some(key) = key_of.get(&id) else {
                continue;
            };
            match result {
                Ok(_) => gone.push(key.clone()),
                Err(f) if f.is_already_deleted() => gone.push(key.clone()),
                Err(f) => {
                    if let Some(c) = by_key.get(key.as_str()) {
                        dead.push(self.dead_letter(&step.object, *c, "delete", f));
                    }
                }
            }
        }
        self.state.forget_ids(&step.object, &gone).await?;
        let mut by_mapping: HashMap<&str, Vec<String>> = HashMap::new();
        for k in &gone {
            if let Some(c) = by_key.get(k.as_str()) {
                by_mapping.entry(c.mapping()).or_default().push(k.clone());
            }
        }
        for (mapping, keys) in by_mapping {
            self.state.resolve_dead_letters(mapping, &keys).await?;
            self.state.unpark_keys(mapping, &keys).await?;
            metrics::counter!(m::CHANGES_APPLIED, "pipeline" => self.opts.pipeline.clone(), "mapping" => mapping.to_string(), "object" => step.object.clone(), "operation" => "delete").increment(keys.len() as u64);
        }
        report.applied += gone.len();
        self.record_losses(Vec::new(), dead, report).await
    }

    /// Deletes failing transiently, or left unprocessed by a failed Bulk job, are sent again
    /// through Collections (by Id), up to the configured number of times; rows still never
    /// processed come back as `UNPROCESSED` failures, so they are dead-lettered, not lost.
    async fn retry_transient_deletes(
        &self,
        outcomes: &[Outcome],
        unprocessed: &[String],
    ) -> Result<Vec<Outcome>, SinkError> {
        self.retry_loop(outcomes, unprocessed, |pending: Vec<String>| {
            Box::pin(async move { self.dest.delete_ids(&pending).await })
        })
        .await
    }

    /// Children parked on these parents (now in Salesforce) are sent again.
    async fn retry_parked(
        &self,
        parent_object: &str,
        parent_keys: &[String],
        report: &mut FlushReport,
    ) -> Result<(), SinkError> {
        let parked = self.state.parked_for(parent_object, parent_keys).await?;
        if parked.is_empty() {
            return Ok(());
        }
        let mut groups: HashMap<(String, String), Vec<ParkedChange>> = HashMap::new();
        for p in parked {
            let ext = p
                .row
                .get(PARKED_EXT_FIELD)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            groups.entry((p.object.clone(), ext)).or_default().push(p);
        }
        for ((object, ext_field), group) in groups {
            let records: Vec<Map<String, Value>> = group
                .iter()
                .filter_map(|p| p.row.get(PARKED_RECORD).and_then(Value::as_object).cloned())
                .collect();
            let outcomes = self
                .dest
                .upsert_records(&object, &ext_field, &records)
                .await?;
            let by_key: HashMap<String, &ParkedChange> =
                group.iter().map(|p| (p.external_id.clone(), p)).collect();
            let mut ids = Vec::new();
            let mut done: HashMap<String, Vec<String>> = HashMap::new();
            let mut dead = Vec::new();
            for o in outcomes {
                let Some(p) = by_key.get(&o.key) else {
                    continue;
                };
                match o.result {
                    Ok((id, _)) => {
                        ids.push((o.key.clone(), id));
                        done.entry(p.mapping.clone()).or_default().push(o.key);
                    }
                    Err(f) if f.is_missing_parent() => {}
                    Err(f) => {
                        done.entry(p.mapping.clone())
                            .or_default()
                            .push(o.key.clone());
                        dead.push(DeadLetter {
                            mapping: p.mapping.clone(),
                            object: object.clone(),
                            external_id: o.key,
                            operation: "upsert".into(),
                            lsn: p.lsn,
                            error_code: f.code,
                            message: f.message,
                            fields: f.fields,
                            row: p.row.get(PARKED_RECORD).cloned().unwrap_or(Value::Null),
                        })
                    }
                }
            }
            self.state.store_ids(&object, &ids).await?;
            report.unparked += ids.len();
            report.applied += ids.len();
            self.record_losses(Vec::new(), dead, report).await?;
            for (mapping, keys) in done {
                self.state.unpark_keys(&mapping, &keys).await?;
            }
        }
        Ok(())
    }
}

/// The outcome of a row Salesforce never processed (its Bulk job aborted or failed).
fn unprocessed_failure(key: &str) -> Outcome {
    Outcome {
        key: key.to_string(),
        result: Err(RecordFailure {
            code: "UNPROCESSED".into(),
            message: "Salesforce did not process this row (job aborted or failed)".into(),
            fields: Vec::new(),
        }),
    }
}
