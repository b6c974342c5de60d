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
    /// Parked child changes waiting for this record (they are retried when it lands).
    pub children_waiting: i64,
}

impl StateStore {
    /// Write dead letters in one transaction; a key already open gets its attempt count
    /// raised, and the error and row of whichever change is newer (by LSN): an older change
    /// failing again (a parked child, a hand retry) never replaces a newer row.
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
                     retry_requested_at = NULL,
                     lsn = GREATEST({s}.errors.lsn, excluded.lsn),
                     operation = {newest}excluded.operation ELSE {s}.errors.operation END,
                     error_code = {newest}excluded.error_code ELSE {s}.errors.error_code END,
                     message = {newest}excluded.message ELSE {s}.errors.message END,
                     fields = {newest}excluded.fields ELSE {s}.errors.fields END,
                     row_data = {newest}excluded.row_data ELSE {s}.errors.row_data END",
                newest = format_args!("CASE WHEN excluded.lsn >= {s}.errors.lsn THEN ")
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

    /// Changes of these keys landed: open dead letters no newer than the landed change
    /// (`(key, lsn)`) are resolved; one from a later change stays open.
    pub async fn resolve_dead_letters_through(
        &self,
        mapping: &str,
        landed: &[(String, Lsn)],
    ) -> Result<u64, StateError> {
        if landed.is_empty() {
            return Ok(0);
        }
        let s = &self.schema;
        let (keys, lsns): (Vec<&str>, Vec<String>) = landed
            .iter()
            .map(|(k, l)| (k.as_str(), l.to_string()))
            .unzip();
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "UPDATE {s}.errors e SET status = 'resolved', last_seen = now()
                     FROM unnest($3::text[], $4::text[]) AS l(key, lsn)
                     WHERE e.pipeline = $1 AND e.mapping = $2 AND e.status = 'open'
                       AND e.external_id = l.key AND e.lsn <= l.lsn::pg_lsn"
                ),
                &[&self.pipeline, &mapping, &keys, &lsns],
            )
            .await
            .map_err(q("resolving dead letters"))
    }

    /// Ask the running pipeline to retry these open dead letters (all open ones when `ids`
    /// is empty) between its epochs; the number marked.
    pub async fn request_dead_letter_retry(&self, ids: &[i64]) -> Result<u64, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "UPDATE {s}.errors SET retry_requested_at = now()
                     WHERE pipeline = $1 AND status = 'open' AND (cardinality($2::bigint[]) = 0 OR id = ANY($2))"
                ),
                &[&self.pipeline, &ids],
            )
            .await
            .map_err(q("requesting a dead-letter retry"))
    }

    /// Takes the retry requests: the ids of open dead letters whose retry was requested,
    /// oldest request first, with the requests cleared (a crash before the retry leaves the
    /// letters open, to be requested again).
    pub async fn take_dead_letter_retry_requests(&self) -> Result<Vec<i64>, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!(
                    "WITH taken AS (
                         UPDATE {s}.errors SET retry_requested_at = NULL
                         WHERE pipeline = $1 AND status = 'open' AND retry_requested_at IS NOT NULL
                         RETURNING id)
                     SELECT id FROM taken ORDER BY id"
                ),
                &[&self.pipeline],
            )
            .await
            .map_err(q("taking dead-letter retry requests"))?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
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
                            error_code, message, fields, row_data, attempts, status, first_seen, last_seen,
                            (SELECT count(*) FROM {s}.parked_parents p
                              WHERE p.pipeline = e.pipeline AND p.parent_object = e.object
                                AND p.parent_external_id = e.external_id)
                     FROM {s}.errors e WHERE pipeline = $1 AND ($2::text IS NULL OR status = $2)
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
                children_waiting: r.get(15),
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
