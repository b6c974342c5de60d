//! Helpers for the two-way tests (`tests/bidi`): a Salesforce client that acts as a
//! person in the org (it sends no `Sforce-Call-Options`, so its changes never look like
//! pgforce's own), reading records by any field, the seed template as a config, and the
//! edit storm on both sides of users ⇄ Contact with its no-lost-change check.

use chrono::{DateTime, Utc};
use pgforce::salesforce::{ClientConfig, Credentials, SalesforceClient};
use pgforce_emulator::{config as emu, EmulatorHandle};
use secrecy::SecretString;
use serde_json::{Map, Value};
use tokio_postgres::Client;

/// A logged-in client for `emulator` that is not pgforce: no client id on its calls.
pub async fn human(emulator: &EmulatorHandle) -> SalesforceClient {
    let mut cfg = ClientConfig::new(Credentials::ClientCredentials {
        client_id: emu::DEMO_CLIENT_ID.into(),
        client_secret: SecretString::from(emu::DEMO_CLIENT_SECRET.to_string()),
        my_domain_url: emulator.base_url().to_string(),
    });
    cfg.client_name = None;
    let client = SalesforceClient::new(cfg).expect("a client");
    client.login().await.expect("log in to the emulator");
    client
}

/// A JSON object as a record.
pub fn record(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("a record is a JSON object, not {other}"),
    }
}

/// The live records of `object` whose `field` equals `value` (case-insensitively).
pub fn records_where(
    emulator: &EmulatorHandle,
    object: &str,
    field: &str,
    value: &str,
) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    emulator
        .state()
        .store
        .scan(object, false, |r| {
            let hit = r
                .get(field)
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(value));
            if hit {
                out.push((**r).clone());
            }
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    out
}

/// `deploy/examples/<file>` as text, its Salesforce login swapped for the emulator at
/// `base` (client credentials of the demo app, secret `env:SF_CLIENT_SECRET`), for a
/// config file the `pgforce` binary reads; `edit` rewrites it further (e.g. the delete
/// policy).
pub fn template_text(base: &str, file: &str, edit: impl Fn(String) -> String) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/examples")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let swapped: Vec<String> = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("login_url =") {
                format!("login_url = \"{base}\"\ninstance_url = \"{base}\"")
            } else if line.trim_start().starts_with("auth =") {
                format!(
                    "auth = {{ type = \"client_credentials\", client_id = \"{}\", client_secret = \"env:SF_CLIENT_SECRET\" }}",
                    emu::DEMO_CLIENT_ID
                )
            } else {
                line.to_string()
            }
        })
        .collect();
    edit(swapped.join("\n"))
}

/// The pipeline of `deploy/examples/<file>` rewritten by `edit` (e.g. another delete
/// policy), loaded as [`template_config`](crate::support::pipeline::template_config)
/// loads the shipped file.
pub fn edited_config(
    h: &crate::support::pipeline::Harness,
    file: &str,
    edit: impl Fn(String) -> String,
) -> pgforce::config::PipelineConfig {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/examples")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let edited = dir.path().join(file);
    std::fs::write(&edited, edit(text)).unwrap();
    // An absolute path replaces deploy/examples when joined to it.
    crate::support::pipeline::template_config(h, edited.to_str().unwrap())
        .expect("the edited template loads")
}

// ---------------------------------------------------------------------------------------
// The edit storm (seed template users ⇄ Contact)
// ---------------------------------------------------------------------------------------

/// Who may change a storm field, as the template says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Two-way, newest wins.
    Both,
    Postgres,
    Salesforce,
}

/// The fields the storm edits: (column, field, owner, initial value).
pub const STORM_FIELDS: [(&str, &str, Owner, Option<&str>); 4] = [
    ("first_name", "FirstName", Owner::Both, Some("F")),
    ("phone", "Phone", Owner::Both, None),
    ("plan", "Department", Owner::Postgres, None),
    ("lead_source", "LeadSource", Owner::Salesforce, None),
];

/// Values the storm sets on the LeadSource picklist.
const LEAD_SOURCES: [&str; 5] = [
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];

/// A small deterministic pseudo-random sequence (xorshift), so a failing storm replays.
pub struct Dice(pub u64);

impl Dice {
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One edit the storm made.
#[derive(Debug, Clone)]
pub struct Edit {
    pub record: usize,
    /// Index into [`STORM_FIELDS`].
    pub field: usize,
    pub on_postgres: bool,
    pub value: String,
    /// The Postgres commit time, or the record's SystemModstamp after the edit.
    pub at: DateTime<Utc>,
}

/// Every edit of a storm, in the order made.
#[derive(Debug, Default)]
pub struct StormLog {
    pub edits: Vec<Edit>,
}

impl StormLog {
    pub fn postgres_edits(&self) -> usize {
        self.edits.iter().filter(|e| e.on_postgres).count()
    }

    pub fn salesforce_edits(&self) -> usize {
        self.edits.iter().filter(|e| !e.on_postgres).count()
    }

    /// The last edit of `field` of `record` on one side.
    fn last(&self, record: usize, field: usize, on_postgres: bool) -> Option<&Edit> {
        self.edits
            .iter()
            .rev()
            .find(|e| e.record == record && e.field == field && e.on_postgres == on_postgres)
    }

    /// The last Postgres commit of `record`'s row (any field).
    fn row_committed(&self, record: usize) -> Option<DateTime<Utc>> {
        self.edits
            .iter()
            .filter(|e| e.record == record && e.on_postgres)
            .map(|e| e.at)
            .max()
    }

    /// The values `field` of `record` may end with under its policy: the owner's last
    /// edit; for a two-way field the side that edited it last, or either side's last edit
    /// when that is not decided (Salesforce's edit came after Postgres's edit of the field
    /// but before a later commit of the row, whose time newest-wins compares, or within
    /// the millisecond of Salesforce's timestamp). Never an older value.
    pub fn winners(&self, record: usize, field: usize) -> Vec<Option<String>> {
        let (_, _, owner, initial) = STORM_FIELDS[field];
        let pg = self.last(record, field, true);
        let sf = self.last(record, field, false);
        let v = |e: &Edit| Some(e.value.clone());
        let initial = initial.map(str::to_string);
        match (owner, pg, sf) {
            (Owner::Postgres, p, _) => vec![p.map_or(initial, v)],
            (Owner::Salesforce, _, s) => vec![s.map_or(initial, v)],
            (Owner::Both, None, None) => vec![initial],
            (Owner::Both, Some(p), None) => vec![v(p)],
            (Owner::Both, None, Some(s)) => vec![v(s)],
            (Owner::Both, Some(p), Some(s)) => {
                // SystemModstamp has milliseconds: Salesforce's edit happened in
                // [s.at, s.at + 1 ms), so a Postgres commit inside that is a tie either way.
                if p.at >= s.at + chrono::Duration::milliseconds(1) {
                    vec![v(p)]
                } else if p.at >= s.at {
                    vec![v(p), v(s)]
                } else if self.row_committed(record).is_some_and(|r| s.at > r) {
                    vec![v(s)]
                } else {
                    vec![v(p), v(s)]
                }
            }
        }
    }
}

/// A Salesforce datetime as the emulator stores it.
fn modstamp(r: &Map<String, Value>) -> DateTime<Utc> {
    let s = r["SystemModstamp"].as_str().expect("a SystemModstamp");
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

/// Sets `column` of the users row of `email` to `value` in Postgres; its commit time.
pub async fn postgres_edit(pg: &Client, email: &str, column: &str, value: &str) -> DateTime<Utc> {
    let xid: String = pg
        .query_one(
            &format!(
                "WITH u AS (UPDATE users SET {column} = $1 WHERE email = $2 RETURNING 1)
                 SELECT (txid_current() % 4294967296)::text FROM (SELECT count(*) FROM u) c"
            ),
            &[&value, &email],
        )
        .await
        .unwrap_or_else(|e| panic!("update {email} {column}: {e}"))
        .get(0);
    pg.query_one("SELECT pg_xact_commit_timestamp($1::text::xid)", &[&xid])
        .await
        .expect("the commit time (track_commit_timestamp = on)")
        .get(0)
}

/// Sets `field` of Contact `id` to `value` as a person; the record's SystemModstamp after.
pub async fn salesforce_edit(
    person: &SalesforceClient,
    emulator: &EmulatorHandle,
    id: &str,
    field: &str,
    value: &str,
) -> DateTime<Utc> {
    let mut r = Map::new();
    r.insert(field.into(), Value::String(value.into()));
    person
        .update_record("Contact", id, &r)
        .await
        .unwrap_or_else(|e| panic!("update Contact {id} {field}: {e}"));
    let found = records_where(emulator, "Contact", "Id", id);
    modstamp(&found[0])
}

/// The storm's parties: Postgres (an ordinary session), a person in Salesforce, the
/// records (emails and their Contact Ids).
pub struct Storm<'a> {
    pub pg: &'a Client,
    pub person: &'a SalesforceClient,
    pub emulator: &'a EmulatorHandle,
    pub emails: &'a [&'a str],
    pub ids: &'a [String],
}

impl Storm<'_> {
    /// Random edits on both sides for `secs` seconds (about one every 40 ms): a random
    /// field of a random record on a random side, and one time in six the same field of
    /// the same record on both sides within milliseconds (Postgres first).
    pub async fn run(&self, secs: f64, dice: &mut Dice, log: &mut StormLog) {
        let started = std::time::Instant::now();
        let mut n = 0u64;
        while started.elapsed().as_secs_f64() < secs {
            n += 1;
            let record = dice.next(self.emails.len() as u64) as usize;
            match dice.next(6) {
                0..=2 => {
                    let field = [0, 1, 2][dice.next(3) as usize];
                    self.postgres(record, field, format!("p{n}"), log).await;
                }
                3 | 4 => {
                    let field = [0, 1, 3][dice.next(3) as usize];
                    let value = match field {
                        3 => LEAD_SOURCES[dice.next(5) as usize].to_string(),
                        _ => format!("s{n}"),
                    };
                    self.salesforce(record, field, value, log).await;
                }
                _ => {
                    let field = dice.next(2) as usize;
                    self.postgres(record, field, format!("p{n}"), log).await;
                    self.salesforce(record, field, format!("s{n}"), log).await;
                }
            }
            // Pacing, not synchronisation.
            tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        }
    }

    /// The storm's last edits: on every record, Postgres sets both two-way fields, then a
    /// person in Salesforce sets them again a few milliseconds later, after the row's last
    /// commit: newest wins, so Salesforce's values must end on both sides. Made while
    /// pgforce is stopped, the outbound write of the Postgres edits comes after them and
    /// must not overwrite them. (Made while pgforce's write is in flight, after its read,
    /// a Salesforce edit is overwritten: Salesforce has no conditional update; see
    /// `bidi::guard`.)
    pub async fn last_word(&self, log: &mut StormLog) {
        let n = log.edits.len();
        for record in 0..self.emails.len() {
            for field in [0, 1] {
                self.postgres(record, field, format!("p{n}.{record}.{field}"), log)
                    .await;
            }
            // Later at Salesforce's precision (milliseconds): pacing, not synchronisation.
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            for field in [0, 1] {
                self.salesforce(record, field, format!("s{n}.{record}.{field}"), log)
                    .await;
            }
        }
    }

    async fn postgres(&self, record: usize, field: usize, value: String, log: &mut StormLog) {
        let column = STORM_FIELDS[field].0;
        let at = postgres_edit(self.pg, self.emails[record], column, &value).await;
        log.edits.push(Edit {
            record,
            field,
            on_postgres: true,
            value,
            at,
        });
    }

    async fn salesforce(&self, record: usize, field: usize, value: String, log: &mut StormLog) {
        let name = STORM_FIELDS[field].1;
        let at = salesforce_edit(self.person, self.emulator, &self.ids[record], name, &value).await;
        log.edits.push(Edit {
            record,
            field,
            on_postgres: false,
            value,
            at,
        });
    }

    /// The no-lost-change check: every storm field of every record holds, on both sides,
    /// a value its policy lets win ([`StormLog::winners`]).
    pub async fn lost_changes(&self, log: &StormLog) -> Result<(), String> {
        for (i, email) in self.emails.iter().enumerate() {
            let row = self
                .pg
                .query_one(
                    "SELECT first_name, phone, plan, lead_source FROM users WHERE email = $1",
                    &[email],
                )
                .await
                .map_err(|e| format!("{email}: {e}"))?;
            let contact = records_where(self.emulator, "Contact", "Id", &self.ids[i]);
            let contact = contact.first().ok_or(format!("{email}: no Contact"))?;
            for (f, (column, field, _, _)) in STORM_FIELDS.iter().enumerate() {
                let pg: Option<String> = row.get(f);
                let sf = contact
                    .get(*field)
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let winners = log.winners(i, f);
                if !winners.contains(&pg) || !winners.contains(&sf) {
                    return Err(format!(
                        "{email} {column}/{field}: Postgres {pg:?}, Salesforce {sf:?}; \
                         the policy lets only {winners:?} win"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The storm's length: `PGFORCE_STORM_SECS` (default 8 s; the figure is 60).
pub fn storm_secs() -> f64 {
    std::env::var("PGFORCE_STORM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8.0)
}

/// The storm's seed: `PGFORCE_STORM_SEED`, default fixed (printed, so a failure replays).
pub fn storm_seed() -> u64 {
    let seed = std::env::var("PGFORCE_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    eprintln!("storm seed {seed} (PGFORCE_STORM_SEED)");
    seed
}
