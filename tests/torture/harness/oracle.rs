//! The oracle: after the workload and a quiet period, Salesforce (the emulator's store)
//! must hold exactly what Postgres holds, row by row and field by field, except where the
//! state store says why not.
//!
//! For every source row:
//! - included by the mapping's filter, valid for Salesforce and with every parent live in
//!   Salesforce: exactly one live record with the same fields (unchanged-TOAST values
//!   included), and no open dead letter for it;
//! - invalid for Salesforce (too long, required field missing): an open dead letter
//!   names it (mapping + external id);
//! - valid but a parent is not in Salesforce: parked or dead-lettered;
//! - filtered out: no live record.
//!
//! And: no live record whose row is gone (delete policy `delete`), no external id with
//! more records (live or deleted) than the workload inserted it, no parked row whose
//! parent is live in Salesforce.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::ops::ControlFlow;

use pgforce_emulator::store::{is_deleted, Record};
use pgforce_emulator::EmulatorHandle;
use serde_json::Value;
use tokio_postgres::Client;

use super::workload::{SITE_MAX, SUBJECT_MAX};

/// What the oracle found wrong, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// In Postgres (and expected in Salesforce), no live record.
    Lost,
    /// A field differs.
    Stale,
    /// Live in Salesforce, gone from Postgres or filtered out.
    Extra,
    /// More than one live record for one external id.
    Duplicated,
    /// More records (live or deleted) for an external id than inserts of it.
    CreatedTwice,
    /// A row Salesforce rejects, without an open dead letter.
    InvalidWithoutDeadLetter,
    /// A child whose parent is missing, neither parked nor dead-lettered.
    ChildNotParked,
    /// A parked row whose parent is live in Salesforce.
    StuckParked,
    /// An open dead letter for a row that is in sync.
    UnresolvedDeadLetter,
}

/// One thing wrong.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: Kind,
    pub object: &'static str,
    pub key: String,
    pub detail: String,
}

/// The oracle's verdict.
#[derive(Debug, Default)]
pub struct Verdict {
    pub findings: Vec<Finding>,
    pub rows: BTreeMap<&'static str, usize>,
    pub open_dead_letters: usize,
    pub parked: usize,
    /// Keys inserted again after a delete whose old record was not replaced by a new one
    /// (the delete and the re-insert were coalesced into one upsert, defect 13): reported,
    /// not a failure, until the expected behaviour is decided.
    pub coalesced_reinserts: Vec<String>,
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// Counts per kind, e.g. `Lost=3 Stale=1`.
    pub fn kinds(&self) -> BTreeMap<Kind, usize> {
        let mut m = BTreeMap::new();
        for f in &self.findings {
            *m.entry(f.kind).or_default() += 1;
        }
        m
    }

    /// A readable diff: counts, then up to `per_kind` findings of each kind.
    pub fn render(&self, per_kind: usize) -> String {
        let mut out = format!(
            "rows {:?}; open dead letters {}; parked {}; findings {:?}; re-inserts coalesced into one record (info, defect 13): {}\n",
            self.rows,
            self.open_dead_letters,
            self.parked,
            self.kinds(),
            self.coalesced_reinserts.len()
        );
        let mut shown: BTreeMap<Kind, usize> = BTreeMap::new();
        for f in &self.findings {
            let n = shown.entry(f.kind).or_default();
            *n += 1;
            if *n <= per_kind {
                let _ = writeln!(out, "  {:?} {} {}: {}", f.kind, f.object, f.key, f.detail);
            }
        }
        out
    }
}

/// One mapping as the oracle sees it.
struct Spec {
    mapping: &'static str,
    object: &'static str,
    table: &'static str,
    /// SQL returning the external id, then the compared columns as text.
    sql: &'static str,
    /// Salesforce field of each compared column.
    fields: &'static [&'static str],
    /// Whether a record's key belongs to this mapping (two mappings share Account).
    owns: fn(&str) -> bool,
}

fn is_partner(ext: &str) -> bool {
    ext.starts_with('P')
}

fn not_partner(ext: &str) -> bool {
    !is_partner(ext)
}

fn any_key(_: &str) -> bool {
    true
}

const SPECS: &[Spec] = &[
    Spec {
        mapping: "accounts",
        object: "Account",
        table: "accounts",
        sql: "SELECT id::text, name, site, description, mrr::text FROM accounts",
        fields: &["Name", "Site", "Description", "MRR__c"],
        owns: not_partner,
    },
    Spec {
        mapping: "partners",
        object: "Account",
        table: "partners",
        sql: "SELECT code, name, site FROM partners",
        fields: &["Name", "Site"],
        owns: is_partner,
    },
    Spec {
        mapping: "contacts",
        object: "Contact",
        table: "contacts",
        sql: "SELECT id::text, account_id::text, first_name, last_name, email, title, bio FROM contacts",
        fields: &[
            "AccountId",
            "FirstName",
            "LastName",
            "Email",
            "Title",
            "Description",
        ],
        owns: any_key,
    },
    Spec {
        mapping: "tickets",
        object: "Ticket__c",
        table: "tickets",
        sql: "SELECT code, contact_id::text, account_id::text, subject, status, body FROM tickets",
        fields: &["Contact__c", "Account__c", "Subject__c", "Status__c", "Body__c"],
        owns: any_key,
    },
];

/// A Salesforce field value as comparable text (`None` for null/absent/empty).
fn sf_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn decimal_text(s: Option<String>) -> Option<String> {
    s.map(|t| match t.parse::<rust_decimal::Decimal>() {
        Ok(d) => d.normalize().to_string(),
        Err(_) => t,
    })
}

/// When a record was created and last changed, and its Name (which write it holds).
fn record_dates(r: &Record) -> String {
    format!(
        "created {} modified {} Name {}",
        show(&sf_text(r.get("CreatedDate"))),
        show(&sf_text(r.get("LastModifiedDate"))),
        show(&sf_text(r.get("Name")))
    )
}

/// Short form of a value for a diff line.
pub fn show(v: &Option<String>) -> String {
    match v {
        None => "NULL".into(),
        Some(s) if s.chars().count() > 40 => {
            let head: String = s.chars().take(24).collect();
            format!("{head:?}…({} chars)", s.chars().count())
        }
        Some(s) => format!("{s:?}"),
    }
}

/// The emulator's records of one object.
struct SfObject {
    live: HashMap<String, Vec<Record>>,
    all: HashMap<String, usize>,
    /// Every record (deleted ones included) per external id, for the findings' details.
    history: HashMap<String, Vec<Record>>,
    /// Salesforce Id → external id (deleted records included).
    ext_by_id: HashMap<String, String>,
}

fn sf_object(emulator: &EmulatorHandle, object: &str) -> SfObject {
    let mut o = SfObject {
        live: HashMap::new(),
        all: HashMap::new(),
        history: HashMap::new(),
        ext_by_id: HashMap::new(),
    };
    emulator
        .state()
        .store
        .scan(object, true, |r| {
            // Account records of the `partners` mapping are keyed by Partner_Code__c.
            let ext = sf_text(r.get("External_Id__c"))
                .or_else(|| sf_text(r.get("Partner_Code__c")))
                .unwrap_or_default();
            *o.all.entry(ext.clone()).or_default() += 1;
            o.history
                .entry(ext.clone())
                .or_default()
                .push((**r).clone());
            if let Some(id) = sf_text(r.get("Id")) {
                o.ext_by_id.insert(id, ext.clone());
            }
            if !is_deleted(r) {
                o.live.entry(ext).or_default().push((**r).clone());
            }
            ControlFlow::Continue(())
        })
        .expect("scan the emulator store");
    o
}

/// Open dead letters and parked rows, by (mapping, external id).
struct StateRows {
    open: HashMap<(String, String), String>,
    parked: Vec<(String, String, String, String)>,
    parked_keys: BTreeSet<(String, String)>,
}

async fn state_rows(pg: &Client) -> StateRows {
    let open = pg
        .query(
            "SELECT mapping, external_id, error_code || ': ' || left(message, 160) FROM pgforce.errors WHERE status = 'open'",
            &[],
        )
        .await
        .map(|rows| {
            rows.into_iter()
                .map(|r| ((r.get(0), r.get(1)), r.get(2)))
                .collect()
        })
        .unwrap_or_default();
    let parked: Vec<(String, String, String, String)> = pg
        .query(
            "SELECT mapping, external_id, parent_object, parent_external_id FROM pgforce.parked",
            &[],
        )
        .await
        .map(|rows| {
            rows.into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect()
        })
        .unwrap_or_default();
    let parked_keys = parked
        .iter()
        .map(|(m, k, _, _)| (m.clone(), k.clone()))
        .collect();
    StateRows {
        open,
        parked,
        parked_keys,
    }
}

/// Compare Postgres with the emulator.
pub async fn check(pg: &Client, emulator: &EmulatorHandle) -> Verdict {
    let mut v = Verdict::default();
    let state = state_rows(pg).await;
    v.open_dead_letters = state.open.len();
    v.parked = state.parked.len();
    let incarnations: HashMap<(String, String), i32> = pg
        .query("SELECT object, ext, n FROM incarnations", &[])
        .await
        .expect("read incarnations")
        .into_iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    let sf: HashMap<&str, SfObject> = ["Account", "Contact", "Ticket__c"]
        .into_iter()
        .map(|o| (o, sf_object(emulator, o)))
        .collect();
    let live = |object: &str, ext: &str| sf[object].live.contains_key(ext);

    for spec in SPECS {
        let rows = pg.query(spec.sql, &[]).await.expect("read the source rows");
        v.rows.insert(spec.table, rows.len());
        let mut in_pg = BTreeSet::new();
        for r in rows {
            let ext: String = r.get(0);
            let values: Vec<Option<String>> = (1..=spec.fields.len())
                .map(|i| r.get::<_, Option<String>>(i).filter(|s| !s.is_empty()))
                .collect();
            in_pg.insert(ext.clone());
            check_row(&mut v, spec, &ext, &values, &sf, &state, &live);
        }
        let obj = &sf[spec.object];
        for (ext, recs) in &obj.live {
            if (spec.owns)(ext) && !in_pg.contains(ext) {
                v.findings.push(Finding {
                    kind: Kind::Extra,
                    object: spec.object,
                    key: ext.clone(),
                    detail: format!(
                        "live in Salesforce ({} record(s)), no row; {}",
                        recs.len(),
                        record_dates(&recs[0])
                    ),
                });
            }
        }
        for (ext, n) in obj.all.iter().filter(|(e, _)| (spec.owns)(e)) {
            let allowed = incarnations
                .get(&(spec.object.to_string(), ext.clone()))
                .copied()
                .unwrap_or(0)
                .max(1) as usize;
            if allowed > 1 && *n < allowed && obj.live.contains_key(ext) {
                v.coalesced_reinserts.push(format!(
                    "{} {ext}: {n} record(s), inserted {allowed}x",
                    spec.object
                ));
            }
            if *n > allowed {
                v.findings.push(Finding {
                    kind: Kind::CreatedTwice,
                    object: spec.object,
                    key: ext.clone(),
                    detail: format!(
                        "{n} records (live or deleted), inserted {allowed}x: {}",
                        obj.history[ext]
                            .iter()
                            .map(|r| format!(
                                "[{} deleted {} {}]",
                                show(&sf_text(r.get("Id"))),
                                is_deleted(r),
                                record_dates(r)
                            ))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                });
            }
        }
    }
    for (mapping, key, parent_object, parent_key) in &state.parked {
        if sf.contains_key(parent_object.as_str()) && live(parent_object, parent_key) {
            v.findings.push(Finding {
                kind: Kind::StuckParked,
                object: object_of(mapping),
                key: key.clone(),
                detail: format!(
                    "parked on {parent_object} {parent_key}, which is live in Salesforce"
                ),
            });
        }
    }
    v.findings
        .sort_by(|a, b| (a.kind, a.object, &a.key).cmp(&(b.kind, b.object, &b.key)));
    v
}

fn object_of(mapping: &str) -> &'static str {
    SPECS
        .iter()
        .find(|s| s.mapping == mapping)
        .map(|s| s.object)
        .unwrap_or("?")
}

/// Why the row cannot be in Salesforce as it is (None: it must be).
fn invalid_reason(spec: &Spec, values: &[Option<String>]) -> Option<String> {
    let len = |i: usize| values[i].as_ref().map_or(0, |s| s.chars().count());
    match spec.object {
        "Account" if len(1) > SITE_MAX => Some(format!("Site is {} chars > {SITE_MAX}", len(1))),
        "Contact" if values[2].is_none() => Some("LastName is NULL (required)".into()),
        "Ticket__c" if len(2) > SUBJECT_MAX => {
            Some(format!("Subject__c is {} chars > {SUBJECT_MAX}", len(2)))
        }
        _ => None,
    }
}

/// The parents a row points at, as (object, external id).
fn parents(spec: &Spec, values: &[Option<String>]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match spec.object {
        "Contact" => out.extend(values[0].clone().map(|a| ("Account", a))),
        "Ticket__c" => {
            out.extend(values[0].clone().map(|c| ("Contact", c)));
            out.extend(values[1].clone().map(|a| ("Account", a)));
        }
        _ => {}
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn check_row(
    v: &mut Verdict,
    spec: &Spec,
    ext: &str,
    values: &[Option<String>],
    sf: &HashMap<&str, SfObject>,
    state: &StateRows,
    live: &dyn Fn(&str, &str) -> bool,
) {
    let key = (spec.mapping.to_string(), ext.to_string());
    let open = state.open.get(&key);
    let parked = state.parked_keys.contains(&key);
    let mut push = |kind, detail: String| {
        v.findings.push(Finding {
            kind,
            object: spec.object,
            key: ext.to_string(),
            detail,
        })
    };
    let recs = sf[spec.object].live.get(ext);
    let included = !(spec.object == "Ticket__c" && values[3].as_deref() == Some("hidden"));
    if !included {
        if recs.is_some() {
            push(
                Kind::Extra,
                "filtered out (status hidden) but live in Salesforce".into(),
            );
        }
        return;
    }
    if let Some(reason) = invalid_reason(spec, values) {
        if open.is_none() {
            push(
                Kind::InvalidWithoutDeadLetter,
                format!("{reason}; no open dead letter (parked: {parked})"),
            );
        }
        return;
    }
    let missing: Vec<String> = parents(spec, values)
        .into_iter()
        .filter(|(o, k)| !live(o, k))
        .map(|(o, k)| format!("{o} {k}"))
        .collect();
    if !missing.is_empty() {
        if open.is_none() && !parked {
            push(
                Kind::ChildNotParked,
                format!(
                    "parent(s) {missing:?} not in Salesforce; row neither parked nor dead-lettered"
                ),
            );
        }
        return;
    }
    let why = match (open, parked) {
        (Some(dl), _) => format!(" [open dead letter: {dl}]"),
        (None, true) => " [parked]".to_string(),
        _ => String::new(),
    };
    let Some(recs) = recs else {
        push(Kind::Lost, format!("no live record{why}"));
        return;
    };
    if recs.len() > 1 {
        push(Kind::Duplicated, format!("{} live records", recs.len()));
    }
    let rec = &recs[0];
    let mut diffs = Vec::new();
    for (i, field) in spec.fields.iter().enumerate() {
        let want = values[i].clone();
        let got = sf_text(rec.get(*field));
        let (want, got) = match *field {
            "MRR__c" => (decimal_text(want), decimal_text(got)),
            "AccountId" | "Account__c" => (
                want,
                got.map(|id| sf["Account"].ext_by_id.get(&id).cloned().unwrap_or(id)),
            ),
            "Contact__c" => (
                want,
                got.map(|id| sf["Contact"].ext_by_id.get(&id).cloned().unwrap_or(id)),
            ),
            _ => (want, got),
        };
        if want != got {
            diffs.push(format!("{field}: pg {} sf {}", show(&want), show(&got)));
        }
    }
    if !diffs.is_empty() {
        push(Kind::Stale, format!("{}{why}", diffs.join("; ")));
    } else if let Some(dl) = open {
        push(
            Kind::UnresolvedDeadLetter,
            format!("in sync, but an open dead letter remains: {dl}"),
        );
    }
}

/// What the state store knows about the first keys of a verdict (for a post-mortem).
pub async fn explain(pg: &Client, verdict: &Verdict, n: usize) -> String {
    let mut out = String::new();
    // Round-robin over the kinds, so every kind gets explained.
    let mut picked: Vec<&Finding> = Vec::new();
    let mut rank: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut ranked: Vec<(usize, &Finding)> = verdict
        .findings
        .iter()
        .map(|f| {
            let r = rank.entry(f.kind).or_default();
            *r += 1;
            (*r, f)
        })
        .collect();
    ranked.sort_by_key(|(r, f)| (*r, f.kind));
    picked.extend(ranked.into_iter().take(n).map(|(_, f)| f));
    for f in picked {
        let _ = writeln!(out, "== {:?} {} {}", f.kind, f.object, f.key);
        for (sql, what) in [
            (
                "SELECT row_to_json(e)::text FROM (SELECT id, mapping, external_id, operation, lsn, error_code, left(message, 200) AS message, status, attempts FROM pgforce.errors WHERE external_id = $1) e",
                "dead letter",
            ),
            (
                "SELECT row_to_json(e)::text FROM (SELECT id, mapping, object, left(external_id, 120) AS external_id, error_code, left(message, 160) AS message, status FROM pgforce.errors WHERE external_id <> $1 AND ('|' || external_id || '|') LIKE ('%|' || $1 || '|%')) e",
                "dead letter keyed otherwise",
            ),
            (
                "SELECT row_to_json(p)::text FROM (SELECT mapping, parent_object, parent_external_id, lsn, attempts FROM pgforce.parked WHERE external_id = $1) p",
                "parked",
            ),
            (
                "SELECT row_to_json(m)::text FROM pgforce.id_map m WHERE external_id = $1",
                "id_map",
            ),
            (
                "SELECT row_to_json(i)::text FROM incarnations i WHERE ext = $1",
                "incarnations",
            ),
            (
                "SELECT row_to_json(r)::text FROM (SELECT id, name, left(site, 30) AS site, length(description) AS description_len, mrr FROM accounts WHERE id::text = $1) r",
                "accounts row",
            ),
            (
                "SELECT row_to_json(r)::text FROM (SELECT id, account_id, first_name, last_name, title, length(bio) AS bio_len FROM contacts WHERE id::text = $1) r",
                "contacts row",
            ),
            (
                "SELECT row_to_json(r)::text FROM (SELECT id, code, contact_id, account_id, subject, status, length(body) AS body_len FROM tickets WHERE code = $1) r",
                "tickets row",
            ),
        ] {
            if let Ok(rows) = pg.query(sql, &[&f.key]).await {
                for r in rows {
                    let _ = writeln!(out, "  {what}: {}", r.get::<_, String>(0));
                }
            }
        }
    }
    out
}
