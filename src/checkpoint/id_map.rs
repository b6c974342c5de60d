//! The id map: external id → Salesforce Id per object, for deletes (by Id) and lookups.

use std::collections::HashMap;

use super::error::{q, StateError};
use super::store::StateStore;

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
                     WHERE pipeline = $1 AND object = $2 AND external_id = ANY($3)"
                ),
                &[&self.pipeline, &object, &external_ids],
            )
            .await
            .map_err(q("reading the id map"))?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
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
