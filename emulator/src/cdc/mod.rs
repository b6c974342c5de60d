//! Change Data Capture: every committed record change becomes a change event on the event
//! bus, encoded as Salesforce's Pub/Sub API delivers it (Avro binary of a schema derived from
//! the object's describe).
//!
//! - [`schema`]: the Avro schema of `<Object>ChangeEvent` and its fingerprint id.
//! - [`encode`]: header, body values per change type, bitmaps, payload.
//! - [`bitmap`]: the `changedFields` / `nulledFields` / `diffFields` hex bitmaps.
//! - [`log`]: the event log with replay ids, retention and subscriber wake-ups.
//!
//! [`Cdc`] is the store's [`ChangeSink`]: a committed transaction's changes become events in
//! order (sequence numbers from 1, one shared transaction key, one commit timestamp and
//! commit number) appended together; each payload is encoded when a subscriber first reads
//! it ([`log::Payload`]), so writes nobody subscribes to cost no encoding. Gap faults turn changes into `GAP_*` events; a
//! transaction with more changes than the overflow threshold publishes the first ones and
//! one `GAP_OVERFLOW` event per object for the rest; an event over 1 MB becomes a gap event (found when it is encoded).
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
use self::log::{Encode, EventLog, NewEvent, Payload};
use self::schema::{EventSchema, SchemaBuildError};
use crate::clock::Clock;
use crate::faults::{FaultKind, Faults};
use crate::schema::Schema;
use crate::txn::{Change, ChangeKind, ChangeSink, TxnInfo};

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
    /// Object name → (entity name, schema id), shared by every event of the object.
    names: HashMap<String, (Arc<str>, Arc<str>)>,
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
        let mut names = HashMap::new();
        for o in schema.objects() {
            let s = Arc::new(EventSchema::build(o)?);
            by_topic.insert(format!("/data/{}", s.event_name), o.name.clone());
            by_id.insert(s.id.clone(), s.clone());
            names.insert(
                o.name.clone(),
                (Arc::from(o.name.as_str()), Arc::from(s.id.as_str())),
            );
            by_object.insert(o.name.clone(), s);
        }
        Ok(Cdc {
            by_object,
            by_topic,
            by_id,
            names,
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

    /// The event of one change (or its gap event), encoded when first read: the gap fault
    /// is decided now, the payload later ([`Deferred`]).
    fn event(&self, change: Change, commit: &Arc<Commit>, sequence: usize) -> Option<NewEvent> {
        let schema = self.by_object.get(&change.object.name)?;
        let gap = self.faults.has(is_gap) && {
            let topic = format!("/data/{}", schema.event_name);
            self.faults.stream_fault(&topic, is_gap).is_some()
        };
        let (entity, schema_id) = self.names.get(&change.object.name)?.clone();
        Some(NewEvent {
            entity,
            schema_id,
            payload: Payload::deferred(Box::new(Deferred {
                schema: schema.clone(),
                commit: commit.clone(),
                sequence: i32::try_from(sequence).unwrap_or(i32::MAX),
                gap,
                change,
            })),
        })
    }

    /// One GAP_OVERFLOW event per object for the changes past the threshold.
    fn overflow_events(&self, rest: &[Change], base: Header) -> Vec<NewEvent> {
        let mut objects: Vec<&str> = Vec::new();
        for c in rest {
            if !objects.contains(&c.object.name.as_str()) {
                objects.push(&c.object.name);
            }
        }
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
                    entity: object.into(),
                    schema_id: schema.id.as_str().into(),
                    payload: encode_or_log(schema, &header, Body::Empty)?.into(),
                })
            })
            .collect()
    }
}

/// The transaction-wide part of the headers of one commit's events.
#[derive(Debug)]
struct Commit {
    /// `changeOrigin`.
    origin: String,
    /// `transactionKey`.
    key: String,
    /// `commitUser`.
    user: String,
    /// `commitTimestamp`, epoch ms.
    timestamp: i64,
    /// `commitNumber`.
    number: i64,
}

impl Commit {
    /// The header of an event of this commit.
    fn header(&self, entity: &str, record_ids: Vec<String>, sequence: i32) -> Header {
        Header {
            entity_name: entity.to_string(),
            record_ids,
            change_type: "CREATE",
            change_origin: self.origin.clone(),
            transaction_key: self.key.clone(),
            sequence_number: sequence,
            commit_timestamp: self.timestamp,
            commit_number: self.number,
            commit_user: self.user.clone(),
        }
    }
}

/// One change's event as published, encoded when a subscriber first reads it.
#[derive(Debug)]
struct Deferred {
    /// The object's event schema.
    schema: Arc<EventSchema>,
    /// The commit it belongs to.
    commit: Arc<Commit>,
    /// `sequenceNumber`.
    sequence: i32,
    /// Whether the gap fault turned it into a `GAP_*` event.
    gap: bool,
    /// The change (its rows are immutable snapshots).
    change: Change,
}

impl Encode for Deferred {
    fn encode(&self) -> Vec<u8> {
        let c = &self.change;
        let header = self
            .commit
            .header(&c.object.name, vec![c.id.to_string()], self.sequence);
        let full = if self.gap {
            None
        } else {
            full_event(&self.schema, c, &header)
        };
        full.or_else(|| {
            let header = Header {
                change_type: gap_type(c.kind),
                ..header
            };
            encode_or_log(&self.schema, &header, Body::Empty)
        })
        .unwrap_or_default()
    }
}

/// The full event, or `None` when it is over 1 MB (then a gap event is sent).
fn full_event(schema: &EventSchema, change: &Change, header: &Header) -> Option<Vec<u8>> {
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
    fn commit(&self, txn: &TxnInfo, first_sequence: usize, mut changes: Vec<Change>) {
        let now = self.clock.now().timestamp_millis();
        let commit = Arc::new(Commit {
            origin: txn.origin.clone(),
            key: txn.key.clone(),
            user: txn.user.to_string(),
            timestamp: now,
            number: self.commit_number.fetch_add(1, Ordering::Relaxed),
        });
        let threshold = self.overflow_threshold.load(Ordering::Relaxed);
        let split = changes.len().min(threshold);
        let rest = changes.split_off(split);
        let mut events: Vec<NewEvent> = changes
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| self.event(c, &commit, first_sequence + i))
            .collect();
        if !rest.is_empty() {
            let sequence = i32::try_from(first_sequence + split).unwrap_or(i32::MAX);
            events.extend(self.overflow_events(&rest, commit.header("", Vec::new(), sequence)));
        }
        self.log.append(events, now);
        self.prune();
    }
}
