//! Backfill: copy the rows that existed before the slot, consistently with the stream.
//!
//! # The guarantee
//! A new slot exports a snapshot taken exactly at its consistent point. [`backfill`]
//! imports it on an ordinary connection (`BEGIN ISOLATION LEVEL REPEATABLE READ;
//! SET TRANSACTION SNAPSHOT '<name>'`) and copies every mapped table with
//! `COPY (SELECT ... ORDER BY key) TO STDOUT`. The snapshot sees exactly the transactions
//! committed before the consistent point and the stream (started at the consistent
//! point, after the backfill) sends exactly those committed after it, so each change is
//! delivered once: by the backfill or by the stream, never both and never neither.
//! The exported snapshot must be imported before the replication connection that created
//! the slot runs its next command; start streaming only after the backfill finished.
//!
//! # Resuming
//! Progress per table (last key copied, rows done, done flag) is saved through a
//! [`BackfillProgressStore`] after the sink accepted each chunk. After an interruption
//! the exported snapshot is gone, so the rest of each table is copied in a *fresh*
//! snapshot, starting after the last saved key (`WHERE (key) > (last) ORDER BY key`):
//! - no row is missed: rows with keys up to the saved key were delivered from the old
//!   snapshot, and every change after the consistent point (to any key) is still in the
//!   slot, which has not advanced, so the stream delivers it;
//! - rows changed between the two snapshots may be delivered twice: once by the
//!   backfill in their newer state, then again by the stream, which replays their
//!   changes in commit order and ends at the same latest state. For upserts by key this
//!   is harmless; a row deleted in between is not backfilled and the stream deletes it.
//!
//! A table without a primary key or replica-identity index cannot be resumed by key;
//! it is copied again from the start (duplicates again harmless for upserts).
//!
//! Memory is bounded: COPY output is parsed row by row and handed over in chunks of
//! `chunk_rows` rows; the next chunk is read only after the sink accepted the last.

mod plan;
mod progress;

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use postgres_protocol::escape::escape_literal;
use tokio_postgres::{Client, IsolationLevel, Transaction};
use tracing::{info, info_span, Instrument};

use super::copy_text::CopyTextParser;
use super::error::{ReplicationError, Result};
use super::table::TableRef;
use crate::change::Row;
use plan::TablePlan;
pub use progress::{BackfillProgressStore, MemoryProgressStore, PgProgressStore, TableProgress};

/// Errors from sinks and stores, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which snapshot to copy in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackfillSnapshot {
    /// The snapshot exported by `CREATE_REPLICATION_SLOT` (first run).
    Exported(String),
    /// A fresh snapshot (resuming after the exported one is gone).
    Fresh,
}

/// Backfill settings.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Pipeline name, the key of saved progress.
    pub pipeline: String,
    /// Rows per chunk handed to the sink.
    pub chunk_rows: usize,
    /// Honour this publication's column lists and row filters (PostgreSQL 15+), so the
    /// backfill sends the same columns and rows the stream does.
    pub publication: Option<String>,
}

impl BackfillOptions {
    pub fn new(pipeline: impl Into<String>) -> BackfillOptions {
        BackfillOptions {
            pipeline: pipeline.into(),
            chunk_rows: 1000,
            publication: None,
        }
    }
}

/// A column as delivered in backfill rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillColumn {
    pub name: String,
    pub type_oid: u32,
}

/// Progress of one table's copy, reported with every chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyProgress {
    /// Rows delivered so far (including earlier runs when resumed).
    pub rows_done: u64,
    /// `pg_class.reltuples`, when the table was ever analyzed.
    pub estimated_total: Option<u64>,
}

/// A batch of rows of one table.
#[derive(Debug, Clone)]
pub struct BackfillChunk {
    pub table: TableRef,
    pub columns: Arc<Vec<BackfillColumn>>,
    pub rows: Vec<Row>,
    pub progress: CopyProgress,
}

/// Where backfilled rows go. Return only once the chunk is durable: progress is saved
/// right after, and a resumed backfill will not send these rows again.
pub trait BackfillSink: Send {
    fn write_chunk(
        &mut self,
        chunk: BackfillChunk,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Rows copied per table by one [`backfill`] run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillSummary {
    pub tables: Vec<(TableRef, u64)>,
}

/// Copy `tables` in `snapshot`, resuming from saved progress. See the module docs.
pub async fn backfill<S: BackfillProgressStore, K: BackfillSink>(
    client: &mut Client,
    snapshot: BackfillSnapshot,
    tables: &[TableRef],
    store: &S,
    sink: &mut K,
    opts: &BackfillOptions,
) -> Result<BackfillSummary> {
    let tx = begin_snapshot(client, &snapshot).await?;
    let version = super::slot::server_version_num(tx.client()).await?;
    let mut summary = BackfillSummary::default();
    for table in tables {
        let span = info_span!("backfill_table", %table, pipeline = %opts.pipeline);
        let rows = copy_one_table(&tx, table, version, store, sink, opts)
            .instrument(span)
            .await?;
        summary.tables.push((table.clone(), rows));
    }
    tx.commit()
        .await
        .map_err(ReplicationError::query("ending the backfill transaction"))?;
    Ok(summary)
}

/// Begin a read-only repeatable-read transaction, importing the snapshot if given.
async fn begin_snapshot<'a>(
    client: &'a mut Client,
    snapshot: &BackfillSnapshot,
) -> Result<Transaction<'a>> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(ReplicationError::query(
            "beginning the backfill transaction",
        ))?;
    if let BackfillSnapshot::Exported(name) = snapshot {
        tx.batch_execute(&format!("SET TRANSACTION SNAPSHOT {}", escape_literal(name)))
            .await
            .map_err(ReplicationError::query(format!(
                "importing snapshot {name:?} (it is only valid until the replication connection runs its next command)"
            )))?;
    }
    Ok(tx)
}

async fn copy_one_table<S: BackfillProgressStore, K: BackfillSink>(
    tx: &Transaction<'_>,
    table: &TableRef,
    version: u32,
    store: &S,
    sink: &mut K,
    opts: &BackfillOptions,
) -> Result<u64> {
    let saved = store
        .load(&opts.pipeline, table)
        .await
        .map_err(|source| ReplicationError::ProgressStore { source })?;
    if saved.as_ref().is_some_and(|p| p.done) {
        info!("table already backfilled");
        return Ok(0);
    }
    let plan = TablePlan::describe(tx, table, version, opts.publication.as_deref()).await?;
    let mut progress = match saved {
        Some(p) if p.last_key.is_some() && !plan.key.is_empty() => p,
        _ => TableProgress {
            table: table.clone(),
            last_key: None,
            rows_done: 0,
            done: false,
        },
    };
    let query = plan.copy_query(progress.last_key.as_deref());
    info!(resume_after = ?progress.last_key, estimated = ?plan.estimated_total, "copying table");
    let before = progress.rows_done;
    let mut copier = Copier {
        plan: &plan,
        store,
        sink,
        opts,
        progress: &mut progress,
    };
    copier.run(tx, &query).await?;
    Ok(progress.rows_done - before)
}

/// Streams one table's COPY into chunks, saving progress after each.
struct Copier<'a, S, K> {
    plan: &'a TablePlan,
    store: &'a S,
    sink: &'a mut K,
    opts: &'a BackfillOptions,
    progress: &'a mut TableProgress,
}

impl<S: BackfillProgressStore, K: BackfillSink> Copier<'_, S, K> {
    async fn run(&mut self, tx: &Transaction<'_>, query: &str) -> Result<()> {
        let stream = tx
            .copy_out(query)
            .await
            .map_err(ReplicationError::query(format!(
                "starting COPY of {}",
                self.plan.table
            )))?;
        futures::pin_mut!(stream);
        let mut parser = CopyTextParser::new();
        let mut rows = Vec::with_capacity(self.opts.chunk_rows);
        let mut last_key = None;
        while let Some(data) = stream.next().await {
            let data = data.map_err(ReplicationError::query(format!(
                "reading COPY of {}",
                self.plan.table
            )))?;
            parser.push(&data);
            while let Some(fields) = parser.next_row() {
                let fields = fields.map_err(|e| self.plan.error(e.to_string()))?;
                rows.push(self.plan.typed_row(&fields)?);
                last_key = self.plan.key_of(&fields);
                if rows.len() >= self.opts.chunk_rows.max(1) {
                    self.deliver(std::mem::take(&mut rows), last_key.clone(), false)
                        .await?;
                }
            }
        }
        parser
            .finish()
            .map_err(|e| self.plan.error(e.to_string()))?;
        self.deliver(rows, last_key, true).await
    }

    /// Hand `rows` to the sink, then save progress.
    async fn deliver(
        &mut self,
        rows: Vec<Row>,
        last_key: Option<Vec<String>>,
        done: bool,
    ) -> Result<()> {
        if !rows.is_empty() {
            self.progress.rows_done += rows.len() as u64;
            let chunk = BackfillChunk {
                table: self.plan.table.clone(),
                columns: self.plan.columns.clone(),
                rows,
                progress: CopyProgress {
                    rows_done: self.progress.rows_done,
                    estimated_total: self.plan.estimated_total,
                },
            };
            self.sink
                .write_chunk(chunk)
                .await
                .map_err(|source| ReplicationError::Sink {
                    table: self.plan.table.to_string(),
                    source,
                })?;
            if last_key.is_some() {
                self.progress.last_key = last_key;
            }
        }
        self.progress.done = done;
        self.store
            .save(&self.opts.pipeline, self.progress)
            .await
            .map_err(|source| ReplicationError::ProgressStore { source })?;
        if done {
            info!(rows = self.progress.rows_done, "table backfilled");
        }
        Ok(())
    }
}
