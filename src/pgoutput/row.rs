//! Tuple data + the relation's column types → a typed [`Row`].
//!
//! A column whose text does not parse as its type is a [`RowError::Value`] naming the
//! relation, column and type: we surface it rather than fall back to `Value::Other`,
//! because a silently mistyped value would reach Salesforce as wrong data, and the caller
//! can always decide to dead-letter or stop. Unknown types never fail: they are
//! `Value::Other` by design.

use super::messages::{ColumnData, TupleData};
use super::types::TypeRegistry;
use super::value::{Value, ValueError};
use crate::change::{Relation, Row};

/// A tuple that does not fit its relation, or a column value that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowError {
    #[error("relation {relation} has {expected} columns but the tuple has {got}: the relation cache is stale or the stream is corrupt")]
    ColumnCount {
        relation: String,
        expected: usize,
        got: usize,
    },
    #[error("column {relation}.{column} (type oid {type_oid}) is not valid UTF-8")]
    BadUtf8 {
        relation: String,
        column: String,
        type_oid: u32,
    },
    #[error("column {relation}.{column}: {source}")]
    Value {
        relation: String,
        column: String,
        type_oid: u32,
        #[source]
        source: ValueError,
    },
}

/// Parse every column of `tuple` as the type `relation` declares for it.
pub fn decode_row(
    relation: &Relation,
    tuple: &TupleData<'_>,
    types: &TypeRegistry,
) -> Result<Row, RowError> {
    if tuple.columns.len() != relation.columns.len() {
        return Err(RowError::ColumnCount {
            relation: relation.qualified_name(),
            expected: relation.columns.len(),
            got: tuple.columns.len(),
        });
    }
    relation
        .columns
        .iter()
        .zip(&tuple.columns)
        .map(|(col, data)| {
            let type_oid = col.type_oid;
            Ok(match *data {
                ColumnData::Null => Value::Null,
                ColumnData::Unchanged => Value::Unchanged,
                ColumnData::Binary(bytes) => Value::Binary {
                    type_oid,
                    bytes: bytes.to_vec(),
                },
                ColumnData::Text(bytes) => {
                    let text = std::str::from_utf8(bytes).map_err(|_| RowError::BadUtf8 {
                        relation: relation.qualified_name(),
                        column: col.name.clone(),
                        type_oid,
                    })?;
                    types
                        .parse_text(type_oid, text)
                        .map_err(|source| RowError::Value {
                            relation: relation.qualified_name(),
                            column: col.name.clone(),
                            type_oid,
                            source,
                        })?
                }
            })
        })
        .collect()
}
