//! Dead letters: rows Salesforce rejected or pgforce could not map, one open entry per
//! (mapping, key), resolved by a later change of the key that lands or discarded by hand.

use super::error::{q, StateError};
use super::store::StateStore;
use crate::lsn::Lsn;

/// A row Salesforce rejected (or pgforce could not map), for the dead-letter table.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub mapping: String,
    pub object: String,
    pub external_id: String,
    pub operation: String,
    pub lsn: Lsn,
    pub error_code: String,
    pub message: String,
    pub fields: Vec<String>,
    pub row: serde_json::Value,
}

/// A stored dead letter as `pgforce errors list` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetterRow {
    pub id: i64,
    pub pipeline: String,
    pub mapping: String,
    pub object: String,
    pub external_id: String,
    pub operation: String,
    pub lsn: String,
    pub error_code: String,
    pub message: String,
    pub fields: Vec<String>,
    pub row: serde_json::Value,
    pub attempts: i32,
    pub status: String,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
}

impl StateStore {
    /// Write dead letters in one transaction; a key already open gets its attempt count
    /// raised and its latest error and row.
    pub async fn record_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StateError> {
        let s = &self.schema;
        let mut client = self.client.lock().await;
        let tx = client
            .transaction()
            .await
            .map_err(q("writing dead letters"))?;
        let stmt = tx
            .prepare(&format!(
                "INSERT INTO {s}.errors (pipeline, mapping, object, external_id, operation, lsn,
                                         error_code, message, fields, row_data)
                 VALUES ($1, $2, $3, $4, $5, $6::text::pg_lsn, $7, $8, $9, $10)
                 ON CONFLICT (pipeline, mapping, external_id) WHERE status = 'open'
                 DO UPDATE SET attempts = {s}.errors.attempts + 1, last_seen = now(),
                     lsn = excluded.lsn, operation = excluded.operation,
                     error_code = excluded.error_code, message = excluded.message,
                     fields = excluded.fields, row_data = excluded.row_data"
            ))
            .await
            .map_err(q("writing dead letters"))?;
        for d in letters {
            tx.execute(
                &stmt,
                &[
                    &self.pipeline,
                    &d.mapping,
                    &d.object,
                    &d.external_id,
                    &d.operation,
                    &d.lsn.to_string(),
                    &d.error_code,
                    &d.message,
                    &d.fields,
                    &d.row,
                ],
            )
            .await
            .map_err(q("writing dead letters"))?;
        }
        tx.commit().await.map_err(q("writing dead letters"))
    }

    /// A later change of these keys went through: their open dead letters are resolved.
    pub async fn resolve_dead_letters(
        &self,
        mapping: &str,
        keys: &[String],
    ) -> Result<u64, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "UPDATE {s}.errors SET status = 'resolved', last_seen = now()
                     WHERE pipeline = $1 AND mapping = $2 AND external_id = ANY($3) AND status = 'open'"
                ),
                &[&self.pipeline, &mapping, &keys],
            )
            .await
            .map_err(q("resolving dead letters"))
    }

    /// Dead letters with the given status (`open`, `resolved`, `discarded`, or all if None).
    pub async fn list_dead_letters(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeadLetterRow>, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!(
                    "SELECT id, pipeline, mapping, object, external_id, operation, lsn::text,
                            error_code, message, fields, row_data, attempts, status, first_seen, last_seen
                     FROM {s}.errors WHERE pipeline = $1 AND ($2::text IS NULL OR status = $2)
                     ORDER BY id LIMIT $3"
                ),
                &[&self.pipeline, &status, &limit],
            )
            .await
            .map_err(q("listing dead letters"))?;
        Ok(rows
            .into_iter()
            .map(|r| DeadLetterRow {
                id: r.get(0),
                pipeline: r.get(1),
                mapping: r.get(2),
                object: r.get(3),
                external_id: r.get(4),
                operation: r.get(5),
                lsn: r.get(6),
                error_code: r.get(7),
                message: r.get(8),
                fields: r.get(9),
                row: r.get(10),
                attempts: r.get(11),
                status: r.get(12),
                first_seen: r.get(13),
                last_seen: r.get(14),
            })
            .collect())
    }

    /// Count of open dead letters.
    pub async fn open_dead_letters(&self) -> Result<i64, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let row = client
            .query_one(
                &format!("SELECT count(*) FROM {s}.errors WHERE pipeline = $1 AND status = 'open'"),
                &[&self.pipeline],
            )
            .await
            .map_err(q("counting dead letters"))?;
        Ok(row.get(0))
    }

    /// Mark dead letters discarded (all open ones when `ids` is empty).
    pub async fn discard_dead_letters(&self, ids: &[i64]) -> Result<u64, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "UPDATE {s}.errors SET status = 'discarded', last_seen = now()
                     WHERE pipeline = $1 AND status = 'open' AND (cardinality($2::bigint[]) = 0 OR id = ANY($2))"
                ),
                &[&self.pipeline, &ids],
            )
            .await
            .map_err(q("discarding dead letters"))
    }
}
