//! `/__emulator/*`: the emulator's own control endpoints (no auth, no faults, not counted):
//! faults, statistics, direct token issue, clock, limits and snapshot.
//!
//! - `GET|POST|DELETE /__emulator/faults`, `DELETE /__emulator/faults/{id}`
//! - `GET|DELETE /__emulator/stats`
//! - `POST /__emulator/token` `{"username": "..."}` (default user when absent)
//! - `POST /__emulator/expire-tokens`
//! - `POST /__emulator/clock` `{"advanceSecs": 3600}`
//! - `PUT /__emulator/limits` `{"dailyApiLimit": 100, "used": 99}`
//! - `POST /__emulator/snapshot` (save now)
//! - `GET /__emulator/cdc` (event log position and size)
//! - `PUT /__emulator/cdc/retention` `{"secs": 60}` (shrink or grow retention; prunes now)
//! - `POST /__emulator/cdc/expire` (drop every retained event: their replay ids expire)
//! - `PUT /__emulator/cdc/overflow` `{"threshold": 10}` (changes per transaction before
//!   `GAP_OVERFLOW`)
//! - `POST /__emulator/undelete/{id}` (restore a soft-deleted record, as the user of the
//!   body's `username` or the default user; publishes an UNDELETE change event)

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::faults::FaultSpec;
use super::session;
use super::state::AppState;

/// The admin routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/__emulator/faults",
            get(list_faults).post(add_faults).delete(clear_faults),
        )
        .route("/__emulator/faults/{id}", delete(remove_fault))
        .route("/__emulator/stats", get(stats).delete(reset_stats))
        .route("/__emulator/token", post(token))
        .route("/__emulator/expire-tokens", post(expire_tokens))
        .route("/__emulator/clock", post(clock))
        .route("/__emulator/limits", put(limits))
        .route("/__emulator/snapshot", post(snapshot))
        .route("/__emulator/cdc", get(cdc_info))
        .route("/__emulator/cdc/retention", put(cdc_retention))
        .route("/__emulator/cdc/expire", post(cdc_expire))
        .route("/__emulator/cdc/overflow", put(cdc_overflow))
        .route("/__emulator/undelete/{id}", post(undelete))
}

async fn cdc_info(State(state): State<AppState>) -> Json<Value> {
    let log = &state.cdc.log;
    Json(
        json!({"latestReplay": log.latest(), "earliestCursor": log.earliest_cursor(),
                "retained": log.len()}),
    )
}

#[derive(Debug, Deserialize)]
struct RetentionRequest {
    secs: u64,
}

async fn cdc_retention(State(state): State<AppState>, body: Bytes) -> Response {
    match serde_json::from_slice::<RetentionRequest>(&body) {
        Ok(r) => {
            state.cdc.set_retention(r.secs);
            cdc_info(State(state)).await.into_response()
        }
        Err(e) => ApiError::json_parser(e.to_string()).into_response(),
    }
}

async fn cdc_expire(State(state): State<AppState>) -> StatusCode {
    state.cdc.expire_all();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
struct OverflowRequest {
    threshold: usize,
}

async fn cdc_overflow(State(state): State<AppState>, body: Bytes) -> Response {
    match serde_json::from_slice::<OverflowRequest>(&body) {
        Ok(r) => {
            state.cdc.set_overflow_threshold(r.threshold);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => ApiError::json_parser(e.to_string()).into_response(),
    }
}

async fn undelete(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let req: TokenRequest = serde_json::from_slice(&body).unwrap_or_default();
    let user = match &req.username {
        Some(u) => state.user(u),
        None => state.default_user(),
    };
    let (Some(user), Ok(id)) = (user, super::ids::Id::parse(&id)) else {
        return ApiError::not_found().into_response();
    };
    let origin = super::txn::change_origin("soap", "60.0", None);
    let txn = super::txn::Txn::new(
        state.store.change_sink(),
        super::txn::TxnInfo::new(origin, user.id),
    );
    let result = state.store.undelete(&id, txn.writer());
    txn.commit();
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::new(e.code, e.message).into_response(),
    }
}

async fn list_faults(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.faults.list()))
}

async fn add_faults(State(state): State<AppState>, body: Bytes) -> Response {
    let specs: Vec<FaultSpec> = match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Array(_)) => match serde_json::from_value(v) {
            Ok(s) => s,
            Err(e) => return ApiError::json_parser(e.to_string()).into_response(),
        },
        Ok(v) => match serde_json::from_value(v) {
            Ok(s) => vec![s],
            Err(e) => return ApiError::json_parser(e.to_string()).into_response(),
        },
        Err(e) => return ApiError::json_parser(e.to_string()).into_response(),
    };
    let ids: Vec<u64> = specs.into_iter().map(|s| state.faults.add(s)).collect();
    (StatusCode::CREATED, Json(json!({"ids": ids}))).into_response()
}

async fn clear_faults(State(state): State<AppState>) -> StatusCode {
    state.faults.clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(state): State<AppState>, Path(id): Path<u64>) -> StatusCode {
    if state.faults.remove(id) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn stats(State(state): State<AppState>) -> Json<Value> {
    let mut v = state.stats.json();
    let (used, max) = state.limits.api_requests.usage();
    if let Value::Object(m) = &mut v {
        m.insert("dailyApiRequests".into(), json!({"used": used, "max": max}));
    }
    Json(v)
}

async fn reset_stats(State(state): State<AppState>) -> StatusCode {
    state.stats.reset();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Default, Deserialize)]
struct TokenRequest {
    username: Option<String>,
}

async fn token(State(state): State<AppState>, body: Bytes) -> Response {
    let req: TokenRequest = serde_json::from_slice(&body).unwrap_or_default();
    let user = match &req.username {
        Some(u) => state.user(u),
        None => state.default_user(),
    };
    let Some(user) = user else {
        return ApiError::not_found().into_response();
    };
    let (token, _) = session::issue_access_token(&state, user.id, &user.username, None);
    Json(
        json!({"access_token": token, "instance_url": state.base_url, "token_type": "Bearer",
                "id": state.identity_url(&user.id)}),
    )
    .into_response()
}

async fn expire_tokens(State(state): State<AppState>) -> StatusCode {
    state.tokens.expire_all();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClockRequest {
    advance_secs: i64,
}

async fn clock(State(state): State<AppState>, body: Bytes) -> Response {
    match serde_json::from_slice::<ClockRequest>(&body) {
        Ok(r) => {
            state
                .clock
                .advance(chrono::Duration::seconds(r.advance_secs));
            Json(json!({"now": super::validation::format_datetime(state.clock.now())}))
                .into_response()
        }
        Err(e) => ApiError::json_parser(e.to_string()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LimitsRequest {
    daily_api_limit: Option<u64>,
    used: Option<u64>,
}

async fn limits(State(state): State<AppState>, body: Bytes) -> Response {
    match serde_json::from_slice::<LimitsRequest>(&body) {
        Ok(r) => {
            if let Some(max) = r.daily_api_limit {
                state.limits.api_requests.set_max(max);
            }
            if let Some(used) = r.used {
                state.limits.api_requests.set_used(used);
            }
            Json(state.limits.json()).into_response()
        }
        Err(e) => ApiError::json_parser(e.to_string()).into_response(),
    }
}

async fn snapshot(State(state): State<AppState>) -> Response {
    let Some(path) = state.config.snapshot_file.clone() else {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "no snapshotFile configured"})),
        )
            .into_response();
    };
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || super::snapshot::save(&store, &path)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}
