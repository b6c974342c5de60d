//! The ops HTTP server: `/metrics` (Prometheus text), `/healthz` (liveness), `/readyz`
//! (readiness from the pipelines' published status) and `/status` (JSON snapshot for
//! `pgforce status`). Binds 127.0.0.1:9187 by default; see [`listener`] for overrides.
//!
//! Pipelines publish a [`PipelineStatus`] into a shared [`Health`] registry; the server only
//! reads it. The server owns no pipeline state, so on shutdown it is simply stopped.

pub mod listener;
pub mod routes;
pub mod status;

pub use listener::{
    resolve_listen_addr, OpsServer, OpsServerHandle, ServerError, DEFAULT_ADDR, DEFAULT_PORT,
    LISTEN_ENV,
};
pub use routes::{
    router, HEALTHZ_PATH, METRICS_PATH, PATHS, PROMETHEUS_CONTENT_TYPE, READYZ_PATH, STATUS_PATH,
};
pub use status::{
    Health, InboundEntryStatus, InboundState, JobEntryStatus, NotReadyReason, ParkedReason,
    PipelineReadiness, PipelineState, PipelineStatus, Readiness, StatusReport, StuckDeadLetter,
    MAX_ERROR_LEN,
};
