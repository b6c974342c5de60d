//! describeGlobal (`GET /sobjects`), object info (`GET /sobjects/X`) and describe
//! (`GET /sobjects/X/describe`, honouring `If-Modified-Since`).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{object_or_404, render_record};
use crate::context::ApiVersion;
use crate::error::ApiError;
use crate::state::AppState;

/// Describe routes that do not share a path with record routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/services/data/{version}/sobjects", get(describe_global))
        .route(
            "/services/data/{version}/sobjects/{object}/describe",
            get(describe),
        )
}

/// Path of an object-level resource.
#[derive(Debug, Deserialize)]
pub(super) struct ObjectPath {
    pub(super) object: String,
}

async fn describe_global(
    State(state): State<AppState>,
    Extension(v): Extension<ApiVersion>,
) -> Json<Value> {
    let n = v.number();
    let objects: Vec<Value> = state
        .schema
        .objects()
        .iter()
        .map(|o| o.describe_global_entry(&n))
        .collect();
    Json(json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objects}))
}

/// `GET /sobjects/X`: `objectDescribe` and up to 5 recent records.
pub(super) async fn object_info(
    State(state): State<AppState>,
    Extension(v): Extension<ApiVersion>,
    Path(p): Path<ObjectPath>,
) -> Result<Json<Value>, ApiError> {
    let object = object_or_404(&state, &p.object)?;
    let recent = state.store.recent(&object.name, 5).unwrap_or_default();
    let name_field = object.name_field().map(|f| f.name.clone());
    let fields: Vec<String> = std::iter::once("Id".to_string())
        .chain(name_field)
        .collect();
    let items: Vec<Value> = recent
        .iter()
        .map(|r| render_record(object, r, v, Some(&fields)))
        .collect();
    Ok(Json(
        json!({"objectDescribe": object.object_describe(&v.number()), "recentItems": items}),
    ))
}

async fn describe(
    State(state): State<AppState>,
    Extension(v): Extension<ApiVersion>,
    Path(p): Path<ObjectPath>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let object = object_or_404(&state, &p.object)?;
    let last_modified = state.started_at;
    if not_modified_since(&headers, last_modified) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let mut resp = Json(object.describe(&v.number())).into_response();
    let lm = last_modified
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Ok(h) = HeaderValue::from_str(&lm) {
        resp.headers_mut().insert(header::LAST_MODIFIED, h);
    }
    Ok(resp)
}

/// True if `If-Modified-Since` is at or after `last_modified` (second precision).
fn not_modified_since(headers: &HeaderMap, last_modified: DateTime<Utc>) -> bool {
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| DateTime::parse_from_rfc2822(s).ok())
        .is_some_and(|since| since.timestamp() >= last_modified.timestamp())
}
