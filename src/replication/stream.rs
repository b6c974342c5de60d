//! The CopyBoth stream of a logical slot: START_REPLICATION, keepalives and standby status.
//!
//! [`ReplicationConnection::start_replication`] hands the connection to a background
//! task that reads the socket, answers primary keepalives that ask for a reply at once,
//! and sends a standby status update on a timer (and on demand). The consumer reads
//! [`ReplicationMessage`]s from the returned [`ReplicationStream`] through a small bounded
//! channel, so a slow consumer never stops status updates (which would otherwise hit
//! `wal_sender_timeout`).
//!
//! # What the slot may forget
//! The status update carries `write` = the last position received and `flush` = `apply`
//! = the last position the downstream confirmed through [`FeedbackHandle::confirm`].
//! Nothing else moves `flush`: receiving, decoding or buffering a change never confirms
//! it. Postgres only advances the slot's `confirmed_flush_lsn` to `flush`, so after a
//! crash or reconnect every transaction whose commit ends after the confirmed position
//! is sent again. Confirm the `end_lsn` of a transaction's Commit message once that
//! transaction is durable downstream.
//!
//! One exception keeps pgforce from blocking a server shutdown: a stopping walsender
//! waits until the client reports all it sent as flushed. When it asks for a reply while
//! part of the stream is unconfirmed, the reply is followed by one with an invalid (0)
//! flush, which PostgreSQL compares as "write" and which never moves the slot.
//!
//! A stream that is idle (nothing published) may
//! confirm the keepalive `wal_end` when nothing is in flight, else the slot retains WAL.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, info_span, warn, Instrument};

use super::conn::ReplicationConnection;
use super::error::{classify_server_error, ReplicationError, Result};
use super::plugin::{resolve_plugin_options, start_replication_command};
pub use super::plugin::{PluginOptions, StreamOptions, StreamingMode};
use super::protocol::{
    encode_standby_status, parse_copy_data, pg_now_micros, CopyDataMessage, StandbyStatus,
};
use super::slot::validate_slot_name;
use super::wire::{server_error, Backend};
use crate::lsn::Lsn;

/// One message from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicationMessage {
    /// One pgoutput message (`data`), decoded by [`crate::pgoutput`].
    XLogData {
        wal_start: Lsn,
        wal_end: Lsn,
        server_time: DateTime<Utc>,
        data: Bytes,
    },
    /// A primary keepalive, already answered when a reply was requested. Informational:
    /// everything up to `wal_end` has been sent.
    Keepalive {
        wal_end: Lsn,
        server_time: DateTime<Utc>,
        reply_requested: bool,
    },
}

/// Shared between the stream task and every [`FeedbackHandle`].
#[derive(Debug, Default)]
struct FeedbackState {
    confirmed: AtomicU64,
    received: AtomicU64,
    wake: Notify,
}

/// Tells the server how far the downstream has durably processed the stream. Cloneable;
/// hand it to whatever acknowledges writes.
#[derive(Debug, Clone)]
pub struct FeedbackHandle(Arc<FeedbackState>);

impl FeedbackHandle {
    /// Record that everything up to `lsn` is durable downstream (normally a Commit's
    /// `end_lsn`). Never moves backwards; sent with the next status update.
    pub fn confirm(&self, lsn: Lsn) {
        self.0.confirmed.fetch_max(lsn.0, Ordering::AcqRel);
    }

    /// [`confirm`](Self::confirm), and send a status update right away.
    pub fn confirm_now(&self, lsn: Lsn) {
        self.confirm(lsn);
        self.0.wake.notify_one();
    }

    /// The highest confirmed position.
    pub fn confirmed(&self) -> Lsn {
        Lsn(self.0.confirmed.load(Ordering::Acquire))
    }

    /// The highest position received from the server.
    pub fn received(&self) -> Lsn {
        Lsn(self.0.received.load(Ordering::Acquire))
    }
}

/// Asks the stream task to stop; the answer says whether the shutdown was clean.
type StopRequest = oneshot::Sender<Result<()>>;

/// The consumer's end of a running replication stream. Dropping it closes the
/// connection (best effort); [`stop`](Self::stop) closes it cleanly and reports errors.
pub struct ReplicationStream {
    rx: mpsc::Receiver<Result<ReplicationMessage>>,
    feedback: FeedbackHandle,
    stop_tx: Option<oneshot::Sender<StopRequest>>,
    task: Option<tokio::task::JoinHandle<()>>,
    plugin: PluginOptions,
}

impl std::fmt::Debug for ReplicationStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationStream")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

impl ReplicationStream {
    /// The next message; `None` after an error was returned or the stream was stopped.
    pub async fn next_message(&mut self) -> Option<Result<ReplicationMessage>> {
        self.rx.recv().await
    }

    /// A handle to confirm processed positions.
    pub fn feedback(&self) -> FeedbackHandle {
        self.feedback.clone()
    }

    /// The pgoutput options in effect (decoders need `proto_version`).
    pub fn plugin_options(&self) -> &PluginOptions {
        &self.plugin
    }

    /// Send a final status update, end the copy (CopyDone), drain and Terminate.
    pub async fn stop(mut self) -> Result<()> {
        let Some(stop_tx) = self.stop_tx.take() else {
            return Ok(());
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        if stop_tx.send(reply_tx).is_err() {
            // The task already ended (after an error it reported through the channel).
            return Ok(());
        }
        let result = reply_rx.await.unwrap_or(Ok(()));
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        result
    }
}

impl Stream for ReplicationStream {
    type Item = Result<ReplicationMessage>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl ReplicationConnection {
    /// Start streaming from a logical slot. The connection moves into a background task;
    /// errors from the server (slot in use, invalidated, missing) come back typed.
    pub async fn start_replication(mut self, opts: StreamOptions) -> Result<ReplicationStream> {
        validate_slot_name(&opts.slot)?;
        let major = self.server_major().unwrap_or(0);
        let plugin = resolve_plugin_options(&opts, major)?;
        let command =
            start_replication_command(&opts.slot, opts.start_lsn, &opts.publications, &plugin);
        debug!(%command, "starting replication");
        frontend::query(&command, self.wire.wbuf()).map_err(|e| {
            ReplicationError::Protocol(format!("cannot encode START_REPLICATION: {e}"))
        })?;
        self.wire.flush().await?;
        self.await_copy_both(&opts.slot).await?;
        info!(slot = %opts.slot, start_lsn = %opts.start_lsn, proto_version = plugin.proto_version, "replication stream started");

        let state = Arc::new(FeedbackState::default());
        let (tx, rx) = mpsc::channel(opts.channel_capacity.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        let streamer = Streamer {
            conn: self,
            feedback: state.clone(),
            tx,
            interval: opts.status_interval,
            pending: None,
            last_sent_flush: Lsn::ZERO,
            slot: opts.slot.clone(),
        };
        let span = info_span!("replication_stream", slot = %opts.slot, start_lsn = %opts.start_lsn);
        let task = tokio::spawn(streamer.run(stop_rx).instrument(span));
        Ok(ReplicationStream {
            rx,
            feedback: FeedbackHandle(state),
            stop_tx: Some(stop_tx),
            task: Some(task),
            plugin,
        })
    }

    /// Wait for CopyBothResponse, or turn the server's refusal into a typed error.
    async fn await_copy_both(&mut self, slot: &str) -> Result<()> {
        loop {
            match self.wire.read("starting replication").await? {
                Backend::CopyBothResponse => return Ok(()),
                Backend::Message(Message::ErrorResponse(body)) => {
                    let err = server_error(body.fields());
                    // The server follows an error with ReadyForQuery; read it so the
                    // connection could be reused, but the error is what matters.
                    let _ = self.read_query_result(Some(slot)).await;
                    return Err(classify_server_error(err, Some(slot), self.user()));
                }
                other => self.handle_async(other)?,
            }
        }
    }
}

/// The background task that owns the connection while streaming.
struct Streamer {
    conn: ReplicationConnection,
    feedback: Arc<FeedbackState>,
    tx: mpsc::Sender<Result<ReplicationMessage>>,
    interval: Duration,
    /// A message read from the socket that the consumer has not taken yet.
    pending: Option<ReplicationMessage>,
    /// The flush position in the last regular status update.
    last_sent_flush: Lsn,
    /// Slot name, for errors.
    slot: String,
}

/// What woke the loop up.
enum Event<'a> {
    Stop(Option<StopRequest>),
    SendStatus,
    Deliver(Option<mpsc::Permit<'a, Result<ReplicationMessage>>>),
    Received(Result<Backend>),
}

/// What one turn of the loop decided.
enum Step {
    Continue,
    Stop(Option<StopRequest>),
    ConsumerGone,
}

impl Streamer {
    async fn run(mut self, mut stop_rx: oneshot::Receiver<StopRequest>) {
        let feedback = self.feedback.clone();
        let tx = self.tx.clone();
        let mut next_status = Instant::now() + self.interval;
        loop {
            let has_pending = self.pending.is_some();
            let event = tokio::select! {
                biased;
                req = &mut stop_rx => Event::Stop(req.ok()),
                _ = feedback.wake.notified() => Event::SendStatus,
                _ = sleep_until(next_status) => {
                    next_status = Instant::now() + self.interval;
                    Event::SendStatus
                }
                permit = tx.reserve(), if has_pending => Event::Deliver(permit.ok()),
                msg = self.conn.wire.read("streaming"), if !has_pending => Event::Received(msg),
            };
            let step = match event {
                Event::Stop(reply) => Ok(Step::Stop(reply)),
                Event::SendStatus => self.send_status(false).await.map(|_| Step::Continue),
                Event::Deliver(Some(permit)) => {
                    if let Some(msg) = self.pending.take() {
                        permit.send(Ok(msg));
                    }
                    Ok(Step::Continue)
                }
                Event::Deliver(None) => Ok(Step::ConsumerGone),
                Event::Received(Ok(msg)) => self.on_backend(msg).await.map(|_| Step::Continue),
                Event::Received(Err(e)) => Err(e),
            };
            match step {
                Ok(Step::Continue) => {}
                Ok(Step::Stop(reply)) => {
                    let result = self.shutdown().await;
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                    return;
                }
                Ok(Step::ConsumerGone) => {
                    let _ = self.shutdown().await;
                    return;
                }
                Err(e) => {
                    warn!(error = %e, confirmed = %Lsn(feedback.confirmed.load(Ordering::Acquire)), "replication stream failed");
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }

    /// Handle one backend message while streaming.
    async fn on_backend(&mut self, msg: Backend) -> Result<()> {
        match msg {
            Backend::Message(Message::CopyData(body)) => {
                let parsed = parse_copy_data(body.into_bytes())
                    .map_err(|e| ReplicationError::Protocol(e.to_string()))?;
                self.on_copy_data(parsed).await
            }
            Backend::Message(Message::CopyDone) => Err(ReplicationError::ConnectionClosed {
                context: Some("streaming: the server ended the stream (is it shutting down?)"),
            }),
            Backend::Message(Message::ErrorResponse(body)) => {
                let slot = Some(self.slot.as_str());
                Err(classify_server_error(
                    server_error(body.fields()),
                    slot,
                    self.conn.user(),
                ))
            }
            other => self.conn.handle_async(other),
        }
    }

    async fn on_copy_data(&mut self, msg: CopyDataMessage) -> Result<()> {
        match msg {
            CopyDataMessage::XLogData {
                wal_start,
                wal_end,
                server_time,
                data,
            } => {
                self.feedback
                    .received
                    .fetch_max(wal_start.0, Ordering::AcqRel);
                self.pending = Some(ReplicationMessage::XLogData {
                    wal_start,
                    wal_end,
                    server_time,
                    data,
                });
            }
            CopyDataMessage::PrimaryKeepalive {
                wal_end,
                server_time,
                reply_requested,
            } => {
                self.feedback
                    .received
                    .fetch_max(wal_end.0, Ordering::AcqRel);
                if reply_requested {
                    self.reply_to_keepalive().await?;
                }
                self.pending = Some(ReplicationMessage::Keepalive {
                    wal_end,
                    server_time,
                    reply_requested,
                });
            }
        }
        Ok(())
    }

    /// Send a standby status update with the current positions.
    async fn send_status(&mut self, reply_requested: bool) -> Result<()> {
        let flush = Lsn(self.feedback.confirmed.load(Ordering::Acquire));
        self.last_sent_flush = flush;
        self.write_status(flush, reply_requested).await
    }

    /// Answer a keepalive that asked for a reply. A shutting-down walsender waits until
    /// the reported flush equals everything it sent; when part of that is unconfirmed,
    /// follow the normal update with one whose flush is invalid (0): PostgreSQL then
    /// compares `write` instead, and an invalid flush never moves the slot.
    async fn reply_to_keepalive(&mut self) -> Result<()> {
        let confirmed = Lsn(self.feedback.confirmed.load(Ordering::Acquire));
        let received = Lsn(self.feedback.received.load(Ordering::Acquire));
        if confirmed >= received || confirmed != self.last_sent_flush {
            self.send_status(false).await?;
        }
        if confirmed < received {
            self.write_status(Lsn::ZERO, false).await?;
        }
        Ok(())
    }

    /// Encode and send one status update reporting `flush` as flushed and applied.
    async fn write_status(&mut self, flush: Lsn, reply_requested: bool) -> Result<()> {
        let received = Lsn(self.feedback.received.load(Ordering::Acquire));
        let status = StandbyStatus {
            write: received.max(flush),
            flush,
            apply: flush,
            reply_requested,
        };
        debug!(write = %status.write, flush = %status.flush, "standby status update");
        let payload = encode_standby_status(&status, pg_now_micros());
        let copy = frontend::CopyData::new(payload)
            .map_err(|e| ReplicationError::Protocol(format!("cannot encode status update: {e}")))?;
        copy.write(self.conn.wire.wbuf());
        self.conn.wire.flush().await
    }

    /// Final status, CopyDone, drain until ReadyForQuery, Terminate.
    async fn shutdown(mut self) -> Result<()> {
        let result = tokio::time::timeout(Duration::from_secs(10), self.end_copy()).await;
        let closed = self.conn.close().await;
        match result {
            Ok(r) => r.and(closed),
            Err(_) => Err(ReplicationError::Protocol(
                "the server did not end the stream within 10s".into(),
            )),
        }
    }

    async fn end_copy(&mut self) -> Result<()> {
        self.send_status(false).await?;
        frontend::copy_done(self.conn.wire.wbuf());
        self.conn.wire.flush().await?;
        loop {
            match self.conn.wire.read("ending the stream").await? {
                Backend::Message(Message::ReadyForQuery(_)) => return Ok(()),
                Backend::Message(Message::CopyData(_) | Message::CopyDone) => {}
                Backend::Message(Message::ErrorResponse(body)) => {
                    return Err(classify_server_error(
                        server_error(body.fields()),
                        None,
                        self.conn.user(),
                    ))
                }
                other => self.conn.handle_async(other)?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn feedback_never_moves_backwards() {
        let h = FeedbackHandle(Arc::default());
        h.confirm(Lsn(10));
        h.confirm(Lsn(5));
        assert_eq!(h.confirmed(), Lsn(10));
    }
}
