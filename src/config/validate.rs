//! Validate a config against the live Postgres catalog and Salesforce describe results.
//!
//! Each [`Diagnostic`] names the TOML key it is about, what is wrong (with the table,
//! column, object and field) and how to fix it. Errors mean syncing would fail or lose
//! data; warnings mean it may fail for some rows or behave unexpectedly. This file checks
//! tables, identities, objects, fields and lookups; whether a column's values fit the field
//! they are mapped to is in [`types`].

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use super::catalog::{PgCatalog, PgTable, PgType};
use super::describe::{SfDescribe, SfField, SfObject};
use super::model::*;
use super::rules::quote_key;
use crate::change::ReplicaIdentity;

mod types;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable identifier of the kind of finding, e.g. `pg.replica_identity`.
    pub code: &'static str,
    /// TOML key path, e.g. `pipelines[0].mappings[1].fields.plan`.
    pub key: String,
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

/// Every finding for every pipeline (one catalog and describe set for all).
pub fn validate(config: &Config, catalog: &PgCatalog, describe: &SfDescribe) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, p) in config.pipelines.iter().enumerate() {
        out.extend(validate_pipeline(i, p, catalog, describe));
    }
    out
}

/// Findings for pipeline number `index`.
pub fn validate_pipeline(
    index: usize,
    p: &PipelineConfig,
    catalog: &PgCatalog,
    describe: &SfDescribe,
) -> Vec<Diagnostic> {
    let mut ctx = Ctx {
        out: Vec::new(),
        pipeline: p,
        catalog,
        describe,
    };
    for (j, m) in p.mappings.iter().enumerate() {
        let key = format!("pipelines[{index}].mappings[{j}]");
        let table = catalog.tables.get(&m.qualified_table());
        match table {
            Some(t) => ctx.check_table(&key, m, t),
            None => ctx.push(
                Severity::Error,
                "pg.table_missing",
                format!("{key}.table"),
                format!("table {} does not exist", m.qualified_table()),
                "create the table, or fix the name (`schema.table`)".into(),
            ),
        }
        match describe.object(&m.object) {
            Some(o) => ctx.check_object(&key, m, o, table),
            None => ctx.push(Severity::Error, "sf.object_missing", format!("{key}.object"),
                format!("sObject {} does not exist or is not visible to the integration user", m.object),
                "check the API name in Setup > Object Manager (custom objects end in __c) and the user's permissions".into()),
        }
    }
    ctx.out.extend(super::inbound::validate_entries(
        index, &p.inbound, catalog, describe,
    ));
    ctx.out.extend(super::pair::validate_pairs(
        index, &p.pairs, catalog, describe,
    ));
    ctx.out
}

/// True when any diagnostic is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(|d| d.severity == Severity::Error)
}

/// A plain-text table: severity, key and message, with the fix on the next line.
pub fn render_table(diagnostics: &[Diagnostic]) -> String {
    if diagnostics.is_empty() {
        return "no problems found\n".into();
    }
    let width = diagnostics.iter().map(|d| d.key.len()).max().unwrap_or(0);
    let mut out = format!("{:<8} {:<width$}  MESSAGE\n", "SEVERITY", "KEY");
    for d in diagnostics {
        let sev = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(
            out,
            "{sev:<8} {:<width$}  {} [{}]",
            d.key, d.message, d.code
        );
        let _ = writeln!(out, "{:<8} {:<width$}  fix: {}", "", "", d.fix);
    }
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let _ = writeln!(
        out,
        "{errors} error(s), {} warning(s)",
        diagnostics.len() - errors
    );
    out
}

/// The diagnostics as a JSON array.
pub fn to_json(diagnostics: &[Diagnostic]) -> serde_json::Value {
    serde_json::to_value(diagnostics).expect("diagnostics serialise")
}

/// Validation state for one pipeline.
struct Ctx<'a> {
    out: Vec<Diagnostic>,
    pipeline: &'a PipelineConfig,
    catalog: &'a PgCatalog,
    describe: &'a SfDescribe,
}

impl Ctx<'_> {
    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        key: String,
        message: String,
        fix: String,
    ) {
        self.out.push(Diagnostic {
            severity,
            code,
            key,
            message,
            fix,
        });
    }

    // ---- Postgres -------------------------------------------------------------------

    fn check_table(&mut self, key: &str, m: &MappingConfig, t: &PgTable) {
        let qt = t.qualified_name();
        for (k, col) in referenced_columns(m) {
            if t.column(&col).is_none() {
                self.push(
                    Severity::Error,
                    "pg.column_missing",
                    format!("{key}.{k}"),
                    format!("column {col} does not exist in {qt}"),
                    format!("fix the column name; {qt} has: {}", column_list(t)),
                );
            }
        }
        self.check_publication(key, t);
        self.check_identity(key, m, t);
        if let Some(w) = &m.write_back {
            if let Some(c) = t.column(&w.column) {
                if !matches!(c.class, PgType::Text(None))
                    && !matches!(c.class, PgType::Text(Some(n)) if n >= 18)
                {
                    self.push(
                        Severity::Error,
                        "pg.write_back_type",
                        format!("{key}.write_back.column"),
                        format!(
                            "{qt}.{} is {}, which cannot hold an 18-character Salesforce Id",
                            c.name, c.type_name
                        ),
                        format!("ALTER TABLE {qt} ALTER COLUMN {} TYPE text", c.name),
                    );
                }
            }
        }
    }

    fn check_publication(&mut self, key: &str, t: &PgTable) {
        let publication = &self.pipeline.publication;
        if t.publications.contains(publication) {
            return;
        }
        let qt = t.qualified_name();
        let fix = format!("ALTER PUBLICATION {publication} ADD TABLE {qt}");
        if self.pipeline.manage_publication {
            self.push(
                Severity::Warning,
                "pg.publication",
                format!("{key}.table"),
                format!("{qt} is not in publication {publication}; pgforce will add it at start"),
                format!("nothing, or run `{fix}` yourself"),
            );
        } else {
            self.push(
                Severity::Error,
                "pg.publication",
                format!("{key}.table"),
                format!("{qt} is not in publication {publication} and manage_publication = false"),
                fix,
            );
        }
    }

    fn check_identity(&mut self, key: &str, m: &MappingConfig, t: &PgTable) {
        let qt = t.qualified_name();
        let full_fix = format!("ALTER TABLE {qt} REPLICA IDENTITY FULL");
        let ident = t.identity_columns();
        if ident.as_ref().is_some_and(|c| c.is_empty()) {
            let why = if t.replica_identity == ReplicaIdentity::Nothing {
                "REPLICA IDENTITY NOTHING".to_string()
            } else {
                "no primary key (REPLICA IDENTITY DEFAULT)".to_string()
            };
            self.push(Severity::Error, "pg.replica_identity", format!("{key}.table"),
                format!("{qt} has {why}: Postgres rejects its UPDATEs and DELETEs while it is published"),
                format!("add a primary key, or `{full_fix}`"));
            return;
        }
        let col = &m.external_id.column;
        if t.column(col).is_none() {
            return;
        }
        if !t.is_unique(col) {
            self.push(Severity::Warning, "pg.external_id_not_unique", format!("{key}.external_id.column"),
                format!("{qt}.{col} is not the primary key or uniquely indexed: two rows may write the same record"),
                format!("CREATE UNIQUE INDEX ON {qt} ({col}), or use the primary key as external id"));
        }
        if ident.is_some_and(|c| !c.contains(col)) {
            let (severity, what) = if m.delete == DeletePolicy::Ignore {
                (
                    Severity::Warning,
                    "changes of its value are not detected (the old record stays)",
                )
            } else {
                (
                    Severity::Error,
                    "DELETEs do not carry it, so the record to delete is unknown",
                )
            };
            self.push(
                severity,
                "pg.external_id_not_in_identity",
                format!("{key}.external_id.column"),
                format!("{qt}.{col} is not part of the replica identity: {what}"),
                full_fix,
            );
        }
    }

    // ---- Salesforce -----------------------------------------------------------------

    fn check_object(&mut self, key: &str, m: &MappingConfig, o: &SfObject, t: Option<&PgTable>) {
        if !o.createable || !o.updateable {
            self.push(
                Severity::Error,
                "sf.object_not_writable",
                format!("{key}.object"),
                format!(
                    "{} is not createable and updateable for the integration user",
                    o.name
                ),
                "grant Create and Edit on the object to the integration user's permission set"
                    .into(),
            );
        }
        if m.external_id.match_by {
            self.check_match_field(
                &format!("{key}.external_id.match_by"),
                &o.name,
                o.field(&m.external_id.field),
                &m.external_id.field,
            );
        } else {
            self.check_external_id(
                &format!("{key}.external_id.field"),
                &o.name,
                o.field(&m.external_id.field),
                &m.external_id.field,
            );
        }
        for (col, spec) in &m.fields {
            let k = format!("{key}.fields.{}", quote_key(col));
            let Some(f) = self.writable_field(&k, o, &spec.field) else {
                continue;
            };
            let column = t.and_then(|t| t.column(col));
            if let Some(c) = column {
                let out = self.output(&k, c, spec.transform.as_ref());
                self.check_compat(&k, c, &out, f, &o.name);
            }
        }
        for (n, l) in m.lookups.iter().enumerate() {
            self.check_lookup(&format!("{key}.lookups[{n}]"), l, o);
        }
        if let DeletePolicy::Soft { field, value } = &m.delete {
            if let Some(f) = self.writable_field(&format!("{key}.delete.soft.field"), o, field) {
                let ok = matches!((value, f.field_type.as_str()), (Scalar::Bool(_), "boolean"))
                    || !matches!(value, Scalar::Bool(_)) && f.field_type != "boolean";
                if !ok {
                    self.push(Severity::Error, "sf.type_mismatch", format!("{key}.delete.soft.value"),
                        format!("{}.{} is {}, which does not take the soft-delete value {value}", o.name, f.name, f.field_type),
                        "use a checkbox field with value = true, or a text/picklist field with a string".into());
                }
            }
        }
        self.check_required(key, m, o);
    }

    /// The field, if it exists and can be written; diagnostics otherwise.
    fn writable_field<'o>(
        &mut self,
        key: &str,
        o: &'o SfObject,
        name: &str,
    ) -> Option<&'o SfField> {
        let Some(f) = o.field(name) else {
            let hint = similar_field(o, name)
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            self.push(Severity::Error, "sf.field_missing", key.to_string(),
                format!("{} has no field {name}{hint}", o.name),
                "fix the API name (custom fields end in __c), or grant the integration user field-level access".into());
            return None;
        };
        if !f.createable {
            self.push(
                Severity::Error,
                "sf.field_not_createable",
                key.to_string(),
                format!(
                    "{}.{} is not createable (read-only, formula or no field-level edit access)",
                    o.name, f.name
                ),
                "map a writable field, or grant Edit on the field to the integration user".into(),
            );
            return None;
        }
        if !f.updateable {
            self.push(
                Severity::Warning,
                "sf.field_not_updateable",
                key.to_string(),
                format!(
                    "{}.{} can be set on create but not updated: upserts of existing records fail",
                    o.name, f.name
                ),
                "grant Edit on the field, or remove it from the mapping".into(),
            );
        }
        Some(f)
    }

    fn check_external_id(&mut self, key: &str, object: &str, f: Option<&SfField>, name: &str) {
        match f {
            None => self.push(Severity::Error, "sf.external_id_missing", key.to_string(),
                format!("{object} has no field {name}"),
                format!("create {name} on {object} (Text, External ID, Unique)")),
            Some(f) if !(f.external_id && f.unique) => self.push(Severity::Error, "sf.external_id_not_unique", key.to_string(),
                format!("{object}.{} is not marked External ID and Unique, so it cannot key upserts", f.name),
                format!("mark {} as External ID and Unique in Setup > Object Manager > {object} > Fields", f.name)),
            Some(_) => {}
        }
    }

    /// A `match_by` field must exist and be writable (new records get the key's value).
    fn check_match_field(&mut self, key: &str, object: &str, f: Option<&SfField>, name: &str) {
        match f {
            None => self.push(Severity::Error, "sf.match_field_missing", key.to_string(),
                format!("{object} has no field {name}"),
                format!("match by a field {object} has, e.g. Email")),
            Some(f) if !(f.createable && f.updateable) => self.push(Severity::Error, "sf.match_field_not_writable", key.to_string(),
                format!("{object}.{} is not createable and updateable, so records created by the match cannot carry it", f.name),
                "grant Edit on the field to the integration user".into()),
            Some(_) => {}
        }
    }

    fn check_lookup(&mut self, key: &str, l: &LookupConfig, o: &SfObject) {
        let Some(f) = o.relationship(&l.relationship) else {
            let custom = if l.relationship.ends_with("__c") {
                " (custom lookups use the __r name, e.g. Account__r)"
            } else {
                ""
            };
            self.push(
                Severity::Error,
                "sf.lookup_missing",
                format!("{key}.relationship"),
                format!(
                    "{} has no lookup with relationship name {}{custom}",
                    o.name, l.relationship
                ),
                "use the lookup's relationship name from describe (`relationshipName`)".into(),
            );
            return;
        };
        if !f
            .reference_to
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&l.object))
        {
            self.push(
                Severity::Error,
                "sf.lookup_target",
                format!("{key}.object"),
                format!(
                    "{}.{} refers to {}, not {}",
                    o.name,
                    f.name,
                    f.reference_to.join(", "),
                    l.object
                ),
                format!(
                    "set object = \"{}\"",
                    f.reference_to.first().cloned().unwrap_or_default()
                ),
            );
        }
        if !f.name.eq_ignore_ascii_case(&l.lookup_field()) {
            self.push(Severity::Warning, "sf.lookup_field", format!("{key}.field"),
                format!("the lookup field for {} is {}, not {}: NULL parents would clear the wrong field", l.relationship, f.name, l.lookup_field()),
                format!("set field = \"{}\"", f.name));
        }
        let Some(parent) = self.describe.object(&l.object) else {
            self.push(
                Severity::Error,
                "sf.object_missing",
                format!("{key}.object"),
                format!("parent sObject {} was not described", l.object),
                "check the API name and the integration user's access".into(),
            );
            return;
        };
        match parent.field(&l.external_id_field) {
            Some(pf) if pf.external_id || pf.id_lookup => {}
            _ => self.push(
                Severity::Error,
                "sf.lookup_external_id",
                format!("{key}.external_id_field"),
                format!(
                    "{}.{} does not exist or is not an External ID field",
                    parent.name, l.external_id_field
                ),
                format!(
                    "mark {} as External ID and Unique on {}",
                    l.external_id_field, parent.name
                ),
            ),
        }
    }

    fn check_required(&mut self, key: &str, m: &MappingConfig, o: &SfObject) {
        let mut mapped: BTreeSet<String> =
            m.fields.values().map(|s| s.field.to_lowercase()).collect();
        mapped.insert(m.external_id.field.to_lowercase());
        mapped.extend(m.lookups.iter().map(|l| l.lookup_field().to_lowercase()));
        for f in &o.fields {
            let required =
                f.createable && !f.nillable && !f.defaulted_on_create && f.field_type != "boolean";
            if required && !mapped.contains(&f.name.to_lowercase()) {
                self.push(Severity::Warning, "sf.required_field", format!("{key}.fields"),
                    format!("{}.{} is required but not mapped: inserts fail with REQUIRED_FIELD_MISSING (updates of existing records work)", o.name, f.name),
                    format!("map a column to {}", f.name));
            }
        }
    }
}

/// Every column a mapping reads, with its key (relative to the mapping).
fn referenced_columns(m: &MappingConfig) -> Vec<(String, String)> {
    let mut cols = vec![(
        "external_id.column".to_string(),
        m.external_id.column.clone(),
    )];
    cols.extend(
        m.fields
            .keys()
            .map(|c| (format!("fields.{}", quote_key(c)), c.clone())),
    );
    cols.extend(
        m.lookups
            .iter()
            .enumerate()
            .map(|(n, l)| (format!("lookups[{n}].column"), l.column.clone())),
    );
    cols.extend(
        m.filter
            .iter()
            .enumerate()
            .map(|(n, f)| (format!("filter[{n}].column"), f.column.clone())),
    );
    cols.extend(
        m.write_back
            .iter()
            .map(|w| ("write_back.column".to_string(), w.column.clone())),
    );
    cols
}

fn column_list(t: &PgTable) -> String {
    t.columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A field whose name differs only in case or `__c`.
fn similar_field<'o>(o: &'o SfObject, name: &str) -> Option<&'o str> {
    let norm = |s: &str| s.to_lowercase().replace('_', "");
    let want = norm(name);
    let close =
        |have: String| have == want || format!("{have}c") == want || have == format!("{want}c");
    o.fields
        .iter()
        .find(|f| close(norm(&f.name)))
        .map(|f| f.name.as_str())
}
