//! Binding, running and stopping the ops HTTP listener.
//!
//! The listener binds **127.0.0.1:9187** unless told otherwise: loopback keeps metrics and
//! status (which names pipelines and their last errors) off the network by default. In a
//! container, where the kubelet probes the pod IP and Prometheus scrapes it, set
//! `PGFORCE_OPS_LISTEN=0.0.0.0:9187` (the Docker image and the Kubernetes manifests do).

use std::io;
use std::net::{AddrParseError, IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::routes::router;
use super::status::Health;

/// The default ops port. Note: postgres_exporter also defaults to 9187; if both run in one
/// network namespace (a sidecar), move one of them.
pub const DEFAULT_PORT: u16 = 9187;
/// The default ops address: loopback only.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT);
/// The environment variable that overrides the configured listen address.
pub const LISTEN_ENV: &str = "PGFORCE_OPS_LISTEN";
/// How long [`OpsServerHandle::shutdown`] waits for open requests before aborting.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the ops server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address is taken or not ours to bind.
    #[error("cannot listen on {addr} for the ops server; is another process using the port? (set {LISTEN_ENV} to move it)")]
    Bind {
        /// The address we tried.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The bound socket would not tell its address.
    #[error("cannot read the ops server's local address")]
    LocalAddr(#[source] io::Error),
    /// A listen address (from the environment or the config) is not `ip:port`.
    #[error("invalid ops listen address {value:?} from {origin}; expected ip:port such as 127.0.0.1:9187 or 0.0.0.0:9187")]
    InvalidAddr {
        /// The text as given.
        value: String,
        /// Where it came from (`PGFORCE_OPS_LISTEN` or `the config`).
        origin: &'static str,
        /// The parse error.
        #[source]
        source: AddrParseError,
    },
    /// Serving failed (accept loop error).
    #[error("the ops server stopped with an error")]
    Serve(#[source] io::Error),
    /// The server task panicked.
    #[error("the ops server task panicked")]
    Panicked(#[source] tokio::task::JoinError),
    /// Open requests outlived the grace period; the task was aborted.
    #[error("the ops server did not stop within {0:?} and was aborted")]
    ShutdownTimeout(Duration),
}

/// Pick the listen address: `PGFORCE_OPS_LISTEN` if set and non-empty, else the configured
/// value, else [`DEFAULT_ADDR`].
pub fn resolve_listen_addr(configured: Option<&str>) -> Result<SocketAddr, ServerError> {
    pick_listen_addr(std::env::var(LISTEN_ENV).ok().as_deref(), configured)
}

/// [`resolve_listen_addr`] with the environment value passed in.
fn pick_listen_addr(
    env: Option<&str>,
    configured: Option<&str>,
) -> Result<SocketAddr, ServerError> {
    let parse = |value: &str, origin: &'static str| {
        value
            .trim()
            .parse()
            .map_err(|source| ServerError::InvalidAddr {
                value: value.to_owned(),
                origin,
                source,
            })
    };
    match (env.filter(|v| !v.trim().is_empty()), configured) {
        (Some(value), _) => parse(value, LISTEN_ENV),
        (None, Some(value)) => parse(value, "the config"),
        (None, None) => Ok(DEFAULT_ADDR),
    }
}

/// The ops HTTP server. See the module docs for routes and binding.
#[derive(Debug)]
pub struct OpsServer;

impl OpsServer {
    /// Bind `addr` (port 0 picks a free port), install the process-wide metrics recorder if
    /// needed, and serve in a background task. Must run inside a Tokio runtime.
    pub async fn start(addr: SocketAddr, health: Health) -> Result<OpsServerHandle, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        Self::start_on(listener, health, crate::metrics::install())
    }

    /// Serve on an already bound listener with the given metrics handle.
    pub fn start_on(
        listener: TcpListener,
        health: Health,
        metrics: PrometheusHandle,
    ) -> Result<OpsServerHandle, ServerError> {
        let local_addr = listener.local_addr().map_err(ServerError::LocalAddr)?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let app = router(health, metrics);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // A dropped sender counts as a stop request too.
                    let _ = stop_rx.await;
                })
                .await
        });
        tracing::info!(addr = %local_addr, "ops server listening");
        Ok(OpsServerHandle {
            local_addr,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }
}

/// A running ops server. Dropping it asks the server to stop without waiting.
#[derive(Debug)]
pub struct OpsServerHandle {
    /// Where the server listens (the real port when bound to port 0).
    local_addr: SocketAddr,
    /// Fires the graceful shutdown; `None` once used.
    stop: Option<oneshot::Sender<()>>,
    /// The serving task; `None` once joined.
    task: Option<JoinHandle<io::Result<()>>>,
}

impl OpsServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop accepting, let open requests finish (up to [`SHUTDOWN_GRACE`]), and wait.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(err))) => Err(ServerError::Serve(err)),
            Ok(Err(err)) => Err(ServerError::Panicked(err)),
            Err(_elapsed) => {
                task.abort();
                Err(ServerError::ShutdownTimeout(SHUTDOWN_GRACE))
            }
        }
    }
}

impl Drop for OpsServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_loopback_9187() {
        assert_eq!(pick_listen_addr(None, None).unwrap(), DEFAULT_ADDR);
        assert_eq!(DEFAULT_ADDR.to_string(), "127.0.0.1:9187");
    }

    #[test]
    fn env_wins_over_config_and_blank_env_is_ignored() {
        let addr = pick_listen_addr(Some("0.0.0.0:9187"), Some("127.0.0.1:1")).unwrap();
        assert_eq!(addr.to_string(), "0.0.0.0:9187");
        let addr = pick_listen_addr(Some(" "), Some("[::1]:9000")).unwrap();
        assert_eq!(addr.to_string(), "[::1]:9000");
    }

    #[test]
    fn bad_address_names_its_origin() {
        let err = pick_listen_addr(None, Some("localhost")).unwrap_err();
        assert!(err.to_string().contains("the config"), "{err}");
        let err = pick_listen_addr(Some("nope"), None).unwrap_err();
        assert!(err.to_string().contains(LISTEN_ENV), "{err}");
    }
}
