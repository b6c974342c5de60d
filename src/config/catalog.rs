//! The Postgres side of validation: tables, columns and types, keys, replica identity,
//! publication membership and enum labels, loaded in a handful of catalog queries.

use std::collections::{BTreeMap, BTreeSet};

use crate::change::ReplicaIdentity;

/// Catalog facts about the mapped tables.
#[derive(Debug, Clone, Default)]
pub struct PgCatalog {
    /// `schema.table` → table.
    pub tables: BTreeMap<String, PgTable>,
    /// Enum type OID → labels in sort order.
    pub enums: BTreeMap<u32, Vec<String>>,
    /// Names of the publications that exist.
    pub publications: BTreeSet<String>,
}

/// One table.
#[derive(Debug, Clone)]
pub struct PgTable {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub columns: Vec<PgColumn>,
    /// Primary key columns (empty without a primary key).
    pub primary_key: Vec<String>,
    pub replica_identity: ReplicaIdentity,
    /// Columns of the replica identity index (`REPLICA IDENTITY USING INDEX`).
    pub replica_identity_index: Vec<String>,
    /// Column sets of unique indexes without a predicate (the primary key included).
    pub unique_keys: Vec<Vec<String>>,
    /// Publications that include the table.
    pub publications: BTreeSet<String>,
}

/// One column.
#[derive(Debug, Clone)]
pub struct PgColumn {
    pub name: String,
    pub type_oid: u32,
    /// `format_type` text, e.g. `numeric(18,2)`, `character varying(40)`.
    pub type_name: String,
    pub typmod: i32,
    pub not_null: bool,
    /// The type's (or domain's base type's) class.
    pub class: PgType,
}

/// What kind of value a column holds, as far as mapping cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgType {
    Bool,
    /// Integer with at most this many decimal digits.
    Int {
        digits: u32,
    },
    /// `(precision, scale)` when declared.
    Numeric(Option<(u32, u32)>),
    Float,
    /// Text with a maximum length in characters, when declared.
    Text(Option<u32>),
    Uuid,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Json,
    Bytea,
    /// Enum type OID.
    Enum(u32),
    Array(Box<PgType>),
    /// Anything else (sent as its text form).
    Other,
}

impl PgType {
    /// Classify a base type by OID and typmod (`enum_oid` when the type is an enum).
    pub fn classify(oid: u32, typmod: i32, is_enum: bool) -> PgType {
        if is_enum {
            return PgType::Enum(oid);
        }
        match oid {
            16 => PgType::Bool,
            21 => PgType::Int { digits: 5 },
            23 => PgType::Int { digits: 10 },
            20 => PgType::Int { digits: 19 },
            1700 if typmod >= 4 => {
                let m = typmod - 4;
                PgType::Numeric(Some((((m >> 16) & 0xffff) as u32, (m & 0x7ff) as u32)))
            }
            1700 => PgType::Numeric(None),
            700 | 701 => PgType::Float,
            1043 | 1042 if typmod >= 4 => PgType::Text(Some((typmod - 4) as u32)),
            25 | 1043 | 1042 | 19 => PgType::Text(None),
            2950 => PgType::Uuid,
            1082 => PgType::Date,
            1083 => PgType::Time,
            1266 => PgType::TimeTz,
            1114 => PgType::Timestamp,
            1184 => PgType::TimestampTz,
            1186 => PgType::Interval,
            114 | 3802 => PgType::Json,
            17 => PgType::Bytea,
            _ => PgType::Other,
        }
    }
}

impl PgTable {
    /// `schema.table`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&PgColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The columns the old row of UPDATE/DELETE carries; `None` means all (FULL).
    pub fn identity_columns(&self) -> Option<Vec<String>> {
        match self.replica_identity {
            ReplicaIdentity::Full => None,
            ReplicaIdentity::Default => Some(self.primary_key.clone()),
            ReplicaIdentity::Index => Some(self.replica_identity_index.clone()),
            ReplicaIdentity::Nothing => Some(vec![]),
        }
    }

    /// Whether `column` alone is unique (primary key or a unique index on it alone).
    pub fn is_unique(&self, column: &str) -> bool {
        self.unique_keys
            .iter()
            .any(|k| k.len() == 1 && k[0] == column)
    }
}

/// Catalog queries failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the Postgres catalog: {0}")]
pub struct CatalogError(#[from] pub tokio_postgres::Error);

const TABLES_SQL: &str = "\
    SELECT c.oid, n.nspname::text, c.relname::text, c.relreplident::text \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r', 'p') AND (n.nspname || '.' || c.relname) = ANY($1)";

const COLUMNS_SQL: &str = "\
    SELECT a.attrelid, a.attname::text, a.atttypid, a.atttypmod, \
           format_type(a.atttypid, a.atttypmod), a.attnotnull, \
           coalesce(nullif(t.typbasetype, 0), t.oid) AS base_oid, \
           CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS base_typmod, \
           b.typtype::text AS base_typtype, b.typelem, \
           coalesce(e.typtype::text, '') AS elem_typtype, b.typcategory::text \
    FROM pg_attribute a \
    JOIN pg_type t ON t.oid = a.atttypid \
    JOIN pg_type b ON b.oid = coalesce(nullif(t.typbasetype, 0), t.oid) \
    LEFT JOIN pg_type e ON e.oid = b.typelem \
    WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
    ORDER BY a.attrelid, a.attnum";

const INDEXES_SQL: &str = "\
    SELECT i.indrelid, i.indisprimary, i.indisunique, i.indisreplident, i.indpred IS NULL, \
           ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) \
    FROM pg_index i WHERE i.indrelid = ANY($1) AND i.indexprs IS NULL";

const PUBLICATION_TABLES_SQL: &str = "\
    SELECT pubname::text, schemaname::text || '.' || tablename::text FROM pg_publication_tables \
    WHERE (schemaname || '.' || tablename) = ANY($1)";

impl PgCatalog {
    /// Load the facts about `tables` (`schema.table`; a bare name means `public`). Tables
    /// that do not exist are simply absent.
    pub async fn load(
        client: &tokio_postgres::Client,
        tables: &[String],
    ) -> Result<PgCatalog, CatalogError> {
        let names: Vec<String> = tables
            .iter()
            .map(|t| match crate::config::split_table(t) {
                Some((s, n)) => format!("{s}.{n}"),
                None => t.clone(),
            })
            .collect();
        let mut cat = PgCatalog::default();
        let mut by_oid: BTreeMap<u32, PgTable> = BTreeMap::new();
        for r in client.query(TABLES_SQL, &[&names]).await? {
            let t = PgTable {
                oid: r.get(0),
                schema: r.get(1),
                name: r.get(2),
                columns: vec![],
                primary_key: vec![],
                replica_identity: identity(r.get::<_, String>(3).as_str()),
                replica_identity_index: vec![],
                unique_keys: vec![],
                publications: BTreeSet::new(),
            };
            by_oid.insert(t.oid, t);
        }
        let oids: Vec<u32> = by_oid.keys().copied().collect();
        load_columns(client, &oids, &mut by_oid).await?;
        load_indexes(client, &oids, &mut by_oid).await?;
        for t in by_oid.into_values() {
            cat.tables.insert(t.qualified_name(), t);
        }
        for r in client.query(PUBLICATION_TABLES_SQL, &[&names]).await? {
            if let Some(t) = cat.tables.get_mut(&r.get::<_, String>(1)) {
                t.publications.insert(r.get(0));
            }
        }
        for r in client
            .query("SELECT pubname::text FROM pg_publication", &[])
            .await?
        {
            cat.publications.insert(r.get(0));
        }
        let enum_sql =
            "SELECT enumtypid, enumlabel::text FROM pg_enum ORDER BY enumtypid, enumsortorder";
        for r in client.query(enum_sql, &[]).await? {
            cat.enums.entry(r.get(0)).or_default().push(r.get(1));
        }
        Ok(cat)
    }
}

async fn load_columns(
    client: &tokio_postgres::Client,
    oids: &[u32],
    by_oid: &mut BTreeMap<u32, PgTable>,
) -> Result<(), CatalogError> {
    for r in client.query(COLUMNS_SQL, &[&oids]).await? {
        let (base, base_typmod): (u32, i32) = (r.get(6), r.get(7));
        let base_typtype: String = r.get(8);
        let category: String = r.get(11);
        let class = if category == "A" {
            let elem: u32 = r.get(9);
            let elem_is_enum = r.get::<_, String>(10) == "e";
            PgType::Array(Box::new(PgType::classify(elem, -1, elem_is_enum)))
        } else {
            PgType::classify(base, base_typmod, base_typtype == "e")
        };
        let col = PgColumn {
            name: r.get(1),
            type_oid: r.get(2),
            typmod: r.get(3),
            type_name: r.get(4),
            not_null: r.get(5),
            class,
        };
        if let Some(t) = by_oid.get_mut(&r.get(0)) {
            t.columns.push(col);
        }
    }
    Ok(())
}

async fn load_indexes(
    client: &tokio_postgres::Client,
    oids: &[u32],
    by_oid: &mut BTreeMap<u32, PgTable>,
) -> Result<(), CatalogError> {
    for r in client.query(INDEXES_SQL, &[&oids]).await? {
        let Some(t) = by_oid.get_mut(&r.get(0)) else {
            continue;
        };
        let (primary, unique, replident, no_pred): (bool, bool, bool, bool) =
            (r.get(1), r.get(2), r.get(3), r.get(4));
        let cols: Vec<String> = r.get(5);
        if primary {
            t.primary_key = cols.clone();
        }
        if replident {
            t.replica_identity_index = cols.clone();
        }
        if unique && no_pred {
            t.unique_keys.push(cols);
        }
    }
    Ok(())
}

fn identity(code: &str) -> ReplicaIdentity {
    match code {
        "n" => ReplicaIdentity::Nothing,
        "f" => ReplicaIdentity::Full,
        "i" => ReplicaIdentity::Index,
        _ => ReplicaIdentity::Default,
    }
}
