//! The request log: one event per request with method, path (never the query string,
//! which can carry tokens or codes), status and duration, on the `tracing` target
//! [`TARGET`]. Never headers or bodies, so no token, password or record data reaches it.
//! With `logRequests` (config) or `pgforce emulator --log-requests` events are at INFO;
//! otherwise at DEBUG, so `RUST_LOG=pgforce::emulator::requests=debug` turns them on.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::state::AppState;

/// The `tracing` target of request events.
pub const TARGET: &str = "pgforce::emulator::requests";

/// Middleware: times the request and logs its outcome.
pub async fn log_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    if state.config.log_requests {
        tracing::info!(target: TARGET, %method, %path, status, duration_ms, "request");
    } else {
        tracing::debug!(target: TARGET, %method, %path, status, duration_ms, "request");
    }
    resp
}
