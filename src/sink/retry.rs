//! Retrying records that failed transiently (or that a failed Bulk job never processed)
//! through sObject Collections with exponential backoff; what is still unprocessed after
//! the last attempt comes back as an `UNPROCESSED` failure, so it is dead-lettered, never lost.

use std::collections::HashMap;

use crate::backoff::RetryPolicy;
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::destination::{Destination, Outcome, RecordFailure, SinkError};
use super::fence::fence;
use super::flusher::Flusher;
use super::state::SinkState;

impl<D: Destination, S: SinkState> Flusher<D, S> {
    /// Records failing transiently (or never processed) are sent again through
    /// Collections, up to the configured number of times.
    /// `fields` is (what the records are upserted by, what their outcomes are keyed by),
    /// see [`Self::upsert_keyed`]; `records` are the records as sent, by key.
    pub(super) async fn retry_transient(
        &self,
        object: &str,
        fields: (&str, &str),
        records: &HashMap<&str, &Map<String, Value>>,
        outcomes: &[Outcome],
        unprocessed: &[String],
    ) -> Result<Vec<Outcome>, SinkError> {
        let (upsert_field, key_field) = fields;
        self.retry_loop(outcomes, unprocessed, |pending: Vec<String>| {
            let again: Vec<Map<String, Value>> = pending
                .iter()
                .filter_map(|k| records.get(k.as_str()).map(|r| (*r).clone()))
                .collect();
            Box::pin(async move {
                self.upsert_keyed(object, upsert_field, key_field, &again)
                    .await
            })
        })
        .await
    }

    /// The retry policy shared by upserts and deletes: keys that failed transiently or were
    /// never processed go again via `send`, with exponential backoff, up to
    /// `transient_retries` times; rows still never processed come back as `UNPROCESSED`
    /// failures, so they are dead-lettered, never lost.
    async fn retry_loop<'a>(
        &'a self,
        outcomes: &[Outcome],
        unprocessed: &[String],
        send: impl Fn(Vec<String>) -> BoxFuture<'a, Result<Vec<Outcome>, SinkError>>,
    ) -> Result<Vec<Outcome>, SinkError> {
        let mut pending: Vec<String> = outcomes
            .iter()
            .filter(|o| matches!(&o.result, Err(f) if f.is_transient()))
            .map(|o| o.key.clone())
            .chain(unprocessed.iter().cloned())
            .collect();
        let mut final_outcomes = Vec::new();
        let mut attempt = 0;
        while !pending.is_empty() && attempt < self.opts.transient_retries {
            attempt += 1;
            tokio::time::sleep(RECORD_RETRY.delay(attempt)).await;
            fence(&*self.state).await?;
            let results = send(pending.clone()).await?;
            pending.clear();
            for o in results {
                match &o.result {
                    Err(f) if f.is_transient() && attempt < self.opts.transient_retries => {
                        pending.push(o.key)
                    }
                    _ => final_outcomes.push(o),
                }
            }
        }
        for key in pending.iter().filter(|k| unprocessed.contains(k)) {
            final_outcomes.push(unprocessed_failure(key));
        }
        Ok(final_outcomes)
    }

    /// Deletes failing transiently, or left unprocessed by a failed Bulk job, are sent again
    /// through Collections (by Id), up to the configured number of times; rows still never
    /// processed come back as `UNPROCESSED` failures, so they are dead-lettered, not lost.
    pub(super) async fn retry_transient_deletes(
        &self,
        outcomes: &[Outcome],
        unprocessed: &[String],
    ) -> Result<Vec<Outcome>, SinkError> {
        self.retry_loop(outcomes, unprocessed, |pending: Vec<String>| {
            Box::pin(async move { self.dest.delete_ids(&pending).await })
        })
        .await
    }
}

/// The outcome of a row Salesforce never processed (its Bulk job aborted or failed).
fn unprocessed_failure(key: &str) -> Outcome {
    Outcome {
        key: key.to_string(),
        result: Err(RecordFailure {
            code: "UNPROCESSED".into(),
            message: "Salesforce did not process this row (job aborted or failed)".into(),
            fields: Vec::new(),
        }),
    }
}

/// Backoff between per-record retries (the one backoff helper).
const RECORD_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    base_delay: std::time::Duration::from_millis(400),
    max_delay: std::time::Duration::from_secs(15),
};
