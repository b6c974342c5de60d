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
    /// Every parent (object, external id) the record points at, in the order the mapping
    /// names its lookups. Entries written before this field existed carry one `parent`,
    /// read into this list.
    #[serde(default, alias = "parent", deserialize_with = "parents_or_one")]
    pub parents: Vec<(String, String)>,
}

/// `parents` as a list, or the single (possibly null) `parent` of older entries.
fn parents_or_one<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, String)>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        Many(Vec<(String, String)>),
        One(Option<(String, String)>),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        Either::Many(v) => v,
        Either::One(one) => one.into_iter().collect(),
    })
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
        parents: p.parents(),
    };
    serde_json::to_vec(&c).unwrap_or_default()
}

/// Read a payload written by [`encode_change`].
pub fn decode_change(payload: &[u8]) -> Result<JournaledChange, serde_json::Error> {
    serde_json::from_slice(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(parents: &str) -> String {
        format!(
            r#"{{"mapping":"m","object":"Contact","external_id_field":"E__c","external_id":"1",
                "op":"upsert","record":{{}}{parents}}}"#
        )
    }

    #[test]
    fn every_parent_is_kept_and_older_single_parent_entries_still_read() {
        let two = entry(r#","parents":[["Account","7"],["User__c","9"]]"#);
        let c = decode_change(two.as_bytes()).unwrap();
        assert_eq!(
            c.parents.len(),
            2,
            "the second lookup's parent is not dropped"
        );
        let old = entry(r#","parent":["Account","7"]"#);
        let c = decode_change(old.as_bytes()).unwrap();
        assert_eq!(c.parents, vec![("Account".to_string(), "7".to_string())]);
        for none in [entry(r#","parent":null"#), entry("")] {
            assert!(decode_change(none.as_bytes()).unwrap().parents.is_empty());
        }
    }
}
