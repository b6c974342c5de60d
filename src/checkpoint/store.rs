//! [`StateStore`]: typed access to one pipeline's state schema over one ordinary Postgres
//! session. This file owns the session (connecting, migrating on open); each kind of state
//! has its own file: [`progress`](super::progress), [`inflight`](super::inflight),
//! [`id_map`](super::id_map), [`dead_letters`](super::dead_letters),
//! [`parked`](super::parked), [`lock`](super::lock).

use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::Client;

use super::error::StateError;
use super::schema::quote_ident;

/// Typed access to one pipeline's state.
pub struct StateStore {
    pub(super) client: Mutex<Client>,
    pub(super) schema: String,
    pub(super) pipeline: String,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("schema", &self.schema)
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// Connect (TLS per the conninfo's `sslmode`, see [`crate::pgconn`]) and bring the
    /// schema up to date.
    pub async fn connect(conninfo: &str, schema: &str, pipeline: &str) -> Result<Self, StateError> {
        let (client, conn) = crate::pgconn::connect(conninfo)
            .await
            .map_err(StateError::Connect)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "state store connection closed");
            }
        });
        Self::from_client(client, schema, pipeline).await
    }

    /// Use an existing session; runs the migrations.
    pub async fn from_client(
        client: Client,
        schema: &str,
        pipeline: &str,
    ) -> Result<Self, StateError> {
        let store = StateStore {
            client: Mutex::new(client),
            schema: quote_ident(schema),
            pipeline: pipeline.to_string(),
        };
        store.migrate(schema).await?;
        Ok(store)
    }

    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// The quoted schema name, for callers that build their own queries.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The store's session, for SQL that must run in it: the write-back runs under the
    /// replication origin this session is marked with (see `sink::writeback`).
    pub(crate) async fn session(&self) -> MutexGuard<'_, Client> {
        self.client.lock().await
    }
}
