//! WHERE compilation: resolves each compared field, checks it may be filtered and that the
//! operator and literal fit its type (with Salesforce's error texts), and types the literals
//! once so the scan compares without parsing.

use std::collections::HashSet;

use super::ast::{Cond, Literal, LiteralValue, Op, Operand, Query, RelativeDate, SelectItem};
use super::error::{SoqlError, INVALID_FIELD, INVALID_QUERY_FILTER_OPERATOR, MALFORMED_QUERY};
use super::eval::{multi_set, parse_decimal, Atom, CmpOp, Filter, Pred, Scalar};
use super::exec::{self, ExecOptions};
use super::literals;
use super::plan::Resolver;
use super::schema::{FieldInfo, FieldKind};

impl Resolver<'_> {
    /// Compiles a condition.
    pub(super) fn cond(&self, c: &Cond) -> Result<Filter, SoqlError> {
        Ok(match c {
            Cond::And(all) => Filter::And(self.conds(all)?),
            Cond::Or(any) => Filter::Or(self.conds(any)?),
            Cond::Not(inner) => Filter::Not(Box::new(self.cond(inner)?)),
            Cond::Compare(p, op, operand) => {
                let field = self.path(p)?;
                if !field.field.filterable {
                    let reason = format!(
                        "field '{}' can not be filtered in a query call",
                        field.field.name
                    );
                    return Err(SoqlError::at(INVALID_FIELD, self.text, p.pos(), &reason));
                }
                let pred = self.pred(&field.field, *op, operand, p.pos())?;
                Filter::Test(field, pred)
            }
        })
    }

    /// Compiles each condition of a list.
    fn conds(&self, cs: &[Cond]) -> Result<Vec<Filter>, SoqlError> {
        cs.iter().map(|c| self.cond(c)).collect()
    }

    /// Compiles `field op operand`.
    fn pred(
        &self,
        field: &FieldInfo,
        op: Op,
        operand: &Operand,
        pos: usize,
    ) -> Result<Pred, SoqlError> {
        match (op, operand) {
            (Op::In | Op::NotIn, Operand::Subquery(sub)) => {
                Ok(Pred::IdSet(self.semi_join(sub)?, op == Op::NotIn))
            }
            (Op::In | Op::NotIn, Operand::List(items)) => {
                let atoms = items
                    .iter()
                    .map(|l| self.atom(field, l))
                    .collect::<Result<_, _>>()?;
                Ok(Pred::AnyOf(atoms, op == Op::NotIn))
            }
            (Op::Includes | Op::Excludes, Operand::List(items)) => {
                self.includes(field, items, op == Op::Excludes, pos)
            }
            (Op::Like, Operand::Value(lit)) => self.like(field, lit, pos),
            (_, Operand::Value(lit)) => {
                let cmp = simple_op(op);
                if cmp.is_some_and(|c| c != CmpOp::Eq && c != CmpOp::Ne)
                    && matches!(field.kind, FieldKind::Boolean | FieldKind::MultiPicklist)
                {
                    return Err(self.bad_operator(field, pos));
                }
                let atom = self.atom(field, lit)?;
                Ok(Pred::Compare(cmp.unwrap_or(CmpOp::Eq), atom))
            }
            _ => Err(SoqlError::unexpected(self.text, pos, "(")),
        }
    }

    /// `LIKE 'pattern'` on a text field.
    fn like(&self, field: &FieldInfo, lit: &Literal, pos: usize) -> Result<Pred, SoqlError> {
        if !field.kind.is_textual() {
            return Err(self.bad_operator(field, pos));
        }
        match &lit.value {
            LiteralValue::Str(raw) => Ok(Pred::Like(literals::like_pattern(raw))),
            _ => Err(self.type_error(field, lit.pos)),
        }
    }

    /// `INCLUDES (…)` / `EXCLUDES (…)` on a multi-select picklist.
    fn includes(
        &self,
        field: &FieldInfo,
        items: &[Literal],
        excludes: bool,
        pos: usize,
    ) -> Result<Pred, SoqlError> {
        if field.kind != FieldKind::MultiPicklist {
            return Err(SoqlError::at(
                INVALID_QUERY_FILTER_OPERATOR,
                self.text,
                pos,
                "includes or excludes operator only valid on multipicklist field",
            ));
        }
        let mut sets = Vec::with_capacity(items.len());
        for lit in items {
            let LiteralValue::Str(raw) = &lit.value else {
                return Err(self.type_error(field, lit.pos));
            };
            sets.push(multi_set(&self.unescape(raw, lit.pos)?));
        }
        Ok(Pred::Includes(sets, excludes))
    }

    /// Runs a semi-join subquery and collects the values of its single field.
    fn semi_join(&self, sub: &Query) -> Result<HashSet<String>, SoqlError> {
        let [SelectItem::Field(_)] = sub.select.as_slice() else {
            let pos = sub.from.pos;
            return Err(SoqlError::at(
                MALFORMED_QUERY,
                self.text,
                pos,
                "semi join sub-selects can only select a single field",
            ));
        };
        if sub.filter.as_ref().is_some_and(has_subquery) {
            return Err(SoqlError::at(
                MALFORMED_QUERY,
                self.text,
                sub.from.pos,
                "Nesting of semi join sub-selects is not supported",
            ));
        }
        let mut sub = sub.clone();
        sub.text = self.text.to_owned();
        let opts = ExecOptions {
            include_deleted: false,
            ..self.opts.clone()
        };
        let out = exec::execute(&sub, self.catalog, self.source, &opts)?;
        let mut ids = HashSet::new();
        for rec in &out.records {
            if let Some(Some(serde_json::Value::String(s))) =
                super::flatten(rec, &out.columns).into_iter().next()
            {
                ids.insert(s);
            }
        }
        Ok(ids)
    }

    /// Types one literal for `field`, or reports the type mismatch Salesforce reports.
    fn atom(&self, field: &FieldInfo, lit: &Literal) -> Result<Atom, SoqlError> {
        let kind = field.kind;
        let scalar = match &lit.value {
            LiteralValue::Null => return Ok(Atom::Null),
            LiteralValue::Str(raw) if kind.is_textual() => {
                let s = self.unescape(raw, lit.pos)?;
                self.text_scalar(kind, s, lit.pos)?
            }
            LiteralValue::Number(n) if kind.is_numeric() => match parse_decimal(n) {
                Some(d) => Scalar::Num(d),
                None => return Err(SoqlError::unexpected(self.text, lit.pos, n)),
            },
            LiteralValue::Bool(b) if kind == FieldKind::Boolean => Scalar::Bool(*b),
            LiteralValue::Date(d) if kind == FieldKind::Date => Scalar::Date(*d),
            LiteralValue::DateTime(dt) if kind == FieldKind::DateTime => {
                Scalar::DateTime(*dt, literals::format_datetime(*dt))
            }
            LiteralValue::Relative(rel)
                if matches!(kind, FieldKind::Date | FieldKind::DateTime) =>
            {
                return Ok(self.range(kind, *rel));
            }
            _ => return Err(self.type_error(field, lit.pos)),
        };
        Ok(Atom::Value(scalar))
    }

    /// A text literal typed for a text-like field (ids are validated).
    fn text_scalar(&self, kind: FieldKind, s: String, pos: usize) -> Result<Scalar, SoqlError> {
        if kind == FieldKind::MultiPicklist {
            return Ok(Scalar::Multi(multi_set(&s)));
        }
        if !kind.is_id() {
            return Ok(Scalar::Text(s));
        }
        let valid = s.is_empty()
            || ((s.len() == 15 || s.len() == 18) && s.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !valid {
            let reason = format!("invalid ID field: {s}");
            return Err(SoqlError::at(
                INVALID_QUERY_FILTER_OPERATOR,
                self.text,
                pos,
                &reason,
            ));
        }
        Ok(Scalar::Id(s))
    }

    /// The range a date literal stands for, typed for a date or datetime field.
    fn range(&self, kind: FieldKind, rel: RelativeDate) -> Atom {
        let today = self.opts.now.date_naive();
        let Some((start, end)) = literals::relative_range(rel, today) else {
            return Atom::Range(Scalar::Date(today), Scalar::Date(today));
        };
        if kind == FieldKind::Date {
            return Atom::Range(Scalar::Date(start), Scalar::Date(end));
        }
        let at = |d| {
            let dt = literals::midnight(d);
            Scalar::DateTime(dt, literals::format_datetime(dt))
        };
        Atom::Range(at(start), at(end))
    }

    /// Decodes string escapes (already validated by the parser).
    fn unescape(&self, raw: &str, pos: usize) -> Result<String, SoqlError> {
        literals::unescape(raw).map_err(|seq| {
            let reason = format!(
                "Invalid string literal '{raw}'. Illegal character sequence '{seq}' in string literal."
            );
            SoqlError::at(MALFORMED_QUERY, self.text, pos, &reason)
        })
    }

    /// `value of filter criterion for field 'F' must be of type T …`.
    fn type_error(&self, field: &FieldInfo, pos: usize) -> SoqlError {
        let (ty, quotes) = match field.kind {
            k if k.is_textual() => ("string", "should be enclosed in quotes"),
            FieldKind::Date => ("date", "should not be enclosed in quotes"),
            FieldKind::DateTime => ("dateTime", "should not be enclosed in quotes"),
            FieldKind::Boolean => ("boolean", "should not be enclosed in quotes"),
            FieldKind::Int => ("integer", "should not be enclosed in quotes"),
            _ => ("double", "should not be enclosed in quotes"),
        };
        let reason = format!(
            "value of filter criterion for field '{}' must be of type {ty} and {quotes}",
            field.name
        );
        SoqlError::at(INVALID_FIELD, self.text, pos, &reason)
    }

    /// `invalid operator on T field`.
    fn bad_operator(&self, field: &FieldInfo, pos: usize) -> SoqlError {
        let ty = format!("{:?}", field.kind).to_lowercase();
        let reason = format!("invalid operator on {ty} field");
        SoqlError::at(INVALID_QUERY_FILTER_OPERATOR, self.text, pos, &reason)
    }
}

/// Whether a condition holds a subquery anywhere.
fn has_subquery(c: &Cond) -> bool {
    match c {
        Cond::And(all) | Cond::Or(all) => all.iter().any(has_subquery),
        Cond::Not(inner) => has_subquery(inner),
        Cond::Compare(_, _, operand) => matches!(operand, Operand::Subquery(_)),
    }
}

/// The comparison an operator stands for, if it is a plain comparison.
fn simple_op(op: Op) -> Option<CmpOp> {
    Some(match op {
        Op::Eq => CmpOp::Eq,
        Op::Ne => CmpOp::Ne,
        Op::Lt => CmpOp::Lt,
        Op::Le => CmpOp::Le,
        Op::Gt => CmpOp::Gt,
        Op::Ge => CmpOp::Ge,
        _ => return None,
    })
}
