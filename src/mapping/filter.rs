//! Row filters: a list of `{ column, op, value }` conditions, all of which must hold.
//!
//! Values compare as text (bool `true`/`false`, integers in decimal, uuids hyphenated,
//! dates `yyyy-MM-dd`, enums by label); when both sides are decimal numbers they compare
//! numerically (`1.50` = `1.5`). NULL fails `=`, `!=`, `in` and `not_in`, like SQL.
//! No SQL is evaluated.

use super::convert::scalar_text;
use super::decimal::Decimal;
use super::error::ErrorKind;
use crate::change::{Relation, Row};
use crate::config::{FilterCondition, FilterOp, FilterValue, Scalar};
use crate::pgoutput::value::Value;

/// A filter with its columns resolved.
#[derive(Debug, Clone, Default)]
pub(crate) struct CompiledFilter {
    conditions: Vec<(usize, FilterCondition)>,
}

/// A filter failure: the column and why.
pub(crate) type FilterError = (String, ErrorKind);

impl CompiledFilter {
    /// Resolve columns; the error is the first missing column.
    pub(crate) fn compile(conds: &[FilterCondition], rel: &Relation) -> Result<Self, String> {
        let conditions = conds
            .iter()
            .map(|c| {
                Ok((
                    rel.column_index(&c.column).ok_or(c.column.clone())?,
                    c.clone(),
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(CompiledFilter { conditions })
    }

    /// No conditions: every row passes.
    pub(crate) fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// Whether `row` passes. An unchanged TOASTed value is taken from `fallback` (the old
    /// row under REPLICA IDENTITY FULL), else the filter cannot be evaluated.
    pub(crate) fn matches(&self, row: &Row, fallback: Option<&Row>) -> Result<bool, FilterError> {
        for (idx, cond) in &self.conditions {
            let err = |k| (cond.column.clone(), k);
            let mut value = row.get(*idx).ok_or_else(|| err(ErrorKind::MissingColumn))?;
            if matches!(value, Value::Unchanged) {
                value = fallback
                    .and_then(|old| old.get(*idx))
                    .filter(|v| !matches!(v, Value::Unchanged))
                    .ok_or_else(|| err(ErrorKind::FilterUnknown))?;
            }
            if !condition_holds(cond, value).map_err(err)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn condition_holds(cond: &FilterCondition, value: &Value) -> Result<bool, ErrorKind> {
    let text = match value {
        Value::Null => None,
        v => Some(scalar_text(v).ok_or(ErrorKind::FilterType)?),
    };
    Ok(text_holds(cond, text))
}

/// Whether every condition holds for a row whose filter columns are given as Postgres'
/// text output (`column::text`, NULL as `None`), in the order of `conds`: the same
/// comparison as [`CompiledFilter::matches`], for rows read with SQL (the resync sweep).
pub fn text_row_passes(conds: &[FilterCondition], values: &[Option<String>]) -> bool {
    conds
        .iter()
        .zip(values)
        .all(|(c, v)| text_holds(c, v.clone()))
}

fn text_holds(cond: &FilterCondition, text: Option<String>) -> bool {
    let any_equal = |list: &[Scalar], t: &str| list.iter().any(|s| equal(t, s));
    match (cond.op, &cond.value, text) {
        (FilterOp::IsNull, _, t) => t.is_none(),
        (FilterOp::IsNotNull, _, t) => t.is_some(),
        (_, _, None) => false,
        (FilterOp::Eq, Some(FilterValue::One(s)), Some(t)) => equal(&t, s),
        (FilterOp::Ne, Some(FilterValue::One(s)), Some(t)) => !equal(&t, s),
        (FilterOp::In, Some(FilterValue::List(l)), Some(t)) => any_equal(l, &t),
        (FilterOp::NotIn, Some(FilterValue::List(l)), Some(t)) => !any_equal(l, &t),
        // Shapes the config checks reject; treat as not matching.
        _ => false,
    }
}

/// Text equality, or numeric equality when both sides are decimals.
fn equal(value: &str, operand: &Scalar) -> bool {
    let operand = operand.to_string();
    if value == operand {
        return true;
    }
    match (Decimal::parse(value), Decimal::parse(&operand)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
