//! The Pub/Sub API (`eventbus.v1`, generated from the real `pubsub_api.proto`) over gRPC on
//! its own port, as Salesforce serves it on `api.pubsub.salesforce.com:7443` (plain-text
//! HTTP/2 here). It serves Change Data Capture topics: GetTopic, GetSchema, Subscribe;
//! Publish / PublishStream refuse CDC topics; ManagedSubscribe is unimplemented.
//!
//! - [`proto`]: the generated messages, server and client (tests use the client).
//! - [`errors`]: `Status` values with Salesforce's `error-code` trailer and `rpcId:`.
//! - [`auth`]: the `accesstoken` / `instanceurl` / `tenantid` metadata check.
//! - [`service`]: the unary RPCs; [`subscribe`]: the Subscribe stream (flow control,
//!   replay presets, keepalive, stream faults).

pub mod auth;
pub mod errors;
pub mod service;
pub mod subscribe;

/// The generated `eventbus.v1` messages, `pub_sub_server` and `pub_sub_client`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("eventbus.v1");
}

use std::time::Duration;

use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::state::AppState;

/// Pub/Sub settings (`pubsub` in the emulator config, with the CDC settings).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PubSubConfig {
    /// Listen address; absent: the HTTP address with port + 1 (any free port when the
    /// HTTP port is 0).
    pub listen: Option<std::net::SocketAddr>,
    /// Idle time before an empty keepalive `FetchResponse`, ms (Salesforce: within 270 s).
    pub keepalive_ms: u64,
    /// How long events are kept, seconds (Salesforce: 72 hours).
    pub retention_secs: u64,
    /// Changes of one transaction published in full before `GAP_OVERFLOW` takes over.
    pub overflow_threshold: usize,
}

impl Default for PubSubConfig {
    fn default() -> Self {
        let cdc = crate::cdc::CdcConfig::default();
        PubSubConfig {
            listen: None,
            keepalive_ms: 60_000,
            retention_secs: cdc.retention_secs,
            overflow_threshold: cdc.overflow_threshold,
        }
    }
}

impl PubSubConfig {
    /// The Change Data Capture part.
    pub fn cdc(&self) -> crate::cdc::CdcConfig {
        crate::cdc::CdcConfig {
            retention_secs: self.retention_secs,
            overflow_threshold: self.overflow_threshold,
        }
    }

    /// The keepalive interval.
    pub fn keepalive(&self) -> Duration {
        Duration::from_millis(self.keepalive_ms.max(1))
    }
}

/// Serves the Pub/Sub API on `listener` until `shutdown` fires.
pub fn spawn(
    listener: TcpListener,
    state: AppState,
    shutdown: oneshot::Receiver<()>,
) -> JoinHandle<()> {
    let service = proto::pub_sub_server::PubSubServer::new(service::PubSubService::new(state));
    tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = shutdown.await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "pub/sub server ended with an error");
        }
    })
}
