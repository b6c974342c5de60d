//! Mapping errors: a value that cannot be represented in Salesforce, named precisely.
//!
//! Every error names the mapping, and where it applies the column, the target field and
//! the Postgres value's type, plus why. Row values are never part of the message (they
//! may be personal data); the pipeline dead-letters the change with its row.

use std::fmt;

use crate::pgoutput::value::Value;

/// A row change that cannot be turned into a record. Dead-letter it; never drop it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct MappingError {
    /// The mapping's name.
    pub mapping: String,
    /// Source column, when the problem is one column's value.
    pub column: Option<String>,
    /// Target field (or Bulk relationship column), when known.
    pub field: Option<String>,
    /// The Postgres value's type (`numeric`, `interval`, …), when a value is at fault.
    pub value_type: Option<&'static str>,
    /// Why.
    pub kind: ErrorKind,
    /// The record the change was for, when its key could still be read: the Salesforce
    /// object and the external id. A dead letter is keyed by these like every other
    /// outcome, so a later good change of the same record resolves it.
    pub record: Option<Box<RecordKey>>,
}

/// The record a change is for: its Salesforce object and external id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordKey {
    pub object: String,
    pub external_id: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mapping `{}`", self.mapping)?;
        if let Some(c) = &self.column {
            write!(f, ", column `{c}`")?;
        }
        if let Some(field) = &self.field {
            write!(f, " → field `{field}`")?;
        }
        if let Some(t) = self.value_type {
            write!(f, " ({t} value)")?;
        }
        write!(f, ": {}", self.kind)
    }
}

/// The reason a value or change could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("NaN cannot be stored in a Salesforce number field")]
    NotANumber,
    #[error("infinite numbers cannot be stored in a Salesforce number field")]
    InfiniteNumber,
    #[error("not a decimal number")]
    InvalidNumber,
    #[error(
        "{digits} integer digits exceed numeric(precision {precision}, scale {scale}), which \
         allows {}",
        precision.saturating_sub(*scale)
    )]
    TooManyDigits {
        digits: usize,
        precision: u32,
        scale: u32,
    },
    #[error("value is not in the value_map and the value_map has no default")]
    Unmapped,
    #[error("{length} characters exceed max_length {max}; set truncate = true to cut instead")]
    TooLong { length: usize, max: usize },
    #[error("an array element contains `;`, the multipicklist separator")]
    SeparatorInElement,
    #[error("arrays with more than one dimension cannot become a multipicklist")]
    MultiDimensional,
    #[error("an array element is NULL, which a multipicklist cannot hold")]
    NullElement,
    #[error("{0} is outside Salesforce's range 1700-01-01 to 4000-12-31")]
    DateOutOfRange(String),
    #[error("infinity / -infinity has no Salesforce date or datetime equivalent")]
    InfiniteDate,
    #[error("no default conversion for this type{0}")]
    Unsupported(&'static str),
    #[error("transform `{0}` does not accept this type")]
    TransformType(&'static str),
    #[error("text does not match true_values or false_values")]
    NotBool,
    #[error("integer is neither 0 nor 1")]
    NotBoolInteger,
    #[error("text is not valid JSON")]
    InvalidJson,
    #[error("the external id is NULL or empty")]
    NullExternalId,
    #[error("the external id is an unchanged TOASTed value (not sent by Postgres)")]
    UnchangedExternalId,
    #[error(
        "the old row does not carry this column, so the record to delete is unknown: \
         set REPLICA IDENTITY FULL on the table or use a key column as external id"
    )]
    OldKeyMissing,
    #[error("column no longer exists in the table (dropped or renamed?)")]
    MissingColumn,
    #[error(
        "filter column is an unchanged TOASTed value and the old row is unavailable: \
         set REPLICA IDENTITY FULL on the table"
    )]
    FilterUnknown,
    #[error("filters cannot compare values of this type")]
    FilterType,
    #[error("the change carries no {0} row")]
    MissingRow(&'static str),
}

/// The Postgres type name of a value, for messages.
pub fn value_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Unchanged => "unchanged TOAST",
        Value::Bool(_) => "boolean",
        Value::Int2(_) => "smallint",
        Value::Int4(_) => "integer",
        Value::Int8(_) => "bigint",
        Value::Float4(_) => "real",
        Value::Float8(_) => "double precision",
        Value::Numeric(_) => "numeric",
        Value::Text(_) => "text",
        Value::Uuid(_) => "uuid",
        Value::Date(_) => "date",
        Value::Time(_) => "time",
        Value::TimeTz(..) => "timetz",
        Value::Timestamp(_) => "timestamp",
        Value::TimestampTz(_) => "timestamptz",
        Value::Interval(_) => "interval",
        Value::Json(_) => "json",
        Value::Bytea(_) => "bytea",
        Value::Array(_) => "array",
        Value::Enum { .. } => "enum",
        Value::Other { .. } => "other (text)",
        Value::Binary { .. } => "binary",
    }
}
