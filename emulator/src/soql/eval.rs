//! Evaluation on borrowed records: reading a (possibly parent) field, comparing a stored value
//! with a compiled literal, and the sort keys of ORDER BY.

use std::borrow::Cow;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use super::literals::{self, LikeTok};
use super::schema::{FieldInfo, FieldKind, Fields, ObjectInfo, Record, RecordSource};

/// The JSON null every missing field reads as.
static NULL: Value = Value::Null;
/// Parent records cached per query before the cache is dropped and refilled.
const PARENT_CACHE_LIMIT: usize = 100_000;

/// One step from a record to its parent through a reference field.
#[derive(Clone, Debug)]
pub(crate) struct Hop {
    /// The reference field on the child, e.g. `AccountId`.
    pub ref_field: String,
    /// The relationship name, e.g. `Account`: the key of the nested object in results.
    pub relationship: String,
    /// The parent object.
    pub target: Arc<ObjectInfo>,
}

/// A field path resolved against the catalog.
#[derive(Clone, Debug)]
pub(crate) struct FieldRef {
    /// Parent hops, outermost first; empty for a field of the queried object.
    pub hops: Vec<Hop>,
    /// The field at the end of the path.
    pub field: FieldInfo,
}

impl FieldRef {
    /// The canonical dotted path, e.g. `Account.Owner.Name`.
    pub fn dotted(&self) -> String {
        let mut s = String::new();
        for hop in &self.hops {
            s.push_str(&hop.relationship);
            s.push('.');
        }
        s.push_str(&self.field.name);
        s
    }
}

/// Parent lookups for one query run, cached by id.
pub(crate) struct Parents<'a> {
    /// Where parents come from.
    source: &'a dyn RecordSource,
    /// Id → parent (or its absence).
    cache: RefCell<HashMap<String, Option<Rc<Record>>>>,
}

impl<'a> Parents<'a> {
    /// An empty cache over `source`.
    pub fn new(source: &'a dyn RecordSource) -> Self {
        Self {
            source,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// The record with id `id`, if it exists.
    pub fn get(&self, id: &str) -> Option<Rc<Record>> {
        if let Some(hit) = self.cache.borrow().get(id) {
            return hit.clone();
        }
        let found = self.source.get(id).map(Rc::new);
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= PARENT_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(id.to_owned(), found.clone());
        found
    }

    /// The parent reached from `record` through `hop`, if the lookup is set and exists.
    pub fn follow(&self, record: &dyn Fields, hop: &Hop) -> Option<Rc<Record>> {
        let id = record.field(&hop.ref_field)?;
        self.get(id.as_str()?)
    }
}

/// The value of `field` on `record`, following parent hops; null when any link is missing.
pub(crate) fn read<'r>(
    record: &'r dyn Fields,
    field: &FieldRef,
    parents: &Parents<'_>,
) -> Cow<'r, Value> {
    let Some((first, rest)) = field.hops.split_first() else {
        return record
            .field(&field.field.name)
            .unwrap_or(Cow::Borrowed(&NULL));
    };
    let mut current = match parents.follow(record, first) {
        Some(p) => p,
        None => return Cow::Borrowed(&NULL),
    };
    for hop in rest {
        current = match parents.follow(&*current, hop) {
            Some(p) => p,
            None => return Cow::Borrowed(&NULL),
        };
    }
    Cow::Owned(
        current
            .get(&field.field.name)
            .cloned()
            .unwrap_or(Value::Null),
    )
}

/// A compiled literal, typed for the field it is compared with.
#[derive(Clone, Debug)]
pub(crate) enum Scalar {
    /// Text, compared ignoring case.
    Text(String),
    /// A record id: 15-char ids compare case-sensitively on the first 15 chars, 18-char ids
    /// ignoring case.
    Id(String),
    /// A number.
    Num(Decimal),
    /// A boolean.
    Bool(bool),
    /// A date.
    Date(NaiveDate),
    /// A datetime, with its canonical `…+0000` text for a fast path.
    DateTime(DateTime<Utc>, String),
    /// A multi-select picklist value as a sorted set of lowercased items.
    Multi(Vec<String>),
}

/// The right-hand side of a compiled comparison.
#[derive(Clone, Debug)]
pub(crate) enum Atom {
    /// `null`
    Null,
    /// One value.
    Value(Scalar),
    /// A date literal: the half-open range `[start, end)`.
    Range(Scalar, Scalar),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A compiled predicate on one field.
#[derive(Clone, Debug)]
pub(crate) enum Pred {
    /// `field op atom`.
    Compare(CmpOp, Atom),
    /// `IN (…)` (any equal) or, negated, `NOT IN (…)` (none equal).
    AnyOf(Vec<Atom>, bool),
    /// `IN (SELECT …)` / `NOT IN (SELECT …)`: exact id set.
    IdSet(HashSet<String>, bool),
    /// `LIKE`.
    Like(Vec<LikeTok>),
    /// `INCLUDES` (false) / `EXCLUDES` (true): each entry is a set that must all be selected.
    Includes(Vec<Vec<String>>, bool),
}

/// A compiled WHERE clause.
#[derive(Clone, Debug)]
pub(crate) enum Filter {
    /// All hold.
    And(Vec<Filter>),
    /// Any holds.
    Or(Vec<Filter>),
    /// Does not hold.
    Not(Box<Filter>),
    /// A predicate on a field.
    Test(FieldRef, Pred),
}

impl Filter {
    /// The field of the queried object and the values an index could find every match by:
    /// `field = 'v'` or `field IN ('v', …)` on text or id values, alone or as one term of
    /// an AND. Matches found this way must still pass [`Filter::matches`].
    pub fn index_keys(&self) -> Option<(&str, Vec<&str>)> {
        fn key(a: &Atom) -> Option<&str> {
            match a {
                Atom::Value(Scalar::Text(s) | Scalar::Id(s)) => Some(s.as_str()),
                _ => None,
            }
        }
        match self {
            Self::And(all) => all.iter().find_map(Filter::index_keys),
            Self::Test(field, pred) if field.hops.is_empty() => {
                let values = match pred {
                    Pred::Compare(CmpOp::Eq, atom) => vec![key(atom)?],
                    Pred::AnyOf(atoms, false) => atoms.iter().map(key).collect::<Option<_>>()?,
                    _ => return None,
                };
                Some((field.field.name.as_str(), values))
            }
            _ => None,
        }
    }

    /// Whether `record` passes. Recursion depth is bounded by the parser's nesting cap.
    pub fn matches(&self, record: &dyn Fields, parents: &Parents<'_>) -> bool {
        match self {
            Self::And(all) => all.iter().all(|f| f.matches(record, parents)),
            Self::Or(any) => any.iter().any(|f| f.matches(record, parents)),
            Self::Not(inner) => !inner.matches(record, parents),
            Self::Test(field, pred) => test(pred, &read(record, field, parents)),
        }
    }
}

/// Whether `value` satisfies `pred`.
fn test(pred: &Pred, value: &Value) -> bool {
    match pred {
        Pred::Compare(op, atom) => compare(*op, atom, value),
        Pred::AnyOf(atoms, negated) => {
            let hit = atoms.iter().any(|a| compare(CmpOp::Eq, a, value));
            hit != *negated
        }
        Pred::IdSet(ids, negated) => {
            let hit = value.as_str().is_some_and(|s| ids.contains(s));
            hit != *negated
        }
        Pred::Like(pattern) => text_of(value).is_some_and(|s| literals::like_matches(pattern, &s)),
        Pred::Includes(sets, excludes) => {
            let Some(have) = value.as_str().map(multi_set) else {
                return *excludes;
            };
            let hit = sets
                .iter()
                .any(|want| want.iter().all(|w| have.contains(w)));
            hit != *excludes
        }
    }
}

/// `value op atom`, with SOQL's null rules: `!=` matches nulls, ordering never does.
fn compare(op: CmpOp, atom: &Atom, value: &Value) -> bool {
    if value.is_null() {
        return match atom {
            Atom::Null => op == CmpOp::Eq,
            _ => op == CmpOp::Ne,
        };
    }
    match atom {
        Atom::Null => op == CmpOp::Ne,
        Atom::Value(s) => match compare_scalar(value, s) {
            Some(ord) => apply(op, ord),
            None => op == CmpOp::Ne,
        },
        Atom::Range(start, end) => {
            let (Some(a), Some(b)) = (compare_scalar(value, start), compare_scalar(value, end))
            else {
                return op == CmpOp::Ne;
            };
            let inside = a != Ordering::Less && b == Ordering::Less;
            match op {
                CmpOp::Eq => inside,
                CmpOp::Ne => !inside,
                CmpOp::Lt => a == Ordering::Less,
                CmpOp::Le => b == Ordering::Less,
                CmpOp::Gt => b != Ordering::Less,
                CmpOp::Ge => a != Ordering::Less,
            }
        }
    }
}

/// Whether `ord` (value vs literal) satisfies `op`.
fn apply(op: CmpOp, ord: Ordering) -> bool {
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

/// Orders a stored value against a literal; `None` when they cannot be compared.
fn compare_scalar(value: &Value, scalar: &Scalar) -> Option<Ordering> {
    match scalar {
        Scalar::Text(t) => Some(cmp_fold(&text_of(value)?, t)),
        Scalar::Id(id) => {
            let v = value.as_str()?;
            if id.len() == 15 {
                Some(v.get(..15).unwrap_or(v).cmp(id))
            } else {
                Some(cmp_fold(v, id))
            }
        }
        Scalar::Num(n) => Some(decimal_of(value)?.cmp(n)),
        Scalar::Bool(b) => Some(value.as_bool()?.cmp(b)),
        Scalar::Date(d) => Some(literals::parse_date(value.as_str()?)?.cmp(d)),
        Scalar::DateTime(dt, canonical) => {
            let v = value.as_str()?;
            if v.len() == canonical.len() && v.ends_with("+0000") {
                return Some(v.cmp(canonical));
            }
            Some(literals::parse_datetime(v)?.cmp(dt))
        }
        Scalar::Multi(set) => Some(multi_set(value.as_str()?).cmp(set)),
    }
}

/// A stored value as text (strings as they are, numbers and booleans printed).
fn text_of(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Borrowed(n.as_str())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// A stored value as a decimal (numbers, or numeric strings).
pub(crate) fn decimal_of(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => parse_decimal(n.as_str()),
        Value::String(s) => parse_decimal(s),
        _ => None,
    }
}

/// Parses a decimal, accepting exponents.
pub(crate) fn parse_decimal(text: &str) -> Option<Decimal> {
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
}

/// Compares two strings ignoring case, by uppercase code points as Salesforce's English
/// locale does.
pub(crate) fn cmp_fold(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        let upper_a = a.bytes().map(|c| c.to_ascii_uppercase());
        return upper_a.cmp(b.bytes().map(|c| c.to_ascii_uppercase()));
    }
    a.chars()
        .flat_map(char::to_uppercase)
        .cmp(b.chars().flat_map(char::to_uppercase))
}

/// A multi-select picklist value as a sorted, lowercased, de-duplicated set.
pub(crate) fn multi_set(s: &str) -> Vec<String> {
    let mut items: Vec<String> = s
        .split(';')
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    items.sort();
    items.dedup();
    items
}

/// One ORDER BY value, comparable within its key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SortVal {
    /// Null (placed by NULLS FIRST / LAST).
    Null,
    /// Boolean: false before true.
    Bool(bool),
    /// Number.
    Num(Decimal),
    /// Date.
    Date(NaiveDate),
    /// Datetime.
    DateTime(DateTime<Utc>),
    /// Text, uppercased so the order ignores case.
    Text(String),
}

/// The sort value of `value` for a field of `kind`.
pub(crate) fn sort_val(kind: FieldKind, value: &Value) -> SortVal {
    let typed = match (kind, value) {
        (_, Value::Null) => return SortVal::Null,
        (_, Value::Bool(b)) => Some(SortVal::Bool(*b)),
        (k, v) if k.is_numeric() => decimal_of(v).map(SortVal::Num),
        (FieldKind::Date, Value::String(s)) => literals::parse_date(s).map(SortVal::Date),
        (FieldKind::DateTime, Value::String(s)) => {
            literals::parse_datetime(s).map(SortVal::DateTime)
        }
        _ => None,
    };
    typed.unwrap_or_else(|| SortVal::Text(text_of(value).unwrap_or_default().to_uppercase()))
}

/// Orders two sort values of one key, honouring direction and null placement.
pub(crate) fn cmp_sort(a: &SortVal, b: &SortVal, descending: bool, nulls_first: bool) -> Ordering {
    match (a, b) {
        (SortVal::Null, SortVal::Null) => Ordering::Equal,
        (SortVal::Null, _) if nulls_first => Ordering::Less,
        (SortVal::Null, _) => Ordering::Greater,
        (_, SortVal::Null) if nulls_first => Ordering::Greater,
        (_, SortVal::Null) => Ordering::Less,
        _ if descending => b.cmp(a),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(s: &str) -> Atom {
        Atom::Value(Scalar::Text(s.into()))
    }

    #[test]
    fn text_equality_ignores_case_and_ne_matches_null() {
        assert!(compare(CmpOp::Eq, &text("acme"), &json!("ACME")));
        assert!(!compare(CmpOp::Eq, &text("acme"), &Value::Null));
        assert!(compare(CmpOp::Ne, &text("acme"), &Value::Null));
        assert!(!compare(CmpOp::Lt, &text("acme"), &Value::Null));
        assert!(compare(CmpOp::Eq, &Atom::Null, &Value::Null));
        assert!(compare(CmpOp::Ne, &Atom::Null, &json!("x")));
    }

    #[test]
    fn ids_compare_by_length_rules() {
        let id15 = Atom::Value(Scalar::Id("001D000000IqhSL".into()));
        assert!(compare(CmpOp::Eq, &id15, &json!("001D000000IqhSLIAZ")));
        assert!(!compare(CmpOp::Eq, &id15, &json!("001d000000iqhslIAZ")));
        let id18 = Atom::Value(Scalar::Id("001d000000iqhsliaz".into()));
        assert!(compare(CmpOp::Eq, &id18, &json!("001D000000IqhSLIAZ")));
    }

    #[test]
    fn numbers_compare_exactly() {
        let n = Atom::Value(Scalar::Num(parse_decimal("1.10").unwrap()));
        assert!(compare(CmpOp::Eq, &n, &json!(1.1)));
        assert!(compare(CmpOp::Lt, &n, &json!(1)));
        assert!(!compare(CmpOp::Le, &n, &json!(2e0)));
        assert!(compare(CmpOp::Eq, &n, &json!("1.1")));
    }

    #[test]
    fn extreme_numbers_do_not_panic() {
        for s in [
            "1e999999999999",
            "-1e-99999",
            "1E+28",
            "0.000000000000000000000000000001",
        ] {
            let _ = parse_decimal(s);
        }
        assert_eq!(parse_decimal(&"9".repeat(100)), None);
        assert!(decimal_of(&json!("x")).is_none());
    }

    #[test]
    fn datetime_fast_and_slow_paths_agree() {
        let dt = literals::parse_datetime("2024-01-01T00:00:00Z").unwrap();
        let a = Atom::Value(Scalar::DateTime(dt, literals::format_datetime(dt)));
        assert!(compare(
            CmpOp::Eq,
            &a,
            &json!("2024-01-01T00:00:00.000+0000")
        ));
        assert!(compare(CmpOp::Eq, &a, &json!("2024-01-01T01:00:00+01:00")));
        assert!(compare(
            CmpOp::Lt,
            &a,
            &json!("2023-12-31T23:59:59.999+0000")
        ));
    }

    #[test]
    fn sort_order_puts_nulls_where_asked() {
        let (n, a) = (SortVal::Null, SortVal::Text("A".into()));
        assert_eq!(cmp_sort(&n, &a, false, true), Ordering::Less);
        assert_eq!(cmp_sort(&n, &a, true, true), Ordering::Less);
        assert_eq!(cmp_sort(&n, &a, false, false), Ordering::Greater);
        assert_eq!(
            cmp_sort(&a, &SortVal::Text("B".into()), true, true),
            Ordering::Greater
        );
    }

    #[test]
    fn fold_compare_uses_uppercase() {
        assert_eq!(cmp_fold("abc", "ABC"), Ordering::Equal);
        assert_eq!(cmp_fold("_", "a"), Ordering::Greater);
        assert_eq!(cmp_fold("é", "É"), Ordering::Equal);
    }
}
