//! REST SOQL: `GET /services/data/vNN.N/query?q=…`, `/queryAll?q=…` and the
//! `nextRecordsUrl` locators (`/query/{cursorId}-{offset}`), plus the adapter that lets the
//! SOQL engine read the emulator's schema and store ([`catalog`]).
//!
//! A query runs once: its whole result is materialized into a cursor ([`cursors`]) and later
//! pages are slices of it, so paging never rescans the table. Page size comes from
//! `Sforce-Query-Options: batchSize=N` (default 2,000, clamped to 200–2,000). `COUNT()`
//! answers `totalSize` with no records. Cursors expire after 15 minutes idle and answer 400
//! `INVALID_QUERY_LOCATOR`; `/queryAll` locators use `/query/…` like Salesforce's.

pub mod catalog;
pub mod cursors;

use std::sync::Arc;

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::ids::prefix;
use crate::schema::Schema;
use crate::soql::{self, ExecOptions, QueryOutput, Record, SoqlError};
use crate::state::{AppState, EmulatorState};

use catalog::{SoqlCatalog, StoreSource};
use cursors::Cursors;

/// Default and maximum page size.
pub const MAX_BATCH: usize = 2_000;
/// Minimum page size.
pub const MIN_BATCH: usize = 200;

/// This module's state, kept in the emulator's extension slot.
#[derive(Debug, Default)]
pub struct QueryState {
    /// Open cursors.
    pub cursors: Cursors,
    /// The SOQL catalog, built on first use for the schema it was built from.
    catalog: Mutex<Option<(usize, Arc<SoqlCatalog>)>>,
}

impl QueryState {
    /// The catalog of `schema` (converted once, then cached).
    pub fn catalog(&self, schema: &Arc<Schema>) -> Arc<SoqlCatalog> {
        let key = Arc::as_ptr(schema) as usize;
        let mut slot = self.catalog.lock();
        match &*slot {
            Some((k, c)) if *k == key => c.clone(),
            _ => {
                let c = Arc::new(SoqlCatalog::new(schema));
                *slot = Some((key, c.clone()));
                c
            }
        }
    }
}

/// A failed query call.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SOQL is invalid: 400 with the engine's code.
    #[error(transparent)]
    Soql(#[from] SoqlError),
    /// The locator is unknown or expired: 400 `INVALID_QUERY_LOCATOR`.
    #[error("invalid query locator")]
    InvalidLocator,
    /// `q` is missing.
    #[error("missing q")]
    MissingQuery,
    /// An error rendered by the core (auth, limits).
    #[error("api error")]
    Api(ApiError),
}

impl From<ApiError> for QueryError {
    fn from(e: ApiError) -> Self {
        QueryError::Api(e)
    }
}

impl QueryError {
    /// The `[{"message","errorCode"}]` body and status.
    pub fn status_and_body(&self) -> (StatusCode, Value) {
        let (code, message) = match self {
            QueryError::Api(e) => return (e.status, e.body()),
            QueryError::Soql(e) => (e.code, e.message.clone()),
            QueryError::InvalidLocator => ("INVALID_QUERY_LOCATOR", "invalid query locator".into()),
            QueryError::MissingQuery => (
                "MALFORMED_QUERY",
                "A query string has to be specified".to_string(),
            ),
        };
        (
            StatusCode::BAD_REQUEST,
            json!([{"message": message, "errorCode": code}]),
        )
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        (status, Json(body)).into_response()
    }
}

/// Runs `soql` and returns its full output (no paging); the seam Bulk query jobs share.
pub fn execute(
    state: &EmulatorState,
    soql_text: &str,
    include_deleted: bool,
    api_version: &str,
) -> Result<QueryOutput, SoqlError> {
    let query = soql::parse(soql_text)?;
    let catalog = state.ext::<QueryState>().catalog(&state.schema);
    let opts = ExecOptions {
        include_deleted,
        now: state.clock.now(),
        api_version: api_version.to_string(),
    };
    soql::execute(&query, catalog.as_ref(), &StoreSource(&state.store), &opts)
}

/// The page size asked for in `Sforce-Query-Options` (clamped), or the default.
pub fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',').find_map(|opt| {
                let (k, n) = opt.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("batchSize")
                    .then(|| n.trim().parse::<usize>().ok())?
            })
        })
        .map_or(MAX_BATCH, |n| n.clamp(MIN_BATCH, MAX_BATCH))
}

/// Runs a query and answers its first page, opening a cursor when more pages follow.
pub fn first_page(
    state: &EmulatorState,
    soql_text: &str,
    include_deleted: bool,
    version: &str,
    batch: usize,
) -> Result<Value, QueryError> {
    let out = execute(state, soql_text, include_deleted, version)?;
    if out.is_count {
        return Ok(json!({"totalSize": out.total_size, "done": true, "records": []}));
    }
    let total = out.total_size;
    let records = Arc::new(out.records);
    let cursor = (records.len() > batch).then(|| {
        let id = state.store.ids().next(prefix::QUERY_LOCATOR).to_string();
        let q = state.ext::<QueryState>();
        q.cursors
            .open(id.clone(), records.clone(), batch, state.clock.now());
        id
    });
    Ok(page(&records, total, 0, batch, cursor.as_deref(), version))
}

/// Answers the page behind a `nextRecordsUrl` locator.
pub fn next_page(state: &EmulatorState, locator: &str, version: &str) -> Result<Value, QueryError> {
    let q = state.ext::<QueryState>();
    let at = q
        .cursors
        .follow(locator, state.clock.now())
        .map_err(|_| QueryError::InvalidLocator)?;
    let total = at.records.len();
    Ok(page(
        &at.records,
        total,
        at.offset,
        at.batch_size,
        Some(&at.id),
        version,
    ))
}

/// One page of `records` starting at `offset`.
fn page(
    records: &[Record],
    total: usize,
    offset: usize,
    batch: usize,
    cursor: Option<&str>,
    version: &str,
) -> Value {
    let end = (offset + batch).min(records.len());
    let rows: Vec<Value> = records
        .get(offset..end)
        .unwrap_or_default()
        .iter()
        .map(|r| Value::Object(r.clone()))
        .collect();
    let mut m = serde_json::Map::new();
    m.insert("totalSize".into(), json!(total));
    let done = end >= records.len();
    m.insert("done".into(), json!(done));
    if let (false, Some(id)) = (done, cursor) {
        m.insert(
            "nextRecordsUrl".into(),
            json!(format!("/services/data/v{version}/query/{id}-{end}")),
        );
    }
    m.insert("records".into(), Value::Array(rows));
    Value::Object(m)
}

/// `?q=` of a query request.
#[derive(Debug, Deserialize)]
pub struct QueryParamsQ {
    /// The SOQL text.
    pub q: Option<String>,
}

/// `vNN.N` → `NN.N`.
pub fn version_of(segment: &str) -> &str {
    segment.strip_prefix('v').unwrap_or(segment)
}

/// The routes of this module (merged into the core router under its auth and limit layers).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services/data/{version}/query", get(query_handler))
        .route("/services/data/{version}/queryAll", get(query_all_handler))
        .route(
            "/services/data/{version}/query/{locator}",
            get(more_handler),
        )
        .route(
            "/services/data/{version}/queryAll/{locator}",
            get(more_handler),
        )
}

/// `GET /query?q=`.
async fn query_handler(
    State(state): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
    QueryParams(p): QueryParams<QueryParamsQ>,
) -> Result<Json<Value>, QueryError> {
    run_handler(&state, &version, &headers, p, false).await
}

/// `GET /queryAll?q=`.
async fn query_all_handler(
    State(state): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
    QueryParams(p): QueryParams<QueryParamsQ>,
) -> Result<Json<Value>, QueryError> {
    run_handler(&state, &version, &headers, p, true).await
}

/// Shared body of the two query handlers; the scan runs on the blocking pool.
async fn run_handler(
    state: &AppState,
    version: &str,
    headers: &HeaderMap,
    p: QueryParamsQ,
    include_deleted: bool,
) -> Result<Json<Value>, QueryError> {
    let soql_text =
        p.q.filter(|q| !q.trim().is_empty())
            .ok_or(QueryError::MissingQuery)?;
    let batch = batch_size(headers);
    let version = version_of(version).to_string();
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        first_page(&state, &soql_text, include_deleted, &version, batch)
    })
    .await
    .unwrap_or_else(|e| Err(QueryError::Api(internal_error(&e.to_string()))))
    .map(Json)
}

/// 500 for a query task that panicked (a bug, never the client's input).
fn internal_error(detail: &str) -> ApiError {
    ApiError::new(
        crate::error::ErrorCode::UnknownException,
        format!("An unexpected error occurred: {detail}"),
    )
}

/// `GET /query/{cursorId}-{offset}`.
async fn more_handler(
    State(state): State<AppState>,
    Path((version, locator)): Path<(String, String)>,
) -> Result<Json<Value>, QueryError> {
    next_page(&state, &locator, version_of(&version)).map(Json)
}
