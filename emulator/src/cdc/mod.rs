//! Change Data Capture: every committed record change becomes a change event on the event
//! bus, encoded as Salesforce's Pub/Sub API delivers it (Avro binary of a schema derived from
//! the object's describe).
//!
//! - [`schema`]: the Avro schema of `<Object>ChangeEvent` and its fingerprint id.
//! - [`encode`]: header, body values per change type, bitmaps, payload.
//! - [`bitmap`]: the `changedFields` / `nulledFields` / `diffFields` hex bitmaps.
//! - [`log`]: the event log with replay ids, retention and subscriber wake-ups.
//!
//! [`Cdc`] is the store's [`ChangeSink`]: a committed transaction's changes are encoded in
//! order (sequence numbers from 1, one shared transaction key, one commit timestamp and
//! commit number) and appended together. Gap faults turn changes into `GAP_*` events; a
//! transaction with more changes than the overflow threshold publishes the first ones and
//! one `GAP_OVERFLOW` event per object for the rest; an event over 1 MB becomes a gap event.
//! Topics: `/data/ChangeEvents` (every object) and `/data/<Object>ChangeEvent`
//! (`/data/<Name>__ChangeEvent` for `<Name>__c`).

pub mod bitmap;
pub mod encode;
pub mod log;
pub mod schema;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use self::encode::{Body, Header};
use self::log::{EventLog, NewEvent};
use self::schema::{EventSchema, SchemaBuildError};
use crate::clock::Clock;
use crate::faults::{FaultKind, Faults};
use crate::schema::Schema;
use crate::txn::{transaction_key, Change, ChangeKind, ChangeSink, TxnInfo};

/// The topic of every object's change events.
pub const ALL_CHANGE_EVENTS: &str = "/data/ChangeEvents";

/// Events larger than this are published as gap events.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Change Data Capture settings (from `pubsub` in the emulator config).
#[derive(Debug, Clone)]
pub struct CdcConfig {
    /// How long events are kept, seconds (Salesforce: 72 hours).
    pub retention_secs: u64,
    /// Changes of one transaction published in full before `GAP_OVERFLOW` takes over.
    pub overflow_threshold: usize,
}

impl Default for CdcConfig {
    fn default() -> Self {
        CdcConfig {
            retention_secs: 72 * 3600,
            overflow_threshold: 100_000,
        }
    }
}

/// A topic a client may subscribe to.
#[derive(Debug, Clone)]
pub enum Topic {
    /// `/data/ChangeEvents`.
    All,
    /// `/data/AccountChangeEvent`: the object name and its schema.
    Entity(String, Arc<EventSchema>),
}

impl Topic {
    /// Whether events of `entity` belong to this topic.
    pub fn matches(&self, entity: &str) -> bool {
        match self {
            Topic::All => true,
            Topic::Entity(name, _) => name == entity,
        }
    }
}

/// The Change Data Capture engine: schemas, the event log, and the sink the store feeds.
#[derive(Debug)]
pub struct Cdc {
    /// Schema by object name.
    by_object: HashMap<String, Arc<EventSchema>>,
    /// Object name by topic name (`/data/AccountChangeEvent` → `Account`).
    by_topic: HashMap<String, String>,
    /// Schema by schema id.
    by_id: HashMap<String, Arc<EventSchema>>,
    /// The event bus.
    pub log: EventLog,
    clock: Arc<Clock>,
    faults: Arc<Faults>,
    retention_ms: AtomicI64,
    overflow_threshold: AtomicUsize,
    commit_number: AtomicI64,
}

/// Why the engine could not start.
pub type CdcError = SchemaBuildError;

impl Cdc {
    /// Derives every object's schema.
    pub fn new(
        schema: &Schema,
        clock: Arc<Clock>,
        faults: Arc<Faults>,
        config: &CdcConfig,
    ) -> Result<Cdc, CdcError> {
        let mut by_object = HashMap::new();
        let mut by_topic = HashMap::new();
        let mut by_id = HashMap::new();
        for o in schema.objects() {
            let s = Arc::new(EventSchema::build(o)?);
            by_topic.insert(format!("/data/{}", s.event_name), o.name.clone());
            by_id.insert(s.id.clone(), s.clone());
            by_object.insert(o.name.clone(), s);
        }
        Ok(Cdc {
            by_object,
            by_topic,
            by_id,
            log: EventLog::default(),
            clock,
            faults,
            retention_ms: AtomicI64::new(
                i64::try_from(config.retention_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            ),
            overflow_threshold: AtomicUsize::new(config.overflow_threshold.max(1)),
            commit_number: AtomicI64::new(1_000_000),
        })
    }

    /// The topic of this name (exact spelling, as Salesforce's topic names are).
    pub fn topic(&self, name: &str) -> Option<Topic> {
        if name == ALL_CHANGE_EVENTS {
            return Some(Topic::All);
        }
        let object = self.by_topic.get(name)?;
        let schema = self.by_object.get(object)?;
        Some(Topic::Entity(object.clone(), schema.clone()))
    }

    /// The topic name of an object's change events.
    pub fn topic_of(&self, object: &str) -> Option<String> {
        self.by_object
            .get(object)
            .map(|s| format!("/data/{}", s.event_name))
    }

    /// The schema with this id.
    pub fn schema_by_id(&self, id: &str) -> Option<Arc<EventSchema>> {
        self.by_id.get(id).cloned()
    }

    /// The schema of an object's events.
    pub fn schema_of(&self, object: &str) -> Option<Arc<EventSchema>> {
        self.by_object.get(object).cloned()
    }

    /// Sets the retention window and drops what falls out of it.
    pub fn set_retention(&self, secs: u64) {
        let ms = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.retention_ms.store(ms, Ordering::Relaxed);
        self.prune();
    }

    /// Sets the overflow threshold (changes per transaction published in full).
    pub fn set_overflow_threshold(&self, n: usize) {
        self.overflow_threshold.store(n.max(1), Ordering::Relaxed);
    }

    /// Drops events older than the retention window (on the emulator clock).
    pub fn prune(&self) {
        let now = self.clock.now().timestamp_millis();
        let keep = self.retention_ms.load(Ordering::Relaxed);
        self.log.prune_before(now.saturating_sub(keep));
    }

    /// Drops every retained event: every replay id issued so far becomes expired.
    pub fn expire_all(&self) {
        self.log.expire_all();
    }

    /// Encodes one change (or its gap event).
    fn event(&self, change: &Change, header: Header) -> Option<NewEvent> {
        let schema = self.by_object.get(&change.object.name)?;
        let topic = format!("/data/{}", schema.event_name);
        let gap = self.faults.has(is_gap) && self.faults.stream_fault(&topic, is_gap).is_some();
        let payload = if gap {
            None
        } else {
            self.full_event(schema, change, &header)
        };
        let payload = match payload {
            Some(p) => p,
            None => {
                let header = Header {
                    change_type: gap_type(change.kind),
                    ..header
                };
                encode_or_log(schema, &header, Body::Empty)?
            }
        };
        Some(NewEvent {
            entity: change.object.name.clone(),
            id: transaction_key(),
            schema_id: schema.id.clone(),
            payload,
        })
    }

    /// The full event, or `None` when it is over 1 MB (then a gap event is sent).
    fn full_event(
        &self,
        schema: &EventSchema,
        change: &Change,
        header: &Header,
    ) -> Option<Vec<u8>> {
        let body = match (change.kind, &change.before, &change.after) {
            (ChangeKind::Create | ChangeKind::Undelete, _, Some(after)) => Body::Full(after),
            (ChangeKind::Update, Some(before), Some(after)) => Body::Diff { before, after },
            _ => Body::Empty,
        };
        let header = Header {
            change_type: change_type(change.kind),
            ..header.clone()
        };
        encode_or_log(schema, &header, body).filter(|p| p.len() <= MAX_EVENT_BYTES)
    }

    /// One GAP_OVERFLOW event per object for the changes past the threshold.
    fn overflow_events(&self, txn: &TxnInfo, rest: &[Change], base: Header) -> Vec<NewEvent> {
        let mut objects: Vec<&str> = Vec::new();
        for c in rest {
            if !objects.contains(&c.object.name.as_str()) {
                objects.push(&c.object.name);
            }
        }
        let _ = txn;
        objects
            .into_iter()
            .filter_map(|object| {
                let schema = self.by_object.get(object)?;
                let header = Header {
                    entity_name: object.to_string(),
                    record_ids: Vec::new(),
                    change_type: "GAP_OVERFLOW",
                    ..base.clone()
                };
                Some(NewEvent {
                    entity: object.to_string(),
                    id: transaction_key(),
                    schema_id: schema.id.clone(),
                    payload: encode_or_log(schema, &header, Body::Empty)?,
                })
            })
            .collect()
    }
}

fn is_gap(k: &FaultKind) -> bool {
    matches!(k, FaultKind::CdcGap)
}

/// Encodes, logging (never panicking on) a schema mismatch, which would be a bug.
fn encode_or_log(schema: &EventSchema, header: &Header, body: Body<'_>) -> Option<Vec<u8>> {
    match encode::encode(schema, header, body) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!(error = %e, "change event not published");
            None
        }
    }
}

fn change_type(k: ChangeKind) -> &'static str {
    match k {
        ChangeKind::Create => "CREATE",
        ChangeKind::Update => "UPDATE",
        ChangeKind::Delete => "DELETE",
        ChangeKind::Undelete => "UNDELETE",
    }
}

fn gap_type(k: ChangeKind) -> &'static str {
    match k {
        ChangeKind::Create => "GAP_CREATE",
        ChangeKind::Update => "GAP_UPDATE",
        ChangeKind::Delete => "GAP_DELETE",
        ChangeKind::Undelete => "GAP_UNDELETE",
    }
}

impl ChangeSink for Cdc {
    fn commit(&self, txn: &TxnInfo, first_sequence: usize, changes: Vec<Change>) {
        let now = self.clock.now().timestamp_millis();
        let commit_number = self.commit_number.fetch_add(1, Ordering::Relaxed);
        let threshold = self.overflow_threshold.load(Ordering::Relaxed);
        let split = changes.len().min(threshold);
        let (full, rest) = changes.split_at(split);
        let base = |c: Option<&Change>, seq: usize| Header {
            entity_name: c.map(|c| c.object.name.clone()).unwrap_or_default(),
            record_ids: c.map(|c| vec![c.id.to_string()]).unwrap_or_default(),
            change_type: "CREATE",
            change_origin: txn.origin.clone(),
            transaction_key: txn.key.clone(),
            sequence_number: i32::try_from(seq).unwrap_or(i32::MAX),
            commit_timestamp: now,
            commit_number,
            commit_user: txn.user.to_string(),
        };
        let mut events: Vec<NewEvent> = full
            .iter()
            .enumerate()
            .filter_map(|(i, c)| self.event(c, base(Some(c), first_sequence + i)))
            .collect();
        if !rest.is_empty() {
            events.extend(self.overflow_events(txn, rest, base(None, first_sequence + split)));
        }
        self.log.append(events, now);
        self.prune();
    }
}
