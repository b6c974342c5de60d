//! The emulator's SOQL engine: a pure parser and evaluator, no HTTP.
//!
//! [`parse`] turns SOQL text into a [`Query`]; [`execute`] resolves it against a [`Catalog`]
//! and runs it over a [`RecordSource`], returning records in REST shape; [`flatten`] turns a
//! result record into Bulk CSV cells. Errors are [`SoqlError`]s carrying Salesforce's
//! `errorCode` and message text.
//!
//! # Supported SOQL
//! - `SELECT` fields, parent paths up to five relationships (`Account.Owner.Name`),
//!   `COUNT()`, `COUNT(field) [alias]`, `FIELDS(ALL|STANDARD|CUSTOM)`; names ignore case,
//!   results use canonical names.
//! - `FROM` one object; `WHERE` with `AND`/`OR` (not mixed without parentheses, as in
//!   Salesforce), `NOT`, parentheses, `= != <> < <= > >= LIKE IN NOT IN INCLUDES EXCLUDES`,
//!   semi-joins `Id IN (SELECT …)`; literals: strings with backslash escapes, numbers,
//!   `TRUE/FALSE/NULL`, unquoted dates and datetimes, and relative date literals.
//! - `ORDER BY` keys with `ASC/DESC` and `NULLS FIRST/LAST`, `LIMIT`, `OFFSET` (≤ 2,000), and
//!   a tolerated trailing `FOR VIEW|REFERENCE|UPDATE` / `ALL ROWS`.
//!
//! # Semantics chosen from Salesforce's documentation
//! - Nulls sort first by default in both directions ("By default, null values are sorted
//!   first", SOQL ORDER BY reference); `NULLS LAST` overrides.
//! - Text comparison and ordering ignore case (uppercase code points, the English-locale
//!   rule); `!=` and `NOT IN` match null values, ordering operators never do.
//! - A date value only compares with date fields and a datetime only with datetime fields;
//!   anything else is `INVALID_FIELD` "value of filter criterion for field 'X' must be of type
//!   date…". Date literals (`TODAY`, `LAST_N_DAYS:n`, …) compare with both: `=` means inside
//!   the range, `<` before its start, `>` at or after its end. Ranges are computed in UTC with
//!   weeks starting Sunday and the fiscal year equal to the calendar year.
//! - Time fields compare as text (their wire form `13:15:00.000Z` orders correctly); ids compare
//!   ignoring case when 18 chars long and exactly on the first 15 chars when 15 chars long.
//! - Errors carry Salesforce's position prefix (`ERROR at Row:1:Column:N`); the echoed text is
//!   the whole line holding the error, where Salesforce echoes a window of it.
//!
//! # Seams
//! [`Catalog::object`] must match object names ignoring case and returns an `Arc` so lookups
//! stay cheap; field and relationship names are matched here. [`RecordSource::get`] serves
//! parent paths.
//!
//! # Performance
//! The WHERE clause is compiled once against the catalog; the scan evaluates it on borrowed
//! records and clones only the selected fields of matches. Without ORDER BY the scan stops at
//! OFFSET + LIMIT; with ORDER BY and LIMIT a bounded heap keeps only OFFSET + LIMIT rows.
//! Parent records are fetched once per id and cached for the query.

mod aggregate;
mod ast;
mod error;
mod eval;
mod exec;
mod lexer;
mod literals;
mod parser;
#[cfg(test)]
mod parser_tests;
mod plan;
mod schema;
mod where_clause;

pub use ast::Query;
pub use error::{
    SoqlError, INVALID_FIELD, INVALID_QUERY_FILTER_OPERATOR, INVALID_TYPE, MALFORMED_QUERY,
    NUMBER_OUTSIDE_VALID_RANGE,
};
pub use exec::{count_rows, execute, visit_matches, ExecOptions, QueryOutput};
pub use schema::{Catalog, FieldInfo, FieldKind, Fields, ObjectInfo, Record, RecordSource};

/// Parses SOQL text. Never panics; malformed text is `MALFORMED_QUERY` with Salesforce's
/// `unexpected token: 'X'` message, and an OFFSET over 2,000 is `NUMBER_OUTSIDE_VALID_RANGE`.
pub fn parse(soql: &str) -> Result<Query, SoqlError> {
    parser::parse_query(soql)
}

/// Flattens a REST-shaped result record into one cell per column (for Bulk query CSV).
///
/// A column such as `Account.Owner.Name` walks nested objects; a missing or null value, or a
/// null parent on the way, gives `None`.
pub fn flatten(record: &Record, columns: &[String]) -> Vec<Option<serde_json::Value>> {
    columns.iter().map(|c| cell(record, c)).collect()
}

/// The value at dotted `path` in `record`, if present and not null.
fn cell(record: &Record, path: &str) -> Option<serde_json::Value> {
    let mut parts = path.split('.');
    let last = parts.next_back()?;
    let mut current = record;
    for part in parts {
        current = current.get(part)?.as_object()?;
    }
    current.get(last).filter(|v| !v.is_null()).cloned()
}
