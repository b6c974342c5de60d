//! Starting a pipeline's Salesforce → Postgres entries from `pgforce run`: each entry gets
//! its source here (the CDC subscriber or the poller), because the library's inbound
//! module cannot name the subscriber that builds on it.

use std::sync::Arc;

use pgforce::cdc::{CdcSettings, CdcSource};
use pgforce::config::inbound::InboundSource;
use pgforce::config::PipelineConfig;
use pgforce::inbound::{supervise, EntryFuture, InboundError, Runtime};
use pgforce::server::Health;
use tokio::sync::watch;

/// The CDC topic of an object: `/data/OpportunityChangeEvent`, `/data/X__ChangeEvent`.
pub fn cdc_topic(object: &str) -> String {
    match object.strip_suffix("__c") {
        Some(base) => format!("/data/{base}__ChangeEvent"),
        None => format!("/data/{object}ChangeEvent"),
    }
}

fn start_entry(rt: Arc<Runtime>, index: usize, shutdown: watch::Receiver<bool>) -> EntryFuture {
    Box::pin(async move {
        let cfg = &rt.pipeline.inbound[index];
        match cfg.source {
            InboundSource::Poll => {
                rt.entry(index, rt.poll_source(index))
                    .await?
                    .run(shutdown)
                    .await
            }
            InboundSource::Cdc => {
                let settings = CdcSettings {
                    endpoint: rt.pipeline.salesforce.pubsub_endpoint.clone(),
                    topic: cdc_topic(&cfg.object),
                    batch_size: cfg.cdc_batch_size,
                };
                let source = CdcSource::new(settings, rt.client.clone());
                rt.entry(index, source).await?.run(shutdown).await
            }
        }
    })
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn topics() {
        assert_eq!(
            super::cdc_topic("Opportunity"),
            "/data/OpportunityChangeEvent"
        );
        assert_eq!(super::cdc_topic("Invoice__c"), "/data/Invoice__ChangeEvent");
    }
}
