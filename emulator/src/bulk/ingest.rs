//! Bulk API 2.0 ingest jobs: create, the single upload, close/abort, background processing
//! in 10,000-row chunks, and the three result files.
//!
//! Processing runs on a tokio task that hands each chunk to `spawn_blocking`, so the server
//! stays responsive and pollers see `UploadComplete → InProgress → JobComplete`. The upload
//! is kept as the uploaded bytes; every processed row records only its byte offset and its
//! outcome, and result files re-read the original cells from the upload, so a million-row job
//! costs tens of megabytes beyond its upload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use csv::ByteRecord;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use super::columns::{self, Header};
use super::csv_io::{check_balanced_quotes, CsvError, Dialect};
use super::job::{dialect_from_request, required_str, JobMeta, JobState};
use super::BulkError;
use crate::ids::Id;
use crate::latency::Delay;
use crate::state::AppState;
use crate::store::{Store, UpsertError};
use crate::txn::{Txn, TxnInfo, Writer};

/// Rows per internal batch (Salesforce's Bulk 2.0 chunk size).
pub const CHUNK_ROWS: usize = 10_000;
/// Largest accepted upload: 150 MB after base64 is about 100 MB of raw CSV.
pub const MAX_UPLOAD_BYTES: usize = 100 * 1024 * 1024;
/// How long a job stays in `UploadComplete` and, at least, in `InProgress`, so pollers can
/// observe both states even for tiny jobs.
pub const STATE_DWELL: Duration = Duration::from_millis(30);

/// An ingest operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Create records.
    Insert,
    /// Update by `Id`.
    Update,
    /// Upsert by `externalIdFieldName`.
    Upsert,
    /// Soft delete by `Id`.
    Delete,
    /// Hard delete by `Id`.
    HardDelete,
}

impl Operation {
    /// Parses the API name.
    pub fn from_api(s: &str) -> Option<Self> {
        Some(match s {
            "insert" => Self::Insert,
            "update" => Self::Update,
            "upsert" => Self::Upsert,
            "delete" => Self::Delete,
            "hardDelete" => Self::HardDelete,
            _ => return None,
        })
    }

    /// The API name.
    pub fn as_api(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Upsert => "upsert",
            Self::Delete => "delete",
            Self::HardDelete => "hardDelete",
        }
    }

    /// The column holding each row's key, if the operation has one.
    fn key_field(self, external_id: Option<&str>) -> Option<&str> {
        match self {
            Self::Insert => None,
            Self::Upsert => external_id,
            Self::Update | Self::Delete | Self::HardDelete => Some("Id"),
        }
    }
}

/// What happened to one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written.
    Success {
        /// The record.
        id: Id,
        /// Whether it was created.
        created: bool,
    },
    /// Not written; `error` is the `sf__Error` text (`CODE:message:fields --`).
    Failure {
        /// The record, when known (failed updates).
        id: Option<Id>,
        /// `sf__Error`.
        error: String,
    },
}

/// One processed row: where it starts in the upload, and its outcome.
#[derive(Clone, Debug)]
pub struct RowResult {
    /// Byte offset of the row in the upload.
    pub start: u64,
    /// Outcome.
    pub outcome: Outcome,
}

/// One ingest job.
#[derive(Debug)]
pub struct IngestJob {
    /// Shared job metadata.
    pub meta: JobMeta,
    /// Operation.
    pub op: Operation,
    /// `externalIdFieldName` for upserts.
    pub external_id_field: Option<String>,
    /// The user who created the job (and owns the records it writes).
    pub user: Id,
    /// `changeOrigin` of the job's writes (`com/salesforce/api/bulkapi/60.0;client=`).
    pub origin: String,
    /// The upload, once PUT.
    pub upload: Option<Bytes>,
    /// How many PUTs arrived (more than one makes the close fail).
    pub uploads: u32,
    /// Processed rows in input order.
    pub results: Vec<RowResult>,
    /// Byte offset of the first data row (after the header).
    pub data_start: u64,
    /// Byte offset of the first row never processed, when processing stopped early.
    pub unprocessed_from: Option<u64>,
}

/// A job shared between handlers and its processor.
pub type SharedJob = Arc<Mutex<IngestJob>>;

impl IngestJob {
    /// Validates a create request and builds the job (state `Open`).
    pub fn create(
        store: &Store,
        body: &Map<String, Value>,
        meta_base: JobMeta,
        user: Id,
    ) -> Result<IngestJob, BulkError> {
        let object_name = required_str(body, "object")?;
        let op_name = required_str(body, "operation")?;
        let op = Operation::from_api(op_name).ok_or_else(|| {
            BulkError::invalid_enum(
                "operation",
                &json!(op_name),
                "insert, delete, hardDelete, update, upsert",
            )
        })?;
        let object = store.schema().object(object_name).ok_or_else(|| {
            BulkError::InvalidJob(format!(
                "Entity '{object_name}' is not supported by the Bulk API."
            ))
        })?;
        let external_id_field = external_id_field(body, op, object)?;
        let dialect: Dialect = dialect_from_request(body)?;
        let mut meta = meta_base;
        meta.operation = op.as_api().to_string();
        meta.object = object.name.clone();
        meta.dialect = dialect;
        meta.state = JobState::Open;
        Ok(IngestJob {
            meta,
            op,
            external_id_field,
            user,
            origin: crate::txn::change_origin("bulkapi", "60.0", None),
            upload: None,
            uploads: 0,
            results: Vec::new(),
            data_start: 0,
            unprocessed_from: None,
        })
    }

    /// The create response / listing entry.
    pub fn summary_json(&self) -> Value {
        let mut m = self.meta.base_json();
        if let Some(f) = &self.external_id_field {
            m.insert("externalIdFieldName".into(), json!(f));
        }
        self.meta.append_format(&mut m);
        m.insert(
            "contentUrl".into(),
            json!(format!(
                "services/data/v{}/jobs/ingest/{}/batches",
                self.meta.api_version, self.meta.id
            )),
        );
        Value::Object(m)
    }

    /// The job-info response (`GET /jobs/ingest/{id}`).
    pub fn info_json(&self) -> Value {
        let mut m = match self.summary_json() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        m.insert("jobType".into(), json!("V2Ingest"));
        self.meta.append_stats(&mut m, true);
        Value::Object(m)
    }

    /// Stores the upload (`PUT …/batches`). Only an `Open` job takes data.
    pub fn put_upload(&mut self, data: Bytes) -> Result<(), BulkError> {
        if self.meta.state != JobState::Open {
            return Err(BulkError::InvalidJob(format!(
                "Job {} is not in Open state; upload data only to an Open job.",
                self.meta.id
            )));
        }
        if data.len() > MAX_UPLOAD_BYTES {
            return Err(too_large());
        }
        self.uploads += 1;
        if self.upload.is_none() {
            self.upload = Some(data);
        }
        Ok(())
    }

    /// Checks that the job may be closed with `UploadComplete`.
    pub fn check_close(&self) -> Result<(), BulkError> {
        if self.meta.state != JobState::Open {
            return Err(BulkError::InvalidJob(format!(
                "Job {} is in state {} and cannot be closed",
                self.meta.id,
                self.meta.state.as_api()
            )));
        }
        if self.uploads > 1 {
            return Err(BulkError::InvalidJob(format!(
                "Found multipe contents for job: <{}>, please 'Close' / 'Abort' / 'Delete' the current Job then create a new Job and make sure you only do 'PUT' once on a given Job.",
                &self.meta.id[..15.min(self.meta.id.len())]
            )));
        }
        Ok(())
    }
}

/// The 413 for an oversized upload.
pub fn too_large() -> BulkError {
    BulkError::TooLarge(format!(
        "Upload exceeds the maximum size of 150 MB (base64 encoded; {MAX_UPLOAD_BYTES} bytes of raw CSV)"
    ))
}

/// Validates `externalIdFieldName` for upserts.
fn external_id_field(
    body: &Map<String, Value>,
    op: Operation,
    object: &crate::schema::ObjectDef,
) -> Result<Option<String>, BulkError> {
    if op != Operation::Upsert {
        return Ok(None);
    }
    let name = body
        .get("externalIdFieldName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            BulkError::InvalidJob(
                "External ID was blank for Account. An External ID must be specified for upsert."
                    .replace("Account", &object.name),
            )
        })?;
    if name.eq_ignore_ascii_case("Id") {
        return Ok(Some("Id".to_string()));
    }
    match object.field(name) {
        Some(f) if f.external_id || (f.id_lookup && f.unique) => Ok(Some(f.name.clone())),
        _ => Err(BulkError::InvalidJob(format!(
            "Field name provided, {name} does not match an External ID, Salesforce Id, or indexed field for {}",
            object.name
        ))),
    }
}

/// What the processor needs to know, fixed when the job is closed.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Object name.
    pub object: String,
    /// Operation.
    pub op: Operation,
    /// Upsert key field.
    pub external_id_field: Option<String>,
    /// Record owner / modifier.
    pub user: Id,
    /// `changeOrigin` of the writes.
    pub origin: String,
    /// CSV dialect.
    pub dialect: Dialect,
    /// Analysed header.
    pub header: Arc<Header>,
}

/// Reads and validates the whole upload before any row is written: quotes, the header and
/// every row's width. Returns the plan, the offset of the first data row and the row count,
/// or the job's `errorMessage`.
pub fn prepare(store: &Store, job: &IngestJob, data: &[u8]) -> Result<(Plan, u64, u64), String> {
    check_balanced_quotes(data).map_err(|e| e.to_string())?;
    let mut reader = job.meta.dialect.reader(data);
    let mut header_row = ByteRecord::new();
    match reader.read_byte_record(&mut header_row) {
        Ok(true) => {}
        Ok(false) => return Err(CsvError::Empty.to_string()),
        Err(e) => return Err(CsvError::Malformed(e.to_string()).to_string()),
    }
    let data_start = reader.position().byte();
    let schema = store.schema();
    let object = schema
        .object(&job.meta.object)
        .ok_or_else(|| format!("InvalidBatch : Entity {} is not supported", job.meta.object))?;
    let key_field = job.op.key_field(job.external_id_field.as_deref());
    let header = columns::analyze(schema, object, &header_row, key_field)?;
    if let (Some(k), None) = (key_field, header.key) {
        return Err(format!("InvalidBatch : Field name not found : {k}"));
    }
    let rows = count_rows(&mut reader, header.columns.len())?;
    let plan = Plan {
        object: object.name.clone(),
        op: job.op,
        external_id_field: job.external_id_field.clone(),
        user: job.user,
        origin: job.origin.clone(),
        dialect: job.meta.dialect,
        header: Arc::new(header),
    };
    Ok((plan, data_start, rows))
}

/// Counts data rows, failing on a row whose width differs from the header's.
fn count_rows(reader: &mut csv::Reader<&[u8]>, width: usize) -> Result<u64, String> {
    let mut row = ByteRecord::new();
    let mut n = 0u64;
    loop {
        match reader.read_byte_record(&mut row) {
            Ok(false) => return Ok(n),
            Ok(true) => {
                n += 1;
                if row.len() != width {
                    return Err(CsvError::ColumnCount {
                        row: n + 1,
                        expected: width,
                        found: row.len(),
                    }
                    .to_string());
                }
            }
            Err(e) => return Err(CsvError::Malformed(e.to_string()).to_string()),
        }
    }
}

/// Processes up to `max_rows` rows starting at byte `from`; returns the results and the
/// offset of the next unread row (`None` at end of data).
pub fn process_chunk(
    store: &Store,
    plan: &Plan,
    data: &[u8],
    from: u64,
    max_rows: usize,
) -> (Vec<RowResult>, Option<u64>) {
    let txn = Txn::new(
        store.change_sink(),
        TxnInfo::new(plan.origin.clone(), plan.user),
    );
    let out = process_rows(store, plan, &txn.writer(), data, from, max_rows);
    txn.commit();
    out
}

/// [`process_chunk`] inside the chunk's transaction.
fn process_rows(
    store: &Store,
    plan: &Plan,
    w: &Writer,
    data: &[u8],
    from: u64,
    max_rows: usize,
) -> (Vec<RowResult>, Option<u64>) {
    let Some(slice) = usize::try_from(from).ok().and_then(|f| data.get(f..)) else {
        return (Vec::new(), None);
    };
    let mut reader = plan.dialect.reader(slice);
    let mut rows = Vec::with_capacity(max_rows.min(CHUNK_ROWS));
    let mut record = ByteRecord::new();
    while rows.len() < max_rows {
        let start = from + reader.position().byte();
        match reader.read_byte_record(&mut record) {
            Ok(true) => rows.push((start, record.clone())),
            Ok(false) | Err(_) => break,
        }
    }
    let next = from + reader.position().byte();
    let more = reader.read_byte_record(&mut record).unwrap_or(false);
    if plan.op == Operation::Insert {
        return (insert_rows(store, plan, w, &rows), more.then_some(next));
    }
    let duplicates = duplicate_keys(plan, &rows);
    let results = rows
        .iter()
        .map(|(start, row)| RowResult {
            start: *start,
            outcome: apply_row(store, plan, w, row, &duplicates),
        })
        .collect();
    (results, more.then_some(next))
}

/// Inserts a chunk by column position when the header allows it
/// ([`super::fast_insert`]), else through [`Store::insert_many`]; each row's outcome is
/// what [`apply_row`] would give it.
fn insert_rows(
    store: &Store,
    plan: &Plan,
    w: &Writer,
    rows: &[(u64, ByteRecord)],
) -> Vec<RowResult> {
    let object = store.schema().object(&plan.object).cloned();
    if let Some(fast) = object
        .as_deref()
        .and_then(|o| super::fast_insert::FastInsert::new(plan, o))
    {
        return fast.run(store, plan, w, rows);
    }
    insert_rows_by_body(store, plan, w, rows)
}

/// Inserts one row through the general path (a row the fast path does not take).
pub(super) fn insert_one(store: &Store, plan: &Plan, w: &Writer, row: &ByteRecord) -> Outcome {
    match columns::row_body(&plan.header, row) {
        Ok(p) => match store
            .insert_many(&plan.object, std::slice::from_ref(&p.body), w)
            .pop()
        {
            Some(Ok(id)) => Outcome::Success { id, created: true },
            Some(Err(e)) => failure(None, &e),
            None => failure(None, &[]),
        },
        Err(error) => Outcome::Failure { id: None, error },
    }
}

/// The general insert path, for tests comparing the fast path with it.
#[cfg(test)]
pub(super) fn insert_rows_for_test(
    store: &Store,
    plan: &Plan,
    w: &Writer,
    rows: &[(u64, ByteRecord)],
) -> Vec<RowResult> {
    insert_rows_by_body(store, plan, w, rows)
}

/// Inserts a chunk through [`Store::insert_many`], building each row's request body.
fn insert_rows_by_body(
    store: &Store,
    plan: &Plan,
    w: &Writer,
    rows: &[(u64, ByteRecord)],
) -> Vec<RowResult> {
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(rows.len());
    let mut bodies = Vec::with_capacity(rows.len());
    for (_, row) in rows {
        match columns::row_body(&plan.header, row) {
            Ok(p) => {
                bodies.push(p.body);
                outcomes.push(None);
            }
            Err(error) => outcomes.push(Some(Outcome::Failure { id: None, error })),
        }
    }
    let mut written = store.insert_many(&plan.object, &bodies, w).into_iter();
    rows.iter()
        .zip(outcomes)
        .map(|((start, _), outcome)| RowResult {
            start: *start,
            outcome: outcome.unwrap_or_else(|| match written.next() {
                Some(Ok(id)) => Outcome::Success { id, created: true },
                Some(Err(e)) => failure(None, &e),
                None => failure(None, &[]),
            }),
        })
        .collect()
}

/// Upsert keys that occur more than once in one chunk (matched ignoring case): Salesforce
/// fails every such row with `DUPLICATE_VALUE` "Duplicate external id specified".
fn duplicate_keys(plan: &Plan, rows: &[(u64, ByteRecord)]) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashMap::<String, u32>::new();
    if plan.op != Operation::Upsert {
        return Default::default();
    }
    let Some(k) = plan.header.key else {
        return Default::default();
    };
    for (_, row) in rows {
        if let Some(v) = row.get(k).filter(|v| !v.is_empty()) {
            *seen
                .entry(String::from_utf8_lossy(v).to_lowercase())
                .or_default() += 1;
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, _)| k)
        .collect()
}

/// Writes one row; never panics on its content.
fn apply_row(
    store: &Store,
    plan: &Plan,
    w: &Writer,
    row: &ByteRecord,
    duplicates: &std::collections::HashSet<String>,
) -> Outcome {
    let parsed = match columns::row_body(&plan.header, row) {
        Ok(p) => p,
        Err(error) => return Outcome::Failure { id: None, error },
    };
    let key = parsed.key.unwrap_or_default();
    let body = parsed.body;
    match plan.op {
        Operation::Insert => match store.insert(&plan.object, &body, w) {
            Ok(id) => Outcome::Success { id, created: true },
            Err(e) => failure(None, &e),
        },
        Operation::Update => match parse_id(plan, &key, "update") {
            Ok(id) => match store.update(&plan.object, &id, &body, w) {
                Ok(()) => Outcome::Success { id, created: false },
                Err(e) => failure(Some(id), &e),
            },
            Err(o) => o,
        },
        Operation::Upsert => upsert_row(store, plan, w, &key, &body, duplicates),
        Operation::Delete | Operation::HardDelete => delete_row(store, plan, w, &key),
    }
}

/// Upserts one row by its external id.
fn upsert_row(
    store: &Store,
    plan: &Plan,
    w: &Writer,
    key: &str,
    body: &Map<String, Value>,
    duplicates: &std::collections::HashSet<String>,
) -> Outcome {
    let field = plan.external_id_field.as_deref().unwrap_or("Id");
    if duplicates.contains(&key.to_lowercase()) {
        return Outcome::Failure {
            id: None,
            error: format!("DUPLICATE_VALUE:Duplicate external id specified: {key}:{field} --"),
        };
    }
    match store.upsert_by_external_id(&plan.object, field, key, body, w) {
        Ok(u) => Outcome::Success {
            id: u.id,
            created: u.created,
        },
        Err(UpsertError::Multiple(ids)) => {
            let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
            Outcome::Failure {
                id: None,
                error: format!(
                    "DUPLICATE_EXTERNAL_ID:{} - {field}: more than one record found for external id field: [{}]:{field} --",
                    plan.object,
                    list.join(", ")
                ),
            }
        }
        Err(UpsertError::NotExternalId(f)) => Outcome::Failure {
            id: None,
            error: format!("INVALID_FIELD:Invalid field for upsert, must be an External Id custom or standard indexed field: {f}:{f} --"),
        },
        Err(UpsertError::Invalid(e)) => failure(None, &e),
    }
}

/// Soft or hard deletes one row by `Id`.
fn delete_row(store: &Store, plan: &Plan, w: &Writer, key: &str) -> Outcome {
    let id = match parse_id(plan, key, "delete") {
        Ok(id) => id,
        Err(o) => return o,
    };
    let same_object = store
        .object_of(&id)
        .is_some_and(|o| o.eq_ignore_ascii_case(&plan.object));
    if !same_object {
        return cross_reference(id);
    }
    let result = if plan.op == Operation::HardDelete {
        store.hard_delete_by(&id, w)
    } else {
        store.delete(&id, w)
    };
    match result {
        Ok(()) => Outcome::Success { id, created: false },
        Err(e) if e.code == crate::error::ErrorCode::NotFound => cross_reference(id),
        Err(e) => failure(Some(id), std::slice::from_ref(&e)),
    }
}

/// `INVALID_CROSS_REFERENCE_KEY` for an id that names no record of the job's object.
fn cross_reference(id: Id) -> Outcome {
    Outcome::Failure {
        id: Some(id),
        error: "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id: --".to_string(),
    }
}

/// Parses the `Id` cell of update/delete rows.
fn parse_id(plan: &Plan, key: &str, call: &str) -> Result<Id, Outcome> {
    if key.is_empty() {
        return Err(Outcome::Failure {
            id: None,
            error: format!("MISSING_ARGUMENT:Id not specified in an {call} call: --"),
        });
    }
    Id::parse(key).map_err(|_| Outcome::Failure {
        id: None,
        error: format!(
            "MALFORMED_ID:{} ID: id value of incorrect type: {key}:Id --",
            plan.object
        ),
    })
}

/// A failure from the store's errors (the first one, as Salesforce reports it).
fn failure(id: Option<Id>, errors: &[crate::error::FieldError]) -> Outcome {
    let error = errors.first().map_or_else(
        || "UNKNOWN_EXCEPTION:unknown error: --".to_string(),
        |e| e.to_bulk_string(),
    );
    Outcome::Failure { id, error }
}

/// Which result file to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultKind {
    /// `successfulResults/`.
    Successful,
    /// `failedResults/`.
    Failed,
    /// `unprocessedrecords/`.
    Unprocessed,
}

/// Renders a result file: every value quoted, in the job's dialect, rows in input order.
pub fn render_results(job: &IngestJob, kind: ResultKind) -> Vec<u8> {
    let dialect = job.meta.dialect;
    let mut w = dialect.writer();
    let Some(data) = job.upload.as_deref() else {
        return w.into_bytes();
    };
    let mut reader = dialect.reader(data);
    let mut header = ByteRecord::new();
    if !reader.read_byte_record(&mut header).unwrap_or(false) {
        return w.into_bytes();
    }
    match kind {
        ResultKind::Successful => {
            w.row(prefixed(&["sf__Id", "sf__Created"], &header));
            for r in &job.results {
                if let Outcome::Success { id, created } = &r.outcome {
                    let cells = original_cells(data, dialect, r.start);
                    let created = if *created { "true" } else { "false" };
                    w.row(prefixed(&[id.as_str(), created], &cells));
                }
            }
        }
        ResultKind::Failed => {
            w.row(prefixed(&["sf__Id", "sf__Error"], &header));
            for r in &job.results {
                if let Outcome::Failure { id, error } = &r.outcome {
                    let cells = original_cells(data, dialect, r.start);
                    let id = id.as_ref().map_or("", Id::as_str);
                    w.row(prefixed(&[id, error.as_str()], &cells));
                }
            }
        }
        ResultKind::Unprocessed => {
            w.row(header.iter());
            if let Some(from) = unprocessed_from(job, reader.position().byte()) {
                render_rows_from(&mut w, data, dialect, from);
            }
        }
    }
    w.into_bytes()
}

/// Where unprocessed rows start (`header_end` when processing never began), if any rows are
/// unprocessed.
fn unprocessed_from(job: &IngestJob, header_end: u64) -> Option<u64> {
    match job.meta.state {
        JobState::JobComplete => None,
        _ => Some(job.unprocessed_from.unwrap_or(header_end)),
    }
}

/// Copies every row from byte `from` to the writer.
fn render_rows_from(w: &mut super::csv_io::QuotedWriter, data: &[u8], dialect: Dialect, from: u64) {
    let Some(slice) = usize::try_from(from).ok().and_then(|f| data.get(f..)) else {
        return;
    };
    let mut reader = dialect.reader(slice);
    let mut row = ByteRecord::new();
    while reader.read_byte_record(&mut row).unwrap_or(false) {
        w.row(row.iter());
    }
}

/// The original cells of the row starting at byte `start`.
fn original_cells(data: &[u8], dialect: Dialect, start: u64) -> ByteRecord {
    let mut row = ByteRecord::new();
    if let Some(slice) = usize::try_from(start).ok().and_then(|s| data.get(s..)) {
        let _ = dialect.reader(slice).read_byte_record(&mut row);
    }
    row
}

/// `first` followed by the cells of `rest`.
fn prefixed<'a>(first: &'a [&'a str], rest: &'a ByteRecord) -> impl Iterator<Item = &'a [u8]> {
    first.iter().map(|s| s.as_bytes()).chain(rest.iter())
}

/// Runs a closed job to completion. `fail_with` (the "Bulk job ends Failed" fault) stops
/// after about half the rows and fails the job with that `errorMessage`; `on_chunk` is told
/// each chunk's row count (for the DailyBulkApiBatches allocation).
///
/// The latency profile holds the job in `UploadComplete` for its start delay and, after
/// each chunk, for the chunk's rows at its processing rate (so `numberRecordsProcessed`
/// grows at that rate while `InProgress`).
pub async fn run(
    state: AppState,
    job: SharedJob,
    fail_with: Option<String>,
    on_chunk: Arc<dyn Fn(usize) + Send + Sync>,
) {
    let store = state.store.clone();
    tokio::time::sleep(STATE_DWELL).await;
    state.latency.wait(Delay::BulkIngestStart).await;
    let started = Instant::now();
    let Some(data) = begin(&store, &job) else {
        return;
    };
    let Some((plan, data_start, total)) = prepare_or_fail(&store, &job, &data) else {
        return;
    };
    let stop_after = fail_with.as_ref().map(|_| (total / 2).max(1));
    let mut pos = Some(data_start);
    let mut done = 0u64;
    while let Some(from) = pos {
        if job.lock().meta.state != JobState::InProgress {
            return; // aborted
        }
        if stop_after.is_some_and(|s| done >= s) {
            break;
        }
        let rows = stop_after.map_or(CHUNK_ROWS as u64, |s| (s - done).min(CHUNK_ROWS as u64));
        let (results, next) =
            process_in_background(&store, &plan, &data, from, rows as usize).await;
        done += results.len() as u64;
        on_chunk(results.len());
        let n = results.len() as u64;
        record_chunk(&store, &job, results, next, started);
        state.latency.wait(Delay::BulkIngestRows(n)).await;
        pos = next;
    }
    tokio::time::sleep(STATE_DWELL.saturating_sub(started.elapsed())).await;
    finish(&store, &job, pos, fail_with, started);
}

/// Moves the job to `InProgress` and returns its upload, unless it was aborted meanwhile.
fn begin(store: &Store, job: &SharedJob) -> Option<Bytes> {
    let mut j = job.lock();
    if j.meta.state != JobState::UploadComplete {
        return None;
    }
    j.meta.set_state(JobState::InProgress, store.clock().now());
    Some(j.upload.clone().unwrap_or_default())
}

/// Prepares the plan, failing the job with Salesforce's message if the upload is unusable.
fn prepare_or_fail(store: &Store, job: &SharedJob, data: &Bytes) -> Option<(Plan, u64, u64)> {
    let prepared = {
        let j = job.lock();
        prepare(store, &j, data)
    };
    let mut j = job.lock();
    match prepared {
        Ok((plan, start, total)) => {
            j.data_start = start;
            j.unprocessed_from = Some(start);
            Some((plan, start, total))
        }
        Err(message) => {
            j.meta.error_message = Some(message);
            j.meta.set_state(JobState::Failed, store.clock().now());
            None
        }
    }
}

/// Runs one chunk on the blocking pool.
async fn process_in_background(
    store: &Arc<Store>,
    plan: &Plan,
    data: &Bytes,
    from: u64,
    rows: usize,
) -> (Vec<RowResult>, Option<u64>) {
    let (store, plan, data) = (store.clone(), plan.clone(), data.clone());
    tokio::task::spawn_blocking(move || process_chunk(&store, &plan, &data, from, rows))
        .await
        .unwrap_or_default()
}

/// Appends a chunk's results and counters.
fn record_chunk(
    store: &Store,
    job: &SharedJob,
    results: Vec<RowResult>,
    next: Option<u64>,
    started: Instant,
) {
    let failed = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failure { .. }))
        .count() as u64;
    let mut j = job.lock();
    j.meta.processed += results.len() as u64;
    j.meta.failed += failed;
    j.meta.processing_ms = started.elapsed().as_millis() as u64;
    j.meta.system_modstamp = store.clock().now();
    j.results.extend(results);
    j.unprocessed_from = next;
}

/// Final state: `JobComplete`, or `Failed` when the fault stopped processing early.
fn finish(
    store: &Store,
    job: &SharedJob,
    pos: Option<u64>,
    fail_with: Option<String>,
    started: Instant,
) {
    let mut j = job.lock();
    if j.meta.state != JobState::InProgress {
        return;
    }
    j.meta.processing_ms = started.elapsed().as_millis() as u64;
    if let Some(message) = fail_with {
        j.meta.error_message = Some(message);
        j.unprocessed_from = Some(pos.unwrap_or(u64::MAX));
        j.meta.set_state(JobState::Failed, store.clock().now());
    } else {
        j.unprocessed_from = None;
        j.meta.set_state(JobState::JobComplete, store.clock().now());
    }
}
