//! One Subscribe stream: pull flow control, replay presets, keepalive and stream faults.
//!
//! - The first FetchRequest names the topic and the start: LATEST (default: only events
//!   committed after subscribing), EARLIEST (the oldest retained event), or CUSTOM (resume
//!   *after* `replay_id`; a malformed, never-issued or expired id → INVALID_ARGUMENT with
//!   `…replayid.corrupted`). Later requests only add `num_requested` (each capped at 100,
//!   as Salesforce caps it); naming another topic → INVALID_ARGUMENT.
//! - Events are sent only while requested events are outstanding; each FetchResponse says
//!   how many are still owed (`pending_num_requested`) and carries `latest_replay_id`, the
//!   position a client may resume after.
//! - With nothing to send for the keepalive interval, an empty FetchResponse carries the
//!   latest replay id (the stream's position moves past events of other topics).
//! - Faults: `pubsub_drop_stream` ends the stream with UNAVAILABLE after N delivered events;
//!   `pubsub_slow` delays each response. A stream takes its faults when it opens and, for
//!   a fault installed later, before its next delivery (as a network drop hits a stream
//!   already open); a drop taken later counts N events from then.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};

use super::errors;
use super::proto::{ConsumerEvent, FetchRequest, FetchResponse, ProducerEvent, ReplayPreset};
use super::service::BoxStream;
use crate::cdc::log::{encode_replay, StoredEvent};
use crate::cdc::Topic;
use crate::faults::FaultKind;
use crate::session::Session;
use crate::state::AppState;

/// Most events one FetchRequest may ask for.
pub const MAX_NUM_REQUESTED: i32 = 100;

type Tx = mpsc::Sender<Result<FetchResponse, Status>>;

/// Starts the stream's task and returns its responses.
pub fn start(
    state: AppState,
    session: Session,
    inbound: Streaming<FetchRequest>,
    rpc_id: String,
) -> BoxStream<FetchResponse> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let user = session.user_id.to_string();
        let mut sub = Subscription {
            state,
            inbound,
            tx,
            rpc_id,
        };
        if let Err(status) = sub.run().await {
            tracing::debug!(user = %user, code = ?status.code(), "subscription ended with an error");
            let _ = sub.tx.send(Err(status)).await;
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// How the stream is to be treated by faults.
#[derive(Debug, Default, Clone, Copy)]
struct StreamFaults {
    /// Drop the stream once this many events were delivered in all.
    drop_at: Option<u64>,
    slow: Option<Duration>,
}

struct Subscription {
    state: AppState,
    inbound: Streaming<FetchRequest>,
    tx: Tx,
    rpc_id: String,
}

/// What the stream knows between responses.
struct Position {
    topic_name: String,
    topic: Topic,
    cursor: u64,
    pending: i64,
    delivered: u64,
}

fn requested(n: i32) -> i64 {
    i64::from(n.clamp(0, MAX_NUM_REQUESTED))
}

impl Subscription {
    async fn run(&mut self) -> Result<(), Status> {
        let first = match self.inbound.message().await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return Ok(()),
        };
        let mut pos = self.open(&first)?;
        let mut faults = StreamFaults::default();
        let mut watch = self.state.cdc.log.watch();
        let keepalive = self.state.config.pubsub.keepalive();
        let mut last_sent = Instant::now();
        loop {
            self.take_faults(&pos, &mut faults);
            if pos.pending > 0 && self.deliver(&mut pos, faults).await? {
                last_sent = Instant::now();
                continue;
            }
            tokio::select! {
                msg = self.inbound.message() => match msg {
                    Ok(Some(req)) => self.more(&mut pos, &req)?,
                    Ok(None) | Err(_) => return Ok(()),
                },
                changed = watch.changed() => if changed.is_err() { return Ok(()) },
                _ = tokio::time::sleep_until(last_sent + keepalive) => {
                    self.keepalive(&mut pos).await?;
                    last_sent = Instant::now();
                }
                _ = self.tx.closed() => return Ok(()),
            }
        }
    }

    /// Validates the first request and finds the start position.
    fn open(&self, first: &FetchRequest) -> Result<Position, Status> {
        let cdc = &self.state.cdc;
        let topic = cdc.topic(&first.topic_name).ok_or_else(|| {
            errors::topic_not_found(
                &self.state.org_id.to_string(),
                &first.topic_name,
                &self.rpc_id,
            )
        })?;
        cdc.prune();
        let preset = ReplayPreset::try_from(first.replay_preset)
            .map_err(|_| errors::invalid("The replay preset is not valid.", &self.rpc_id))?;
        let cursor = match preset {
            ReplayPreset::Latest => cdc.log.latest(),
            ReplayPreset::Earliest => cdc.log.earliest_cursor(),
            ReplayPreset::Custom => cdc
                .log
                .check_replay(&first.replay_id)
                .map_err(|_| errors::replay_corrupted(&self.rpc_id))?,
        };
        Ok(Position {
            topic_name: first.topic_name.clone(),
            topic,
            cursor,
            pending: requested(first.num_requested),
            delivered: 0,
        })
    }

    /// Takes the stream faults installed for this topic that the stream has not taken
    /// yet (each firing counts once per stream).
    fn take_faults(&self, pos: &Position, taken: &mut StreamFaults) {
        let faults = &self.state.faults;
        let topic = pos.topic_name.as_str();
        if taken.drop_at.is_none() && faults.has(is_drop) {
            taken.drop_at = faults.stream_fault(topic, is_drop).and_then(|k| match k {
                FaultKind::PubsubDropStream { after_events } => {
                    Some(pos.delivered.saturating_add(after_events))
                }
                _ => None,
            });
        }
        if taken.slow.is_none() && faults.has(is_slow) {
            taken.slow = faults.stream_fault(topic, is_slow).and_then(|k| match k {
                FaultKind::PubsubSlow { ms } => Some(Duration::from_millis(ms)),
                _ => None,
            });
        }
    }

    /// A later FetchRequest: more flow-control credit; the topic may not change.
    fn more(&self, pos: &mut Position, req: &FetchRequest) -> Result<(), Status> {
        if !req.topic_name.is_empty() && req.topic_name != pos.topic_name {
            return Err(errors::invalid(
                &format!(
                    "The topic name {} differs from the subscribed topic {}; start a new subscription to change topics.",
                    req.topic_name, pos.topic_name
                ),
                &self.rpc_id,
            ));
        }
        pos.pending = pos.pending.saturating_add(requested(req.num_requested));
        Ok(())
    }

    /// Sends the next batch of events, if any; `Ok(false)` when there was none.
    async fn deliver(&self, pos: &mut Position, faults: StreamFaults) -> Result<bool, Status> {
        self.state.cdc.prune();
        let max = usize::try_from(pos.pending).unwrap_or(0);
        let topic = &pos.topic;
        let mut read = self
            .state
            .cdc
            .log
            .read_after(pos.cursor, max, |e| topic.matches(e));
        if read.events.is_empty() {
            pos.cursor = read.cursor;
            return Ok(false);
        }
        let mut drop_now = false;
        if let Some(at) = faults.drop_at {
            let room = usize::try_from(at.saturating_sub(pos.delivered)).unwrap_or(usize::MAX);
            if read.events.len() >= room {
                read.events.truncate(room);
                drop_now = true;
            }
        }
        if let Some(d) = faults.slow {
            tokio::time::sleep(d).await;
        }
        if let Some(last) = read.events.last() {
            pos.cursor = if drop_now { last.replay } else { read.cursor };
        }
        let n = read.events.len();
        pos.pending -= i64::try_from(n).unwrap_or(0);
        pos.delivered += n as u64;
        if n > 0 {
            self.send(FetchResponse {
                events: read.events.iter().map(consumer_event).collect(),
                latest_replay_id: encode_replay(pos.cursor),
                rpc_id: self.rpc_id.clone(),
                pending_num_requested: i32::try_from(pos.pending).unwrap_or(i32::MAX),
            })
            .await?;
        }
        if drop_now {
            return Err(errors::status(
                Code::Unavailable,
                errors::UNAVAILABLE,
                "The service is unavailable. Try again later.",
                &self.rpc_id,
            ));
        }
        Ok(true)
    }

    /// The empty keepalive response.
    async fn keepalive(&self, pos: &mut Position) -> Result<(), Status> {
        let topic = &pos.topic;
        let read = self
            .state
            .cdc
            .log
            .read_after(pos.cursor, 0, |e| topic.matches(e));
        pos.cursor = read.cursor;
        self.send(FetchResponse {
            events: Vec::new(),
            latest_replay_id: encode_replay(pos.cursor),
            rpc_id: self.rpc_id.clone(),
            pending_num_requested: i32::try_from(pos.pending).unwrap_or(i32::MAX),
        })
        .await
    }

    async fn send(&self, resp: FetchResponse) -> Result<(), Status> {
        // A closed channel means the client went away; the stream just ends.
        let _ = self.tx.send(Ok(resp)).await;
        Ok(())
    }
}

fn is_drop(k: &FaultKind) -> bool {
    matches!(k, FaultKind::PubsubDropStream { .. })
}

fn is_slow(k: &FaultKind) -> bool {
    matches!(k, FaultKind::PubsubSlow { .. })
}

fn consumer_event(e: &Arc<StoredEvent>) -> ConsumerEvent {
    ConsumerEvent {
        event: Some(ProducerEvent {
            id: e.id(),
            schema_id: e.schema_id.to_string(),
            payload: e.payload.bytes(),
            headers: Vec::new(),
        }),
        replay_id: encode_replay(e.replay),
    }
}
