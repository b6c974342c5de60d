//! Two-way pairs on the outbound side: before a paired object's records are sent, the
//! records are read as Salesforce holds them now and each field is decided by its policy
//! ([`crate::bidi::guard`]): a newer Salesforce value of a newest-wins or Salesforce-owned
//! field, or a field Postgres did not change, is not overwritten. What is left is recorded
//! as synced before the call, so its echo is recognised when it comes back.

use std::collections::HashSet;

use serde_json::{Map, Value};
use tracing::info;

use super::destination::{Destination, SinkError};
use super::flusher::{FlushChange, Flusher};
use super::state::SinkState;
use crate::batch::Step;

impl<D: Destination, S: SinkState> Flusher<D, S> {
    /// Two-way pairs: reads the records as Salesforce holds them now and removes from each
    /// the fields whose Salesforce value should stay ([`crate::bidi::guard`]), then records
    /// what is left as synced before it is sent (records whose Id is known); returns
    /// their keys.
    pub(super) async fn guard_paired<C: FlushChange>(
        &self,
        step: &Step<C>,
        pair: &crate::config::pair::PairConfig,
        sent: &[&C],
        records: &mut [Map<String, Value>],
    ) -> Result<HashSet<String>, SinkError> {
        use crate::bidi::guard::{self, Outbound, Policies, Seen};
        let keys: Vec<String> = sent.iter().map(|c| c.key().to_string()).collect();
        let known = self.state.lookup_ids(&step.object, &keys).await?;
        let ids: Vec<Option<String>> = sent
            .iter()
            .zip(records.iter())
            .map(|(c, r)| match r.get("Id") {
                Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
                _ => known.get(c.key()).cloned(),
            })
            .collect();
        let id_list: Vec<String> = ids.iter().flatten().cloned().collect();
        if id_list.is_empty() {
            return Ok(HashSet::new());
        }
        let synced = self.state.synced_values(&step.object, &id_list).await?;
        let fields = guard::read_fields(records.iter(), &step.key_field);
        let current = self
            .dest
            .read_records(&step.object, &id_list, &fields)
            .await?;
        let times = self.row_times(sent).await?;
        let policies = Policies::of(pair);
        let mut remember = Vec::new();
        let mut keys = HashSet::new();
        for (i, (c, r)) in sent.iter().zip(records.iter_mut()).enumerate() {
            let Some(id) = ids[i].as_deref() else {
                continue;
            };
            let rec = Outbound {
                pipeline: &self.opts.pipeline,
                object: &step.object,
                id,
                key_field: &step.key_field,
                lsn: c.lsn(),
                postgres_at: times.get(i).copied().flatten(),
            };
            let seen = current.get(id).map(Seen::of);
            let dropped = guard::guard(&rec, &policies, &synced, seen, r);
            if !dropped.is_empty() {
                info!(object = %step.object, record_id = %id, fields = ?dropped,
                    "not sending fields whose Salesforce value stays (newer, or Postgres did not change them)");
            }
            remember.push((id.to_string(), r.clone()));
            keys.insert(c.key().to_string());
        }
        self.state.remember_outbound(&step.object, remember).await?;
        Ok(keys)
    }

    /// The commit time of each change's source row as it is now (`None` when unknown).
    pub(super) async fn row_times<C: FlushChange>(
        &self,
        sent: &[&C],
    ) -> Result<Vec<Option<chrono::DateTime<chrono::Utc>>>, SinkError> {
        let targets: Vec<Option<super::flusher::WriteBackTarget>> =
            sent.iter().map(|c| c.write_back()).collect();
        let Some(table) = targets.iter().flatten().next().map(|t| t.table.clone()) else {
            return Ok(vec![None; sent.len()]);
        };
        let at: Vec<usize> = (0..sent.len())
            .filter(|i| targets[*i].as_ref().is_some_and(|t| t.table == table))
            .collect();
        let keys: Vec<Vec<(String, String)>> = at
            .iter()
            .filter_map(|i| targets[*i].as_ref().map(|t| t.key.clone()))
            .collect();
        let found = self.state.row_commit_times(&table, &keys).await?;
        let mut out = vec![None; sent.len()];
        for (i, t) in at.into_iter().zip(found) {
            out[i] = t;
        }
        Ok(out)
    }
}
