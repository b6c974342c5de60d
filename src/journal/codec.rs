//! The journal payload of a change: the sink's view of it ([`FlushChange`]) as JSON, and
//! [`JournaledChange`], the form `pgforce replay` reads back. Generic over the change type,
//! so the journal does not depend on the pipeline that writes it.

use crate::sink::FlushChange;

/// A journaled change, as `pgforce replay` reads it back.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JournaledChange {
    pub mapping: String,
    pub object: String,
    pub external_id_field: String,
    pub external_id: String,
    /// `upsert` or `delete`.
    pub op: String,
    /// The REST-shaped record (absent field = unchanged), for upserts.
    pub record: serde_json::Map<String, serde_json::Value>,
    /// Parent (object, external id) the record points at, if any.
    pub parent: Option<(String, String)>,
}

/// The journal payload of a pending change (JSON).
pub fn encode_change<C: FlushChange>(p: &C) -> Vec<u8> {
    let c = JournaledChange {
        mapping: p.mapping().to_string(),
        object: p.object().to_string(),
        external_id_field: p.external_id_field().to_string(),
        external_id: p.key().to_string(),
        op: if p.is_delete() { "delete" } else { "upsert" }.into(),
        record: if p.is_delete() {
            serde_json::Map::new()
        } else {
            p.record()
        },
        parent: p.parent(),
    };
    serde_json::to_vec(&c).unwrap_or_default()
}

/// Read a payload written by [`encode_change`].
pub fn decode_change(payload: &[u8]) -> Result<JournaledChange, serde_json::Error> {
    serde_json::from_slice(payload)
}
