//! Type compatibility: what a column's values become after their transform (or the
//! default conversion), and whether that fits the Salesforce field it is mapped to (type,
//! precision, length, picklist values).

use std::collections::BTreeSet;

use super::{Ctx, Severity};
use crate::config::catalog::{PgColumn, PgType};
use crate::config::describe::SfField;
use crate::config::model::*;

/// What a column becomes after its transform (or default conversion).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Out {
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
    /// What the column's values become, with a diagnostic for impossible transforms.
    pub(super) fn output(&mut self, key: &str, c: &PgColumn, t: Option<&Transform>) -> Out {
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

    pub(super) fn check_compat(
        &mut self,
        key: &str,
        c: &PgColumn,
        out: &Out,
        f: &SfField,
        object: &str,
    ) {
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
