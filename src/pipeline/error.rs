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
