//! Resolution: turns a parsed [`Query`] into a [`Plan`] whose names are checked against the
//! catalog and whose literals are typed for their fields, once, before any record is scanned.

use std::sync::Arc;

use super::aggregate::{AggFn, AggOut, AggPlan};
use super::ast::{FieldsSet, Name, Path, Query, SelectItem};
use super::error::{SoqlError, INVALID_FIELD, INVALID_TYPE, MALFORMED_QUERY};
use super::eval::{FieldRef, Filter, Hop};
use super::exec::ExecOptions;
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
    /// Aggregates and GROUP BY: AggregateResult rows.
    Aggregate(AggPlan),
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
    /// A parent-to-child subquery: the child rows whose `field` is the record's Id,
    /// nested under `key` (the relationship name) as a query result, or null if none.
    Children {
        /// Relationship name (`Contacts`).
        key: String,
        /// The child's reference field (`AccountId`).
        field: String,
        /// The subquery, compiled against the child object.
        plan: Box<Plan>,
    },
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
    pub(super) catalog: &'a dyn Catalog,
    /// Records, for semi-join subqueries.
    pub(super) source: &'a dyn RecordSource,
    /// Options, for date literals and subqueries.
    pub(super) opts: &'a ExecOptions,
    /// The query text, for error positions.
    pub(super) text: &'a str,
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
    let (shape, columns) = if q.has_aggregate() && !q.is_count() {
        r.aggregates(&q.select, &q.group_by)?
    } else {
        r.select(&q.select)?
    };
    let filter = q.filter.as_ref().map(|c| r.cond(c)).transpose()?;
    let order = q
        .order_by
        .iter()
        .map(|k| r.sort_key(&k.path, k.descending, k.nulls_first))
        .collect::<Result<Vec<_>, _>>()?;
    if let Shape::Aggregate(agg) = &shape {
        r.check_grouped_order(q, agg, &order)?;
    }
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

/// The output key of an aggregate: its alias, or the next `exprN`.
fn agg_key(alias: Option<&Name>, unnamed: &mut usize) -> String {
    alias.map_or_else(
        || {
            let key = format!("expr{unnamed}");
            *unnamed += 1;
            key
        },
        |a| a.text.clone(),
    )
}

/// `n` as usize, saturating.
fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl Resolver<'_> {
    /// Resolves a field path, following relationships to parents.
    pub(super) fn path(&self, p: &Path) -> Result<FieldRef, SoqlError> {
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
                SelectItem::Subquery(sub) => nodes.push(self.child_subquery(sub)?),
                SelectItem::Count | SelectItem::CountField(..) | SelectItem::Aggregate(..) => {}
            }
        }
        Ok((Shape::Rows(nodes), columns))
    }

    /// A parent-to-child subquery (`(SELECT … FROM Contacts)`), compiled against the child.
    fn child_subquery(&self, sub: &Query) -> Result<OutNode, SoqlError> {
        let Some((child, field, key)) = self
            .catalog
            .child_relationship(&self.root.name, &sub.from.text)
        else {
            let reason = format!(
                "Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
                sub.from.text
            );
            return Err(SoqlError::at(
                INVALID_TYPE,
                self.text,
                sub.from.pos,
                &reason,
            ));
        };
        let nested = sub
            .select
            .iter()
            .any(|i| matches!(i, SelectItem::Subquery(_)));
        if nested || sub.has_aggregate() {
            return Err(SoqlError::at(
                MALFORMED_QUERY,
                self.text,
                sub.from.pos,
                "a relationship subquery can select only fields and parent paths",
            ));
        }
        let mut inner = sub.clone();
        inner.text = self.text.to_owned();
        inner.from.text = child;
        let plan = compile(&inner, self.catalog, self.source, self.opts)?;
        Ok(OutNode::Children {
            key,
            field,
            plan: Box::new(plan),
        })
    }

    /// The shape of an aggregate select list: plain fields must be grouped; aggregates are
    /// keyed by alias or `exprN` (counting unaliased aggregates only).
    fn aggregates(
        &self,
        items: &[SelectItem],
        group_by: &[Path],
    ) -> Result<(Shape, Vec<String>), SoqlError> {
        let groups = group_by
            .iter()
            .map(|p| self.grouped_field(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut outputs = Vec::new();
        let mut unnamed = 0usize;
        for item in items {
            match item {
                SelectItem::CountField(p, alias) => {
                    let key = agg_key(alias.as_ref(), &mut unnamed);
                    let field = self.path(p)?;
                    outputs.push(AggOut::Func {
                        func: AggFn::Count,
                        field,
                        key,
                    });
                }
                SelectItem::Aggregate(func, p, alias) => {
                    let field = self.path(p)?;
                    if func.numeric_only() && !field.field.kind.is_numeric() {
                        let reason = format!(
                            "field {} does not support aggregate operator {func:?}",
                            field.field.name
                        );
                        return Err(SoqlError::at(MALFORMED_QUERY, self.text, p.pos(), &reason));
                    }
                    let key = agg_key(alias.as_ref(), &mut unnamed);
                    outputs.push(AggOut::Func {
                        func: *func,
                        field,
                        key,
                    });
                }
                SelectItem::Field(p) => {
                    let f = self.path(p)?;
                    let Some(index) = groups.iter().position(|g| g.dotted() == f.dotted()) else {
                        let reason =
                            format!("Field must be grouped or aggregated: {}", f.field.name);
                        return Err(SoqlError::at(MALFORMED_QUERY, self.text, p.pos(), &reason));
                    };
                    outputs.push(AggOut::Group {
                        index,
                        key: f.field.name.clone(),
                    });
                }
                SelectItem::Fields(_, pos) => {
                    return Err(SoqlError::unexpected(self.text, *pos, "FIELDS"));
                }
                SelectItem::Subquery(sub) => {
                    return Err(SoqlError::at(
                        MALFORMED_QUERY,
                        self.text,
                        sub.from.pos,
                        "relationship subqueries are not allowed in aggregate queries",
                    ));
                }
                SelectItem::Count => {
                    return Err(SoqlError::at(
                        MALFORMED_QUERY,
                        self.text,
                        0,
                        "COUNT() must be the only element in the SELECT list",
                    ));
                }
            }
        }
        let columns = outputs
            .iter()
            .map(|o| match o {
                AggOut::Group { key, .. } | AggOut::Func { key, .. } => key.clone(),
            })
            .collect();
        Ok((Shape::Aggregate(AggPlan { groups, outputs }), columns))
    }

    /// A GROUP BY field: resolved and groupable (not a long text area).
    fn grouped_field(&self, p: &Path) -> Result<FieldRef, SoqlError> {
        let f = self.path(p)?;
        if !f.field.sortable {
            let reason = format!(
                "field '{}' can not be grouped in a query call",
                f.field.name
            );
            return Err(SoqlError::at(MALFORMED_QUERY, self.text, p.pos(), &reason));
        }
        Ok(f)
    }

    /// ORDER BY of an aggregate query may only use grouped fields.
    fn check_grouped_order(
        &self,
        q: &Query,
        agg: &AggPlan,
        order: &[SortKey],
    ) -> Result<(), SoqlError> {
        for (key, parsed) in order.iter().zip(&q.order_by) {
            if !agg.groups.iter().any(|g| g.dotted() == key.field.dotted()) {
                let reason = format!(
                    "Ordered field must be grouped or aggregated: {}",
                    key.field.field.name
                );
                return Err(SoqlError::at(
                    MALFORMED_QUERY,
                    self.text,
                    parsed.path.pos(),
                    &reason,
                ));
            }
        }
        Ok(())
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
