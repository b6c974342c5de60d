//! [`SalesforceError`]: every way a Salesforce call can fail, each with a message that says
//! what to do next. Their retry classification lives in [`crate::error_class`].
//!
//! Errors never carry tokens, secrets or request bodies; response snippets are short and come
//! only from non-token endpoints.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Result alias used throughout the Salesforce client.
pub type Result<T, E = SalesforceError> = std::result::Result<T, E>;

/// An error from the Salesforce client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SalesforceError {
    /// The client configuration is unusable (bad URL, plain http to a remote host, bad key).
    #[error("salesforce client configuration: {message}")]
    Config {
        /// What is wrong and how to fix it.
        message: String,
    },

    /// The caller passed something Salesforce would reject before any call was made.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong and how to fix it.
        message: String,
    },

    /// The OAuth token endpoint refused to issue a token, or a fresh token was rejected.
    #[error("salesforce authentication failed: {error}: {description} ({hint})")]
    Auth {
        /// The OAuth `error` (e.g. `invalid_grant`) or Salesforce error code.
        error: String,
        /// The OAuth `error_description` as sent by Salesforce.
        description: String,
        /// What to change so the next attempt succeeds.
        hint: String,
    },

    /// Salesforce answered with an error body `[{"message","errorCode","fields"}]`.
    #[error(
        "salesforce API error {status} {code}: {message}{}",
        fields_suffix(fields)
    )]
    Api {
        /// HTTP status code.
        status: u16,
        /// Salesforce `errorCode`, e.g. `REQUIRED_FIELD_MISSING`.
        code: String,
        /// Salesforce's message.
        message: String,
        /// Fields the error refers to (may be empty).
        fields: Vec<String>,
    },

    /// The org's API request limit is exhausted (`REQUEST_LIMIT_EXCEEDED`) or the governor is
    /// holding calls back to keep the configured reserve.
    #[error(
        "salesforce API limit reached: {reason}; calls are paused until {until} \
         (raise the org's API allocation, lower pgforce's reserve, or wait)"
    )]
    LimitExceeded {
        /// Why calls are paused.
        reason: String,
        /// When the governor will try again.
        until: DateTime<Utc>,
    },

    /// The request could not be completed (connection, TLS, timeout) even after retries.
    #[error(
        "could not reach salesforce after {attempts} attempt(s): {message} \
         (check network access to the instance URL)"
    )]
    Transport {
        /// How many attempts were made.
        attempts: u32,
        /// Whether the last failure was a timeout.
        timeout: bool,
        /// The underlying error, without URLs' query strings or headers.
        message: String,
    },

    /// Salesforce answered with something the client did not expect.
    #[error("unexpected response from salesforce ({context}): {detail}")]
    BadResponse {
        /// Which call produced it.
        context: String,
        /// What was wrong, with a short snippet of the body where safe.
        detail: String,
    },

    /// A single-record upsert matched more than one record by external id (HTTP 300).
    #[error(
        "upsert of {object} by {field} matched {} records; make the external id unique \
         (mark the field Unique) or clean up the duplicates: {}",
        matches.len(), matches.join(", ")
    )]
    MultipleMatches {
        /// The sObject.
        object: String,
        /// The external id field.
        field: String,
        /// URLs (or ids) of the matching records, as returned by Salesforce.
        matches: Vec<String>,
    },

    /// A Bulk API 2.0 upload exceeds what one job accepts.
    #[error(
        "bulk upload of {size} bytes exceeds the {limit}-byte limit per job; \
         split the rows over several jobs"
    )]
    UploadTooLarge {
        /// Size of the CSV the caller passed.
        size: usize,
        /// The largest upload accepted.
        limit: usize,
    },

    /// A Bulk API 2.0 job ended in `Failed` or `Aborted`.
    #[error(
        "bulk job {job_id} ended {state}: {message} \
         (fetch its failed and unprocessed records, fix them and submit a new job)"
    )]
    JobFailed {
        /// The job id.
        job_id: String,
        /// The terminal state (`Failed` or `Aborted`).
        state: String,
        /// Salesforce's `errorMessage`, or a note that there was none.
        message: String,
    },

    /// Waiting for a Bulk API 2.0 job took longer than the poll policy allows.
    #[error("bulk job {job_id} still {state} after {waited:?}; poll it again later")]
    JobTimeout {
        /// The job id.
        job_id: String,
        /// The last state seen.
        state: String,
        /// How long the client waited.
        waited: Duration,
    },
}

/// Formats ` [fields: A, B]` when fields are present.
fn fields_suffix(fields: &[String]) -> String {
    if fields.is_empty() {
        String::new()
    } else {
        format!(" [fields: {}]", fields.join(", "))
    }
}

impl SalesforceError {
    /// True when trying the same call again later may succeed: transport failures, 5xx,
    /// 408/420/429, `UNABLE_TO_LOCK_ROW`, and the API limit (retry once the governor resumes).
    /// False for validation errors, auth errors and anything the caller must fix.
    pub fn is_transient(&self) -> bool {
        crate::error_class::Classify::class(self).is_retryable()
    }

    /// The Salesforce `errorCode`, when this is an API error.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Builds a [`SalesforceError::Config`].
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
        }
    }

    /// Builds a [`SalesforceError::InvalidInput`].
    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput {
            message: message.into(),
        }
    }

    /// Builds a [`SalesforceError::BadResponse`] carrying a short, safe snippet of `body`.
    pub(crate) fn bad_response(context: impl Into<String>, what: &str, body: &[u8]) -> Self {
        Self::BadResponse {
            context: context.into(),
            detail: format!("{what}; body starts with: {}", snippet(body)),
        }
    }
}

/// The first ~200 characters of a body, on one line, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("<empty>");
    }
    out
}

/// One element of a Salesforce REST error body.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ApiErrorItem {
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// The `errorCode`.
    #[serde(default, rename = "errorCode")]
    pub error_code: String,
    /// Fields the error refers to.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
}

/// Turns an error response into [`SalesforceError::Api`]. Bodies that are not the documented
/// error array (HTML from an edge proxy, empty bodies) become `HTTP_<status>` with a snippet.
pub(crate) fn api_error_from_body(status: u16, body: &[u8]) -> SalesforceError {
    let items: Option<Vec<ApiErrorItem>> = serde_json::from_slice(body).ok();
    match items.and_then(|mut v| {
        if v.is_empty() {
            None
        } else {
            Some(v.remove(0))
        }
    }) {
        Some(item) => SalesforceError::Api {
            status,
            code: item.error_code,
            message: item.message,
            fields: item.fields.unwrap_or_default(),
        },
        None => SalesforceError::Api {
            status,
            code: format!("HTTP_{status}"),
            message: snippet(body),
            fields: Vec::new(),
        },
    }
}

impl crate::error_class::Classify for SalesforceError {
    fn class(&self) -> crate::error_class::ErrorClass {
        use crate::error_class::{api_class, ErrorClass};
        match self {
            Self::LimitExceeded { .. } => ErrorClass::Throttled,
            // A Bulk job that changed state under us (aborted by someone else, or closed by
            // a run that crashed): "not in Open state", "is in state Aborted and cannot be
            // closed". The step is rerun, and reconciliation creates a new job.
            Self::Api { code, message, .. }
                if code == "INVALIDJOB" && message.contains("state") =>
            {
                ErrorClass::Transient
            }
            Self::Api { status, code, .. } => api_class(*status, code),
            Self::Auth { .. } => ErrorClass::Auth,
            Self::Transport { .. } | Self::JobTimeout { .. } => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_error_array() {
        let body = br#"[{"message":"Required fields are missing: [Name]","errorCode":"REQUIRED_FIELD_MISSING","fields":["Name"]}]"#;
        let err = api_error_from_body(400, body);
        assert_eq!(err.api_code(), Some("REQUIRED_FIELD_MISSING"));
        assert!(!err.is_transient());
        assert!(err.to_string().contains("[fields: Name]"));
    }

    #[test]
    fn non_array_body_becomes_http_code() {
        let err = api_error_from_body(503, b"<html>down</html>");
        assert_eq!(err.api_code(), Some("HTTP_503"));
        assert!(err.is_transient());
    }

    #[test]
    fn an_upload_to_a_job_that_left_open_is_retried() {
        let e = api_error_from_body(
            400,
            br#"[{"errorCode":"INVALIDJOB","message":"Job 750x is not in Open state; upload data only to an Open job."}]"#,
        );
        assert!(e.is_transient());
        let other = api_error_from_body(
            400,
            br#"[{"errorCode":"INVALIDJOB","message":"bad field"}]"#,
        );
        assert!(!other.is_transient());
    }

    #[test]
    fn lock_row_is_transient_even_on_400() {
        let api = |code: &str| {
            api_error_from_body(
                400,
                format!("[{{\"errorCode\":\"{code}\",\"message\":\"m\"}}]").as_bytes(),
            )
        };
        assert!(api("UNABLE_TO_LOCK_ROW").is_transient());
        assert!(!api("INVALID_FIELD").is_transient());
    }

    #[test]
    fn snippet_is_bounded() {
        let long = "x".repeat(1000);
        assert!(snippet(long.as_bytes()).chars().count() <= 201);
    }
}
