//! Aggregate queries: `GROUP BY` and `COUNT(f)`, `COUNT_DISTINCT(f)`, `SUM`, `AVG`, `MIN`,
//! `MAX`, answered as `AggregateResult` rows. Output keys follow Salesforce: a grouped
//! field keeps its field name, an aggregate its alias or `exprN`, numbered over the
//! unaliased aggregates only. Without `GROUP BY` there is exactly one row (counts 0,
//! other aggregates null when nothing matched); with it, one row per distinct group.

use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use super::eval::{cmp_sort, decimal_of, read, sort_val, FieldRef, Parents, SortVal};
use super::schema::{Fields, Record, RecordSource};

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AggFn {
    /// `COUNT(field)`: non-null values.
    Count,
    /// `COUNT_DISTINCT(field)`: distinct non-null values.
    CountDistinct,
    /// `SUM(field)` (numeric fields).
    Sum,
    /// `AVG(field)` (numeric fields).
    Avg,
    /// `MIN(field)`.
    Min,
    /// `MAX(field)`.
    Max,
}

impl AggFn {
    /// The function for a SOQL name (any case), if it is one.
    pub fn from_name(name: &str) -> Option<AggFn> {
        Some(match name.to_ascii_uppercase().as_str() {
            "COUNT" => AggFn::Count,
            "COUNT_DISTINCT" => AggFn::CountDistinct,
            "SUM" => AggFn::Sum,
            "AVG" => AggFn::Avg,
            "MIN" => AggFn::Min,
            "MAX" => AggFn::Max,
            _ => return None,
        })
    }

    /// Whether the function only takes numeric fields.
    pub fn numeric_only(self) -> bool {
        matches!(self, AggFn::Sum | AggFn::Avg)
    }
}

/// One output key of an aggregate row, in SELECT order.
#[derive(Debug)]
pub(crate) enum AggOut {
    /// The value of `groups[index]`, under `key`.
    Group {
        /// Index into [`AggPlan::groups`].
        index: usize,
        /// Output key (the field name).
        key: String,
    },
    /// An aggregate over `field`, under `key`.
    Func {
        /// The function.
        func: AggFn,
        /// Its argument.
        field: FieldRef,
        /// Output key (alias or `exprN`).
        key: String,
    },
}

/// A resolved aggregate select list.
#[derive(Debug)]
pub(crate) struct AggPlan {
    /// GROUP BY fields.
    pub groups: Vec<FieldRef>,
    /// Output keys.
    pub outputs: Vec<AggOut>,
}

/// The running state of one aggregate in one group.
#[derive(Debug, Clone)]
enum Acc {
    Count(u64),
    Distinct(HashSet<String>),
    Sum(Option<Decimal>, u64),
    Extreme(Option<(SortVal, Value)>),
}

/// One group: its key values and accumulators.
struct Group {
    values: Vec<Value>,
    accs: Vec<Acc>,
}

impl AggPlan {
    fn fresh_accs(&self) -> Vec<Acc> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                AggOut::Group { .. } => None,
                AggOut::Func { func, .. } => Some(match func {
                    AggFn::Count => Acc::Count(0),
                    AggFn::CountDistinct => Acc::Distinct(HashSet::new()),
                    AggFn::Sum | AggFn::Avg => Acc::Sum(None, 0),
                    AggFn::Min | AggFn::Max => Acc::Extreme(None),
                }),
            })
            .collect()
    }

    /// Scans `object`, groups the records `passes` accepts, and renders the rows in
    /// first-seen group order.
    pub fn rows(
        &self,
        source: &dyn RecordSource,
        object: &str,
        deleted: bool,
        passes: &dyn Fn(&dyn Fields) -> bool,
        parents: &Parents<'_>,
    ) -> Vec<(Vec<Value>, Record)> {
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        source.scan(object, deleted, &mut |rec| {
            if !passes(rec) {
                return true;
            }
            let values: Vec<Value> = self
                .groups
                .iter()
                .map(|g| read(rec, g, parents).into_owned())
                .collect();
            let key = group_key(&self.groups, &values);
            let slot = *index.entry(key).or_insert_with(|| {
                groups.push(Group {
                    values: values.clone(),
                    accs: self.fresh_accs(),
                });
                groups.len() - 1
            });
            self.accumulate(&mut groups[slot].accs, rec, parents);
            true
        });
        if groups.is_empty() && self.groups.is_empty() {
            groups.push(Group {
                values: Vec::new(),
                accs: self.fresh_accs(),
            });
        }
        groups
            .into_iter()
            .map(|g| {
                let row = self.render(&g);
                (g.values, row)
            })
            .collect()
    }

    fn accumulate(&self, accs: &mut [Acc], rec: &dyn Fields, parents: &Parents<'_>) {
        let funcs = self.outputs.iter().filter_map(|o| match o {
            AggOut::Func { func, field, .. } => Some((func, field)),
            AggOut::Group { .. } => None,
        });
        for ((func, field), acc) in funcs.zip(accs.iter_mut()) {
            let value = read(rec, field, parents);
            if value.is_null() {
                continue;
            }
            match acc {
                Acc::Count(n) => *n += 1,
                Acc::Distinct(seen) => {
                    seen.insert(distinct_key(&value));
                }
                Acc::Sum(sum, n) => {
                    if let Some(d) = decimal_of(&value) {
                        *sum = Some(sum.unwrap_or_default().saturating_add(d));
                        *n += 1;
                    }
                }
                Acc::Extreme(best) => {
                    let candidate = sort_val(field.field.kind, &value);
                    let better = best.as_ref().is_none_or(|(current, _)| {
                        let ord = cmp_sort(&candidate, current, false, false);
                        if *func == AggFn::Min {
                            ord.is_lt()
                        } else {
                            ord.is_gt()
                        }
                    });
                    if better {
                        *best = Some((candidate, value.into_owned()));
                    }
                }
            }
        }
    }

    fn render(&self, group: &Group) -> Record {
        let mut row = Map::new();
        row.insert("attributes".into(), json!({"type": "AggregateResult"}));
        let mut accs = group.accs.iter();
        for out in &self.outputs {
            match out {
                AggOut::Group { index, key } => {
                    let v = group.values.get(*index).cloned().unwrap_or(Value::Null);
                    row.insert(key.clone(), v);
                }
                AggOut::Func { func, key, .. } => {
                    let v = accs.next().map_or(Value::Null, |a| finish(*func, a));
                    row.insert(key.clone(), v);
                }
            }
        }
        row
    }
}

/// The final value of an accumulator.
fn finish(func: AggFn, acc: &Acc) -> Value {
    match acc {
        Acc::Count(n) => Value::from(*n),
        Acc::Distinct(seen) => Value::from(seen.len() as u64),
        Acc::Sum(None, _) | Acc::Extreme(None) => Value::Null,
        Acc::Sum(Some(sum), n) => {
            let v = if func == AggFn::Avg {
                sum.checked_div(Decimal::from(*n)).unwrap_or_default()
            } else {
                *sum
            };
            decimal_json(v)
        }
        Acc::Extreme(Some((_, v))) => v.clone(),
    }
}

/// A decimal as a JSON number (Salesforce renders these as doubles).
fn decimal_json(d: Decimal) -> Value {
    let text = d.normalize().to_string();
    let text = if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    };
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A hashable key for a group's values (text compares case-insensitively, like SOQL).
fn group_key(fields: &[FieldRef], values: &[Value]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .zip(values)
        .map(|(f, v)| match sort_val(f.field.kind, v) {
            SortVal::Text(t) => format!("t:{t}"),
            _ => format!("v:{v}"),
        })
        .collect();
    parts.join("\u{1f}")
}

fn distinct_key(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_uppercase(),
        other => other.to_string(),
    }
}
