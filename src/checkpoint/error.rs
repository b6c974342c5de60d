//! [`StateError`]: what can go wrong in the state store, with what pgforce was doing, and
//! the helpers that build it from Postgres errors and stored values.

use crate::lsn::Lsn;

/// A state-store failure, with what pgforce was doing.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store: cannot connect to Postgres: {0}")]
    Connect(#[source] crate::pgconn::ConnectError),
    #[error("state store: {context}: {}", pg_message(.source))]
    Query {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("state store: schema {schema} is at version {found}, newer than this pgforce ({supported}); upgrade pgforce")]
    TooNew {
        schema: String,
        found: i32,
        supported: i32,
    },
    #[error("state store: stored value {value:?} in {column} is invalid: {reason}")]
    Corrupt {
        column: &'static str,
        value: String,
        reason: String,
    },
}

impl StateError {
    /// The SQLSTATE of a failed query (`42501`, `55006`, ...), when Postgres sent one.
    pub fn sql_state(&self) -> Option<&str> {
        match self {
            StateError::Query { source, .. } => source.code().map(|c| c.code()),
            StateError::Connect(source) => source.code(),
            _ => None,
        }
    }
}

/// A Postgres error as text: the server's message and SQLSTATE (tokio-postgres' own
/// `Display` says only "db error").
fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

pub(super) fn q(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StateError {
    move |source| StateError::Query { context, source }
}

/// A stored LSN, or [`StateError::Corrupt`] naming the column.
pub(super) fn parse_lsn(column: &'static str, text: &str) -> Result<Lsn, StateError> {
    text.parse()
        .map_err(|e: crate::lsn::ParseLsnError| StateError::Corrupt {
            column,
            value: text.into(),
            reason: e.to_string(),
        })
}

impl crate::error_class::Classify for StateError {
    fn class(&self) -> crate::error_class::ErrorClass {
        use crate::error_class::{pg_class, ErrorClass};
        match self {
            // A refused certificate or a bad password does not heal by retrying.
            StateError::Connect(e) if e.is_transient() => ErrorClass::Transient,
            StateError::Connect(_) => ErrorClass::Permanent,
            StateError::Query { source, .. } => pg_class(source),
            StateError::TooNew { .. } | StateError::Corrupt { .. } => ErrorClass::Permanent,
        }
    }
}
