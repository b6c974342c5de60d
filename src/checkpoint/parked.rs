//! Parked children: changes whose parent is not in Salesforce yet, one per (mapping, key),
//! kept until they went through so a crash in between retries them.

use super::error::{parse_lsn, q, StateError};
use super::store::StateStore;
use crate::lsn::Lsn;

/// A child change waiting for its parent to exist in Salesforce.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedChange {
    pub mapping: String,
    pub object: String,
    pub external_id: String,
    pub parent_object: String,
    pub parent_external_id: String,
    pub lsn: Lsn,
    pub row: serde_json::Value,
}

impl StateStore {
    /// Park a child whose parent is not in Salesforce yet (latest change of a key wins).
    pub async fn park(&self, changes: &[ParkedChange]) -> Result<(), StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let stmt = client
            .prepare(&format!(
                "INSERT INTO {s}.parked (pipeline, mapping, object, external_id, parent_object,
                                         parent_external_id, lsn, row_data)
                 VALUES ($1, $2, $3, $4, $5, $6, $7::text::pg_lsn, $8)
                 ON CONFLICT (pipeline, mapping, external_id) DO UPDATE
                   SET parent_object = excluded.parent_object,
                       parent_external_id = excluded.parent_external_id, lsn = excluded.lsn,
                       row_data = excluded.row_data, attempts = {s}.parked.attempts + 1,
                       last_seen = now()"
            ))
            .await
            .map_err(q("parking changes"))?;
        for p in changes {
            client
                .execute(
                    &stmt,
                    &[
                        &self.pipeline,
                        &p.mapping,
                        &p.object,
                        &p.external_id,
                        &p.parent_object,
                        &p.parent_external_id,
                        &p.lsn.to_string(),
                        &p.row,
                    ],
                )
                .await
                .map_err(q("parking changes"))?;
        }
        Ok(())
    }

    /// Parked children whose parent (object, external id) is in `landed`. They stay parked
    /// until [`unpark_keys`](Self::unpark_keys) after they went through, so a crash in
    /// between retries them instead of losing them.
    pub async fn parked_for(
        &self,
        parent_object: &str,
        landed: &[String],
    ) -> Result<Vec<ParkedChange>, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!(
                    "SELECT mapping, object, external_id, parent_object, parent_external_id,
                            lsn::text, row_data
                     FROM {s}.parked
                     WHERE pipeline = $1 AND parent_object = $2 AND parent_external_id = ANY($3)
                     ORDER BY lsn"
                ),
                &[&self.pipeline, &parent_object, &landed],
            )
            .await
            .map_err(q("reading parked changes"))?;
        rows.into_iter()
            .map(|r| {
                Ok(ParkedChange {
                    mapping: r.get(0),
                    object: r.get(1),
                    external_id: r.get(2),
                    parent_object: r.get(3),
                    parent_external_id: r.get(4),
                    lsn: parse_lsn("parked.lsn", r.get(5))?,
                    row: r.get(6),
                })
            })
            .collect()
    }

    /// Drop parked entries superseded by a newer change of the same keys.
    pub async fn unpark_keys(&self, mapping: &str, keys: &[String]) -> Result<u64, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "DELETE FROM {s}.parked WHERE pipeline = $1 AND mapping = $2 AND external_id = ANY($3)"
                ),
                &[&self.pipeline, &mapping, &keys],
            )
            .await
            .map_err(q("dropping superseded parked changes"))
    }

    /// Number of parked changes.
    pub async fn parked_count(&self) -> Result<i64, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let row = client
            .query_one(
                &format!("SELECT count(*) FROM {s}.parked WHERE pipeline = $1"),
                &[&self.pipeline],
            )
            .await
            .map_err(q("counting parked changes"))?;
        Ok(row.get(0))
    }
}
