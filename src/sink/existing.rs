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

use super::destination::{Destination, RecordFailure, SinkError};
use super::flusher::{FlushChange, Flusher};
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
