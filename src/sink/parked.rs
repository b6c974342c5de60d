//! Parked children: a record whose parent is not in Salesforce yet is stored with its
//! REST record, and sent again once an epoch lands that parent.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::destination::{Destination, SinkError};
use super::fence::fence;
use super::flusher::{FlushChange, FlushReport, Flusher};
use super::state::SinkState;
use crate::checkpoint::{DeadLetter, ParkedChange};
use crate::lsn::Lsn;

const PARKED_RECORD: &str = "record";
const PARKED_EXT_FIELD: &str = "external_id_field";

impl<D: Destination, S: SinkState> Flusher<D, S> {
    pub(super) fn parked<C: FlushChange>(&self, object: &str, change: &C) -> ParkedChange {
        let mut row = Map::new();
        row.insert(
            PARKED_EXT_FIELD.into(),
            Value::String(change.external_id_field().into()),
        );
        row.insert(PARKED_RECORD.into(), Value::Object(change.record()));
        ParkedChange {
            mapping: change.mapping().into(),
            object: object.into(),
            external_id: change.key().into(),
            parents: change.parents(),
            lsn: change.lsn(),
            row: Value::Object(row),
        }
    }

    /// Children parked on these parents (now in Salesforce) are sent again; children that
    /// land are parents in turn, so grandchildren waiting on them follow, until nothing
    /// more lands. A child still missing another parent stays parked.
    pub(super) async fn retry_parked(
        &self,
        mut landed: Vec<(String, Vec<String>)>,
        report: &mut FlushReport,
    ) -> Result<(), SinkError> {
        while let Some((object, keys)) = landed.pop() {
            landed.extend(self.retry_parked_on(&object, &keys, report).await?);
        }
        Ok(())
    }

    /// One round of [`retry_parked`](Self::retry_parked): what landed, per object.
    async fn retry_parked_on(
        &self,
        parent_object: &str,
        parent_keys: &[String],
        report: &mut FlushReport,
    ) -> Result<Vec<(String, Vec<String>)>, SinkError> {
        let mut landed = Vec::new();
        let parked = self.state.parked_for(parent_object, parent_keys).await?;
        if parked.is_empty() {
            return Ok(landed);
        }
        let mut groups: HashMap<(String, String), Vec<ParkedChange>> = HashMap::new();
        for p in parked {
            let ext = p
                .row
                .get(PARKED_EXT_FIELD)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            groups.entry((p.object.clone(), ext)).or_default().push(p);
        }
        for ((object, ext_field), group) in groups {
            let records: Vec<Map<String, Value>> = group
                .iter()
                .filter_map(|p| p.row.get(PARKED_RECORD).and_then(Value::as_object).cloned())
                .collect();
            let keys: Vec<&str> = group.iter().map(|p| p.external_id.as_str()).collect();
            self.state.note_keys(&object, &keys).await?;
            fence(&*self.state).await?;
            let outcomes = self
                .dest
                .upsert_records(&object, &ext_field, &records)
                .await?;
            let by_key: HashMap<String, &ParkedChange> =
                group.iter().map(|p| (p.external_id.clone(), p)).collect();
            let mut ids = Vec::new();
            let mut done: HashMap<String, Vec<String>> = HashMap::new();
            let mut resolved: HashMap<String, Vec<(String, Lsn)>> = HashMap::new();
            let mut dead = Vec::new();
            for o in outcomes {
                let Some(p) = by_key.get(&o.key) else {
                    continue;
                };
                match o.result {
                    Ok((id, _)) => {
                        ids.push((o.key.clone(), id));
                        resolved
                            .entry(p.mapping.clone())
                            .or_default()
                            .push((o.key.clone(), p.lsn));
                        done.entry(p.mapping.clone()).or_default().push(o.key);
                    }
                    Err(f) if f.is_missing_parent() => {}
                    Err(f) => {
                        done.entry(p.mapping.clone())
                            .or_default()
                            .push(o.key.clone());
                        dead.push(DeadLetter {
                            mapping: p.mapping.clone(),
                            object: object.clone(),
                            external_id: o.key,
                            operation: "upsert".into(),
                            lsn: p.lsn,
                            error_code: f.code,
                            message: f.message,
                            fields: f.fields,
                            row: p.row.get(PARKED_RECORD).cloned().unwrap_or(Value::Null),
                        })
                    }
                }
            }
            self.state.store_ids(&object, &ids).await?;
            report.unparked += ids.len();
            report.applied += ids.len();
            self.record_losses(Vec::new(), dead, report).await?;
            // A parked child that lands is a later change of its record like any other:
            // its older dead letters are resolved, so `errors retry` cannot send them
            // back over it.
            for (mapping, landed) in resolved {
                self.state
                    .resolve_dead_letters_through(&mapping, &landed)
                    .await?;
            }
            for (mapping, keys) in done {
                self.state.unpark_keys(&mapping, &keys).await?;
            }
            if !ids.is_empty() {
                landed.push((object, ids.into_iter().map(|(k, _)| k).collect()));
            }
        }
        Ok(landed)
    }
}
