//! Change Data Capture over Salesforce's Pub/Sub API (gRPC, package `eventbus.v1`): a
//! subscriber for one topic that decodes each event's Avro payload and header bitmaps into
//! [`crate::inbound::event::InboundEvent`]s and implements
//! [`crate::inbound::source::ChangeSource`].
//!
//! This file is the seam the inbound engine codes against; the subscriber itself is
//! being built (until then [`CdcSource`] reports that it is unavailable).

use crate::inbound::event::{Position, SourceBatch, Start};
use crate::inbound::source::{ChangeSource, SourceError};
use crate::salesforce::client::SalesforceClient;

/// Where and what to subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdcSettings {
    /// The Pub/Sub API endpoint, e.g. `https://api.pubsub.salesforce.com:7443`; plain
    /// `http://` only on loopback (the emulator).
    pub endpoint: String,
    /// The topic, e.g. `/data/OpportunityChangeEvent` or `/data/Invoice__ChangeEvent`.
    pub topic: String,
    /// Events asked for per FetchRequest (1–100).
    pub batch_size: i32,
}

/// A subscription to one CDC topic.
pub struct CdcSource {
    settings: CdcSettings,
    #[allow(dead_code)]
    client: SalesforceClient,
}

impl CdcSource {
    /// A source for `settings`, authenticating with `client`'s session (access token,
    /// instance URL and org id go in the gRPC metadata). Connects lazily.
    pub fn new(settings: CdcSettings, client: SalesforceClient) -> CdcSource {
        CdcSource { settings, client }
    }

    fn unavailable(&self) -> SourceError {
        SourceError::Permanent {
            topic: self.settings.topic.clone(),
            reason: "the Pub/Sub subscriber is not built yet".into(),
        }
    }
}

impl ChangeSource for CdcSource {
    async fn tip(&mut self) -> Result<Position, SourceError> {
        Err(self.unavailable())
    }

    async fn start(&mut self, _start: Start) -> Result<(), SourceError> {
        Err(self.unavailable())
    }

    async fn next_batch(&mut self) -> Result<SourceBatch, SourceError> {
        Err(self.unavailable())
    }
}
