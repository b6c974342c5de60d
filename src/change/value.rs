//! [`Value`]: a Postgres column value after decoding, and the date, time, interval and
//! array types it is made of. Only the types: parsing them from Postgres' text forms is
//! `pgoutput::value`'s job, so everything that handles changes can use them without
//! depending on the decoder.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

/// A Postgres value after decoding. Text-format values are parsed into the variant for
/// their type OID; unknown types are kept as [`Value::Other`] with the text untouched.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL ('n').
    Null,
    /// Unchanged TOASTed value ('u'): the server did not send it; leave it alone.
    Unchanged,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float4(f32),
    Float8(f64),
    /// Exact decimal in Postgres' canonical text (`-12.3400`, `NaN`, `Infinity`); never
    /// routed through a float.
    Numeric(String),
    Text(String),
    Uuid(uuid::Uuid),
    Date(PgDate),
    Time(NaiveTime),
    /// Time with a UTC offset in seconds east of UTC.
    TimeTz(NaiveTime, i32),
    Timestamp(PgTimestamp<NaiveDateTime>),
    TimestampTz(PgTimestamp<DateTime<Utc>>),
    Interval(Interval),
    Json(serde_json::Value),
    Bytea(Vec<u8>),
    Array(Array),
    /// Enum label (type OID kept so mappings can pick a value map).
    Enum {
        type_oid: u32,
        label: String,
    },
    /// Any type without a parser: its text form and OID.
    Other {
        type_oid: u32,
        text: String,
    },
    /// A value sent in binary format ('b') that we do not parse.
    Binary {
        type_oid: u32,
        bytes: Vec<u8>,
    },
}

/// Dates can be `infinity` / `-infinity` in Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgDate {
    Value(NaiveDate),
    Infinity,
    NegInfinity,
}

/// Timestamps can be `infinity` / `-infinity` in Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgTimestamp<T> {
    Value(T),
    Infinity,
    NegInfinity,
}

/// Postgres interval: months, days and microseconds are independent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Interval {
    /// Postgres 17's `infinity` interval (all fields at their maximum).
    pub const INFINITY: Interval = Interval {
        months: i32::MAX,
        days: i32::MAX,
        micros: i64::MAX,
    };
    /// Postgres 17's `-infinity` interval (all fields at their minimum).
    pub const NEG_INFINITY: Interval = Interval {
        months: i32::MIN,
        days: i32::MIN,
        micros: i64::MIN,
    };
}

/// An array of any dimension. `dims` holds each dimension's length (empty for `{}`);
/// `elements` is row-major and its length is the product of `dims`.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub element_oid: u32,
    pub dims: Vec<usize>,
    pub elements: Vec<Value>,
}
