//! Sending a job's records: sObject Collections (200 per call, synchronous) when few, one
//! Bulk API 2.0 job when many, through the existing [`SalesforceClient`]. Every path returns
//! the same [`Sent`]: the keys Salesforce acknowledged, the rows it rejected (with its code)
//! and the keys it never processed — never a guess. A whole-call failure is an `Err`, and
//! the caller records only what an earlier call acknowledged.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::store::RowError;
use crate::salesforce::{
    IngestJobRequest, IngestOperation, JobState, PollPolicy, RecordResult, ResultColumns,
    SalesforceClient, SalesforceError,
};
use crate::sink::records_to_csv;

/// A record to send and the key its outcome is reported under.
pub type Keyed = (String, Map<String, Value>);

/// What Salesforce did with a set of records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sent {
    /// Keys acknowledged, with the record Id Salesforce reported.
    pub ok: Vec<(String, String)>,
    /// Rows rejected, with Salesforce's code.
    pub failed: Vec<RowError>,
    /// Keys not processed (a Bulk job that failed or was aborted): send them again.
    pub unprocessed: Vec<String>,
    /// API calls made (for the report).
    pub calls: u64,
}

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// Upsert by this field (`Id` or an External ID field).
    Upsert(&'a str),
    /// Create.
    Insert,
    /// Delete by Id (each record holds only `Id`).
    Delete,
}

/// Send `records` of `object`: Bulk when there are at least `bulk_threshold`, else
/// Collections. For Bulk, `key_column` is the CSV column each result is matched back by.
pub async fn send(
    client: &SalesforceClient,
    object: &str,
    write: Write<'_>,
    records: Vec<Keyed>,
    bulk_threshold: usize,
    key_column: &str,
) -> Result<Sent, SalesforceError> {
    if records.is_empty() {
        return Ok(Sent::default());
    }
    if records.len() >= bulk_threshold {
        bulk(client, object, write, records, key_column).await
    } else {
        collections(client, object, write, records).await
    }
}

async fn collections(
    client: &SalesforceClient,
    object: &str,
    write: Write<'_>,
    records: Vec<Keyed>,
) -> Result<Sent, SalesforceError> {
    let calls = records.len().div_ceil(crate::salesforce::COLLECTION_LIMIT) as u64;
    let (keys, bodies): (Vec<String>, Vec<Map<String, Value>>) = records.into_iter().unzip();
    let results = match write {
        Write::Upsert(field) => {
            client
                .upsert_collection(object, field, bodies, false)
                .await?
        }
        Write::Insert => client.create_collection(object, bodies, false).await?,
        Write::Delete => {
            let ids: Vec<String> = bodies
                .iter()
                .map(|b| {
                    b.get("Id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            client.delete_collection(&ids, false).await?
        }
    };
    let mut sent = Sent {
        calls,
        ..Sent::default()
    };
    for (key, r) in keys.into_iter().zip(results) {
        record_result(&mut sent, key, r, write);
    }
    Ok(sent)
}

fn record_result(sent: &mut Sent, key: String, r: RecordResult, write: Write<'_>) {
    let gone = |code: &str| matches!(code, "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY");
    match r.errors.first() {
        None if r.success => sent.ok.push((key, r.id.unwrap_or_default())),
        // A delete of what is already gone is done.
        Some(e) if write == Write::Delete && gone(&e.status_code) => {
            sent.ok.push((key, r.id.unwrap_or_default()))
        }
        first => sent.failed.push(RowError {
            key,
            code: first.map_or("UNKNOWN_EXCEPTION".into(), |e| e.status_code.clone()),
            message: first.map_or(String::new(), |e| e.message.clone()),
            fields: first.map_or(Vec::new(), |e| e.fields.clone()),
        }),
    }
}

async fn bulk(
    client: &SalesforceClient,
    object: &str,
    write: Write<'_>,
    records: Vec<Keyed>,
    key_column: &str,
) -> Result<Sent, SalesforceError> {
    let req = match write {
        Write::Upsert(field) => IngestJobRequest::upsert(object, field),
        Write::Insert => IngestJobRequest::new(object, IngestOperation::Insert),
        Write::Delete => IngestJobRequest::new(object, IngestOperation::Delete),
    };
    let bodies: Vec<Map<String, Value>> = records.into_iter().map(|(_, r)| r).collect();
    let job = client.create_ingest_job(&req).await?;
    client
        .upload_job_data(&job.id, Bytes::from(records_to_csv(&bodies)))
        .await?;
    client.close_job(&job.id).await?;
    let poll = PollPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(5),
        timeout: None,
    };
    let info = client.wait_for_job(&job.id, &poll).await?;
    let mut sent = Sent {
        calls: 4,
        ..Sent::default()
    };
    let key = |r: &dyn ResultColumns| r.column(key_column).unwrap_or_default().to_string();
    if info.state != JobState::Aborted {
        for ok in client.successful_results(&info).await? {
            sent.ok.push((key(&ok), ok.id.clone()));
        }
        for bad in client.failed_results(&info).await? {
            let gone = write == Write::Delete
                && matches!(
                    bad.error.code.as_str(),
                    "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY"
                );
            if gone {
                sent.ok.push((key(&bad), String::new()));
                continue;
            }
            sent.failed.push(RowError {
                key: key(&bad),
                code: bad.error.code.clone(),
                message: bad.error.message.clone(),
                fields: bad.error.fields.clone(),
            });
        }
        sent.calls += 2;
    }
    if matches!(info.state, JobState::Failed | JobState::Aborted) {
        for u in client.unprocessed_records(&info).await? {
            sent.unprocessed.push(key(&u));
        }
        sent.calls += 1;
    }
    Ok(sent)
}
