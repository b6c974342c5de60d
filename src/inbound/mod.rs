//! Salesforce → Postgres: change events from Salesforce (Change Data Capture over the
//! Pub/Sub API, or polling) applied to Postgres tables, exactly once.
//!
//! The seam every part of this direction meets at is here: [`event::InboundEvent`] (one
//! Salesforce change, already decoded from Avro or read from SOQL, in REST JSON field
//! formats) and [`source::ChangeSource`] (an ordered stream of them with a resumable
//! [`event::Position`]). The CDC subscriber (`crate::cdc`) and the poller ([`poll`])
//! implement the source; the applier ([`apply`]) consumes it and stores the position in
//! the same Postgres transaction as the rows it wrote ([`position`]).
//!
//! One pipeline's inbound entries share one [`Runtime`]: a state-store session marked
//! with the pipeline's inbound replication origin, `<replication_origin>_inbound` (its
//! own, since Postgres lets one session hold an origin at a time and the write-back
//! session holds `replication_origin`; the Postgres → Salesforce decoder skips both, so
//! it never sends these rows back) and the Salesforce client. [`supervise`] runs them as a group and
//! restarts the group after retryable failures with the one backoff helper; each restart
//! resumes every entry from its stored position. The binary chooses each entry's source
//! (this module cannot name the CDC subscriber, which builds on it).
//!
//! Files: [`engine`] (one entry's life: load, stream, resolve, resync), [`apply`],
//! [`convert`] (values → column input), [`record`] (SOQL records → events), [`poll`],
//! [`position`], [`ddl`] (`pgforce schema`), [`status`], [`error`].

pub mod apply;
pub mod convert;
pub mod ddl;
pub mod engine;
pub mod error;
pub mod event;
pub mod poll;
pub mod position;
pub mod record;
pub mod source;
pub mod status;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::backoff::RetryPolicy;
use crate::checkpoint::{quote_ident, StateStore};
use crate::config::PipelineConfig;
use crate::error_class::Classify;
use crate::salesforce::SalesforceClient;
use crate::server::{Health, PipelineState};

pub use error::InboundError;

/// What one pipeline's inbound entries share.
pub struct Runtime {
    pub pipeline: PipelineConfig,
    pub client: SalesforceClient,
    pub state: Arc<StateStore>,
    pub health: Health,
}

impl Runtime {
    /// Connects the state store (migrating it) and marks its session with the
    /// pipeline's inbound replication origin ([`PipelineConfig::inbound_origin`]).
    pub async fn connect(
        pipeline: PipelineConfig,
        client: SalesforceClient,
        health: Health,
    ) -> Result<Runtime, InboundError> {
        use secrecy::ExposeSecret;
        let ctx = error::Ctx {
            pipeline: pipeline.name.clone(),
            object: "*".into(),
        };
        let url = pipeline
            .source
            .database_url
            .value()
            .map_err(|e| ctx.corrupt(format!("source.database_url is not resolved: {e}")))?;
        let state =
            StateStore::connect(url.expose_secret(), &pipeline.state_schema, &pipeline.name)
                .await
                .map_err(ctx.state())?;
        crate::sink::use_origin(&state, &pipeline.inbound_origin())
            .await
            .map_err(ctx.state())?;
        client.login().await.map_err(ctx.sf())?;
        Ok(Runtime {
            pipeline,
            client,
            state: Arc::new(state),
            health,
        })
    }

    /// Entry `index` with `source`, its target table checked.
    pub async fn entry<S: source::ChangeSource>(
        &self,
        index: usize,
        source: S,
    ) -> Result<engine::Entry<S>, InboundError> {
        let cfg = self.pipeline.inbound[index].clone();
        let ctx = error::Ctx {
            pipeline: self.pipeline.name.clone(),
            object: cfg.object.clone(),
        };
        let target = {
            let client = self.state.session().await;
            apply::Target::load(&*client, &cfg, &ctx).await?
        };
        let key = position::EntryKey {
            schema: quote_ident(&self.pipeline.state_schema),
            pipeline: self.pipeline.name.clone(),
            object: cfg.object.clone(),
            target: cfg.qualified_table(),
        };
        let status =
            status::EntryStatus::new(self.health.clone(), &self.pipeline.name, &cfg.object, index);
        let echo = self.echo_filter(&cfg);
        Ok(engine::Entry {
            applier: apply::Applier {
                entry: cfg,
                target,
                key,
                ctx,
            },
            source,
            client: self.client.clone(),
            state: self.state.clone(),
            status,
            echo,
        })
    }

    /// The two-way filter of an entry that is the inbound half of a pair.
    fn echo_filter(
        &self,
        entry: &crate::config::inbound::InboundConfig,
    ) -> Option<crate::bidi::echo::EchoFilter> {
        self.pipeline
            .pairs
            .iter()
            .find(|p| p.object == entry.object && p.qualified_table() == entry.qualified_table())
            .map(|p| crate::bidi::echo::EchoFilter::new(&self.pipeline.name, p.clone()))
    }

    /// The polling source for entry `index`.
    pub fn poll_source(&self, index: usize) -> poll::PollSource {
        poll::PollSource::new(self.client.clone(), self.pipeline.inbound[index].clone())
    }
}

/// Runs one entry to completion (chosen and built by the caller).
pub type EntryFuture = Pin<Box<dyn Future<Output = Result<(), InboundError>> + Send>>;

/// Runs every inbound entry of `pipeline` until `shutdown`, restarting the group after
/// retryable failures; stops with the error (status `failed`) on a permanent one.
/// `start_entry(runtime, index, shutdown)` builds and runs entry `index`.
pub async fn supervise<F>(
    pipeline: PipelineConfig,
    client: SalesforceClient,
    health: Health,
    shutdown: watch::Receiver<bool>,
    start_entry: F,
) -> Result<(), InboundError>
where
    F: Fn(Arc<Runtime>, usize, watch::Receiver<bool>) -> EntryFuture,
{
    let policy = RetryPolicy {
        max_attempts: u32::MAX,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(30),
    };
    status::register(&health, &pipeline.name, &pipeline.inbound);
    let mut retry = 0u32;
    loop {
        let started = Instant::now();
        let result = run_group(&pipeline, &client, &health, &shutdown, &start_entry).await;
        if *shutdown.borrow() {
            status::set_side(
                &health,
                &pipeline.name,
                PipelineState::Stopping,
                false,
                None,
            );
            return Ok(());
        }
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.class().is_retryable() => {
                if started.elapsed() > Duration::from_secs(60) {
                    retry = 0;
                }
                retry += 1;
                let backoff = policy.delay(retry).max(Duration::from_millis(200));
                warn!(pipeline = %pipeline.name, error = %e, retry_in = ?backoff, "inbound entries stopped; restarting from their stored positions");
                status::set_side(
                    &health,
                    &pipeline.name,
                    PipelineState::Starting,
                    false,
                    Some(e.to_string()),
                );
                let mut stop = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return Ok(()),
                }
            }
            Err(e) => {
                error!(pipeline = %pipeline.name, error = %e, class = e.class().as_str(), "inbound entries failed; not restarting (fix the cause, then start again)");
                status::set_side(
                    &health,
                    &pipeline.name,
                    PipelineState::Failed,
                    false,
                    Some(e.to_string()),
                );
                return Err(e);
            }
        }
    }
}

async fn run_group<F>(
    pipeline: &PipelineConfig,
    client: &SalesforceClient,
    health: &Health,
    shutdown: &watch::Receiver<bool>,
    start_entry: &F,
) -> Result<(), InboundError>
where
    F: Fn(Arc<Runtime>, usize, watch::Receiver<bool>) -> EntryFuture,
{
    let runtime =
        Arc::new(Runtime::connect(pipeline.clone(), client.clone(), health.clone()).await?);
    status::set_side(health, &pipeline.name, PipelineState::Streaming, true, None);
    info!(pipeline = %pipeline.name, entries = pipeline.inbound.len(), "inbound entries starting");
    let mut tasks = JoinSet::new();
    for index in 0..pipeline.inbound.len() {
        let fut = start_entry(runtime.clone(), index, shutdown.clone());
        let status = status::EntryStatus::new(
            health.clone(),
            &pipeline.name,
            &pipeline.inbound[index].object,
            index,
        );
        tasks.spawn(async move {
            let r = fut.await;
            if let Err(e) = &r {
                status.set_error(e.to_string());
            }
            r
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tasks.abort_all();
                return Err(e);
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                tasks.abort_all();
                return Err(InboundError::Corrupt {
                    pipeline: pipeline.name.clone(),
                    object: "*".into(),
                    reason: format!("an inbound task panicked: {e}"),
                });
            }
        }
    }
    Ok(())
}
