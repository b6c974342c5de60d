//! Backfilled rows take the same road as streamed ones: mapping, an epoch, the flusher.
//! Each chunk is flushed before the backfill saves its progress, so a resumed backfill
//! never skips a row that did not reach Salesforce. A chunk holds enough rows for every
//! Bulk job the config allows to be in flight at once ([`chunk_rows`]): the flusher splits
//! it into steps of at most `max_batch_rows` rows (each key in exactly one) and runs them
//! concurrently, each job recorded in the in-flight plan before its upload.

use std::collections::HashMap;
use std::sync::Arc;

use crate::batch::Epoch;
use crate::change::{Column, Operation, Relation, ReplicaIdentity, RowChange};
use crate::checkpoint::EpochPlan;
use crate::error_class::Classified;
use crate::lsn::Lsn;
use crate::mapping::Mapper;
use crate::replication::{BackfillChunk, BackfillSink};
use crate::sink::{Destination, Flusher};

use super::dead_letter::dead_letter_mapping_errors;
use super::pending::Pending;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Most rows in one backfill chunk, so a chunk's memory stays bounded whatever the config.
pub(crate) const MAX_CHUNK_ROWS: usize = 100_000;

/// Rows per backfill chunk: `max_batch_rows` × `max_concurrent_bulk_jobs` (one full Bulk
/// job per slot), at least 1,000 and at most [`MAX_CHUNK_ROWS`].
pub(crate) fn chunk_rows(b: &crate::config::BatchingConfig) -> usize {
    b.max_batch_rows
        .saturating_mul(b.max_concurrent_bulk_jobs.max(1))
        .clamp(1_000, MAX_CHUNK_ROWS)
}

/// A [`BackfillSink`] that maps and flushes every chunk.
pub(crate) struct FlushingBackfill<'a, D> {
    pub flusher: &'a Flusher<D>,
    pub mapper: &'a mut Mapper,
    pub resume: Option<EpochPlan>,
    pub relations: HashMap<String, Arc<Relation>>,
    pub rows: u64,
    pub pipeline: String,
    /// Where progress goes (terminal bars in the CLI, log lines by default).
    pub progress: Arc<dyn super::progress::BackfillProgress>,
}

impl<D: Destination + Sync> FlushingBackfill<'_, D> {
    fn relation(&mut self, chunk: &BackfillChunk) -> Arc<Relation> {
        let key = format!("{}.{}", chunk.table.schema, chunk.table.name);
        self.relations
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Relation {
                    oid: 0,
                    schema: chunk.table.schema.clone(),
                    name: chunk.table.name.clone(),
                    replica_identity: ReplicaIdentity::Default,
                    columns: chunk
                        .columns
                        .iter()
                        .map(|c| Column {
                            name: c.name.clone(),
                            type_oid: c.type_oid,
                            type_modifier: -1,
                            is_key: false,
                        })
                        .collect(),
                })
            })
            .clone()
    }

    async fn write(&mut self, chunk: BackfillChunk) -> Result<(), BoxError> {
        let relation = self.relation(&chunk);
        let copied = chunk.rows.len() as u64;
        let mut epoch: Epoch<Pending> = Epoch::new();
        let mut failures = Vec::new();
        for row in chunk.rows {
            let change = RowChange {
                relation: relation.clone(),
                op: Operation::Insert,
                new: Some(row),
                old: None,
            };
            for mapped in self.mapper.map(&change) {
                match mapped {
                    Ok(c) => epoch.push(Pending::new(c, Lsn::ZERO)),
                    Err(e) => failures.push((change.clone(), e)),
                }
            }
        }
        self.rows += copied;
        // Boxed with their class, so the supervisor still tells a permanent failure from a
        // transient one through the backfill's `Box<dyn Error>` seam.
        dead_letter_mapping_errors(self.flusher, &failures, Lsn::ZERO)
            .await
            .map_err(Classified::boxed)?;
        epoch.commit(Lsn::ZERO, chrono::Utc::now());
        self.flusher
            .flush(&mut epoch, self.resume.take())
            .await
            .map_err(Classified::boxed)?;
        metrics::counter!(crate::metrics::BACKFILL_ROWS, "pipeline" => self.pipeline.clone(), "table" => relation.qualified_name()).increment(copied);
        self.report_progress(&relation.qualified_name(), chunk.progress);
        // Without an estimate (a never-analyzed table) the ratio is unknown: 0 until the table
        // is done, so "backfilling" stays visible to the alerts.
        let ratio = match chunk.progress.estimated_total.filter(|t| *t > 0) {
            Some(total) => (chunk.progress.rows_done as f64 / total as f64).min(0.99),
            None => 0.0,
        };
        metrics::gauge!(crate::metrics::BACKFILL_PROGRESS, "pipeline" => self.pipeline.clone(), "table" => relation.qualified_name()).set(ratio);
        Ok(())
    }
}

impl<D> FlushingBackfill<'_, D> {
    /// The backfill is complete: every copied table at ratio 1, progress bars finished.
    pub(crate) fn finish(self, summary: &crate::replication::backfill::BackfillSummary) {
        for (table, _) in &summary.tables {
            let name = format!("{}.{}", table.schema, table.name);
            metrics::gauge!(crate::metrics::BACKFILL_PROGRESS, "pipeline" => self.pipeline.clone(), "table" => name).set(1.0);
        }
        for (table, rows) in &summary.tables {
            let name = format!("{}.{}", table.schema, table.name);
            self.progress.table_done(&self.pipeline, &name, *rows);
        }
    }
}

impl<D> FlushingBackfill<'_, D> {
    fn report_progress(&mut self, table: &str, p: crate::replication::backfill::CopyProgress) {
        self.progress
            .table_progress(&self.pipeline, table, p.rows_done, p.estimated_total);
    }
}

impl<D: Destination + Sync + Send> BackfillSink for FlushingBackfill<'_, D> {
    fn write_chunk(
        &mut self,
        chunk: BackfillChunk,
    ) -> impl std::future::Future<Output = Result<(), BoxError>> + Send {
        self.write(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_fills_every_bulk_job_slot_within_bounds() {
        let mut b = crate::config::BatchingConfig::default();
        assert_eq!(chunk_rows(&b), 40_000, "10,000 rows x 4 jobs");
        b.max_concurrent_bulk_jobs = 25;
        assert_eq!(chunk_rows(&b), MAX_CHUNK_ROWS);
        b.max_batch_rows = 10;
        b.max_concurrent_bulk_jobs = 1;
        assert_eq!(chunk_rows(&b), 1_000);
    }
}
