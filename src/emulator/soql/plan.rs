//! Resolution: turns a parsed [`Query`] into a [`Plan`] whose names are checked against the
//! catalog and whose literals are typed for their fields, once, before any record is scanned.

use std::collections::HashSet;
use std::sync::Arc;

use super::ast::{
    Cond, FieldsSet, Literal, LiteralValue, Name, Op, Operand, Path, Query, SelectItem,
};
use super::error::{SoqlError, INVALID_FIELD, INVALID_QUERY_FILTER_OPERATOR, MALFORMED_QUERY};
use super::eval::{parse_decimal, Atom, CmpOp, FieldRef, Filter, Hop, Pred, Scalar};
use super::exec::{self, ExecOptions};
use super::literals;
use super::schema::{Catalog, FieldInfo, FieldKind, ObjectInfo, RecordSource};

/// Most parent hops a path may take (Salesforce allows five levels).
const MAX_HOPS: usize = 5;

/// A query ready to run.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The queried object.
    pub object: Arc<ObjectInfo>,
    /// What each matching record turns into.
    pub shape: Shape,
    /// Flat select-list paths, for Bulk CSV.
    pub columns: Vec<String>,
    /// The WHERE clause.
    pub filter: Option<Filter>,
    /// ORDER BY keys.
    pub order: Vec<SortKey>,
    /// LIMIT.
    pub limit: Option<usize>,
    /// OFFSET.
    pub offset: usize,
}

/// The result shape.
#[derive(Debug)]
pub(crate) enum Shape {
    /// `COUNT()`: only the number of rows.
    Count,
    /// Aggregates (`COUNT(field)`): one AggregateResult row; (field, output key).
    Aggregate(Vec<(FieldRef, String)>),
    /// Ordinary rows.
    Rows(Vec<OutNode>),
}

/// One key of a result record, in SELECT order.
#[derive(Debug)]
pub(crate) enum OutNode {
    /// A field of the current record (canonical name).
    Field(String),
    /// A parent object nested under its relationship name.
    Parent(Hop, Vec<OutNode>),
}

/// One resolved ORDER BY key.
#[derive(Debug)]
pub(crate) struct SortKey {
    /// The field.
    pub field: FieldRef,
    /// `DESC`.
    pub descending: bool,
    /// `NULLS FIRST`.
    pub nulls_first: bool,
}

/// Name resolution for one query.
pub(crate) struct Resolver<'a> {
    /// Schema.
    catalog: &'a dyn Catalog,
    /// Records, for semi-join subqueries.
    source: &'a dyn RecordSource,
    /// Options, for date literals and subqueries.
    opts: &'a ExecOptions,
    /// The query text, for error positions.
    text: &'a str,
    /// The queried object.
    root: Arc<ObjectInfo>,
}

/// Resolves `q` into a [`Plan`].
pub(crate) fn compile(
    q: &Query,
    catalog: &dyn Catalog,
    source: &dyn RecordSource,
    opts: &ExecOptions,
) -> Result<Plan, SoqlError> {
    let root = q.resolve_object(catalog)?;
    let r = Resolver {
        catalog,
        source,
        opts,
        text: &q.text,
        root: root.clone(),
    };
    let (shape, columns) = r.select(&q.select)?;
    let filter = q.filter.as_ref().map(|c| r.cond(c)).transpose()?;
    let order = q
        .order_by
        .iter()
        .map(|k| r.sort_key(&k.path, k.descending, k.nulls_first))
        .collect::<Result<_, _>>()?;
    Ok(Plan {
        object: root,
        shape,
        columns,
        filter,
        order,
        limit: q.limit.map(saturating_usize),
        offset: q.offset.map_or(0, saturating_usize),
    })
}

/// `n` as usize, saturating.
fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl Resolver<'_> {
    /// Resolves a field path, following relationships to parents.
    fn path(&self, p: &Path) -> Result<FieldRef, SoqlError> {
        let mut parts = p.parts.as_slice();
        if parts.len() > 1
            && parts[0].text.eq_ignore_ascii_case(&self.root.name)
            && self.root.relationship(&parts[0].text).is_none()
        {
            parts = &parts[1..];
        }
        let Some((last, hops_names)) = parts.split_last() else {
            return Err(SoqlError::unexpected(self.text, p.pos(), "<EOF>"));
        };
        let mut object = self.root.clone();
        let mut hops = Vec::with_capacity(hops_names.len());
        for part in hops_names {
            let hop = self.hop(&object, part)?;
            object = hop.target.clone();
            hops.push(hop);
        }
        if hops.len() > MAX_HOPS {
            let reason = format!("A field path can follow at most {MAX_HOPS} relationships");
            return Err(SoqlError::at(MALFORMED_QUERY, self.text, p.pos(), &reason));
        }
        let field = object.field(&last.text).ok_or_else(|| {
            SoqlError::no_such_column(self.text, p.pos(), &last.text, &object.name)
        })?;
        Ok(FieldRef {
            hops,
            field: field.clone(),
        })
    }

    /// One relationship step from `object` named by `part`.
    fn hop(&self, object: &ObjectInfo, part: &Name) -> Result<Hop, SoqlError> {
        let bad = || SoqlError::bad_relationship(self.text, part.pos, &part.text);
        let field = object.relationship(&part.text).ok_or_else(bad)?;
        let target_name = field.reference_to.first().ok_or_else(bad)?;
        let target = self.catalog.object(target_name).ok_or_else(bad)?;
        Ok(Hop {
            ref_field: field.name.clone(),
            relationship: field.relationship_name.clone().unwrap_or_default(),
            target,
        })
    }

    // ---- SELECT -------------------------------------------------------------------------

    /// The result shape and Bulk columns of the select list.
    fn select(&self, items: &[SelectItem]) -> Result<(Shape, Vec<String>), SoqlError> {
        if items.iter().any(|i| matches!(i, SelectItem::Count)) {
            if items.len() > 1 {
                return Err(SoqlError::plain(
                    MALFORMED_QUERY,
                    "COUNT() must be the only element in the SELECT list",
                ));
            }
            return Ok((Shape::Count, Vec::new()));
        }
        if items
            .iter()
            .any(|i| matches!(i, SelectItem::CountField(..)))
        {
            return self.aggregates(items);
        }
        let mut nodes = Vec::new();
        let mut columns = Vec::new();
        for item in items {
            match item {
                SelectItem::Field(p) => {
                    let f = self.path(p)?;
                    let dotted = f.dotted();
                    if !insert_node(&mut nodes, &f.hops, &f.field.name) {
                        let reason = format!("duplicate field selected: {dotted}");
                        return Err(SoqlError::at(MALFORMED_QUERY, self.text, p.pos(), &reason));
                    }
                    columns.push(dotted);
                }
                SelectItem::Fields(set, _) => {
                    for f in self.root.fields.iter().filter(|f| in_set(*set, f)) {
                        if insert_node(&mut nodes, &[], &f.name) {
                            columns.push(f.name.clone());
                        }
                    }
                }
                SelectItem::Count | SelectItem::CountField(..) => {}
            }
        }
        Ok((Shape::Rows(nodes), columns))
    }

    /// The shape of a select list of aggregates; plain fields there need GROUP BY.
    fn aggregates(&self, items: &[SelectItem]) -> Result<(Shape, Vec<String>), SoqlError> {
        let mut aggs = Vec::new();
        for (n, item) in items.iter().enumerate() {
            match item {
                SelectItem::CountField(p, alias) => {
                    let key = alias
                        .as_ref()
                        .map_or_else(|| format!("expr{n}"), |a| a.text.clone());
                    aggs.push((self.path(p)?, key));
                }
                SelectItem::Field(p) => {
                    let f = self.path(p)?;
                    let reason = format!("Field must be grouped or aggregated: {}", f.field.name);
                    return Err(SoqlError::at(MALFORMED_QUERY, self.text, p.pos(), &reason));
                }
                SelectItem::Fields(_, pos) => {
                    return Err(SoqlError::unexpected(self.text, *pos, "FIELDS"));
                }
                SelectItem::Count => {}
            }
        }
        let columns = aggs.iter().map(|(_, k)| k.clone()).collect();
        Ok((Shape::Aggregate(aggs), columns))
    }

    // ---- ORDER BY -----------------------------------------------------------------------

    /// One ORDER BY key, checked sortable.
    fn sort_key(
        &self,
        p: &Path,
        descending: bool,
        nulls_first: bool,
    ) -> Result<SortKey, SoqlError> {
        let field = self.path(p)?;
        if !field.field.sortable || field.field.kind == FieldKind::MultiPicklist {
            let reason = format!(
                "field '{}' can not be sorted in a query call",
                field.field.name
            );
            return Err(SoqlError::at(INVALID_FIELD, self.text, p.pos(), &reason));
        }
        Ok(SortKey {
            field,
            descending,
            nulls_first,
        })
    }

    // ---- WHERE --------------------------------------------------------------------------

    /// Compiles a condition.
    fn cond(&self, c: &Cond) -> Result<Filter, SoqlError> {
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
            sets.push(super::eval::multi_set(&self.unescape(raw, lit.pos)?));
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
            return Ok(Scalar::Multi(super::eval::multi_set(&s)));
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
    fn range(&self, kind: FieldKind, rel: super::ast::RelativeDate) -> Atom {
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

/// Whether `field` belongs to a `FIELDS(...)` set.
fn in_set(set: FieldsSet, field: &FieldInfo) -> bool {
    let custom = field.name.to_ascii_lowercase().ends_with("__c");
    match set {
        FieldsSet::All => true,
        FieldsSet::Standard => !custom,
        FieldsSet::Custom => custom,
    }
}

/// Adds `hops` + `field` to the output tree; false if that exact field was already there.
fn insert_node(nodes: &mut Vec<OutNode>, hops: &[Hop], field: &str) -> bool {
    let Some((hop, rest)) = hops.split_first() else {
        if nodes
            .iter()
            .any(|n| matches!(n, OutNode::Field(f) if f == field))
        {
            return false;
        }
        nodes.push(OutNode::Field(field.to_owned()));
        return true;
    };
    let existing = nodes.iter_mut().find_map(|n| match n {
        OutNode::Parent(h, children) if h.relationship == hop.relationship => Some(children),
        _ => None,
    });
    match existing {
        Some(children) => insert_node(children, rest, field),
        None => {
            let mut children = Vec::new();
            insert_node(&mut children, rest, field);
            nodes.push(OutNode::Parent(hop.clone(), children));
            true
        }
    }
}
