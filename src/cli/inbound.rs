//! Starting a pipeline's Salesforce → Postgres entries from `pgforce run`: the library's
//! supervisor with [`pgforce::cdc::entry::start_entry`], which gives each entry its
//! configured source (the CDC subscriber or the poller).

use pgforce::cdc::entry::start_entry;
use pgforce::config::PipelineConfig;
use pgforce::inbound::{supervise, InboundError};
use pgforce::server::Health;
use tokio::sync::watch;

/// Runs the pipeline's inbound entries until shutdown or a permanent error.
pub async fn run_inbound(
    p: PipelineConfig,
    health: Health,
    shutdown: watch::Receiver<bool>,
) -> Result<(), InboundError> {
    let client = pgforce::pipeline::salesforce_client(&p).map_err(|e| InboundError::Corrupt {
        pipeline: p.name.clone(),
        object: "*".into(),
        reason: e.to_string(),
    })?;
    supervise(p, client, health, shutdown, start_entry).await
}
