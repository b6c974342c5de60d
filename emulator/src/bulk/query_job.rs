//! Bulk API 2.0 query jobs: the SOQL is validated at create, evaluated once by the SOQL
//! engine when the job runs, and its rows rendered to CSV lines right away; result pages are
//! then byte ranges of that buffer, addressed by an opaque locator (base64 of the row offset).
//!
//! Unsupported in Bulk query (as in Salesforce): `COUNT()` and other aggregates, `OFFSET`,
//! and compound (address) fields; each is refused with 400 at create.

use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use super::csv_io::Dialect;
use super::ingest::STATE_DWELL;
use super::job::{dialect_from_request, required_str, JobMeta, JobState};
use super::BulkError;
use crate::latency::Delay;
use crate::query::{self as rest_query, QueryState};
use crate::soql::{self, Catalog, FieldKind, ObjectInfo, Record, RecordSource};
use crate::state::EmulatorState;

/// Default `maxRecords` of a results page.
pub const DEFAULT_PAGE: usize = 50_000;

/// One query job.
#[derive(Debug)]
pub struct QueryJob {
    /// Shared job metadata.
    pub meta: JobMeta,
    /// The SOQL text.
    pub soql: String,
    /// Header row (column paths in SELECT order).
    pub columns: Vec<String>,
    /// Every result row as CSV, rendered once.
    pub body: Vec<u8>,
    /// End offset of each row in `body`.
    pub row_ends: Vec<usize>,
}

/// A query job shared between handlers and its runner.
pub type SharedQueryJob = Arc<Mutex<QueryJob>>;

impl QueryJob {
    /// Validates a create request (operation, SOQL, Bulk restrictions) and builds the job
    /// in state `UploadComplete`.
    pub fn create(
        state: &EmulatorState,
        body: &Map<String, Value>,
        meta_base: JobMeta,
    ) -> Result<QueryJob, BulkError> {
        let op = required_str(body, "operation")?;
        if op != "query" && op != "queryAll" {
            return Err(BulkError::invalid_enum(
                "operation",
                &json!(op),
                "query, queryAll",
            ));
        }
        let soql_text = required_str(body, "query")?;
        let dialect: Dialect = dialect_from_request(body)?;
        let object = validate(state, soql_text, &meta_base.api_version)?;
        let mut meta = meta_base;
        meta.operation = op.to_string();
        meta.object = object;
        meta.dialect = dialect;
        meta.state = JobState::UploadComplete;
        Ok(QueryJob {
            meta,
            soql: soql_text.to_string(),
            columns: Vec::new(),
            body: Vec::new(),
            row_ends: Vec::new(),
        })
    }

    /// The create response / listing entry.
    pub fn summary_json(&self) -> Value {
        let mut m = self.meta.base_json();
        self.meta.append_format(&mut m);
        Value::Object(m)
    }

    /// The job-info response.
    pub fn info_json(&self) -> Value {
        let mut m = self.meta.base_json();
        self.meta.append_format(&mut m);
        m.insert("jobType".into(), json!("V2Query"));
        self.meta.append_stats(&mut m, false);
        m.insert("isPkChunkingSupported".into(), json!(true));
        Value::Object(m)
    }

    /// One results page: the CSV bytes, the row count, and the next locator (`None` at end).
    pub fn page(
        &self,
        locator: Option<&str>,
        max_records: Option<usize>,
    ) -> Result<(Vec<u8>, usize, Option<String>), BulkError> {
        let offset = match locator.filter(|l| !l.is_empty()) {
            Some(l) => decode_locator(l)
                .filter(|o| *o <= self.row_ends.len())
                .ok_or_else(|| BulkError::InvalidLocator(l.to_string()))?,
            None => 0,
        };
        let max = max_records.unwrap_or(DEFAULT_PAGE).max(1);
        let end = (offset + max).min(self.row_ends.len());
        let from_byte = offset.checked_sub(1).map_or(0, |i| self.row_ends[i]);
        let to_byte = end.checked_sub(1).map_or(0, |i| self.row_ends[i]);
        let mut w = self.meta.dialect.writer();
        w.row(self.columns.iter());
        let mut out = w.into_bytes();
        out.extend_from_slice(self.body.get(from_byte..to_byte).unwrap_or_default());
        let next = (end < self.row_ends.len()).then(|| encode_locator(end));
        Ok((out, end - offset, next))
    }
}

/// `base64("10000")` without padding, like Salesforce's `MTAwMDA`.
pub fn encode_locator(offset: usize) -> String {
    STANDARD_NO_PAD.encode(offset.to_string())
}

/// Inverse of [`encode_locator`].
pub fn decode_locator(l: &str) -> Option<usize> {
    let bytes = STANDARD_NO_PAD.decode(l.trim_end_matches('=')).ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

/// Parses the SOQL, refuses what Bulk query does not support, and checks every name against
/// the catalog (by running the query over no records). Returns the object's canonical name.
fn validate(state: &EmulatorState, soql_text: &str, version: &str) -> Result<String, BulkError> {
    let query = soql::parse(soql_text).map_err(soql_error)?;
    if query.has_aggregate() {
        return Err(unsupported(
            "Aggregate queries are not supported in Bulk Query",
        ));
    }
    if query.has_subquery() {
        return Err(unsupported(
            "Relationship subqueries are not supported in Bulk Query",
        ));
    }
    if query.offset().is_some() {
        return Err(unsupported("OFFSET is not supported in Bulk Query"));
    }
    let catalog = state.ext::<QueryState>().catalog(&state.schema);
    let object = query.resolve_object(catalog.as_ref()).map_err(soql_error)?;
    let opts = soql::ExecOptions {
        include_deleted: false,
        now: state.clock.now(),
        api_version: version.to_string(),
    };
    let out = soql::execute(&query, catalog.as_ref(), &NoRecords, &opts).map_err(soql_error)?;
    for c in &out.columns {
        if column_kind(catalog.as_ref(), &object, c) == Some(FieldKind::Other) {
            return Err(unsupported(
                "Selecting compound data not supported in Bulk Query",
            ));
        }
    }
    Ok(object.name.clone())
}

/// A record source with no records, for validating a query without scanning.
struct NoRecords;

impl RecordSource for NoRecords {
    fn scan(&self, _: &str, _: bool, _: &mut dyn FnMut(&Record) -> bool) {}
    fn get(&self, _: &str) -> Option<Record> {
        None
    }
}

/// 400 for SOQL the engine refuses.
fn soql_error(e: soql::SoqlError) -> BulkError {
    BulkError::Soql {
        code: e.code.to_string(),
        message: e.message,
    }
}

/// 400 `API_ERROR` for SOQL that Bulk query does not support.
fn unsupported(message: &str) -> BulkError {
    BulkError::Soql {
        code: "API_ERROR".to_string(),
        message: message.to_string(),
    }
}

/// The describe kind at the end of a dotted column path.
fn column_kind(catalog: &dyn Catalog, base: &Arc<ObjectInfo>, path: &str) -> Option<FieldKind> {
    let mut object = base.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return object.field(part).map(|f| f.kind);
        }
        let target = object.relationship(part)?.reference_to.first()?.clone();
        object = catalog.object(&target)?;
    }
    None
}

/// Runs a queued job: `UploadComplete → InProgress → JobComplete | Failed`.
///
/// The latency profile holds the job in `UploadComplete` for its start delay and in
/// `InProgress` for the result's rows at its processing rate.
pub async fn run(state: Arc<EmulatorState>, job: SharedQueryJob) {
    tokio::time::sleep(STATE_DWELL).await;
    state.latency.wait(Delay::BulkQueryStart).await;
    let started = Instant::now();
    let (soql_text, include_deleted, version, dialect) = {
        let mut j = job.lock();
        if j.meta.state != JobState::UploadComplete {
            return;
        }
        j.meta.set_state(JobState::InProgress, state.clock.now());
        (
            j.soql.clone(),
            j.meta.operation == "queryAll",
            j.meta.api_version.clone(),
            j.meta.dialect,
        )
    };
    let st = state.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        render(&st, &soql_text, include_deleted, &version, dialect)
    })
    .await
    .unwrap_or_else(|e| Err(format!("InternalServerError : {e}")));
    if let Ok(r) = &rendered {
        let rows = r.row_ends.len() as u64;
        state.latency.wait(Delay::BulkQueryRows(rows)).await;
    }
    tokio::time::sleep(STATE_DWELL.saturating_sub(started.elapsed())).await;
    let mut j = job.lock();
    if j.meta.state != JobState::InProgress {
        return;
    }
    j.meta.processing_ms = started.elapsed().as_millis() as u64;
    match rendered {
        Ok(r) => {
            j.meta.processed = r.row_ends.len() as u64;
            j.columns = r.columns;
            j.body = r.body;
            j.row_ends = r.row_ends;
            j.meta.set_state(JobState::JobComplete, state.clock.now());
        }
        Err(message) => {
            j.meta.error_message = Some(message);
            j.meta.set_state(JobState::Failed, state.clock.now());
        }
    }
}

/// A query's result rendered to CSV.
struct Rendered {
    columns: Vec<String>,
    body: Vec<u8>,
    row_ends: Vec<usize>,
}

/// Evaluates the SOQL and renders every row: every value quoted, null and empty both empty,
/// datetimes as `2024-01-02T17:38:59.000Z`.
fn render(
    state: &EmulatorState,
    soql_text: &str,
    include_deleted: bool,
    version: &str,
    dialect: Dialect,
) -> Result<Rendered, String> {
    let out = rest_query::execute(state, soql_text, include_deleted, version).map_err(|e| {
        format!(
            "InvalidBatch : Failed to process query: {}: {}",
            e.code, e.message
        )
    })?;
    let catalog = state.ext::<QueryState>().catalog(&state.schema);
    let object = soql::parse(soql_text)
        .ok()
        .and_then(|q| q.resolve_object(catalog.as_ref()).ok());
    let datetime: Vec<bool> = out
        .columns
        .iter()
        .map(|c| {
            object
                .as_ref()
                .and_then(|o| column_kind(catalog.as_ref(), o, c))
                == Some(FieldKind::DateTime)
        })
        .collect();
    let mut w = dialect.writer();
    let mut row_ends = Vec::with_capacity(out.records.len());
    for r in &out.records {
        let cells = soql::flatten(r, &out.columns);
        w.row(
            cells
                .iter()
                .zip(&datetime)
                .map(|(v, dt)| cell_text(v.as_ref(), *dt)),
        );
        row_ends.push(w.len());
    }
    Ok(Rendered {
        columns: out.columns,
        body: w.into_bytes(),
        row_ends,
    })
}

/// One CSV cell.
fn cell_text(v: Option<&Value>, datetime: bool) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if datetime => s
            .strip_suffix("+0000")
            .map_or_else(|| s.clone(), |base| format!("{base}Z")),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_round_trip_like_salesforce() {
        assert_eq!(encode_locator(10_000), "MTAwMDA");
        assert_eq!(decode_locator("MTAwMDA"), Some(10_000));
        assert_eq!(decode_locator("!!"), None);
    }

    #[test]
    fn cells_render_salesforce_csv_forms() {
        let dt = json!("2024-01-02T17:38:59.000+0000");
        assert_eq!(cell_text(Some(&dt), true), "2024-01-02T17:38:59.000Z");
        assert_eq!(cell_text(Some(&json!(true)), false), "true");
        assert_eq!(cell_text(None, false), "");
    }
}
