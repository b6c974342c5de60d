//! The replication resources: getDeleted (`GET /sobjects/X/deleted?start=&end=`), which
//! lists records deleted in a window (soft and hard deletes alike; about 15 days back,
//! minute-truncated windows, `salesforce-api.md` §3.5).

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde::Deserialize;

use super::client::{Call, SalesforceClient};
use super::error::Result;

/// One deleted record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecord {
    pub id: String,
    /// As Salesforce sends it, e.g. `2024-05-07T22:07:19.000+0000`.
    pub deleted_date: String,
}

/// The answer of getDeleted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecords {
    #[serde(default)]
    pub deleted_records: Vec<DeletedRecord>,
    /// The oldest time the delete log still covers; a window starting before it may have
    /// lost deletes.
    #[serde(default)]
    pub earliest_date_available: Option<String>,
    /// Where the answer stops; the next window starts here.
    #[serde(default)]
    pub latest_date_covered: Option<String>,
}

impl SalesforceClient {
    /// `GET /sobjects/{object}/deleted?start=&end=`: records deleted in `[start, end)`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get_deleted(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<DeletedRecords> {
        let call = Call::new(
            Method::GET,
            &["sobjects", object, "deleted"],
            "get_deleted",
            object,
        )
        .query("start", start.to_rfc3339_opts(SecondsFormat::Secs, true))
        .query("end", end.to_rfc3339_opts(SecondsFormat::Secs, true));
        self.send_json(&call).await
    }
}
