//! The applier: one batch of resolved events into the target table and the entry's
//! position into the state schema, in one Postgres transaction (exactly once).
//!
//! - **Mirror**: a row per record keyed by its Id. A create or update is an upsert of the
//!   fields the event carries (an UPDATE carries only what changed, so untouched columns
//!   stay; a nulled field is JSON null and becomes NULL); the row's SystemModstamp column
//!   guards it: an event older than the stored SystemModstamp changes nothing. A delete
//!   deletes the row or sets its `deleted_at` column.
//! - **Audit**: a row per (event, record), never updated or deleted; a row already written
//!   for the same object, record and position is not written again, so a re-delivered
//!   event (a poll overlap, a restart from a conservative position) adds nothing.
//!
//! The events reaching here are resolved: gap events were turned into re-read records by
//! the engine, and diff fields re-read.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient};

use super::convert::{datetime, to_column_text, ColumnType, ConvertError};
use super::error::{Ctx, InboundError};
use super::event::{ChangeKind, InboundEvent, Position};
use super::position::{position_text, save, EntryKey, Phase};
use crate::checkpoint::quote_ident;
use crate::config::inbound::{InboundConfig, InboundDelete, InboundMode, InboundTransform};

/// The target table as found in Postgres: its quoted name and column types.
#[derive(Debug, Clone)]
pub struct Target {
    /// `"schema"."table"`.
    pub quoted: String,
    pub columns: BTreeMap<String, ColumnType>,
}

impl Target {
    /// Reads the table's columns; an error names what is missing.
    pub async fn load(
        client: &impl GenericClient,
        entry: &InboundConfig,
        ctx: &Ctx,
    ) -> Result<Target, InboundError> {
        let qt = entry.qualified_table();
        let (schema, table) = qt.split_once('.').unwrap_or(("public", qt.as_str()));
        let rows = client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typcategory::text \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                &[&schema, &table],
            )
            .await
            .map_err(ctx.pg("reading the target table's columns"))?;
        if rows.is_empty() {
            return Err(ctx.table(&qt, "does not exist"));
        }
        let columns: BTreeMap<String, ColumnType> = rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let sql: String = r.get(1);
                let cat: String = r.get(2);
                (name, ColumnType::new(&sql, &cat))
            })
            .collect();
        let missing: Vec<String> = crate::config::inbound::expected_columns(entry)
            .into_iter()
            .filter(|c| !columns.contains_key(c))
            .collect();
        if !missing.is_empty() {
            return Err(ctx.table(&qt, format!("missing column(s) {}", missing.join(", "))));
        }
        Ok(Target {
            quoted: format!("{}.{}", quote_ident(schema), quote_ident(table)),
            columns,
        })
    }
}

/// What one applied batch did, for metrics and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Rows inserted or updated (mirror) or audit rows written.
    pub written: u64,
    /// Mirror changes skipped because the row holds newer data.
    pub stale: u64,
    /// Rows deleted or marked deleted.
    pub deleted: u64,
    /// The WAL insert position after the rows were written, inside their transaction: a
    /// Postgres change committed before it is older than what this batch wrote (two-way
    /// pairs compare with it).
    pub wal_lsn: Option<crate::lsn::Lsn>,
}

/// Applies batches for one entry.
#[derive(Debug, Clone)]
pub struct Applier {
    pub entry: InboundConfig,
    pub target: Target,
    pub key: EntryKey,
    pub ctx: Ctx,
}

/// Parameters of one statement.
type Params = Vec<Box<dyn ToSql + Sync + Send>>;

impl Applier {
    /// Applies `events` and stores `position` (phase `phase`, load cursor `load_after`)
    /// in one transaction on `client`.
    pub async fn apply(
        &self,
        client: &mut Client,
        events: &[InboundEvent],
        phase: Phase,
        position: Option<&Position>,
        load_after: Option<&str>,
    ) -> Result<Applied, InboundError> {
        let tx = client
            .transaction()
            .await
            .map_err(self.ctx.pg("starting the apply transaction"))?;
        let mut applied = Applied::default();
        for e in events {
            match self.entry.mode {
                InboundMode::Mirror => self.mirror(&tx, e, &mut applied).await?,
                InboundMode::Audit => self.audit(&tx, e, &mut applied).await?,
            }
        }
        if !events.is_empty() {
            applied.wal_lsn = wal_position(&tx)
                .await
                .map_err(self.ctx.pg("reading the WAL position"))?;
        }
        save(&tx, &self.key, phase, position, load_after)
            .await
            .map_err(self.ctx.pg("storing the position"))?;
        tx.commit()
            .await
            .map_err(self.ctx.pg("committing the applied batch"))?;
        Ok(applied)
    }

    async fn mirror(
        &self,
        tx: &impl GenericClient,
        e: &InboundEvent,
        applied: &mut Applied,
    ) -> Result<(), InboundError> {
        let version = event_version(e);
        for id in &e.record_ids {
            match e.kind {
                ChangeKind::Create | ChangeKind::Update | ChangeKind::Undelete => {
                    let n = self.upsert(tx, id, version, &e.values).await?;
                    if n == 0 {
                        applied.stale += 1;
                    } else {
                        applied.written += n;
                    }
                }
                ChangeKind::Delete => applied.deleted += self.delete(tx, id, version).await?,
                // Resolved by the engine before it gets here.
                ChangeKind::Gap(_) | ChangeKind::GapOverflow => {}
            }
        }
        Ok(())
    }

    /// Insert or update the row with the fields present in `values`; nothing when the
    /// row's SystemModstamp is newer than `version`. Returns the rows written.
    async fn upsert(
        &self,
        tx: &impl GenericClient,
        id: &str,
        version: DateTime<Utc>,
        values: &BTreeMap<String, Value>,
    ) -> Result<u64, InboundError> {
        let e = &self.entry;
        let key = quote_ident(&e.key_column);
        let stamp = quote_ident(&e.modstamp_column);
        let mut cols = vec![key.clone(), stamp.clone()];
        let mut exprs = vec!["$1".to_string(), "$2".to_string()];
        let mut params: Params = vec![Box::new(id.to_string()), Box::new(version)];
        for (field, spec) in &e.fields {
            let own = (field.eq_ignore_ascii_case("Id") && spec.column == e.key_column)
                || (field.eq_ignore_ascii_case("SystemModstamp")
                    && spec.column == e.modstamp_column);
            let Some(value) = lookup(values, field) else {
                continue;
            };
            if own {
                continue;
            }
            let ty = self.column_type(&spec.column)?;
            let text = self.convert(id, field, &spec.column, value, ty, spec.transform.as_ref())?;
            params.push(Box::new(text));
            cols.push(quote_ident(&spec.column));
            exprs.push(format!("CAST(${}::text AS {})", params.len(), ty.sql));
        }
        if let InboundDelete::DeletedAt(c) = &e.delete {
            cols.push(quote_ident(c));
            exprs.push("NULL".into());
        }
        let updates: Vec<String> = cols
            .iter()
            .skip(1)
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        let sql = format!(
            "INSERT INTO {t} AS t ({cols}) VALUES ({vals}) ON CONFLICT ({key}) DO UPDATE SET {upd} \
             WHERE t.{stamp} IS NULL OR t.{stamp} <= EXCLUDED.{stamp}",
            t = self.target.quoted,
            cols = cols.join(", "),
            vals = exprs.join(", "),
            upd = updates.join(", "),
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
        tx.execute(&sql, &refs)
            .await
            .map_err(self.ctx.pg("writing a mirror row"))
    }

    async fn delete(
        &self,
        tx: &impl GenericClient,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<u64, InboundError> {
        let e = &self.entry;
        let key = quote_ident(&e.key_column);
        let stamp = quote_ident(&e.modstamp_column);
        let sql = match &e.delete {
            InboundDelete::Delete => format!(
                "DELETE FROM {t} WHERE {key} = $1 AND ({stamp} IS NULL OR {stamp} <= $2)",
                t = self.target.quoted
            ),
            InboundDelete::DeletedAt(c) => format!(
                "UPDATE {t} SET {d} = $2, {stamp} = $2 WHERE {key} = $1 \
                 AND ({stamp} IS NULL OR {stamp} <= $2) AND {d} IS NULL",
                t = self.target.quoted,
                d = quote_ident(c)
            ),
        };
        tx.execute(&sql, &[&id, &at])
            .await
            .map_err(self.ctx.pg("deleting a mirror row"))
    }

    async fn audit(
        &self,
        tx: &impl GenericClient,
        e: &InboundEvent,
        applied: &mut Applied,
    ) -> Result<(), InboundError> {
        let position = position_text(&e.position);
        let values = self.audit_values(e);
        let sql = format!(
            "INSERT INTO {t} (object, record_id, position, change_type, commit_user, \
             commit_timestamp, changed_fields, nulled_fields, change_origin, \"values\") \
             SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::timestamptz, $7::text[], \
             $8::text[], $9::text, $10::jsonb WHERE NOT EXISTS \
             (SELECT 1 FROM {t} WHERE object = $1 AND record_id = $2 AND position = $3)",
            t = self.target.quoted
        );
        for id in &e.record_ids {
            let n = tx
                .execute(
                    &sql,
                    &[
                        &e.object,
                        id,
                        &position,
                        &e.kind.as_str(),
                        &e.commit_user,
                        &e.commit_timestamp,
                        &e.changed_fields,
                        &e.nulled_fields,
                        &e.change_origin,
                        &values,
                    ],
                )
                .await
                .map_err(self.ctx.pg("writing an audit row"))?;
            applied.written += n;
        }
        Ok(())
    }

    /// The event's values, limited to the configured fields (all of them when none are).
    fn audit_values(&self, e: &InboundEvent) -> Value {
        let map: serde_json::Map<String, Value> = e
            .values
            .iter()
            .filter(|(k, _)| {
                self.entry.fields.is_empty()
                    || self.entry.fields.keys().any(|f| f.eq_ignore_ascii_case(k))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Value::Object(map)
    }

    fn column_type(&self, column: &str) -> Result<&ColumnType, InboundError> {
        self.target.columns.get(column).ok_or_else(|| {
            self.ctx
                .table(&self.target.quoted, format!("missing column {column}"))
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn convert(
        &self,
        id: &str,
        field: &str,
        column: &str,
        value: &Value,
        ty: &ColumnType,
        transform: Option<&InboundTransform>,
    ) -> Result<Option<String>, InboundError> {
        to_column_text(value, ty, transform).map_err(|reason| InboundError::Value {
            pipeline: self.ctx.pipeline.clone(),
            object: self.ctx.object.clone(),
            record_id: id.to_string(),
            source: Box::new(ConvertError {
                field: field.to_string(),
                column: column.to_string(),
                sql: ty.sql.clone(),
                reason,
            }),
        })
    }
}

/// The current WAL insert position (`None` if Postgres sends one that does not parse).
async fn wal_position(
    tx: &impl GenericClient,
) -> Result<Option<crate::lsn::Lsn>, tokio_postgres::Error> {
    let row = tx
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await?;
    Ok(row.get::<_, String>(0).parse().ok())
}

/// A field's value, matched case-insensitively like Salesforce.
fn lookup<'a>(values: &'a BTreeMap<String, Value>, field: &str) -> Option<&'a Value> {
    values.get(field).or_else(|| {
        values
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(field))
            .map(|(_, v)| v)
    })
}

/// The version an event carries: its SystemModstamp when present, else its commit time.
pub fn event_version(e: &InboundEvent) -> DateTime<Utc> {
    lookup(&e.values, "SystemModstamp")
        .and_then(|v| datetime(v).ok())
        .unwrap_or(e.commit_timestamp)
}
