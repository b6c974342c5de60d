//! The sub-messages carried inside CopyData during streaming replication: pure functions,
//! no I/O, so they can be fuzzed.
//!
//! Server → client: XLogData (`'w'`) carrying an output-plugin payload, and primary
//! keepalive (`'k'`). Client → server: standby status update (`'r'`). Timestamps are
//! microseconds since 2000-01-01 00:00 UTC. Any malformed input is a [`ProtocolError`],
//! never a panic.

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, TimeZone, Utc};

use crate::lsn::Lsn;

/// Tag of an XLogData message.
pub const XLOG_DATA_TAG: u8 = b'w';
/// Tag of a primary keepalive message.
pub const PRIMARY_KEEPALIVE_TAG: u8 = b'k';
/// Tag of a standby status update.
pub const STANDBY_STATUS_UPDATE_TAG: u8 = b'r';

/// Seconds between the Unix epoch and the Postgres epoch (2000-01-01).
const PG_EPOCH_UNIX_SECS: i64 = 946_684_800;

/// A CopyData payload the server sent while streaming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyDataMessage {
    /// A chunk of output-plugin data (one pgoutput message).
    XLogData {
        wal_start: Lsn,
        wal_end: Lsn,
        server_time: DateTime<Utc>,
        data: Bytes,
    },
    /// The server's heartbeat; `reply_requested` asks for a status update right away.
    PrimaryKeepalive {
        wal_end: Lsn,
        server_time: DateTime<Utc>,
        reply_requested: bool,
    },
}

/// Bytes that are not a valid replication sub-message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("empty CopyData message")]
    Empty,
    #[error("unknown CopyData message tag {0:#04x}")]
    UnknownTag(u8),
    #[error("truncated {what}: need {need} bytes, got {got}")]
    Truncated {
        what: &'static str,
        need: usize,
        got: usize,
    },
    #[error("{what} has {extra} unexpected trailing bytes")]
    Trailing { what: &'static str, extra: usize },
    #[error("server timestamp {0} µs is out of range")]
    TimestampOutOfRange(i64),
}

/// Parse one server CopyData payload.
pub fn parse_copy_data(data: Bytes) -> Result<CopyDataMessage, ProtocolError> {
    match data.first().copied() {
        None => Err(ProtocolError::Empty),
        Some(XLOG_DATA_TAG) => parse_xlog_data(data),
        Some(PRIMARY_KEEPALIVE_TAG) => parse_keepalive(&data),
        Some(tag) => Err(ProtocolError::UnknownTag(tag)),
    }
}

/// Header of XLogData: tag + wal_start + wal_end + server time.
const XLOG_HEADER_LEN: usize = 1 + 8 + 8 + 8;
/// Keepalive: tag + wal_end + server time + reply flag.
const KEEPALIVE_LEN: usize = 1 + 8 + 8 + 1;

fn parse_xlog_data(data: Bytes) -> Result<CopyDataMessage, ProtocolError> {
    let header = data
        .get(..XLOG_HEADER_LEN)
        .ok_or(ProtocolError::Truncated {
            what: "XLogData header",
            need: XLOG_HEADER_LEN,
            got: data.len(),
        })?;
    let wal_start = Lsn(read_u64(header, 1));
    let wal_end = Lsn(read_u64(header, 9));
    let server_time = pg_timestamp(read_u64(header, 17) as i64)?;
    Ok(CopyDataMessage::XLogData {
        wal_start,
        wal_end,
        server_time,
        data: data.slice(XLOG_HEADER_LEN..),
    })
}

fn parse_keepalive(data: &[u8]) -> Result<CopyDataMessage, ProtocolError> {
    let what = "primary keepalive";
    if data.len() < KEEPALIVE_LEN {
        return Err(ProtocolError::Truncated {
            what,
            need: KEEPALIVE_LEN,
            got: data.len(),
        });
    }
    if data.len() > KEEPALIVE_LEN {
        return Err(ProtocolError::Trailing {
            what,
            extra: data.len() - KEEPALIVE_LEN,
        });
    }
    Ok(CopyDataMessage::PrimaryKeepalive {
        wal_end: Lsn(read_u64(data, 1)),
        server_time: pg_timestamp(read_u64(data, 9) as i64)?,
        reply_requested: data.get(17).copied().unwrap_or(0) != 0,
    })
}

/// Big-endian u64 at `at`; callers have checked the length, and a short slice reads as 0.
fn read_u64(buf: &[u8], at: usize) -> u64 {
    buf.get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// Convert Postgres microseconds-since-2000 into a UTC time.
pub fn pg_timestamp(micros: i64) -> Result<DateTime<Utc>, ProtocolError> {
    let secs = micros.div_euclid(1_000_000);
    let sub_nanos = (micros.rem_euclid(1_000_000) * 1_000) as u32;
    secs.checked_add(PG_EPOCH_UNIX_SECS)
        .and_then(|unix| Utc.timestamp_opt(unix, sub_nanos).single())
        .ok_or(ProtocolError::TimestampOutOfRange(micros))
}

/// The current time as Postgres microseconds-since-2000.
pub fn pg_now_micros() -> i64 {
    let now = Utc::now();
    (now.timestamp() - PG_EPOCH_UNIX_SECS) * 1_000_000 + i64::from(now.timestamp_subsec_micros())
}

/// Positions reported in a standby status update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StandbyStatus {
    /// Last WAL position received.
    pub write: Lsn,
    /// Last position durably processed downstream; the slot may advance to here.
    pub flush: Lsn,
    /// Last position applied downstream (pgforce reports the same as `flush`).
    pub apply: Lsn,
    /// Ask the server to reply with a keepalive at once.
    pub reply_requested: bool,
}

/// Encode a standby status update (the CopyData payload, without the CopyData framing).
pub fn encode_standby_status(status: &StandbyStatus, client_time_micros: i64) -> Bytes {
    let mut buf = BytesMut::with_capacity(34);
    buf.put_u8(STANDBY_STATUS_UPDATE_TAG);
    buf.put_u64(status.write.0);
    buf.put_u64(status.flush.0);
    buf.put_u64(status.apply.0);
    buf.put_i64(client_time_micros);
    buf.put_u8(u8::from(status.reply_requested));
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn xlog(start: u64, end: u64, time: i64, payload: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(b'w');
        b.put_u64(start);
        b.put_u64(end);
        b.put_i64(time);
        b.put_slice(payload);
        b.freeze()
    }

    fn keepalive(end: u64, time: i64, reply: u8) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(b'k');
        b.put_u64(end);
        b.put_i64(time);
        b.put_u8(reply);
        b.freeze()
    }

    #[test]
    fn parses_xlog_data() {
        let msg = parse_copy_data(xlog(0x10, 0x20, 0, b"Bxyz")).unwrap();
        let CopyDataMessage::XLogData {
            wal_start,
            wal_end,
            server_time,
            data,
        } = msg
        else {
            panic!("not xlogdata");
        };
        assert_eq!((wal_start, wal_end), (Lsn(0x10), Lsn(0x20)));
        assert_eq!(server_time.to_rfc3339(), "2000-01-01T00:00:00+00:00");
        assert_eq!(&data[..], b"Bxyz");
    }

    #[test]
    fn parses_empty_xlog_payload() {
        let msg = parse_copy_data(xlog(1, 2, 1_000_000, b"")).unwrap();
        assert!(matches!(msg, CopyDataMessage::XLogData { data, .. } if data.is_empty()));
    }

    #[test]
    fn parses_keepalive() {
        let msg = parse_copy_data(keepalive(0xABCD, -1, 1)).unwrap();
        assert_eq!(
            msg,
            CopyDataMessage::PrimaryKeepalive {
                wal_end: Lsn(0xABCD),
                server_time: pg_timestamp(-1).unwrap(),
                reply_requested: true,
            }
        );
        let msg = parse_copy_data(keepalive(1, 0, 0)).unwrap();
        assert!(matches!(
            msg,
            CopyDataMessage::PrimaryKeepalive {
                reply_requested: false,
                ..
            }
        ));
    }

    #[test]
    fn rejects_truncated_and_unknown() {
        let full = xlog(1, 2, 3, b"");
        for cut in 0..full.len() {
            assert!(parse_copy_data(full.slice(..cut)).is_err(), "cut at {cut}");
        }
        let full = keepalive(1, 2, 0);
        for cut in 0..full.len() {
            assert!(parse_copy_data(full.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut long = BytesMut::from(&full[..]);
        long.put_u8(0);
        assert!(matches!(
            parse_copy_data(long.freeze()),
            Err(ProtocolError::Trailing { .. })
        ));
        assert_eq!(
            parse_copy_data(Bytes::from_static(b"zzz")),
            Err(ProtocolError::UnknownTag(b'z'))
        );
        assert_eq!(parse_copy_data(Bytes::new()), Err(ProtocolError::Empty));
    }

    #[test]
    fn extreme_timestamps_are_errors_not_panics() {
        assert!(parse_copy_data(keepalive(1, i64::MAX, 0)).is_err());
        assert!(parse_copy_data(keepalive(1, i64::MIN, 0)).is_err());
    }

    #[test]
    fn encodes_standby_status() {
        let status = StandbyStatus {
            write: Lsn(3),
            flush: Lsn(2),
            apply: Lsn(1),
            reply_requested: true,
        };
        let b = encode_standby_status(&status, 7);
        assert_eq!(b.len(), 34);
        assert_eq!(b[0], b'r');
        assert_eq!(read_u64(&b, 1), 3);
        assert_eq!(read_u64(&b, 9), 2);
        assert_eq!(read_u64(&b, 17), 1);
        assert_eq!(read_u64(&b, 25), 7);
        assert_eq!(b[33], 1);
    }

    #[test]
    fn now_is_after_2020() {
        assert!(pg_now_micros() > 20 * 365 * 86_400 * 1_000_000);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_copy_data(Bytes::from(bytes));
        }

        #[test]
        fn tagged_arbitrary_bytes_never_panic(
            tag in prop_oneof![Just(b'w'), Just(b'k')],
            rest in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut b = vec![tag];
            b.extend(rest);
            let _ = parse_copy_data(Bytes::from(b));
        }

        #[test]
        fn xlog_round_trips(start: u64, end: u64, time in -1_000_000_000_000_000i64..1_000_000_000_000_000, payload in proptest::collection::vec(any::<u8>(), 0..32)) {
            let msg = parse_copy_data(xlog(start, end, time, &payload)).unwrap();
            match msg {
                CopyDataMessage::XLogData { wal_start, wal_end, data, .. } => {
                    prop_assert_eq!(wal_start, Lsn(start));
                    prop_assert_eq!(wal_end, Lsn(end));
                    prop_assert_eq!(&data[..], &payload[..]);
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
