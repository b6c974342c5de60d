//! The ops routes: `/metrics`, `/healthz`, `/readyz` and `/status`, as an axum [`Router`].

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;

use super::status::Health;

/// Prometheus text exposition of every `pgforce_*` metric.
pub const METRICS_PATH: &str = "/metrics";
/// Liveness: 200 `ok` while the process serves HTTP.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Readiness: 200 when every registered pipeline is ready, else 503; JSON body either way.
pub const READYZ_PATH: &str = "/readyz";
/// Per-pipeline status snapshot as JSON (what `pgforce status` reads).
pub const STATUS_PATH: &str = "/status";
/// Every path the ops server answers, for manifests and tests to check against.
pub const PATHS: &[&str] = &[METRICS_PATH, HEALTHZ_PATH, READYZ_PATH, STATUS_PATH];

/// The content type of the Prometheus text format, version 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What every handler can reach: the registry and the metrics handle.
#[derive(Clone)]
struct OpsState {
    /// Pipeline statuses.
    health: Health,
    /// Renders the process-wide Prometheus recorder.
    metrics: PrometheusHandle,
}

/// The ops router with all four routes; no listener attached. Useful to embed or to test
/// with `tower::ServiceExt::oneshot`.
pub fn router(health: Health, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route(METRICS_PATH, get(metrics_handler))
        .route(HEALTHZ_PATH, get(healthz))
        .route(READYZ_PATH, get(readyz))
        .route(STATUS_PATH, get(status))
        .with_state(OpsState { health, metrics })
}

/// `GET /metrics`: the Prometheus text rendering.
async fn metrics_handler(State(state): State<OpsState>) -> Response {
    let body = state.metrics.render();
    ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], body).into_response()
}

/// `GET /healthz`: the process is alive and its runtime answers.
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 or 503 with the per-pipeline reasons.
async fn readyz(State(state): State<OpsState>) -> Response {
    let readiness = state.health.readiness();
    let code = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(readiness)).into_response()
}

/// `GET /status`: every pipeline's snapshot.
async fn status(State(state): State<OpsState>) -> Response {
    Json(state.health.report()).into_response()
}
