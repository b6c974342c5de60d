//! `pgforce schema`: the target tables an inbound entry needs, from the object's describe
//! (Salesforce type → Postgres type), and the differences from a table that exists: the
//! statements that create the table or add its missing columns, and notes on columns
//! whose type differs (never changed automatically: that may lose data).

use std::collections::BTreeMap;

use tokio_postgres::GenericClient;

use crate::checkpoint::quote_ident;
use crate::config::inbound::{
    InboundConfig, InboundDelete, InboundMode, InboundTransform, AUDIT_COLUMNS,
};
use crate::salesforce::rest::{FieldDescribe, FieldType, SObjectDescribe};

/// What `pgforce schema` found for one entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// `schema.table`.
    pub table: String,
    /// SQL to run (empty when the table is as needed).
    pub statements: Vec<String>,
    /// Differences that are reported, not changed.
    pub notes: Vec<String>,
}

/// The Postgres type for a Salesforce field.
pub fn pg_type(field: &FieldDescribe) -> String {
    match &field.field_type {
        FieldType::Boolean => "boolean".into(),
        FieldType::Int => "integer".into(),
        FieldType::Long => "bigint".into(),
        FieldType::Double | FieldType::Currency | FieldType::Percent => {
            if field.precision > 0 {
                format!("numeric({},{})", field.precision, field.scale)
            } else {
                "numeric".into()
            }
        }
        FieldType::Date => "date".into(),
        FieldType::Datetime => "timestamp with time zone".into(),
        FieldType::Time => "time without time zone".into(),
        FieldType::Multipicklist => "text[]".into(),
        FieldType::Address | FieldType::Location | FieldType::Json | FieldType::ComplexValue => {
            "jsonb".into()
        }
        _ => "text".into(),
    }
}

/// The columns (name, type) an entry needs, in table order; relationship fields and
/// fields missing from the describe are text.
pub fn desired_columns(entry: &InboundConfig, describe: &SObjectDescribe) -> Vec<(String, String)> {
    match entry.mode {
        InboundMode::Audit => AUDIT_COLUMNS
            .iter()
            .map(|(c, t)| (c.to_string(), t.to_string()))
            .collect(),
        InboundMode::Mirror => {
            let mut cols = vec![
                (
                    entry.key_column.clone(),
                    "text NOT NULL PRIMARY KEY".to_string(),
                ),
                (
                    entry.modstamp_column.clone(),
                    "timestamp with time zone".to_string(),
                ),
            ];
            if let InboundDelete::DeletedAt(c) = &entry.delete {
                cols.push((c.clone(), "timestamp with time zone".into()));
            }
            for (field, spec) in &entry.fields {
                if cols.iter().any(|(c, _)| c == &spec.column) {
                    continue;
                }
                let ty = match (&spec.transform, describe.field(field)) {
                    (Some(InboundTransform::Json), _) => "jsonb".to_string(),
                    (Some(InboundTransform::Multipicklist), _) => "text[]".to_string(),
                    (Some(InboundTransform::Text | InboundTransform::ValueMap { .. }), _) => {
                        "text".to_string()
                    }
                    (None, Some(f)) => pg_type(f),
                    (None, None) => "text".to_string(),
                };
                cols.push((spec.column.clone(), ty));
            }
            cols
        }
    }
}

/// The columns of an existing table: name → `format_type`; `None` when it does not exist.
pub async fn existing_columns(
    client: &impl GenericClient,
    entry: &InboundConfig,
) -> Result<Option<BTreeMap<String, String>>, tokio_postgres::Error> {
    let qt = entry.qualified_table();
    let (schema, table) = qt.split_once('.').unwrap_or(("public", qt.as_str()));
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&schema, &table],
        )
        .await?;
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema, &table],
        )
        .await?
        .is_some();
    Ok(exists.then(|| rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
}

/// The statements and notes that bring the entry's table to what it needs.
pub fn plan(
    entry: &InboundConfig,
    describe: &SObjectDescribe,
    existing: Option<&BTreeMap<String, String>>,
) -> Plan {
    let qt = entry.qualified_table();
    let (schema, table) = qt.split_once('.').unwrap_or(("public", qt.as_str()));
    let quoted = format!("{}.{}", quote_ident(schema), quote_ident(table));
    let desired = desired_columns(entry, describe);
    let mut plan = Plan {
        table: qt.clone(),
        ..Plan::default()
    };
    match existing {
        None => {
            let cols: Vec<String> = desired
                .iter()
                .map(|(c, t)| format!("    {} {t}", quote_ident(c)))
                .collect();
            plan.statements.push(format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote_ident(schema)
            ));
            plan.statements
                .push(format!("CREATE TABLE {quoted} (\n{}\n)", cols.join(",\n")));
            if entry.mode == InboundMode::Audit {
                plan.statements.push(audit_index(&quoted, table));
            }
        }
        Some(have) => {
            for (c, t) in &desired {
                let base = base_type(t);
                match have.get(c) {
                    None => plan.statements.push(format!(
                        "ALTER TABLE {quoted} ADD COLUMN {} {}",
                        quote_ident(c),
                        add_column_type(t)
                    )),
                    Some(found) if !same_type(found, &base) => plan.notes.push(format!(
                        "{qt}.{c} is {found}; {} expects {base} (left as is)",
                        entry.object
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    plan
}

fn audit_index(quoted: &str, table: &str) -> String {
    format!(
        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {quoted} (object, record_id, position)",
        quote_ident(&format!("{table}_event_key"))
    )
}

/// The type without constraints (`text NOT NULL PRIMARY KEY` → `text`).
fn base_type(t: &str) -> String {
    let lower = t.to_ascii_lowercase();
    let cut = [" not null", " primary key", " default", " unique"]
        .iter()
        .filter_map(|k| lower.find(k))
        .min()
        .unwrap_or(lower.len());
    let base = t[..cut].trim().to_string();
    match base.as_str() {
        "bigserial" => "bigint".into(),
        "timestamptz" => "timestamp with time zone".into(),
        _ => base,
    }
}

/// What `ADD COLUMN` may declare on a table with rows: no NOT NULL without a default,
/// no second primary key.
fn add_column_type(t: &str) -> String {
    let base = base_type(t);
    if t.to_ascii_lowercase().contains("default") {
        t.replace("PRIMARY KEY", "").trim().to_string()
    } else {
        base
    }
}

fn same_type(found: &str, want: &str) -> bool {
    let norm = |s: &str| s.replace(' ', "").to_ascii_lowercase();
    let (f, w) = (norm(found), norm(want));
    f == w || (w == "numeric" && f.starts_with("numeric"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::inbound::InboundField;

    fn describe() -> SObjectDescribe {
        serde_json::from_value(serde_json::json!({
            "name": "Opportunity",
            "fields": [
                {"name": "Id", "type": "id"},
                {"name": "Amount", "type": "currency", "precision": 18, "scale": 2},
                {"name": "CloseDate", "type": "date"},
                {"name": "IsWon", "type": "boolean"},
                {"name": "Tags__c", "type": "multipicklist"},
                {"name": "SystemModstamp", "type": "datetime"}
            ]
        }))
        .unwrap()
    }

    fn entry(mode: InboundMode) -> InboundConfig {
        let mut fields = BTreeMap::new();
        for (f, c) in [
            ("Amount", "amount"),
            ("CloseDate", "close_date"),
            ("IsWon", "is_won"),
            ("Tags__c", "tags"),
            ("Account.Name", "account_name"),
        ] {
            fields.insert(
                f.to_string(),
                InboundField {
                    column: c.into(),
                    transform: None,
                },
            );
        }
        let text = format!(
            "object = \"Opportunity\"\ntable = \"sf.opportunities\"\nmode = \"{}\"",
            mode.as_str()
        );
        let mut e: InboundConfig = toml::from_str(&text).unwrap();
        if mode == InboundMode::Mirror {
            e.fields = fields;
        }
        e
    }

    #[test]
    fn a_missing_table_is_created_with_typed_columns() {
        let p = plan(&entry(InboundMode::Mirror), &describe(), None);
        let create = &p.statements[1];
        assert!(
            create.contains("\"id\" text NOT NULL PRIMARY KEY"),
            "{create}"
        );
        assert!(create.contains("\"amount\" numeric(18,2)"), "{create}");
        assert!(create.contains("\"close_date\" date"), "{create}");
        assert!(create.contains("\"is_won\" boolean"), "{create}");
        assert!(create.contains("\"tags\" text[]"), "{create}");
        assert!(create.contains("\"account_name\" text"), "{create}");
        assert!(
            create.contains("\"system_modstamp\" timestamp with time zone"),
            "{create}"
        );
    }

    #[test]
    fn an_existing_table_gets_missing_columns_and_notes() {
        let have: BTreeMap<String, String> = [
            ("id", "text"),
            ("system_modstamp", "timestamp with time zone"),
            ("amount", "double precision"),
            ("close_date", "date"),
            ("is_won", "boolean"),
            ("tags", "text[]"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let p = plan(&entry(InboundMode::Mirror), &describe(), Some(&have));
        assert_eq!(
            p.statements,
            vec![
                "ALTER TABLE \"sf\".\"opportunities\" ADD COLUMN \"account_name\" text".to_string()
            ]
        );
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        assert!(p.notes[0].contains("amount is double precision"));
    }

    #[test]
    fn audit_tables_have_the_fixed_columns_and_a_unique_event_key() {
        let p = plan(&entry(InboundMode::Audit), &describe(), None);
        assert!(p.statements[1].contains("\"values\" jsonb NOT NULL"));
        assert!(p.statements[2].contains("UNIQUE INDEX"));
    }
}
