//! Completing upserts that may create their record. An UPDATE leaves unchanged-TOAST
//! columns out of the change ("leave the field alone"), which is right for a record that
//! exists in Salesforce and wrong for one the upsert creates: a row entering the mapping's
//! filter through an UPDATE, a new external id after a key change, or an INSERT that was
//! dead-lettered or parked and is replaced by a later UPDATE. Before an epoch is flushed,
//! every upsert with unchanged fields whose key is not in the id map (so the record may not
//! exist) gets those fields from the row as Postgres holds it now. A value read now can only
//! be newer than the change's, and every newer change follows in the stream, so Salesforce
//! converges on Postgres either way.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::Client;

use super::pending::Pending;
use super::PipelineError;
use crate::batch::Epoch;
use crate::change::{Operation, RowChange};
use crate::checkpoint::{quote_ident, StateStore};
use crate::config::PipelineConfig;
use crate::mapping::{FieldValue, Mapper};
use crate::pgoutput::types::TypeRegistry;
use crate::pgoutput::value::Value;

/// (mapping, external id) of upserts with fields Postgres did not send.
type Wanted = BTreeMap<String, Vec<String>>;

/// Fill the unchanged fields of upserts whose record may not exist yet (see the module doc).
pub(super) async fn complete_unchanged(
    cfg: &PipelineConfig,
    pg: &Client,
    state: &StateStore,
    mapper: &mut Mapper,
    types: &TypeRegistry,
    epoch: &mut Epoch<Pending>,
) -> Result<usize, PipelineError> {
    let candidates = incomplete(epoch);
    let wanted = unknown_records(state, &candidates).await?;
    if wanted.is_empty() {
        return Ok(0);
    }
    let mut full: HashMap<(String, String), Vec<(crate::mapping::FieldName, FieldValue)>> =
        HashMap::new();
    for (mapping, keys) in &wanted {
        let Some(m) = cfg.mappings.iter().find(|m| m.name == *mapping) else {
            continue;
        };
        let rows = fetch_rows(pg, mapper, types, m, keys)
            .await
            .map_err(|source| PipelineError::State {
                pipeline: cfg.name.clone(),
                source,
            })?;
        for row in rows {
            for mapped in mapper.map(&row).into_iter().flatten() {
                if mapped.mapping.as_ref() as &str == mapping.as_str() {
                    full.insert((mapping.clone(), mapped.external_id.clone()), mapped.fields);
                }
            }
        }
    }
    let mut filled = 0;
    epoch.for_each_upsert_mut(|p| {
        let key = (p.change.mapping.to_string(), p.change.external_id.clone());
        if let Some(fields) = full.get(&key) {
            filled += fill(&mut p.change.fields, fields);
        }
    });
    Ok(filled)
}

/// Upserts with at least one unchanged field, per mapping and object.
fn incomplete(epoch: &mut Epoch<Pending>) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    epoch.for_each_upsert_mut(|p| {
        if p.change
            .fields
            .iter()
            .any(|(_, v)| *v == FieldValue::Unchanged)
        {
            out.entry((p.change.mapping.to_string(), p.change.object.to_string()))
                .or_default()
                .push(p.change.external_id.clone());
        }
    });
    out
}

/// Of `candidates`, the keys the id map does not know: their record may not exist.
async fn unknown_records(
    state: &StateStore,
    candidates: &BTreeMap<(String, String), Vec<String>>,
) -> Result<Wanted, PipelineError> {
    let mut wanted = Wanted::new();
    for ((mapping, object), keys) in candidates {
        let known =
            state
                .lookup_ids(object, keys)
                .await
                .map_err(|source| PipelineError::State {
                    pipeline: state.pipeline().to_string(),
                    source,
                })?;
        let unknown: Vec<String> = keys
            .iter()
            .filter(|k| !known.contains_key(*k))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            wanted.entry(mapping.clone()).or_default().extend(unknown);
        }
    }
    Ok(wanted)
}

/// The current rows of the mapping's table whose external-id column (as text) is one of
/// `keys`, decoded like the stream decodes them, as inserts.
async fn fetch_rows(
    pg: &Client,
    mapper: &Mapper,
    types: &TypeRegistry,
    m: &crate::config::MappingConfig,
    keys: &[String],
) -> Result<Vec<RowChange>, crate::checkpoint::StateError> {
    let (table, key_column) = (m.table.as_str(), m.external_id.column.as_str());
    let Some(relation) = mapper.relation(table) else {
        return Ok(Vec::new());
    };
    let (schema, name) = table.split_once('.').unwrap_or(("public", table));
    let cols: Vec<String> = relation
        .columns
        .iter()
        .map(|c| format!("{}::text", quote_ident(&c.name)))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}.{} WHERE {}::text = ANY($1)",
        cols.join(", "),
        quote_ident(schema),
        quote_ident(name),
        quote_ident(key_column)
    );
    let rows =
        pg.query(&sql, &[&keys])
            .await
            .map_err(|source| crate::checkpoint::StateError::Query {
                context: "reading unchanged-TOAST values of records that may not exist yet",
                source,
            })?;
    Ok(rows
        .iter()
        .map(|r| {
            let values: Vec<Value> = relation
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| match r.get::<_, Option<String>>(i) {
                    None => Value::Null,
                    Some(text) => types.parse_text(c.type_oid, &text).unwrap_or(Value::Other {
                        type_oid: c.type_oid,
                        text,
                    }),
                })
                .collect();
            RowChange {
                relation: relation.clone(),
                op: Operation::Insert,
                new: Some(values),
                old: None,
            }
        })
        .collect())
}

/// Replace each unchanged field with the full row's value; how many were filled.
fn fill(
    fields: &mut [(crate::mapping::FieldName, FieldValue)],
    full: &[(crate::mapping::FieldName, FieldValue)],
) -> usize {
    let mut n = 0;
    for (name, value) in fields.iter_mut() {
        if *value != FieldValue::Unchanged {
            continue;
        }
        if let Some((_, v)) = full.iter().find(|(f, _)| f == name) {
            if *v != FieldValue::Unchanged {
                *value = v.clone();
                n += 1;
            }
        }
    }
    n
}
