//! Bulk API 2.0 job metadata shared by ingest and query jobs: states, the create request's
//! options, and the job-info JSON Salesforce returns.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Number, Value};

use super::csv_io::{ColumnDelimiter, Dialect, LineEnding};
use super::BulkError;

/// A job's `state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Ingest: created, waiting for the upload.
    Open,
    /// Upload closed (ingest) or query queued; waiting for the processor.
    UploadComplete,
    /// Being processed.
    InProgress,
    /// Processing finished (rows may still have failed).
    JobComplete,
    /// The job failed as a whole; see `errorMessage`.
    Failed,
    /// Aborted by the client.
    Aborted,
}

impl JobState {
    /// The API name.
    pub fn as_api(self) -> &'static str {
        match self {
            Self::Open => "Open",
            Self::UploadComplete => "UploadComplete",
            Self::InProgress => "InProgress",
            Self::JobComplete => "JobComplete",
            Self::Failed => "Failed",
            Self::Aborted => "Aborted",
        }
    }

    /// Whether the job can no longer change.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::JobComplete | Self::Failed | Self::Aborted)
    }
}

/// The metadata every job carries.
#[derive(Clone, Debug)]
pub struct JobMeta {
    /// 18-char id with key prefix `750`.
    pub id: String,
    /// `insert`, `upsert`, … or `query` / `queryAll`.
    pub operation: String,
    /// Canonical object name.
    pub object: String,
    /// The creating user's id.
    pub created_by: String,
    /// Creation time.
    pub created_date: DateTime<Utc>,
    /// Last change.
    pub system_modstamp: DateTime<Utc>,
    /// Current state.
    pub state: JobState,
    /// API version the job was created with, e.g. `"59.0"`.
    pub api_version: String,
    /// CSV dialect.
    pub dialect: Dialect,
    /// Why the job failed.
    pub error_message: Option<String>,
    /// Rows processed so far.
    pub processed: u64,
    /// Rows failed so far.
    pub failed: u64,
    /// Milliseconds spent processing.
    pub processing_ms: u64,
}

impl JobMeta {
    /// Moves to `state`, stamping `systemModstamp`.
    pub fn set_state(&mut self, state: JobState, now: DateTime<Utc>) {
        self.state = state;
        self.system_modstamp = now;
    }

    /// The fields common to the create response, job info and listings.
    pub fn base_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("operation".into(), json!(self.operation));
        m.insert("object".into(), json!(self.object));
        m.insert("createdById".into(), json!(self.created_by));
        m.insert("createdDate".into(), json!(job_datetime(self.created_date)));
        m.insert(
            "systemModstamp".into(),
            json!(job_datetime(self.system_modstamp)),
        );
        m.insert("state".into(), json!(self.state.as_api()));
        m
    }

    /// `concurrencyMode`, `contentType`, `apiVersion` (a JSON number), `lineEnding`,
    /// `columnDelimiter`, appended to `m`.
    pub fn append_format(&self, m: &mut Map<String, Value>) {
        m.insert("concurrencyMode".into(), json!("Parallel"));
        m.insert("contentType".into(), json!("CSV"));
        m.insert("apiVersion".into(), api_version_number(&self.api_version));
        m.insert(
            "lineEnding".into(),
            json!(self.dialect.line_ending.as_api()),
        );
        m.insert(
            "columnDelimiter".into(),
            json!(self.dialect.delimiter.as_api()),
        );
    }

    /// Processing statistics, appended to `m`.
    pub fn append_stats(&self, m: &mut Map<String, Value>, with_failed: bool) {
        m.insert("numberRecordsProcessed".into(), json!(self.processed));
        if with_failed {
            m.insert("numberRecordsFailed".into(), json!(self.failed));
        }
        m.insert("retries".into(), json!(0));
        m.insert("totalProcessingTime".into(), json!(self.processing_ms));
        if with_failed {
            m.insert("apiActiveProcessingTime".into(), json!(self.processing_ms));
            m.insert("apexProcessingTime".into(), json!(0));
        }
        if let Some(msg) = &self.error_message {
            m.insert("errorMessage".into(), json!(msg));
        }
    }
}

/// Job timestamps: `2024-01-02T17:38:59.000+0000`.
pub fn job_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// `"59.0"` as the JSON number `59.0` (kept verbatim thanks to `arbitrary_precision`).
pub fn api_version_number(version: &str) -> Value {
    version
        .parse::<Number>()
        .map(Value::Number)
        .unwrap_or_else(|_| Value::String(version.to_string()))
}

/// Reads `lineEnding` and `columnDelimiter` from a create request (both optional).
pub fn dialect_from_request(body: &Map<String, Value>) -> Result<Dialect, BulkError> {
    let mut d = Dialect::default();
    if let Some(v) = body.get("lineEnding") {
        let s = v.as_str().unwrap_or_default();
        d.line_ending = LineEnding::from_api(s)
            .ok_or_else(|| BulkError::invalid_enum("lineEnding", v, "LF, CRLF"))?;
    }
    if let Some(v) = body.get("columnDelimiter") {
        let s = v.as_str().unwrap_or_default();
        d.delimiter = ColumnDelimiter::from_api(s).ok_or_else(|| {
            BulkError::invalid_enum(
                "columnDelimiter",
                v,
                "BACKQUOTE, CARET, COMMA, PIPE, SEMICOLON, TAB",
            )
        })?;
    }
    if let Some(v) = body.get("contentType") {
        if v.as_str() != Some("CSV") {
            return Err(BulkError::invalid_enum("contentType", v, "CSV"));
        }
    }
    Ok(d)
}

/// Reads a required string field of a create request.
pub fn required_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, BulkError> {
    match body.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(BulkError::InvalidJob(format!(
            "Required field is missing: {key}"
        ))),
        Some(other) => Err(BulkError::invalid_enum(key, other, "a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_is_a_number_with_one_decimal() {
        assert_eq!(api_version_number("59.0").to_string(), "59.0");
    }

    #[test]
    fn bad_delimiter_is_rejected() {
        let body = json!({"columnDelimiter": "SPACE"});
        let e = dialect_from_request(body.as_object().unwrap()).unwrap_err();
        assert!(e.to_string().contains("columnDelimiter"));
    }
}
