//! The last value each paired record field was synced with (state table `synced_values`,
//! migration 6): a hash per (object, record Id, field), which side it came from, the WAL
//! position when it was recorded and the change's commit time. Written when pgforce
//! writes the field to Salesforce (side `postgres`) and when it applies it to Postgres
//! (side `salesforce`); one row per field, so the table is bounded by the paired records,
//! and rows older than [`RETENTION`] are pruned (a pruned value costs at most one
//! redundant write, never a loop: Postgres-side echoes stop at the replication origin).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::checkpoint::{StateError, StateStore};

/// How long a synced value is kept.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Which side a synced value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// pgforce wrote it to Salesforce.
    Postgres,
    /// pgforce applied it to Postgres.
    Salesforce,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Postgres => "postgres",
            Side::Salesforce => "salesforce",
        }
    }
}

/// One field's last synced value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub hash: String,
    pub side: Side,
    /// The WAL insert position when it was recorded (for a Salesforce value: taken before
    /// it was applied), as `pg_lsn` text; a Postgres change committed before it is older
    /// than the value.
    pub wal_lsn: crate::lsn::Lsn,
    /// When it was recorded (Postgres's clock). A value pgforce sends is recorded just
    /// before the call, so a Salesforce value set before this is one pgforce's write
    /// overwrites ([`super::echo`] does not apply it). `None` in tests.
    pub at: Option<DateTime<Utc>>,
}

/// A value to record: (record Id, field, hash).
pub type Write = (String, String, String);

fn q(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StateError {
    move |source| StateError::Query { context, source }
}

/// Records `writes` of `object` as synced from `side` (at WAL position `at`, or the
/// current one), replacing what each field held.
pub async fn remember(
    state: &StateStore,
    object: &str,
    writes: &[Write],
    side: Side,
    at: Option<crate::lsn::Lsn>,
    changed_at: Option<DateTime<Utc>>,
) -> Result<(), StateError> {
    if writes.is_empty() {
        return Ok(());
    }
    let s = state.schema();
    let ids: Vec<&str> = writes.iter().map(|w| w.0.as_str()).collect();
    let fields: Vec<&str> = writes.iter().map(|w| w.1.as_str()).collect();
    let hashes: Vec<&str> = writes.iter().map(|w| w.2.as_str()).collect();
    let at = at.map(|l| l.to_string());
    let client = state.session().await;
    client
        .execute(
            &format!(
                "INSERT INTO {s}.synced_values
                   (pipeline, object, record_id, field, value_hash, side, wal_lsn, changed_at, synced_at)
                 SELECT $1, $2, i, f, h, $6, coalesce($7::text::pg_lsn, pg_current_wal_insert_lsn()), $8,
                   clock_timestamp()
                 FROM unnest($3::text[], $4::text[], $5::text[]) AS t(i, f, h)
                 ON CONFLICT (pipeline, object, record_id, field) DO UPDATE SET
                   value_hash = excluded.value_hash, side = excluded.side,
                   wal_lsn = excluded.wal_lsn, changed_at = excluded.changed_at,
                   synced_at = clock_timestamp()"
            ),
            &[
                &state.pipeline(),
                &object,
                &ids,
                &fields,
                &hashes,
                &side.as_str(),
                &at,
                &changed_at,
            ],
        )
        .await
        .map_err(q("recording synced values"))?;
    Ok(())
}

/// The synced values of `object`'s records `ids`, by (record Id, field).
pub async fn load(
    state: &StateStore,
    object: &str,
    ids: &[String],
) -> Result<HashMap<(String, String), Synced>, StateError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let s = state.schema();
    let client = state.session().await;
    let rows = client
        .query(
            &format!(
                "SELECT record_id, field, value_hash, side, wal_lsn::text, synced_at FROM {s}.synced_values
                 WHERE pipeline = $1 AND object = $2 AND record_id = ANY($3)"
            ),
            &[&state.pipeline(), &object, &ids],
        )
        .await
        .map_err(q("reading synced values"))?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let side = match r.get::<_, &str>(3) {
            "salesforce" => Side::Salesforce,
            _ => Side::Postgres,
        };
        let lsn: String = r.get(4);
        let wal_lsn = lsn
            .parse()
            .map_err(|e: crate::lsn::ParseLsnError| StateError::Corrupt {
                column: "synced_values.wal_lsn",
                value: lsn.clone(),
                reason: e.to_string(),
            })?;
        out.insert(
            (r.get(0), r.get(1)),
            Synced {
                hash: r.get(2),
                side,
                wal_lsn,
                at: r.get(5),
            },
        );
    }
    Ok(out)
}

/// The current WAL insert position (taken before an inbound batch is applied).
pub async fn wal_position(state: &StateStore) -> Result<crate::lsn::Lsn, StateError> {
    let client = state.session().await;
    let row = client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .map_err(q("reading the WAL position"))?;
    let text: String = row.get(0);
    text.parse()
        .map_err(|e: crate::lsn::ParseLsnError| StateError::Corrupt {
            column: "pg_current_wal_insert_lsn",
            value: text,
            reason: e.to_string(),
        })
}

/// Forgets values synced longer ago than [`RETENTION`]; returns how many.
pub async fn prune(state: &StateStore) -> Result<u64, StateError> {
    let s = state.schema();
    let client = state.session().await;
    let secs = RETENTION.as_secs_f64();
    client
        .execute(
            &format!(
                "DELETE FROM {s}.synced_values WHERE pipeline = $1
                   AND synced_at < now() - make_interval(secs => $2)"
            ),
            &[&state.pipeline(), &secs],
        )
        .await
        .map_err(q("pruning synced values"))
}

/// The fields of an outbound record whose values are recorded: plain fields (not `Id`,
/// `attributes` or a parent reference).
fn recorded_fields(
    record: &serde_json::Map<String, serde_json::Value>,
) -> impl Iterator<Item = (&String, &serde_json::Value)> {
    record
        .iter()
        .filter(|(k, v)| !k.eq_ignore_ascii_case("Id") && *k != "attributes" && !v.is_object())
}

/// Records what pgforce wrote to Salesforce records (Id, the record as sent) as synced
/// from Postgres.
pub async fn remember_outbound<'a>(
    state: &StateStore,
    object: &str,
    written: impl IntoIterator<Item = (&'a str, serde_json::Map<String, serde_json::Value>)>,
) -> Result<(), StateError> {
    let writes: Vec<Write> = written
        .into_iter()
        .flat_map(|(id, record)| {
            recorded_fields(&record)
                .map(|(f, v)| (id.to_string(), f.clone(), super::values::hash_json(v)))
                .collect::<Vec<_>>()
        })
        .collect();
    remember(state, object, &writes, Side::Postgres, None, None).await
}
