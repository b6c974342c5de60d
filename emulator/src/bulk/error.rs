//! Errors of the Bulk API 2.0 endpoints, rendered as Salesforce's `[{"errorCode","message"}]`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::ApiError;

/// A failed Bulk API 2.0 call.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// 400 `INVALIDJOB`: the request does not fit the job (bad state, second upload, …).
    #[error("{0}")]
    InvalidJob(String),
    /// 400 `JSON_PARSER_ERROR`: the body is not the JSON the endpoint takes.
    #[error("{0}")]
    JsonParser(String),
    /// 404 `NOT_FOUND`: no such job.
    #[error("The requested resource does not exist")]
    NotFound,
    /// 409: results read with another API version than the job's.
    #[error("{0}")]
    VersionMismatch(String),
    /// 400 `INVALIDLOCATOR`: a results locator this job never handed out.
    #[error("Invalid locator: {0}")]
    InvalidLocator(String),
    /// 413: the upload is over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// 400 with a SOQL error code (query jobs).
    #[error("{code}: {message}")]
    Soql {
        /// Salesforce error code.
        code: String,
        /// Message.
        message: String,
    },
    /// Any error the emulator core renders itself (auth, limits, …).
    #[error("api error")]
    Api(ApiError),
}

impl BulkError {
    /// `JSON_PARSER_ERROR` for an enum field holding a value outside `allowed`.
    pub fn invalid_enum(field: &str, value: &Value, allowed: &str) -> BulkError {
        BulkError::JsonParser(format!(
            "Cannot deserialize instance of {field} from VALUE_STRING value {} or request may be missing a required field. Allowed values: {allowed}",
            value.as_str().map_or_else(|| value.to_string(), str::to_string)
        ))
    }

    /// HTTP status and error code.
    fn parts(&self) -> (StatusCode, &str) {
        match self {
            BulkError::InvalidJob(_) => (StatusCode::BAD_REQUEST, "INVALIDJOB"),
            BulkError::JsonParser(_) => (StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR"),
            BulkError::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            BulkError::VersionMismatch(_) => (StatusCode::CONFLICT, "INVALIDJOB"),
            BulkError::InvalidLocator(_) => (StatusCode::BAD_REQUEST, "INVALIDLOCATOR"),
            BulkError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "INVALIDBATCH"),
            BulkError::Soql { code, .. } => (StatusCode::BAD_REQUEST, code.as_str()),
            BulkError::Api(_) => (StatusCode::BAD_REQUEST, ""),
        }
    }
}

impl From<ApiError> for BulkError {
    fn from(e: ApiError) -> Self {
        BulkError::Api(e)
    }
}

impl IntoResponse for BulkError {
    fn into_response(self) -> Response {
        if let BulkError::Api(e) = self {
            return e.into_response();
        }
        let (status, code) = self.parts();
        let message = match &self {
            BulkError::Soql { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let body = json!([{"errorCode": code, "message": message}]);
        (status, axum::Json(body)).into_response()
    }
}
