//! The event bus of change events: an append-only, in-memory log with replay ids, retention
//! and a wake-up signal for subscribers.
//!
//! Replay ids are opaque to clients; here they are 8-byte big-endian encodings of a
//! counter that only grows (the first event gets 1; 0 means "before every event"). Events
//! older than the retention window (72 h by default, on the emulator clock) are dropped; a
//! replay id from before the oldest retained event is *expired*, one never issued (or not
//! 8 bytes long) is *corrupted*: both are refused, as Salesforce refuses them.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

/// Produces an event's payload when a subscriber first reads it.
pub trait Encode: Send + Sync + fmt::Debug {
    /// The Avro binary payload.
    fn encode(&self) -> Vec<u8>;
}

/// An event's Avro payload, encoded at most once and only when first read: publishing a
/// change costs a small record of it, not its encoding (a million-row Bulk insert publishes
/// a million events that no subscriber may ever read). What the payload says is fixed when
/// the event is published (the rows it reads are immutable snapshots).
pub struct Payload(Mutex<PayloadState>);

/// Where a [`Payload`] is.
enum PayloadState {
    /// Encoded.
    Ready(Vec<u8>),
    /// Still to encode.
    Deferred(Box<dyn Encode>),
}

impl Payload {
    /// A payload already encoded.
    pub fn ready(bytes: Vec<u8>) -> Payload {
        Payload(Mutex::new(PayloadState::Ready(bytes)))
    }

    /// A payload `source` encodes on first read.
    pub fn deferred(source: Box<dyn Encode>) -> Payload {
        Payload(Mutex::new(PayloadState::Deferred(source)))
    }

    /// The payload bytes (encoded now if this is the first read).
    pub fn bytes(&self) -> Vec<u8> {
        let mut state = self.0.lock();
        if let PayloadState::Deferred(source) = &*state {
            *state = PayloadState::Ready(source.encode());
        }
        match &*state {
            PayloadState::Ready(b) => b.clone(),
            PayloadState::Deferred(_) => Vec::new(),
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0.lock() {
            PayloadState::Ready(b) => write!(f, "Payload({} bytes)", b.len()),
            PayloadState::Deferred(_) => f.write_str("Payload(deferred)"),
        }
    }
}

impl Clone for Payload {
    fn clone(&self) -> Payload {
        Payload::ready(self.bytes())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Payload {}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Payload {
        Payload::ready(bytes)
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Replay id (as a number).
    pub replay: u64,
    /// Object name (`Account`), shared by the object's events.
    pub entity: Arc<str>,
    /// The schema id of the payload, shared by the object's events.
    pub schema_id: Arc<str>,
    /// Avro binary payload.
    pub payload: Payload,
    /// Commit time, epoch ms (retention).
    pub at_ms: i64,
    /// Mixed with the replay number into the event's UUID (the log's [`EventLog::salt`]).
    salt: u64,
}

impl StoredEvent {
    /// The event's UUID (`ProducerEvent.id`): derived from the replay number, so it is
    /// unique within the log and costs no storage.
    pub fn id(&self) -> String {
        let hi = splitmix64(self.salt ^ self.replay);
        let lo = splitmix64(hi ^ self.salt.rotate_left(17));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&hi.to_be_bytes());
        bytes[8..].copy_from_slice(&lo.to_be_bytes());
        crate::txn::uuid_text(&bytes)
    }
}

/// A bijective 64-bit mix (SplitMix64's finalizer).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An event to append (the log assigns the replay id).
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Object name.
    pub entity: Arc<str>,
    /// Schema id.
    pub schema_id: Arc<str>,
    /// Payload.
    pub payload: Payload,
}

/// Why a replay id is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Not 8 bytes, or never issued.
    #[error("the replay ID is invalid or was never issued")]
    Corrupted,
    /// Its successor events are no longer retained.
    #[error("the replay ID is outside the retention window")]
    Expired,
}

/// Encodes a replay number as the opaque 8 bytes clients see.
pub fn encode_replay(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

/// Decodes a client's replay id (exactly 8 bytes).
pub fn decode_replay(bytes: &[u8]) -> Result<u64, ReplayError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| ReplayError::Corrupted)?;
    Ok(u64::from_be_bytes(arr))
}

#[derive(Debug, Default)]
struct Inner {
    events: VecDeque<Arc<StoredEvent>>,
    /// Replay number of the newest event ever appended.
    latest: u64,
    /// Every event up to this replay number was dropped.
    pruned_through: u64,
}

/// What a read found.
#[derive(Debug, Default)]
pub struct Read {
    /// Matching events, oldest first.
    pub events: Vec<Arc<StoredEvent>>,
    /// The replay number the reader may move its cursor to: past the returned events and
    /// past non-matching events before the next match.
    pub cursor: u64,
}

/// The log. All methods take `&self`.
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<Inner>,
    latest: watch::Sender<u64>,
    /// Random per log, so event UUIDs differ between emulator runs.
    salt: u64,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            inner: Mutex::new(Inner::default()),
            latest: watch::channel(0).0,
            salt: rand::random(),
        }
    }
}

impl EventLog {
    /// Appends events (consecutive replay ids, in order) and wakes subscribers.
    pub fn append(&self, events: Vec<NewEvent>, at_ms: i64) -> u64 {
        let latest = {
            let mut inner = self.inner.lock();
            for e in events {
                inner.latest += 1;
                let replay = inner.latest;
                inner.events.push_back(Arc::new(StoredEvent {
                    replay,
                    entity: e.entity,
                    schema_id: e.schema_id,
                    payload: e.payload,
                    at_ms,
                    salt: self.salt,
                }));
            }
            inner.latest
        };
        self.latest.send_replace(latest);
        latest
    }

    /// Drops events committed before `cutoff_ms`.
    pub fn prune_before(&self, cutoff_ms: i64) {
        let mut inner = self.inner.lock();
        while inner.events.front().is_some_and(|e| e.at_ms < cutoff_ms) {
            if let Some(e) = inner.events.pop_front() {
                inner.pruned_through = e.replay;
            }
        }
    }

    /// Drops every event now (their replay ids become expired).
    pub fn expire_all(&self) {
        let mut inner = self.inner.lock();
        inner.events.clear();
        inner.pruned_through = inner.latest;
    }

    /// The newest replay number (0 before any event).
    pub fn latest(&self) -> u64 {
        self.inner.lock().latest
    }

    /// The cursor of EARLIEST: just before the oldest retained event.
    pub fn earliest_cursor(&self) -> u64 {
        self.inner.lock().pruned_through
    }

    /// Number of retained events.
    pub fn len(&self) -> usize {
        self.inner.lock().events.len()
    }

    /// Whether no event is retained.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks a CUSTOM replay id; returns the cursor to resume after.
    pub fn check_replay(&self, bytes: &[u8]) -> Result<u64, ReplayError> {
        let n = decode_replay(bytes)?;
        let inner = self.inner.lock();
        if n > inner.latest {
            return Err(ReplayError::Corrupted);
        }
        if n < inner.pruned_through {
            return Err(ReplayError::Expired);
        }
        Ok(n)
    }

    /// Up to `max` events after `cursor` whose entity passes `matches`.
    pub fn read_after(&self, cursor: u64, max: usize, matches: impl Fn(&str) -> bool) -> Read {
        let inner = self.inner.lock();
        let start = inner.events.partition_point(|e| e.replay <= cursor);
        let mut read = Read {
            events: Vec::new(),
            cursor,
        };
        for e in inner.events.iter().skip(start) {
            if matches(&e.entity) {
                if read.events.len() >= max {
                    break;
                }
                read.events.push(e.clone());
            }
            read.cursor = e.replay;
        }
        if read.events.len() < max {
            read.cursor = read.cursor.max(inner.latest);
        }
        read
    }

    /// A receiver that changes whenever events are appended.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(entity: &str) -> NewEvent {
        NewEvent {
            entity: entity.into(),
            schema_id: "s".into(),
            payload: vec![1].into(),
        }
    }

    /// Counts how often it is asked to encode.
    #[derive(Debug, Default)]
    struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Encode for Counting {
        fn encode(&self) -> Vec<u8> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            vec![7, 7]
        }
    }

    #[test]
    fn deferred_payload_is_encoded_once_on_first_read() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let log = EventLog::default();
        let mut e = ev("Account");
        e.payload = Payload::deferred(Box::new(Counting(calls.clone())));
        log.append(vec![e], 1);
        let read = log.read_after(0, 1, |_| true);
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "not encoded yet"
        );
        assert_eq!(read.events[0].payload.bytes(), [7, 7]);
        assert_eq!(read.events[0].payload.bytes(), [7, 7]);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        let ids: std::collections::HashSet<String> = log
            .read_after(0, 10, |_| true)
            .events
            .iter()
            .map(|e| e.id())
            .collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(read.events[0].id().len(), 36);
    }

    #[test]
    fn replay_ids_filters_and_retention() {
        let log = EventLog::default();
        assert_eq!(log.append(vec![ev("Account"), ev("Contact")], 10), 2);
        log.append(vec![ev("Account")], 20);
        let r = log.read_after(0, 10, |e| e == "Account");
        assert_eq!(
            r.events.iter().map(|e| e.replay).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(r.cursor, 3);
        let r = log.read_after(0, 1, |e| e == "Account");
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.cursor, 2, "stops before the next match it cannot return");
        assert_eq!(log.check_replay(&encode_replay(2)), Ok(2));
        assert_eq!(
            log.check_replay(&encode_replay(9)),
            Err(ReplayError::Corrupted)
        );
        assert_eq!(log.check_replay(b"short"), Err(ReplayError::Corrupted));
        log.prune_before(15);
        assert_eq!(log.earliest_cursor(), 2);
        assert_eq!(
            log.check_replay(&encode_replay(1)),
            Err(ReplayError::Expired)
        );
        assert_eq!(log.check_replay(&encode_replay(2)), Ok(2));
        log.expire_all();
        assert!(log.is_empty());
        assert_eq!(
            log.check_replay(&encode_replay(2)),
            Err(ReplayError::Expired)
        );
        assert_eq!(log.read_after(0, 5, |_| true).cursor, 3);
    }
}
