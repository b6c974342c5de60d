//! Change Data Capture over Salesforce's Pub/Sub API (gRPC, package `eventbus.v1`): a
//! subscriber for one topic that decodes each event's Avro payload and header bitmaps into
//! [`crate::inbound::event::InboundEvent`]s and implements
//! [`crate::inbound::source::ChangeSource`].
//!
//! Guarantees:
//! - events come back in stream order, each exactly once: a dropped stream or an
//!   UNAVAILABLE server is resumed inside the source, after a [`crate::backoff`] delay,
//!   *after* the last position [`CdcSource::next_batch`] returned (a response received but
//!   not yet returned is fetched again, never skipped);
//! - [`CdcSource::next_batch`] is cancel-safe: a response taken off the stream is kept
//!   until it has been returned, so wrapping the call in a timeout or a `select!` loses
//!   nothing;
//! - an expired or corrupted replay id is [`SourceError::PositionLost`], never a silent
//!   restart from LATEST; a refused token is refreshed once, then [`SourceError::Auth`];
//! - an undecodable event is [`SourceError::Permanent`] naming the topic and the replay
//!   id; nothing received from the network can panic the decoder.
//!
//! Layout: [`entry`] (an inbound entry started with its configured source), [`endpoint`]
//! (the `pubsub_endpoint` and TLS), [`subscription`] (one Subscribe
//! stream, its auth metadata), [`flow`] (flow-control arithmetic), [`status`] (what a gRPC
//! error means), [`schema`] (writer schemas by id), [`decode`], [`bitmap`] and [`values`]
//! (Avro → `InboundEvent`), [`proto`] (generated from the published proto).

pub mod bitmap;
pub mod decode;
pub mod endpoint;
pub mod entry;
pub mod flow;
pub mod proto;
pub mod schema;
pub mod status;
pub mod subscription;
pub mod values;

use tonic::transport::Channel;
use tonic::Request;

use self::proto::pub_sub_client::PubSubClient;
use self::proto::{FetchResponse, SchemaRequest};
use self::schema::{EventSchema, SchemaCache};
use self::status::{classify, Failure};
use self::subscription::{authorized, From, Subscription};
use crate::backoff::RetryPolicy;
use crate::error_class::{Classify, ErrorClass};
use crate::inbound::event::{InboundEvent, Position, SourceBatch, Start};
use crate::inbound::source::{ChangeSource, SourceError};
use crate::salesforce::client::{SalesforceClient, SessionCredentials};
use crate::salesforce::SalesforceError;

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
///
/// Positions are [`Position::Replay`] ids. An empty replay id (what [`CdcSource::tip`]
/// reports for a topic that has never had an event) resumes from EARLIEST, which for such
/// a topic skips nothing.
pub struct CdcSource {
    settings: CdcSettings,
    client: SalesforceClient,
    retry: RetryPolicy,
    rpc: Option<PubSubClient<Channel>>,
    credentials: Option<SessionCredentials>,
    schemas: SchemaCache,
    /// What [`ChangeSource::start`] was given.
    start: Option<Start>,
    /// The last position returned (an event's replay id or a keepalive's latest id).
    cursor: Option<Vec<u8>>,
    stream: Option<Subscription>,
    /// A response taken off the stream and not yet returned (see the cancel-safety note).
    pending: Option<FetchResponse>,
    /// Told when the stream is lost (`true`) and when it delivers again (`false`).
    on_connection: Option<ConnectionHook>,
    /// Whether the hook was last told the stream is lost.
    lost: bool,
}

/// Called with `true` when the main stream is lost and with `false` once it delivers
/// again (e.g. to show the entry as reconnecting).
pub type ConnectionHook = Box<dyn Fn(bool) + Send + Sync>;

/// Why one attempt failed: a gRPC status to classify, or a final error.
enum Attempt {
    Status(tonic::Status),
    Fatal(SourceError),
}

impl std::convert::From<tonic::Status> for Attempt {
    fn from(s: tonic::Status) -> Self {
        Attempt::Status(s)
    }
}

impl std::convert::From<SourceError> for Attempt {
    fn from(e: SourceError) -> Self {
        Attempt::Fatal(e)
    }
}

/// Consecutive failures of one operation, for the backoff and the refresh-once rule.
#[derive(Default)]
struct Attempts {
    failures: u32,
    refreshed: bool,
}

impl CdcSource {
    /// A source for `settings`, authenticating with `client`'s session (access token,
    /// instance URL and org id go in the gRPC metadata). Connects lazily.
    pub fn new(settings: CdcSettings, client: SalesforceClient) -> CdcSource {
        CdcSource {
            settings,
            client,
            retry: RetryPolicy::default(),
            rpc: None,
            credentials: None,
            schemas: SchemaCache::default(),
            start: None,
            cursor: None,
            stream: None,
            pending: None,
            on_connection: None,
            lost: false,
        }
    }

    /// Calls `hook(true)` when the main stream is lost (before each reconnect attempt) and
    /// `hook(false)` once a reconnected stream delivers a response.
    pub fn with_connection_hook(mut self, hook: ConnectionHook) -> CdcSource {
        self.on_connection = Some(hook);
        self
    }

    fn connection(&mut self, lost: bool) {
        if self.lost != lost {
            self.lost = lost;
            if let Some(hook) = &self.on_connection {
                hook(lost);
            }
        }
    }

    /// Replaces the policy for resuming a dropped stream (attempts in a row, backoff).
    pub fn with_retry(mut self, retry: RetryPolicy) -> CdcSource {
        self.retry = retry;
        self
    }

    /// The settings this source was built with.
    pub fn settings(&self) -> &CdcSettings {
        &self.settings
    }

    fn topic(&self) -> String {
        self.settings.topic.clone()
    }

    /// The gRPC client (built on first use).
    fn rpc(&mut self) -> Result<PubSubClient<Channel>, SourceError> {
        if let Some(rpc) = &self.rpc {
            return Ok(rpc.clone());
        }
        let channel =
            endpoint::channel(&self.settings.endpoint).map_err(|e| SourceError::Permanent {
                topic: self.topic(),
                reason: e.to_string(),
            })?;
        let rpc = PubSubClient::new(channel);
        self.rpc = Some(rpc.clone());
        Ok(rpc)
    }

    /// The session's credentials; `refresh` mints a new token first.
    async fn credentials(&mut self, refresh: bool) -> Result<SessionCredentials, SourceError> {
        if let (Some(c), false) = (&self.credentials, refresh) {
            return Ok(c.clone());
        }
        let refused = if refresh {
            self.credentials.as_ref()
        } else {
            None
        };
        let c = self
            .client
            .session_credentials(refused)
            .await
            .map_err(|e| self.session_error(e))?;
        self.credentials = Some(c.clone());
        Ok(c)
    }

    fn session_error(&self, e: SalesforceError) -> SourceError {
        let (topic, reason) = (self.topic(), format!("cannot obtain a session: {e}"));
        match e.class() {
            ErrorClass::Auth => SourceError::Auth { topic, reason },
            ErrorClass::Transient | ErrorClass::Throttled => {
                SourceError::Transient { topic, reason }
            }
            ErrorClass::Permanent => SourceError::Permanent { topic, reason },
        }
    }

    /// Where a new stream starts: after the last returned position, else where
    /// [`ChangeSource::start`] said.
    fn resume_point(&self) -> Result<From, SourceError> {
        let after = |id: &[u8]| {
            if id.is_empty() {
                From::Earliest
            } else {
                From::After(id.to_vec())
            }
        };
        if let Some(id) = &self.cursor {
            return Ok(after(id));
        }
        match &self.start {
            Some(Start::Latest) => Ok(From::Latest),
            Some(Start::Earliest) => Ok(From::Earliest),
            Some(Start::After(Position::Replay(id))) => Ok(after(id)),
            Some(Start::After(p @ Position::Poll { .. })) => Err(SourceError::Permanent {
                topic: self.topic(),
                reason: format!("{p:?} is a polling position, not a Pub/Sub replay id"),
            }),
            None => Err(SourceError::Permanent {
                topic: self.topic(),
                reason: "next_batch was called before start".into(),
            }),
        }
    }

    /// Opens the main stream from the resume point.
    async fn open(&mut self) -> Result<(), Attempt> {
        let from = self.resume_point()?;
        let credentials = self.credentials(false).await?;
        let mut rpc = self.rpc()?;
        let s = &self.settings;
        let stream =
            Subscription::open(&mut rpc, &credentials, &s.topic, &from, s.batch_size).await?;
        tracing::debug!(topic = %s.topic, from = %describe(&from), "pub/sub subscribed");
        self.stream = Some(stream);
        Ok(())
    }

    /// Decides what to do after a failed attempt: `Ok` to try again (after the backoff or a
    /// token refresh), or the error to return.
    async fn recover(
        &mut self,
        status: tonic::Status,
        a: &mut Attempts,
    ) -> Result<(), SourceError> {
        let topic = self.topic();
        match classify(&status) {
            Failure::Transient(reason) => {
                a.failures += 1;
                if a.failures >= self.retry.max_attempts.max(1) {
                    return Err(SourceError::Transient {
                        topic,
                        reason: format!("{reason} ({} attempts in a row)", a.failures),
                    });
                }
                tracing::warn!(
                    topic = %topic,
                    position = %self.cursor.as_deref().map(hex).unwrap_or_default(),
                    attempt = a.failures,
                    error = %reason,
                    "pub/sub call failed; retrying after a backoff"
                );
                tokio::time::sleep(self.retry.delay(a.failures)).await;
                Ok(())
            }
            Failure::Unauthenticated(reason) if a.refreshed => {
                Err(SourceError::Auth { topic, reason })
            }
            Failure::Unauthenticated(reason) => {
                tracing::info!(topic = %topic, error = %reason, "pub/sub refused the token; refreshing it");
                a.refreshed = true;
                self.credentials(true).await.map(|_| ())
            }
            Failure::Forbidden(reason) => Err(SourceError::Auth { topic, reason }),
            Failure::PositionLost(reason) => Err(SourceError::PositionLost { topic, reason }),
            Failure::Permanent(reason) => Err(SourceError::Permanent { topic, reason }),
        }
    }

    /// The next response of the main stream, resuming it as needed.
    async fn receive(&mut self) -> Result<FetchResponse, SourceError> {
        let mut attempts = Attempts::default();
        loop {
            match self.try_receive().await {
                Ok(r) => {
                    self.connection(false);
                    return Ok(r);
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Status(s)) => {
                    self.stream = None;
                    self.connection(true);
                    self.recover(s, &mut attempts).await?;
                }
            }
        }
    }

    async fn try_receive(&mut self) -> Result<FetchResponse, Attempt> {
        if self.stream.is_none() {
            self.open().await?;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(tonic::Status::unavailable("no stream").into());
        };
        stream.top_up()?;
        Ok(stream.next().await?)
    }

    /// The writer schema `id`, from the cache or GetSchema.
    async fn schema(&mut self, id: &str) -> Result<std::sync::Arc<EventSchema>, SourceError> {
        if let Some(s) = self.schemas.get(id) {
            return Ok(s);
        }
        let mut attempts = Attempts::default();
        loop {
            match self.fetch_schema(id).await {
                Ok(s) => return Ok(self.schemas.insert(s)),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Status(s)) => self.recover(s, &mut attempts).await?,
            }
        }
    }

    async fn fetch_schema(&mut self, id: &str) -> Result<EventSchema, Attempt> {
        let credentials = self.credentials(false).await?;
        let mut rpc = self.rpc()?;
        let request = SchemaRequest {
            schema_id: id.to_string(),
        };
        let info = rpc
            .get_schema(authorized(Request::new(request), &credentials)?)
            .await?
            .into_inner();
        tracing::debug!(topic = %self.settings.topic, schema_id = id, "pub/sub schema fetched");
        EventSchema::parse(id, &info.schema_json).map_err(|e| {
            Attempt::Fatal(SourceError::Permanent {
                topic: self.topic(),
                reason: e.to_string(),
            })
        })
    }

    /// Decodes the pending response into a batch (fetching schemas it needs first).
    async fn decode_pending(&mut self) -> Result<SourceBatch, SourceError> {
        let ids: Vec<String> = self
            .pending
            .iter()
            .flat_map(|r| r.events.iter())
            .filter_map(|e| e.event.as_ref().map(|p| p.schema_id.clone()))
            .collect();
        let mut schemas = std::collections::HashMap::new();
        for id in ids {
            if let std::collections::hash_map::Entry::Vacant(slot) = schemas.entry(id) {
                let s = self.schema(slot.key()).await?;
                slot.insert(s);
            }
        }
        let Some(r) = &self.pending else {
            return Ok(SourceBatch::default());
        };
        let mut events = Vec::with_capacity(r.events.len());
        for ce in &r.events {
            let Some(e) = &ce.event else {
                return Err(self.undecodable(&ce.replay_id, "the event is missing"));
            };
            let Some(schema) = schemas.get(&e.schema_id) else {
                return Err(self.undecodable(&ce.replay_id, "its schema is missing"));
            };
            let event: InboundEvent = decode::decode(schema, &e.payload, &ce.replay_id)
                .map_err(|err| self.undecodable(&ce.replay_id, &err.to_string()))?;
            events.push(event);
        }
        let position = match r.events.last() {
            Some(last) => Some(last.replay_id.clone()),
            // A keepalive: the server owed us events and had none, so its latest id is
            // where we stand. With nothing requested it may hold a backlog: stay put.
            None if r.pending_num_requested > 0 && !r.latest_replay_id.is_empty() => {
                Some(r.latest_replay_id.clone())
            }
            None => self.cursor.clone(),
        };
        Ok(SourceBatch {
            events,
            position: position.map(Position::Replay),
        })
    }

    fn undecodable(&self, replay_id: &[u8], reason: &str) -> SourceError {
        SourceError::Permanent {
            topic: self.topic(),
            reason: format!(
                "cannot decode the event at replay id {}: {reason}",
                hex(replay_id)
            ),
        }
    }

    /// The latest replay id, from a short-lived LATEST subscription's first response.
    async fn read_tip(&mut self) -> Result<Position, Attempt> {
        let credentials = self.credentials(false).await?;
        let mut rpc = self.rpc()?;
        let mut stream = Subscription::open(
            &mut rpc,
            &credentials,
            &self.settings.topic,
            &From::Latest,
            1,
        )
        .await?;
        let r = stream.next().await?;
        let id = match (r.latest_replay_id.is_empty(), r.events.last()) {
            (true, Some(e)) => e.replay_id.clone(),
            _ => r.latest_replay_id,
        };
        Ok(Position::Replay(id))
    }
}

impl ChangeSource for CdcSource {
    /// Subscribes LATEST on a separate stream and takes the first response's
    /// `latest_replay_id` (waiting for the server's keepalive if the topic is quiet).
    async fn tip(&mut self) -> Result<Position, SourceError> {
        let mut attempts = Attempts::default();
        loop {
            match self.read_tip().await {
                Ok(p) => return Ok(p),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Status(s)) => self.recover(s, &mut attempts).await?,
            }
        }
    }

    /// Subscribes from `start` now (so LATEST means "from this call on").
    async fn start(&mut self, start: Start) -> Result<(), SourceError> {
        self.stream = None;
        self.pending = None;
        self.cursor = None;
        self.start = Some(start);
        self.resume_point()?;
        let mut attempts = Attempts::default();
        loop {
            match self.open().await {
                Ok(()) => return Ok(()),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Status(s)) => self.recover(s, &mut attempts).await?,
            }
        }
    }

    /// The events of the next FetchResponse, or an empty batch for a keepalive.
    async fn next_batch(&mut self) -> Result<SourceBatch, SourceError> {
        if self.pending.is_none() {
            let r = self.receive().await?;
            self.pending = Some(r);
        }
        let batch = self.decode_pending().await?;
        self.pending = None;
        if let Some(Position::Replay(id)) = &batch.position {
            self.cursor = Some(id.clone());
        }
        Ok(batch)
    }
}

/// A replay id for logs and errors.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe(from: &From) -> String {
    match from {
        From::Latest => "LATEST".into(),
        From::Earliest => "EARLIEST".into(),
        From::After(id) => format!("after {}", hex(id)),
    }
}
