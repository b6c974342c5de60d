//! How one table is copied: its columns, key, publication filter, and the COPY query
//! that resumes after a saved key.

use std::sync::Arc;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio_postgres::Transaction;

use super::BackfillColumn;
use crate::change::Row;
use crate::pgoutput::types::TypeRegistry;
use crate::pgoutput::value::Value;
use crate::replication::copy_text::TextRow;
use crate::replication::error::{ReplicationError, Result};
use crate::replication::table::TableRef;
use crate::replication::types::load_types;

/// Everything needed to copy one table.
#[derive(Debug)]
pub(super) struct TablePlan {
    pub(super) table: TableRef,
    pub(super) columns: Arc<Vec<BackfillColumn>>,
    /// Key columns: name and SQL type, in key order.
    pub(super) key: Vec<(String, String)>,
    /// Position of each key column in the selected fields.
    pub(super) key_positions: Vec<usize>,
    /// Key columns selected only to track progress (after `columns`).
    pub(super) extra_fields: Vec<String>,
    pub(super) row_filter: Option<String>,
    pub(super) estimated_total: Option<u64>,
    /// The database's enums and domains, so values type as the stream types them.
    pub(super) types: Arc<TypeRegistry>,
}

impl TablePlan {
    pub(super) async fn describe(
        tx: &Transaction<'_>,
        table: &TableRef,
        version: u32,
        publication: Option<&str>,
    ) -> Result<TablePlan> {
        let q = |what: &str| ReplicationError::query(format!("reading {what} of {table}"));
        let regclass = table.quoted();
        let rows = tx
            .query(
                "SELECT a.attname::text, a.atttypid FROM pg_attribute a
                  WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
                    AND a.attgenerated = '' ORDER BY a.attnum",
                &[&regclass],
            )
            .await
            .map_err(q("columns"))?;
        let mut columns: Vec<BackfillColumn> = rows
            .iter()
            .map(|r| BackfillColumn {
                name: r.get(0),
                type_oid: r.get(1),
            })
            .collect();
        if columns.is_empty() {
            return Err(crate::replication::error::PreflightError::TableNotFound {
                table: table.to_string(),
            }
            .into());
        }
        let key = key_columns(tx, &regclass).await.map_err(q("key columns"))?;
        let (column_list, row_filter) = match publication {
            Some(p) if version >= 150000 => publication_filter(tx, p, table)
                .await
                .map_err(q("publication filter"))?,
            _ => (None, None),
        };
        if let Some(list) = column_list {
            columns.retain(|c| list.contains(&c.name));
        }
        let extra_fields: Vec<String> = key
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !columns.iter().any(|c| &c.name == k))
            .collect();
        let key_positions = key
            .iter()
            .map(|(k, _)| {
                columns
                    .iter()
                    .position(|c| &c.name == k)
                    .or_else(|| {
                        extra_fields
                            .iter()
                            .position(|e| e == k)
                            .map(|p| columns.len() + p)
                    })
                    .unwrap_or(0)
            })
            .collect();
        let estimated_total = tx
            .query_one(
                "SELECT reltuples::float8 FROM pg_class WHERE oid = to_regclass($1)",
                &[&regclass],
            )
            .await
            .map_err(q("size estimate"))?
            .get::<_, f64>(0);
        Ok(TablePlan {
            table: table.clone(),
            columns: Arc::new(columns),
            key,
            key_positions,
            extra_fields,
            row_filter,
            estimated_total: (estimated_total >= 0.0).then_some(estimated_total as u64),
            types: Arc::new(load_types(tx).await?),
        })
    }

    /// `COPY (SELECT ... WHERE key > last ORDER BY key) TO STDOUT`.
    pub(super) fn copy_query(&self, after: Option<&[String]>) -> String {
        let fields: Vec<String> = self
            .columns
            .iter()
            .map(|c| escape_identifier(&c.name))
            .chain(self.extra_fields.iter().map(|e| escape_identifier(e)))
            .collect();
        let key_list = self
            .key
            .iter()
            .map(|(k, _)| escape_identifier(k))
            .collect::<Vec<_>>()
            .join(", ");
        let mut conditions = Vec::new();
        if let Some(filter) = &self.row_filter {
            conditions.push(format!("({filter})"));
        }
        if let Some(last) = after.filter(|l| l.len() == self.key.len() && !l.is_empty()) {
            let values: Vec<String> = last
                .iter()
                .zip(&self.key)
                .map(|(v, (_, ty))| format!("{}::{ty}", escape_literal(v)))
                .collect();
            conditions.push(format!("({key_list}) > ({})", values.join(", ")));
        }
        let mut sql = format!(
            "COPY (SELECT {} FROM {}",
            fields.join(", "),
            self.table.quoted()
        );
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        if !self.key.is_empty() {
            sql.push_str(&format!(" ORDER BY {key_list}"));
        }
        sql.push_str(") TO STDOUT");
        sql
    }

    /// Turn a COPY text row into typed values (dropping extra key fields).
    pub(super) fn typed_row(&self, fields: &TextRow) -> Result<Row> {
        if fields.len() != self.columns.len() + self.extra_fields.len() {
            return Err(self.error(format!(
                "COPY row has {} fields, expected {}",
                fields.len(),
                self.columns.len() + self.extra_fields.len()
            )));
        }
        self.columns
            .iter()
            .zip(fields)
            .map(|(col, field)| match field {
                None => Ok(Value::Null),
                Some(text) => self
                    .types
                    .parse_text(col.type_oid, text)
                    .map_err(|e| self.error(e.to_string())),
            })
            .collect()
    }

    /// The key of a COPY text row, as text.
    pub(super) fn key_of(&self, fields: &TextRow) -> Option<Vec<String>> {
        if self.key.is_empty() {
            return None;
        }
        self.key_positions
            .iter()
            .map(|&p| fields.get(p).cloned().flatten())
            .collect()
    }

    pub(super) fn error(&self, reason: String) -> ReplicationError {
        ReplicationError::Backfill {
            table: self.table.to_string(),
            reason,
        }
    }
}

/// Primary key columns, else the replica identity index columns, with their SQL types.
async fn key_columns(
    tx: &Transaction<'_>,
    regclass: &str,
) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
               FROM (SELECT i.indkey, i.indrelid FROM pg_index i
                      WHERE i.indrelid = to_regclass($1) AND (i.indisprimary OR i.indisreplident)
                      ORDER BY i.indisprimary DESC LIMIT 1) i
               CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              ORDER BY k.ord",
            &[&regclass],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The publication's column list and row filter for `table` (PostgreSQL 15+).
async fn publication_filter(
    tx: &Transaction<'_>,
    publication: &str,
    table: &TableRef,
) -> Result<(Option<Vec<String>>, Option<String>), tokio_postgres::Error> {
    let row = tx
        .query_opt(
            "SELECT attnames::text[], rowfilter FROM pg_publication_tables
              WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
            &[&publication, &table.schema, &table.name],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))).unwrap_or((None, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(key: &[(&str, &str)], extra: &[&str]) -> TablePlan {
        TablePlan {
            table: TableRef::new("public", "t"),
            columns: Arc::new(vec![
                BackfillColumn {
                    name: "id".into(),
                    type_oid: 23,
                },
                BackfillColumn {
                    name: "name".into(),
                    type_oid: 25,
                },
            ]),
            key: key
                .iter()
                .map(|(k, t)| (k.to_string(), t.to_string()))
                .collect(),
            key_positions: vec![0; key.len()],
            extra_fields: extra.iter().map(|s| s.to_string()).collect(),
            row_filter: None,
            estimated_total: None,
            types: Arc::new(TypeRegistry::new()),
        }
    }

    #[test]
    fn copy_query_resumes_after_the_last_key() {
        let p = plan(&[("id", "integer")], &[]);
        assert_eq!(
            p.copy_query(None),
            "COPY (SELECT \"id\", \"name\" FROM \"public\".\"t\" ORDER BY \"id\") TO STDOUT"
        );
        assert_eq!(
            p.copy_query(Some(&["4".into()])),
            "COPY (SELECT \"id\", \"name\" FROM \"public\".\"t\" WHERE (\"id\") > ('4'::integer) ORDER BY \"id\") TO STDOUT"
        );
    }

    #[test]
    fn copy_query_with_filter_extra_key_and_no_key() {
        let mut p = plan(&[("a", "text"), ("b", "integer")], &["b"]);
        p.row_filter = Some("id > 3".into());
        assert_eq!(
            p.copy_query(Some(&["x'y".into(), "2".into()])),
            "COPY (SELECT \"id\", \"name\", \"b\" FROM \"public\".\"t\" WHERE (id > 3) AND (\"a\", \"b\") > ('x''y'::text, '2'::integer) ORDER BY \"a\", \"b\") TO STDOUT"
        );
        let p = plan(&[], &[]);
        assert_eq!(
            p.copy_query(Some(&["1".into()])),
            "COPY (SELECT \"id\", \"name\" FROM \"public\".\"t\") TO STDOUT"
        );
    }

    #[test]
    fn typed_rows_check_field_count() {
        let p = plan(&[("id", "integer")], &[]);
        assert!(p.typed_row(&vec![Some("1".into())]).is_err());
        let row = p.typed_row(&vec![Some("1".into()), None]).unwrap();
        assert_eq!(row[1], Value::Null);
    }
}
