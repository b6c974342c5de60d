//! Transaction assembler: pgoutput messages in stream order → [`TxEvent`]s in commit order.
//!
//! Feed it `(wal_start, bytes)` with [`Assembler::push`] and pull events with
//! [`Assembler::next_event`] (drain after every push). It is synchronous and does no
//! network I/O, so it can be fuzzed; its only I/O is the spill file.
//!
//! What it does:
//! - **Relation cache.** Relation messages replace the cached `Arc<Relation>` for their
//!   OID; each change holds the `Arc` that was current when it arrived. Relations sent
//!   inside a streamed transaction go to that transaction's overlay (a concurrent
//!   transaction may still use the old shape) and are merged into the cache when it
//!   commits or prepares. Type messages feed the [`TypeRegistry`]; enums are registered
//!   by the caller ([`Assembler::register_enum`]).
//! - **Plain transactions** (Begin … Commit) pass straight through: the server only sends
//!   them once committed, so nothing is buffered.
//! - **Streamed transactions** (v2+, Stream Start/Stop chunks, possibly interleaved
//!   between xids) are buffered per xid and emitted whole, as Begin/changes/Commit, at
//!   Stream Commit. Stream Abort drops them; an abort naming a subtransaction
//!   (subxid ≠ xid) drops only the changes that subtransaction made (each streamed change
//!   carries the xid of the (sub)transaction that made it).
//! - **Two-phase** (v3+, `two_phase` on): Begin Prepare … Prepare (or Stream Prepare) is
//!   buffered by GID and emitted at Commit Prepared as an ordinary transaction (Begin with
//!   the commit LSN/time, changes, Commit with the Commit Prepared's end LSN); Rollback
//!   Prepared drops it. We emit at COMMIT PREPARED, not at PREPARE, because a prepared
//!   transaction may still roll back and Salesforce has no way to undo. A Commit Prepared
//!   whose Prepare we never saw is an error ([`AssemblerError::UnknownPrepared`]): its
//!   changes would otherwise be lost silently. Simplest for pgforce is not to enable
//!   `two_phase` at all: the server then sends prepared transactions at COMMIT PREPARED
//!   as plain transactions.
//! - **Bounded memory.** Buffered messages are kept as raw bytes; when all buffered
//!   transactions together hold more than [`AssemblerConfig::memory_limit`], the largest
//!   is appended to its own anonymous temp file. On commit, a buffered transaction is
//!   decoded and emitted one change per [`Assembler::next_event`] call, reading the file
//!   sequentially: it is never materialized in memory as a whole.
//! - **No echo.** A transaction whose Origin message names
//!   [`AssemblerConfig::skip_origins`] is dropped entirely (Begin and Commit included);
//!   [`Assembler::last_skipped_end_lsn`] tells the caller how far such skips reached.
//! - Non-transactional logical messages become [`TxEvent::Message`] at once.
//! - A Stream Commit for a transaction nothing was buffered for emits an empty
//!   Begin/Commit (its position still counts); a stream continuing a transaction whose
//!   first segment we never saw is an error ([`AssemblerError::MissingStreamStart`]).
//!
//! Errors: a value that does not parse as its column type is an error naming relation,
//! column and type ([`AssemblerError::Row`]), not a fallback to `Value::Other`, because
//! silently wrong data is what users pay us to avoid. Errors surface from `push` for
//! plain transactions and from `next_event` for buffered ones. After any error the
//! assembler's state is unspecified: drop it and restart replication from the last
//! confirmed LSN. Likewise use one assembler per replication connection (the server
//! resends in-progress transactions from scratch after a reconnect).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::messages::{decode, DecodeContext, DecodeError, LogicalMessage};
use super::row::{decode_row, RowError};
use super::spill::{BufferReader, TxnBuffer};
use super::types::TypeRegistry;
use crate::change::{Change, Operation, Relation, RowChange, TxEvent};
use crate::lsn::Lsn;

/// Assembler settings.
#[derive(Debug, Clone)]
pub struct AssemblerConfig {
    /// Bytes of buffered (streamed or prepared, not yet committed) messages kept in
    /// memory across all transactions before the largest is spilled to a temp file.
    pub memory_limit: usize,
    /// Where spill files go (anonymous files, gone when closed). Default: the system
    /// temp dir.
    pub spill_dir: Option<PathBuf>,
    /// Replication origins whose transactions are skipped (pgforce's own writes: the
    /// write-back origin and the Salesforce → Postgres origin).
    pub skip_origins: Vec<String>,
}

impl Default for AssemblerConfig {
    fn default() -> Self {
        AssemblerConfig {
            memory_limit: 64 * 1024 * 1024,
            spill_dir: None,
            skip_origins: vec!["pgforce".to_string()],
        }
    }
}

/// Why the assembler could not go on.
#[derive(Debug, thiserror::Error)]
pub enum AssemblerError {
    #[error("cannot decode the pgoutput message at {lsn}: {source}")]
    Decode {
        lsn: Lsn,
        #[source]
        source: DecodeError,
    },
    #[error("at {lsn}: {source}")]
    Row {
        lsn: Lsn,
        #[source]
        source: RowError,
    },
    #[error(
        "{message} at {lsn} refers to relation OID {oid}, which no Relation message has described"
    )]
    UnknownRelation {
        lsn: Lsn,
        message: &'static str,
        oid: u32,
    },
    #[error("unexpected {message} at {lsn}: {detail}")]
    Protocol {
        lsn: Lsn,
        message: &'static str,
        detail: &'static str,
    },
    #[error("Commit Prepared for {gid:?} at {lsn}, but its Prepare was not received on this connection: its changes cannot be emitted (restart from an LSN before the PREPARE, or run without two_phase)")]
    UnknownPrepared { lsn: Lsn, gid: String },
    #[error("streamed transaction {xid} continues at {lsn} but its first segment was not received: restart replication from the last confirmed LSN")]
    MissingStreamStart { lsn: Lsn, xid: u32 },
    #[error("spill file I/O failed (check free space in the spill directory): {0}")]
    Spill(#[source] std::io::Error),
}

type Result<T, E = AssemblerError> = std::result::Result<T, E>;

/// A Begin waiting to learn its origin (the Origin message follows Begin).
#[derive(Debug)]
struct PlainTxn {
    xid: u32,
    final_lsn: Lsn,
    commit_time: DateTime<Utc>,
    origin: Option<String>,
    begin_sent: bool,
    skip: bool,
}

/// A streamed or prepared transaction being buffered.
#[derive(Debug)]
struct BufferedTxn {
    xid: u32,
    origin: Option<String>,
    skip: bool,
    buffer: TxnBuffer,
    aborted_subxids: HashSet<u32>,
    /// Relations described inside this (streamed) transaction.
    overlay: HashMap<u32, Arc<Relation>>,
}

impl BufferedTxn {
    fn new(xid: u32) -> Self {
        BufferedTxn {
            xid,
            origin: None,
            skip: false,
            buffer: TxnBuffer::default(),
            aborted_subxids: HashSet::new(),
            overlay: HashMap::new(),
        }
    }
}

/// Where we are between transactions.
#[derive(Debug)]
enum State {
    Idle,
    Plain(PlainTxn),
    /// Between Begin Prepare and Prepare.
    Preparing {
        gid: String,
        txn: Box<BufferedTxn>,
    },
}

/// A committed buffered transaction being emitted change by change.
#[derive(Debug)]
struct Replay {
    begin: Option<TxEvent>,
    reader: BufferReader,
    aborted: HashSet<u32>,
    commit: Option<TxEvent>,
}

#[derive(Debug)]
enum Output {
    Event(TxEvent),
    Replay(Box<Replay>),
}

/// Turns pgoutput messages into commit-ordered [`TxEvent`]s. See the module docs.
#[derive(Debug)]
pub struct Assembler {
    config: AssemblerConfig,
    types: TypeRegistry,
    relations: HashMap<u32, Arc<Relation>>,
    ctx: DecodeContext,
    state: State,
    /// The xid of the open streamed block, if any.
    stream: Option<u32>,
    streams: HashMap<u32, BufferedTxn>,
    prepared: HashMap<String, BufferedTxn>,
    /// In-memory bytes over every buffered transaction (streams, prepared, preparing).
    buffered_mem: usize,
    out: VecDeque<Output>,
    last_skipped_end: Option<Lsn>,
    spilled_total: u64,
}

impl Default for Assembler {
    fn default() -> Self {
        Self::new(AssemblerConfig::default())
    }
}

impl Assembler {
    pub fn new(config: AssemblerConfig) -> Self {
        Assembler {
            config,
            types: TypeRegistry::new(),
            relations: HashMap::new(),
            ctx: DecodeContext::default(),
            state: State::Idle,
            stream: None,
            streams: HashMap::new(),
            prepared: HashMap::new(),
            buffered_mem: 0,
            out: VecDeque::new(),
            last_skipped_end: None,
            spilled_total: 0,
        }
    }

    /// Declare an enum type (and its array type) so its values become `Value::Enum`.
    pub fn register_enum(&mut self, oid: u32, array_oid: Option<u32>) {
        self.types.register_enum(oid, array_oid);
    }

    pub fn types(&self) -> &TypeRegistry {
        &self.types
    }

    pub fn types_mut(&mut self) -> &mut TypeRegistry {
        &mut self.types
    }

    /// The current description of a relation, if one was received.
    pub fn relation(&self, oid: u32) -> Option<&Arc<Relation>> {
        self.relations.get(&oid)
    }

    /// End LSN of the last transaction skipped for its origin.
    pub fn last_skipped_end_lsn(&self) -> Option<Lsn> {
        self.last_skipped_end
    }

    /// Bytes of buffered transactions held in memory right now.
    pub fn buffered_memory(&self) -> usize {
        self.buffered_mem
    }

    /// Bytes written to spill files since this assembler was created.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_total
    }

    /// Streamed plus prepared transactions not yet committed or aborted.
    pub fn pending_transactions(&self) -> usize {
        self.streams.len() + self.prepared.len()
    }

    /// Decode one message (`wal_start` is its WAL position) and queue the events it
    /// completes. Call [`next_event`](Self::next_event) until it returns `None` after
    /// each push.
    pub fn push(&mut self, wal_start: Lsn, data: &[u8]) -> Result<()> {
        let msg = decode(data, &self.ctx).map_err(|source| AssemblerError::Decode {
            lsn: wal_start,
            source,
        })?;
        let in_stream = self.ctx.in_stream;
        self.ctx.observe(&msg);
        if in_stream {
            self.on_streamed(wal_start, data, msg)
        } else {
            self.on_message(wal_start, data, msg)
        }
    }

    /// The next event in commit order, or `None` when everything pushed so far has been
    /// emitted. A committed buffered transaction is decoded lazily, one change per call.
    pub fn next_event(&mut self) -> Result<Option<TxEvent>> {
        loop {
            match self.out.front_mut() {
                None => return Ok(None),
                Some(Output::Replay(replay)) => {
                    if let Some(e) = replay_next(replay, &self.types)? {
                        return Ok(Some(e));
                    }
                    self.out.pop_front();
                }
                Some(Output::Event(_)) => {
                    if let Some(Output::Event(e)) = self.out.pop_front() {
                        return Ok(Some(e));
                    }
                }
            }
        }
    }

    fn emit(&mut self, e: TxEvent) {
        self.out.push_back(Output::Event(e));
    }

    fn protocol(lsn: Lsn, message: &'static str, detail: &'static str) -> AssemblerError {
        AssemblerError::Protocol {
            lsn,
            message,
            detail,
        }
    }

    /// A message outside any streamed block: one handler per kind.
    fn on_message(&mut self, lsn: Lsn, data: &[u8], msg: LogicalMessage<'_>) -> Result<()> {
        let kind = msg.kind();
        match msg {
            LogicalMessage::Begin {
                final_lsn,
                commit_time,
                xid,
            } => self.on_begin(lsn, kind, xid, final_lsn, commit_time),
            LogicalMessage::Commit {
                commit_lsn,
                end_lsn,
                commit_time,
                ..
            } => self.on_commit(lsn, kind, commit_lsn, end_lsn, commit_time),
            LogicalMessage::Origin { name, .. } => self.on_origin(lsn, kind, name),
            LogicalMessage::Relation { relation, .. } => {
                self.relations.insert(relation.oid, Arc::new(relation));
                Ok(())
            }
            LogicalMessage::Type {
                oid, schema, name, ..
            } => {
                self.types.learn_type(oid, &schema, &name);
                Ok(())
            }
            LogicalMessage::Message {
                transactional: false,
                lsn: msg_lsn,
                prefix,
                content,
                ..
            } => {
                self.emit_message(msg_lsn, prefix, content);
                Ok(())
            }
            LogicalMessage::Insert { .. }
            | LogicalMessage::Update { .. }
            | LogicalMessage::Delete { .. }
            | LogicalMessage::Truncate { .. }
            | LogicalMessage::Message { .. } => self.on_change(lsn, data, msg),
            LogicalMessage::StreamStart { xid, first_segment } => {
                self.on_stream_start(lsn, kind, xid, first_segment)
            }
            LogicalMessage::StreamStop => {
                Err(Self::protocol(lsn, kind, "no streamed block is open"))
            }
            LogicalMessage::StreamCommit {
                xid,
                commit_lsn,
                end_lsn,
                commit_time,
                ..
            } => self.on_stream_commit(lsn, kind, xid, commit_lsn, end_lsn, commit_time),
            LogicalMessage::StreamAbort { xid, subxid, .. } => {
                self.on_stream_abort(lsn, kind, xid, subxid)
            }
            LogicalMessage::BeginPrepare { xid, gid, .. } => {
                self.on_begin_prepare(lsn, kind, xid, gid)
            }
            LogicalMessage::Prepare(p) => self.on_prepare(lsn, kind, &p.gid),
            LogicalMessage::StreamPrepare(p) => self.on_stream_prepare(lsn, kind, p.xid, p.gid),
            LogicalMessage::CommitPrepared {
                commit_lsn,
                end_lsn,
                commit_time,
                gid,
                ..
            } => self.on_commit_prepared(lsn, kind, &gid, commit_lsn, end_lsn, commit_time),
            LogicalMessage::RollbackPrepared { gid, .. } => {
                self.on_rollback_prepared(lsn, kind, &gid)
            }
        }
    }

    /// Begin: a plain transaction opens; its Begin event waits for a possible Origin.
    fn on_begin(
        &mut self,
        lsn: Lsn,
        kind: &'static str,
        xid: u32,
        final_lsn: Lsn,
        commit_time: DateTime<Utc>,
    ) -> Result<()> {
        self.expect_idle(lsn, kind)?;
        self.drop_stale_stream(xid);
        self.state = State::Plain(PlainTxn {
            xid,
            final_lsn,
            commit_time,
            origin: None,
            begin_sent: false,
            skip: false,
        });
        Ok(())
    }

    /// Commit of a plain transaction: emitted (with its Begin, if no change sent it), or
    /// only remembered when its origin is skipped.
    fn on_commit(
        &mut self,
        lsn: Lsn,
        kind: &'static str,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: DateTime<Utc>,
    ) -> Result<()> {
        let State::Plain(txn) = std::mem::replace(&mut self.state, State::Idle) else {
            return Err(Self::protocol(lsn, kind, "no transaction is open"));
        };
        if txn.skip {
            self.last_skipped_end = Some(end_lsn);
            return Ok(());
        }
        if !txn.begin_sent {
            self.emit(TxEvent::Begin {
                xid: txn.xid,
                commit_lsn: txn.final_lsn,
                commit_time: txn.commit_time,
                origin: txn.origin,
            });
        }
        self.emit(TxEvent::Commit {
            xid: txn.xid,
            commit_lsn,
            end_lsn,
            commit_time,
        });
        Ok(())
    }

    /// Origin: names the open transaction's origin; pgforce's own origin is skipped.
    fn on_origin(&mut self, lsn: Lsn, kind: &'static str, name: String) -> Result<()> {
        let skip = self
            .config
            .skip_origins
            .iter()
            .any(|o| o.as_str() == name.as_str());
        match &mut self.state {
            State::Plain(txn) => {
                txn.origin = Some(name);
                txn.skip |= skip;
            }
            State::Preparing { txn, .. } => {
                txn.origin = Some(name);
                txn.skip |= skip;
            }
            State::Idle => return Err(Self::protocol(lsn, kind, "no transaction is open")),
        }
        Ok(())
    }

    /// A non-transactional logical message goes out at once.
    fn emit_message(&mut self, lsn: Lsn, prefix: String, content: &[u8]) {
        self.emit(TxEvent::Message {
            lsn,
            prefix,
            content: content.to_vec(),
        });
    }

    /// Stream Start: a streamed block of `xid` opens (its first, or a later segment).
    fn on_stream_start(
        &mut self,
        lsn: Lsn,
        kind: &'static str,
        xid: u32,
        first_segment: bool,
    ) -> Result<()> {
        self.expect_idle(lsn, kind)?;
        self.stream = Some(xid);
        if first_segment {
            if let Some(old) = self.streams.insert(xid, BufferedTxn::new(xid)) {
                // Only after a reconnect; start over.
                self.release(old.buffer.mem_len());
            }
        } else if !self.streams.contains_key(&xid) {
            return Err(AssemblerError::MissingStreamStart { lsn, xid });
        }
        Ok(())
    }

    /// Stream Commit: the streamed transaction is queued for emission.
    fn on_stream_commit(
        &mut self,
        lsn: Lsn,
        kind: &'static str,
        xid: u32,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: DateTime<Utc>,
    ) -> Result<()> {
        self.expect_idle(lsn, kind)?;
        // A commit for a transaction we hold nothing for emits an empty one.
        let txn = self
            .streams
            .remove(&xid)
            .unwrap_or_else(|| BufferedTxn::new(xid));
        self.release(txn.buffer.mem_len());
        self.relations
            .extend(txn.overlay.iter().map(|(k, v)| (*k, v.clone())));
        self.finish_buffered(txn, commit_lsn, end_lsn, commit_time)
    }

    /// Stream Abort: the whole streamed transaction, or one of its subtransactions.
    fn on_stream_abort(
        &mut self,
        lsn: Lsn,
        kind: &'static str,
        xid: u32,
        subxid: u32,
    ) -> Result<()> {
        self.expect_idle(lsn, kind)?;
        if xid == subxid {
            if let Some(txn) = self.streams.remove(&xid) {
                self.release(txn.buffer.mem_len());
            }
        } else if let Some(txn) = self.streams.get_mut(&xid) {
            txn.aborted_subxids.insert(subxid);
        }
        Ok(())
    }

    /// Begin Prepare: a two-phase transaction opens and is buffered until its outcome.
    fn on_begin_prepare(
        &mut self,
        lsn: Lsn,
        kind: &'static str,
        xid: u32,
        gid: String,
    ) -> Result<()> {
        self.expect_idle(lsn, kind)?;
        self.drop_stale_stream(xid);
        self.state = State::Preparing {
            gid,
            txn: Box::new(BufferedTxn::new(xid)),
        };
        Ok(())
    }

    /// Prepare: the buffered transaction waits for Commit or Rollback Prepared.
    fn on_prepare(&mut self, lsn: Lsn, kind: &'static str, prepared_gid: &str) -> Result<()> {
        let State::Preparing { gid, txn } = std::mem::replace(&mut self.state, State::Idle) else {
            return Err(Self::protocol(lsn, kind, "no Begin Prepare is open"));
        };
        if gid != prepared_gid {
            return Err(Self::protocol(lsn, kind, "GID differs from Begin Prepare"));
        }
        self.store_prepared(gid, *txn);
        Ok(())
    }

    /// Stream Prepare: a streamed transaction becomes a prepared one.
    fn on_stream_prepare(
        &mut self,
        lsn: Lsn,
        kind: &'static str,
        xid: u32,
        gid: String,
    ) -> Result<()> {
        self.expect_idle(lsn, kind)?;
        let txn = self
            .streams
            .remove(&xid)
            .unwrap_or_else(|| BufferedTxn::new(xid));
        self.relations
            .extend(txn.overlay.iter().map(|(k, v)| (*k, v.clone())));
        self.store_prepared(gid, txn);
        Ok(())
    }

    /// Commit Prepared: the prepared transaction is queued for emission.
    fn on_commit_prepared(
        &mut self,
        lsn: Lsn,
        kind: &'static str,
        gid: &str,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: DateTime<Utc>,
    ) -> Result<()> {
        self.expect_idle(lsn, kind)?;
        let txn = self
            .prepared
            .remove(gid)
            .ok_or_else(|| AssemblerError::UnknownPrepared {
                lsn,
                gid: gid.to_string(),
            })?;
        self.release(txn.buffer.mem_len());
        self.finish_buffered(txn, commit_lsn, end_lsn, commit_time)
    }

    /// Rollback Prepared: the prepared transaction is dropped.
    fn on_rollback_prepared(&mut self, lsn: Lsn, kind: &'static str, gid: &str) -> Result<()> {
        self.expect_idle(lsn, kind)?;
        if let Some(txn) = self.prepared.remove(gid) {
            self.release(txn.buffer.mem_len());
        }
        Ok(())
    }

    fn expect_idle(&self, lsn: Lsn, kind: &'static str) -> Result<()> {
        if matches!(self.state, State::Idle) {
            Ok(())
        } else {
            Err(Self::protocol(lsn, kind, "a transaction is still open"))
        }
    }

    /// A change (DML, Truncate, transactional Message) outside a streamed block.
    fn on_change(&mut self, lsn: Lsn, data: &[u8], msg: LogicalMessage<'_>) -> Result<()> {
        match &mut self.state {
            State::Idle => return Err(Self::protocol(lsn, msg.kind(), "no transaction is open")),
            State::Plain(txn) => {
                if txn.skip {
                    return Ok(());
                }
                if !txn.begin_sent {
                    txn.begin_sent = true;
                    let begin = TxEvent::Begin {
                        xid: txn.xid,
                        commit_lsn: txn.final_lsn,
                        commit_time: txn.commit_time,
                        origin: txn.origin.clone(),
                    };
                    self.out.push_back(Output::Event(begin));
                }
                let rels = resolve(lsn, &msg, &self.relations, None)?;
                if let Some(change) = to_change(lsn, msg, &rels, &self.types)? {
                    self.out.push_back(Output::Event(TxEvent::Change(change)));
                }
            }
            State::Preparing { txn, .. } => {
                if txn.skip {
                    return Ok(());
                }
                let rels = resolve(lsn, &msg, &self.relations, None)?;
                let xid = txn.xid;
                self.buffered_mem += txn.buffer.push(lsn, xid, false, &rels, data);
            }
        }
        self.enforce_memory_limit()
    }

    /// A message inside a streamed block (it carries its (sub)transaction xid).
    fn on_streamed(&mut self, lsn: Lsn, data: &[u8], msg: LogicalMessage<'_>) -> Result<()> {
        let kind = msg.kind();
        let Some(top) = self.stream else {
            return Err(Self::protocol(lsn, kind, "outside a streamed block"));
        };
        match msg {
            LogicalMessage::StreamStop => self.stream = None,
            LogicalMessage::Origin { ref name, .. } => {
                let skip = self
                    .config
                    .skip_origins
                    .iter()
                    .any(|o| o.as_str() == name.as_str());
                if let Some(txn) = self.streams.get_mut(&top) {
                    txn.origin = Some(name.clone());
                    txn.skip |= skip;
                }
            }
            LogicalMessage::Relation { relation, .. } => {
                if let Some(txn) = self.streams.get_mut(&top) {
                    txn.overlay.insert(relation.oid, Arc::new(relation));
                }
            }
            LogicalMessage::Type {
                oid,
                ref schema,
                ref name,
                ..
            } => self.types.learn_type(oid, schema, name),
            LogicalMessage::Message {
                transactional: false,
                lsn: msg_lsn,
                prefix,
                content,
                ..
            } => self.emit_message(msg_lsn, prefix, content),
            LogicalMessage::Insert { xid, .. }
            | LogicalMessage::Update { xid, .. }
            | LogicalMessage::Delete { xid, .. }
            | LogicalMessage::Truncate { xid, .. }
            | LogicalMessage::Message { xid, .. } => {
                let Some(txn) = self.streams.get_mut(&top) else {
                    return Err(Self::protocol(lsn, kind, "streamed transaction unknown"));
                };
                if txn.skip {
                    return Ok(());
                }
                let rels = resolve(lsn, &msg, &self.relations, Some(&txn.overlay))?;
                let subxid = xid.unwrap_or(top);
                self.buffered_mem += txn.buffer.push(lsn, subxid, true, &rels, data);
                self.enforce_memory_limit()?;
            }
            _ => {
                return Err(Self::protocol(
                    lsn,
                    kind,
                    "not allowed inside a streamed block",
                ))
            }
        }
        Ok(())
    }

    /// Account for buffered bytes leaving memory (saturating: a bookkeeping slip must
    /// not become a panic).
    fn release(&mut self, bytes: usize) {
        self.buffered_mem = self.buffered_mem.saturating_sub(bytes);
    }

    /// The server re-decodes from the slot's restart point after a reconnect (or between
    /// SQL-interface calls) and may then send a transaction it had begun streaming as a
    /// plain one: what we buffered from the earlier attempt is stale.
    fn drop_stale_stream(&mut self, xid: u32) {
        if let Some(old) = self.streams.remove(&xid) {
            self.release(old.buffer.mem_len());
        }
    }

    fn store_prepared(&mut self, gid: String, txn: BufferedTxn) {
        if let Some(old) = self.prepared.insert(gid, txn) {
            self.release(old.buffer.mem_len());
        }
    }

    /// Queue a committed buffered transaction for emission (or drop it if skipped).
    fn finish_buffered(
        &mut self,
        txn: BufferedTxn,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: DateTime<Utc>,
    ) -> Result<()> {
        if txn.skip {
            self.last_skipped_end = Some(end_lsn);
            return Ok(());
        }
        let replay = Replay {
            begin: Some(TxEvent::Begin {
                xid: txn.xid,
                commit_lsn,
                commit_time,
                origin: txn.origin,
            }),
            reader: txn.buffer.into_reader().map_err(AssemblerError::Spill)?,
            aborted: txn.aborted_subxids,
            commit: Some(TxEvent::Commit {
                xid: txn.xid,
                commit_lsn,
                end_lsn,
                commit_time,
            }),
        };
        self.out.push_back(Output::Replay(Box::new(replay)));
        Ok(())
    }

    /// Spill the largest buffered transactions until memory is under the limit.
    fn enforce_memory_limit(&mut self) -> Result<()> {
        while self.buffered_mem > self.config.memory_limit {
            let dir = self
                .config
                .spill_dir
                .clone()
                .unwrap_or_else(std::env::temp_dir);
            let largest = self
                .streams
                .values_mut()
                .chain(self.prepared.values_mut())
                .chain(match &mut self.state {
                    State::Preparing { txn, .. } => Some(&mut **txn),
                    _ => None,
                })
                .max_by_key(|t| t.buffer.mem_len());
            let Some(txn) = largest.filter(|t| t.buffer.mem_len() > 0) else {
                break;
            };
            let freed = txn.buffer.spill(&dir).map_err(AssemblerError::Spill)?;
            self.release(freed);
            self.spilled_total += freed as u64;
        }
        Ok(())
    }
}

/// The relations a change message refers to, from the overlay first, then the cache.
fn resolve(
    lsn: Lsn,
    msg: &LogicalMessage<'_>,
    cache: &HashMap<u32, Arc<Relation>>,
    overlay: Option<&HashMap<u32, Arc<Relation>>>,
) -> Result<Vec<Arc<Relation>>> {
    let lookup = |oid: u32| {
        overlay
            .and_then(|o| o.get(&oid))
            .or_else(|| cache.get(&oid))
            .cloned()
            .ok_or(AssemblerError::UnknownRelation {
                lsn,
                message: msg.kind(),
                oid,
            })
    };
    match msg {
        LogicalMessage::Insert { relation_oid, .. }
        | LogicalMessage::Update { relation_oid, .. }
        | LogicalMessage::Delete { relation_oid, .. } => Ok(vec![lookup(*relation_oid)?]),
        LogicalMessage::Truncate { relation_oids, .. } => {
            relation_oids.iter().map(|&oid| lookup(oid)).collect()
        }
        _ => Ok(Vec::new()),
    }
}

/// Build the change for a DML/Truncate/Message, given its resolved relations.
fn to_change(
    lsn: Lsn,
    msg: LogicalMessage<'_>,
    rels: &[Arc<Relation>],
    types: &TypeRegistry,
) -> Result<Option<Change>> {
    let row_err = |source| AssemblerError::Row { lsn, source };
    let rel = || {
        rels.first().cloned().ok_or(AssemblerError::Protocol {
            lsn,
            message: "change",
            detail: "no relation resolved",
        })
    };
    let change = match msg {
        LogicalMessage::Insert { new, .. } => {
            let relation = rel()?;
            let new = decode_row(&relation, &new, types).map_err(row_err)?;
            Change::Row(RowChange {
                relation,
                op: Operation::Insert,
                new: Some(new),
                old: None,
            })
        }
        LogicalMessage::Update { old, new, .. } => {
            let relation = rel()?;
            let old = match old {
                Some((_, t)) => Some(decode_row(&relation, &t, types).map_err(row_err)?),
                None => None,
            };
            let new = decode_row(&relation, &new, types).map_err(row_err)?;
            Change::Row(RowChange {
                relation,
                op: Operation::Update,
                new: Some(new),
                old,
            })
        }
        LogicalMessage::Delete { old, .. } => {
            let relation = rel()?;
            let old = decode_row(&relation, &old, types).map_err(row_err)?;
            Change::Row(RowChange {
                relation,
                op: Operation::Delete,
                new: None,
                old: Some(old),
            })
        }
        LogicalMessage::Truncate {
            cascade,
            restart_identity,
            ..
        } => Change::Truncate {
            relations: rels.to_vec(),
            cascade,
            restart_identity,
        },
        LogicalMessage::Message {
            prefix, content, ..
        } => Change::Message {
            prefix,
            content: content.to_vec(),
        },
        _ => return Ok(None),
    };
    Ok(Some(change))
}

/// The next event of a committed buffered transaction, or `None` when it is done.
fn replay_next(replay: &mut Replay, types: &TypeRegistry) -> Result<Option<TxEvent>> {
    if let Some(begin) = replay.begin.take() {
        return Ok(Some(begin));
    }
    while let Some(rec) = replay.reader.next_record().map_err(AssemblerError::Spill)? {
        if replay.aborted.contains(&rec.xid) {
            continue;
        }
        let ctx = DecodeContext {
            in_stream: rec.in_stream,
        };
        let msg = decode(&rec.bytes, &ctx).map_err(|source| AssemblerError::Decode {
            lsn: rec.lsn,
            source,
        })?;
        if let Some(change) = to_change(rec.lsn, msg, &rec.relations, types)? {
            return Ok(Some(TxEvent::Change(change)));
        }
    }
    Ok(replay.commit.take())
}
