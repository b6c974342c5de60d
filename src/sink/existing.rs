//! Update-only changes (soft deletes): before an upsert step is sent, the records its
//! [`existing_only`](super::FlushChange::existing_only) changes would update are looked
//! up (the id map, then Salesforce by external id, as deletes are). A change whose record
//! does not exist is not sent, so no stub record is created; its outcome is "filtered"
//! (nothing to do), and it counts as settled for the epoch-end check.

use std::collections::HashSet;

use tracing::info;

use super::destination::{Destination, SinkError};
use super::flusher::{FlushChange, Flusher};
use crate::batch::Step;

impl<D: Destination> Flusher<D> {
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
