//! The pipeline's HA lock: a session-level advisory lock, so one replica at a time runs a
//! pipeline; released when the session ends.

use super::error::{q, StateError};
use super::store::StateStore;

impl StateStore {
    /// Take the pipeline's session-level advisory lock without waiting; `true` if this
    /// process now owns the pipeline. Released when the session ends.
    pub async fn try_lock_pipeline(&self) -> Result<bool, StateError> {
        let client = self.client.lock().await;
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended('pgforce:pipeline:' || $1, 0))",
                &[&self.pipeline],
            )
            .await
            .map_err(q("taking the pipeline lock"))?;
        Ok(row.get(0))
    }
}
