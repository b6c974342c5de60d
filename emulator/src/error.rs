//! Salesforce-shaped errors: the error codes, a [`FieldError`] any endpoint can render
//! (REST array with `errorCode`, per-record result with `statusCode`, Bulk `sf__Error`), and
//! [`ApiError`], the axum response for failed REST calls.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Salesforce error / status codes the emulator produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ErrorCode {
    InvalidSessionId,
    RequestLimitExceeded,
    MalformedQuery,
    InvalidField,
    InvalidType,
    NotFound,
    EntityIsDeleted,
    DuplicateValue,
    DuplicateExternalId,
    RequiredFieldMissing,
    StringTooLong,
    InvalidOrNullForRestrictedPicklist,
    UnableToLockRow,
    InvalidCrossReferenceKey,
    MalformedId,
    FieldIntegrityException,
    InvalidFieldForInsertUpdate,
    InvalidEmailAddress,
    NumberOutsideValidRange,
    JsonParserError,
    InvalidQueryLocator,
    ExceededIdLimit,
    InvalidReplicationDate,
    ProcessingHalted,
    AllOrNoneOperationRolledBack,
    MethodNotAllowed,
    InvalidTypeOnFieldInRecord,
    CannotUpdateConverted,
    UnknownException,
    ServerUnavailable,
    InvalidEntity,
    InvalidJob,
    ApiDisabledForOrg,
    MissingArgument,
}

impl ErrorCode {
    /// The wire name (`REQUIRED_FIELD_MISSING`).
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidSessionId => "INVALID_SESSION_ID",
            RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
            MalformedQuery => "MALFORMED_QUERY",
            InvalidField => "INVALID_FIELD",
            InvalidType => "INVALID_TYPE",
            NotFound => "NOT_FOUND",
            EntityIsDeleted => "ENTITY_IS_DELETED",
            DuplicateValue => "DUPLICATE_VALUE",
            DuplicateExternalId => "DUPLICATE_EXTERNAL_ID",
            RequiredFieldMissing => "REQUIRED_FIELD_MISSING",
            StringTooLong => "STRING_TOO_LONG",
            InvalidOrNullForRestrictedPicklist => "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            UnableToLockRow => "UNABLE_TO_LOCK_ROW",
            InvalidCrossReferenceKey => "INVALID_CROSS_REFERENCE_KEY",
            MalformedId => "MALFORMED_ID",
            FieldIntegrityException => "FIELD_INTEGRITY_EXCEPTION",
            InvalidFieldForInsertUpdate => "INVALID_FIELD_FOR_INSERT_UPDATE",
            InvalidEmailAddress => "INVALID_EMAIL_ADDRESS",
            NumberOutsideValidRange => "NUMBER_OUTSIDE_VALID_RANGE",
            JsonParserError => "JSON_PARSER_ERROR",
            InvalidQueryLocator => "INVALID_QUERY_LOCATOR",
            ExceededIdLimit => "EXCEEDED_ID_LIMIT",
            InvalidReplicationDate => "INVALID_REPLICATION_DATE",
            ProcessingHalted => "PROCESSING_HALTED",
            AllOrNoneOperationRolledBack => "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            InvalidTypeOnFieldInRecord => "INVALID_TYPE_ON_FIELD_IN_RECORD",
            CannotUpdateConverted => "CANNOT_UPDATE_CONVERTED_LEAD",
            UnknownException => "UNKNOWN_EXCEPTION",
            ServerUnavailable => "SERVER_UNAVAILABLE",
            InvalidEntity => "INVALIDENTITY",
            InvalidJob => "INVALIDJOB",
            ApiDisabledForOrg => "API_DISABLED_FOR_ORG",
            MissingArgument => "MISSING_ARGUMENT",
        }
    }

    /// The HTTP status a single REST call answers with when this is its error.
    pub fn http_status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidSessionId => StatusCode::UNAUTHORIZED,
            RequestLimitExceeded | ApiDisabledForOrg => StatusCode::FORBIDDEN,
            NotFound | EntityIsDeleted => StatusCode::NOT_FOUND,
            DuplicateExternalId => StatusCode::MULTIPLE_CHOICES,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            UnknownException => StatusCode::INTERNAL_SERVER_ERROR,
            ServerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Salesforce error: code, message and the fields involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FieldError {
    /// Error / status code.
    pub code: ErrorCode,
    /// Human-readable message, worded like Salesforce's.
    pub message: String,
    /// Field API names involved (may be empty).
    pub fields: Vec<String>,
}

impl FieldError {
    /// An error without fields.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> FieldError {
        FieldError {
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// An error about the given fields.
    pub fn with_fields(
        code: ErrorCode,
        message: impl Into<String>,
        fields: Vec<String>,
    ) -> FieldError {
        FieldError {
            code,
            message: message.into(),
            fields,
        }
    }

    /// `NOT_FOUND` / "The requested resource does not exist".
    pub fn not_found() -> FieldError {
        FieldError::new(ErrorCode::NotFound, "The requested resource does not exist")
    }

    /// `ENTITY_IS_DELETED` / "entity is deleted".
    pub fn entity_is_deleted() -> FieldError {
        FieldError::new(ErrorCode::EntityIsDeleted, "entity is deleted")
    }

    /// The REST top-level form: `{"message","errorCode","fields"}`.
    pub fn to_rest_json(&self) -> Value {
        json!({"message": self.message, "errorCode": self.code.as_str(), "fields": self.fields})
    }

    /// The per-record result form (collections, composite results): `{"statusCode","message","fields"}`.
    pub fn to_result_json(&self) -> Value {
        json!({"statusCode": self.code.as_str(), "message": self.message, "fields": self.fields})
    }

    /// The Bulk API 2.0 `sf__Error` form: `CODE:message:field1,field2 --`.
    pub fn to_bulk_string(&self) -> String {
        format!(
            "{}:{}:{} --",
            self.code.as_str(),
            self.message,
            self.fields.join(",")
        )
    }
}

/// A failed REST call: an HTTP status and Salesforce's error array.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The errors rendered in the body.
    pub errors: Vec<FieldError>,
}

impl ApiError {
    /// One error with the status its code implies.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::from(FieldError::new(code, message))
    }

    /// Errors with an explicit status.
    pub fn with_status(status: StatusCode, errors: Vec<FieldError>) -> ApiError {
        ApiError { status, errors }
    }

    /// 404 NOT_FOUND.
    pub fn not_found() -> ApiError {
        ApiError::from(FieldError::not_found())
    }

    /// 400 JSON_PARSER_ERROR with the given message.
    pub fn json_parser(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::JsonParserError, message)
    }

    /// 401 INVALID_SESSION_ID.
    pub fn invalid_session() -> ApiError {
        ApiError::new(ErrorCode::InvalidSessionId, "Session expired or invalid")
    }

    /// 403 REQUEST_LIMIT_EXCEEDED.
    pub fn limit_exceeded() -> ApiError {
        ApiError::new(
            ErrorCode::RequestLimitExceeded,
            "TotalRequests Limit exceeded.",
        )
    }

    /// The JSON body (an array of error objects).
    pub fn body(&self) -> Value {
        Value::Array(self.errors.iter().map(FieldError::to_rest_json).collect())
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> ApiError {
        ApiError {
            status: e.code.http_status(),
            errors: vec![e],
        }
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> ApiError {
        let status = errors
            .first()
            .map(|e| e.code.http_status())
            .unwrap_or(StatusCode::BAD_REQUEST);
        ApiError { status, errors }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
