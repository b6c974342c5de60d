//! Parked children: changes whose parent is not in Salesforce yet, one per (mapping, key)
//! with a row per parent it waits on, kept until they went through so a crash in between
//! retries them.

use tokio_postgres::types::ToSql;

use super::error::{parse_lsn, q, StateError};
use super::store::StateStore;
use crate::lsn::Lsn;

/// A child change waiting for its parents to exist in Salesforce.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedChange {
    pub mapping: String,
    pub object: String,
    pub external_id: String,
    /// Every parent (object, external id) the change names; it is retried when any of
    /// them lands, and stays parked while one is still missing.
    pub parents: Vec<(String, String)>,
    pub lsn: Lsn,
    pub row: serde_json::Value,
}

impl StateStore {
    /// Park children whose parent is not in Salesforce yet (latest change of a key wins),
    /// in one transaction.
    pub async fn park(&self, changes: &[ParkedChange]) -> Result<(), StateError> {
        let s = &self.schema;
        let mut client = self.client.lock().await;
        let tx = client.transaction().await.map_err(q("parking changes"))?;
        let upsert = tx
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
        let forget = tx
            .prepare(&format!(
                "DELETE FROM {s}.parked_parents WHERE pipeline = $1 AND mapping = $2 AND external_id = $3"
            ))
            .await
            .map_err(q("parking changes"))?;
        let link = tx
            .prepare(&format!(
                "INSERT INTO {s}.parked_parents SELECT $1, $2, $3, o, k
                   FROM unnest($4::text[], $5::text[]) AS u(o, k) ON CONFLICT DO NOTHING"
            ))
            .await
            .map_err(q("parking changes"))?;
        for p in changes {
            let (first_object, first_key) = p.parents.first().cloned().unwrap_or_default();
            let lsn = p.lsn.to_string();
            let (pipeline, mapping, key) = (&self.pipeline, &p.mapping, &p.external_id);
            #[rustfmt::skip]
            let row = [pipeline as &(dyn ToSql + Sync), mapping, &p.object, key, &first_object,
                       &first_key, &lsn, &p.row];
            tx.execute(&upsert, &row)
                .await
                .map_err(q("parking changes"))?;
            tx.execute(&forget, &[pipeline, mapping, key])
                .await
                .map_err(q("parking changes"))?;
            let (objects, keys): (Vec<String>, Vec<String>) = p.parents.iter().cloned().unzip();
            tx.execute(&link, &[pipeline, mapping, key, &objects, &keys])
                .await
                .map_err(q("parking changes"))?;
        }
        tx.commit().await.map_err(q("parking changes"))
    }

    /// Parked children waiting on a parent (object, external id) in `landed`, oldest first.
    /// They stay parked until [`unpark_keys`](Self::unpark_keys) after they went through,
    /// so a crash in between retries them instead of losing them. `parents` of each holds
    /// every parent it waits on.
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
                    "SELECT p.mapping, p.object, p.external_id, p.lsn::text, p.row_data,
                            (SELECT array_agg(a.parent_object ORDER BY a.parent_object, a.parent_external_id)
                               FROM {s}.parked_parents a
                              WHERE a.pipeline = p.pipeline AND a.mapping = p.mapping
                                AND a.external_id = p.external_id),
                            (SELECT array_agg(a.parent_external_id ORDER BY a.parent_object, a.parent_external_id)
                               FROM {s}.parked_parents a
                              WHERE a.pipeline = p.pipeline AND a.mapping = p.mapping
                                AND a.external_id = p.external_id)
                     FROM {s}.parked p
                     WHERE p.pipeline = $1 AND EXISTS (
                         SELECT 1 FROM {s}.parked_parents pp
                          WHERE pp.pipeline = p.pipeline AND pp.mapping = p.mapping
                            AND pp.external_id = p.external_id
                            AND pp.parent_object = $2 AND pp.parent_external_id = ANY($3))
                     ORDER BY p.lsn"
                ),
                &[&self.pipeline, &parent_object, &landed],
            )
            .await
            .map_err(q("reading parked changes"))?;
        rows.into_iter()
            .map(|r| {
                let objects: Vec<String> = r.get::<_, Option<Vec<String>>>(5).unwrap_or_default();
                let keys: Vec<String> = r.get::<_, Option<Vec<String>>>(6).unwrap_or_default();
                Ok(ParkedChange {
                    mapping: r.get(0),
                    object: r.get(1),
                    external_id: r.get(2),
                    parents: objects.into_iter().zip(keys).collect(),
                    lsn: parse_lsn("parked.lsn", r.get(3))?,
                    row: r.get(4),
                })
            })
            .collect()
    }

    /// Drop parked entries that went through or were superseded by a newer change of the
    /// same keys.
    pub async fn unpark_keys(&self, mapping: &str, keys: &[String]) -> Result<u64, StateError> {
        let s = &self.schema;
        let mut client = self.client.lock().await;
        let tx = client
            .transaction()
            .await
            .map_err(q("dropping superseded parked changes"))?;
        tx.execute(
            &format!(
                "DELETE FROM {s}.parked_parents WHERE pipeline = $1 AND mapping = $2 AND external_id = ANY($3)"
            ),
            &[&self.pipeline, &mapping, &keys],
        )
        .await
        .map_err(q("dropping superseded parked changes"))?;
        let n = tx
            .execute(
                &format!(
                    "DELETE FROM {s}.parked WHERE pipeline = $1 AND mapping = $2 AND external_id = ANY($3)"
                ),
                &[&self.pipeline, &mapping, &keys],
            )
            .await
            .map_err(q("dropping superseded parked changes"))?;
        tx.commit()
            .await
            .map_err(q("dropping superseded parked changes"))?;
        Ok(n)
    }

    /// What is stuck: the oldest open dead letter and the parked changes by reason.
    pub async fn stuck(&self) -> Result<super::Stuck, StateError> {
        let client = self.client.lock().await;
        super::stuck::read(&client, &self.schema, &self.pipeline).await
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
