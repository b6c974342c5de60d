//! sObject Collections: create, upsert by external id and delete, up to 200 records per call, chunked
//! automatically. Per-record outcomes come back in request order as [`RecordResult`]s whose
//! errors use `statusCode` (not `errorCode`).
//!
//! `all_or_none` applies per chunk of 200: Salesforce cannot make several calls atomic. If a
//! later chunk fails as a whole (HTTP error), earlier chunks stay committed; both operations
//! are safe to repeat (a repeated delete reports `ENTITY_IS_DELETED` for the record).

use reqwest::Method;
use serde::{Deserialize, Deserializer, Serialize};

use super::client::{Call, SalesforceClient};
use super::error::{Result, SalesforceError};
use super::rest::Record;

/// Most records one sObject Collections call accepts.
pub const COLLECTION_LIMIT: usize = 200;

/// The outcome for one record of a Collections call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordResult {
    /// Record id (absent for a failed insert).
    #[serde(default)]
    pub id: Option<String>,
    /// Whether this record was saved or deleted.
    pub success: bool,
    /// For upsert: true when inserted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub created: bool,
    /// Why it failed.
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<RecordError>,
}

/// One per-record error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordError {
    /// e.g. `REQUIRED_FIELD_MISSING`, `ALL_OR_NONE_OPERATION_ROLLED_BACK`.
    #[serde(rename = "statusCode")]
    pub status_code: String,
    /// Salesforce's message.
    #[serde(default)]
    pub message: String,
    /// Fields involved.
    #[serde(default, deserialize_with = "null_as_default")]
    pub fields: Vec<String>,
}

/// Treats JSON `null` like a missing value.
fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The body of a Collections write.
#[derive(Serialize)]
struct CollectionBody<'a> {
    /// Roll back the chunk if any record fails.
    #[serde(rename = "allOrNone")]
    all_or_none: bool,
    /// The records, each with `attributes.type`.
    records: &'a [Record],
}

impl SalesforceClient {
    /// `PATCH /composite/sobjects/{object}/{ext_field}` in chunks of 200. Each record must
    /// carry the external-id field and not `Id`; `attributes.type` is added when missing.
    /// Results are in input order.
    pub async fn upsert_collection(
        &self,
        object: &str,
        ext_field: &str,
        records: Vec<Record>,
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>> {
        self.upsert_collection_in_flight(object, ext_field, records, all_or_none, 1)
            .await
    }

    /// [`Self::upsert_collection`] with up to `in_flight` chunks sent at once (for
    /// latency: each call costs a round trip and the org's time per record). Results are
    /// still in input order; on an error, chunks already sent (possibly later ones) stay
    /// committed, as with sequential calls, and repeating the upsert is safe.
    #[tracing::instrument(level = "debug", skip(self, records), fields(records = records.len()))]
    pub async fn upsert_collection_in_flight(
        &self,
        object: &str,
        ext_field: &str,
        mut records: Vec<Record>,
        all_or_none: bool,
        in_flight: usize,
    ) -> Result<Vec<RecordResult>> {
        use futures::{StreamExt, TryStreamExt};
        for r in &mut records {
            r.entry("attributes")
                .or_insert_with(|| serde_json::json!({ "type": object }));
        }
        let calls: Vec<_> = records
            .chunks(COLLECTION_LIMIT)
            .map(|chunk| self.upsert_chunk(object, ext_field, chunk, all_or_none))
            .collect();
        let per_chunk: Vec<Vec<RecordResult>> = futures::stream::iter(calls)
            .buffered(in_flight.max(1))
            .try_collect()
            .await?;
        Ok(per_chunk.into_iter().flatten().collect())
    }

    /// One Collections upsert call of at most [`COLLECTION_LIMIT`] records.
    async fn upsert_chunk(
        &self,
        object: &str,
        ext_field: &str,
        chunk: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>> {
        let body = CollectionBody {
            all_or_none,
            records: chunk,
        };
        let call = Call::new(
            Method::PATCH,
            &["composite", "sobjects", object, ext_field],
            "collection_upsert",
            object,
        )
        .json(&body)?;
        let chunk_results: Vec<RecordResult> = self.send_json(&call).await?;
        check_count(chunk_results, chunk.len())
    }

    /// `POST /composite/sobjects` in chunks of 200: create records of `object` (no `Id`);
    /// `attributes.type` is added when missing. Results are in input order. Not idempotent:
    /// a caller that may repeat it must find what an earlier attempt created first.
    #[tracing::instrument(level = "debug", skip(self, records), fields(records = records.len()))]
    pub async fn create_collection(
        &self,
        object: &str,
        mut records: Vec<Record>,
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>> {
        for r in &mut records {
            r.entry("attributes")
                .or_insert_with(|| serde_json::json!({ "type": object }));
        }
        let mut results = Vec::with_capacity(records.len());
        for chunk in records.chunks(COLLECTION_LIMIT) {
            let body = CollectionBody {
                all_or_none,
                records: chunk,
            };
            let call = Call::new(
                Method::POST,
                &["composite", "sobjects"],
                "collection_create",
                object,
            )
            .json(&body)?;
            let chunk_results: Vec<RecordResult> = self.send_json(&call).await?;
            results.extend(check_count(chunk_results, chunk.len())?);
        }
        Ok(results)
    }

    /// `DELETE /composite/sobjects?ids=…&allOrNone=…` in chunks of 200. Results are in input
    /// order.
    #[tracing::instrument(level = "debug", skip(self, ids), fields(records = ids.len()))]
    pub async fn delete_collection(
        &self,
        ids: &[String],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>> {
        let mut results = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(COLLECTION_LIMIT) {
            let call = Call::new(
                Method::DELETE,
                &["composite", "sobjects"],
                "collection_delete",
                "",
            )
            .query("ids", chunk.join(","))
            .query("allOrNone", all_or_none.to_string());
            let chunk_results: Vec<RecordResult> = self.send_json(&call).await?;
            results.extend(check_count(chunk_results, chunk.len())?);
        }
        Ok(results)
    }
}

/// Salesforce returns exactly one result per record; anything else is a bad response.
fn check_count(results: Vec<RecordResult>, sent: usize) -> Result<Vec<RecordResult>> {
    if results.len() == sent {
        Ok(results)
    } else {
        Err(SalesforceError::BadResponse {
            context: "sObject Collections".into(),
            detail: format!("sent {sent} records, got {} results", results.len()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_results() {
        let json = r#"[{"id":"001","success":true,"errors":[],"created":true},
            {"id":null,"success":false,"created":false,"errors":[{"statusCode":
            "REQUIRED_FIELD_MISSING","message":"Required fields are missing: [Name]",
            "fields":["Name"]}]},{"id":"002","success":true,"errors":null}]"#;
        let r: Vec<RecordResult> = serde_json::from_str(json).unwrap();
        assert!(r[0].created);
        assert_eq!(r[1].errors[0].status_code, "REQUIRED_FIELD_MISSING");
        assert_eq!(r[1].errors[0].fields, ["Name"]);
        assert!(r[2].errors.is_empty());
    }
}
