//! Update-only changes (soft deletes): before an upsert step is sent, the records its
//! [`existing_only`](super::FlushChange::existing_only) changes would update are looked
//! up (the id map, then Salesforce by external id, as deletes are). A change whose record
//! does not exist is not sent, so no stub record is created; its outcome is "filtered"
//! (nothing to do), and it counts as settled for the epoch-end check.
//!
//! Matching (`match_by` mappings, whose key field is not an External ID): the same
//! lookup finds each record's Id by value, so the step upserts by `Id` (a blank Id
//! creates), and a value several records share is reported with their Ids.

use std::collections::{HashMap, HashSet};

use tracing::{info, warn};

use serde_json::{Map, Value};

use super::destination::{Destination, Outcome, RecordFailure, SinkError};
use super::flusher::{FlushChange, FlushReport, Flusher};
use super::state::SinkState;
use crate::batch::Step;

impl<D: Destination, S: SinkState> Flusher<D, S> {
    /// Keys of the step's update-only changes whose record is not in Salesforce.
    pub(super) async fn absent_records<C: FlushChange>(
        &self,
        step: &Step<C>,
    ) -> Result<HashSet<String>, SinkError> {
        let keys: Vec<String> = step
            .changes
            .iter()
            .filter(|c| c.existing_only())
            .map(|c| c.key().to_string())
            .collect();
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let known = self.state.lookup_ids(&step.object, &keys).await?;
        let unknown: Vec<String> = keys
            .into_iter()
            .filter(|k| !known.contains_key(k))
            .collect();
        if unknown.is_empty() {
            return Ok(HashSet::new());
        }
        let found = self
            .dest
            .find_ids(&step.object, &step.key_field, &unknown)
            .await?;
        let absent: HashSet<String> = unknown
            .into_iter()
            .filter(|k| !found.contains_key(k))
            .collect();
        if !absent.is_empty() {
            info!(
                count = absent.len(),
                object = %step.object,
                "soft deletes of records that are not in Salesforce: nothing to do"
            );
        }
        Ok(absent)
    }
}

/// What matching a `match_by` step's records found.
#[derive(Debug, Default)]
pub(super) struct Matched {
    /// Key → the Id of its one record; keys without an entry match none (created).
    pub ids: HashMap<String, String>,
    /// Keys two or more records share, with their Ids: dead-lettered, never guessed.
    pub ambiguous: Vec<(String, Vec<String>)>,
}

impl<D: Destination, S: SinkState> Flusher<D, S> {
    /// The Ids of a `match_by` step's records (the id map first, then one batched SOQL
    /// lookup by value for the rest).
    pub(super) async fn match_records<C: FlushChange>(
        &self,
        step: &Step<C>,
        sent: &[&C],
    ) -> Result<Matched, SinkError> {
        let keys: Vec<String> = sent.iter().map(|c| c.key().to_string()).collect();
        let mut ids = self.state.lookup_ids(&step.object, &keys).await?;
        let unknown: Vec<String> = keys.into_iter().filter(|k| !ids.contains_key(k)).collect();
        let mut ambiguous = Vec::new();
        if !unknown.is_empty() {
            let found = self
                .dest
                .find_matches(&step.object, &step.key_field, &unknown)
                .await?;
            for (key, mut found_ids) in found {
                if found_ids.len() == 1 {
                    ids.insert(key, found_ids.remove(0));
                } else {
                    found_ids.sort();
                    ambiguous.push((key, found_ids));
                }
            }
        }
        if !ambiguous.is_empty() {
            warn!(
                count = ambiguous.len(),
                object = %step.object,
                field = %step.key_field,
                "several records share a match value: dead-lettered with their Ids"
            );
        }
        Ok(Matched { ids, ambiguous })
    }
}

/// The failure an ambiguous match is dead-lettered with (naming every Id).
pub(super) fn ambiguous_failure(object: &str, field: &str, ids: &[String]) -> RecordFailure {
    RecordFailure {
        code: "AMBIGUOUS_MATCH".into(),
        message: format!(
            "{} {object} records match by {field}: {}; none was written (merge them or \
             make the value unique, then retry the dead letter)",
            ids.len(),
            ids.join(", ")
        ),
        fields: vec![field.to_string()],
    }
}

/// The `match_by` path of an upsert step: records keyed by Id, ambiguous values
/// dead-lettered, and the Collections upsert keyed back to the step's key field.
impl<D: Destination, S: SinkState> Flusher<D, S> {
    /// Matches a `match_by` step's records: the ones a value of several records names
    /// leave `sent` (returned with those Ids), the rest are upserted by `Id` (absent for
    /// a record no one matched: created).
    pub(super) async fn matched<'c, C: FlushChange>(
        &self,
        step: &Step<C>,
        sent: &mut Vec<&'c C>,
    ) -> Result<(Vec<Map<String, Value>>, Vec<(&'c C, Vec<String>)>), SinkError> {
        let mut m = self.match_records(step, sent).await?;
        let mut ambiguous = Vec::new();
        sent.retain(
            |c| match m.ambiguous.iter().position(|(k, _)| k == c.key()) {
                Some(i) => {
                    ambiguous.push((*c, m.ambiguous.swap_remove(i).1));
                    false
                }
                None => true,
            },
        );
        let records = sent
            .iter()
            .map(|c| {
                let mut r = c.record();
                if let Some(id) = m.ids.get(c.key()) {
                    r.insert("Id".into(), Value::String(id.clone()));
                }
                r
            })
            .collect();
        Ok((records, ambiguous))
    }

    /// Dead-letters changes whose value several records share, naming every Id; returns
    /// their keys (settled).
    pub(super) async fn ambiguous<C: FlushChange>(
        &self,
        step: &Step<C>,
        ambiguous: Vec<(&C, Vec<String>)>,
        report: &mut FlushReport,
    ) -> Result<Vec<String>, SinkError> {
        let keys = ambiguous.iter().map(|(c, _)| c.key().to_string()).collect();
        let dead = ambiguous
            .into_iter()
            .map(|(c, ids)| {
                let f = super::existing::ambiguous_failure(&step.object, &step.key_field, &ids);
                self.dead_letter(&step.object, c, "upsert", f)
            })
            .collect();
        self.record_losses(Vec::new(), dead, report).await?;
        Ok(keys)
    }

    /// Collections upsert by `upsert_field`, outcomes keyed by the records' `key_field`
    /// (by position: a record created by a blank `Id` has no Id to be keyed by).
    pub(super) async fn upsert_keyed(
        &self,
        object: &str,
        upsert_field: &str,
        key_field: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<Outcome>, SinkError> {
        let mut outcomes = self
            .dest
            .upsert_records(object, upsert_field, records)
            .await?;
        if upsert_field != key_field {
            for (o, r) in outcomes.iter_mut().zip(records) {
                o.key = match r.get(key_field) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(v) => v.to_string(),
                };
            }
        }
        Ok(outcomes)
    }
}
