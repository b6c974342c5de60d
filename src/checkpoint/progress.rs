//! The checkpoint: the last LSN confirmed for the pipeline. It never moves backwards; it
//! moves with an epoch in [`StateStore::finish_epoch`] or directly over WAL that needed no
//! flush.

use super::error::{parse_lsn, q, StateError};
use super::store::StateStore;
use crate::lsn::Lsn;

impl StateStore {
    /// The last confirmed LSN, if the pipeline has ever checkpointed.
    pub async fn checkpoint(&self) -> Result<Option<Lsn>, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                &format!("SELECT confirmed_lsn::text FROM {s}.checkpoints WHERE pipeline = $1"),
                &[&self.pipeline],
            )
            .await
            .map_err(q("reading the checkpoint"))?;
        row.map(|r| parse_lsn("checkpoints.confirmed_lsn", r.get(0)))
            .transpose()
    }

    /// Age of the checkpoint in seconds, if there is one.
    pub async fn checkpoint_age_secs(&self) -> Result<Option<f64>, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                &format!(
                    "SELECT extract(epoch FROM now() - updated_at)::float8 FROM {s}.checkpoints WHERE pipeline = $1"
                ),
                &[&self.pipeline],
            )
            .await
            .map_err(q("reading the checkpoint age"))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Store a checkpoint directly (first start, or after an empty stretch of WAL). Never
    /// moves it backwards.
    pub async fn store_checkpoint(&self, lsn: Lsn) -> Result<(), StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.checkpoints (pipeline, confirmed_lsn) VALUES ($1, $2::text::pg_lsn)
                     ON CONFLICT (pipeline) DO UPDATE
                       SET confirmed_lsn = greatest({s}.checkpoints.confirmed_lsn, excluded.confirmed_lsn),
                           updated_at = now()"
                ),
                &[&self.pipeline, &lsn.to_string()],
            )
            .await
            .map_err(q("storing the checkpoint"))?;
        Ok(())
    }
}
