//! Bulk API 2.0 query: create a query job, wait for it, and read its results page by page with
//! `maxRecords` and the `Sforce-Locator` header (the string `null` marks the last page). Each
//! page is a CSV with its own header row. In these results null and empty text are both an
//! empty cell; they are returned as `None`.

use futures::stream::{self, BoxStream, StreamExt};
use reqwest::Method;
use serde::Serialize;

use super::bulk::{JobInfo, JobKind, PollPolicy};
use super::bulk_csv::{parse_csv, ColumnDelimiter, LineEnding};
use super::client::{Call, SalesforceClient};
use super::error::{Result, SalesforceError};

/// `query` or `queryAll` (includes deleted and archived rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum QueryOperation {
    /// Live rows.
    Query,
    /// Live, deleted and archived rows.
    QueryAll,
}

/// The body of `POST /jobs/query`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryJobRequest<'a> {
    /// query / queryAll.
    operation: QueryOperation,
    /// The SOQL.
    query: &'a str,
    /// Row terminator of results.
    line_ending: LineEnding,
    /// Column delimiter of results.
    column_delimiter: ColumnDelimiter,
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResultsPage {
    /// Column names in SELECT order.
    pub columns: Vec<String>,
    /// Rows; an empty cell (null or empty text) is `None`.
    pub rows: Vec<Vec<Option<String>>>,
    /// Locator of the next page; `None` after the last page.
    pub next_locator: Option<String>,
    /// `Sforce-NumberOfRecords` of this page, when sent.
    pub number_of_records: Option<u64>,
}

/// A stream of result pages.
pub type ResultsPageStream = BoxStream<'static, Result<QueryResultsPage>>;

impl SalesforceClient {
    /// `POST /jobs/query` (comma-delimited, LF results).
    #[tracing::instrument(level = "debug", skip(self, soql))]
    pub async fn create_query_job(&self, soql: &str, operation: QueryOperation) -> Result<JobInfo> {
        let body = QueryJobRequest {
            operation,
            query: soql,
            line_ending: LineEnding::Lf,
            column_delimiter: ColumnDelimiter::Comma,
        };
        let call =
            Call::new(Method::POST, &["jobs", "query"], "bulk_create_query", "").json(&body)?;
        let job: JobInfo = self.send_json(&call).await?;
        tracing::info!(job_id = %job.id, object = %job.object, "bulk query job created");
        Ok(job)
    }

    /// Polls a query job until it is terminal and returns it.
    pub async fn wait_for_query_job(&self, job_id: &str, poll: &PollPolicy) -> Result<JobInfo> {
        self.wait_for(JobKind::Query, job_id, poll).await
    }

    /// One page of `GET /jobs/query/{id}/results` (`locator` `None` for the first page).
    #[tracing::instrument(level = "debug", skip(self, job), fields(job_id = %job.id))]
    pub async fn query_results_page(
        &self,
        job: &JobInfo,
        locator: Option<&str>,
        max_records: Option<u32>,
    ) -> Result<QueryResultsPage> {
        let mut call = Call::new(
            Method::GET,
            &["jobs", "query", &job.id, "results"],
            "bulk_query_results",
            &job.object,
        );
        call.accept_csv = true;
        call.long_timeout = true;
        if let Some(max) = max_records {
            call = call.query("maxRecords", max.to_string());
        }
        if let Some(locator) = locator {
            call = call.query("locator", locator);
        }
        let reply = self.send(&call).await?;
        let header = |name: &str| {
            reply
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .map(String::from)
        };
        let next_locator = header("sforce-locator").filter(|l| !l.is_empty() && l != "null");
        let number_of_records = match header("sforce-numberofrecords") {
            Some(n) => Some(n.parse().map_err(|_| SalesforceError::BadResponse {
                context: "bulk query results".into(),
                detail: format!("Sforce-NumberOfRecords is not a number: {n:?}"),
            })?),
            None => None,
        };
        let parsed = parse_csv(&reply.body, job.delimiter(), "bulk query results")?;
        let rows = parsed
            .rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| if v.is_empty() { None } else { Some(v) })
                    .collect()
            })
            .collect();
        Ok(QueryResultsPage {
            columns: parsed.header,
            rows,
            next_locator,
            number_of_records,
        })
    }

    /// Every results page of a completed query job, following `Sforce-Locator` until `null`.
    pub fn query_results(&self, job: JobInfo, max_records: Option<u32>) -> ResultsPageStream {
        let client = self.clone();
        stream::try_unfold(Some(None::<String>), move |state| {
            let client = client.clone();
            let job = job.clone();
            async move {
                let Some(locator) = state else {
                    return Ok(None);
                };
                let page = client
                    .query_results_page(&job, locator.as_deref(), max_records)
                    .await?;
                let next = page.next_locator.clone().map(Some);
                Ok(Some((page, next)))
            }
        })
        .boxed()
    }
}
