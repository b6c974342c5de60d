//! The deleted-rows sweep of a resync. A new slot (the old one was dropped or lost) starts
//! from a new consistent snapshot, and the backfill re-sends every row that exists; but a
//! row deleted while there was no slot left no change to stream, so its record would stay
//! in Salesforce forever. After such a backfill, every record pgforce held in its id map
//! whose source row is not in the snapshot gets the mapping's delete policy (deleted, or the
//! soft-delete field set), through the same flusher and with the same outcomes as a
//! streamed delete. The sweep is armed when the new slot's backfill progress is reset and
//! disarmed only once it finished, so a crash in between sweeps again (deletes are
//! idempotent). A first start (an empty id map) is not armed. An object several mappings
//! write is swept too: a key is gone when no table of that object holds it.
//!
//! Which records are gone is read **in the slot's exported snapshot** ([`gone_in_snapshot`],
//! before the backfill), so the sweep agrees with the stream that starts at the snapshot's
//! consistent point: a row deleted after it is left to its streamed delete, and a change
//! streamed later never finds its record swept away first. The keys are stored with the
//! armed sweep, so a restart during the resync (the snapshot is gone by then) sweeps the
//! same keys. Only when they were never read in a snapshot (a start that died between
//! creating the slot and arming the sweep) is the table read as it is now; that can remove
//! a record early whose row's later changes are still to stream (they then recreate it, and
//! its streamed delete removes it again), never leave one behind.

use std::collections::HashSet;
use std::sync::Arc;

use tracing::info;

use super::error::{err_repl, err_sink};
use super::pending::Pending;
use super::PipelineError;
use crate::batch::Epoch;
use crate::checkpoint::quote_ident;
use crate::config::{DeletePolicy, FilterExit, MappingConfig, PipelineConfig, Scalar};
use crate::lsn::Lsn;
use crate::mapping::text_row_passes;
use crate::mapping::{FieldName, FieldValue, MappedChange, MappedOp};
use crate::replication::PgProgressStore;
use crate::sink::{Flusher, SalesforceDestination};

/// Records gone per mapping name, read in the slot's snapshot.
pub(super) type GoneKeys = Vec<(String, Vec<String>)>;

/// The keys found gone in the snapshot, as the armed sweep stores them.
pub(super) fn keys_json(gone: &GoneKeys) -> serde_json::Value {
    serde_json::json!(gone)
}

/// The keys stored with the armed sweep; `None` when there are none (or they cannot be
/// read back, which falls back to reading the tables as they are now).
async fn stored_keys(
    progress: &PgProgressStore,
    pipeline: &str,
) -> Result<Option<GoneKeys>, PipelineError> {
    let value = progress
        .sweep_keys(pipeline)
        .await
        .map_err(err_repl(pipeline))?;
    Ok(value.and_then(|v| match serde_json::from_value(v) {
        Ok(keys) => Some(keys),
        Err(e) => {
            tracing::warn!(error = %e, "the stored keys of the deleted-rows sweep are unreadable; reading the tables as they are now");
            None
        }
    }))
}

/// Run the sweep if a new slot armed it: the records of `gone` when it was read in the
/// snapshot by this start, else the keys stored when the sweep was armed, else those whose
/// rows are missing now.
pub(super) async fn sweep_if_armed(
    cfg: &PipelineConfig,
    progress: &PgProgressStore,
    flusher: &Flusher<SalesforceDestination>,
    gone: Option<GoneKeys>,
) -> Result<(), PipelineError> {
    let p = cfg.name.as_str();
    if !progress.sweep_pending(p).await.map_err(err_repl(p))? {
        return Ok(());
    }
    let stored = match gone {
        Some(g) => Some(g),
        None => stored_keys(progress, p).await?,
    };
    let gone = match stored {
        Some(g) => g,
        None => {
            let state = flusher.state();
            let session = state.session().await;
            gone_keys(cfg, &*session, state.schema(), state.pipeline()).await?
        }
    };
    let mut epoch: Epoch<Pending> = Epoch::new();
    for (name, keys) in gone {
        let Some(m) = cfg.mappings.iter().find(|m| m.name == name) else {
            continue;
        };
        for key in keys {
            epoch.push(Pending::new(removal(m, key), Lsn::ZERO));
        }
    }
    if !epoch.is_empty() {
        info!(
            records = epoch.rows(),
            "resync: removing records whose rows were deleted while there was no slot"
        );
        epoch.commit(Lsn::ZERO, chrono::Utc::now());
        flusher.flush(&mut epoch, None).await.map_err(err_sink(p))?;
    }
    progress.sweep_done(p).await.map_err(err_repl(p))
}

/// The gone records read in the exported snapshot `name` (on a session of its own; the
/// snapshot is importable until the replication connection runs its next command).
pub(super) async fn gone_in_snapshot(
    cfg: &PipelineConfig,
    client: &mut tokio_postgres::Client,
    name: &str,
    flusher: &Flusher<SalesforceDestination>,
) -> Result<GoneKeys, PipelineError> {
    let p = cfg.name.as_str();
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| sweep_error(p, "starting the sweep's snapshot transaction", e))?;
    tx.batch_execute(&format!(
        "SET TRANSACTION SNAPSHOT {}",
        postgres_protocol::escape::escape_literal(name)
    ))
    .await
    .map_err(|e| sweep_error(p, "importing the slot's snapshot for the sweep", e))?;
    let state = flusher.state();
    gone_keys(cfg, &tx, state.schema(), state.pipeline()).await
}

fn sweep_error(
    pipeline: &str,
    context: &'static str,
    source: tokio_postgres::Error,
) -> PipelineError {
    PipelineError::State {
        pipeline: pipeline.to_string(),
        source: crate::checkpoint::StateError::Query { context, source },
    }
}

/// Whether the id map holds any record of this pipeline (an earlier slot's work).
pub(super) async fn has_records(
    flusher: &Flusher<SalesforceDestination>,
) -> Result<bool, PipelineError> {
    let state = flusher.state();
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {}.id_map WHERE pipeline = $1)",
        state.schema()
    );
    let session = state.session().await;
    let row = session
        .query_one(&sql, &[&state.pipeline()])
        .await
        .map_err(|source| PipelineError::State {
            pipeline: state.pipeline().to_string(),
            source: crate::checkpoint::StateError::Query {
                context: "checking for records of an earlier slot",
                source,
            },
        })?;
    Ok(row.get(0))
}

/// Per mapping with a delete policy, the external ids pgforce has a record for whose
/// source row is not visible to `client`. The id map is keyed by object, so when several
/// mappings write one object a key is gone only when no table of that object holds it
/// (each compared by its own external-id column); it is then removed under every such
/// mapping's policy (a mapping that ignores deletes removes nothing).
async fn gone_keys<C: tokio_postgres::GenericClient>(
    cfg: &PipelineConfig,
    client: &C,
    state_schema: &str,
    pipeline: &str,
) -> Result<GoneKeys, PipelineError> {
    let mut out = Vec::new();
    let mut objects: Vec<&str> = cfg.mappings.iter().map(|m| m.object.as_str()).collect();
    objects.sort_unstable();
    objects.dedup();
    for object in objects {
        let writers: Vec<&MappingConfig> =
            cfg.mappings.iter().filter(|m| m.object == object).collect();
        let removers: Vec<&MappingConfig> = writers
            .iter()
            .copied()
            .filter(|m| m.delete != DeletePolicy::Ignore)
            .collect();
        if removers.is_empty() {
            continue;
        }
        let absent: Vec<String> = writers.iter().map(|m| absent_from(m)).collect();
        let sql = format!(
            "SELECT i.external_id FROM {state_schema}.id_map i
              WHERE i.pipeline = $1 AND i.object = $2 AND {}",
            absent.join(" AND ")
        );
        let rows = client
            .query(&sql, &[&pipeline, &object])
            .await
            .map_err(|e| {
                sweep_error(
                    &cfg.name,
                    "finding records whose rows were deleted while there was no slot",
                    e,
                )
            })?;
        let mut keys: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        keys.extend(filtered_out(cfg, client, state_schema, pipeline, &writers).await?);
        for m in removers {
            out.push((m.name.clone(), keys.clone()));
        }
    }
    Ok(out)
}

/// Keys of the object whose rows exist but pass no writer's filter (a row that left the
/// filter while there was no slot: the backfill does not send it, so nothing else would
/// remove its record). A writer without a filter, or whose `on_filter_exit` is `ignore`,
/// holds every row it has. Rows are read with SQL and compared as text, as the stream's
/// filter compares them.
async fn filtered_out<C: tokio_postgres::GenericClient>(
    cfg: &PipelineConfig,
    client: &C,
    state_schema: &str,
    pipeline: &str,
    writers: &[&MappingConfig],
) -> Result<Vec<String>, PipelineError> {
    let gated = |m: &MappingConfig| !m.filter.is_empty() && m.on_filter_exit == FilterExit::Delete;
    if !writers.iter().any(|m| gated(m)) {
        return Ok(Vec::new());
    }
    let mut present = HashSet::new();
    let mut held = HashSet::new();
    for m in writers {
        let (schema, table) = m.table.split_once('.').unwrap_or(("public", &m.table));
        let columns: String = m
            .filter
            .iter()
            .map(|c| format!(", t.{}::text", quote_ident(&c.column)))
            .collect();
        let sql = format!(
            "SELECT i.external_id{columns} FROM {state_schema}.id_map i
               JOIN {}.{} t ON t.{}::text = i.external_id
              WHERE i.pipeline = $1 AND i.object = $2",
            quote_ident(schema),
            quote_ident(table),
            quote_ident(&m.external_id.column)
        );
        let rows = client
            .query(&sql, &[&pipeline, &m.object])
            .await
            .map_err(|e| sweep_error(&cfg.name, "finding rows that left the filter", e))?;
        for r in rows {
            let key: String = r.get(0);
            let values: Vec<Option<String>> = (1..r.len()).map(|i| r.get(i)).collect();
            if !gated(m) || text_row_passes(&m.filter, &values) {
                held.insert(key.clone());
            }
            present.insert(key);
        }
    }
    Ok(present.difference(&held).cloned().collect())
}

/// SQL: the id map row `i` has no source row in `m`'s table.
fn absent_from(m: &MappingConfig) -> String {
    let (schema, table) = m.table.split_once('.').unwrap_or(("public", &m.table));
    format!(
        "NOT EXISTS (SELECT 1 FROM {}.{} t WHERE t.{}::text = i.external_id)",
        quote_ident(schema),
        quote_ident(table),
        quote_ident(&m.external_id.column)
    )
}

/// The record removal for `key` under the mapping's delete policy.
fn removal(m: &MappingConfig, key: String) -> MappedChange {
    let (op, fields) = match &m.delete {
        DeletePolicy::Soft { field, value } => (
            MappedOp::Upsert,
            vec![(FieldName::Field(field.clone()), scalar(value))],
        ),
        _ => (MappedOp::Delete, Vec::new()),
    };
    MappedChange {
        mapping: Arc::from(m.name.as_str()),
        object: Arc::from(m.object.as_str()),
        external_id_field: Arc::from(m.external_id.field.as_str()),
        external_id: key,
        op,
        fields,
        parents: Vec::new(),
        write_back: None,
        // A soft delete marks a record that exists; it never creates a stub.
        existing_only: op == MappedOp::Upsert,
        match_by: m.external_id.match_by,
    }
}

fn scalar(s: &Scalar) -> FieldValue {
    match s {
        Scalar::Bool(b) => FieldValue::Bool(*b),
        Scalar::Int(i) => FieldValue::Int(*i),
        Scalar::Text(t) => FieldValue::Text(t.clone()),
    }
}
