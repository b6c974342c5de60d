//! Where backfill progress is kept: the [`BackfillProgressStore`] seam, an in-memory
//! store and the `pgforce.backfill_progress` table.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_postgres::Client;

use super::BoxError;
use crate::replication::error::{ReplicationError, Result};
use crate::replication::table::TableRef;

/// Saved progress of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProgress {
    pub table: TableRef,
    /// Text form of the key columns of the last row delivered.
    pub last_key: Option<Vec<String>>,
    pub rows_done: u64,
    pub done: bool,
}

/// Stores backfill progress so an interrupted backfill can resume.
pub trait BackfillProgressStore: Send + Sync {
    fn load(
        &self,
        pipeline: &str,
        table: &TableRef,
    ) -> impl Future<Output = Result<Option<TableProgress>, BoxError>> + Send;
    fn save(
        &self,
        pipeline: &str,
        progress: &TableProgress,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Progress kept in memory (tests, one-shot runs).
#[derive(Debug, Default, Clone)]
pub struct MemoryProgressStore {
    inner: Arc<Mutex<HashMap<(String, TableRef), TableProgress>>>,
}

impl BackfillProgressStore for MemoryProgressStore {
    async fn load(
        &self,
        pipeline: &str,
        table: &TableRef,
    ) -> Result<Option<TableProgress>, BoxError> {
        Ok(self
            .inner
            .lock()
            .get(&(pipeline.to_string(), table.clone()))
            .cloned())
    }

    async fn save(&self, pipeline: &str, progress: &TableProgress) -> Result<(), BoxError> {
        self.inner.lock().insert(
            (pipeline.to_string(), progress.table.clone()),
            progress.clone(),
        );
        Ok(())
    }
}

/// The progress row that arms, after a new slot's backfill, the sweep of records whose
/// source rows were deleted while there was no slot (no table has this name: it has
/// parentheses). Kept until the sweep finished, so a crash in between sweeps again.
pub const SWEEP_MARKER: &str = "(deleted-rows sweep)";

/// Progress in `pgforce.backfill_progress` of the source database, created if missing.
/// Uses its own connection: the backfill's connection is inside its snapshot transaction.
pub struct PgProgressStore {
    client: Client,
}

impl PgProgressStore {
    /// Create the schema and table if missing.
    pub async fn new(client: Client) -> Result<PgProgressStore> {
        client
            .batch_execute(
                "CREATE SCHEMA IF NOT EXISTS pgforce;
                 CREATE TABLE IF NOT EXISTS pgforce.backfill_progress (
                     pipeline   text        NOT NULL,
                     table_name text        NOT NULL,
                     last_key   jsonb,
                     rows_done  bigint      NOT NULL DEFAULT 0,
                     done       boolean     NOT NULL DEFAULT false,
                     updated_at timestamptz NOT NULL DEFAULT now(),
                     PRIMARY KEY (pipeline, table_name)
                 );",
            )
            .await
            .map_err(ReplicationError::query(
                "creating pgforce.backfill_progress",
            ))?;
        Ok(PgProgressStore { client })
    }

    /// Forget all progress of `pipeline` (before a full resync).
    pub async fn reset(&self, pipeline: &str) -> Result<()> {
        self.client
            .execute(
                "DELETE FROM pgforce.backfill_progress WHERE pipeline = $1",
                &[&pipeline],
            )
            .await
            .map_err(ReplicationError::query("resetting backfill progress"))?;
        Ok(())
    }

    /// Arm the sweep of records whose rows are gone (see [`SWEEP_MARKER`]), with the keys
    /// found gone in the new slot's snapshot when they could be read there (kept in the
    /// marker's `last_key`, so a start after a restart mid-resync sweeps the same keys).
    pub async fn arm_sweep(&self, pipeline: &str, gone: Option<&serde_json::Value>) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO pgforce.backfill_progress (pipeline, table_name, last_key, done)
                 VALUES ($1, $2, $3, false)",
                &[&pipeline, &SWEEP_MARKER, &gone],
            )
            .await
            .map_err(ReplicationError::query("arming the deleted-rows sweep"))?;
        Ok(())
    }

    /// The keys an armed sweep recorded when it was armed (see [`Self::arm_sweep`]).
    pub async fn sweep_keys(&self, pipeline: &str) -> Result<Option<serde_json::Value>> {
        let row = self
            .client
            .query_opt(
                "SELECT last_key FROM pgforce.backfill_progress
                  WHERE pipeline = $1 AND table_name = $2 AND NOT done",
                &[&pipeline, &SWEEP_MARKER],
            )
            .await
            .map_err(ReplicationError::query("reading the deleted-rows sweep"))?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// Whether a resync's sweep of deleted rows is armed and not done yet.
    pub async fn sweep_pending(&self, pipeline: &str) -> Result<bool> {
        let row = self
            .client
            .query_opt(
                "SELECT done FROM pgforce.backfill_progress WHERE pipeline = $1 AND table_name = $2",
                &[&pipeline, &SWEEP_MARKER],
            )
            .await
            .map_err(ReplicationError::query("reading the deleted-rows sweep"))?;
        Ok(row.is_some_and(|r| !r.get::<_, bool>(0)))
    }

    /// The sweep is done.
    pub async fn sweep_done(&self, pipeline: &str) -> Result<()> {
        self.client
            .execute(
                "UPDATE pgforce.backfill_progress SET done = true, updated_at = now()
                  WHERE pipeline = $1 AND table_name = $2",
                &[&pipeline, &SWEEP_MARKER],
            )
            .await
            .map_err(ReplicationError::query("finishing the deleted-rows sweep"))?;
        Ok(())
    }
}

impl BackfillProgressStore for PgProgressStore {
    async fn load(
        &self,
        pipeline: &str,
        table: &TableRef,
    ) -> Result<Option<TableProgress>, BoxError> {
        let row = self
            .client
            .query_opt(
                "SELECT last_key, rows_done, done FROM pgforce.backfill_progress
                  WHERE pipeline = $1 AND table_name = $2",
                &[&pipeline, &table.to_string()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let last_key: Option<serde_json::Value> = row.get(0);
        let last_key = last_key
            .map(serde_json::from_value::<Vec<String>>)
            .transpose()?;
        Ok(Some(TableProgress {
            table: table.clone(),
            last_key,
            rows_done: row.get::<_, i64>(1).max(0) as u64,
            done: row.get(2),
        }))
    }

    async fn save(&self, pipeline: &str, progress: &TableProgress) -> Result<(), BoxError> {
        let last_key = progress.last_key.as_ref().map(|k| serde_json::json!(k));
        self.client
            .execute(
                "INSERT INTO pgforce.backfill_progress (pipeline, table_name, last_key, rows_done, done, updated_at)
                 VALUES ($1, $2, $3, $4, $5, now())
                 ON CONFLICT (pipeline, table_name) DO UPDATE
                    SET last_key = EXCLUDED.last_key, rows_done = EXCLUDED.rows_done,
                        done = EXCLUDED.done, updated_at = now()",
                &[&pipeline, &progress.table.to_string(), &last_key, &(progress.rows_done as i64), &progress.done],
            )
            .await?;
        Ok(())
    }
}
