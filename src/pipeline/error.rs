//! [`PipelineError`]: everything that can stop a pipeline, with what to do about it.

use crate::checkpoint::StateError;
use crate::error_class::{pg_class, Classify, ErrorClass};
use crate::pgoutput::assembler::AssemblerError;
use crate::replication::ReplicationError;
use crate::salesforce::SalesforceError;
use crate::sink::SinkError;

/// Why a pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("pipeline {pipeline}: configuration: {message}")]
    Config { pipeline: String, message: String },
    #[error("pipeline {pipeline}: replication: {source}")]
    Replication {
        pipeline: String,
        #[source]
        source: ReplicationError,
    },
    #[error("pipeline {pipeline}: decoding the replication stream: {source}")]
    Decode {
        pipeline: String,
        #[source]
        source: AssemblerError,
    },
    #[error("pipeline {pipeline}: Salesforce: {source}")]
    Salesforce {
        pipeline: String,
        #[source]
        source: SalesforceError,
    },
    #[error("pipeline {pipeline}: flushing to Salesforce: {source}")]
    Sink {
        pipeline: String,
        #[source]
        source: SinkError,
    },
    #[error("pipeline {pipeline}: state store: {source}")]
    State {
        pipeline: String,
        #[source]
        source: StateError,
    },
    #[error("pipeline {pipeline}: change journal: {source}")]
    Journal {
        pipeline: String,
        #[source]
        source: crate::journal::JournalError,
    },
    /// Reading the source tables' definitions failed (a lost connection is transient).
    #[error("pipeline {pipeline}: {source}")]
    Catalog {
        pipeline: String,
        #[source]
        source: crate::config::catalog::CatalogError,
    },
    #[error("pipeline {pipeline}: the replication stream ended (server closed the connection)")]
    StreamEnded { pipeline: String },
}

impl Classify for PipelineError {
    fn class(&self) -> ErrorClass {
        match self {
            PipelineError::Replication { source, .. } => source.class(),
            PipelineError::Salesforce { source, .. } => source.class(),
            PipelineError::Sink { source, .. } => source.class(),
            PipelineError::State { source, .. } => source.class(),
            PipelineError::StreamEnded { .. } => ErrorClass::Transient,
            PipelineError::Journal { source, .. } => source.class(),
            PipelineError::Catalog { source, .. } => pg_class(&source.0),
            PipelineError::Config { .. } | PipelineError::Decode { .. } => ErrorClass::Permanent,
        }
    }
}

impl PipelineError {
    /// Worth restarting the pipeline for (a server restart, a network blip, a busy org);
    /// see [`crate::error_class`].
    pub fn is_transient(&self) -> bool {
        self.class().is_retryable()
    }
}

/// Wrap a replication failure of pipeline `p`.
pub(super) fn err_repl(p: &str) -> impl FnOnce(ReplicationError) -> PipelineError + '_ {
    move |source| PipelineError::Replication {
        pipeline: p.to_string(),
        source,
    }
}

/// Wrap a state-store failure of pipeline `p`.
pub(super) fn err_state(p: &str) -> impl FnOnce(StateError) -> PipelineError + '_ {
    move |source| PipelineError::State {
        pipeline: p.to_string(),
        source,
    }
}

/// Wrap a sink failure of pipeline `p`.
pub(super) fn err_sink(p: &str) -> impl FnOnce(SinkError) -> PipelineError + '_ {
    move |source| PipelineError::Sink {
        pipeline: p.to_string(),
        source,
    }
}

/// The classification of every error type, end to end (here because `pipeline` may see
/// them all; `error_class` itself is a leaf).
#[cfg(test)]
mod classification_tests {
    use crate::error_class::{Classified, Classify, ErrorClass};
    use crate::pipeline::PipelineError;
    use crate::replication::ReplicationError;
    use crate::salesforce::SalesforceError;
    use crate::sink::SinkError;

    fn api(status: u16, code: &str) -> SalesforceError {
        SalesforceError::Api {
            status,
            code: code.into(),
            message: String::new(),
            fields: Vec::new(),
        }
    }

    #[test]
    fn salesforce_errors_by_status_and_code() {
        assert_eq!(
            api(503, "SERVER_UNAVAILABLE").class(),
            ErrorClass::Transient
        );
        assert_eq!(
            api(400, "UNABLE_TO_LOCK_ROW").class(),
            ErrorClass::Transient
        );
        assert_eq!(
            api(403, "REQUEST_LIMIT_EXCEEDED").class(),
            ErrorClass::Throttled
        );
        assert_eq!(api(429, "").class(), ErrorClass::Throttled);
        assert_eq!(api(401, "INVALID_SESSION_ID").class(), ErrorClass::Auth);
        assert_eq!(api(400, "INVALIDJOB").class(), ErrorClass::Permanent);
        let too_large = SalesforceError::UploadTooLarge { size: 2, limit: 1 };
        assert_eq!(too_large.class(), ErrorClass::Permanent);
    }

    #[test]
    fn a_sink_error_keeps_the_class_of_the_salesforce_error_inside() {
        let e = SinkError::Remote(Box::new(SalesforceError::UploadTooLarge {
            size: 2,
            limit: 1,
        }));
        assert_eq!(e.class(), ErrorClass::Permanent);
        let e = SinkError::Remote(Box::new(api(500, "")));
        assert_eq!(e.class(), ErrorClass::Transient);
        let p = PipelineError::Sink {
            pipeline: "p".into(),
            source: SinkError::Remote(Box::new(SalesforceError::Auth {
                error: "invalid_grant".into(),
                description: String::new(),
                hint: String::new(),
            })),
        };
        assert_eq!(p.class(), ErrorClass::Auth);
        assert!(!p.class().is_retryable());
    }

    #[test]
    fn a_backfill_sink_failure_is_classified_by_what_failed() {
        let e = ReplicationError::Sink {
            table: "t".into(),
            source: Classified::boxed(SinkError::Remote(Box::new(api(400, "INVALIDJOB")))),
        };
        assert_eq!(e.class(), ErrorClass::Permanent);
        let e = ReplicationError::Sink {
            table: "t".into(),
            source: Classified::boxed(SinkError::Remote(Box::new(api(503, "")))),
        };
        assert_eq!(e.class(), ErrorClass::Transient);
    }
}
