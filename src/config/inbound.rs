//! `[[pipelines.inbound]]`: Salesforce → Postgres entries of a pipeline (one object into
//! one table, as a mirror or an append-only audit log, fed by Change Data Capture or by
//! polling), their static checks, and the checks against the catalog and describe.
//!
//! An entry reuses its pipeline's `source.database_url` (the database written to) and
//! `salesforce` org. The key-by-key reference is `deploy/examples/README.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::catalog::{PgCatalog, PgTable, PgType};
use super::describe::{SfDescribe, SfField, SfObject};
use super::validate::{Diagnostic, Severity};

/// The default Pub/Sub API endpoint (`salesforce.pubsub_endpoint`).
pub const DEFAULT_PUBSUB_ENDPOINT: &str = "https://api.pubsub.salesforce.com:7443";

/// One Salesforce object into one Postgres table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// The sObject API name, e.g. `Opportunity` or `Invoice__c`.
    pub object: String,
    /// The target table, `schema.table` (a bare name means `public.name`).
    pub table: String,
    /// `mirror` (a row per record, keyed by its Id) or `audit` (a row per change, never
    /// updated or deleted). Default `mirror`.
    #[serde(default)]
    pub mode: InboundMode,
    /// `cdc` (Change Data Capture over the Pub/Sub API) or `poll` (SOQL windows on
    /// SystemModstamp, queryAll and getDeleted). Default `poll`.
    #[serde(default)]
    pub source: InboundSource,
    /// Salesforce field → column. A value is the column (`Name = "name"`) or a table
    /// `{ column = "stage", transform = { type = "value_map", values = { … } } }`.
    /// Relationship fields (`Account.Name`) are read with the record.
    #[serde(default)]
    pub fields: BTreeMap<String, InboundField>,
    /// Only records matching this SOQL WHERE condition are kept, e.g.
    /// `"IsClosed = false AND Amount > 0"`. Poll mode and loads filter in the query; CDC
    /// events re-read the record to decide when the condition names a field the event
    /// did not carry.
    #[serde(default)]
    pub filter: Option<String>,
    /// Mirror: what a Salesforce delete does: `"delete"` (default) removes the row,
    /// `{ deleted_at = "deleted_at" }` sets that timestamptz column and keeps the row.
    #[serde(default)]
    pub delete: InboundDelete,
    /// Mirror: the text primary-key column holding the record Id. Default `id`.
    #[serde(default = "default_key_column")]
    pub key_column: String,
    /// Mirror: the timestamptz column holding the record's SystemModstamp; an event older
    /// than it never overwrites the row. Default `system_modstamp`.
    #[serde(default = "default_modstamp_column")]
    pub modstamp_column: String,
    /// Poll mode: seconds between polls, at least 1. Default 10.
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: u64,
    /// Poll mode: seconds each window reaches back before the watermark to catch records
    /// committed late with an older SystemModstamp. Default 60.
    #[serde(default = "default_overlap")]
    pub poll_overlap_secs: u64,
    /// How existing records are loaded before streaming: `auto` (Bulk 2.0 query when the
    /// object has more than `bulk_threshold` records, paged SOQL otherwise), `soql`,
    /// `bulk`, or `none` (stream only). Default `auto`.
    #[serde(default)]
    pub initial_load: InitialLoad,
    /// `auto` loads through Bulk 2.0 query above this many records. Default 50000.
    #[serde(default = "default_bulk_threshold")]
    pub bulk_threshold: u64,
    /// CDC: events asked for per fetch, 1–100. Default 100.
    #[serde(default = "default_cdc_batch")]
    pub cdc_batch_size: i32,
}

/// Mirror or audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundMode {
    /// A row per record, kept equal to Salesforce.
    #[default]
    Mirror,
    /// A row per change event, insert-only.
    Audit,
}

impl InboundMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InboundMode::Mirror => "mirror",
            InboundMode::Audit => "audit",
        }
    }
}

/// Where the changes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundSource {
    /// Change Data Capture over the Pub/Sub API.
    Cdc,
    /// SOQL polling.
    #[default]
    Poll,
}

impl InboundSource {
    pub fn as_str(self) -> &'static str {
        match self {
            InboundSource::Cdc => "cdc",
            InboundSource::Poll => "poll",
        }
    }
}

/// How existing records are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialLoad {
    #[default]
    Auto,
    Soql,
    Bulk,
    None,
}

/// What a delete does to a mirror row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InboundDelete {
    /// Delete the row.
    #[default]
    Delete,
    /// Set this timestamptz column to the deletion time and keep the row.
    DeletedAt(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeletedAtTable {
    deleted_at: String,
}

impl<'de> Deserialize<'de> for InboundDelete {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = InboundDelete;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"delete\" or { deleted_at = \"column\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<InboundDelete, E> {
                match v {
                    "delete" => Ok(InboundDelete::Delete),
                    "deleted_at" => Err(E::custom(
                        "name the column: delete = { deleted_at = \"deleted_at\" }",
                    )),
                    other => Err(E::custom(format!(
                        "unknown delete behaviour `{other}`, expected \"delete\" or \
                         {{ deleted_at = \"column\" }}"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<InboundDelete, A::Error> {
                let t = DeletedAtTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(InboundDelete::DeletedAt(t.deleted_at))
            }
        }
        d.deserialize_any(V)
    }
}

/// Where a field goes and how its value is converted back.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundField {
    /// Target column.
    pub column: String,
    /// Conversion; none means the conversion for the column's type (text, numeric,
    /// timestamptz, date, boolean, text[] from a multi-select, jsonb, …).
    pub transform: Option<InboundTransform>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundFieldTable {
    column: String,
    #[serde(default)]
    transform: Option<InboundTransform>,
}

impl<'de> Deserialize<'de> for InboundField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = InboundField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a column name or a table { column = \"…\", transform = { … } }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<InboundField, E> {
                Ok(InboundField {
                    column: v.to_string(),
                    transform: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<InboundField, A::Error> {
                let t = InboundFieldTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(InboundField {
                    column: t.column,
                    transform: t.transform,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// An explicit conversion, chosen with `type`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum InboundTransform {
    /// Picklist value → text (or a Postgres enum label) through `values`.
    ValueMap {
        /// Salesforce value → stored value.
        values: BTreeMap<String, String>,
        /// Stored for values not in `values`; without it an unmapped value is kept as is.
        #[serde(default)]
        default: Option<String>,
    },
    /// Multi-select picklist `A;B` → an array column (the default for array columns).
    Multipicklist,
    /// Any value → its text (JSON text for compound values).
    Text,
    /// Any value → jsonb.
    Json,
}

impl InboundConfig {
    /// `schema.table`, a bare name in `public`.
    pub fn qualified_table(&self) -> String {
        match super::split_table(&self.table) {
            Some((s, t)) => format!("{s}.{t}"),
            None => self.table.clone(),
        }
    }

    /// Plain (non-relationship) Salesforce fields read for this entry, Id first.
    pub fn record_fields(&self) -> Vec<String> {
        let mut out = vec!["Id".to_string()];
        for f in self.fields.keys() {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(f)) {
                out.push(f.clone());
            }
        }
        for extra in ["SystemModstamp"] {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(extra)) {
                out.push(extra.to_string());
            }
        }
        out
    }
}

impl super::PipelineConfig {
    /// The replication origin the Salesforce → Postgres writes go under:
    /// `<replication_origin>_inbound`. Not `replication_origin` itself, which the
    /// write-back session holds (Postgres lets one session hold an origin at a time,
    /// SQLSTATE 55006 otherwise); the outbound decoder skips both.
    pub fn inbound_origin(&self) -> String {
        format!("{}_inbound", self.replication_origin)
    }
}

fn default_key_column() -> String {
    "id".into()
}
fn default_modstamp_column() -> String {
    "system_modstamp".into()
}
fn default_poll_interval() -> u64 {
    10
}
fn default_overlap() -> u64 {
    60
}
fn default_bulk_threshold() -> u64 {
    50_000
}
fn default_cdc_batch() -> i32 {
    100
}

/// The fixed columns of an audit table, in order, with their types.
pub const AUDIT_COLUMNS: &[(&str, &str)] = &[
    ("event_id", "bigserial PRIMARY KEY"),
    ("object", "text NOT NULL"),
    ("record_id", "text NOT NULL"),
    ("position", "text NOT NULL"),
    ("change_type", "text NOT NULL"),
    ("commit_user", "text NOT NULL"),
    ("commit_timestamp", "timestamptz NOT NULL"),
    ("changed_fields", "text[] NOT NULL"),
    ("nulled_fields", "text[] NOT NULL"),
    ("change_origin", "text NOT NULL"),
    ("values", "jsonb NOT NULL"),
    ("recorded_at", "timestamptz NOT NULL DEFAULT now()"),
];

/// Static checks of the inbound entries of a pipeline; `err(key, message)` with keys
/// relative to the pipeline.
pub(crate) fn check_entries(entries: &[InboundConfig], err: &mut impl FnMut(&str, String)) {
    let mut targets = BTreeSet::new();
    for (j, e) in entries.iter().enumerate() {
        let key = format!("inbound[{j}]");
        if !targets.insert((e.object.to_ascii_lowercase(), e.qualified_table())) {
            err(
                &format!("{key}.table"),
                format!(
                    "{} → {} is configured twice: one entry per object and table",
                    e.object, e.table
                ),
            );
        }
        check_entry(&key, e, err);
    }
    check_audit_shared_tables(entries, err);
}

fn check_entry(key: &str, e: &InboundConfig, err: &mut impl FnMut(&str, String)) {
    if !is_api_name(&e.object) {
        err(
            &format!("{key}.object"),
            "must be an sObject API name (letters, digits, `_`), e.g. `Opportunity`".into(),
        );
    }
    if super::split_table(&e.table).is_none() && !is_identifier(&e.table) {
        err(
            &format!("{key}.table"),
            "must be `schema.table` or a table name".into(),
        );
    }
    if e.poll_interval_secs == 0 {
        err(
            &format!("{key}.poll_interval_secs"),
            "must be at least 1 second".into(),
        );
    }
    if !(1..=100).contains(&e.cdc_batch_size) {
        err(
            &format!("{key}.cdc_batch_size"),
            "must be 1–100 (the Pub/Sub API's most events per fetch)".into(),
        );
    }
    if let Some(f) = &e.filter {
        if let Some(reason) = filter_problem(f) {
            err(&format!("{key}.filter"), reason);
        }
    }
    if e.mode == InboundMode::Mirror && e.fields.is_empty() {
        err(
            &format!("{key}.fields"),
            "a mirror needs at least one field → column, e.g. Name = \"name\"".into(),
        );
    }
    check_fields(key, e, err);
}

/// Column names must be unique and must not take pgforce's own columns.
fn check_fields(key: &str, e: &InboundConfig, err: &mut impl FnMut(&str, String)) {
    let reserved: Vec<String> = match e.mode {
        InboundMode::Mirror => {
            let mut r = vec![e.key_column.clone(), e.modstamp_column.clone()];
            if let InboundDelete::DeletedAt(c) = &e.delete {
                r.push(c.clone());
            }
            r
        }
        InboundMode::Audit => Vec::new(),
    };
    if e.mode == InboundMode::Mirror {
        for (k, c) in [
            ("key_column", &e.key_column),
            ("modstamp_column", &e.modstamp_column),
        ] {
            if !is_identifier(c) {
                err(&format!("{key}.{k}"), "must be a column name".into());
            }
        }
        if e.key_column == e.modstamp_column {
            err(
                &format!("{key}.modstamp_column"),
                "must differ from key_column".into(),
            );
        }
    }
    if e.mode == InboundMode::Audit && e.delete != InboundDelete::Delete {
        err(
            &format!("{key}.delete"),
            "an audit table is never updated or deleted: remove `delete` (deletes are recorded as DELETE rows)".into(),
        );
    }
    let mut seen = BTreeSet::new();
    for (field, spec) in &e.fields {
        let k = format!("{key}.fields.{}", super::rules::quote_key(field));
        if !is_field_path(field) {
            err(
                &k,
                "must be a field API name, or a relationship path such as `Account.Name`".into(),
            );
        }
        if !is_identifier(&spec.column) {
            err(
                &k,
                format!(
                    "`{}` is not a column name (letters, digits, `_`)",
                    spec.column
                ),
            );
        }
        let own_id = e.mode == InboundMode::Mirror
            && ((field.eq_ignore_ascii_case("Id") && spec.column == e.key_column)
                || (field.eq_ignore_ascii_case("SystemModstamp")
                    && spec.column == e.modstamp_column));
        if own_id {
            continue;
        }
        if reserved.contains(&spec.column) {
            err(
                &k,
                format!(
                    "column `{}` is pgforce's own (key, SystemModstamp or deleted_at column)",
                    spec.column
                ),
            );
        }
        if !seen.insert(spec.column.clone()) {
            err(&k, format!("column `{}` is mapped twice", spec.column));
        }
    }
}

/// Audit entries that share one table (Tasks and Events) must be audits.
fn check_audit_shared_tables(entries: &[InboundConfig], err: &mut impl FnMut(&str, String)) {
    let mut modes: BTreeMap<String, (usize, InboundMode)> = BTreeMap::new();
    for (j, e) in entries.iter().enumerate() {
        match modes.get(&e.qualified_table()) {
            Some((_, m)) if *m != e.mode || e.mode == InboundMode::Mirror => err(
                &format!("inbound[{j}].table"),
                format!(
                    "{} is also the target of another entry: only audit entries may share a table",
                    e.table
                ),
            ),
            Some(_) => {}
            None => {
                modes.insert(e.qualified_table(), (j, e.mode));
            }
        }
    }
}

/// Why a filter cannot be put in a WHERE clause as is.
fn filter_problem(f: &str) -> Option<String> {
    if f.trim().is_empty() {
        return Some("is empty: remove it, or write a SOQL condition".into());
    }
    let mut quotes = 0usize;
    let mut depth = 0i32;
    let mut escaped = false;
    for c in f.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '\'' => quotes += 1,
            '(' if quotes.is_multiple_of(2) => depth += 1,
            ')' if quotes.is_multiple_of(2) => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return Some("has a `)` without its `(`".into());
        }
    }
    if !quotes.is_multiple_of(2) {
        return Some("has an unterminated string literal".into());
    }
    if depth != 0 {
        return Some("has an unclosed `(`".into());
    }
    let lower = f.to_ascii_lowercase();
    for word in [" order by ", " limit ", " group by ", " offset "] {
        if format!(" {lower} ").contains(word) {
            return Some(format!(
                "must be a WHERE condition only, without `{}`",
                word.trim()
            ));
        }
    }
    None
}

fn is_api_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

fn is_field_path(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_api_name) && s.split('.').count() <= 5
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// Findings for the inbound entries of pipeline `index` against the catalog (the target
/// tables) and the describe (the objects).
pub(crate) fn validate_entries(
    index: usize,
    entries: &[InboundConfig],
    catalog: &PgCatalog,
    describe: &SfDescribe,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (j, e) in entries.iter().enumerate() {
        let key = format!("pipelines[{index}].inbound[{j}]");
        let mut push = |code: &'static str, k: String, message: String, fix: String| {
            out.push(Diagnostic {
                severity: Severity::Error,
                code,
                key: k,
                message,
                fix,
            })
        };
        match describe.object(&e.object) {
            None => push(
                "sf.object_missing",
                format!("{key}.object"),
                format!(
                    "sObject {} does not exist or is not visible to the integration user",
                    e.object
                ),
                "check the API name in Setup > Object Manager and the user's permissions".into(),
            ),
            Some(o) => {
                for field in e.fields.keys() {
                    let base = field.split('.').next().unwrap_or(field);
                    let found = if field.contains('.') {
                        o.relationship(base).is_some()
                    } else {
                        o.field(field).is_some()
                    };
                    if !found {
                        push(
                            "sf.field_missing",
                            format!("{key}.fields.{}", super::rules::quote_key(field)),
                            format!("{} has no field {field}", e.object),
                            "fix the field API name (custom fields end in __c; relationships in __r)".into(),
                        );
                    }
                }
            }
        }
        let qt = e.qualified_table();
        match catalog.tables.get(&qt) {
            None => push(
                "pg.table_missing",
                format!("{key}.table"),
                format!("table {qt} does not exist"),
                "create it with `pgforce schema --apply`, or fix the name".into(),
            ),
            Some(t) => {
                for col in expected_columns(e) {
                    if t.column(&col).is_none() {
                        push(
                            "pg.column_missing",
                            format!("{key}.table"),
                            format!("column {col} does not exist in {qt}"),
                            "run `pgforce schema` to see the differences, `--apply` to add them"
                                .into(),
                        );
                    }
                }
                if let (InboundMode::Mirror, Some(o)) = (e.mode, describe.object(&e.object)) {
                    for (k, message) in type_problems(e, o, t) {
                        push(
                            "pg.type_mismatch",
                            format!("{key}.fields.{k}"),
                            message,
                            "change the column's type (`pgforce schema` shows the one it \
                             would create), or give the field a `transform`"
                                .into(),
                        );
                    }
                }
                if e.mode == InboundMode::Mirror && !t.is_unique(&e.key_column) {
                    push(
                        "pg.key_not_unique",
                        format!("{key}.key_column"),
                        format!(
                            "{qt}.{} is not the primary key or uniquely indexed",
                            e.key_column
                        ),
                        format!("ALTER TABLE {qt} ADD PRIMARY KEY ({})", e.key_column),
                    );
                }
            }
        }
    }
    out
}

/// (quoted field key, message) for each plain field whose column cannot hold its values.
/// Fields with a `transform`, relationship fields and columns of types pgforce passes
/// through as text (enums, uuid, …) are not judged here.
fn type_problems(e: &InboundConfig, o: &SfObject, t: &PgTable) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, spec) in &e.fields {
        if spec.transform.is_some() || name.contains('.') {
            continue;
        }
        let (Some(field), Some(col)) = (o.field(name), t.column(&spec.column)) else {
            continue;
        };
        if let Some(why) = cannot_hold(field, &col.class) {
            out.push((
                super::rules::quote_key(name),
                format!(
                    "column {}.{} ({}) cannot hold {}.{name} ({}): {why}",
                    e.qualified_table(),
                    spec.column,
                    col.type_name,
                    e.object,
                    field.field_type
                ),
            ));
        }
    }
    out
}

/// Why a column of class `col` cannot hold `field`'s values, `None` when it can.
fn cannot_hold(field: &SfField, col: &PgType) -> Option<String> {
    let ft = field.field_type.as_str();
    match col {
        // Text holds every value's text form (JSON text for compound values).
        PgType::Text(None) | PgType::Other | PgType::Enum(_) => None,
        PgType::Text(Some(n)) if field.length > *n => Some(format!(
            "the field holds up to {} characters, the column {n}",
            field.length
        )),
        PgType::Text(Some(_)) => None,
        PgType::Bool => {
            (ft != "boolean").then(|| "a boolean column holds checkbox fields only".into())
        }
        PgType::Int { digits } => match ft {
            "int" | "long" => None,
            "double" | "currency" | "percent" if field.scale > 0 => {
                Some(format!("the field has {} decimal places", field.scale))
            }
            "double" | "currency" | "percent"
                if field.precision.saturating_sub(field.scale) > *digits =>
            {
                Some(format!("the field has up to {} digits", field.precision))
            }
            "double" | "currency" | "percent" => None,
            _ => Some("an integer column holds number fields only".into()),
        },
        PgType::Numeric(spec) => match ft {
            "int" | "long" | "double" | "currency" | "percent" => match spec {
                Some((p, s))
                    if field.precision > 0
                        && field.precision.saturating_sub(field.scale) > p.saturating_sub(*s) =>
                {
                    Some(format!(
                        "the field has up to {} digits before the point, the column {}",
                        field.precision.saturating_sub(field.scale),
                        p.saturating_sub(*s)
                    ))
                }
                _ => None,
            },
            _ => Some("a numeric column holds number fields only".into()),
        },
        PgType::Float => (!matches!(ft, "int" | "long" | "double" | "currency" | "percent"))
            .then(|| "a float column holds number fields only".into()),
        PgType::Date => match ft {
            "date" => None,
            "datetime" => Some("a date column drops the field's time of day".into()),
            _ => Some("a date column holds date fields only".into()),
        },
        PgType::Timestamp | PgType::TimestampTz => (!matches!(ft, "date" | "datetime"))
            .then(|| "a timestamp column holds date and datetime fields only".into()),
        PgType::Time | PgType::TimeTz => {
            (ft != "time").then(|| "a time column holds time fields only".into())
        }
        PgType::Array(_) => (ft != "multipicklist")
            .then(|| "an array column holds multi-select picklists only".into()),
        PgType::Json => None,
        PgType::Uuid | PgType::Interval | PgType::Bytea => {
            Some("pgforce does not write Salesforce values into this type".into())
        }
    }
}

/// Every column the entry writes.
pub fn expected_columns(e: &InboundConfig) -> Vec<String> {
    match e.mode {
        InboundMode::Audit => AUDIT_COLUMNS.iter().map(|(c, _)| c.to_string()).collect(),
        InboundMode::Mirror => {
            let mut cols = vec![e.key_column.clone(), e.modstamp_column.clone()];
            if let InboundDelete::DeletedAt(c) = &e.delete {
                cols.push(c.clone());
            }
            for f in e.fields.values() {
                if !cols.contains(&f.column) {
                    cols.push(f.column.clone());
                }
            }
            cols
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_for_shape() {
        assert_eq!(filter_problem("StageName = 'Closed Won'"), None);
        assert!(filter_problem("Name = 'x").is_some());
        assert!(filter_problem("(A = 1").is_some());
        assert!(filter_problem("A = 1)").is_some());
        assert!(filter_problem("A = 1 ORDER BY Name").is_some());
        assert!(filter_problem("  ").is_some());
        assert_eq!(filter_problem("Name = 'it\\'s (x'"), None);
    }

    #[test]
    fn field_paths_and_identifiers() {
        assert!(is_field_path("Account.Name"));
        assert!(is_field_path("Amount__c"));
        assert!(!is_field_path("Account..Name"));
        assert!(is_identifier("stage_name"));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier("a-b"));
    }

    fn field(ty: &str, length: u32, precision: u32, scale: u32) -> SfField {
        let mut f: SfField = serde_json::from_value(serde_json::json!({
            "name": "F", "type": ty
        }))
        .unwrap();
        (f.length, f.precision, f.scale) = (length, precision, scale);
        f
    }

    #[test]
    fn which_columns_hold_which_fields() {
        let text = field("string", 80, 0, 0);
        assert_eq!(cannot_hold(&text, &PgType::Text(None)), None);
        assert_eq!(cannot_hold(&text, &PgType::Text(Some(80))), None);
        assert!(cannot_hold(&text, &PgType::Text(Some(40))).is_some());
        assert!(cannot_hold(&text, &PgType::Bool).is_some());
        assert!(cannot_hold(&text, &PgType::Numeric(None)).is_some());
        let money = field("currency", 0, 18, 2);
        assert_eq!(cannot_hold(&money, &PgType::Numeric(Some((18, 2)))), None);
        assert!(cannot_hold(&money, &PgType::Numeric(Some((8, 2)))).is_some());
        assert!(cannot_hold(&money, &PgType::Int { digits: 19 }).is_some());
        assert_eq!(cannot_hold(&money, &PgType::Float), None);
        let when = field("datetime", 0, 0, 0);
        assert_eq!(cannot_hold(&when, &PgType::TimestampTz), None);
        assert!(cannot_hold(&when, &PgType::Date).is_some());
        let picks = field("multipicklist", 4099, 0, 0);
        assert_eq!(
            cannot_hold(&picks, &PgType::Array(Box::new(PgType::Text(None)))),
            None
        );
        assert!(cannot_hold(
            &field("boolean", 0, 0, 0),
            &PgType::Array(Box::new(PgType::Bool))
        )
        .is_some());
        assert_eq!(cannot_hold(&field("boolean", 0, 0, 0), &PgType::Bool), None);
    }
}
