//! The id map: external id → Salesforce Id per object, for deletes (by Id) and lookups,
//! and the record of every key this pipeline may have written. A key is noted (with an
//! unknown Id, [`UNKNOWN_ID`]) before any write that can create its record is sent, so a
//! record whose result never came back (a crash, a job reconciled without its results)
//! is still known: the resync sweep finds it (by external id) when its row is gone.

use std::collections::HashMap;

use super::error::{q, StateError};
use super::store::StateStore;

/// The `sf_id` of a key noted before its write was sent, whose Id is not known (yet).
pub const UNKNOWN_ID: &str = "";

impl StateStore {
    /// Salesforce Ids for these external ids of `object` (missing ones are absent).
    pub async fn lookup_ids(
        &self,
        object: &str,
        external_ids: &[String],
    ) -> Result<HashMap<String, String>, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!(
                    "SELECT external_id, sf_id FROM {s}.id_map
                     WHERE pipeline = $1 AND object = $2 AND external_id = ANY($3)
                       AND sf_id <> $4"
                ),
                &[&self.pipeline, &object, &external_ids, &UNKNOWN_ID],
            )
            .await
            .map_err(q("reading the id map"))?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Note keys of `object` whose records the next write may create (their Id unknown
    /// until its result is settled); a key already known keeps its Id.
    pub async fn note_keys(&self, object: &str, external_ids: &[&str]) -> Result<(), StateError> {
        if external_ids.is_empty() {
            return Ok(());
        }
        let s = &self.schema;
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.id_map (pipeline, object, external_id, sf_id)
                     SELECT $1, $2, e, $4 FROM unnest($3::text[]) AS t(e)
                     ON CONFLICT (pipeline, object, external_id) DO NOTHING"
                ),
                &[&self.pipeline, &object, &external_ids, &UNKNOWN_ID],
            )
            .await
            .map_err(q("noting keys in the id map"))?;
        Ok(())
    }

    /// Remember external id → Salesforce Id pairs.
    pub async fn store_ids(
        &self,
        object: &str,
        pairs: &[(String, String)],
    ) -> Result<(), StateError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let s = &self.schema;
        let (ext, ids): (Vec<&str>, Vec<&str>) =
            pairs.iter().map(|(e, i)| (e.as_str(), i.as_str())).unzip();
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.id_map (pipeline, object, external_id, sf_id)
                     SELECT $1, $2, e, i FROM unnest($3::text[], $4::text[]) AS t(e, i)
                     ON CONFLICT (pipeline, object, external_id)
                       DO UPDATE SET sf_id = excluded.sf_id, updated_at = now()"
                ),
                &[&self.pipeline, &object, &ext, &ids],
            )
            .await
            .map_err(q("writing the id map"))?;
        Ok(())
    }

    /// Forget ids of deleted records.
    pub async fn forget_ids(
        &self,
        object: &str,
        external_ids: &[String],
    ) -> Result<(), StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "DELETE FROM {s}.id_map WHERE pipeline = $1 AND object = $2 AND external_id = ANY($3)"
                ),
                &[&self.pipeline, &object, &external_ids],
            )
            .await
            .map_err(q("trimming the id map"))?;
        Ok(())
    }
}
