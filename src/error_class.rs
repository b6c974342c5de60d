//! One classification of errors, used by every retry decision in pgforce: the Salesforce
//! client's retries, the flusher's per-record retries and the pipeline supervisor.
//!
//! The rules live here, in one place: what an HTTP status and Salesforce `errorCode`
//! ([`api_class`]), a Postgres SQLSTATE ([`pg_class`]) and a per-record error code
//! ([`record_class`]) mean. Every error type that can stop work implements [`Classify`]
//! beside its definition by mapping its variants onto these rules, so the answer to "retry
//! this?" is never decided twice in two different ways. This module depends on nothing of
//! pgforce's (a leaf in the layering):
//! - [`ErrorClass::Transient`]: the same work may succeed later (a network blip, a server
//!   restart, 5xx, lock contention) — retry with backoff;
//! - [`ErrorClass::Throttled`]: Salesforce asked us to slow down (API limit, 429) — retry
//!   with backoff, after the governor's pause;
//! - [`ErrorClass::Auth`]: credentials were refused — retrying cannot help until an operator
//!   fixes them; the pipeline stops with a clear status;
//! - [`ErrorClass::Permanent`]: the input or the configuration is wrong (an upload too
//!   large, a field that does not exist, a corrupt state row) — never retried as is.

use std::error::Error as StdError;

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    Transient,
    Throttled,
    Permanent,
    Auth,
}

impl ErrorClass {
    /// Worth doing the same work again after a backoff.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Transient | ErrorClass::Throttled)
    }

    /// The metric label / status text.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Throttled => "throttled",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Auth => "auth",
        }
    }
}

/// An error that knows its [`ErrorClass`].
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

/// A Salesforce API error by status and `errorCode`.
pub fn api_class(status: u16, code: &str) -> ErrorClass {
    match (status, code) {
        (_, "REQUEST_LIMIT_EXCEEDED") | (420 | 429, _) => ErrorClass::Throttled,
        (401, _) | (_, "INVALID_SESSION_ID") => ErrorClass::Auth,
        (408 | 500..=599, _) | (_, "UNABLE_TO_LOCK_ROW") => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// A tokio-postgres error: a lost connection or a server going away is transient;
/// permission and schema errors are not.
pub fn pg_class(e: &tokio_postgres::Error) -> ErrorClass {
    if e.is_closed() {
        return ErrorClass::Transient;
    }
    match e.code().map(|c| c.code()) {
        // No SQLSTATE: the connection broke mid-query.
        None => ErrorClass::Transient,
        // connection exceptions, operator intervention (shutdown), insufficient resources,
        // serialization failure / deadlock, lock not available, query canceled
        Some(c)
            if c.starts_with("08")
                || c.starts_with("57")
                || c.starts_with("53")
                || c.starts_with("40")
                || c == "55P03" =>
        {
            ErrorClass::Transient
        }
        Some("28000" | "28P01") => ErrorClass::Auth,
        Some(_) => ErrorClass::Permanent,
    }
}

/// The class of one record's failure by its Salesforce `errorCode` (a record rejected for
/// its data is permanent: it is dead-lettered, not retried).
pub fn record_class(code: &str) -> ErrorClass {
    match code {
        "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE" | "REQUEST_RUNNING_TOO_LONG" => {
            ErrorClass::Transient
        }
        "REQUEST_LIMIT_EXCEEDED" => ErrorClass::Throttled,
        _ => ErrorClass::Permanent,
    }
}

/// A boxed error that keeps the class of what it boxes, for seams that carry
/// `Box<dyn Error>` (the backfill sink): the layer that boxes knows the class, the layer
/// that unboxes reads it back without knowing the type.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct Classified {
    class: ErrorClass,
    #[source]
    source: Box<dyn StdError + Send + Sync>,
}

impl Classified {
    /// Box `e`, remembering its class.
    pub fn boxed<E: Classify + StdError + Send + Sync + 'static>(
        e: E,
    ) -> Box<dyn StdError + Send + Sync> {
        Box::new(Classified {
            class: e.class(),
            source: Box::new(e),
        })
    }

    /// The class of a boxed error, when it was boxed through [`Classified::boxed`].
    pub fn class_of(e: &(dyn StdError + Send + Sync + 'static)) -> Option<ErrorClass> {
        e.downcast_ref::<Classified>().map(|c| c.class)
    }
}
