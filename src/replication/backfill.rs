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

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use parking_lot::Mutex;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio_postgres::{Client, IsolationLevel, Transaction};
use tracing::{info, info_span, Instrument};

use super::copy_text::{CopyTextParser, TextRow};
use super::error::{ReplicationError, Result};
use super::table::TableRef;
use crate::change::Row;
use crate::pgoutput::value::{parse_text, Value};

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

/// Everything needed to copy one table.
#[derive(Debug)]
struct TablePlan {
    table: TableRef,
    columns: Arc<Vec<BackfillColumn>>,
    /// Key columns: name and SQL type, in key order.
    key: Vec<(String, String)>,
    /// Position of each key column in the selected fields.
    key_positions: Vec<usize>,
    /// Key columns selected only to track progress (after `columns`).
    extra_fields: Vec<String>,
    row_filter: Option<String>,
    estimated_total: Option<u64>,
}

impl TablePlan {
    async fn describe(
        tx: &Transaction<'_>,
        table: &TableRef,
        version: u32,
        publication: Option<&str>,
    ) -> Result<TablePlan> {
        let q = |what: &str| ReplicationError::query(format!("reading {what} of {table}"));
        let regclass = table.quoted();
        let rows = tx
            .query(
                "SELECT a.attname::text, a.atttypid FROM pg_attribute a
                  WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
                    AND a.attgenerated = '' ORDER BY a.attnum",
                &[&regclass],
            )
            .await
            .map_err(q("columns"))?;
        let mut columns: Vec<BackfillColumn> = rows
            .iter()
            .map(|r| BackfillColumn {
                name: r.get(0),
                type_oid: r.get(1),
            })
            .collect();
        if columns.is_empty() {
            return Err(super::error::PreflightError::TableNotFound {
                table: table.to_string(),
            }
            .into());
        }
        let key = key_columns(tx, &regclass).await.map_err(q("key columns"))?;
        let (column_list, row_filter) = match publication {
            Some(p) if version >= 150000 => publication_filter(tx, p, table)
                .await
                .map_err(q("publication filter"))?,
            _ => (None, None),
        };
        if let Some(list) = column_list {
            columns.retain(|c| list.contains(&c.name));
        }
        let extra_fields: Vec<String> = key
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !columns.iter().any(|c| &c.name == k))
            .collect();
        let key_positions = key
            .iter()
            .map(|(k, _)| {
                columns
                    .iter()
                    .position(|c| &c.name == k)
                    .or_else(|| {
                        extra_fields
                            .iter()
                            .position(|e| e == k)
                            .map(|p| columns.len() + p)
                    })
                    .unwrap_or(0)
            })
            .collect();
        let estimated_total = tx
            .query_one(
                "SELECT reltuples::float8 FROM pg_class WHERE oid = to_regclass($1)",
                &[&regclass],
            )
            .await
            .map_err(q("size estimate"))?
            .get::<_, f64>(0);
        Ok(TablePlan {
            table: table.clone(),
            columns: Arc::new(columns),
            key,
            key_positions,
            extra_fields,
            row_filter,
            estimated_total: (estimated_total >= 0.0).then_some(estimated_total as u64),
        })
    }

    /// `COPY (SELECT ... WHERE key > last ORDER BY key) TO STDOUT`.
    fn copy_query(&self, after: Option<&[String]>) -> String {
        let fields: Vec<String> = self
            .columns
            .iter()
            .map(|c| escape_identifier(&c.name))
            .chain(self.extra_fields.iter().map(|e| escape_identifier(e)))
            .collect();
        let key_list = self
            .key
            .iter()
            .map(|(k, _)| escape_identifier(k))
            .collect::<Vec<_>>()
            .join(", ");
        let mut conditions = Vec::new();
        if let Some(filter) = &self.row_filter {
            conditions.push(format!("({filter})"));
        }
        if let Some(last) = after.filter(|l| l.len() == self.key.len() && !l.is_empty()) {
            let values: Vec<String> = last
                .iter()
                .zip(&self.key)
                .map(|(v, (_, ty))| format!("{}::{ty}", escape_literal(v)))
                .collect();
            conditions.push(format!("({key_list}) > ({})", values.join(", ")));
        }
        let mut sql = format!(
            "COPY (SELECT {} FROM {}",
            fields.join(", "),
            self.table.quoted()
        );
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        if !self.key.is_empty() {
            sql.push_str(&format!(" ORDER BY {key_list}"));
        }
        sql.push_str(") TO STDOUT");
        sql
    }

    /// Turn a COPY text row into typed values (dropping extra key fields).
    fn typed_row(&self, fields: &TextRow) -> Result<Row> {
        if fields.len() != self.columns.len() + self.extra_fields.len() {
            return Err(self.error(format!(
                "COPY row has {} fields, expected {}",
                fields.len(),
                self.columns.len() + self.extra_fields.len()
            )));
        }
        self.columns
            .iter()
            .zip(fields)
            .map(|(col, field)| match field {
                None => Ok(Value::Null),
                Some(text) => parse_text(col.type_oid, text).map_err(|e| self.error(e.to_string())),
            })
            .collect()
    }

    /// The key of a COPY text row, as text.
    fn key_of(&self, fields: &TextRow) -> Option<Vec<String>> {
        if self.key.is_empty() {
            return None;
        }
        self.key_positions
            .iter()
            .map(|&p| fields.get(p).cloned().flatten())
            .collect()
    }

    fn error(&self, reason: String) -> ReplicationError {
        ReplicationError::Backfill {
            table: self.table.to_string(),
            reason,
        }
    }
}

/// Primary key columns, else the replica identity index columns, with their SQL types.
async fn key_columns(
    tx: &Transaction<'_>,
    regclass: &str,
) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
               FROM (SELECT i.indkey, i.indrelid FROM pg_index i
                      WHERE i.indrelid = to_regclass($1) AND (i.indisprimary OR i.indisreplident)
                      ORDER BY i.indisprimary DESC LIMIT 1) i
               CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              ORDER BY k.ord",
            &[&regclass],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The publication's column list and row filter for `table` (PostgreSQL 15+).
async fn publication_filter(
    tx: &Transaction<'_>,
    publication: &str,
    table: &TableRef,
) -> Result<(Option<Vec<String>>, Option<String>), tokio_postgres::Error> {
    let row = tx
        .query_opt(
            "SELECT attnames::text[], rowfilter FROM pg_publication_tables
              WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
            &[&publication, &table.schema, &table.name],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))).unwrap_or((None, None)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(key: &[(&str, &str)], extra: &[&str]) -> TablePlan {
        TablePlan {
            table: TableRef::new("public", "t"),
            columns: Arc::new(vec![
                BackfillColumn {
                    name: "id".into(),
                    type_oid: 23,
                },
                BackfillColumn {
                    name: "name".into(),
                    type_oid: 25,
                },
            ]),
            key: key
                .iter()
                .map(|(k, t)| (k.to_string(), t.to_string()))
                .collect(),
            key_positions: vec![0; key.len()],
            extra_fields: extra.iter().map(|s| s.to_string()).collect(),
            row_filter: None,
            estimated_total: None,
        }
    }

    #[test]
    fn copy_query_resumes_after_the_last_key() {
        let p = plan(&[("id", "integer")], &[]);
        assert_eq!(
            p.copy_query(None),
            "COPY (SELECT \"id\", \"name\" FROM \"public\".\"t\" ORDER BY \"id\") TO STDOUT"
        );
        assert_eq!(
            p.copy_query(Some(&["4".into()])),
            "COPY (SELECT \"id\", \"name\" FROM \"public\".\"t\" WHERE (\"id\") > ('4'::integer) ORDER BY \"id\") TO STDOUT"
        );
    }

    #[test]
    fn copy_query_with_filter_extra_key_and_no_key() {
        let mut p = plan(&[("a", "text"), ("b", "integer")], &["b"]);
        p.row_filter = Some("id > 3".into());
        assert_eq!(
            p.copy_query(Some(&["x'y".into(), "2".into()])),
            "COPY (SELECT \"id\", \"name\", \"b\" FROM \"public\".\"t\" WHERE (id > 3) AND (\"a\", \"b\") > ('x''y'::text, '2'::integer) ORDER BY \"a\", \"b\") TO STDOUT"
        );
        let p = plan(&[], &[]);
        assert_eq!(
            p.copy_query(Some(&["1".into()])),
            "COPY (SELECT \"id\", \"name\" FROM \"public\".\"t\") TO STDOUT"
        );
    }

    #[test]
    fn typed_rows_check_field_count() {
        let p = plan(&[("id", "integer")], &[]);
        assert!(p.typed_row(&vec![Some("1".into())]).is_err());
        let row = p.typed_row(&vec![Some("1".into()), None]).unwrap();
        assert_eq!(row[1], Value::Null);
    }
}
