//! Two-way pairs (`[[pipelines.pairs]]`): one table ⇄ one object, the key on each side,
//! which fields flow which way, a conflict policy per two-way field, and one delete policy
//! for both directions.
//!
//! A pair is sugar over what the two engines already run: [`expand`] turns it into an
//! outbound mapping (the Postgres-owned and two-way fields, keyed by the pair's key, the
//! record Id written back into `id_column`) and an inbound mirror entry (the
//! Salesforce-owned and two-way fields, keyed by `id_column`), appended to the pipeline's
//! `mappings` and `inbound` under the pair's name. The pair itself stays in
//! [`PipelineConfig::pairs`](super::PipelineConfig::pairs): the two-way layer
//! (`crate::bidi`) reads the per-field policies from it.
//!
//! ```toml
//! [[pipelines.pairs]]
//! name = "users"
//! table = "public.users"
//! object = "Contact"
//! key = { column = "email", match_by = "Email" }
//! id_column = "salesforce_id"
//! delete = "propagate"
//!
//! [pipelines.pairs.fields]
//! first_name = { field = "FirstName", conflict = "newest" }
//! plan = { field = "Plan__c", owner = "postgres" }
//! lead_source = { field = "LeadSource", owner = "salesforce" }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::catalog::{PgCatalog, PgType};
use super::describe::{SfDescribe, SfField};
use super::inbound::{InboundConfig, InboundSource};
use super::model::{ExternalIdConfig, MappingConfig};
use super::validate::{Diagnostic, Severity};
use super::KeyError;

/// One table ⇄ one object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairConfig {
    /// Unique among the pipeline's mappings and pairs; names the expanded mapping.
    pub name: String,
    /// The table, `schema.table` (a bare name means `public.name`).
    pub table: String,
    /// The sObject API name, e.g. `Contact`.
    pub object: String,
    /// How a row finds its record on first contact: `{ column, field }` for an External
    /// ID field, or `{ column, match_by = "Email" }` to match by an ordinary field. The
    /// key column's value is also written into new rows made from Salesforce records.
    pub key: ExternalIdConfig,
    /// Text column, unique, holding the record's Salesforce Id: written back by the
    /// outbound side, the key of the inbound side.
    pub id_column: String,
    /// timestamptz column holding the record's SystemModstamp (the inbound side's
    /// stale-event guard). Default `sf_modstamp`.
    #[serde(default = "default_modstamp_column")]
    pub modstamp_column: String,
    /// Column → field, with who owns it and how a conflict is decided.
    pub fields: BTreeMap<String, PairField>,
    /// What a delete on either side does on the other: `"propagate"` (default),
    /// `"ignore"`, or `{ soft = { column = "deleted_at", field = "Inactive__c" } }` (a
    /// Postgres DELETE sets the checkbox `field`; a Salesforce delete sets the timestamptz
    /// `column`).
    #[serde(default)]
    pub delete: PairDelete,
    /// How Salesforce changes are read: `poll` (default) or `cdc`.
    #[serde(default)]
    pub source: InboundSource,
    /// Poll mode: seconds between polls, at least 1. Default 10.
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: u64,
}

fn default_modstamp_column() -> String {
    "sf_modstamp".into()
}

fn default_poll_interval() -> u64 {
    10
}

/// One paired column.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "PairFieldForm")]
pub struct PairField {
    /// The field API name.
    pub field: String,
    /// Which side's changes flow: `both` (default), `postgres` or `salesforce`.
    pub owner: Owner,
    /// Two-way fields: who wins when both sides changed the field between syncs.
    /// Default `newest`.
    pub conflict: Conflict,
}

/// A field is a name (`"FirstName"`: two-way, newest wins) or a table.
#[derive(Deserialize)]
#[serde(untagged)]
enum PairFieldForm {
    Name(String),
    Table(PairFieldTable),
}

/// `{ field = "Phone", owner = "both", conflict = "newest" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PairFieldTable {
    field: String,
    #[serde(default)]
    owner: Owner,
    #[serde(default)]
    conflict: Conflict,
}

impl From<PairFieldForm> for PairField {
    fn from(f: PairFieldForm) -> PairField {
        match f {
            PairFieldForm::Name(field) => PairField {
                field,
                owner: Owner::Both,
                conflict: Conflict::Newest,
            },
            PairFieldForm::Table(t) => PairField {
                field: t.field,
                owner: t.owner,
                conflict: t.conflict,
            },
        }
    }
}

/// Which side's changes of a field flow to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// Both sides (a conflict is decided by [`Conflict`]).
    #[default]
    Both,
    /// Postgres → Salesforce only.
    Postgres,
    /// Salesforce → Postgres only.
    Salesforce,
}

impl Owner {
    /// Whether Postgres changes of the field go to Salesforce.
    pub fn outbound(self) -> bool {
        matches!(self, Owner::Both | Owner::Postgres)
    }

    /// Whether Salesforce changes of the field go to Postgres.
    pub fn inbound(self) -> bool {
        matches!(self, Owner::Both | Owner::Salesforce)
    }
}

/// Who wins when both sides changed a two-way field between syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conflict {
    /// The change committed last (Postgres commit time vs the Salesforce change's commit
    /// time); on a tie, Postgres.
    #[default]
    Newest,
    /// Postgres always wins.
    Postgres,
    /// Salesforce always wins.
    Salesforce,
}

impl Conflict {
    pub fn as_str(self) -> &'static str {
        match self {
            Conflict::Newest => "newest",
            Conflict::Postgres => "postgres",
            Conflict::Salesforce => "salesforce",
        }
    }
}

/// A pair's delete policy, the same both ways.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PairDelete {
    /// A delete on one side deletes on the other.
    #[default]
    Propagate,
    /// Deletes stay on their side.
    Ignore,
    /// A Postgres DELETE sets the checkbox `field` on the record; a Salesforce delete
    /// sets the timestamptz `column` on the row and keeps it.
    Soft { column: String, field: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftOuter {
    soft: SoftInner,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftInner {
    column: String,
    field: String,
}

impl<'de> Deserialize<'de> for PairDelete {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Name(String),
            Soft(SoftOuter),
        }
        match Form::deserialize(d)? {
            Form::Name(n) if n == "propagate" => Ok(PairDelete::Propagate),
            Form::Name(n) if n == "ignore" => Ok(PairDelete::Ignore),
            Form::Name(other) => Err(serde::de::Error::custom(format!(
                "unknown delete policy `{other}`, expected \"propagate\", \"ignore\" or \
                 {{ soft = {{ column = \"deleted_at\", field = \"Inactive__c\" }} }}"
            ))),
            Form::Soft(s) => Ok(PairDelete::Soft {
                column: s.soft.column,
                field: s.soft.field,
            }),
        }
    }
}

impl PairConfig {
    /// `schema.table` (a bare table name is in `public`).
    pub fn qualified_table(&self) -> String {
        match super::split_table(&self.table) {
            Some((s, t)) => format!("{s}.{t}"),
            None => self.table.clone(),
        }
    }

    /// The field a Salesforce-side key value is read from: the key field.
    pub fn key_field(&self) -> &str {
        &self.key.field
    }

    /// The paired field for a Salesforce field name (case-insensitively).
    pub fn field_for(&self, field: &str) -> Option<(&str, &PairField)> {
        self.fields
            .iter()
            .find(|(_, f)| f.field.eq_ignore_ascii_case(field))
            .map(|(c, f)| (c.as_str(), f))
    }
}

/// The outbound mapping and inbound entry `pair` stands for.
pub fn expand(pair: &PairConfig) -> Result<(MappingConfig, InboundConfig), String> {
    let mapping = outbound_table(pair)
        .try_into()
        .map_err(|e: toml::de::Error| format!("pair `{}` as a mapping: {e}", pair.name))?;
    let inbound = inbound_table(pair)
        .try_into()
        .map_err(|e: toml::de::Error| format!("pair `{}` as an inbound entry: {e}", pair.name))?;
    Ok((mapping, inbound))
}

/// The mapping as TOML, so every default of [`MappingConfig`] applies.
fn outbound_table(pair: &PairConfig) -> toml::Value {
    let mut key = toml::Table::new();
    key.insert("column".into(), pair.key.column.clone().into());
    let key_kind = if pair.key.match_by {
        "match_by"
    } else {
        "field"
    };
    key.insert(key_kind.into(), pair.key.field.clone().into());
    let fields: toml::Table = pair
        .fields
        .iter()
        .filter(|(_, f)| f.owner.outbound())
        .map(|(c, f)| (c.clone(), f.field.clone().into()))
        .collect();
    let mut t = toml::Table::new();
    t.insert("name".into(), pair.name.clone().into());
    t.insert("table".into(), pair.table.clone().into());
    t.insert("object".into(), pair.object.clone().into());
    t.insert("external_id".into(), key.into());
    t.insert("fields".into(), fields.into());
    let mut write_back = toml::Table::new();
    write_back.insert("column".into(), pair.id_column.clone().into());
    t.insert("write_back".into(), write_back.into());
    let delete: toml::Value = match &pair.delete {
        PairDelete::Propagate => "delete".into(),
        PairDelete::Ignore => "ignore".into(),
        PairDelete::Soft { field, .. } => {
            let mut soft = toml::Table::new();
            soft.insert("field".into(), field.clone().into());
            soft.insert("value".into(), true.into());
            let mut outer = toml::Table::new();
            outer.insert("soft".into(), soft.into());
            outer.into()
        }
    };
    t.insert("delete".into(), delete);
    t.into()
}

/// The inbound entry as TOML, so every default of [`InboundConfig`] applies.
fn inbound_table(pair: &PairConfig) -> toml::Value {
    let mut fields: toml::Table = pair
        .fields
        .iter()
        .filter(|(_, f)| f.owner.inbound())
        .map(|(c, f)| (f.field.clone(), c.clone().into()))
        .collect();
    // New rows made from Salesforce records carry the key.
    fields.insert(pair.key.field.clone(), pair.key.column.clone().into());
    let mut t = toml::Table::new();
    t.insert("object".into(), pair.object.clone().into());
    t.insert("table".into(), pair.table.clone().into());
    t.insert("mode".into(), "mirror".into());
    t.insert("source".into(), pair.source.as_str().into());
    t.insert("fields".into(), fields.into());
    t.insert("key_column".into(), pair.id_column.clone().into());
    t.insert(
        "modstamp_column".into(),
        pair.modstamp_column.clone().into(),
    );
    t.insert(
        "poll_interval_secs".into(),
        toml::Value::Integer(pair.poll_interval_secs.min(i64::MAX as u64) as i64),
    );
    if let PairDelete::Soft { column, .. } = &pair.delete {
        let mut d = toml::Table::new();
        d.insert("deleted_at".into(), column.clone().into());
        t.insert("delete".into(), d.into());
    }
    t.into()
}

/// Static checks of a pipeline's pairs (key paths `pairs[i]…`), every problem at once.
pub fn check_pairs(pairs: &[PairConfig], err: &mut impl FnMut(&str, String)) {
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, p) in pairs.iter().enumerate() {
        let key = format!("pairs[{i}]");
        if let Some(first) = names.insert(p.name.as_str(), i) {
            err(
                &format!("{key}.name"),
                format!("`{}` is also the name of pairs[{first}]", p.name),
            );
        }
        if p.fields.is_empty() {
            err(
                &format!("{key}.fields"),
                "a pair needs at least one field".into(),
            );
        }
        if p.fields.contains_key(&p.key.column) {
            err(
                &format!("{key}.fields"),
                format!(
                    "`{}` is the key column: it is synced as {} already",
                    p.key.column, p.key.field
                ),
            );
        }
        for (column, f) in &p.fields {
            if f.owner != Owner::Both && f.conflict != Conflict::Newest {
                err(
                    &format!("{key}.fields.{column}.conflict"),
                    format!(
                        "only a two-way field (owner = \"both\") has a conflict policy; \
                         this one is owned by {:?}",
                        f.owner
                    ),
                );
            }
        }
        if p.poll_interval_secs == 0 {
            err(
                &format!("{key}.poll_interval_secs"),
                "must be at least 1".into(),
            );
        }
    }
}

/// Expands every pair of `pairs` into `mappings` and `inbound`; problems as
/// (key path, reason).
pub fn expand_into(
    key: &str,
    pairs: &[PairConfig],
    mappings: &mut Vec<MappingConfig>,
    inbound: &mut Vec<InboundConfig>,
) -> Vec<KeyError> {
    let mut errors = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        match expand(p) {
            Ok((m, e)) => {
                mappings.push(m);
                inbound.push(e);
            }
            Err(reason) => errors.push(KeyError::new(format!("{key}.pairs[{i}]"), reason)),
        }
    }
    errors
}

/// Findings for pipeline `index`'s pairs against the catalog and describe: a field whose
/// values cannot make the round trip without loss (a 255-character column onto a
/// 40-character field, text onto a number) is an error naming the pair's key and why;
/// every problem is reported, not only the first.
pub fn validate_pairs(
    index: usize,
    pairs: &[PairConfig],
    catalog: &PgCatalog,
    describe: &SfDescribe,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        let key = format!("pipelines[{index}].pairs[{i}]");
        let table = catalog.tables.get(&p.qualified_table());
        let object = describe.object(&p.object);
        let (Some(table), Some(object)) = (table, object) else {
            // The expanded mapping reports a missing table or object.
            continue;
        };
        let key_field = FieldCheck {
            column: &p.key.column,
            field: &p.key.field,
            owner: Owner::Both,
        };
        let checks = p
            .fields
            .iter()
            .map(|(c, f)| FieldCheck {
                column: c,
                field: &f.field,
                owner: f.owner,
            })
            .chain(std::iter::once(key_field));
        for f in checks {
            let k = if f.column == p.key.column.as_str() {
                format!("{key}.key")
            } else {
                format!("{key}.fields.{}", f.column)
            };
            let (Some(c), Some(sf)) = (table.column(f.column), object.field(f.field)) else {
                continue;
            };
            if let Some(reason) = round_trip_problem(&c.class, &c.type_name, sf, f.owner) {
                out.push(Diagnostic {
                    severity: Severity::Error,
                    code: "pair.lossy_field",
                    key: k,
                    message: format!(
                        "{} ({}) ⇄ {}.{} ({}): {reason}",
                        f.column, c.type_name, object.name, sf.name, sf.field_type
                    ),
                    fix: "make the column and the field hold the same values (e.g. \
                          varchar(n) with n = the field's length), or make the field \
                          one-way (owner = \"postgres\" or \"salesforce\")"
                        .into(),
                });
            }
        }
        if table.column(&p.id_column).is_none() {
            out.push(Diagnostic {
                severity: Severity::Error,
                code: "pair.id_column_missing",
                key: format!("{key}.id_column"),
                message: format!("{} has no column {}", p.table, p.id_column),
                fix: format!(
                    "ALTER TABLE {} ADD COLUMN {} text UNIQUE",
                    p.table, p.id_column
                ),
            });
        }
    }
    out
}

/// A paired column and field, and which way they flow.
struct FieldCheck<'a> {
    column: &'a str,
    field: &'a str,
    owner: Owner,
}

/// Why values of a column of `class` cannot flow (as `owner` says) to and from `sf`
/// without loss; `None` when they can.
fn round_trip_problem(
    class: &PgType,
    type_name: &str,
    sf: &SfField,
    owner: Owner,
) -> Option<String> {
    let textual = matches!(
        sf.field_type.as_str(),
        "string" | "textarea" | "email" | "phone" | "url" | "picklist" | "id" | "reference"
    );
    match class {
        PgType::Text(len) if textual => {
            let field_len = sf.length;
            let col_len = *len;
            if owner.outbound() && field_len > 0 && col_len.is_none_or(|n| n > field_len) {
                return Some(format!(
                    "the column holds {} characters, the field {field_len}: longer values \
                     are rejected or cut going out",
                    col_len.map_or("any number of".to_string(), |n| format!("up to {n}"))
                ));
            }
            if owner.inbound() && col_len.is_some_and(|n| field_len > n) {
                return Some(format!(
                    "the field holds up to {field_len} characters, the column {}: longer \
                     values do not fit coming back",
                    col_len.unwrap_or_default()
                ));
            }
            None
        }
        PgType::Text(_) | PgType::Other => (!textual).then(|| {
            format!(
                "a text column does not hold {} values one to one",
                sf.field_type
            )
        }),
        PgType::Bool => (sf.field_type != "boolean")
            .then(|| format!("a boolean column cannot hold {} values", sf.field_type)),
        PgType::Int { .. } | PgType::Numeric(_) | PgType::Float => {
            let numeric = matches!(
                sf.field_type.as_str(),
                "double" | "int" | "long" | "currency" | "percent"
            );
            (!numeric).then(|| format!("{type_name} does not hold {} values", sf.field_type))
        }
        PgType::Date => (sf.field_type != "date")
            .then(|| format!("a date column does not hold {} values", sf.field_type)),
        PgType::TimestampTz => (sf.field_type != "datetime")
            .then(|| format!("timestamptz does not hold {} values", sf.field_type)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> PairConfig {
        toml::from_str(
            r#"
name = "users"
table = "public.users"
object = "Contact"
key = { column = "email", match_by = "Email" }
id_column = "salesforce_id"
delete = "propagate"
source = "poll"

[fields]
first_name = "FirstName"
phone = { field = "Phone", conflict = "salesforce" }
plan = { field = "Plan__c", owner = "postgres" }
lead_source = { field = "LeadSource", owner = "salesforce" }
"#,
        )
        .unwrap()
    }

    #[test]
    fn a_pair_expands_into_a_mapping_and_an_inbound_entry() {
        let (m, e) = expand(&pair()).unwrap();
        assert_eq!(m.external_id.field, "Email");
        assert!(m.external_id.match_by);
        assert_eq!(
            m.fields.keys().collect::<Vec<_>>(),
            ["first_name", "phone", "plan"]
        );
        assert_eq!(m.write_back.unwrap().column, "salesforce_id");
        assert_eq!(e.key_column, "salesforce_id");
        assert_eq!(e.modstamp_column, "sf_modstamp");
        let inbound: Vec<_> = e
            .fields
            .iter()
            .map(|(f, c)| (f.as_str(), c.column.as_str()))
            .collect();
        assert_eq!(
            inbound,
            [
                ("Email", "email"),
                ("FirstName", "first_name"),
                ("LeadSource", "lead_source"),
                ("Phone", "phone")
            ]
        );
    }

    #[test]
    fn field_forms_and_policies_parse() {
        let p = pair();
        assert_eq!(p.fields["first_name"].conflict, Conflict::Newest);
        assert_eq!(p.fields["phone"].conflict, Conflict::Salesforce);
        assert_eq!(p.fields["plan"].owner, Owner::Postgres);
        assert_eq!(p.field_for("leadsource").unwrap().0, "lead_source");
    }

    #[test]
    fn a_soft_delete_maps_to_both_directions() {
        let mut p = pair();
        p.delete = PairDelete::Soft {
            column: "deleted_at".into(),
            field: "Inactive__c".into(),
        };
        let (m, e) = expand(&p).unwrap();
        assert!(
            matches!(m.delete, super::super::DeletePolicy::Soft { ref field, .. } if field == "Inactive__c")
        );
        assert_eq!(
            e.delete,
            super::super::inbound::InboundDelete::DeletedAt("deleted_at".into())
        );
    }

    fn sf(name: &str, ty: &str, length: u32) -> SfField {
        serde_json::from_value(serde_json::json!({
            "name": name, "type": ty, "length": length, "createable": true, "updateable": true
        }))
        .unwrap()
    }

    #[test]
    fn fields_that_cannot_round_trip_say_why() {
        let phone = sf("Phone", "phone", 40);
        let long = round_trip_problem(
            &PgType::Text(Some(255)),
            "varchar(255)",
            &phone,
            Owner::Both,
        );
        assert!(long.unwrap().contains("up to 255 characters, the field 40"));
        let unbounded = round_trip_problem(&PgType::Text(None), "text", &phone, Owner::Postgres);
        assert!(unbounded.unwrap().contains("any number of"));
        assert!(
            round_trip_problem(&PgType::Text(Some(40)), "varchar(40)", &phone, Owner::Both)
                .is_none()
        );
        // Only coming back: a longer column is fine, a shorter one is not.
        assert!(
            round_trip_problem(&PgType::Text(None), "text", &phone, Owner::Salesforce).is_none()
        );
        let short = round_trip_problem(
            &PgType::Text(Some(10)),
            "varchar(10)",
            &phone,
            Owner::Salesforce,
        );
        assert!(short.unwrap().contains("do not fit coming back"));
        let number = sf("Amount", "currency", 0);
        assert!(round_trip_problem(&PgType::Text(None), "text", &number, Owner::Both).is_some());
        assert!(
            round_trip_problem(&PgType::Numeric(None), "numeric", &number, Owner::Both).is_none()
        );
    }

    #[test]
    fn static_problems_are_reported_together() {
        let mut p = pair();
        p.fields.insert(
            "email".into(),
            PairField {
                field: "Email".into(),
                owner: Owner::Both,
                conflict: Conflict::Newest,
            },
        );
        p.fields.get_mut("plan").unwrap().conflict = Conflict::Salesforce;
        let mut problems = Vec::new();
        check_pairs(&[p.clone(), p], &mut |k: &str, r| {
            problems.push((k.to_string(), r))
        });
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&"pairs[1].name"), "{problems:?}");
        assert!(keys.contains(&"pairs[0].fields"), "{problems:?}");
        assert!(
            keys.contains(&"pairs[0].fields.plan.conflict"),
            "{problems:?}"
        );
    }
}
