//! Starting one inbound entry with the source its config names: the Pub/Sub subscriber
//! for `source = "cdc"`, the poller for `source = "poll"`. It lives here, above both
//! sources, because [`crate::inbound`] cannot name the subscriber that builds on it; the
//! binary's `pgforce run` and the integration tests start entries through
//! [`start_entry`], so both run the same wiring. A CDC entry's status shows
//! `reconnecting` (not ready) while its stream is lost.

use std::sync::Arc;

use tokio::sync::watch;

use super::{CdcSettings, CdcSource};
use crate::config::inbound::{InboundConfig, InboundSource};
use crate::inbound::status::EntryStatus;
use crate::inbound::{EntryFuture, Runtime};

/// The CDC topic of an object: `/data/OpportunityChangeEvent`, `/data/X__ChangeEvent`.
pub fn cdc_topic(object: &str) -> String {
    match object.strip_suffix("__c") {
        Some(base) => format!("/data/{base}__ChangeEvent"),
        None => format!("/data/{object}ChangeEvent"),
    }
}

/// The subscriber settings of a `source = "cdc"` entry.
pub fn cdc_settings(pubsub_endpoint: &str, entry: &InboundConfig) -> CdcSettings {
    CdcSettings {
        endpoint: pubsub_endpoint.to_string(),
        topic: cdc_topic(&entry.object),
        batch_size: entry.cdc_batch_size,
    }
}

/// Builds entry `index` of `rt`'s pipeline with its configured source and runs it until
/// `shutdown` (the `start_entry` argument of [`crate::inbound::supervise`]).
pub fn start_entry(rt: Arc<Runtime>, index: usize, shutdown: watch::Receiver<bool>) -> EntryFuture {
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
                let settings = cdc_settings(&rt.pipeline.salesforce.pubsub_endpoint, cfg);
                let status =
                    EntryStatus::new(rt.health.clone(), &rt.pipeline.name, &cfg.object, index);
                let source = CdcSource::new(settings, rt.client.clone())
                    .with_connection_hook(Box::new(move |lost| status.set_reconnecting(lost)));
                rt.entry(index, source).await?.run(shutdown).await
            }
        }
    })
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
