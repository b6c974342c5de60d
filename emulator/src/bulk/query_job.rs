//! Bulk API 2.0 query jobs: the SOQL is validated at create and counted when the job runs;
//! result pages are addressed by an opaque locator (base64 of the row offset).
//!
//! Results stream: a query without ORDER BY is read page by page when a page is asked for,
//! resuming the id-ordered scan after the last row of the page before (each locator handed
//! out remembers that id), so the first page is ready as soon as the job is counted and no
//! page is kept. The job fixes the newest record id when it runs, so records created later
//! never appear; records updated or deleted while a client pages appear as they are when
//! their page is read (Salesforce serves a snapshot). A query with ORDER BY is evaluated and
//! rendered once when the job runs, and its pages are byte ranges of that buffer.
//!
//! Unsupported in Bulk query (as in Salesforce): `COUNT()` and other aggregates, `OFFSET`,
//! and compound (address) fields; each is refused with 400 at create.

use std::collections::HashMap;
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
use crate::ids::Id;
use crate::latency::Delay;
use crate::query::catalog::StoreSource;
use crate::query::{self as rest_query, QueryState};
use crate::soql::{self, Catalog, FieldKind, Fields, ObjectInfo, Record, RecordSource};
use crate::state::EmulatorState;
use crate::store::Store;

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
    /// Every result row as CSV, rendered once (ordered queries).
    pub body: Vec<u8>,
    /// End offset of each row in `body` (ordered queries).
    pub row_ends: Vec<usize>,
    /// The streamed result (queries without ORDER BY), once the job ran.
    pub stream: Option<Stream>,
}

/// A result read page by page; see the module docs.
#[derive(Debug)]
pub struct Stream {
    /// The query.
    query: soql::Query,
    /// `queryAll`.
    include_deleted: bool,
    /// Which columns hold datetimes (rendered `…Z`).
    datetime: Vec<bool>,
    /// The newest record id when the job ran: the scan never goes past it.
    until: Option<Id>,
    /// Rows in the result.
    total: usize,
    /// Row offset → id of the row just before it, for every locator handed out.
    bookmarks: HashMap<usize, Id>,
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
            stream: None,
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
        &mut self,
        state: &EmulatorState,
        locator: Option<&str>,
        max_records: Option<usize>,
    ) -> Result<(Vec<u8>, usize, Option<String>), BulkError> {
        let max = max_records.unwrap_or(DEFAULT_PAGE).max(1);
        let dialect = self.meta.dialect;
        let version = self.meta.api_version.clone();
        if let Some(stream) = &mut self.stream {
            return stream.page(state, &self.columns, dialect, &version, locator, max);
        }
        let offset = match locator.filter(|l| !l.is_empty()) {
            Some(l) => decode_locator(l)
                .filter(|o| *o <= self.row_ends.len())
                .ok_or_else(|| BulkError::InvalidLocator(l.to_string()))?,
            None => 0,
        };
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

impl Stream {
    /// Reads the page at `locator`: resumes the scan after the bookmarked row, renders up
    /// to `max` rows and bookmarks the next page.
    fn page(
        &mut self,
        state: &EmulatorState,
        columns: &[String],
        dialect: Dialect,
        version: &str,
        locator: Option<&str>,
        max: usize,
    ) -> Result<(Vec<u8>, usize, Option<String>), BulkError> {
        let (offset, after) = match locator.filter(|l| !l.is_empty()) {
            Some(l) => {
                let invalid = || BulkError::InvalidLocator(l.to_string());
                let offset = decode_locator(l).ok_or_else(invalid)?;
                let after = *self.bookmarks.get(&offset).ok_or_else(invalid)?;
                (offset, Some(after))
            }
            None => (0, None),
        };
        let want = max.min(self.total.saturating_sub(offset));
        let source = Bounded::new(&state.store, after, self.until);
        let catalog = state.ext::<QueryState>().catalog(&state.schema);
        let opts = soql::ExecOptions {
            include_deleted: self.include_deleted,
            now: state.clock.now(),
            api_version: version.to_string(),
        };
        let mut w = dialect.writer();
        w.row(columns.iter());
        let query = self.query.capped(want);
        let plain = columns.iter().all(|c| !c.contains('.'));
        let mut n = 0usize;
        let visited = want > 0
            && plain
            && soql::visit_matches(&query, catalog.as_ref(), &source, &opts, &mut |rec| {
                n += 1;
                w.row(
                    columns
                        .iter()
                        .zip(&self.datetime)
                        .map(|(c, dt)| cell_text(rec.field(c).as_deref(), *dt)),
                );
            })
            .map_err(soql_error)?;
        if want > 0 && !visited {
            let records = soql::execute(&query, catalog.as_ref(), &source, &opts)
                .map_err(soql_error)?
                .records;
            n = records.len();
            write_rows(&mut w, &records, columns, &self.datetime);
        }
        let end = offset + n;
        let next = match source.last.get() {
            Some(last) if n == want && end < self.total => {
                self.bookmarks.insert(end, last);
                Some(encode_locator(end))
            }
            _ => None,
        };
        Ok((w.into_bytes(), n, next))
    }
}

/// The store seen from one results page: the rows after `after` up to `until` in id order,
/// remembering the last row the engine visited (where the next page resumes).
struct Bounded<'a> {
    /// The store.
    store: &'a Store,
    /// Resume after this id.
    after: Option<Id>,
    /// Never past this id.
    until: Option<Id>,
    /// The last row visited.
    last: std::cell::Cell<Option<Id>>,
}

impl<'a> Bounded<'a> {
    fn new(store: &'a Store, after: Option<Id>, until: Option<Id>) -> Self {
        Bounded {
            store,
            after,
            until,
            last: std::cell::Cell::new(None),
        }
    }

    /// Whether `id` lies in the window.
    fn inside(&self, id: Id) -> bool {
        self.after.is_none_or(|a| id > a) && self.until.is_some_and(|u| id <= u)
    }

    /// Visits one row if it lies in the window; false once past it or when `visit` stops.
    fn visit_row(&self, row: &crate::row::Row, visit: &mut dyn FnMut(&dyn Fields) -> bool) -> bool {
        let Some(id) = row.get_str("Id").and_then(|s| Id::parse(s).ok()) else {
            return true;
        };
        if self.until.is_none_or(|u| id > u) {
            return false;
        }
        self.last.set(Some(id));
        visit(row)
    }
}

impl RecordSource for Bounded<'_> {
    fn scan(
        &self,
        object: &str,
        include_deleted: bool,
        visit: &mut dyn FnMut(&dyn Fields) -> bool,
    ) {
        let _ = self
            .store
            .scan_rows(object, self.after, include_deleted, |r| {
                if self.visit_row(r, visit) {
                    std::ops::ControlFlow::Continue(())
                } else {
                    std::ops::ControlFlow::Break(())
                }
            });
    }

    fn get(&self, id: &str) -> Option<Record> {
        StoreSource(self.store).get(id)
    }

    fn lookup(
        &self,
        object: &str,
        field: &str,
        values: &[&str],
        include_deleted: bool,
        visit: &mut dyn FnMut(&dyn Fields) -> bool,
    ) -> bool {
        let Some(rows) = self
            .store
            .lookup_rows(object, field, values, include_deleted)
        else {
            return false;
        };
        for r in &rows {
            let inside = r
                .get_str("Id")
                .and_then(|s| Id::parse(s).ok())
                .is_some_and(|id| self.inside(id));
            if inside && !self.visit_row(r, visit) {
                break;
            }
        }
        true
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
    fn scan(&self, _: &str, _: bool, _: &mut dyn FnMut(&dyn Fields) -> bool) {}
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
    let prepared = tokio::task::spawn_blocking(move || {
        prepare(&st, &soql_text, include_deleted, &version, dialect)
    })
    .await
    .unwrap_or_else(|e| Err(format!("InternalServerError : {e}")));
    if let Ok(p) = &prepared {
        state
            .latency
            .wait(Delay::BulkQueryRows(p.rows() as u64))
            .await;
    }
    tokio::time::sleep(STATE_DWELL.saturating_sub(started.elapsed())).await;
    let mut j = job.lock();
    if j.meta.state != JobState::InProgress {
        return;
    }
    j.meta.processing_ms = started.elapsed().as_millis() as u64;
    match prepared {
        Ok(p) => {
            j.meta.processed = p.rows() as u64;
            match p {
                Prepared::Rendered(r) => {
                    j.columns = r.columns;
                    j.body = r.body;
                    j.row_ends = r.row_ends;
                }
                Prepared::Streamed(columns, stream) => {
                    j.columns = columns;
                    j.stream = Some(*stream);
                }
            }
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

/// What a job's run leaves for its result pages.
enum Prepared {
    /// Every row rendered (ordered queries).
    Rendered(Rendered),
    /// The columns and the stream the pages read.
    Streamed(Vec<String>, Box<Stream>),
}

impl Prepared {
    /// Rows in the result.
    fn rows(&self) -> usize {
        match self {
            Prepared::Rendered(r) => r.row_ends.len(),
            Prepared::Streamed(_, s) => s.total,
        }
    }
}

/// The job's failure message for SOQL that does not run.
fn failed_query(e: soql::SoqlError) -> String {
    format!(
        "InvalidBatch : Failed to process query: {}: {}",
        e.code, e.message
    )
}

/// Counts a streamable query (no ORDER BY) or renders an ordered one.
fn prepare(
    state: &EmulatorState,
    soql_text: &str,
    include_deleted: bool,
    version: &str,
    dialect: Dialect,
) -> Result<Prepared, String> {
    let query = soql::parse(soql_text).map_err(failed_query)?;
    if query.is_ordered() {
        return render(state, soql_text, include_deleted, version, dialect).map(Prepared::Rendered);
    }
    let catalog = state.ext::<QueryState>().catalog(&state.schema);
    let object = query
        .resolve_object(catalog.as_ref())
        .map_err(failed_query)?;
    let opts = soql::ExecOptions {
        include_deleted,
        now: state.clock.now(),
        api_version: version.to_string(),
    };
    let columns = soql::execute(&query, catalog.as_ref(), &NoRecords, &opts)
        .map_err(failed_query)?
        .columns;
    let until = state.store.last_id(&object.name);
    let source = Bounded::new(&state.store, None, until);
    let total = soql::count_rows(&query, catalog.as_ref(), &source, &opts).map_err(failed_query)?;
    let stream = Stream {
        datetime: datetime_columns(catalog.as_ref(), Some(&object), &columns),
        query,
        include_deleted,
        until,
        total,
        bookmarks: HashMap::new(),
    };
    Ok(Prepared::Streamed(columns, Box::new(stream)))
}

/// Which of `columns` hold datetimes.
fn datetime_columns(
    catalog: &dyn Catalog,
    object: Option<&Arc<ObjectInfo>>,
    columns: &[String],
) -> Vec<bool> {
    columns
        .iter()
        .map(|c| object.and_then(|o| column_kind(catalog, o, c)) == Some(FieldKind::DateTime))
        .collect()
}

/// Appends result records as CSV rows; returns nothing, `w.len()` tells where each ends.
fn write_rows(
    w: &mut super::csv_io::QuotedWriter,
    records: &[Record],
    columns: &[String],
    datetime: &[bool],
) {
    for r in records {
        write_row(w, r, columns, datetime);
    }
}

/// Appends one result record as a CSV row.
fn write_row(
    w: &mut super::csv_io::QuotedWriter,
    record: &Record,
    columns: &[String],
    datetime: &[bool],
) {
    let cells = soql::flatten(record, columns);
    w.row(
        cells
            .iter()
            .zip(datetime)
            .map(|(v, dt)| cell_text(v.as_ref(), *dt)),
    );
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
    let out =
        rest_query::execute(state, soql_text, include_deleted, version).map_err(failed_query)?;
    let catalog = state.ext::<QueryState>().catalog(&state.schema);
    let object = soql::parse(soql_text)
        .ok()
        .and_then(|q| q.resolve_object(catalog.as_ref()).ok());
    let datetime = datetime_columns(catalog.as_ref(), object.as_ref(), &out.columns);
    let mut w = dialect.writer();
    let mut row_ends = Vec::with_capacity(out.records.len());
    for r in &out.records {
        write_row(&mut w, r, &out.columns, &datetime);
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
