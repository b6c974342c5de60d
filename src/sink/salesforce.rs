//! The real [`Destination`]: Salesforce through [`SalesforceClient`] — Bulk API 2.0 jobs for
//! big steps, sObject Collections for small ones, SOQL to find Ids for deletes.
//!
//! API requests are spent carefully: a job's status polls are paced by what earlier jobs
//! showed ([`super::poll`]), a job's failed (or successful) results are downloaded only when
//! its counts say there are any, and a step's Collections calls go several at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use bytes::Bytes;
use futures::TryStreamExt;
use serde_json::{Map, Value};

use super::csv::records_to_csv;
use super::destination::{Destination, JobStatus, Outcome, RecordFailure, SinkError};
use super::poll::Pacer;
use crate::batch::StepKind;
use crate::salesforce::{
    IngestJobRequest, IngestOperation, JobInfo, JobState, RecordResult, SalesforceClient,
    SalesforceError,
};

/// First status poll of a job without history; the pacer learns from there.
const POLL_INITIAL: Duration = Duration::from_millis(100);
/// Longest wait between two status polls of a running job.
const POLL_MAX: Duration = Duration::from_secs(10);

/// Salesforce as a [`Destination`].
#[derive(Clone)]
pub struct SalesforceDestination {
    client: SalesforceClient,
    pacer: Arc<Pacer>,
    /// Jobs this process uploaded and has not waited for yet: their row count and when
    /// they were closed (the pacer times their first poll from them).
    uploads: Arc<DashMap<String, (u64, Instant)>>,
    /// Collections calls of one step in flight at once.
    calls_in_flight: usize,
    /// How an (object, key field)'s values are written in SOQL, from describe (Salesforce
    /// rejects a quoted value for a Number, Date or Checkbox field).
    literal_kinds: Arc<DashMap<(String, String), LiteralKind>>,
}

impl SalesforceDestination {
    pub fn new(client: SalesforceClient) -> Self {
        SalesforceDestination {
            client,
            pacer: Arc::new(Pacer::new(POLL_INITIAL, POLL_MAX)),
            uploads: Arc::new(DashMap::new()),
            calls_in_flight: 1,
            literal_kinds: Arc::new(DashMap::new()),
        }
    }

    /// Send up to `n` of a step's sObject Collections calls at once (at least 1).
    pub fn with_calls_in_flight(mut self, n: usize) -> Self {
        self.calls_in_flight = n.max(1);
        self
    }

    /// Poll a job until it is terminal, paced by [`Pacer`].
    async fn wait_for_job(&self, job_id: &str) -> Result<JobInfo, SinkError> {
        let (rows, closed) = match self.uploads.remove(job_id) {
            Some((_, (rows, at))) => (Some(rows), at),
            None => (None, Instant::now()),
        };
        let (mut poll, mut wait) = self.pacer.begin(rows);
        loop {
            tokio::time::sleep_until(tokio::time::Instant::from_std(closed + wait)).await;
            let info = self.client.job_info(job_id).await.map_err(remote)?;
            let elapsed = closed.elapsed();
            if info.state.is_terminal() {
                self.pacer.finished(&poll, elapsed);
                tracing::info!(job_id, state = ?info.state, processed = info.number_records_processed,
                    failed = info.number_records_failed, "bulk job finished");
                return Ok(info);
            }
            let next = self.pacer.next(
                &mut poll,
                elapsed,
                info.state,
                info.number_records_processed,
            );
            // Waits are measured from the close.
            wait = elapsed + next;
        }
    }

    /// How `object.field`'s values are written in SOQL, per describe.
    async fn literal_kind(&self, object: &str, field: &str) -> Result<LiteralKind, SinkError> {
        let key = (object.to_string(), field.to_string());
        if let Some(v) = self.literal_kinds.get(&key) {
            return Ok(*v);
        }
        let describe = self.client.describe_json(object).await.map_err(remote)?;
        let kind = describe["fields"]
            .as_array()
            .and_then(|fs| {
                fs.iter().find(|f| {
                    f["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(field))
                })
            })
            .and_then(|f| f["type"].as_str())
            .map_or(LiteralKind::Text, LiteralKind::of);
        self.literal_kinds.insert(key, kind);
        Ok(kind)
    }

    /// Records whose `field` holds one of `keys`: (the key it matched, Id) pairs.
    async fn query_matches(
        &self,
        object: &str,
        field: &str,
        keys: &[String],
    ) -> Result<Vec<(String, String)>, SinkError> {
        let kind = self.literal_kind(object, field).await?;
        // Values come back in the field's own form (`42.0` for 42, `A@x.com` for
        // `a@x.com`): match them to the keys by their canonical text.
        let by_value: HashMap<String, Vec<&String>> =
            keys.iter().fold(HashMap::new(), |mut m, k| {
                if let Some(c) = kind.canonical(k) {
                    m.entry(c).or_default().push(k);
                }
                m
            });
        let mut found = Vec::new();
        for chunk in keys.chunks(200) {
            let list: Vec<String> = chunk.iter().filter_map(|k| kind.literal(k)).collect();
            if list.is_empty() {
                continue;
            }
            let soql = format!(
                "SELECT Id, {field} FROM {object} WHERE {field} IN ({})",
                list.join(",")
            );
            let records: Vec<Map<String, Value>> = self
                .client
                .query(&soql)
                .try_collect()
                .await
                .map_err(remote)?;
            for r in records {
                let Some(Value::String(id)) = r.get("Id") else {
                    continue;
                };
                let value = key_of(&r, field);
                let keys = kind.canonical(&value).and_then(|c| by_value.get(&c));
                for k in keys.into_iter().flatten() {
                    found.push(((*k).clone(), id.clone()));
                }
            }
        }
        Ok(found)
    }

    pub fn client(&self) -> &SalesforceClient {
        &self.client
    }
}

fn remote(e: SalesforceError) -> SinkError {
    SinkError::Remote(Box::new(e))
}

/// The key of a record: its external id field's value as text.
fn key_of(record: &Map<String, Value>, field: &str) -> String {
    match record.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn outcome(key: String, r: RecordResult) -> Outcome {
    let result = if r.success {
        Ok((r.id.unwrap_or_default(), r.created))
    } else {
        let first = r.errors.into_iter().next();
        Err(RecordFailure {
            code: first
                .as_ref()
                .map_or("UNKNOWN_EXCEPTION".into(), |e| e.status_code.clone()),
            message: first.as_ref().map_or(String::new(), |e| e.message.clone()),
            fields: first.map_or(Vec::new(), |e| e.fields),
        })
    };
    Outcome { key, result }
}

/// Quote a value for a SOQL string literal.
fn soql_quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// How a field's values are written as SOQL literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LiteralKind {
    /// Quoted (`'a@x.com'`); compared case-insensitively.
    Text,
    /// Bare numbers (double, int, currency, percent).
    Number,
    /// Bare date, datetime or checkbox values (`2024-01-31`, `true`).
    Bare,
}

impl LiteralKind {
    /// The kind for a describe `type`.
    fn of(field_type: &str) -> LiteralKind {
        match field_type {
            "double" | "int" | "long" | "currency" | "percent" => LiteralKind::Number,
            "date" | "datetime" | "boolean" => LiteralKind::Bare,
            _ => LiteralKind::Text,
        }
    }

    /// A key as a literal; `None` when it cannot match such a field (never spliced).
    fn literal(self, key: &str) -> Option<String> {
        match self {
            LiteralKind::Text => Some(soql_quote(key)),
            LiteralKind::Number => numeric_text(key),
            LiteralKind::Bare => bare_literal(key),
        }
    }

    /// The form two equal values share (what SOQL's `=` compares).
    fn canonical(self, v: &str) -> Option<String> {
        match self {
            LiteralKind::Text => Some(v.to_lowercase()),
            LiteralKind::Number => numeric_text(v),
            LiteralKind::Bare => bare_literal(v).map(|s| s.to_lowercase()),
        }
    }
}

/// A date, datetime or boolean key as a bare SOQL literal: only digits, letters, `-`,
/// `:`, `.`, `+` and `Z` pass, so nothing else can be spliced into the query.
fn bare_literal(v: &str) -> Option<String> {
    let ok = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '+'));
    ok.then(|| v.to_string())
}

/// A key as a SOQL literal for a text or a numeric field. A key that is not a number
/// cannot match a numeric field, so it has no literal (and no record).
#[cfg(test)]
fn soql_literal(key: &str, numeric: bool) -> Option<String> {
    let kind = if numeric {
        LiteralKind::Number
    } else {
        LiteralKind::Text
    };
    kind.literal(key)
}

/// A number's canonical text (`42`, `-1.5`), or `None` when `v` is not a number.
fn numeric_text(v: &str) -> Option<String> {
    let d: rust_decimal::Decimal = v.trim().parse().ok()?;
    Some(d.normalize().to_string())
}

impl Destination for SalesforceDestination {
    async fn create_job(
        &self,
        object: &str,
        kind: StepKind,
        external_id_field: &str,
    ) -> Result<String, SinkError> {
        let req = match kind {
            StepKind::Upsert => IngestJobRequest::upsert(object, external_id_field),
            StepKind::Delete => IngestJobRequest::new(object, IngestOperation::Delete),
        };
        Ok(self
            .client
            .create_ingest_job(&req)
            .await
            .map_err(remote)?
            .id)
    }

    async fn upload_and_close(
        &self,
        job_id: &str,
        _kind: StepKind,
        _external_id_field: &str,
        records: &[Map<String, Value>],
    ) -> Result<(), SinkError> {
        let csv = Bytes::from(records_to_csv(records));
        self.client
            .upload_job_data(job_id, csv)
            .await
            .map_err(remote)?;
        self.client.close_job(job_id).await.map_err(remote)?;
        self.uploads
            .insert(job_id.to_string(), (records.len() as u64, Instant::now()));
        Ok(())
    }

    async fn job_status(&self, job_id: &str) -> Result<JobStatus, SinkError> {
        match self.client.job_info(job_id).await {
            Ok(info) => Ok(match info.state {
                JobState::Open => JobStatus::Open,
                JobState::JobComplete | JobState::Failed => JobStatus::Finished,
                JobState::Aborted => JobStatus::Gone,
                JobState::UploadComplete | JobState::InProgress | JobState::Unknown => {
                    JobStatus::Running
                }
            }),
            Err(SalesforceError::Api { status: 404, .. }) => Ok(JobStatus::Gone),
            Err(e) => Err(remote(e)),
        }
    }

    async fn abort_job(&self, job_id: &str) -> Result<(), SinkError> {
        match self.client.abort_job(job_id).await {
            Ok(_) | Err(SalesforceError::Api { status: 404, .. }) => Ok(()),
            Err(e) => Err(remote(e)),
        }
    }

    async fn job_results(
        &self,
        job_id: &str,
        key_column: &str,
    ) -> Result<(Vec<Outcome>, Vec<String>), SinkError> {
        let info = self.wait_for_job(job_id).await?;
        let mut outcomes = Vec::new();
        if info.state == JobState::Aborted {
            // Aborted by someone else mid-flight: every row it did not process is sent again.
            let unprocessed = self
                .client
                .unprocessed_records_keyed(&info, key_column)
                .await
                .map_err(remote)?
                .into_iter()
                .map(|mut u| u.fields.take(key_column).unwrap_or_default())
                .collect();
            return Ok((outcomes, unprocessed));
        }
        // A job's counts say whether a result file can hold anything: a download that
        // cannot is an API request saved (a wrong count cannot lose a row: a key without
        // an outcome is sent again, see the protocol's `without_outcome`).
        let succeeded = info
            .number_records_processed
            .saturating_sub(info.number_records_failed);
        let successful = if succeeded > 0 || info.state != JobState::JobComplete {
            self.client
                .successful_results_keyed(&info, key_column)
                .await
                .map_err(remote)?
        } else {
            Vec::new()
        };
        outcomes.reserve(successful.len());
        for mut ok in successful {
            let key = ok.fields.take(key_column).unwrap_or_default();
            outcomes.push(Outcome {
                key,
                result: Ok((ok.id, ok.created)),
            });
        }
        let failed = if info.number_records_failed > 0 || info.state != JobState::JobComplete {
            self.client
                .failed_results_keyed(&info, key_column)
                .await
                .map_err(remote)?
        } else {
            Vec::new()
        };
        for mut bad in failed {
            let key = bad.fields.take(key_column).unwrap_or_default();
            outcomes.push(Outcome {
                key,
                result: Err(RecordFailure {
                    code: bad.error.code,
                    message: bad.error.message,
                    fields: bad.error.fields,
                }),
            });
        }
        let unprocessed = if info.state == JobState::Failed {
            self.client
                .unprocessed_records_keyed(&info, key_column)
                .await
                .map_err(remote)?
                .into_iter()
                .map(|mut u| u.fields.take(key_column).unwrap_or_default())
                .collect()
        } else {
            Vec::new()
        };
        Ok((outcomes, unprocessed))
    }

    async fn upsert_records(
        &self,
        object: &str,
        external_id_field: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<Outcome>, SinkError> {
        let keys: Vec<String> = records
            .iter()
            .map(|r| key_of(r, external_id_field))
            .collect();
        let with_type: Vec<Map<String, Value>> = records
            .iter()
            .map(|r| {
                let mut m = Map::with_capacity(r.len() + 1);
                m.insert("attributes".into(), serde_json::json!({ "type": object }));
                m.extend(r.iter().map(|(k, v)| (k.clone(), v.clone())));
                m
            })
            .collect();
        let results = self
            .client
            .upsert_collection_in_flight(
                object,
                external_id_field,
                with_type,
                false,
                self.calls_in_flight,
            )
            .await
            .map_err(remote)?;
        Ok(keys
            .into_iter()
            .zip(results)
            .map(|(k, r)| outcome(k, r))
            .collect())
    }

    async fn delete_ids(&self, ids: &[String]) -> Result<Vec<Outcome>, SinkError> {
        let results = self
            .client
            .delete_collection(ids, false)
            .await
            .map_err(remote)?;
        Ok(ids
            .iter()
            .cloned()
            .zip(results)
            .map(|(k, r)| outcome(k, r))
            .collect())
    }

    async fn find_ids(
        &self,
        object: &str,
        external_id_field: &str,
        keys: &[String],
    ) -> Result<HashMap<String, String>, SinkError> {
        let found = self.query_matches(object, external_id_field, keys).await?;
        Ok(found.into_iter().collect())
    }

    async fn find_matches(
        &self,
        object: &str,
        field: &str,
        keys: &[String],
    ) -> Result<HashMap<String, Vec<String>>, SinkError> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for (key, id) in self.query_matches(object, field, keys).await? {
            let ids = out.entry(key).or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(out)
    }

    async fn read_records(
        &self,
        object: &str,
        ids: &[String],
        fields: &[String],
    ) -> Result<HashMap<String, Map<String, Value>>, SinkError> {
        let mut select = vec!["Id".to_string(), "SystemModstamp".to_string()];
        for f in fields {
            if !select.iter().any(|s| s.eq_ignore_ascii_case(f)) {
                select.push(f.clone());
            }
        }
        // Ids are alphanumeric: anything else is not an Id and is never spliced.
        let ids: Vec<&String> = ids
            .iter()
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
            .collect();
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(200) {
            let list: Vec<String> = chunk.iter().map(|id| format!("'{id}'")).collect();
            let soql = format!(
                "SELECT {} FROM {object} WHERE Id IN ({})",
                select.join(", "),
                list.join(",")
            );
            let records: Vec<Map<String, Value>> = self
                .client
                .query(&soql)
                .try_collect()
                .await
                .map_err(remote)?;
            for r in records {
                if let Some(Value::String(id)) = r.get("Id") {
                    out.insert(id.clone(), r);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_for_text_fields_and_bare_for_number_fields() {
        assert_eq!(soql_literal("a'b", false).as_deref(), Some("'a\\'b'"));
        assert_eq!(soql_literal("42", false).as_deref(), Some("'42'"));
        assert_eq!(soql_literal("42", true).as_deref(), Some("42"));
        assert_eq!(soql_literal("42.50", true).as_deref(), Some("42.5"));
        // Not a number: cannot match a Number field, and is never spliced into SOQL.
        assert_eq!(soql_literal("1 OR Id != null", true), None);
    }

    #[test]
    fn match_values_are_written_as_their_field_type_wants() {
        assert_eq!(LiteralKind::of("email"), LiteralKind::Text);
        assert_eq!(LiteralKind::of("date"), LiteralKind::Bare);
        assert_eq!(
            LiteralKind::Bare.literal("2024-01-31").as_deref(),
            Some("2024-01-31")
        );
        assert_eq!(LiteralKind::Bare.literal("true OR Id != null"), None);
        assert_eq!(
            LiteralKind::Text.canonical("A@X.com"),
            LiteralKind::Text.canonical("a@x.COM")
        );
    }

    #[test]
    fn numeric_results_match_their_keys_by_value() {
        assert_eq!(numeric_text("42"), numeric_text("42.0"));
        assert_eq!(numeric_text("x"), None);
    }
}
