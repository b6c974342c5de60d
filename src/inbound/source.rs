//! The contract between an inbound source (CDC subscriber, poller) and the applier.

use std::future::Future;

use super::event::{Position, SourceBatch, Start};
use crate::error_class::{Classify, ErrorClass};

/// An ordered, resumable stream of Salesforce changes for one or more objects.
///
/// Contract:
/// - [`ChangeSource::next_batch`] returns events in commit order, each exactly once per
///   subscription; after a restart from [`Start::After`] a position, no event at or
///   before it is returned again and none after it is skipped.
/// - A batch may be empty (nothing happened within the source's wait); its `position`
///   then still reports where the source stands.
/// - [`SourceError::PositionLost`] means the stored position can no longer be resumed
///   from (past retention, corrupted): the caller must resync (re-read by SystemModstamp),
///   never silently continue from the latest position.
/// - Transient failures (dropped stream, 5xx) are retried inside the source where it can
///   resume exactly; what it returns as an error is for the caller's supervisor.
pub trait ChangeSource: Send {
    /// The position the source would start from for [`Start::Latest`] right now: taken
    /// before an initial load so no change made during the load is missed.
    fn tip(&mut self) -> impl Future<Output = Result<Position, SourceError>> + Send;

    /// Starts (or restarts) reading from `start`.
    fn start(&mut self, start: Start) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// The next batch of events.
    fn next_batch(&mut self) -> impl Future<Output = Result<SourceBatch, SourceError>> + Send;
}

/// Why a source could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The stored position cannot be resumed from; resync.
    #[error("the stored position of {topic} can no longer be resumed from ({reason}); a resync by SystemModstamp is needed")]
    PositionLost { topic: String, reason: String },
    /// Credentials were refused.
    #[error("Salesforce refused the credentials for {topic}: {reason}")]
    Auth { topic: String, reason: String },
    /// Worth retrying after a backoff (stream dropped, service unavailable).
    #[error("{topic}: {reason}")]
    Transient { topic: String, reason: String },
    /// The configuration or the data is wrong (unknown topic, undecodable payload).
    #[error("{topic}: {reason}")]
    Permanent { topic: String, reason: String },
}

impl Classify for SourceError {
    fn class(&self) -> ErrorClass {
        match self {
            SourceError::PositionLost { .. } | SourceError::Permanent { .. } => {
                ErrorClass::Permanent
            }
            SourceError::Auth { .. } => ErrorClass::Auth,
            SourceError::Transient { .. } => ErrorClass::Transient,
        }
    }
}
