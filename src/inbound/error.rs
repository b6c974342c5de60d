//! [`InboundError`]: why an inbound entry stopped, naming the pipeline and object, with
//! its [`Classify`] impl (the supervisor restarts retryable ones with backoff).

use crate::error_class::{pg_class, Classify, ErrorClass};

use super::source::SourceError;

/// An inbound entry's failure.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("inbound {pipeline}/{object}: {source}")]
    Source {
        pipeline: String,
        object: String,
        #[source]
        source: SourceError,
    },
    #[error("inbound {pipeline}/{object}: Salesforce: {source}")]
    Salesforce {
        pipeline: String,
        object: String,
        #[source]
        source: Box<crate::salesforce::SalesforceError>,
    },
    #[error("inbound {pipeline}/{object}: Postgres: {context}: {}", pg_message(.source))]
    Postgres {
        pipeline: String,
        object: String,
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("inbound {pipeline}/{object}: {source}")]
    State {
        pipeline: String,
        object: String,
        #[source]
        source: crate::checkpoint::StateError,
    },
    /// The target table does not fit the entry (missing, no such column, no key).
    #[error("inbound {pipeline}/{object}: table {table}: {reason}; run `pgforce schema` to see the differences")]
    Table {
        pipeline: String,
        object: String,
        table: String,
        reason: String,
    },
    /// A value from Salesforce does not fit its column.
    #[error("inbound {pipeline}/{object}: record {record_id}: {source}")]
    Value {
        pipeline: String,
        object: String,
        record_id: String,
        #[source]
        source: Box<super::convert::ConvertError>,
    },
    /// Stored state that cannot be read back.
    #[error("inbound {pipeline}/{object}: stored position is invalid: {reason}")]
    Corrupt {
        pipeline: String,
        object: String,
        reason: String,
    },
}

fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl Classify for InboundError {
    fn class(&self) -> ErrorClass {
        match self {
            InboundError::Source { source, .. } => source.class(),
            InboundError::Salesforce { source, .. } => source.class(),
            InboundError::Postgres { source, .. } => pg_class(source),
            InboundError::State { source, .. } => source.class(),
            InboundError::Table { .. }
            | InboundError::Value { .. }
            | InboundError::Corrupt { .. } => ErrorClass::Permanent,
        }
    }
}

/// Builds errors for one entry.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub pipeline: String,
    pub object: String,
}

impl Ctx {
    pub fn pg(&self, context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> InboundError {
        let (pipeline, object) = (self.pipeline.clone(), self.object.clone());
        move |source| InboundError::Postgres {
            pipeline,
            object,
            context,
            source,
        }
    }

    pub fn sf(&self) -> impl FnOnce(crate::salesforce::SalesforceError) -> InboundError {
        let (pipeline, object) = (self.pipeline.clone(), self.object.clone());
        move |source| InboundError::Salesforce {
            pipeline,
            object,
            source: Box::new(source),
        }
    }

    pub fn source(&self) -> impl FnOnce(SourceError) -> InboundError {
        let (pipeline, object) = (self.pipeline.clone(), self.object.clone());
        move |source| InboundError::Source {
            pipeline,
            object,
            source,
        }
    }

    pub fn state(&self) -> impl FnOnce(crate::checkpoint::StateError) -> InboundError {
        let (pipeline, object) = (self.pipeline.clone(), self.object.clone());
        move |source| InboundError::State {
            pipeline,
            object,
            source,
        }
    }

    pub fn table(&self, table: &str, reason: impl Into<String>) -> InboundError {
        InboundError::Table {
            pipeline: self.pipeline.clone(),
            object: self.object.clone(),
            table: table.to_string(),
            reason: reason.into(),
        }
    }

    pub fn corrupt(&self, reason: impl Into<String>) -> InboundError {
        InboundError::Corrupt {
            pipeline: self.pipeline.clone(),
            object: self.object.clone(),
            reason: reason.into(),
        }
    }
}
