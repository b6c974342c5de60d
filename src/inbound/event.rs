//! One Salesforce change, as every inbound source delivers it.
//!
//! Sources normalise what they read to one shape so the applier never knows where an
//! event came from:
//! - field names are the object's REST field names; compound fields arrive flattened
//!   (`BillingAddress` → `BillingStreet`, `BillingCity`, …), as REST returns them;
//! - values are in REST JSON formats (`salesforce-api.md` §9): datetime
//!   `"2024-01-01T00:00:00.000+0000"`, date `"YYYY-MM-DD"`, numbers as JSON numbers,
//!   checkbox as `true`/`false`, multi-select picklists as `"A;B"`;
//! - an UPDATE carries only the fields it changed: a field absent from
//!   [`InboundEvent::values`] is unchanged, a field in [`InboundEvent::nulled_fields`] was
//!   set to null (and is also present in `values` as JSON `null`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// Where a source stands; stored with the rows applied up to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// A Pub/Sub replay id: opaque bytes, never computed on.
    Replay(Vec<u8>),
    /// A polling watermark: the last (SystemModstamp, Id) applied.
    Poll {
        systemmodstamp: DateTime<Utc>,
        id: String,
    },
}

/// Where a source starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Only changes made from now on.
    Latest,
    /// Every retained change.
    Earliest,
    /// The changes after this position.
    After(Position),
}

/// What happened to the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
    Undelete,
    /// Salesforce could not deliver the change itself (too large, internal error): the
    /// named records must be re-read.
    Gap(GapKind),
    /// Too many changes in one transaction: the object's recent window must be re-read
    /// (by SystemModstamp).
    GapOverflow,
}

/// The change a gap event stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapKind {
    Create,
    Update,
    Delete,
    Undelete,
}

impl ChangeKind {
    /// The `changeType` string Salesforce sends (`CREATE`, `GAP_UPDATE`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "CREATE",
            ChangeKind::Update => "UPDATE",
            ChangeKind::Delete => "DELETE",
            ChangeKind::Undelete => "UNDELETE",
            ChangeKind::Gap(GapKind::Create) => "GAP_CREATE",
            ChangeKind::Gap(GapKind::Update) => "GAP_UPDATE",
            ChangeKind::Gap(GapKind::Delete) => "GAP_DELETE",
            ChangeKind::Gap(GapKind::Undelete) => "GAP_UNDELETE",
            ChangeKind::GapOverflow => "GAP_OVERFLOW",
        }
    }

    /// Parses a `changeType`; `None` for one pgforce does not know.
    pub fn parse(s: &str) -> Option<ChangeKind> {
        Some(match s {
            "CREATE" => ChangeKind::Create,
            "UPDATE" => ChangeKind::Update,
            "DELETE" => ChangeKind::Delete,
            "UNDELETE" => ChangeKind::Undelete,
            "GAP_CREATE" => ChangeKind::Gap(GapKind::Create),
            "GAP_UPDATE" => ChangeKind::Gap(GapKind::Update),
            "GAP_DELETE" => ChangeKind::Gap(GapKind::Delete),
            "GAP_UNDELETE" => ChangeKind::Gap(GapKind::Undelete),
            "GAP_OVERFLOW" => ChangeKind::GapOverflow,
            _ => return None,
        })
    }
}

/// One change event (one CDC event, or one polled record version).
#[derive(Debug, Clone, PartialEq)]
pub struct InboundEvent {
    /// The object's API name (`Opportunity`, `Invoice__c`), from `entityName`.
    pub object: String,
    /// The records the change applies to (usually one; several when one transaction made
    /// the same change to many records). 18-character ids.
    pub record_ids: Vec<String>,
    pub kind: ChangeKind,
    /// When Salesforce committed the change.
    pub commit_timestamp: DateTime<Utc>,
    /// The user id that made the change (`commitUser`).
    pub commit_user: String,
    /// `changeOrigin`, e.g. `com/salesforce/api/rest/62.0;client=pgforce`; empty if unknown.
    pub change_origin: String,
    /// Shared by every event of one Salesforce transaction; empty for polled events.
    pub transaction_key: String,
    /// Order within the transaction.
    pub sequence_number: i64,
    /// Field values, see the module doc for formats and what absence means.
    pub values: BTreeMap<String, serde_json::Value>,
    /// Fields the change set (UPDATE), from the `changedFields` bitmap, decoded to names.
    pub changed_fields: Vec<String>,
    /// Fields the change set to null.
    pub nulled_fields: Vec<String>,
    /// Long-text fields sent as a diff rather than a value: re-read them by Id.
    pub diff_fields: Vec<String>,
    /// This event's position; resuming after it skips it.
    pub position: Position,
}

/// What one read from a source returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceBatch {
    /// Events in the order Salesforce committed them.
    pub events: Vec<InboundEvent>,
    /// The source's position after this batch even when `events` is empty (a keepalive's
    /// `latest_replay_id`): storing it keeps a quiet subscription from ageing out of
    /// retention.
    pub position: Option<Position>,
}
