//! HTTP handlers of Bulk API 2.0: thin wrappers that parse the request, call into
//! [`super::ingest`] / [`super::query_job`], and spawn the background processors.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::encoding;
use super::ingest::{self, IngestJob, ResultKind, MAX_UPLOAD_BYTES};
use super::job::{JobMeta, JobState};
use super::query_job::{self, QueryJob};
use super::{BulkError, BulkState};
use crate::context::{ApiVersion, AuthContext};
use crate::ids::prefix;
use crate::state::{AppState, EmulatorState};

/// The Bulk API 2.0 routes.
pub fn routes() -> Router<AppState> {
    let base = "/services/data/{version}/jobs";
    Router::new()
        .route(
            &format!("{base}/ingest"),
            get(list_ingest).post(create_ingest),
        )
        .route(
            &format!("{base}/ingest/{{id}}"),
            get(ingest_info).patch(patch_ingest).delete(delete_ingest),
        )
        .route(
            &format!("{base}/ingest/{{id}}/batches"),
            put(upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            &format!("{base}/ingest/{{id}}/successfulResults"),
            get(successful),
        )
        .route(&format!("{base}/ingest/{{id}}/failedResults"), get(failed))
        .route(
            &format!("{base}/ingest/{{id}}/unprocessedrecords"),
            get(unprocessed),
        )
        .route(
            &format!("{base}/ingest/{{id}}/unprocessedRecords"),
            get(unprocessed),
        )
        .route(&format!("{base}/query"), get(list_query).post(create_query))
        .route(
            &format!("{base}/query/{{id}}"),
            get(query_info).patch(patch_query).delete(delete_query),
        )
        .route(&format!("{base}/query/{{id}}/results"), get(query_results))
}

/// Parses a JSON object body.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, BulkError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(BulkError::JsonParser(
            "Cannot deserialize instance of job from a non-object value".into(),
        )),
        Err(e) => Err(BulkError::JsonParser(format!(
            "Unexpected character in JSON: {e}"
        ))),
    }
}

/// Fresh job metadata for the caller.
fn new_meta(state: &EmulatorState, version: ApiVersion, auth: &AuthContext) -> JobMeta {
    let now = state.clock.now();
    JobMeta {
        id: state.store.ids().next(prefix::BULK_JOB).to_string(),
        operation: String::new(),
        object: String::new(),
        created_by: auth.session.user_id.to_string(),
        created_date: now,
        system_modstamp: now,
        state: JobState::Open,
        api_version: version.number(),
        dialect: Default::default(),
        error_message: None,
        processed: 0,
        failed: 0,
        processing_ms: 0,
    }
}

/// `POST /jobs/ingest`.
async fn create_ingest(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Json<Value>, BulkError> {
    let body = json_object(&body)?;
    let meta = new_meta(&state, version, &auth);
    let mut job = IngestJob::create(&state.store, &body, meta, auth.session.user_id)?;
    job.origin = auth.origin_for("bulkapi");
    let out = job.summary_json();
    let id = job.meta.id.clone();
    state
        .ext::<BulkState>()
        .ingest
        .insert(id, Arc::new(Mutex::new(job)));
    Ok(Json(out))
}

/// `GET /jobs/ingest`.
async fn list_ingest(State(state): State<AppState>) -> Json<Value> {
    let bulk = state.ext::<BulkState>();
    let mut jobs: Vec<(String, Value)> = bulk
        .ingest
        .iter()
        .map(|e| {
            let j = e.value().lock();
            let mut v = j.summary_json();
            if let Some(m) = v.as_object_mut() {
                m.insert("jobType".into(), json!("V2Ingest"));
            }
            (e.key().clone(), v)
        })
        .collect();
    jobs.sort_by(|a, b| a.0.cmp(&b.0));
    listing(jobs)
}

/// The `{done, records, nextRecordsUrl}` listing shape.
fn listing(jobs: Vec<(String, Value)>) -> Json<Value> {
    let records: Vec<Value> = jobs.into_iter().map(|(_, v)| v).collect();
    Json(json!({"done": true, "records": records, "nextRecordsUrl": null}))
}

/// `GET /jobs/ingest/{id}`.
async fn ingest_info(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, BulkError> {
    let job = state.ext::<BulkState>().ingest_job(&id)?;
    let info = job.lock().info_json();
    Ok(Json(info))
}

/// `PATCH /jobs/ingest/{id}` with `{"state": "UploadComplete" | "Aborted"}`.
async fn patch_ingest(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Json<Value>, BulkError> {
    let target = requested_state(&body)?;
    let job = state.ext::<BulkState>().ingest_job(&id)?;
    let now = state.clock.now();
    let out = {
        let mut j = job.lock();
        match target {
            JobState::UploadComplete => {
                j.check_close()?;
                j.meta.set_state(JobState::UploadComplete, now);
            }
            JobState::Aborted => abort(&mut j.meta, now)?,
            _ => unreachable_state()?,
        }
        j.summary_json()
    };
    if target == JobState::UploadComplete {
        let fail_with = state.faults.bulk_job_failure("PATCH", uri.path());
        spawn_ingest(&state, job, fail_with);
    }
    Ok(Json(out))
}

/// Starts the background processor of a closed ingest job.
fn spawn_ingest(state: &AppState, job: ingest::SharedJob, fail_with: Option<String>) {
    let st = state.clone();
    let on_chunk: Arc<dyn Fn(usize) + Send + Sync> = Arc::new(move |rows| {
        if rows > 0 {
            let _ = st.limits.bulk_batches.try_use(1);
        }
    });
    tokio::spawn(ingest::run(state.clone(), job, fail_with, on_chunk));
}

/// Reads `{"state": …}` of a PATCH body; only `UploadComplete` and `Aborted` are accepted.
fn requested_state(body: &[u8]) -> Result<JobState, BulkError> {
    let body = json_object(body)?;
    match body.get("state").and_then(Value::as_str) {
        Some("UploadComplete") => Ok(JobState::UploadComplete),
        Some("Aborted") => Ok(JobState::Aborted),
        other => Err(BulkError::InvalidJob(format!(
            "Invalid state for a job update: {}. Use UploadComplete or Aborted.",
            other.unwrap_or("<missing>")
        ))),
    }
}

/// Never reached (requested_state only returns the two states handled).
fn unreachable_state() -> Result<(), BulkError> {
    Err(BulkError::InvalidJob("Invalid job state".into()))
}

/// Aborts a job that is not finished yet.
fn abort(meta: &mut JobMeta, now: chrono::DateTime<chrono::Utc>) -> Result<(), BulkError> {
    if meta.state.is_terminal() {
        return Err(BulkError::InvalidJob(format!(
            "Job {} is already in terminal state {}",
            meta.id,
            meta.state.as_api()
        )));
    }
    meta.set_state(JobState::Aborted, now);
    Ok(())
}

/// `DELETE /jobs/ingest/{id}` → 204 (not while the job is still Open or running).
async fn delete_ingest(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, BulkError> {
    let bulk = state.ext::<BulkState>();
    let job = bulk.ingest_job(&id)?;
    let (full_id, st) = {
        let j = job.lock();
        (j.meta.id.clone(), j.meta.state)
    };
    check_deletable(st)?;
    bulk.ingest.remove(&full_id);
    Ok(StatusCode::NO_CONTENT)
}

/// Salesforce deletes only jobs that are UploadComplete or finished.
fn check_deletable(st: JobState) -> Result<(), BulkError> {
    if matches!(st, JobState::Open | JobState::InProgress) {
        return Err(BulkError::InvalidJob(format!(
            "Job can not be deleted in state {}; close or abort it first",
            st.as_api()
        )));
    }
    Ok(())
}

/// `PUT /jobs/ingest/{id}/batches` (text/csv, optionally gzip/deflate-encoded) → 201, empty.
async fn upload(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, BulkError> {
    let job = state.ext::<BulkState>().ingest_job(&id)?;
    let data = axum::body::to_bytes(body, MAX_UPLOAD_BYTES + 1)
        .await
        .map_err(|_| ingest::too_large())?;
    let data = encoding::decode_upload(&headers, data)?;
    job.lock().put_upload(data)?;
    Ok(StatusCode::CREATED)
}

/// `GET …/successfulResults`.
async fn successful(
    state: State<AppState>,
    path: Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, BulkError> {
    results(state, path, &headers, ResultKind::Successful)
}

/// `GET …/failedResults`.
async fn failed(
    state: State<AppState>,
    path: Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, BulkError> {
    results(state, path, &headers, ResultKind::Failed)
}

/// `GET …/unprocessedrecords` (also `unprocessedRecords`).
async fn unprocessed(
    state: State<AppState>,
    path: Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, BulkError> {
    results(state, path, &headers, ResultKind::Unprocessed)
}

/// Renders one result file as `text/csv`.
fn results(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    request: &HeaderMap,
    kind: ResultKind,
) -> Result<Response, BulkError> {
    let job = state.ext::<BulkState>().ingest_job(&id)?;
    let csv = ingest::render_results(&job.lock(), kind);
    Ok(csv_response(csv, request, &[]))
}

/// A `text/csv` response with extra headers, gzipped when the request accepts it.
fn csv_response(
    body: Vec<u8>,
    request: &HeaderMap,
    headers: &[(&'static str, String)],
) -> Response {
    let gzip = encoding::accepts_gzip(request);
    let body = if gzip { encoding::gzip(&body) } else { body };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=UTF-8"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    resp
}

/// `POST /jobs/query`.
async fn create_query(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Extension(auth): Extension<AuthContext>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Json<Value>, BulkError> {
    let body = json_object(&body)?;
    let meta = new_meta(&state, version, &auth);
    let job = QueryJob::create(&state, &body, meta)?;
    if state.limits.bulk_query_jobs.try_use(1).is_none() {
        return Err(BulkError::InvalidJob(
            "Max bulk v2 query jobs (10000) per 24 hrs has been reached".into(),
        ));
    }
    let out = job.summary_json();
    let id = job.meta.id.clone();
    let shared = Arc::new(Mutex::new(job));
    state.ext::<BulkState>().query.insert(id, shared.clone());
    if let Some(message) = state.faults.bulk_job_failure("POST", uri.path()) {
        fail_query_job(&state, &shared, message);
    } else {
        tokio::spawn(query_job::run(state.clone(), shared));
    }
    Ok(Json(out))
}

/// Fails a query job at once (the "Bulk job ends Failed" fault).
fn fail_query_job(state: &AppState, job: &query_job::SharedQueryJob, message: String) {
    let mut j = job.lock();
    j.meta.error_message = Some(message);
    j.meta.set_state(JobState::Failed, state.clock.now());
}

/// `GET /jobs/query`.
async fn list_query(State(state): State<AppState>) -> Json<Value> {
    let bulk = state.ext::<BulkState>();
    let mut jobs: Vec<(String, Value)> = bulk
        .query
        .iter()
        .map(|e| {
            let j = e.value().lock();
            let mut v = j.summary_json();
            if let Some(m) = v.as_object_mut() {
                m.insert("jobType".into(), json!("V2Query"));
            }
            (e.key().clone(), v)
        })
        .collect();
    jobs.sort_by(|a, b| a.0.cmp(&b.0));
    listing(jobs)
}

/// `GET /jobs/query/{id}`.
async fn query_info(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, BulkError> {
    let job = state.ext::<BulkState>().query_job(&id)?;
    let info = job.lock().info_json();
    Ok(Json(info))
}

/// `PATCH /jobs/query/{id}` with `{"state": "Aborted"}`.
async fn patch_query(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, BulkError> {
    if requested_state(&body)? != JobState::Aborted {
        return Err(BulkError::InvalidJob(
            "A query job can only be updated to state Aborted".into(),
        ));
    }
    let job = state.ext::<BulkState>().query_job(&id)?;
    let mut j = job.lock();
    abort(&mut j.meta, state.clock.now())?;
    Ok(Json(j.summary_json()))
}

/// `DELETE /jobs/query/{id}` → 204.
async fn delete_query(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, BulkError> {
    let bulk = state.ext::<BulkState>();
    let job = bulk.query_job(&id)?;
    let (full_id, st) = {
        let j = job.lock();
        (j.meta.id.clone(), j.meta.state)
    };
    check_deletable(st)?;
    bulk.query.remove(&full_id);
    Ok(StatusCode::NO_CONTENT)
}

/// `?maxRecords=&locator=` of a results request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultsParams {
    max_records: Option<String>,
    locator: Option<String>,
}

/// The version and state checks of a results request.
fn check_results_ready(j: &QueryJob, version: &ApiVersion) -> Result<(), BulkError> {
    if j.meta.api_version != version.number() {
        return Err(BulkError::VersionMismatch(format!(
            "The API version {} of this request does not match the version {} the job was created with",
            version.number(),
            j.meta.api_version
        )));
    }
    if j.meta.state != JobState::JobComplete {
        return Err(BulkError::InvalidJob(format!(
            "Job {} is in state {}; results are available once it is JobComplete",
            j.meta.id,
            j.meta.state.as_api()
        )));
    }
    Ok(())
}

/// `GET /jobs/query/{id}/results`.
async fn query_results(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Path((_, id)): Path<(String, String)>,
    Query(params): Query<ResultsParams>,
    request: HeaderMap,
) -> Result<Response, BulkError> {
    let job = state.ext::<BulkState>().query_job(&id)?;
    check_results_ready(&job.lock(), &version)?;
    let max =
        match params.max_records.as_deref() {
            None | Some("") => None,
            Some(s) => Some(s.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                BulkError::InvalidJob(format!("Invalid value for maxRecords: {s}"))
            })?),
        };
    let st = state.clone();
    let (csv, n, next) =
        tokio::task::spawn_blocking(move || job.lock().page(&st, params.locator.as_deref(), max))
            .await
            .unwrap_or_else(|e| Err(BulkError::InvalidJob(format!("results page failed: {e}"))))?;
    let locator = next.unwrap_or_else(|| "null".to_string());
    Ok(csv_response(
        csv,
        &request,
        &[
            ("sforce-numberofrecords", n.to_string()),
            ("sforce-locator", locator),
        ],
    ))
}
