//! Settling a step's per-record results: landed records go to the id map and resolve
//! their open dead letters and parked entries, children with a missing parent are parked,
//! the rest are dead-lettered, and every row is counted in the flush report.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use tracing::{info, warn};

use super::destination::{Destination, Outcome, RecordFailure, SinkError};
use super::flusher::{FlushChange, FlushReport, Flusher, StepDone};
use super::state::SinkState;
use crate::batch::Step;
use crate::checkpoint::{DeadLetter, ParkedChange};
use crate::metrics as m;

impl<D: Destination, S: SinkState> Flusher<D, S> {
    /// `sent`: the records of a pair's keys to record as synced once they landed, as
    /// they were sent (the guard may have left fields out; records it recorded before the
    /// call are not in it).
    pub(super) async fn settle_upserts<C: FlushChange>(
        &self,
        object: &str,
        by_key: &HashMap<&str, &C>,
        sent: &HashMap<&str, &Map<String, Value>>,
        outcomes: Vec<Outcome>,
        report: &mut FlushReport,
    ) -> Result<StepDone, SinkError> {
        // Later outcomes for a key (a retry) override earlier ones.
        let mut last: HashMap<String, Result<(String, bool), RecordFailure>> =
            HashMap::with_capacity(outcomes.len());
        for o in outcomes {
            last.insert(o.key, o.result);
        }
        let mut ids = Vec::with_capacity(last.len());
        // Per mapping: the keys that landed, and whether every one of them resolves its
        // dead letters (almost always: then the same list serves both).
        let mut ok_by_mapping: HashMap<&str, (Vec<String>, bool)> = HashMap::new();
        let mut parked = Vec::new();
        let mut dead = Vec::new();
        let mut settled = HashSet::with_capacity(last.len());
        for (key, result) in last {
            let Some(&change) = by_key.get(key.as_str()) else {
                continue;
            };
            match result {
                Ok((id, _created)) => {
                    ids.push((key.clone(), id));
                    let (keys, all_resolve) = ok_by_mapping
                        .entry(change.mapping())
                        .or_insert_with(|| (Vec::new(), true));
                    *all_resolve &= change.resolves_dead_letters();
                    keys.push(key.clone());
                }
                Err(f) if f.is_missing_parent() && change.parent().is_some() => {
                    parked.push(self.parked(object, change))
                }
                Err(f) => dead.push(self.dead_letter(object, change, "upsert", f)),
            }
            settled.insert(key);
        }
        // A pair's inbound side compares what comes back with this: recorded first, so
        // a record polled before its Id is written back is already known.
        if !sent.is_empty() {
            let written = ids
                .iter()
                .filter_map(|(k, id)| Some((id.clone(), (*sent.get(k.as_str())?).clone())))
                .collect();
            self.state.remember_outbound(object, written).await?;
        }
        self.write_back(by_key, &ids).await?;
        self.state.store_ids(object, &ids).await?;
        for (mapping, (keys, all_resolve)) in &ok_by_mapping {
            if *all_resolve {
                self.state.resolve_dead_letters(mapping, keys).await?;
            } else {
                let resolving: Vec<String> = keys
                    .iter()
                    .filter(|k| {
                        by_key
                            .get(k.as_str())
                            .is_some_and(|c| c.resolves_dead_letters())
                    })
                    .cloned()
                    .collect();
                if !resolving.is_empty() {
                    self.state.resolve_dead_letters(mapping, &resolving).await?;
                }
            }
        }
        for (mapping, (keys, _)) in &ok_by_mapping {
            self.state.unpark_keys(mapping, keys).await?;
            metrics::counter!(m::CHANGES_APPLIED, "pipeline" => self.opts.pipeline.clone(), "mapping" => mapping.to_string(), "object" => object.to_string(), "operation" => "upsert").increment(keys.len() as u64);
        }
        report.applied += ids.len();
        self.record_losses(parked, dead, report).await?;
        Ok(StepDone {
            landed: ids.into_iter().map(|(k, _)| k).collect(),
            settled,
        })
    }

    /// Deleted (or already gone) keys leave the id map and resolve their dead letters; the
    /// rest are dead-lettered.
    pub(super) async fn settle_deletes<C: FlushChange>(
        &self,
        step: &Step<C>,
        key_of: &HashMap<String, String>,
        mut gone: Vec<String>,
        outcomes: Vec<Outcome>,
        report: &mut FlushReport,
    ) -> Result<StepDone, SinkError> {
        let by_key: HashMap<&str, &C> = step.changes.iter().map(|c| (c.key(), c)).collect();
        // Later outcomes for an Id (a retry) override earlier ones.
        let mut last: HashMap<String, Result<(String, bool), RecordFailure>> = HashMap::new();
        for o in outcomes {
            last.insert(o.key, o.result);
        }
        let mut dead = Vec::new();
        let mut settled: HashSet<String> = gone.iter().cloned().collect();
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
            settled.insert(key.clone());
        }
        self.state.forget_ids(&step.object, &gone).await?;
        let mut by_mapping: HashMap<&str, Vec<String>> = HashMap::new();
        for k in &gone {
            if let Some(c) = by_key.get(k.as_str()) {
                by_mapping.entry(c.mapping()).or_default().push(k.clone());
            }
        }
        for (mapping, keys) in by_mapping {
            let resolving: Vec<String> = keys
                .iter()
                .filter(|k| {
                    by_key
                        .get(k.as_str())
                        .is_some_and(|c| c.resolves_dead_letters())
                })
                .cloned()
                .collect();
            self.state.resolve_dead_letters(mapping, &resolving).await?;
            self.state.unpark_keys(mapping, &keys).await?;
            metrics::counter!(m::CHANGES_APPLIED, "pipeline" => self.opts.pipeline.clone(), "mapping" => mapping.to_string(), "object" => step.object.clone(), "operation" => "delete").increment(keys.len() as u64);
        }
        report.applied += gone.len();
        self.record_losses(Vec::new(), dead, report).await?;
        Ok(StepDone {
            landed: Vec::new(),
            settled,
        })
    }

    pub(super) async fn record_losses(
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

    pub(super) fn dead_letter<C: FlushChange>(
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
}
