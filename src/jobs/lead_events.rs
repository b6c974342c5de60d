//! The `lead_created` trigger's Change Data Capture wake-up (`events = "cdc"`): a
//! subscription to `/data/LeadChangeEvent` that wakes the job when a Lead is created, so a
//! new Lead is enriched within seconds instead of at the next poll.
//!
//! It only wakes the job; which Leads a run handles is still decided by the run (its
//! CreatedDate cursor and the record of Leads already enriched), so a lost, doubled or
//! late event costs nothing but latency: the poll stays as the safety net, and a
//! subscription that fails is reopened from the latest position with backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use crate::backoff::RetryPolicy;
use crate::cdc::{CdcSettings, CdcSource};
use crate::config::PipelineConfig;
use crate::inbound::event::{ChangeKind, GapKind, Start};
use crate::inbound::source::ChangeSource;
use crate::salesforce::SalesforceClient;

/// The Lead change-event topic.
pub const LEAD_TOPIC: &str = "/data/LeadChangeEvent";

/// How long the first run waits for the subscription to open before it goes ahead (a
/// Lead created meanwhile is found by the poll).
const OPEN_WAIT: Duration = Duration::from_secs(30);

/// A live subscription that wakes one job. Dropping it ends the subscription.
pub(super) struct LeadEvents {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl LeadEvents {
    /// Subscribes from the latest position and returns once the stream is open (or after
    /// [`OPEN_WAIT`]), so a Lead created after the job's first run starts wakes it.
    pub(super) async fn subscribe(
        pipeline: &PipelineConfig,
        client: SalesforceClient,
        job: &str,
    ) -> LeadEvents {
        let settings = CdcSettings {
            endpoint: pipeline.salesforce.pubsub_endpoint.clone(),
            topic: LEAD_TOPIC.into(),
            batch_size: 100,
        };
        let wake = Arc::new(Notify::new());
        let (opened, open_rx) = oneshot::channel();
        let ctx = Subscriber {
            pipeline: pipeline.name.clone(),
            job: job.to_string(),
            settings,
            client,
            wake: wake.clone(),
        };
        let task = tokio::spawn(ctx.run(opened));
        let _ = tokio::time::timeout(OPEN_WAIT, open_rx).await;
        LeadEvents { wake, task }
    }

    /// Waits for a Lead event or `fallback`, whichever comes first.
    pub(super) async fn wait(&self, fallback: Duration) {
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(fallback) => {}
        }
    }
}

impl Drop for LeadEvents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Subscriber {
    pipeline: String,
    job: String,
    settings: CdcSettings,
    client: SalesforceClient,
    wake: Arc<Notify>,
}

impl Subscriber {
    /// Subscribe, wake on every batch that may hold a new Lead, reopen on failure.
    async fn run(self, opened: oneshot::Sender<()>) {
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            ..RetryPolicy::default()
        };
        let mut opened = Some(opened);
        let mut retry = 0;
        loop {
            let mut source = CdcSource::new(self.settings.clone(), self.client.clone());
            let error = match source.start(Start::Latest).await {
                Ok(()) => {
                    if let Some(tx) = opened.take() {
                        let _ = tx.send(());
                    }
                    retry = 0;
                    self.forward(&mut source).await
                }
                Err(e) => e,
            };
            retry += 1;
            tracing::warn!(pipeline = %self.pipeline, job = %self.job, error = %error,
                "Lead change events unavailable; polling until the subscription reopens");
            tokio::time::sleep(policy.delay(retry)).await;
        }
    }

    /// Notify on each batch with a creation (or a gap that may hide one) until an error.
    async fn forward(&self, source: &mut CdcSource) -> crate::inbound::source::SourceError {
        loop {
            match source.next_batch().await {
                Ok(batch) if batch.events.iter().any(|e| may_create(e.kind)) => {
                    self.wake.notify_one();
                }
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    }
}

/// An event kind that is, or may hide, a Lead creation.
fn may_create(kind: ChangeKind) -> bool {
    matches!(
        kind,
        ChangeKind::Create
            | ChangeKind::Undelete
            | ChangeKind::Gap(GapKind::Create)
            | ChangeKind::Gap(GapKind::Undelete)
            | ChangeKind::GapOverflow
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_and_gaps_wake_updates_do_not() {
        assert!(may_create(ChangeKind::Create));
        assert!(may_create(ChangeKind::GapOverflow));
        assert!(may_create(ChangeKind::Gap(GapKind::Create)));
        assert!(!may_create(ChangeKind::Update));
        assert!(!may_create(ChangeKind::Delete));
    }
}
