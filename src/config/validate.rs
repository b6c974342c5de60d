//! Validate a config against the live Postgres catalog and Salesforce describe results.
//!
//! Each [`Diagnostic`] names the TOML key it is about, what is wrong (with the table,
//! column, object and field) and how to fix it. Errors mean syncing would fail or lose
//! data; warnings mean it may fail for some rows or behave unexpectedly.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use super::catalog::{PgCatalog, PgColumn, PgTable, PgType};
use super::describe::{SfDescribe, SfField, SfObject};
use super::model::*;
use super::rules::quote_key;
use crate::change::ReplicaIdentity;

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

/// What a column becomes after its transform (or default conversion).
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Bool,
    /// Integer digits and scale when bounded; `exact` when a numeric transform fixed them.
    Number {
        bounds: Option<(u32, u32)>,
        exact: bool,
    },
    Float,
    /// Text with a known maximum length, and the closed set of values when known.
    Text {
        max: Option<u32>,
        from_transform: bool,
        values: Option<Vec<String>>,
    },
    Multi {
        values: Option<Vec<String>>,
    },
    Date,
    DateTime,
    Time,
    Unsupported(&'static str),
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
        self.check_external_id(
            &format!("{key}.external_id.field"),
            &o.name,
            o.field(&m.external_id.field),
            &m.external_id.field,
        );
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

    // ---- Types ----------------------------------------------------------------------

    /// What the column's values become, with a diagnostic for impossible transforms.
    fn output(&mut self, key: &str, c: &PgColumn, t: Option<&Transform>) -> Out {
        let enum_labels = |class: &PgType| match class {
            PgType::Enum(oid) => self.catalog.enums.get(oid).cloned(),
            _ => None,
        };
        let out = match t {
            None => match &c.class {
                PgType::Bool => Out::Bool,
                PgType::Int { digits } => Out::Number { bounds: Some((*digits, 0)), exact: false },
                PgType::Numeric(ps) => Out::Number { bounds: ps.map(|(p, s)| (p.saturating_sub(s), s)), exact: false },
                PgType::Float => Out::Float,
                PgType::Text(max) => Out::Text { max: *max, from_transform: false, values: None },
                PgType::Uuid => Out::Text { max: Some(36), from_transform: false, values: None },
                PgType::Enum(_) => Out::Text { max: None, from_transform: false, values: enum_labels(&c.class) },
                PgType::Json | PgType::Bytea | PgType::Other => Out::Text { max: None, from_transform: false, values: None },
                PgType::Date => Out::Date,
                PgType::Time | PgType::TimeTz => Out::Time,
                PgType::Timestamp | PgType::TimestampTz => Out::DateTime,
                PgType::Interval => Out::Unsupported("interval has no default conversion: add transform = \"string\" (ISO 8601 duration)"),
                PgType::Array(e) => Out::Multi { values: enum_labels(e) },
            },
            Some(t) => match self.transform_output(key, c, t, enum_labels(&c.class)) {
                Some(o) => o,
                None => return Out::Unsupported(""),
            },
        };
        if let Out::Unsupported(why) = &out {
            if !why.is_empty() {
                self.push(
                    Severity::Error,
                    "pg.unsupported_type",
                    key.to_string(),
                    format!("column {} is {}: {why}", c.name, c.type_name),
                    "add a transform (see message)".into(),
                );
            }
        }
        out
    }

    fn transform_output(
        &mut self,
        key: &str,
        c: &PgColumn,
        t: &Transform,
        labels: Option<Vec<String>>,
    ) -> Option<Out> {
        use PgType as P;
        let accepts = match (t, &c.class) {
            (
                Transform::ValueMap { .. },
                P::Enum(_) | P::Text(_) | P::Bool | P::Int { .. } | P::Other | P::Uuid,
            ) => true,
            (Transform::Json, P::Json | P::Text(_) | P::Array(_) | P::Other) => true,
            (Transform::Multipicklist { .. }, P::Array(_) | P::Text(_) | P::Other) => true,
            (Transform::Numeric { .. }, P::Numeric(_) | P::Int { .. } | P::Float | P::Text(_)) => {
                true
            }
            (Transform::Datetime { .. }, P::TimestampTz | P::Timestamp | P::Date) => true,
            (Transform::Date { .. }, P::TimestampTz | P::Timestamp | P::Date) => true,
            (
                Transform::Bool { .. },
                P::Bool | P::Int { .. } | P::Text(_) | P::Enum(_) | P::Other,
            ) => true,
            (Transform::String { .. }, P::Array(_)) => false,
            (Transform::String { .. }, _) => true,
            _ => false,
        };
        if !accepts {
            self.push(
                Severity::Error,
                "config.transform_type",
                format!("{key}.transform"),
                format!(
                    "transform `{}` does not accept column {} of type {}",
                    t.name(),
                    c.name,
                    c.type_name
                ),
                "remove the transform or pick one for this type (see deploy/examples/README.md)"
                    .into(),
            );
            return None;
        }
        Some(match t {
            Transform::ValueMap { values, default } => {
                if let (Some(labels), None) = (&labels, default) {
                    let unmapped: Vec<&String> =
                        labels.iter().filter(|l| !values.contains_key(*l)).collect();
                    if !unmapped.is_empty() {
                        self.push(Severity::Error, "config.value_map_incomplete", format!("{key}.transform.values"),
                            format!("enum labels {} of column {} are not in the value_map and there is no default", join(&unmapped), c.name),
                            "add entries for them, or a `default`".into());
                    }
                }
                let mut targets: Vec<String> = values.values().cloned().collect();
                targets.extend(default.iter().cloned());
                Out::Text {
                    max: None,
                    from_transform: false,
                    values: Some(targets),
                }
            }
            Transform::Json => Out::Text {
                max: None,
                from_transform: false,
                values: None,
            },
            Transform::Multipicklist { .. } => Out::Multi {
                values: match &c.class {
                    P::Array(e) => match &**e {
                        P::Enum(oid) => self.catalog.enums.get(oid).cloned(),
                        _ => None,
                    },
                    _ => None,
                },
            },
            Transform::Numeric { precision, scale } => Out::Number {
                bounds: Some((precision.saturating_sub(*scale), *scale)),
                exact: true,
            },
            Transform::Datetime { .. } => Out::DateTime,
            Transform::Date { .. } => Out::Date,
            Transform::Bool { .. } => Out::Bool,
            Transform::String { max_length, .. } => Out::Text {
                max: max_length.map(|n| n as u32),
                from_transform: max_length.is_some(),
                values: None,
            },
        })
    }

    fn check_compat(&mut self, key: &str, c: &PgColumn, out: &Out, f: &SfField, object: &str) {
        let target = format!("{object}.{} ({})", f.name, describe_type(f));
        let source = format!("column {} ({})", c.name, c.type_name);
        let mismatch = |s: &mut Self, fix: &str| {
            s.push(
                Severity::Error,
                "sf.type_mismatch",
                key.to_string(),
                format!("{source} cannot be written to {target}"),
                fix.to_string(),
            )
        };
        match (f.field_type.as_str(), out) {
            (_, Out::Unsupported(_)) => {}
            ("boolean", Out::Bool) => {}
            ("boolean", _) => mismatch(self, "map a boolean column, or add transform = \"bool\""),
            ("int" | "long" | "double" | "currency" | "percent", Out::Number { bounds, exact }) => {
                self.check_precision(key, &source, &target, *bounds, *exact, f)
            }
            ("int" | "long" | "double" | "currency" | "percent", Out::Float) => {
                if f.field_type != "double" {
                    self.push(Severity::Warning, "sf.type_lossy", key.to_string(),
                        format!("{source} is floating point; {target} is exact decimal"),
                        format!("use numeric in Postgres, or add transform = {{ type = \"numeric\", precision = {}, scale = {} }}", f.precision, f.scale));
                }
            }
            ("int" | "long" | "double" | "currency" | "percent", _) => {
                mismatch(self, "map a numeric column, or add a numeric transform")
            }
            ("date", Out::Date) | ("datetime", Out::DateTime) | ("time", Out::Time) => {}
            ("date", Out::DateTime) => self.push(
                Severity::Warning,
                "sf.type_lossy",
                key.to_string(),
                format!("{source} has a time of day; {target} keeps only the date"),
                "add transform = \"date\" (optionally with a timezone)".into(),
            ),
            ("datetime", Out::Date) => self.push(
                Severity::Warning,
                "sf.type_lossy",
                key.to_string(),
                format!("{source} is a date; {target} will get midnight UTC"),
                "add transform = \"datetime\" to make it explicit (optionally with a timezone)"
                    .into(),
            ),
            ("date" | "datetime" | "time", _) => {
                mismatch(self, "map a date/time column of the matching kind")
            }
            ("multipicklist", Out::Multi { values } | Out::Text { values, .. }) => {
                self.check_picklist(key, &source, values.as_deref(), f, object)
            }
            ("picklist", Out::Text { values, .. }) => {
                self.check_picklist(key, &source, values.as_deref(), f, object)
            }
            ("picklist", Out::Multi { .. }) => {
                mismatch(self, "map the array to a multipicklist field")
            }
            (
                "string" | "textarea" | "email" | "phone" | "url" | "encryptedstring" | "combobox",
                o,
            ) => self.check_length(key, &source, &target, o, f),
            ("reference", Out::Text { .. }) => self.push(
                Severity::Warning,
                "sf.reference_field",
                key.to_string(),
                format!("{source} writes {target} directly: it must hold Salesforce record Ids"),
                "use [[lookups]] to reference parents by external id".into(),
            ),
            ("base64", Out::Text { .. }) => {}
            _ => mismatch(
                self,
                "map a column whose type matches the field, or add a transform",
            ),
        }
    }

    fn check_precision(
        &mut self,
        key: &str,
        source: &str,
        target: &str,
        bounds: Option<(u32, u32)>,
        exact: bool,
        f: &SfField,
    ) {
        let (allowed_int, allowed_scale) = match f.field_type.as_str() {
            "int" | "long" => (if f.digits > 0 { f.digits } else { f.precision }, 0),
            _ => (f.precision.saturating_sub(f.scale), f.scale),
        };
        let fix = format!("add transform = {{ type = \"numeric\", precision = {}, scale = {allowed_scale} }} (rounds half up; larger values become errors)", allowed_int + allowed_scale);
        let Some((int_digits, scale)) = bounds else {
            self.push(Severity::Warning, "sf.precision", key.to_string(),
                format!("{source} is unconstrained numeric; {target} allows {allowed_int} integer digits and {allowed_scale} decimals"),
                fix);
            return;
        };
        if int_digits > allowed_int || scale > allowed_scale {
            let by = if exact {
                "the numeric transform allows"
            } else {
                "values can have"
            };
            self.push(Severity::Error, "sf.precision", key.to_string(),
                format!("{by} {int_digits} integer digits and {scale} decimals; {target} allows {allowed_int} and {allowed_scale}: precision would be lost"),
                fix);
        }
    }

    fn check_length(&mut self, key: &str, source: &str, target: &str, out: &Out, f: &SfField) {
        let max = match out {
            Out::Text {
                max,
                from_transform,
                ..
            } => match max {
                Some(n) if *n <= f.length => return,
                Some(n) if *from_transform => {
                    self.push(
                        Severity::Error,
                        "sf.string_too_long",
                        key.to_string(),
                        format!("string max_length {n} exceeds {target}"),
                        format!("set max_length = {}", f.length),
                    );
                    return;
                }
                other => *other,
            },
            Out::Bool | Out::Number { .. } | Out::Float | Out::Date | Out::DateTime | Out::Time => {
                return
            }
            Out::Multi { .. } => None,
            Out::Unsupported(_) => return,
        };
        let size = max.map_or("unbounded".to_string(), |n| format!("up to {n} characters"));
        self.push(Severity::Warning, "sf.string_too_long", key.to_string(),
            format!("{source} is {size}; {target} holds {}: longer values fail with STRING_TOO_LONG", f.length),
            format!("add transform = {{ type = \"string\", max_length = {} }} (add truncate = true to cut)", f.length));
    }

    fn check_picklist(
        &mut self,
        key: &str,
        source: &str,
        values: Option<&[String]>,
        f: &SfField,
        object: &str,
    ) {
        if !f.restricted_picklist {
            return;
        }
        let allowed: BTreeSet<&str> = f.active_values().collect();
        match values {
            None => self.push(Severity::Warning, "sf.picklist_values", key.to_string(),
                format!("{source} is free text but {object}.{} is a restricted picklist: other values fail with INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", f.name),
                format!("add a value_map with a default; allowed: {}", join(&allowed.iter().collect::<Vec<_>>()))),
            Some(vs) => {
                let bad: Vec<&String> = vs.iter().filter(|v| !allowed.contains(v.as_str())).collect();
                if !bad.is_empty() {
                    self.push(Severity::Error, "sf.picklist_values", key.to_string(),
                        format!("values {} are not active values of restricted picklist {object}.{} ({})", join(&bad), f.name, join(&allowed.iter().collect::<Vec<_>>())),
                        "add value_map entries mapping them to allowed values, or add the values to the picklist in Setup".into());
                }
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

fn describe_type(f: &SfField) -> String {
    match f.field_type.as_str() {
        "double" | "currency" | "percent" => {
            format!("{}({},{})", f.field_type, f.precision, f.scale)
        }
        "int" => format!("int({})", f.digits),
        t if f.length > 0 => format!("{t}({})", f.length),
        t => t.to_string(),
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
