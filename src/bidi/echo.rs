//! The filter a paired inbound entry's changes go through before they are applied to
//! Postgres: pgforce's own writes coming back are dropped, values equal to the last synced
//! ones (or to what the row holds) are dropped field by field, and a field both sides
//! changed between syncs is decided by its policy ([`super::conflict`]). What is left is
//! applied; the caller then records it as synced ([`EchoFilter::applied`]).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::conflict::{self, Decision, Winner};
use super::synced::{self, Side, Synced, Write};
use super::values::{canonical_text, hash, hash_json};
use crate::checkpoint::{quote_ident, StateError, StateStore};
use crate::config::pair::{Conflict, Owner, PairConfig, PairDelete};

/// One record's change as the filter sees it (an event naming several records is one
/// candidate per record).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub record_id: String,
    /// Field → value, as the event carries them (REST JSON).
    pub values: BTreeMap<String, Value>,
    pub change_origin: String,
    pub commit_timestamp: DateTime<Utc>,
    pub delete: bool,
}

/// What to apply: the candidates kept (their values filtered) and what to record as
/// synced once they are applied.
#[derive(Debug, Default)]
pub struct Filtered {
    /// Per input candidate, in order: kept or not.
    pub keep: Vec<bool>,
    pub remember: Vec<Write>,
    /// The synced values' WAL position: the engine sets the one inside the apply
    /// transaction, after its writes; the position before it is the fallback.
    pub before: Option<crate::lsn::Lsn>,
}

/// A paired inbound entry's filter.
#[derive(Debug, Clone)]
pub struct EchoFilter {
    pipeline: String,
    tag: String,
    pair: PairConfig,
}

/// A paired row as Postgres holds it now: column text by field, and the commit time of
/// the row version when `track_commit_timestamp` is on.
#[derive(Debug, Default)]
struct Row {
    by_field: HashMap<String, Option<String>>,
    committed: Option<DateTime<Utc>>,
}

impl EchoFilter {
    pub fn new(pipeline: &str, pair: PairConfig) -> EchoFilter {
        EchoFilter {
            pipeline: pipeline.to_string(),
            tag: super::client_tag(pipeline),
            pair,
        }
    }

    pub fn object(&self) -> &str {
        &self.pair.object
    }

    /// The paired fields Salesforce changes flow back for (the key field included), with
    /// their column and policy.
    fn inbound_fields(&self) -> Vec<(&str, &str, Conflict)> {
        let mut out: Vec<(&str, &str, Conflict)> = self
            .pair
            .fields
            .iter()
            .filter(|(_, f)| f.owner.inbound())
            .map(|(c, f)| {
                // Postgres does not own a Salesforce-owned field: its value always wins.
                let policy = match f.owner {
                    Owner::Salesforce => Conflict::Salesforce,
                    _ => f.conflict,
                };
                (f.field.as_str(), c.as_str(), policy)
            })
            .collect();
        out.push((
            &self.pair.key.field,
            &self.pair.key.column,
            Conflict::Newest,
        ));
        out
    }

    /// Filters `candidates` in place (dropping fields) and says which to apply.
    pub async fn filter(
        &self,
        state: &StateStore,
        candidates: &mut [Candidate],
    ) -> Result<Filtered, StateError> {
        let ids: Vec<String> = candidates.iter().map(|c| c.record_id.clone()).collect();
        let known = synced::load(state, &self.pair.object, &ids).await?;
        let mut rows = self.rows(state, &ids).await?;
        let mut unlinked = Vec::new();
        for c in candidates
            .iter()
            .filter(|c| !c.delete && !rows.contains_key(&c.record_id))
        {
            if !self.link(state, c).await? {
                unlinked.push(c.record_id.clone());
            }
        }
        if unlinked.len() < ids.len() {
            rows = self.rows(state, &ids).await?;
        }
        let mut out = Filtered {
            before: Some(synced::wal_position(state).await?),
            ..Filtered::default()
        };
        for c in candidates.iter_mut() {
            let keep = self.one(c, &known, rows.get(&c.record_id), &mut out.remember);
            if !keep {
                metrics::counter!(crate::metrics::BIDI_ECHOES, "pipeline" => self.pipeline.clone(), "object" => self.pair.object.clone()).increment(1);
            }
            out.keep.push(keep);
        }
        Ok(out)
    }

    /// Records what was applied as synced from Salesforce.
    pub async fn applied(&self, state: &StateStore, f: &Filtered) -> Result<(), StateError> {
        synced::remember(
            state,
            &self.pair.object,
            &f.remember,
            Side::Salesforce,
            f.before,
            None,
        )
        .await
    }

    /// One candidate: whether to apply it, its values filtered.
    fn one(
        &self,
        c: &mut Candidate,
        known: &HashMap<(String, String), Synced>,
        row: Option<&Row>,
        remember: &mut Vec<Write>,
    ) -> bool {
        if super::origin_is(&c.change_origin, &self.tag) {
            return false;
        }
        if c.delete {
            return self.pair.delete != PairDelete::Ignore;
        }
        let mut any = false;
        let mut dropped = Vec::new();
        for (field, _column, policy) in self.inbound_fields() {
            let Some(name) = c
                .values
                .keys()
                .find(|k| k.eq_ignore_ascii_case(field))
                .cloned()
            else {
                continue;
            };
            let value = &c.values[&name];
            let h = hash_json(value);
            let last = known.get(&(c.record_id.clone(), field.to_string()));
            let current = row.map(|r| {
                let text = r.by_field.get(field).cloned().flatten();
                hash(text.as_deref().and_then(canonical_text).as_deref())
            });
            let keep = match (last, &current) {
                // Unchanged since the last sync, or pgforce's own write coming back.
                (Some(s), _) if s.hash == h => false,
                // Set before pgforce recorded writing its own value of the field: that
                // write overwrote it (or is about to), having decided against it.
                (Some(s), _)
                    if s.side == Side::Postgres
                        && s.at.is_some_and(|at| c.commit_timestamp < at) =>
                {
                    false
                }
                // Postgres holds it already.
                (_, Some(cur)) if *cur == h => {
                    remember.push((c.record_id.clone(), field.to_string(), h.clone()));
                    false
                }
                // Nothing known and nothing to set.
                (None, _) if value.is_null() => false,
                // Postgres changed it since the last sync too (or, on first contact,
                // holds another value): a conflict.
                (last, Some(cur)) if last.is_none_or(|s| *cur != s.hash) => {
                    let winner =
                        conflict::decide(policy, c.commit_timestamp, row.and_then(|r| r.committed));
                    conflict::report(&Decision {
                        pipeline: &self.pipeline,
                        object: &self.pair.object,
                        record_id: &c.record_id,
                        field,
                        postgres_hash: cur,
                        salesforce_hash: &h,
                        winner,
                        policy,
                    });
                    winner == Winner::Salesforce
                }
                _ => true,
            };
            if keep {
                remember.push((c.record_id.clone(), field.to_string(), h));
                any = true;
            } else {
                c.values.remove(&name);
                dropped.push((name, field));
            }
        }
        // The applier upserts the fields present; a dropped field of an existing row, and
        // one the change does not carry (a CDC update names only what it changed), is
        // given the row's own value (a no-op), since the upsert's proposed row must still
        // satisfy NOT NULL columns.
        if let (true, Some(row)) = (any, row) {
            for (name, field) in dropped {
                let current = row.by_field.get(field).cloned().flatten();
                c.values
                    .insert(name, current.map_or(Value::Null, Value::String));
            }
            // A change event carries only the fields it changed: the others too.
            for (field, _, _) in self.inbound_fields() {
                if !c.values.keys().any(|k| k.eq_ignore_ascii_case(field)) {
                    let current = row.by_field.get(field).cloned().flatten();
                    c.values.insert(
                        field.to_string(),
                        current.map_or(Value::Null, Value::String),
                    );
                }
            }
        }
        any
    }

    /// First contact from the Salesforce side: a record no row is linked to, whose key
    /// value a row has with an empty `id_column`, is linked to that row (its Id set)
    /// instead of inserted again. Returns whether a row was linked.
    async fn link(&self, state: &StateStore, c: &Candidate) -> Result<bool, StateError> {
        let key = &self.pair.key.field;
        let Some(value) = c
            .values
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| super::values::canonical(v))
        else {
            return Ok(false);
        };
        let sql = format!(
            "UPDATE {t} SET {id} = $1 WHERE {id} IS NULL AND lower({k}::text) = lower($2)",
            t = self.quoted_table(),
            id = quote_ident(&self.pair.id_column),
            k = quote_ident(&self.pair.key.column),
        );
        let client = state.session().await;
        let n = client
            .execute(&sql, &[&c.record_id, &value])
            .await
            .map_err(|source| StateError::Query {
                context: "linking a paired row to its record",
                source,
            })?;
        Ok(n > 0)
    }

    /// `"schema"."table"`.
    fn quoted_table(&self) -> String {
        let qt = self.pair.qualified_table();
        let (schema, table) = qt.split_once('.').unwrap_or(("public", qt.as_str()));
        format!("{}.{}", quote_ident(schema), quote_ident(table))
    }

    /// The paired rows of `ids` as Postgres holds them now.
    async fn rows(
        &self,
        state: &StateStore,
        ids: &[String],
    ) -> Result<HashMap<String, Row>, StateError> {
        let fields = self.inbound_fields();
        let cols: Vec<String> = fields
            .iter()
            .map(|(_, c, _)| format!("{}::text", quote_ident(c)))
            .collect();
        let sql = format!(
            "SELECT {id}::text, CASE WHEN current_setting('track_commit_timestamp')::bool \
             THEN pg_xact_commit_timestamp(xmin) END, {cols} FROM {t} WHERE {id} = ANY($1)",
            id = quote_ident(&self.pair.id_column),
            cols = cols.join(", "),
            t = self.quoted_table(),
        );
        let client = state.session().await;
        let found = client
            .query(&sql, &[&ids])
            .await
            .map_err(|source| StateError::Query {
                context: "reading paired rows",
                source,
            })?;
        let mut out = HashMap::new();
        for r in found {
            let by_field = fields
                .iter()
                .enumerate()
                .map(|(i, (f, _, _))| (f.to_string(), r.get::<_, Option<String>>(i + 2)))
                .collect();
            out.insert(
                r.get::<_, String>(0),
                Row {
                    by_field,
                    committed: r.get(1),
                },
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Lsn;
    use chrono::TimeZone;
    use serde_json::json;

    fn filter() -> EchoFilter {
        let pair: PairConfig = toml::from_str(
            r#"
name = "users"
table = "public.users"
object = "Contact"
key = { column = "email", match_by = "Email" }
id_column = "salesforce_id"
[fields]
first_name = "FirstName"
phone = { field = "Phone", conflict = "salesforce" }
lead_source = { field = "LeadSource", owner = "salesforce" }
"#,
        )
        .unwrap();
        EchoFilter::new("p", pair)
    }

    fn candidate(origin: &str, values: serde_json::Value) -> Candidate {
        Candidate {
            record_id: "003A".into(),
            values: serde_json::from_value(values).unwrap(),
            change_origin: origin.into(),
            commit_timestamp: Utc.timestamp_opt(100, 0).unwrap(),
            delete: false,
        }
    }

    fn synced(fields: &[(&str, serde_json::Value)]) -> HashMap<(String, String), Synced> {
        fields
            .iter()
            .map(|(f, v)| {
                let s = Synced {
                    hash: hash_json(v),
                    side: Side::Postgres,
                    wal_lsn: Lsn(1),
                    at: None,
                };
                (("003A".to_string(), f.to_string()), s)
            })
            .collect()
    }

    fn row(fields: &[(&str, &str)]) -> Row {
        Row {
            by_field: fields
                .iter()
                .map(|(f, v)| (f.to_string(), Some(v.to_string())))
                .collect(),
            committed: None,
        }
    }

    #[test]
    fn pgforce_s_own_change_events_are_dropped() {
        let mut c = candidate(
            "com/salesforce/api/rest/62.0;client=pgforce-p",
            json!({"FirstName": "Ann"}),
        );
        assert!(!filter().one(&mut c, &HashMap::new(), None, &mut Vec::new()));
    }

    #[test]
    fn a_combined_change_lets_only_the_person_s_field_through() {
        // pgforce wrote FirstName = Ann; a person set LeadSource in the same change.
        let known = synced(&[("FirstName", json!("Ann")), ("Email", json!("a@x.com"))]);
        let r = row(&[("FirstName", "Ann"), ("Email", "a@x.com")]);
        let mut c = candidate(
            "",
            json!({"FirstName": "Ann", "Email": "a@x.com", "LeadSource": "Web"}),
        );
        let mut remember = Vec::new();
        assert!(filter().one(&mut c, &known, Some(&r), &mut remember));
        assert_eq!(c.values["LeadSource"], json!("Web"));
        // Unchanged fields are given the row's own values (a no-op for NOT NULL columns).
        assert_eq!(c.values["FirstName"], json!("Ann"));
        assert_eq!(remember.len(), 1, "only LeadSource is newly synced");
    }

    #[test]
    fn a_change_event_naming_one_field_carries_the_row_s_other_values() {
        // A CDC update of FirstName only: the upsert's row still has the NOT NULL key.
        let known = synced(&[("FirstName", json!("Ann"))]);
        let r = row(&[("FirstName", "Ann"), ("Email", "a@x.com"), ("Phone", "1")]);
        let mut c = candidate("", json!({"FirstName": "Bob"}));
        assert!(filter().one(&mut c, &known, Some(&r), &mut Vec::new()));
        assert_eq!(c.values["FirstName"], json!("Bob"));
        assert_eq!(c.values["Email"], json!("a@x.com"));
        assert_eq!(c.values["Phone"], json!("1"));
    }

    #[test]
    fn an_echo_with_nothing_new_is_not_applied() {
        let known = synced(&[("FirstName", json!("Ann")), ("Phone", json!("1"))]);
        let mut c = candidate(
            "",
            json!({"FirstName": "Ann", "Phone": "1", "LeadSource": null}),
        );
        assert!(!filter().one(&mut c, &known, Some(&row(&[])), &mut Vec::new()));
    }

    #[test]
    fn a_salesforce_value_older_than_pgforce_s_write_is_not_applied() {
        let mut known = synced(&[("FirstName", json!("Ann"))]);
        for s in known.values_mut() {
            s.at = Some(Utc.timestamp_opt(101, 0).unwrap());
        }
        let r = row(&[("FirstName", "Ann")]);
        // Committed at 100, before pgforce recorded sending "Ann" at 101.
        let mut c = candidate("", json!({"FirstName": "Old"}));
        assert!(!filter().one(&mut c, &known, Some(&r), &mut Vec::new()));
        // Committed after it: a person's newer edit.
        c.commit_timestamp = Utc.timestamp_opt(102, 0).unwrap();
        c.values.insert("FirstName".into(), json!("New"));
        assert!(filter().one(&mut c, &known, Some(&r), &mut Vec::new()));
    }

    #[test]
    fn a_field_both_sides_changed_follows_its_policy() {
        // Synced "1"; Postgres now holds "2" (not sent yet); Salesforce says "3".
        let known = synced(&[("Phone", json!("1")), ("FirstName", json!("A"))]);
        let r = row(&[("Phone", "2"), ("FirstName", "B")]);
        let mut c = candidate("", json!({"Phone": "3", "FirstName": "C"}));
        assert!(filter().one(&mut c, &known, Some(&r), &mut Vec::new()));
        // Phone: conflict = "salesforce" wins; FirstName: newest, Postgres time unknown → Postgres.
        assert_eq!(c.values["Phone"], json!("3"));
        assert_eq!(c.values["FirstName"], json!("B"));
    }
}
