//! The parsed, not yet resolved, form of a SOQL query; every name keeps its byte offset so later
//! errors can point at it.

use chrono::{DateTime, NaiveDate, Utc};

/// A parsed SOQL query. Produced by [`parse`](super::parse), run by [`execute`](super::execute).
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// The SOQL text, kept to render positional errors found while resolving names.
    pub(crate) text: String,
    /// The select list, in SELECT order.
    pub(crate) select: Vec<SelectItem>,
    /// The FROM object as written.
    pub(crate) from: Name,
    /// The WHERE condition.
    pub(crate) filter: Option<Cond>,
    /// `GROUP BY` fields.
    pub(crate) group_by: Vec<Path>,
    /// ORDER BY keys, in order.
    pub(crate) order_by: Vec<OrderKey>,
    /// LIMIT.
    pub(crate) limit: Option<u64>,
    /// OFFSET.
    pub(crate) offset: Option<u64>,
    /// Position of the OFFSET value (for the range error).
    pub(crate) offset_pos: usize,
}

impl Query {
    /// The SOQL text this query was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The FROM object as written (not yet resolved against a catalog).
    pub fn object_name(&self) -> &str {
        &self.from.text
    }

    /// The FROM object resolved against `catalog` (canonical name), or Salesforce's
    /// `INVALID_TYPE` error; for callers that need the object before running the query (Bulk
    /// query jobs report it).
    pub fn resolve_object(
        &self,
        catalog: &dyn super::Catalog,
    ) -> Result<std::sync::Arc<super::ObjectInfo>, super::SoqlError> {
        catalog.object(&self.from.text).ok_or_else(|| {
            super::SoqlError::unknown_object(&self.text, self.from.pos, &self.from.text)
        })
    }

    /// Whether the select list is exactly `COUNT()`.
    pub fn is_count(&self) -> bool {
        matches!(self.select.as_slice(), [SelectItem::Count])
    }

    /// Whether the select list holds an aggregate (`COUNT()` or `COUNT(field)`).
    pub fn has_aggregate(&self) -> bool {
        self.select.iter().any(|s| {
            matches!(
                s,
                SelectItem::Count | SelectItem::CountField(..) | SelectItem::Aggregate(..)
            )
        }) || !self.group_by.is_empty()
    }

    /// Whether the select list has a parent-to-child relationship subquery.
    pub fn has_subquery(&self) -> bool {
        self.select
            .iter()
            .any(|s| matches!(s, SelectItem::Subquery(_)))
    }

    /// The OFFSET, if any.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The LIMIT, if any.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Whether the query has an ORDER BY.
    pub fn is_ordered(&self) -> bool {
        !self.order_by.is_empty()
    }

    /// This query with its LIMIT lowered to at most `n` (to read its rows page by page).
    pub fn capped(&self, n: usize) -> Query {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        Query {
            limit: Some(self.limit.map_or(n, |l| l.min(n))),
            ..self.clone()
        }
    }
}

/// An identifier and the byte offset where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Name {
    /// The identifier as written.
    pub text: String,
    /// Byte offset in the query text.
    pub pos: usize,
}

/// A dotted field path such as `Account.Owner.Name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Path {
    /// The parts, at least one.
    pub parts: Vec<Name>,
}

impl Path {
    /// Byte offset of the first part.
    pub fn pos(&self) -> usize {
        self.parts.first().map_or(0, |p| p.pos)
    }
}

/// One entry of the select list.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SelectItem {
    /// A field path.
    Field(Path),
    /// `COUNT()`.
    Count,
    /// `COUNT(path) [alias]`.
    CountField(Path, Option<Name>),
    Aggregate(super::aggregate::AggFn, Path, Option<Name>),
    Subquery(Box<Query>),
    /// `FIELDS(ALL | STANDARD | CUSTOM)`, with the offset of `FIELDS`.
    Fields(FieldsSet, usize),
}

/// The argument of `FIELDS(...)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldsSet {
    /// Every field.
    All,
    /// Fields not ending in `__c`.
    Standard,
    /// Fields ending in `__c`.
    Custom,
}

/// A WHERE condition.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cond {
    /// Every part holds.
    And(Vec<Cond>),
    /// Some part holds.
    Or(Vec<Cond>),
    /// The part does not hold.
    Not(Box<Cond>),
    /// `path op value`.
    Compare(Path, Op, Operand),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE`
    Like,
    /// `IN`
    In,
    /// `NOT IN`
    NotIn,
    /// `INCLUDES`
    Includes,
    /// `EXCLUDES`
    Excludes,
}

/// The right-hand side of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Operand {
    /// One value.
    Value(Literal),
    /// A parenthesised list (IN, NOT IN, INCLUDES, EXCLUDES).
    List(Vec<Literal>),
    /// A semi-join or anti-join subquery.
    Subquery(Box<Query>),
}

/// A literal and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Literal {
    /// The value.
    pub value: LiteralValue,
    /// Byte offset in the query text.
    pub pos: usize,
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum LiteralValue {
    /// `null`
    Null,
    /// `TRUE` / `FALSE`
    Bool(bool),
    /// A quoted string: `raw` is the text between the quotes with escapes still in place.
    Str(String),
    /// A number as written.
    Number(String),
    /// `2024-01-31`
    Date(NaiveDate),
    /// `2024-01-01T00:00:00Z` and friends, normalised to UTC.
    DateTime(DateTime<Utc>),
    /// `TODAY`, `LAST_N_DAYS:30`, …
    Relative(RelativeDate),
}

/// A date literal naming a range relative to today.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RelativeDate {
    /// Which range.
    pub unit: RelativeUnit,
    /// Where the range sits relative to the current unit.
    pub shape: RelativeShape,
    /// `n` for the `_N_` forms, 1 otherwise.
    pub n: u32,
}

/// The calendar unit of a date literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RelativeUnit {
    /// Days.
    Day,
    /// Weeks, starting Sunday.
    Week,
    /// Calendar months.
    Month,
    /// Calendar quarters (also the fiscal ones: the fiscal year is the calendar year here).
    Quarter,
    /// Calendar years (also the fiscal ones).
    Year,
}

/// How a date literal's range is placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RelativeShape {
    /// The current unit (`TODAY`, `THIS_WEEK`, …).
    This,
    /// The `n` units before the current one (`LAST_N_WEEKS:n`, `LAST_MONTH` with n = 1).
    Last,
    /// The `n` units after the current one (`NEXT_N_MONTHS:n`, `TOMORROW`).
    Next,
    /// The single unit `n` units ago (`N_DAYS_AGO:n`).
    Ago,
    /// The `n` days before today *and* today (`LAST_N_DAYS:n`, `LAST_90_DAYS`).
    LastDaysWithToday,
}

/// One ORDER BY key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OrderKey {
    /// The field path.
    pub path: Path,
    /// `DESC`.
    pub descending: bool,
    /// `NULLS FIRST` (true) / `NULLS LAST` (false); Salesforce's default is nulls first.
    pub nulls_first: bool,
}
