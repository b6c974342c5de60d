//! The pgoutput wire format: one CopyData payload (or one `data` row of
//! `pg_logical_slot_peek_binary_changes`) → one [`LogicalMessage`].
//!
//! Covers every message of logical replication protocol versions 1–4 as documented in
//! PostgreSQL's "Logical Replication Message Formats". Decoding is pure and total: any
//! byte string yields either a message or a typed [`DecodeError`]; nothing panics, and no
//! buffer is sized from a count before the bytes behind that count are known to exist.
//!
//! Two facts the bytes alone do not carry are supplied by [`DecodeContext`]:
//! - inside a streamed block (between Stream Start and Stream Stop, protocol v2+) the
//!   Insert/Update/Delete/Truncate/Relation/Type/Message messages carry an extra xid
//!   (the xid of the (sub)transaction that made the change). [`DecodeContext::observe`]
//!   tracks this for you.
//! - nothing else: the v4 Stream Abort fields (abort LSN and time, sent only with
//!   `streaming = parallel`) are recognised by the message length, which is exact.
//!
//! Tuple column values are borrowed from the input ([`ColumnData`]); turning them into
//! typed values needs the relation's column types and is done by [`super::row`].

use chrono::{DateTime, Utc};

use super::reader::Reader;
use crate::change::{Column, Relation, ReplicaIdentity};
use crate::lsn::Lsn;

/// Why a message could not be decoded. Offsets count from the first byte (the tag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty message: expected at least a one-byte tag")]
    Empty,
    #[error("unknown message tag {tag:#04x} ({:?})", *tag as char)]
    UnknownTag { tag: u8 },
    #[error("truncated {what} at offset {offset}: need {needed} bytes, {remaining} left")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
        remaining: usize,
    },
    #[error("{what} count {count} at offset {offset} needs at least {needed} bytes, only {remaining} left")]
    CountExceedsData {
        what: &'static str,
        offset: usize,
        count: usize,
        needed: usize,
        remaining: usize,
    },
    #[error("{what} at offset {offset} has a negative length {len}")]
    NegativeLength {
        what: &'static str,
        offset: usize,
        len: i32,
    },
    #[error("string {what} at offset {offset} has no NUL terminator")]
    UnterminatedString { what: &'static str, offset: usize },
    #[error("string {what} at offset {offset} is not valid UTF-8")]
    BadUtf8 { what: &'static str, offset: usize },
    #[error("timestamp {what} at offset {offset} is out of range ({micros} µs since 2000-01-01)")]
    TimestampOutOfRange {
        what: &'static str,
        offset: usize,
        micros: i64,
    },
    #[error("unknown replica identity {byte:#04x} at offset {offset}")]
    UnknownReplicaIdentity { byte: u8, offset: usize },
    #[error("unknown tuple column kind {kind:#04x} at offset {offset} (expected n, u, t or b)")]
    UnknownColumnKind { kind: u8, offset: usize },
    #[error("unexpected tuple marker {found:#04x} at offset {offset}: expected {expected}")]
    UnexpectedTupleMarker {
        found: u8,
        offset: usize,
        expected: &'static str,
    },
    #[error("{message} message has {remaining} unexpected trailing bytes at offset {offset}")]
    TrailingBytes {
        message: &'static str,
        offset: usize,
        remaining: usize,
    },
}

/// What the decoder must know about the position in the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeContext {
    /// Between Stream Start and Stream Stop: DML, Relation, Type and Message carry an xid.
    pub in_stream: bool,
}

impl DecodeContext {
    /// Update the context after `msg` was decoded (Stream Start enters a streamed block,
    /// Stream Stop leaves it).
    pub fn observe(&mut self, msg: &LogicalMessage<'_>) {
        match msg {
            LogicalMessage::StreamStart { .. } => self.in_stream = true,
            LogicalMessage::StreamStop => self.in_stream = false,
            _ => {}
        }
    }
}

/// One column of tuple data, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnData<'a> {
    /// 'n': SQL NULL.
    Null,
    /// 'u': an unchanged TOASTed value the server did not send.
    Unchanged,
    /// 't': the type's text output form (bytes as sent; UTF-8 is checked when parsed).
    Text(&'a [u8]),
    /// 'b': the type's binary send form.
    Binary(&'a [u8]),
}

/// Tuple data: one entry per published column, in relation column order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TupleData<'a> {
    pub columns: Vec<ColumnData<'a>>,
}

/// Which old row an Update or Delete carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldTupleKind {
    /// 'K': only the replica identity key columns are set (others are NULL).
    Key,
    /// 'O': the whole old row (REPLICA IDENTITY FULL).
    Full,
}

/// Fields shared by Prepare and Stream Prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareData {
    pub flags: u8,
    pub prepare_lsn: Lsn,
    pub end_lsn: Lsn,
    pub prepare_time: DateTime<Utc>,
    pub xid: u32,
    pub gid: String,
}

/// A decoded pgoutput message. `xid` fields marked "streamed only" are `Some` exactly
/// when the message was decoded inside a streamed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicalMessage<'a> {
    /// 'B'
    Begin {
        final_lsn: Lsn,
        commit_time: DateTime<Utc>,
        xid: u32,
    },
    /// 'C'
    Commit {
        flags: u8,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: DateTime<Utc>,
    },
    /// 'O'
    Origin { commit_lsn: Lsn, name: String },
    /// 'R': the xid is streamed only.
    Relation {
        xid: Option<u32>,
        relation: Relation,
    },
    /// 'Y': a non-builtin type a following Relation uses. `schema` is `pg_catalog` when
    /// the server sent an empty namespace. For a domain this names its base type.
    Type {
        xid: Option<u32>,
        oid: u32,
        schema: String,
        name: String,
    },
    /// 'I'
    Insert {
        xid: Option<u32>,
        relation_oid: u32,
        new: TupleData<'a>,
    },
    /// 'U': `old` is present for a changed key ('K') or REPLICA IDENTITY FULL ('O').
    Update {
        xid: Option<u32>,
        relation_oid: u32,
        old: Option<(OldTupleKind, TupleData<'a>)>,
        new: TupleData<'a>,
    },
    /// 'D'
    Delete {
        xid: Option<u32>,
        relation_oid: u32,
        old_kind: OldTupleKind,
        old: TupleData<'a>,
    },
    /// 'T'
    Truncate {
        xid: Option<u32>,
        cascade: bool,
        restart_identity: bool,
        relation_oids: Vec<u32>,
    },
    /// 'M': `pg_logical_emit_message`.
    Message {
        xid: Option<u32>,
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: &'a [u8],
    },
    /// 'S' (v2+)
    StreamStart { xid: u32, first_segment: bool },
    /// 'E' (v2+)
    StreamStop,
    /// 'c' (v2+)
    StreamCommit {
        xid: u32,
        flags: u8,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: DateTime<Utc>,
    },
    /// 'A' (v2+): `subxid == xid` aborts the whole transaction, otherwise only that
    /// subtransaction. `abort` (LSN and time) is sent on v4 with `streaming = parallel`.
    StreamAbort {
        xid: u32,
        subxid: u32,
        abort: Option<(Lsn, DateTime<Utc>)>,
    },
    /// 'b' (v3+)
    BeginPrepare {
        prepare_lsn: Lsn,
        end_lsn: Lsn,
        prepare_time: DateTime<Utc>,
        xid: u32,
        gid: String,
    },
    /// 'P' (v3+)
    Prepare(PrepareData),
    /// 'K' (v3+)
    CommitPrepared {
        flags: u8,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: DateTime<Utc>,
        xid: u32,
        gid: String,
    },
    /// 'r' (v3+)
    RollbackPrepared {
        flags: u8,
        prepare_end_lsn: Lsn,
        rollback_end_lsn: Lsn,
        prepare_time: DateTime<Utc>,
        rollback_time: DateTime<Utc>,
        xid: u32,
        gid: String,
    },
    /// 'p' (v3+)
    StreamPrepare(PrepareData),
}

impl LogicalMessage<'_> {
    /// A short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            LogicalMessage::Begin { .. } => "Begin",
            LogicalMessage::Commit { .. } => "Commit",
            LogicalMessage::Origin { .. } => "Origin",
            LogicalMessage::Relation { .. } => "Relation",
            LogicalMessage::Type { .. } => "Type",
            LogicalMessage::Insert { .. } => "Insert",
            LogicalMessage::Update { .. } => "Update",
            LogicalMessage::Delete { .. } => "Delete",
            LogicalMessage::Truncate { .. } => "Truncate",
            LogicalMessage::Message { .. } => "Message",
            LogicalMessage::StreamStart { .. } => "Stream Start",
            LogicalMessage::StreamStop => "Stream Stop",
            LogicalMessage::StreamCommit { .. } => "Stream Commit",
            LogicalMessage::StreamAbort { .. } => "Stream Abort",
            LogicalMessage::BeginPrepare { .. } => "Begin Prepare",
            LogicalMessage::Prepare(_) => "Prepare",
            LogicalMessage::CommitPrepared { .. } => "Commit Prepared",
            LogicalMessage::RollbackPrepared { .. } => "Rollback Prepared",
            LogicalMessage::StreamPrepare(_) => "Stream Prepare",
        }
    }
}

/// Decode one pgoutput message.
pub fn decode<'a>(data: &'a [u8], ctx: &DecodeContext) -> Result<LogicalMessage<'a>, DecodeError> {
    let (&tag, _) = data.split_first().ok_or(DecodeError::Empty)?;
    let mut r = Reader::new(data);
    r.u8("tag")?;
    let (msg, name) = match tag {
        b'B' => (begin(&mut r)?, "Begin"),
        b'C' => (commit(&mut r)?, "Commit"),
        b'O' => (origin(&mut r)?, "Origin"),
        b'R' => (relation(&mut r, ctx)?, "Relation"),
        b'Y' => (type_msg(&mut r, ctx)?, "Type"),
        b'I' => (insert(&mut r, ctx)?, "Insert"),
        b'U' => (update(&mut r, ctx)?, "Update"),
        b'D' => (delete(&mut r, ctx)?, "Delete"),
        b'T' => (truncate(&mut r, ctx)?, "Truncate"),
        b'M' => (message(&mut r, ctx)?, "Message"),
        b'S' => (stream_start(&mut r)?, "Stream Start"),
        b'E' => (LogicalMessage::StreamStop, "Stream Stop"),
        b'c' => (stream_commit(&mut r)?, "Stream Commit"),
        b'A' => (stream_abort(&mut r)?, "Stream Abort"),
        b'b' => (begin_prepare(&mut r)?, "Begin Prepare"),
        b'P' => (LogicalMessage::Prepare(prepare_data(&mut r)?), "Prepare"),
        b'K' => (commit_prepared(&mut r)?, "Commit Prepared"),
        b'r' => (rollback_prepared(&mut r)?, "Rollback Prepared"),
        b'p' => (
            LogicalMessage::StreamPrepare(prepare_data(&mut r)?),
            "Stream Prepare",
        ),
        tag => return Err(DecodeError::UnknownTag { tag }),
    };
    r.finish(name)?;
    Ok(msg)
}

fn stream_xid(r: &mut Reader<'_>, ctx: &DecodeContext) -> Result<Option<u32>, DecodeError> {
    if ctx.in_stream {
        Ok(Some(r.u32("xid")?))
    } else {
        Ok(None)
    }
}

fn begin<'a>(r: &mut Reader<'a>) -> Result<LogicalMessage<'a>, DecodeError> {
    Ok(LogicalMessage::Begin {
        final_lsn: r.lsn("final LSN")?,
        commit_time: r.timestamp("commit time")?,
        xid: r.u32("xid")?,
    })
}

fn commit<'a>(r: &mut Reader<'a>) -> Result<LogicalMessage<'a>, DecodeError> {
    Ok(LogicalMessage::Commit {
        flags: r.u8("flags")?,
        commit_lsn: r.lsn("commit LSN")?,
        end_lsn: r.lsn("end LSN")?,
        commit_time: r.timestamp("commit time")?,
    })
}

fn origin<'a>(r: &mut Reader<'a>) -> Result<LogicalMessage<'a>, DecodeError> {
    Ok(LogicalMessage::Origin {
        commit_lsn: r.lsn("origin commit LSN")?,
        name: r.cstr("origin name")?.to_string(),
    })
}

/// An empty namespace on the wire means `pg_catalog`.
fn namespace(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let ns = r.cstr("namespace")?;
    Ok(if ns.is_empty() { "pg_catalog" } else { ns }.to_string())
}

fn relation<'a>(
    r: &mut Reader<'a>,
    ctx: &DecodeContext,
) -> Result<LogicalMessage<'a>, DecodeError> {
    let xid = stream_xid(r, ctx)?;
    let oid = r.u32("relation OID")?;
    let schema = namespace(r)?;
    let name = r.cstr("relation name")?.to_string();
    let ident_offset = r.offset();
    let replica_identity = match r.u8("replica identity")? {
        b'd' => ReplicaIdentity::Default,
        b'n' => ReplicaIdentity::Nothing,
        b'f' => ReplicaIdentity::Full,
        b'i' => ReplicaIdentity::Index,
        byte => {
            return Err(DecodeError::UnknownReplicaIdentity {
                byte,
                offset: ident_offset,
            })
        }
    };
    let count = usize::from(r.u16("column count")?);
    // flags (1) + name terminator (1) + type OID (4) + type modifier (4)
    r.check_count("column", count, 10)?;
    let mut columns = Vec::with_capacity(count);
    for _ in 0..count {
        let flags = r.u8("column flags")?;
        columns.push(Column {
            name: r.cstr("column name")?.to_string(),
            type_oid: r.u32("column type OID")?,
            type_modifier: r.i32("column type modifier")?,
            is_key: flags & 1 != 0,
        });
    }
    Ok(LogicalMessage::Relation {
        xid,
        relation: Relation {
            oid,
            schema,
            name,
            replica_identity,
            columns,
        },
    })
}

fn type_msg<'a>(
    r: &mut Reader<'a>,
    ctx: &DecodeContext,
) -> Result<LogicalMessage<'a>, DecodeError> {
    Ok(LogicalMessage::Type {
        xid: stream_xid(r, ctx)?,
        oid: r.u32("type OID")?,
        schema: namespace(r)?,
        name: r.cstr("type name")?.to_string(),
    })
}

fn tuple<'a>(r: &mut Reader<'a>) -> Result<TupleData<'a>, DecodeError> {
    let count = usize::from(r.u16("tuple column count")?);
    r.check_count("tuple column", count, 1)?;
    let mut columns = Vec::with_capacity(count);
    for _ in 0..count {
        let offset = r.offset();
        let col = match r.u8("column kind")? {
            b'n' => ColumnData::Null,
            b'u' => ColumnData::Unchanged,
            b't' => ColumnData::Text(r.counted_bytes("text column value")?),
            b'b' => ColumnData::Binary(r.counted_bytes("binary column value")?),
            kind => return Err(DecodeError::UnknownColumnKind { kind, offset }),
        };
        columns.push(col);
    }
    Ok(TupleData { columns })
}

fn expect_marker(
    r: &mut Reader<'_>,
    marker: u8,
    expected: &'static str,
) -> Result<(), DecodeError> {
    let offset = r.offset();
    let found = r.u8("tuple marker")?;
    if found != marker {
        return Err(DecodeError::UnexpectedTupleMarker {
            found,
            offset,
            expected,
        });
    }
    Ok(())
}

fn insert<'a>(r: &mut Reader<'a>, ctx: &DecodeContext) -> Result<LogicalMessage<'a>, DecodeError> {
    let xid = stream_xid(r, ctx)?;
    let relation_oid = r.u32("relation OID")?;
    expect_marker(r, b'N', "'N' (new tuple)")?;
    Ok(LogicalMessage::Insert {
        xid,
        relation_oid,
        new: tuple(r)?,
    })
}

fn update<'a>(r: &mut Reader<'a>, ctx: &DecodeContext) -> Result<LogicalMessage<'a>, DecodeError> {
    let xid = stream_xid(r, ctx)?;
    let relation_oid = r.u32("relation OID")?;
    let offset = r.offset();
    let old = match r.u8("tuple marker")? {
        b'K' => Some((OldTupleKind::Key, tuple(r)?)),
        b'O' => Some((OldTupleKind::Full, tuple(r)?)),
        b'N' => None,
        found => {
            return Err(DecodeError::UnexpectedTupleMarker {
                found,
                offset,
                expected: "'K', 'O' or 'N'",
            })
        }
    };
    if old.is_some() {
        expect_marker(r, b'N', "'N' (new tuple)")?;
    }
    Ok(LogicalMessage::Update {
        xid,
        relation_oid,
        old,
        new: tuple(r)?,
    })
}

fn delete<'a>(r: &mut Reader<'a>, ctx: &DecodeContext) -> Result<LogicalMessage<'a>, DecodeError> {
    let xid = stream_xid(r, ctx)?;
    let relation_oid = r.u32("relation OID")?;
    let offset = r.offset();
    let old_kind = match r.u8("tuple marker")? {
        b'K' => OldTupleKind::Key,
        b'O' => OldTupleKind::Full,
        found => {
            return Err(DecodeError::UnexpectedTupleMarker {
                found,
                offset,
                expected: "'K' or 'O'",
            })
        }
    };
    Ok(LogicalMessage::Delete {
        xid,
        relation_oid,
        old_kind,
        old: tuple(r)?,
    })
}

fn truncate<'a>(
    r: &mut Reader<'a>,
    ctx: &DecodeContext,
) -> Result<LogicalMessage<'a>, DecodeError> {
    let xid = stream_xid(r, ctx)?;
    let count = r.u32("relation count")? as usize;
    let flags = r.u8("truncate flags")?;
    r.check_count("truncated relation", count, 4)?;
    let mut relation_oids = Vec::with_capacity(count);
    for _ in 0..count {
        relation_oids.push(r.u32("relation OID")?);
    }
    Ok(LogicalMessage::Truncate {
        xid,
        cascade: flags & 1 != 0,
        restart_identity: flags & 2 != 0,
        relation_oids,
    })
}

fn message<'a>(r: &mut Reader<'a>, ctx: &DecodeContext) -> Result<LogicalMessage<'a>, DecodeError> {
    let xid = stream_xid(r, ctx)?;
    let flags = r.u8("message flags")?;
    Ok(LogicalMessage::Message {
        xid,
        transactional: flags & 1 != 0,
        lsn: r.lsn("message LSN")?,
        prefix: r.cstr("message prefix")?.to_string(),
        content: r.counted_bytes("message content")?,
    })
}

fn stream_start<'a>(r: &mut Reader<'a>) -> Result<LogicalMessage<'a>, DecodeError> {
    Ok(LogicalMessage::StreamStart {
        xid: r.u32("xid")?,
        first_segment: r.u8("first segment flag")? == 1,
    })
}

fn stream_commit<'a>(r: &mut Reader<'a>) -> Result<LogicalMessage<'a>, DecodeError> {
    Ok(LogicalMessage::StreamCommit {
        xid: r.u32("xid")?,
        flags: r.u8("flags")?,
        commit_lsn: r.lsn("commit LSN")?,
        end_lsn: r.lsn("end LSN")?,
        commit_time: r.timestamp("commit time")?,
    })
}

fn stream_abort<'a>(r: &mut Reader<'a>) -> Result<LogicalMessage<'a>, DecodeError> {
    let xid = r.u32("xid")?;
    let subxid = r.u32("subtransaction xid")?;
    // The v4 parallel-streaming fields are present exactly when the bytes are.
    let abort = if r.remaining() == 0 {
        None
    } else {
        Some((r.lsn("abort LSN")?, r.timestamp("abort time")?))
    };
    Ok(LogicalMessage::StreamAbort { xid, subxid, abort })
}

fn begin_prepare<'a>(r: &mut Reader<'a>) -> Result<LogicalMessage<'a>, DecodeError> {
    Ok(LogicalMessage::BeginPrepare {
        prepare_lsn: r.lsn("prepare LSN")?,
        end_lsn: r.lsn("end LSN")?,
        prepare_time: r.timestamp("prepare time")?,
        xid: r.u32("xid")?,
        gid: r.cstr("gid")?.to_string(),
    })
}

fn prepare_data(r: &mut Reader<'_>) -> Result<PrepareData, DecodeError> {
    Ok(PrepareData {
        flags: r.u8("flags")?,
        prepare_lsn: r.lsn("prepare LSN")?,
        end_lsn: r.lsn("end LSN")?,
        prepare_time: r.timestamp("prepare time")?,
        xid: r.u32("xid")?,
        gid: r.cstr("gid")?.to_string(),
    })
}

fn commit_prepared<'a>(r: &mut Reader<'a>) -> Result<LogicalMessage<'a>, DecodeError> {
    Ok(LogicalMessage::CommitPrepared {
        flags: r.u8("flags")?,
        commit_lsn: r.lsn("commit LSN")?,
        end_lsn: r.lsn("end LSN")?,
        commit_time: r.timestamp("commit time")?,
        xid: r.u32("xid")?,
        gid: r.cstr("gid")?.to_string(),
    })
}

fn rollback_prepared<'a>(r: &mut Reader<'a>) -> Result<LogicalMessage<'a>, DecodeError> {
    Ok(LogicalMessage::RollbackPrepared {
        flags: r.u8("flags")?,
        prepare_end_lsn: r.lsn("prepare end LSN")?,
        rollback_end_lsn: r.lsn("rollback end LSN")?,
        prepare_time: r.timestamp("prepare time")?,
        rollback_time: r.timestamp("rollback time")?,
        xid: r.u32("xid")?,
        gid: r.cstr("gid")?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> DecodeContext {
        DecodeContext::default()
    }

    #[test]
    fn begin_round_trip() {
        let mut b = vec![b'B'];
        b.extend_from_slice(&0x16_B374_D848u64.to_be_bytes());
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&742u32.to_be_bytes());
        let m = decode(&b, &ctx()).unwrap();
        assert_eq!(
            m,
            LogicalMessage::Begin {
                final_lsn: Lsn(0x16_B374_D848),
                commit_time: "2000-01-01T00:00:00Z".parse().unwrap(),
                xid: 742
            }
        );
    }

    #[test]
    fn empty_and_unknown_tag() {
        assert_eq!(decode(&[], &ctx()), Err(DecodeError::Empty));
        assert_eq!(
            decode(b"Z", &ctx()),
            Err(DecodeError::UnknownTag { tag: b'Z' })
        );
    }

    #[test]
    fn huge_column_count_with_few_bytes_is_an_error() {
        let mut b = vec![b'I'];
        b.extend_from_slice(&16384u32.to_be_bytes());
        b.push(b'N');
        b.extend_from_slice(&65535u16.to_be_bytes());
        b.extend_from_slice(b"nnn");
        match decode(&b, &ctx()) {
            Err(DecodeError::CountExceedsData { count: 65535, .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn streamed_insert_carries_xid() {
        let mut b = vec![b'I'];
        b.extend_from_slice(&900u32.to_be_bytes());
        b.extend_from_slice(&16384u32.to_be_bytes());
        b.push(b'N');
        b.extend_from_slice(&2u16.to_be_bytes());
        b.push(b'n');
        b.push(b't');
        b.extend_from_slice(&2i32.to_be_bytes());
        b.extend_from_slice(b"42");
        let m = decode(&b, &DecodeContext { in_stream: true }).unwrap();
        assert_eq!(
            m,
            LogicalMessage::Insert {
                xid: Some(900),
                relation_oid: 16384,
                new: TupleData {
                    columns: vec![ColumnData::Null, ColumnData::Text(b"42")]
                }
            }
        );
        // The same bytes outside a stream read the xid as the relation OID and fail.
        assert!(decode(&b, &ctx()).is_err());
    }

    #[test]
    fn negative_text_length_is_an_error() {
        let mut b = vec![b'I'];
        b.extend_from_slice(&1u32.to_be_bytes());
        b.push(b'N');
        b.extend_from_slice(&1u16.to_be_bytes());
        b.push(b't');
        b.extend_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(
            decode(&b, &ctx()),
            Err(DecodeError::NegativeLength { .. })
        ));
    }

    #[test]
    fn stream_abort_with_and_without_parallel_fields() {
        let mut b = vec![b'A'];
        b.extend_from_slice(&10u32.to_be_bytes());
        b.extend_from_slice(&11u32.to_be_bytes());
        assert_eq!(
            decode(&b, &ctx()).unwrap(),
            LogicalMessage::StreamAbort {
                xid: 10,
                subxid: 11,
                abort: None
            }
        );
        b.extend_from_slice(&77u64.to_be_bytes());
        b.extend_from_slice(&1_000_000i64.to_be_bytes());
        assert_eq!(
            decode(&b, &ctx()).unwrap(),
            LogicalMessage::StreamAbort {
                xid: 10,
                subxid: 11,
                abort: Some((Lsn(77), "2000-01-01T00:00:01Z".parse().unwrap()))
            }
        );
        b.pop();
        assert!(matches!(
            decode(&b, &ctx()),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        assert!(matches!(
            decode(b"Ex", &ctx()),
            Err(DecodeError::TrailingBytes { .. })
        ));
    }
}
