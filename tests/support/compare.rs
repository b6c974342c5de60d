//! The one Postgres ⇄ Salesforce comparison every end-to-end test uses: rows of a table
//! against the live emulator records of its object, keyed by the external id
//! (`External_Id__c`). A [`Diff`] lists what is lost (a row without a live record), extra
//! (a live record without a row), duplicated (several live records for one key), created
//! twice (more records, deleted ones included, than the test inserted the key) and stale
//! (a field that differs), so a failure says exactly which record is wrong.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::str::FromStr;

use pgforce_emulator::ids::Id;
use pgforce_emulator::store::{is_deleted, Record};
use pgforce_emulator::EmulatorHandle;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio_postgres::Client;

/// The field every compared object is keyed by.
pub const KEY_FIELD: &str = "External_Id__c";

/// How a Postgres column (read as text) compares with a Salesforce field. NULL, empty text
/// and an absent field are all null (Salesforce stores empty text as null).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Text, equal as is.
    Text,
    /// Text that the mapping truncates to this many characters.
    Truncated(usize),
    /// An integer (a JSON number in Salesforce).
    Int,
    /// An exact decimal (compared numerically).
    Decimal,
    /// The column holds the parent's external id; the field holds the Id of the parent's
    /// live record of this object.
    Lookup(&'static str),
    /// The column holds the record's own Salesforce Id (18 characters), written back.
    OwnId,
}

/// One table and the object it maps to.
#[derive(Debug, Clone, Copy)]
pub struct Table<'a> {
    pub table: &'a str,
    pub object: &'a str,
    /// The external-id column.
    pub key: &'a str,
    /// `(column, field, kind)` compared for every row.
    pub fields: &'a [(&'a str, &'a str, Kind)],
    /// An SQL condition choosing the rows that must have a record (default: all rows).
    pub rows: Option<&'a str>,
    /// SQL returning `(key text, times inserted int)`; when set, a key with more records
    /// (deleted ones included) than that is "created twice". Unset: not checked.
    pub incarnations: Option<&'a str>,
}

impl<'a> Table<'a> {
    /// `table` keyed by `id`, every row compared.
    pub fn new(table: &'a str, object: &'a str, fields: &'a [(&'a str, &'a str, Kind)]) -> Self {
        Table {
            table,
            object,
            key: "id",
            fields,
            rows: None,
            incarnations: None,
        }
    }

    pub fn key(self, key: &'a str) -> Self {
        Table { key, ..self }
    }

    pub fn rows(self, condition: &'a str) -> Self {
        Table {
            rows: Some(condition),
            ..self
        }
    }

    pub fn incarnations(self, sql: &'a str) -> Self {
        Table {
            incarnations: Some(sql),
            ..self
        }
    }
}

/// What differs between Postgres and Salesforce.
#[derive(Debug, Default)]
pub struct Diff {
    /// Rows compared per table.
    pub rows: Vec<(String, usize)>,
    /// In Postgres, not live in Salesforce.
    pub lost: Vec<String>,
    /// Live in Salesforce, not in Postgres.
    pub extra: Vec<String>,
    /// More than one live record for one external id.
    pub duplicated: Vec<String>,
    /// More records (live or deleted) for one external id than the test inserted it.
    pub created_twice: Vec<String>,
    /// A field differs.
    pub stale: Vec<String>,
}

impl Diff {
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.extra.is_empty()
            && self.duplicated.is_empty()
            && self.created_twice.is_empty()
            && self.stale.is_empty()
    }

    /// Counts and the first few keys of each kind of difference.
    pub fn summary(&self) -> String {
        fn first(v: &[String]) -> String {
            v.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
        }
        let rows: Vec<String> = self.rows.iter().map(|(t, n)| format!("{n} {t}")).collect();
        format!(
            "pg: {} | lost {} [{}] | extra {} [{}] | duplicated {} [{}] | created twice {} [{}] | stale {} [{}]",
            rows.join(", "),
            self.lost.len(),
            first(&self.lost),
            self.extra.len(),
            first(&self.extra),
            self.duplicated.len(),
            first(&self.duplicated),
            self.created_twice.len(),
            first(&self.created_twice),
            self.stale.len(),
            first(&self.stale),
        )
    }

    /// `Ok` when clean, else the summary (for [`crate::support::wait::wait_until`]).
    pub fn result(&self) -> Result<(), String> {
        if self.is_clean() {
            Ok(())
        } else {
            Err(self.summary())
        }
    }

    /// What the state store and the emulator know about the first few keys that differ
    /// (for failure output).
    pub async fn explain(&self, pg: &Client, emulator: &EmulatorHandle) -> String {
        let mut out = String::new();
        let keys: Vec<(String, String)> = self
            .lost
            .iter()
            .chain(&self.stale)
            .chain(&self.extra)
            .chain(&self.duplicated)
            .take(6)
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let object = w.next()?.to_string();
                let key = w.next()?.split(['.', ':']).next()?.to_string();
                Some((object, key))
            })
            .collect();
        for (object, key) in keys {
            out.push_str(&format!("\n== {object} {key}\n"));
            for (sql, what) in [
                (
                    "SELECT row_to_json(e)::text FROM pgforce.errors e WHERE external_id = $1",
                    "dead letter",
                ),
                (
                    "SELECT row_to_json(p)::text FROM pgforce.parked p WHERE external_id = $1",
                    "parked",
                ),
                (
                    "SELECT row_to_json(m)::text FROM pgforce.id_map m WHERE external_id = $1",
                    "id_map",
                ),
                (
                    "SELECT row_to_json(i)::text FROM incarnations i WHERE id::text = $1",
                    "incarnations",
                ),
            ] {
                if let Ok(rows) = pg.query(sql, &[&key]).await {
                    for r in rows {
                        out.push_str(&format!("  {what}: {}\n", r.get::<_, String>(0)));
                    }
                }
            }
            let _ = emulator.state().store.scan(&object, true, |r| {
                if text(r.get(KEY_FIELD)).as_deref() == Some(key.as_str()) {
                    out.push_str(&format!(
                        "  sf: {}\n",
                        serde_json::to_string(&**r).unwrap_or_default()
                    ));
                }
                ControlFlow::Continue(())
            });
        }
        out
    }
}

/// Compare every table with its object, record by record, field by field.
pub async fn compare(pg: &Client, emulator: &EmulatorHandle, tables: &[Table<'_>]) -> Diff {
    let mut diff = Diff::default();
    let mut parents: HashMap<&str, HashMap<String, String>> = HashMap::new();
    for t in tables {
        for (_, _, kind) in t.fields {
            if let Kind::Lookup(parent) = kind {
                parents
                    .entry(parent)
                    .or_insert_with(|| live_ids(emulator, parent));
            }
        }
    }
    for t in tables {
        compare_table(pg, emulator, t, &parents, &mut diff).await;
    }
    diff
}

async fn compare_table(
    pg: &Client,
    emulator: &EmulatorHandle,
    t: &Table<'_>,
    parents: &HashMap<&str, HashMap<String, String>>,
    diff: &mut Diff,
) {
    let (live, all) = records(emulator, t.object);
    let rows = table_rows(pg, t).await;
    diff.rows.push((t.table.to_string(), rows.len()));
    for (key, recs) in &live {
        if recs.len() > 1 {
            diff.duplicated
                .push(format!("{} {key} x{}", t.object, recs.len()));
        }
    }
    if let Some(sql) = t.incarnations {
        let inserted: HashMap<String, i32> = pg
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (key, n) in &all {
            let allowed = inserted.get(key).copied().unwrap_or(0).max(1) as usize;
            if *n > allowed {
                diff.created_twice.push(format!(
                    "{} {key}: {n} records, inserted {allowed}x",
                    t.object
                ));
            }
        }
    }
    for (key, values) in &rows {
        let Some(rec) = live.get(key).and_then(|r| r.first()) else {
            diff.lost.push(format!("{} {key}", t.object));
            continue;
        };
        for ((col, field, kind), pg) in t.fields.iter().zip(values) {
            let sf = rec.get(*field).unwrap_or(&Value::Null);
            if !same(pg.as_deref(), sf, *kind, rec, parents) {
                diff.stale.push(format!(
                    "{} {key}.{field}: pg {col} = {pg:?}, sf {sf}",
                    t.object
                ));
            }
        }
    }
    for key in live.keys() {
        if !rows.contains_key(key) {
            diff.extra.push(format!("{} {key}", t.object));
        }
    }
}

/// The table's rows by key: the compared columns as text.
async fn table_rows(pg: &Client, t: &Table<'_>) -> BTreeMap<String, Vec<Option<String>>> {
    let cols: Vec<String> = t
        .fields
        .iter()
        .map(|(c, _, _)| format!("{c}::text"))
        .collect();
    let select = std::iter::once(format!("{}::text", t.key))
        .chain(cols)
        .collect::<Vec<_>>()
        .join(", ");
    let filter = t.rows.map(|c| format!(" WHERE {c}")).unwrap_or_default();
    let sql = format!("SELECT {select} FROM {}{filter}", t.table);
    pg.query(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|r| {
            let key: String = r.get(0);
            (key, (1..r.len()).map(|i| r.get(i)).collect())
        })
        .collect()
}

fn same(
    pg: Option<&str>,
    sf: &Value,
    kind: Kind,
    rec: &Record,
    parents: &HashMap<&str, HashMap<String, String>>,
) -> bool {
    let pg = pg.filter(|p| !p.is_empty());
    if let Kind::OwnId = kind {
        return pg.is_some() && text(rec.get("Id")).and_then(|id| id18(&id)).as_deref() == pg;
    }
    let Some(p) = pg else {
        return sf.is_null();
    };
    if sf.is_null() {
        return false;
    }
    match kind {
        Kind::Text => sf.as_str() == Some(p),
        Kind::Truncated(n) => sf.as_str() == Some(&p.chars().take(n).collect::<String>()),
        Kind::Int => sf.as_i64().is_some() && p.parse::<i64>().ok() == sf.as_i64(),
        Kind::Decimal => match (Decimal::from_str(p), Decimal::from_str(&sf.to_string())) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
        Kind::Lookup(parent) => {
            let want = parents.get(parent).and_then(|ids| ids.get(p));
            want.is_some() && want == sf.as_str().and_then(id18).as_ref()
        }
        Kind::OwnId => unreachable!("compared above"),
    }
}

/// The canonical 18-character form of a Salesforce Id.
fn id18(id: &str) -> Option<String> {
    Id::parse(id).ok().map(|id| id.to_string())
}

/// A field value as text (`None` for null or absent).
pub fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Records of `object` by external id: (live ones, count of all incl. deleted).
fn records(
    emulator: &EmulatorHandle,
    object: &str,
) -> (HashMap<String, Vec<Record>>, HashMap<String, usize>) {
    let mut live: HashMap<String, Vec<Record>> = HashMap::new();
    let mut all: HashMap<String, usize> = HashMap::new();
    emulator
        .state()
        .store
        .scan(object, true, |r| {
            let key = text(r.get(KEY_FIELD)).unwrap_or_default();
            *all.entry(key.clone()).or_default() += 1;
            if !is_deleted(r) {
                live.entry(key).or_default().push((**r).clone());
            }
            ControlFlow::Continue(())
        })
        .unwrap_or_else(|e| panic!("scan {object}: {e:?}"));
    (live, all)
}

/// External id → 18-character Id of the live records of `object`.
fn live_ids(emulator: &EmulatorHandle, object: &str) -> HashMap<String, String> {
    let (live, _) = records(emulator, object);
    live.into_iter()
        .filter_map(|(key, recs)| {
            let id = text(recs.first()?.get("Id")).and_then(|id| id18(&id))?;
            Some((key, id))
        })
        .collect()
}
