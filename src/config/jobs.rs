//! `[[pipelines.jobs]]`: query-driven jobs. Each job runs one SQL query against the
//! pipeline's database (read only, with a statement timeout) when its trigger fires, and
//! sends the result to the pipeline's Salesforce org through one of three targets:
//! `update` (result rows → record fields, only what changed), `membership` (a segment →
//! Campaign members) and `enrich` (a new Lead → fields looked up by its own values).
//!
//! This file owns the model and the checks that need only the config; checking a job's
//! result columns against describe is [`check_job_columns`], fed by `jobs::check`, which
//! prepares the query to learn its columns.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::catalog::PgType;
use super::describe::{SfDescribe, SfObject};
use super::error::KeyError;
use super::rules::quote_key;
use super::validate::{Diagnostic, Severity};

/// One query-driven job.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Unique within the pipeline; names the job in `pgforce jobs`, state, metrics and
    /// errors. Letters, digits, `_`, `-`.
    pub name: String,
    /// When the job runs.
    pub trigger: TriggerConfig,
    /// The SQL query (one `SELECT`/`WITH` statement, no trailing `;` needed). It runs in a
    /// `READ ONLY` transaction. For `enrich`, `$1`, `$2`, … are the Lead's `params`.
    pub query: String,
    /// Longest the query may run, in ms (Postgres `statement_timeout`). Default 30000.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    /// Where the result goes.
    pub target: TargetConfig,
}

impl JobConfig {
    /// The target's sObject.
    pub fn object(&self) -> &str {
        match &self.target {
            TargetConfig::Update(u) => &u.object,
            TargetConfig::Membership(_) => "CampaignMember",
            TargetConfig::Enrich(_) => "Lead",
        }
    }
}

/// When a job runs, chosen with `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerConfig {
    /// `{ type = "schedule", cron = "0 * * * *" }`: a cron expression (5 fields
    /// `min hour day month weekday`, or 6–7 with seconds first and a year last), in UTC.
    Schedule {
        /// The cron expression.
        cron: String,
    },
    /// `{ type = "interval", seconds = 3600 }`: every N seconds (the first run at start).
    Interval {
        /// Seconds between runs; at least 1.
        seconds: u64,
    },
    /// `{ type = "table_changed", table = "public.subscriptions" }`: soon after rows of the
    /// table are inserted, updated or deleted. pgforce polls the table's modification
    /// counters (`pg_stat_user_tables`): no trigger or column is added to the table, and
    /// deletes are seen. The statistics reach the counters within about 10 s.
    TableChanged {
        /// `schema.table` (a bare name means `public.name`).
        table: String,
        /// Seconds between polls. Default 5.
        #[serde(default = "default_poll_seconds")]
        poll_seconds: u64,
    },
    /// `{ type = "lead_created" }`: for each new Lead (enrich jobs only). pgforce polls
    /// `SELECT … FROM Lead WHERE CreatedDate >= <last seen>` and records each Lead it has
    /// handled. With `events = "cdc"` a Lead change event (Pub/Sub API,
    /// `/data/LeadChangeEvent`) wakes the job within seconds; the poll stays as the safety
    /// net for a dropped subscription.
    LeadCreated {
        /// Seconds between polls. Default 30.
        #[serde(default = "default_lead_poll_seconds")]
        poll_seconds: u64,
        /// On the job's first run, Leads created this many hours back are handled too.
        /// Default 24.
        #[serde(default = "default_lookback_hours")]
        lookback_hours: u64,
        /// What wakes the job besides the poll: `poll` (nothing) or `cdc` (Lead change
        /// events). Default `poll`.
        #[serde(default)]
        events: crate::config::inbound::InboundSource,
    },
}

impl TriggerConfig {
    /// A short description, for `pgforce jobs list`.
    pub fn describe(&self) -> String {
        match self {
            TriggerConfig::Schedule { cron } => format!("schedule {cron}"),
            TriggerConfig::Interval { seconds } => format!("every {seconds}s"),
            TriggerConfig::TableChanged { table, .. } => format!("on changes to {table}"),
            TriggerConfig::LeadCreated { .. } => "on new Leads".into(),
        }
    }
}

/// Where a job's result goes, chosen with `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetConfig {
    /// Each result row updates one record.
    Update(UpdateTarget),
    /// The result is a segment: the members of one Campaign.
    Membership(MembershipTarget),
    /// Each new Lead is updated from the query run with its own fields.
    Enrich(EnrichTarget),
}

impl TargetConfig {
    /// `update`, `membership` or `enrich`.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetConfig::Update(_) => "update",
            TargetConfig::Membership(_) => "membership",
            TargetConfig::Enrich(_) => "enrich",
        }
    }
}

/// `type = "update"`: result rows → records' fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTarget {
    /// The sObject, e.g. `Account`.
    pub object: String,
    /// How a row finds its record: `{ column = "sf_id", field = "Id" }` (a Salesforce Id) or
    /// `{ column = "account_id", field = "External_Id__c" }` (an External ID field).
    #[serde(rename = "match")]
    pub key: MatchKey,
    /// Result column → field. Every other column of the result is an error (say what is
    /// sent).
    pub fields: BTreeMap<String, String>,
    /// Runs that send at least this many rows use a Bulk API 2.0 job; smaller ones sObject
    /// Collections. Default 2000 (Salesforce's advice for when Bulk pays off).
    #[serde(default = "default_bulk_threshold")]
    pub bulk_threshold: usize,
}

/// A result column and the field that identifies the record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchKey {
    /// Result column holding the key.
    pub column: String,
    /// `Id` or an External ID field.
    pub field: String,
}

/// `type = "membership"`: a segment query → one Campaign's members.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipTarget {
    /// The Campaign's Name.
    pub campaign: String,
    /// Create the Campaign (active, with this Name) when it does not exist. Default false:
    /// a missing Campaign is an error.
    #[serde(default)]
    pub create_campaign: bool,
    /// The result column naming each member.
    pub column: String,
    /// What the column holds: `email` (looked up on Contact, then Lead; default), or `id`
    /// (a Contact `003…` or Lead `00Q…` Id).
    #[serde(default)]
    pub match_by: MemberMatch,
    /// The Status of added members (default: the Campaign's default status).
    #[serde(default)]
    pub status: Option<String>,
    /// When set, members who left the segment get this Status instead of being removed.
    #[serde(default)]
    pub departed_status: Option<String>,
    /// A run that would remove (or mark departed) more than this percent of the members
    /// pgforce added is refused unless forced (`pgforce jobs run NAME --force`). 0–100,
    /// default 20.
    #[serde(default = "default_max_remove_percent")]
    pub max_remove_percent: u8,
}

/// What a membership column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberMatch {
    /// An email address, matched to a Contact, or else a Lead.
    #[default]
    Email,
    /// A Contact or Lead Id.
    Id,
}

/// `type = "enrich"`: each new Lead ← the query's first row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichTarget {
    /// Lead fields passed to the query as `$1`, `$2`, …, e.g. `["Email"]`.
    pub params: Vec<String>,
    /// Result column → Lead field.
    pub fields: BTreeMap<String, String>,
    /// Set on a Lead the query returns no row for: `{ field = "Enrichment_Status__c",
    /// value = "no match" }`. Unset: such a Lead is left alone.
    #[serde(default)]
    pub no_match: Option<NoMatchMarker>,
}

/// The marker for an unmatched Lead.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoMatchMarker {
    /// A text or picklist field of Lead.
    pub field: String,
    /// Its value.
    pub value: String,
}

fn default_statement_timeout_ms() -> u64 {
    30_000
}
fn default_poll_seconds() -> u64 {
    5
}
fn default_lead_poll_seconds() -> u64 {
    30
}
fn default_lookback_hours() -> u64 {
    24
}
fn default_bulk_threshold() -> usize {
    2_000
}
fn default_max_remove_percent() -> u8 {
    20
}

/// A cron expression normalised to the seconds-first form the scheduler parses: a 5-field
/// expression gets second `0`.
pub fn normalise_cron(expr: &str) -> String {
    let fields = expr.split_whitespace().count();
    if fields == 5 {
        format!("0 {}", expr.trim())
    } else {
        expr.trim().to_string()
    }
}

/// Config-only checks of a pipeline's jobs (`key` is `pipelines[i]`).
pub(crate) fn check_jobs(key: &str, jobs: &[JobConfig], errs: &mut Vec<KeyError>) {
    let mut names = BTreeSet::new();
    for (n, job) in jobs.iter().enumerate() {
        let k = format!("{key}.jobs[{n}]");
        let mut err = |sub: &str, msg: String| errs.push(KeyError::new(format!("{k}.{sub}"), msg));
        if !names.insert(job.name.as_str()) {
            err("name", format!("duplicate job name `{}`", job.name));
        }
        check_job(job, &mut err);
    }
}

fn check_job(job: &JobConfig, err: &mut impl FnMut(&str, String)) {
    let valid_name = !job.name.is_empty()
        && job
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
    if !valid_name {
        err(
            "name",
            "must be non-empty letters, digits, `_` or `-`".into(),
        );
    }
    if job.query.trim().is_empty() {
        err("query", "the query is empty".into());
    }
    if job.statement_timeout_ms == 0 {
        err(
            "statement_timeout_ms",
            "must be at least 1 (0 would mean no timeout)".into(),
        );
    }
    check_trigger(&job.trigger, &job.target, err);
    match &job.target {
        TargetConfig::Update(u) => check_update(u, err),
        TargetConfig::Membership(m) => check_membership(m, err),
        TargetConfig::Enrich(e) => check_enrich(e, err),
    }
}

fn check_trigger(t: &TriggerConfig, target: &TargetConfig, err: &mut impl FnMut(&str, String)) {
    match t {
        TriggerConfig::Schedule { cron } => {
            if let Err(e) = normalise_cron(cron).parse::<cron::Schedule>() {
                err(
                    "trigger.cron",
                    format!("`{cron}` is not a cron expression ({e}); write e.g. \"0 * * * *\" (hourly)"),
                );
            }
        }
        TriggerConfig::Interval { seconds: 0 } => {
            err("trigger.seconds", "must be at least 1".into())
        }
        TriggerConfig::TableChanged {
            table,
            poll_seconds,
        } => {
            if super::split_table(table).is_none() {
                err("trigger.table", format!("`{table}` is not `schema.table`"));
            }
            if *poll_seconds == 0 {
                err("trigger.poll_seconds", "must be at least 1".into());
            }
        }
        TriggerConfig::LeadCreated { poll_seconds, .. } => {
            if *poll_seconds == 0 {
                err("trigger.poll_seconds", "must be at least 1".into());
            }
        }
        TriggerConfig::Interval { .. } => {}
    }
    let lead_trigger = matches!(t, TriggerConfig::LeadCreated { .. });
    let enrich = matches!(target, TargetConfig::Enrich(_));
    if lead_trigger != enrich {
        err(
            "trigger.type",
            "an enrich target runs on `lead_created`, and `lead_created` only drives an enrich target".into(),
        );
    }
}

fn check_update(u: &UpdateTarget, err: &mut impl FnMut(&str, String)) {
    if u.fields.is_empty() {
        err(
            "target.fields",
            "no fields: map at least one result column to a field".into(),
        );
    }
    if u.fields.contains_key(&u.key.column) {
        err(
            &format!("target.fields.{}", quote_key(&u.key.column)),
            "the match column is the record's key; it cannot also be a field".into(),
        );
    }
    if u.bulk_threshold == 0 {
        err(
            "target.bulk_threshold",
            "must be at least 1 (1 means always Bulk)".into(),
        );
    }
}

fn check_membership(m: &MembershipTarget, err: &mut impl FnMut(&str, String)) {
    if m.campaign.trim().is_empty() {
        err("target.campaign", "name the Campaign".into());
    }
    if m.max_remove_percent > 100 {
        err("target.max_remove_percent", "must be 0–100".into());
    }
}

fn check_enrich(e: &EnrichTarget, err: &mut impl FnMut(&str, String)) {
    if e.params.is_empty() {
        err(
            "target.params",
            "name the Lead fields passed as $1, $2, … (e.g. [\"Email\"])".into(),
        );
    }
    if e.fields.is_empty() && e.no_match.is_none() {
        err(
            "target.fields",
            "no fields: map at least one result column to a Lead field".into(),
        );
    }
}

/// Checks of a job against describe and its query's result columns (`key` is
/// `pipelines[i].jobs[n]`): the object and fields exist and are writable, and each
/// column's type fits its field.
pub fn check_job_columns(
    key: &str,
    job: &JobConfig,
    columns: &[(String, PgType)],
    describe: &SfDescribe,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let object = job.object();
    let Some(o) = describe.object(object) else {
        out.push(diag(
            format!("{key}.target"),
            "sf.object_missing",
            format!(
                "job {}: sObject {object} does not exist or is not visible",
                job.name
            ),
            "check the API name and the integration user's permissions".into(),
        ));
        return out;
    };
    let (fields, key_column) = match &job.target {
        TargetConfig::Update(u) => (&u.fields, Some(&u.key)),
        TargetConfig::Enrich(e) => (&e.fields, None),
        TargetConfig::Membership(m) => {
            if !columns.iter().any(|(c, _)| c == &m.column) {
                out.push(missing_column(
                    key,
                    "target.column",
                    job,
                    &m.column,
                    columns,
                ));
            }
            return out;
        }
    };
    if let Some(k) = key_column {
        if !columns.iter().any(|(c, _)| c == &k.column) {
            out.push(missing_column(
                key,
                "target.match.column",
                job,
                &k.column,
                columns,
            ));
        }
        if !k.field.eq_ignore_ascii_case("Id") {
            match o.field(&k.field) {
                Some(f) if f.external_id || f.id_lookup => {}
                _ => out.push(diag(
                    format!("{key}.target.match.field"),
                    "sf.external_id_missing",
                    format!(
                        "job {}: {object}.{} is not Id or an External ID field",
                        job.name, k.field
                    ),
                    "match on Id, or mark the field External ID".into(),
                )),
            }
        }
    }
    for (column, field) in fields {
        let k = format!("{key}.target.fields.{}", quote_key(column));
        let Some((_, pg)) = columns.iter().find(|(c, _)| c == column) else {
            out.push(missing_column(
                key,
                &format!("target.fields.{}", quote_key(column)),
                job,
                column,
                columns,
            ));
            continue;
        };
        check_field(&mut out, &k, job, o, field, pg);
    }
    for (c, _) in columns {
        let used = fields.contains_key(c) || key_column.is_some_and(|k| &k.column == c);
        if !used {
            out.push(Diagnostic {
                severity: Severity::Warning,
                code: "job.column_unmapped",
                key: format!("{key}.target.fields"),
                message: format!(
                    "job {}: result column {c} is not mapped to a field and is not sent",
                    job.name
                ),
                fix: format!("map it (`{c} = \"Field__c\"`) or drop it from the query"),
            });
        }
    }
    out
}

fn check_field(
    out: &mut Vec<Diagnostic>,
    key: &str,
    job: &JobConfig,
    o: &SfObject,
    field: &str,
    pg: &PgType,
) {
    let Some(f) = o.field(field) else {
        out.push(diag(
            key.to_string(),
            "sf.field_missing",
            format!("job {}: {} has no field {field}", job.name, o.name),
            "fix the API name (custom fields end in __c) or grant field access".into(),
        ));
        return;
    };
    if !f.updateable {
        out.push(diag(
            key.to_string(),
            "sf.field_not_updateable",
            format!("job {}: {}.{} is not updateable", job.name, o.name, f.name),
            "map a writable field, or grant Edit on it to the integration user".into(),
        ));
    }
    if !type_fits(pg, &f.field_type) {
        out.push(diag(
            key.to_string(),
            "job.type_mismatch",
            format!(
                "job {}: the column is {}, which does not fit {}.{} ({})",
                job.name,
                pg_name(pg),
                o.name,
                f.name,
                f.field_type
            ),
            format!(
                "cast the column in the query to a type that fits a {} field",
                f.field_type
            ),
        ));
    }
}

/// Whether values of a result column type can be sent to a field type as they are.
pub fn type_fits(pg: &PgType, field_type: &str) -> bool {
    let text_like = matches!(
        field_type,
        "string"
            | "textarea"
            | "picklist"
            | "multipicklist"
            | "email"
            | "phone"
            | "url"
            | "combobox"
            | "encryptedstring"
    );
    match pg {
        PgType::Bool => field_type == "boolean" || text_like,
        PgType::Int { .. } | PgType::Numeric(_) | PgType::Float => {
            matches!(
                field_type,
                "double" | "currency" | "percent" | "int" | "long"
            ) || text_like
        }
        PgType::Date => matches!(field_type, "date" | "datetime") || text_like,
        PgType::Timestamp | PgType::TimestampTz => matches!(field_type, "datetime") || text_like,
        PgType::Text(_) | PgType::Enum(_) | PgType::Uuid => {
            text_like || matches!(field_type, "id" | "reference")
        }
        PgType::Array(_) => field_type == "multipicklist",
        _ => text_like,
    }
}

fn pg_name(pg: &PgType) -> String {
    match pg {
        PgType::Int { .. } => "an integer".into(),
        PgType::Numeric(_) | PgType::Float => "a number".into(),
        PgType::Text(_) => "text".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn missing_column(
    key: &str,
    sub: &str,
    job: &JobConfig,
    column: &str,
    columns: &[(String, PgType)],
) -> Diagnostic {
    let have: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
    diag(
        format!("{key}.{sub}"),
        "job.column_missing",
        format!("job {}: the query returns no column {column}", job.name),
        format!("fix the name or the query; it returns: {}", have.join(", ")),
    )
}

fn diag(key: String, code: &'static str, message: String, fix: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        code,
        key,
        message,
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(toml_text: &str) -> JobConfig {
        toml::from_str(toml_text).expect("job parses")
    }

    const UPDATE: &str = r#"
name = "usage"
trigger = { type = "schedule", cron = "0 * * * *" }
query = "SELECT account_id, logins FROM usage"
target = { type = "update", object = "Account", match = { column = "account_id", field = "External_Id__c" }, fields = { logins = "Logins__c" } }
"#;

    #[test]
    fn a_valid_job_has_no_problems() {
        let mut errs = Vec::new();
        check_jobs("pipelines[0]", &[job(UPDATE)], &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let mut j = job(UPDATE);
        j.name = "bad name".into();
        j.trigger = TriggerConfig::Schedule {
            cron: "every hour".into(),
        };
        j.statement_timeout_ms = 0;
        let mut errs = Vec::new();
        check_jobs("pipelines[0]", &[j.clone(), j], &mut errs);
        let keys: Vec<String> = errs.iter().map(|e| e.key.clone()).collect();
        for want in [
            "jobs[0].name",
            "jobs[0].trigger.cron",
            "jobs[0].statement_timeout_ms",
            "jobs[1].name",
        ] {
            assert!(
                keys.iter().any(|k| k.ends_with(want)),
                "{want} missing in {keys:?}"
            );
        }
        assert!(errs
            .iter()
            .any(|e| e.to_string().contains("duplicate job name")));
    }

    #[test]
    fn enrich_needs_the_lead_trigger() {
        let j = job(r#"
name = "enrich"
trigger = { type = "interval", seconds = 60 }
query = "SELECT 1 AS x WHERE $1 = 'a'"
target = { type = "enrich", params = ["Email"], fields = { x = "Description" } }
"#);
        let mut errs = Vec::new();
        check_jobs("pipelines[0]", &[j], &mut errs);
        assert!(
            errs.iter().any(|e| e.key.ends_with("trigger.type")),
            "{errs:?}"
        );
    }

    #[test]
    fn five_field_cron_gets_seconds() {
        assert_eq!(normalise_cron("0 * * * *"), "0 0 * * * *");
        assert!(normalise_cron("*/5 * * * *")
            .parse::<cron::Schedule>()
            .is_ok());
    }

    #[test]
    fn column_types_must_fit_fields() {
        assert!(type_fits(&PgType::Numeric(None), "currency"));
        assert!(type_fits(&PgType::Date, "date"));
        assert!(!type_fits(&PgType::Text(None), "currency"));
        assert!(!type_fits(&PgType::Bool, "date"));
        assert!(!type_fits(&PgType::TimestampTz, "date"));
    }
}
