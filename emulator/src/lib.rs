//! The Salesforce-compatible server: REST, SOQL, sObject Collections, Composite, Bulk API
//! 2.0, OAuth and limits, in memory. It speaks Salesforce's wire formats so real clients
//! (simple-salesforce, pgforce's own client) run against it unchanged.
//!
//! # Layout
//! - [`ids`]: 15/18-char ids, key prefixes, checksum, generator.
//! - [`schema`]: object/field definitions (describe), the built-in objects (embedded schema
//!   files in `emulator/schema/`), user schema files.
//! - [`validation`]: value normalization and Salesforce's field errors.
//! - [`store`]: the record store (see its docs for the record contract); [`row`]: the
//!   sparse stored form of one record.
//! - [`error`]: error codes, [`error::FieldError`], [`error::ApiError`].
//! - [`state`]: [`state::EmulatorState`], shared by all handlers as [`state::AppState`].
//! - [`session`]: sessions and the token table every API authenticates against;
//!   [`context`]: the request context of a data call (API version, caller, transaction).
//! - [`auth`]: OAuth token endpoint, revocation, identity; [`oauth_web`]: authorize/consent and userinfo;
//!   [`soap`]: the SOAP partner `login`/`getUserInfo`; [`limits`]: allocations and stats;
//!   [`faults`]: fault injection; [`admin`]: `/__emulator/*`; [`rest`]: the REST API.
//! - [`latency`]: the latency profiles (`instant`, `realistic`) and the delays they add.
//! - [`server`]: router, middleware, listener; [`request_log`]: per-request log events; [`header_case`]: HTTP/1.1 header spellings.
//! - [`txn`]: write transactions (who, which API, which changes commit together).
//! - [`cdc`]: Change Data Capture (change-event schemas, Avro payloads, the event log);
//!   [`pubsub`]: the Pub/Sub API gRPC service on its own port.
//!
//! # Adding an endpoint area
//! An area is a module with `pub fn routes() -> Router<AppState>` whose paths are complete
//! (`/services/data/{version}/query`). Merge it into the `data` router in
//! [`server::router`]; it then gets, for free: fault injection, statistics, the version check
//! (handlers read `Extension<context::ApiVersion>`), the session check (`Extension<context::AuthContext>`,
//! whose `session.user_id` is the acting user for store writes), the daily API limit, and the
//! `Sforce-Limit-Info` header. Errors are returned as [`error::ApiError`] (REST array with
//! `errorCode`); per-record results use [`error::FieldError::to_result_json`] (`statusCode`).
//! Module-private state lives in [`state::EmulatorState::ext`].

pub mod admin;
pub mod auth;
pub mod clock;
pub mod config;
pub mod context;
pub mod error;
pub mod faults;
pub mod header_case;
pub mod ids;
pub mod latency;
pub mod limits;
pub mod oauth_web;
pub mod request_log;
pub mod rest;
pub mod row;
pub mod schema;
pub mod server;
pub mod session;
pub mod snapshot;
pub mod soap;
pub mod soql;
pub mod state;
pub mod store;
pub mod validation;

pub mod bulk;
pub mod cdc;
pub mod collections;
pub mod composite;
pub mod pubsub;
pub mod query;
pub mod txn;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{EmulatorConfig, OAuthWebConfig};
pub use faults::{FaultKind, FaultSpec};
pub use latency::{Delay, LatencyProfile, ProfileName, Sleeper};
pub use state::{AppState, EmulatorState};

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The address could not be bound.
    #[error("cannot bind emulator to {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The config is invalid.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// The snapshot could not be loaded.
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    /// The Pub/Sub address could not be bound.
    #[error("cannot bind the emulator's Pub/Sub API to {addr}: {source}")]
    BindPubSub {
        /// Requested address.
        addr: SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// The Pub/Sub address for an HTTP address: the configured one, else the HTTP port + 1 (a
/// free port when the HTTP port was 0).
fn pubsub_addr(config: &EmulatorConfig, http: SocketAddr) -> SocketAddr {
    config.pubsub.listen.unwrap_or_else(|| {
        let port = match http.port() {
            0 => 0,
            p => p.saturating_add(1),
        };
        SocketAddr::new(http.ip(), port)
    })
}

/// Entry point: `Emulator::start(config, addr)`.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Binds `addr` (port 0 picks a free port), loads the snapshot if configured and present,
    /// and serves until the handle is shut down or dropped.
    pub async fn start(
        config: EmulatorConfig,
        addr: SocketAddr,
    ) -> Result<EmulatorHandle, EmulatorError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let base_url = format!("http://{local}");
        let grpc_addr = pubsub_addr(&config, addr);
        let grpc_listener =
            TcpListener::bind(grpc_addr)
                .await
                .map_err(|source| EmulatorError::BindPubSub {
                    addr: grpc_addr,
                    source,
                })?;
        let grpc_local =
            grpc_listener
                .local_addr()
                .map_err(|source| EmulatorError::BindPubSub {
                    addr: grpc_addr,
                    source,
                })?;
        let state = Arc::new(EmulatorState::new(config, base_url.clone())?);
        if let Some(path) = state.config.snapshot_file.as_ref().filter(|p| p.exists()) {
            let n = snapshot::load(&state.store, path)?;
            tracing::info!(records = n, path = %path.display(), "emulator snapshot loaded");
        }
        let (tx, rx) = oneshot::channel();
        let task = server::spawn(listener, server::router(state.clone()), rx);
        let (grpc_tx, grpc_rx) = oneshot::channel();
        let grpc_task = pubsub::spawn(grpc_listener, state.clone(), grpc_rx);
        tracing::info!(%base_url, pubsub = %grpc_local, "salesforce emulator listening");
        Ok(EmulatorHandle {
            addr: local,
            base_url,
            pubsub_addr: grpc_local,
            state,
            shutdown: Some(tx),
            task: Some(task),
            pubsub_shutdown: Some(grpc_tx),
            pubsub_task: Some(grpc_task),
        })
    }
}

/// A running emulator. Dropping it stops the server (and saves the snapshot if configured).
#[derive(Debug)]
pub struct EmulatorHandle {
    addr: SocketAddr,
    base_url: String,
    pubsub_addr: SocketAddr,
    state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    pubsub_shutdown: Option<oneshot::Sender<()>>,
    pubsub_task: Option<JoinHandle<()>>,
}

impl EmulatorHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (the `instance_url` of issued tokens).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound Pub/Sub API (gRPC, plain-text HTTP/2) address.
    pub fn pubsub_addr(&self) -> SocketAddr {
        self.pubsub_addr
    }

    /// `http://127.0.0.1:PORT` of the Pub/Sub API (a gRPC client's endpoint).
    pub fn pubsub_url(&self) -> String {
        format!("http://{}", self.pubsub_addr)
    }

    /// The org id (18 chars), the Pub/Sub `tenantid`.
    pub fn org_id(&self) -> String {
        self.state.org_id.to_string()
    }

    /// Change Data Capture: retention, expiry, schemas, the event log.
    pub fn cdc(&self) -> &Arc<cdc::Cdc> {
        &self.state.cdc
    }

    /// The shared state (store, schema, limits, stats, ...).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Issues an access token for `username` without an OAuth round trip (tests, benches).
    pub fn issue_token(&self, username: &str) -> Option<String> {
        let user = self.state.user(username)?;
        Some(session::issue_access_token(&self.state, user.id, &user.username, None).0)
    }

    /// Issues an access token for the first configured user.
    pub fn issue_default_token(&self) -> Option<String> {
        let user = self.state.default_user()?;
        Some(session::issue_access_token(&self.state, user.id, &user.username, None).0)
    }

    /// Issues a refresh token for `username` and app `client_id`.
    pub fn issue_refresh_token(&self, username: &str, client_id: &str) -> Option<String> {
        let user = self.state.user(username)?;
        Some(session::issue_refresh_token(
            &self.state,
            user.id,
            &user.username,
            client_id,
        ))
    }

    /// Installs a fault; returns its id.
    pub fn add_fault(&self, spec: FaultSpec) -> u64 {
        self.state.faults.add(spec)
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// Invalidates every access token now.
    pub fn expire_tokens(&self) {
        self.state.tokens.expire_all();
    }

    /// Replaces the timer the latency profile's delays go through (tests: record them, or hold
    /// a Bulk job in a state) without measuring time.
    pub fn set_sleeper(&self, sleeper: Arc<dyn Sleeper>) {
        self.state.latency.set_sleeper(sleeper);
    }

    /// Moves the emulator clock (token expiry, replication windows, limit days).
    pub fn advance_clock(&self, by: chrono::Duration) {
        self.state.clock.advance(by);
    }

    /// Stops serving, waits for the server task, and saves the snapshot if configured.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.pubsub_shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.pubsub_task.take() {
            // Open subscriptions never end on their own: stop the listener outright.
            task.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        self.save_snapshot();
    }

    fn save_snapshot(&self) {
        if let Some(path) = &self.state.config.snapshot_file {
            match snapshot::save(&self.state.store, path) {
                Ok(()) => tracing::info!(path = %path.display(), "emulator snapshot saved"),
                Err(e) => tracing::error!(error = %e, "emulator snapshot not saved"),
            }
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(task) = self.pubsub_task.take() {
            task.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
            if let Some(task) = self.task.take() {
                task.abort();
            }
            self.save_snapshot();
        }
    }
}
