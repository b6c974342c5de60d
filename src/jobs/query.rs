//! The read-only query runner: a job's SQL runs in a `READ ONLY` transaction with the job's
//! `statement_timeout`, its parameters passed as text (cast them in the query: `$1::int`).
//!
//! Rows come back as JSON objects built by Postgres itself (`to_jsonb` of each row), so
//! numerics keep every digit, dates are `yyyy-mm-dd` and timestamps ISO 8601 — the forms
//! Salesforce takes — and each row's hash (`md5` of its canonical `jsonb` text) is computed
//! by the same server that produced the values, which makes it stable across runs.

use serde_json::{Map, Value};
use tokio_postgres::types::{Kind, ToSql, Type};
use tokio_postgres::Client;

use super::error::JobError;
use crate::config::catalog::PgType;
use crate::config::jobs::JobConfig;

/// One result row: its values by column, and the hash of all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// Column → value, as `to_jsonb` renders it.
    pub values: Map<String, Value>,
    /// `md5` of the row's canonical `jsonb` text.
    pub hash: String,
}

/// The job's query wrapped so every row comes back as (json text, hash).
fn wrapped(query: &str) -> String {
    format!(
        "SELECT j::text, md5(j::text) FROM (SELECT to_jsonb(q) AS j FROM ({}) q) r",
        trimmed(query)
    )
}

/// The query without trailing `;` and whitespace (it is used as a subquery).
fn trimmed(query: &str) -> &str {
    query.trim().trim_end_matches(';').trim_end()
}

/// Run `job`'s query with `params` (text) in a read-only transaction with the job's
/// statement timeout; every row, in the query's order.
pub async fn run_query(
    client: &mut Client,
    job: &JobConfig,
    params: &[Option<String>],
) -> Result<Vec<ResultRow>, JobError> {
    let err = |source: tokio_postgres::Error| query_error(job, source);
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(err)?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        job.statement_timeout_ms
    ))
    .await
    .map_err(err)?;
    let types = vec![Type::TEXT; params.len()];
    let stmt = tx
        .prepare_typed(&wrapped(&job.query), &types)
        .await
        .map_err(err)?;
    let args: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    let rows = tx.query(&stmt, &args).await.map_err(err)?;
    tx.commit().await.map_err(err)?;
    rows.iter().map(|r| parse_row(job, r)).collect()
}

/// The query's result columns and their types, without running it.
pub async fn columns(
    client: &Client,
    job: &JobConfig,
    params: usize,
) -> Result<Vec<(String, PgType)>, JobError> {
    let types = vec![Type::TEXT; params];
    let stmt = client
        .prepare_typed(trimmed(&job.query), &types)
        .await
        .map_err(|source| query_error(job, source))?;
    Ok(stmt
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), classify(c.type_())))
        .collect())
}

/// A result column's type class (no typmod: the declared length and scale are unknown).
fn classify(t: &Type) -> PgType {
    match t.kind() {
        Kind::Enum(_) => PgType::Enum(t.oid()),
        Kind::Array(inner) => PgType::Array(Box::new(classify(inner))),
        Kind::Domain(base) => classify(base),
        _ => PgType::classify(t.oid(), -1, false),
    }
}

fn parse_row(job: &JobConfig, row: &tokio_postgres::Row) -> Result<ResultRow, JobError> {
    let bad = |message: String| JobError::BadResult {
        job: job.name.clone(),
        message,
    };
    let text: Option<String> = row.try_get(0).map_err(|e| bad(e.to_string()))?;
    let hash: Option<String> = row.try_get(1).map_err(|e| bad(e.to_string()))?;
    let (Some(text), Some(hash)) = (text, hash) else {
        return Err(bad("the query returned a NULL row".into()));
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(values)) => Ok(ResultRow { values, hash }),
        Ok(_) | Err(_) => Err(bad("a result row is not a record".into())),
    }
}

/// A query failure, with Postgres's own message (and SQLSTATE) so the user can fix it.
fn query_error(job: &JobConfig, source: tokio_postgres::Error) -> JobError {
    let message = match source.as_db_error() {
        Some(db) if db.code().code() == "57014" => format!(
            "{} ({}): it ran longer than statement_timeout_ms = {}",
            db.message(),
            db.code().code(),
            job.statement_timeout_ms
        ),
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => source.to_string(),
    };
    JobError::Query {
        job: job.name.clone(),
        message,
        source,
    }
}

/// A value as record-key text: strings as they are, numbers in their digits; `None` for
/// NULL, empty and structured values.
pub fn key_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_wrapped_as_a_subquery() {
        let w = wrapped("SELECT 1 AS a;  \n");
        assert!(w.contains("FROM (SELECT 1 AS a) q"), "{w}");
    }

    #[test]
    fn keys_are_text() {
        assert_eq!(key_text(Some(&Value::from("001"))), Some("001".into()));
        assert_eq!(key_text(Some(&serde_json::json!(42))), Some("42".into()));
        assert_eq!(key_text(Some(&Value::Null)), None);
        assert_eq!(key_text(Some(&Value::from(""))), None);
        assert_eq!(key_text(None), None);
    }
}
