//! The pipeline's HA lock: a session-level advisory lock, so one replica at a time runs a
//! pipeline; released when the session ends. [`StateStore::holds_pipeline_lock`] is the
//! fencing check the sink runs before each Salesforce write.

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

    /// Whether this store's session still holds the pipeline's advisory lock (taken by
    /// [`try_lock_pipeline`](Self::try_lock_pipeline)): one cheap query on that session.
    /// An error means the session is gone, and the lock with it.
    pub async fn holds_pipeline_lock(&self) -> Result<bool, StateError> {
        let client = self.client.lock().await;
        // A bigint advisory key shows as classid (high half), objid (low half), objsubid 1.
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
                   AND pid = pg_backend_pid() AND objsubid = 1 \
                   AND ((classid::int8 << 32) | objid::int8) \
                       = hashtextextended('pgforce:pipeline:' || $1, 0))",
                &[&self.pipeline],
            )
            .await
            .map_err(q(
                "checking that this process still holds the pipeline lock",
            ))?;
        Ok(row.get(0))
    }
}
