//! How a pipeline reports backfill progress to whoever shows it: the [`BackfillProgress`]
//! trait. The library draws nothing itself; the CLI renders terminal bars (`src/cli`), and
//! without a reporter progress goes to the log ([`LogProgress`]).

/// Receives backfill progress, one table at a time. Calls come from the pipeline's task and
/// must return quickly.
pub trait BackfillProgress: Send + Sync {
    /// `rows_done` rows of `table` are in Salesforce; `estimated_total` is Postgres's row
    /// estimate when the table was ever analyzed.
    fn table_progress(
        &self,
        pipeline: &str,
        table: &str,
        rows_done: u64,
        estimated_total: Option<u64>,
    );

    /// `table` is completely copied (`rows` rows in this run).
    fn table_done(&self, pipeline: &str, table: &str, rows: u64);
}

/// Progress as `info` log lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogProgress;

impl BackfillProgress for LogProgress {
    fn table_progress(
        &self,
        pipeline: &str,
        table: &str,
        rows_done: u64,
        estimated_total: Option<u64>,
    ) {
        tracing::info!(pipeline, table, rows = rows_done, estimated = ?estimated_total, "backfill progress");
    }

    fn table_done(&self, pipeline: &str, table: &str, rows: u64) {
        tracing::info!(pipeline, table, rows, "backfill of table done");
    }
}
