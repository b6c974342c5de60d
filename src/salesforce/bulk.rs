//! Bulk API 2.0 ingest: create a job, upload its CSV once, close it, wait for a terminal state,
//! then read successful, failed and unprocessed records.
//!
//! One upload per job is a Salesforce rule (a second `PUT` makes the close fail), so the upload
//! is retried only when Salesforce certainly did not receive it. Uploads are sent gzipped
//! (`Content-Encoding: gzip`; CSV compresses several times over, and the limit applies to
//! the uncompressed data). Result rows are in no
//! particular order; see [`super::bulk_csv::index_by`].

use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::bulk_csv::{
    parse_failed, parse_successful, parse_unprocessed, ColumnDelimiter, FailedRecord, LineEnding,
    SuccessfulRecord, UnprocessedRecord,
};
use super::client::{Body, Call, SalesforceClient, Target};
use super::error::{Result, SalesforceError};

/// Largest CSV accepted by [`SalesforceClient::upload_job_data`]: 100 MiB raw, which stays
/// under Salesforce's 150 MB limit after base64.
pub const MAX_UPLOAD_BYTES: usize = 100 * 1024 * 1024;

/// What an ingest job does with its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IngestOperation {
    /// Create records.
    Insert,
    /// Update by `Id`.
    Update,
    /// Insert or update by external id.
    Upsert,
    /// Move to the recycle bin by `Id`.
    Delete,
    /// Delete permanently by `Id` (needs the "Bulk API Hard Delete" permission).
    HardDelete,
}

/// The body of `POST /jobs/ingest`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestJobRequest {
    /// The sObject.
    pub object: String,
    /// The operation.
    pub operation: IngestOperation,
    /// External id field; required for upsert.
    #[serde(
        rename = "externalIdFieldName",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id_field: Option<String>,
    /// Always `CSV`.
    content_type: &'static str,
    /// Row terminator of the data.
    pub line_ending: LineEnding,
    /// Column delimiter of the data.
    pub column_delimiter: ColumnDelimiter,
    /// Assignment rule for Case/Lead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignment_rule_id: Option<String>,
}

impl IngestJobRequest {
    /// A job with LF line endings and comma delimiters.
    pub fn new(object: impl Into<String>, operation: IngestOperation) -> Self {
        Self {
            object: object.into(),
            operation,
            external_id_field: None,
            content_type: "CSV",
            line_ending: LineEnding::Lf,
            column_delimiter: ColumnDelimiter::Comma,
            assignment_rule_id: None,
        }
    }

    /// An upsert job keyed by `external_id_field`.
    pub fn upsert(object: impl Into<String>, external_id_field: impl Into<String>) -> Self {
        let mut req = Self::new(object, IngestOperation::Upsert);
        req.external_id_field = Some(external_id_field.into());
        req
    }
}

/// A Bulk API 2.0 job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Ingest job accepting its upload.
    Open,
    /// Upload finished (ingest) or query queued.
    UploadComplete,
    /// Being processed.
    InProgress,
    /// Done; results are available.
    JobComplete,
    /// Failed; see `error_message`. Rows processed before the failure stay committed.
    Failed,
    /// Aborted by a client.
    Aborted,
    /// A state this client does not know.
    #[serde(other)]
    Unknown,
}

impl JobState {
    /// True for `JobComplete`, `Failed` and `Aborted`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::JobComplete | Self::Failed | Self::Aborted)
    }
}

/// A Bulk API 2.0 job (ingest or query) as Salesforce reports it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// Job id (`750…`).
    pub id: String,
    /// `insert`, `upsert`, …, `query`, `queryAll`.
    #[serde(default)]
    pub operation: String,
    /// The sObject.
    #[serde(default)]
    pub object: String,
    /// Current state.
    pub state: JobState,
    /// External id field of an upsert job.
    #[serde(default)]
    pub external_id_field_name: Option<String>,
    /// Upload URL, relative and without a leading slash.
    #[serde(default)]
    pub content_url: Option<String>,
    /// Line ending of data and results.
    #[serde(default)]
    pub line_ending: Option<LineEnding>,
    /// Column delimiter of data and results.
    #[serde(default)]
    pub column_delimiter: Option<ColumnDelimiter>,
    /// `V2Ingest` or `V2Query`.
    #[serde(default)]
    pub job_type: Option<String>,
    /// Rows processed so far.
    #[serde(default)]
    pub number_records_processed: u64,
    /// Rows that failed.
    #[serde(default)]
    pub number_records_failed: u64,
    /// Why the job failed.
    #[serde(default)]
    pub error_message: Option<String>,
    /// Creation time as sent (`2024-01-02T17:38:59.000+0000`).
    #[serde(default)]
    pub created_date: Option<String>,
    /// Internal retries Salesforce made.
    #[serde(default)]
    pub retries: Option<u64>,
    /// Processing time in ms.
    #[serde(default)]
    pub total_processing_time: Option<u64>,
}

impl JobInfo {
    /// The job as-is when it is `JobComplete`, else [`SalesforceError::JobFailed`].
    pub fn check_complete(self) -> Result<JobInfo> {
        match self.state {
            JobState::JobComplete => Ok(self),
            state => Err(SalesforceError::JobFailed {
                job_id: self.id,
                state: format!("{state:?}"),
                message: self
                    .error_message
                    .unwrap_or_else(|| "Salesforce gave no errorMessage".into()),
            }),
        }
    }

    /// The delimiter results are written with.
    pub fn delimiter(&self) -> ColumnDelimiter {
        self.column_delimiter.unwrap_or_default()
    }
}

/// How [`SalesforceClient::wait_for_job`] polls: exponential from `initial` to `max`.
#[derive(Debug, Clone)]
pub struct PollPolicy {
    /// First wait. Default 1 s.
    pub initial: Duration,
    /// Longest wait between polls. Default 30 s.
    pub max: Duration,
    /// Give up after this long (`None`: wait as long as it takes). Default `None`.
    pub timeout: Option<Duration>,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            timeout: None,
        }
    }
}

/// `{"state": …}` for PATCH.
#[derive(Serialize)]
struct StateChange {
    /// The requested state.
    state: JobState,
}

/// `GET /jobs/ingest` page.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobList {
    /// Jobs on this page.
    #[serde(default)]
    records: Vec<JobInfo>,
    /// Last page.
    #[serde(default)]
    done: bool,
    /// Next page path.
    #[serde(default)]
    next_records_url: Option<String>,
}

/// Which kind of job a helper works on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum JobKind {
    /// `/jobs/ingest`.
    Ingest,
    /// `/jobs/query`.
    Query,
}

impl JobKind {
    /// The path segment.
    fn segment(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Query => "query",
        }
    }
}

impl SalesforceClient {
    /// `POST /jobs/ingest`.
    #[tracing::instrument(level = "debug", skip_all, fields(object = %req.object, operation = ?req.operation))]
    pub async fn create_ingest_job(&self, req: &IngestJobRequest) -> Result<JobInfo> {
        if req.operation == IngestOperation::Upsert && req.external_id_field.is_none() {
            return Err(SalesforceError::invalid_input(
                "an upsert job needs external_id_field",
            ));
        }
        let call = Call::new(
            Method::POST,
            &["jobs", "ingest"],
            "bulk_create_job",
            &req.object,
        )
        .json(req)?;
        let job: JobInfo = self.send_json(&call).await?;
        tracing::info!(job_id = %job.id, object = %req.object, "bulk ingest job created");
        Ok(job)
    }

    /// `PUT /jobs/ingest/{id}/batches` with the job's CSV (once per job; expects 201). Refuses
    /// more than [`MAX_UPLOAD_BYTES`] with [`SalesforceError::UploadTooLarge`].
    #[tracing::instrument(level = "debug", skip(self, csv), fields(bytes = csv.len()))]
    pub async fn upload_job_data(&self, job_id: &str, csv: Bytes) -> Result<()> {
        if csv.len() > MAX_UPLOAD_BYTES {
            return Err(SalesforceError::UploadTooLarge {
                size: csv.len(),
                limit: MAX_UPLOAD_BYTES,
            });
        }
        let mut call = Call::new(
            Method::PUT,
            &["jobs", "ingest", job_id, "batches"],
            "bulk_upload",
            "",
        );
        call.body = Body::GzipCsv(gzip(csv).await?);
        call.idempotent = false;
        call.long_timeout = true;
        let reply = self.send(&call).await?;
        if reply.status != 201 {
            tracing::warn!(status = reply.status, "bulk upload answered without 201");
        }
        Ok(())
    }

    /// Marks the upload complete (`UploadComplete`) so Salesforce starts processing.
    pub async fn close_job(&self, job_id: &str) -> Result<JobInfo> {
        self.set_job_state(JobKind::Ingest, job_id, JobState::UploadComplete)
            .await
    }

    /// Aborts an ingest job.
    pub async fn abort_job(&self, job_id: &str) -> Result<JobInfo> {
        self.set_job_state(JobKind::Ingest, job_id, JobState::Aborted)
            .await
    }

    /// Deletes an ingest job (its results go with it).
    pub async fn delete_job(&self, job_id: &str) -> Result<()> {
        self.delete_job_of(JobKind::Ingest, job_id).await
    }

    /// `GET /jobs/ingest/{id}`.
    pub async fn job_info(&self, job_id: &str) -> Result<JobInfo> {
        self.job_info_of(JobKind::Ingest, job_id).await
    }

    /// Polls an ingest job until it is `JobComplete`, `Failed` or `Aborted`, and returns it
    /// (use [`JobInfo::check_complete`] to turn failure into an error).
    pub async fn wait_for_job(&self, job_id: &str, poll: &PollPolicy) -> Result<JobInfo> {
        self.wait_for(JobKind::Ingest, job_id, poll).await
    }

    /// Every ingest job visible to the user, following `nextRecordsUrl`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list_ingest_jobs(&self) -> Result<Vec<JobInfo>> {
        let mut call = Call::new(Method::GET, &["jobs", "ingest"], "bulk_list_jobs", "");
        let mut jobs = Vec::new();
        loop {
            let page: JobList = self.send_json(&call).await?;
            jobs.extend(page.records);
            match (page.done, page.next_records_url) {
                (false, Some(next)) => call.target = Target::Path(next),
                _ => return Ok(jobs),
            }
        }
    }

    /// `GET …/successfulResults`: `sf__Id`, `sf__Created` and the original columns.
    pub async fn successful_results(&self, job: &JobInfo) -> Result<Vec<SuccessfulRecord>> {
        let body = self.job_results(job, "successfulResults").await?;
        parse_successful(&body, job.delimiter(), None)
    }

    /// [`Self::successful_results`] keeping only the original column `key` (what matching
    /// rows by key needs; a big job's other columns are never copied).
    pub async fn successful_results_keyed(
        &self,
        job: &JobInfo,
        key: &str,
    ) -> Result<Vec<SuccessfulRecord>> {
        let body = self.job_results(job, "successfulResults").await?;
        parse_successful(&body, job.delimiter(), Some(key))
    }

    /// `GET …/failedResults`: `sf__Id`, `sf__Error` (split) and the original columns.
    pub async fn failed_results(&self, job: &JobInfo) -> Result<Vec<FailedRecord>> {
        let body = self.job_results(job, "failedResults").await?;
        parse_failed(&body, job.delimiter(), None)
    }

    /// [`Self::failed_results`] keeping only the original column `key`.
    pub async fn failed_results_keyed(
        &self,
        job: &JobInfo,
        key: &str,
    ) -> Result<Vec<FailedRecord>> {
        let body = self.job_results(job, "failedResults").await?;
        parse_failed(&body, job.delimiter(), Some(key))
    }

    /// `GET …/unprocessedrecords`: rows never attempted (job aborted or failed).
    pub async fn unprocessed_records(&self, job: &JobInfo) -> Result<Vec<UnprocessedRecord>> {
        let body = self.job_results(job, "unprocessedrecords").await?;
        parse_unprocessed(&body, job.delimiter(), None)
    }

    /// [`Self::unprocessed_records`] keeping only the original column `key`.
    pub async fn unprocessed_records_keyed(
        &self,
        job: &JobInfo,
        key: &str,
    ) -> Result<Vec<UnprocessedRecord>> {
        let body = self.job_results(job, "unprocessedrecords").await?;
        parse_unprocessed(&body, job.delimiter(), Some(key))
    }

    /// Downloads one result CSV of an ingest job.
    #[tracing::instrument(level = "debug", skip(self, job), fields(job_id = %job.id, object = %job.object))]
    async fn job_results(&self, job: &JobInfo, resource: &str) -> Result<Bytes> {
        let mut call = Call::new(
            Method::GET,
            &["jobs", "ingest", &job.id, resource],
            "bulk_results",
            &job.object,
        );
        call.accept_csv = true;
        call.long_timeout = true;
        Ok(self.send(&call).await?.body)
    }

    /// PATCH a job's state.
    #[tracing::instrument(level = "debug", skip(self))]
    pub(crate) async fn set_job_state(
        &self,
        kind: JobKind,
        job_id: &str,
        state: JobState,
    ) -> Result<JobInfo> {
        let call = Call::new(
            Method::PATCH,
            &["jobs", kind.segment(), job_id],
            "bulk_set_state",
            "",
        )
        .json(&StateChange { state })?;
        self.send_json(&call).await
    }

    /// DELETE a job.
    #[tracing::instrument(level = "debug", skip(self))]
    pub(crate) async fn delete_job_of(&self, kind: JobKind, job_id: &str) -> Result<()> {
        let call = Call::new(
            Method::DELETE,
            &["jobs", kind.segment(), job_id],
            "bulk_delete_job",
            "",
        );
        self.send(&call).await.map(|_| ())
    }

    /// GET a job.
    pub(crate) async fn job_info_of(&self, kind: JobKind, job_id: &str) -> Result<JobInfo> {
        let call = Call::new(
            Method::GET,
            &["jobs", kind.segment(), job_id],
            "bulk_job_info",
            "",
        );
        self.send_json(&call).await
    }

    /// Polls until terminal, with exponential waits bounded by `poll`.
    #[tracing::instrument(level = "debug", skip(self, poll))]
    pub(crate) async fn wait_for(
        &self,
        kind: JobKind,
        job_id: &str,
        poll: &PollPolicy,
    ) -> Result<JobInfo> {
        let start = tokio::time::Instant::now();
        // The project's one backoff schedule: doubling from `initial`, capped at `max`.
        let schedule = crate::backoff::RetryPolicy {
            max_attempts: u32::MAX,
            base_delay: poll.initial,
            max_delay: poll.max.max(poll.initial),
        };
        let mut polls = 0u32;
        loop {
            polls = polls.saturating_add(1);
            let wait = schedule.cap(polls);
            let job = self.job_info_of(kind, job_id).await?;
            if job.state.is_terminal() {
                tracing::info!(job_id, state = ?job.state, processed = job.number_records_processed,
                    failed = job.number_records_failed, "bulk job finished");
                return Ok(job);
            }
            if let Some(timeout) = poll.timeout {
                if start.elapsed().saturating_add(wait) > timeout {
                    return Err(SalesforceError::JobTimeout {
                        job_id: job_id.to_string(),
                        state: format!("{:?}", job.state),
                        waited: start.elapsed(),
                    });
                }
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// `data` gzipped (fast level: the network, not the ratio, is what is saved), off the
/// async threads.
async fn gzip(data: Bytes) -> Result<Bytes> {
    let packed = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(data.len() / 4),
            flate2::Compression::fast(),
        );
        enc.write_all(&data)?;
        enc.finish()
    })
    .await
    .map_err(|e| SalesforceError::invalid_input(format!("compressing the upload: {e}")))?
    .map_err(|e| SalesforceError::invalid_input(format!("compressing the upload: {e}")))?;
    Ok(Bytes::from(packed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn uploads_are_gzipped_losslessly() {
        use std::io::Read;
        let csv = Bytes::from("External_Id__c,Name\n".repeat(1_000));
        let packed = gzip(csv.clone()).await.unwrap();
        assert!(packed.len() * 10 < csv.len(), "{} bytes", packed.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, csv);
    }

    #[test]
    fn job_request_shape() {
        let req = IngestJobRequest::upsert("Contact", "Ext__c");
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"object":"Contact","operation":"upsert",
                "externalIdFieldName":"Ext__c","contentType":"CSV","lineEnding":"LF",
                "columnDelimiter":"COMMA"})
        );
        let hd =
            serde_json::to_value(IngestJobRequest::new("A", IngestOperation::HardDelete)).unwrap();
        assert_eq!(hd["operation"], "hardDelete");
    }

    #[test]
    fn job_info_parses_documented_shape() {
        let job: JobInfo = serde_json::from_str(
            r#"{"id":"7505e00000Abc12AAB","operation":"upsert","object":"Contact",
            "createdById":"005","createdDate":"2024-01-02T17:38:59.000+0000",
            "state":"Failed","externalIdFieldName":"Ext__c","concurrencyMode":"Parallel",
            "contentType":"CSV","apiVersion":60.0,
            "contentUrl":"services/data/v60.0/jobs/ingest/7505e00000Abc12AAB/batches",
            "lineEnding":"LF","columnDelimiter":"PIPE","numberRecordsProcessed":5,
            "numberRecordsFailed":2,"errorMessage":"InvalidBatch : bad header"}"#,
        )
        .unwrap();
        assert_eq!(job.delimiter(), ColumnDelimiter::Pipe);
        assert!(job.state.is_terminal());
        let err = job.check_complete().unwrap_err();
        assert!(err.to_string().contains("bad header"), "{err}");
    }
}
