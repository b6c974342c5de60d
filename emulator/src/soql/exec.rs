//! Running a [`Plan`]: one scan over borrowed records, filtering in place and cloning only what
//! the result keeps; ORDER BY with LIMIT keeps a bounded heap rather than every match.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde_json::Value;

use super::aggregate::AggPlan;
use super::ast::Query;
use super::error::SoqlError;
use super::eval::{cmp_sort, read, sort_val, Parents, SortVal};
use super::plan::{compile, OutNode, Plan, Shape, SortKey};
use super::schema::{Catalog, Fields, Record, RecordSource};

/// How to run a query.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// Include soft-deleted records (`/queryAll`, Bulk `queryAll`).
    pub include_deleted: bool,
    /// The current time, for date literals such as `TODAY`.
    pub now: chrono::DateTime<chrono::Utc>,
    /// API version for `attributes.url`, e.g. `"60.0"`.
    pub api_version: String,
}

/// The result of a query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryOutput {
    /// REST `totalSize`: the row count, or the count for `COUNT()`.
    pub total_size: usize,
    /// Records in REST shape (empty for `COUNT()`).
    pub records: Vec<Record>,
    /// Flat select-list paths in SELECT order, e.g. `["Id","Name","Account.Name"]`, for Bulk CSV.
    pub columns: Vec<String>,
    /// Whether the query was `SELECT COUNT() …`.
    pub is_count: bool,
}

/// Runs `q` against `catalog` and `source`.
///
/// Names are resolved and literals typed before the scan; errors are Salesforce's
/// (`INVALID_TYPE`, `INVALID_FIELD`, …).
pub fn execute(
    q: &Query,
    catalog: &dyn Catalog,
    source: &dyn RecordSource,
    opts: &ExecOptions,
) -> Result<QueryOutput, SoqlError> {
    let plan = compile(q, catalog, source, opts)?;
    Ok(run(&plan, source, opts))
}

/// The number of rows `q` returns (after OFFSET and LIMIT) without shaping any: the size of
/// a result read later page by page.
pub fn count_rows(
    q: &Query,
    catalog: &dyn Catalog,
    source: &dyn RecordSource,
    opts: &ExecOptions,
) -> Result<usize, SoqlError> {
    let plan = compile(q, catalog, source, opts)?;
    let parents = Parents::new(source);
    let ctx = Ctx {
        plan: &plan,
        parents: &parents,
        api_version: &opts.api_version,
        source,
        opts,
    };
    Ok(ctx.count(source, opts.include_deleted))
}

/// Visits the records `q` matches (after OFFSET, up to LIMIT) in scan order without
/// shaping them, for callers that render rows themselves (Bulk query pages). Returns false,
/// visiting nothing, for queries this does not apply to: ORDER BY, aggregates, `COUNT()`.
pub fn visit_matches(
    q: &Query,
    catalog: &dyn Catalog,
    source: &dyn RecordSource,
    opts: &ExecOptions,
    visit: &mut dyn FnMut(&dyn Fields),
) -> Result<bool, SoqlError> {
    let plan = compile(q, catalog, source, opts)?;
    if !plan.order.is_empty() || !matches!(plan.shape, Shape::Rows(_)) {
        return Ok(false);
    }
    let parents = Parents::new(source);
    let ctx = Ctx {
        plan: &plan,
        parents: &parents,
        api_version: &opts.api_version,
        source,
        opts,
    };
    if plan.limit == Some(0) {
        return Ok(true);
    }
    let (mut skipped, mut n) = (0usize, 0usize);
    ctx.scan(source, opts.include_deleted, &mut |rec| {
        if !ctx.passes(rec) {
            return true;
        }
        if skipped < plan.offset {
            skipped += 1;
            return true;
        }
        visit(rec);
        n += 1;
        plan.limit.is_none_or(|l| n < l)
    });
    Ok(true)
}

/// Scans and shapes the result of a compiled plan.
fn run(plan: &Plan, source: &dyn RecordSource, opts: &ExecOptions) -> QueryOutput {
    let parents = Parents::new(source);
    let ctx = Ctx {
        plan,
        parents: &parents,
        api_version: &opts.api_version,
        source,
        opts,
    };
    match &plan.shape {
        Shape::Count => {
            let n = ctx.count(source, opts.include_deleted);
            QueryOutput {
                total_size: n,
                records: Vec::new(),
                columns: Vec::new(),
                is_count: true,
            }
        }
        Shape::Aggregate(agg) => {
            let records = ctx.aggregate(source, opts.include_deleted, agg);
            QueryOutput {
                total_size: records.len(),
                records,
                columns: plan.columns.clone(),
                is_count: false,
            }
        }
        Shape::Rows(nodes) => {
            let records = if plan.order.is_empty() {
                ctx.rows_unordered(source, opts.include_deleted, nodes)
            } else {
                ctx.rows_ordered(source, opts.include_deleted, nodes)
            };
            QueryOutput {
                total_size: records.len(),
                records,
                columns: plan.columns.clone(),
                is_count: false,
            }
        }
    }
}

/// The records of a source whose `field` equals `id` (one parent's children).
struct ChildrenOf<'a> {
    inner: &'a dyn RecordSource,
    field: &'a str,
    id: &'a str,
}

impl RecordSource for ChildrenOf<'_> {
    fn scan(
        &self,
        object: &str,
        include_deleted: bool,
        visit: &mut dyn FnMut(&dyn Fields) -> bool,
    ) {
        self.inner.scan(object, include_deleted, &mut |rec| {
            if rec.field(self.field).as_deref().and_then(Value::as_str) == Some(self.id) {
                visit(rec)
            } else {
                true
            }
        });
    }

    fn get(&self, id: &str) -> Option<Record> {
        self.inner.get(id)
    }
}

/// What a scan needs at hand.
struct Ctx<'a> {
    /// The plan.
    plan: &'a Plan,
    /// Parent lookups.
    parents: &'a Parents<'a>,
    /// For `attributes.url`.
    api_version: &'a str,
    /// Records, for relationship subqueries.
    source: &'a dyn RecordSource,
    /// Options, for relationship subqueries.
    opts: &'a ExecOptions,
}

impl Ctx<'_> {
    /// Visits the records of the queried object the WHERE clause may match: through the
    /// source's index when the clause pins an indexed field, else by a scan.
    fn scan(
        &self,
        source: &dyn RecordSource,
        deleted: bool,
        visit: &mut dyn FnMut(&dyn Fields) -> bool,
    ) {
        let object = &self.plan.object.name;
        if let Some((field, values)) = self.plan.filter.as_ref().and_then(|f| f.index_keys()) {
            if source.lookup(object, field, &values, deleted, visit) {
                return;
            }
        }
        source.scan(object, deleted, visit);
    }

    /// Whether `record` passes the WHERE clause.
    fn passes(&self, record: &dyn Fields) -> bool {
        self.plan
            .filter
            .as_ref()
            .is_none_or(|f| f.matches(record, self.parents))
    }

    /// How many rows survive OFFSET and LIMIT out of `matched`.
    fn window(&self, matched: usize) -> usize {
        let after_offset = matched.saturating_sub(self.plan.offset);
        self.plan
            .limit
            .map_or(after_offset, |l| after_offset.min(l))
    }

    /// Counts matches, stopping once OFFSET + LIMIT are reached.
    fn count(&self, source: &dyn RecordSource, deleted: bool) -> usize {
        let cap = self.cap();
        let mut n = 0usize;
        self.scan(source, deleted, &mut |rec| {
            if self.passes(rec) {
                n += 1;
            }
            cap.is_none_or(|c| n < c)
        });
        self.window(n)
    }

    /// OFFSET + LIMIT, when there is a LIMIT.
    fn cap(&self) -> Option<usize> {
        self.plan.limit.map(|l| l.saturating_add(self.plan.offset))
    }

    /// AggregateResult rows: grouped, ordered by grouped fields, then OFFSET and LIMIT.
    fn aggregate(&self, source: &dyn RecordSource, deleted: bool, agg: &AggPlan) -> Vec<Record> {
        let passes = |rec: &dyn Fields| self.passes(rec);
        let mut rows = agg.rows(
            source,
            &self.plan.object.name,
            deleted,
            &passes,
            self.parents,
        );
        if !self.plan.order.is_empty() {
            let position = |k: &SortKey| {
                agg.groups
                    .iter()
                    .position(|g| g.dotted() == k.field.dotted())
            };
            rows.sort_by(|(a, _), (b, _)| {
                for key in &self.plan.order {
                    let Some(i) = position(key) else { continue };
                    let kind = key.field.field.kind;
                    let (x, y) = (sort_val(kind, &a[i]), sort_val(kind, &b[i]));
                    let ord = cmp_sort(&x, &y, key.descending, key.nulls_first);
                    if ord != Ordering::Equal {
                        return ord;
                    }
                }
                Ordering::Equal
            });
        }
        let keep = self.window(rows.len());
        rows.into_iter()
            .skip(self.plan.offset)
            .take(keep)
            .map(|(_, row)| row)
            .collect()
    }

    /// Matches in scan order, after OFFSET, up to LIMIT; stops scanning at the limit.
    fn rows_unordered(
        &self,
        source: &dyn RecordSource,
        deleted: bool,
        nodes: &[OutNode],
    ) -> Vec<Record> {
        let mut out = Vec::new();
        let mut skipped = 0usize;
        if self.plan.limit == Some(0) {
            return out;
        }
        self.scan(source, deleted, &mut |rec| {
            if !self.passes(rec) {
                return true;
            }
            if skipped < self.plan.offset {
                skipped += 1;
                return true;
            }
            out.push(self.project(rec, nodes));
            self.plan.limit.is_none_or(|l| out.len() < l)
        });
        out
    }

    /// Matches sorted by ORDER BY, after OFFSET, up to LIMIT.
    fn rows_ordered(
        &self,
        source: &dyn RecordSource,
        deleted: bool,
        nodes: &[OutNode],
    ) -> Vec<Record> {
        let sorted = match self.cap() {
            Some(cap) => self.top_rows(source, deleted, nodes, cap),
            None => self.all_rows_sorted(source, deleted, nodes),
        };
        sorted
            .into_iter()
            .skip(self.plan.offset)
            .take(self.plan.limit.unwrap_or(usize::MAX))
            .filter_map(|e| e.record)
            .collect()
    }

    /// Every match, sorted.
    fn all_rows_sorted(
        &self,
        source: &dyn RecordSource,
        deleted: bool,
        nodes: &[OutNode],
    ) -> Vec<Entry<'_>> {
        let mut rows = Vec::new();
        self.scan(source, deleted, &mut |rec| {
            if self.passes(rec) {
                let seq = rows.len();
                rows.push(self.entry(rec, seq, Some(nodes)));
            }
            true
        });
        rows.sort_unstable();
        rows
    }

    /// The first `cap` matches in sort order, kept in a bounded heap while scanning.
    fn top_rows(
        &self,
        source: &dyn RecordSource,
        deleted: bool,
        nodes: &[OutNode],
        cap: usize,
    ) -> Vec<Entry<'_>> {
        let mut heap: BinaryHeap<Entry<'_>> = BinaryHeap::new();
        let mut seq = 0usize;
        self.scan(source, deleted, &mut |rec| {
            if !self.passes(rec) {
                return true;
            }
            let mut entry = self.entry(rec, seq, None);
            seq += 1;
            if heap.len() >= cap && heap.peek().is_none_or(|worst| entry >= *worst) {
                return true;
            }
            entry.record = Some(self.project(rec, nodes));
            heap.push(entry);
            if heap.len() > cap {
                heap.pop();
            }
            true
        });
        heap.into_sorted_vec()
    }

    /// A sort entry for `record`, projected when `nodes` are given.
    fn entry(&self, record: &dyn Fields, seq: usize, nodes: Option<&[OutNode]>) -> Entry<'_> {
        Entry {
            keys: &self.plan.order,
            vals: self.sort_vals(record),
            seq,
            record: nodes.map(|n| self.project(record, n)),
        }
    }

    /// The ORDER BY values of `record`.
    fn sort_vals(&self, record: &dyn Fields) -> Vec<SortVal> {
        self.plan
            .order
            .iter()
            .map(|k| sort_val(k.field.field.kind, &read(record, &k.field, self.parents)))
            .collect()
    }

    /// `record` in REST shape for the queried object.
    fn project(&self, record: &dyn Fields, nodes: &[OutNode]) -> Record {
        self.shape(record, &self.plan.object.name, nodes)
    }

    /// `record` of type `object` in REST shape: attributes, then each selected key.
    fn shape(&self, record: &dyn Fields, object: &str, nodes: &[OutNode]) -> Record {
        let mut out = Record::new();
        out.insert("attributes".into(), self.attributes(record, object));
        for node in nodes {
            match node {
                OutNode::Field(name) => {
                    let v = record.field(name).map_or(Value::Null, |v| v.into_owned());
                    out.insert(name.clone(), v);
                }
                OutNode::Parent(hop, children) => {
                    let v = match self.parents.follow(record, hop) {
                        Some(p) => Value::Object(self.shape(&*p, &hop.target.name, children)),
                        None => Value::Null,
                    };
                    out.insert(hop.relationship.clone(), v);
                }
                OutNode::Children { key, field, plan } => {
                    out.insert(key.clone(), self.children(record, field, plan));
                }
            }
        }
        out
    }

    /// The child rows of `parent` for a relationship subquery, as a nested query result
    /// (`{totalSize, done, records}`), or null when there are none.
    fn children(&self, parent: &dyn Fields, field: &str, plan: &Plan) -> Value {
        let Some(id) = parent.field("Id") else {
            return Value::Null;
        };
        let Some(id) = id.as_str() else {
            return Value::Null;
        };
        let source = ChildrenOf {
            inner: self.source,
            field,
            id,
        };
        let out = run(plan, &source, self.opts);
        if out.records.is_empty() {
            return Value::Null;
        }
        serde_json::json!({"totalSize": out.total_size, "done": true, "records": out.records})
    }

    /// `{"type": …, "url": "/services/data/vNN.N/sobjects/Type/Id"}`.
    fn attributes(&self, record: &dyn Fields, object: &str) -> Value {
        let mut attrs = serde_json::Map::new();
        attrs.insert("type".into(), Value::from(object));
        let id = record.field("Id");
        if let Some(id) = id.as_deref().and_then(Value::as_str) {
            let url = format!(
                "/services/data/v{}/sobjects/{object}/{id}",
                self.api_version
            );
            attrs.insert("url".into(), Value::from(url));
        }
        Value::Object(attrs)
    }
}

/// A candidate row in the ORDER BY heap; the heap's top is the row that sorts last.
struct Entry<'k> {
    /// The ORDER BY keys (direction, null placement).
    keys: &'k [SortKey],
    /// This row's values for those keys.
    vals: Vec<SortVal>,
    /// Scan order, breaking ties so equal keys keep scan order.
    seq: usize,
    /// The projected row (absent only while deciding whether to keep it).
    record: Option<Record>,
}

impl Ord for Entry<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.keys
            .iter()
            .zip(self.vals.iter().zip(&other.vals))
            .map(|(k, (a, b))| cmp_sort(a, b, k.descending, k.nulls_first))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
            .then(self.seq.cmp(&other.seq))
    }
}

impl PartialOrd for Entry<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry<'_> {}
