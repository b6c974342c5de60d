//! The outbound guard of a two-way pair. Before pgforce writes paired records to
//! Salesforce, the sink reads them as they are now (one SOQL by Id per 200 records) and
//! [`guard`] decides every field of every record against what Salesforce holds, so a
//! change made in Salesforce that the inbound side has not applied yet is not overwritten
//! by an older or an unrelated Postgres change:
//!
//! - Salesforce set the field after this change was committed and pgforce applied it to
//!   Postgres (synced from Salesforce at a later WAL position): not sent.
//! - Salesforce holds the last synced value (or nothing was synced yet, or the record
//!   cannot be read, or the field is Postgres-owned), or a value set before pgforce
//!   recorded its last write of the field (that write decided against it, and did not
//!   land if Salesforce does not hold it: a crash between the record and the call): sent.
//! - Salesforce changed it since the last sync and the Postgres value is the last synced
//!   one (Postgres did not change the field; the change carries it because the row
//!   changed): not sent; the inbound side brings Salesforce's value.
//! - Both changed it: a conflict, decided by the field's policy (newest: the record's
//!   SystemModstamp against the Postgres row's commit time, Postgres on a tie or when
//!   unknown), the same decision the inbound side makes ([`super::echo`]), so both sides
//!   end on one value. Logged and counted like every conflict.
//!
//! The sink records what it sends as synced before the call, for records whose Id it
//! knows: after a crash between the call and its results, Salesforce then holds a value
//! pgforce knows as its own, not one that looks like a person's newer edit (which would
//! win the next conflict and lose the newer Postgres change). The inbound side does not
//! apply a Salesforce value set before that record ([`super::echo`]): pgforce's write
//! overwrites it, having decided against it.
//!
//! Salesforce has no conditional update, so one window stays: a person's edit made while
//! pgforce's write is in flight (after the read) is overwritten by it, and if the inbound
//! side reads it in that window, Postgres takes it while Salesforce ends with pgforce's
//! value. The window is one call long.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::conflict::{self, Decision, Winner};
use super::synced::{Side, Synced};
use super::values::hash_json;
use crate::checkpoint::{quote_ident, StateError, StateStore};
use crate::config::pair::{Conflict, Owner, PairConfig};
use crate::lsn::Lsn;

/// Each outbound field's policy: `None` for a Postgres-owned field (always sent).
#[derive(Debug, Clone, Default)]
pub struct Policies {
    by_field: HashMap<String, Option<Conflict>>,
}

impl Policies {
    /// The policies of `pair`'s fields, by field name (case-insensitively); the key field
    /// is two-way, newest wins (as on the inbound side).
    pub fn of(pair: &PairConfig) -> Policies {
        let mut by_field: HashMap<String, Option<Conflict>> = pair
            .fields
            .values()
            .filter(|f| f.owner.outbound())
            .map(|f| {
                let policy = (f.owner == Owner::Both).then_some(f.conflict);
                (f.field.to_ascii_lowercase(), policy)
            })
            .collect();
        by_field.insert(pair.key.field.to_ascii_lowercase(), Some(Conflict::Newest));
        Policies { by_field }
    }

    /// The policy of `field`; a field the pair does not name is sent as is.
    fn get(&self, field: &str) -> Option<Conflict> {
        self.by_field
            .get(&field.to_ascii_lowercase())
            .copied()
            .flatten()
    }
}

/// A record as Salesforce holds it now.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub values: &'a Map<String, Value>,
    /// Its SystemModstamp (`None`: not read or not parseable).
    pub modstamp: Option<DateTime<Utc>>,
}

impl<'a> Seen<'a> {
    /// `values` as read by SOQL (its `SystemModstamp` taken as the change time).
    pub fn of(values: &'a Map<String, Value>) -> Seen<'a> {
        let modstamp = values
            .get("SystemModstamp")
            .and_then(Value::as_str)
            .and_then(parse_datetime);
        Seen { values, modstamp }
    }

    /// The value of `field` (case-insensitively); absent reads as null.
    fn value(&self, field: &str) -> &Value {
        self.values
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(field))
            .map_or(&Value::Null, |(_, v)| v)
    }
}

/// A Salesforce datetime (`2024-05-01T12:00:00.000+0000`, or RFC 3339).
fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// One outbound record of a pair, as [`guard`] sees it.
#[derive(Debug)]
pub struct Outbound<'a> {
    pub pipeline: &'a str,
    pub object: &'a str,
    /// The record's Id.
    pub id: &'a str,
    /// The field the step is keyed by: never removed (outcomes are keyed by it).
    pub key_field: &'a str,
    /// Commit LSN of the change.
    pub lsn: Lsn,
    /// Commit time of the Postgres row as it is now (`track_commit_timestamp`).
    pub postgres_at: Option<DateTime<Utc>>,
}

/// Whether `field` of a record is one the guard decides (not `Id`, `attributes`, the key
/// or a parent reference).
fn decided(key_field: &str, field: &str, value: &Value) -> bool {
    !field.eq_ignore_ascii_case("Id")
        && field != "attributes"
        && !field.eq_ignore_ascii_case(key_field)
        && !value.is_object()
}

/// The fields of `records` the guard reads from Salesforce (deduplicated, in order).
pub fn read_fields<'a>(
    records: impl IntoIterator<Item = &'a Map<String, Value>>,
    key_field: &str,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in records {
        for (f, v) in r {
            if decided(key_field, f, v) && !out.iter().any(|o| o.eq_ignore_ascii_case(f)) {
                out.push(f.clone());
            }
        }
    }
    out
}

/// Removes from `record` every field Salesforce's value should keep (see the module docs);
/// returns the fields removed.
pub fn guard(
    rec: &Outbound<'_>,
    policies: &Policies,
    synced: &HashMap<(String, String), Synced>,
    seen: Option<Seen<'_>>,
    record: &mut Map<String, Value>,
) -> Vec<String> {
    let dropped: Vec<String> = record
        .iter()
        .filter(|(f, v)| decided(rec.key_field, f, v))
        .filter(|(f, v)| {
            let last = synced.get(&(rec.id.to_string(), (*f).clone()));
            !keeps(rec, policies.get(f), last, seen, f, v)
        })
        .map(|(f, _)| f.clone())
        .collect();
    for f in &dropped {
        record.remove(f);
    }
    dropped
}

/// Whether the Postgres value `value` of `field` is sent.
fn keeps(
    rec: &Outbound<'_>,
    policy: Option<Conflict>,
    last: Option<&Synced>,
    seen: Option<Seen<'_>>,
    field: &str,
    value: &Value,
) -> bool {
    let Some(last) = last else {
        return true;
    };
    if last.side == Side::Salesforce && last.wal_lsn > rec.lsn {
        return false;
    }
    let (Some(policy), Some(seen)) = (policy, seen) else {
        return true;
    };
    let salesforce = hash_json(seen.value(field));
    let postgres = hash_json(value);
    if salesforce == last.hash || salesforce == postgres {
        return true;
    }
    // Salesforce's value predates pgforce's last recorded write of the field: that write
    // decided against it and never landed (a crash before the call) or is repeated now.
    let older = last
        .at
        .zip(seen.modstamp)
        .is_some_and(|(recorded, changed)| changed <= recorded);
    if last.side == Side::Postgres && older {
        return true;
    }
    if postgres == last.hash {
        return false;
    }
    let salesforce_at = seen.modstamp.unwrap_or(DateTime::<Utc>::MIN_UTC);
    let winner = conflict::decide(policy, salesforce_at, rec.postgres_at);
    conflict::report(&Decision {
        pipeline: rec.pipeline,
        object: rec.object,
        record_id: rec.id,
        field,
        postgres_hash: &postgres,
        salesforce_hash: &salesforce,
        winner,
        policy,
    });
    winner == Winner::Postgres
}

/// The commit time of each row `(table, key columns and their values as text)` as it is
/// now, in order; `None` for a row not found or when `track_commit_timestamp` is off.
pub async fn row_commit_times(
    state: &StateStore,
    table: &str,
    keys: &[Vec<(String, String)>],
) -> Result<Vec<Option<DateTime<Utc>>>, StateError> {
    let Some(columns) = keys.first().map(|k| k.iter().map(|(c, _)| c.clone())) else {
        return Ok(Vec::new());
    };
    let columns: Vec<String> = columns.collect();
    let (schema, name) = table.split_once('.').unwrap_or(("public", table));
    let arrays: Vec<Vec<&str>> = (0..columns.len())
        .map(|i| {
            keys.iter()
                .map(|k| k.get(i).map_or("", |(_, v)| v.as_str()))
                .collect()
        })
        .collect();
    let unnest: Vec<String> = (1..=columns.len())
        .map(|i| format!("${i}::text[]"))
        .collect();
    let names: Vec<String> = (0..columns.len()).map(|i| format!("k{i}")).collect();
    let join: Vec<String> = columns
        .iter()
        .zip(&names)
        .map(|(c, n)| format!("t.{}::text = k.{n}", quote_ident(c)))
        .collect();
    let sql = format!(
        "SELECT k.i, CASE WHEN current_setting('track_commit_timestamp')::bool \
         THEN pg_xact_commit_timestamp(t.xmin) END \
         FROM unnest({}) WITH ORDINALITY AS k({}, i) JOIN {}.{} t ON {}",
        unnest.join(", "),
        names.join(", "),
        quote_ident(schema),
        quote_ident(name),
        join.join(" AND "),
    );
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = arrays
        .iter()
        .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let client = state.session().await;
    let rows = client
        .query(&sql, &params)
        .await
        .map_err(|source| StateError::Query {
            context: "reading paired rows' commit times",
            source,
        })?;
    let mut out = vec![None; keys.len()];
    for r in rows {
        let i: i64 = r.get(0);
        if let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| out.get_mut(i)) {
            *slot = r.get(1);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn pair() -> PairConfig {
        toml::from_str(
            r#"
name = "users"
table = "public.users"
object = "Contact"
key = { column = "email", match_by = "Email" }
id_column = "salesforce_id"
[fields]
first_name = "FirstName"
phone = { field = "Phone", conflict = "salesforce" }
plan = { field = "Department", owner = "postgres" }
"#,
        )
        .unwrap()
    }

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    fn rec(postgres_at: i64) -> Outbound<'static> {
        Outbound {
            pipeline: "p",
            object: "Contact",
            id: "003A",
            key_field: "Email",
            lsn: Lsn(10),
            postgres_at: Some(at(postgres_at)),
        }
    }

    fn synced(fields: &[(&str, Value, Side, u64)]) -> HashMap<(String, String), Synced> {
        fields
            .iter()
            .map(|(f, v, side, lsn)| {
                let s = Synced {
                    hash: hash_json(v),
                    side: *side,
                    wal_lsn: Lsn(*lsn),
                    at: None,
                };
                (("003A".to_string(), f.to_string()), s)
            })
            .collect()
    }

    fn record(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn salesforce_s_unsynced_edit_is_not_overwritten_by_a_field_postgres_did_not_change() {
        let known = synced(&[
            ("FirstName", json!("Ann"), Side::Postgres, 5),
            ("Department", json!("Pro"), Side::Postgres, 5),
        ]);
        let now = record(
            json!({"Id": "003A", "FirstName": "Annie", "Department": "Hand",
            "SystemModstamp": "1970-01-01T00:00:50.000+0000"}),
        );
        // The row changed its plan only: FirstName is the synced value.
        let mut r = record(json!({"Email": "a@x.com", "FirstName": "Ann", "Department": "Free"}));
        let dropped = guard(
            &rec(40),
            &Policies::of(&pair()),
            &known,
            Some(Seen::of(&now)),
            &mut r,
        );
        assert_eq!(dropped, ["FirstName"]);
        // Postgres-owned: always sent; the key is never dropped.
        assert_eq!(r["Department"], json!("Free"));
        assert_eq!(r["Email"], json!("a@x.com"));
    }

    #[test]
    fn a_field_both_sides_changed_follows_its_policy() {
        let known = synced(&[
            ("FirstName", json!("Ann"), Side::Postgres, 5),
            ("Phone", json!("1"), Side::Postgres, 5),
        ]);
        let now = record(json!({"FirstName": "SfAnn", "Phone": "3",
            "SystemModstamp": "1970-01-01T00:00:50.000+0000"}));
        let p = Policies::of(&pair());
        // Postgres committed before Salesforce's edit: newest → Salesforce; Phone's policy
        // is Salesforce.
        let mut r = record(json!({"Email": "a", "FirstName": "PgAnn", "Phone": "2"}));
        let dropped = guard(&rec(40), &p, &known, Some(Seen::of(&now)), &mut r);
        assert_eq!(dropped, ["FirstName", "Phone"]);
        // Postgres committed after it: newest → Postgres.
        let mut r = record(json!({"Email": "a", "FirstName": "PgAnn"}));
        assert!(guard(&rec(60), &p, &known, Some(Seen::of(&now)), &mut r).is_empty());
    }

    #[test]
    fn unchanged_in_salesforce_unknown_or_unread_fields_are_sent() {
        let known = synced(&[("FirstName", json!("Ann"), Side::Postgres, 5)]);
        let now = record(json!({"FirstName": "Ann", "Phone": "9"}));
        let p = Policies::of(&pair());
        let mut r = record(json!({"Email": "a", "FirstName": "New", "Phone": "2"}));
        assert!(guard(&rec(40), &p, &known, Some(Seen::of(&now)), &mut r).is_empty());
        assert!(guard(&rec(40), &p, &known, None, &mut r).is_empty());
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn a_write_recorded_before_a_crash_that_never_landed_is_sent_again() {
        // pgforce recorded FirstName = "PgAnn" at 60 and died before the call; Salesforce
        // still holds what it held before (set at 50).
        let mut known = synced(&[("FirstName", json!("PgAnn"), Side::Postgres, 5)]);
        for s in known.values_mut() {
            s.at = Some(at(60));
        }
        let now = record(json!({"FirstName": "Ann",
            "SystemModstamp": "1970-01-01T00:00:50.000+0000"}));
        let p = Policies::of(&pair());
        let mut r = record(json!({"Email": "a", "FirstName": "PgAnn"}));
        assert!(guard(&rec(40), &p, &known, Some(Seen::of(&now)), &mut r).is_empty());
        // A person's edit after the record (at 70) is newer: Postgres did not change the
        // field since, so it stays.
        let now = record(json!({"FirstName": "Annie",
            "SystemModstamp": "1970-01-01T00:01:10.000+0000"}));
        let dropped = guard(&rec(40), &p, &known, Some(Seen::of(&now)), &mut r);
        assert_eq!(dropped, ["FirstName"]);
    }

    #[test]
    fn a_value_salesforce_set_after_the_change_is_not_sent() {
        let known = synced(&[("Phone", json!("7"), Side::Salesforce, 20)]);
        let mut r = record(json!({"Email": "a", "Phone": "2", "FirstName": "F"}));
        let p = Policies::of(&pair());
        assert_eq!(guard(&rec(40), &p, &known, None, &mut r), ["Phone"]);
    }

    #[test]
    fn salesforce_datetimes_parse() {
        assert_eq!(parse_datetime("1970-01-01T00:00:50.000+0000"), Some(at(50)));
        assert_eq!(parse_datetime("1970-01-01T00:00:50Z"), Some(at(50)));
        assert_eq!(parse_datetime("yesterday"), None);
    }
}
