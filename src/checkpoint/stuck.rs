//! What is stuck in a pipeline, for `pgforce status`, the ops `/status` and the
//! `pgforce_parked_changes` gauge: the oldest open dead letter (the row Salesforce rejected
//! longest ago and nobody replayed or discarded) and the parked children grouped by why they
//! wait (the parent object they need). Read-only queries on the state schema; no row values
//! except the Salesforce error message, which callers serving it to the network must drop.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Client;

use super::StateError;

/// The oldest open dead letter of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OldestDeadLetter {
    /// The mapping whose row was rejected.
    pub mapping: String,
    /// Its sObject.
    pub object: String,
    /// The Salesforce status code (`REQUIRED_FIELD_MISSING`, …): the reason.
    pub error_code: String,
    /// The Salesforce error message (may quote row values: not for the network).
    pub message: String,
    /// The fields Salesforce named.
    pub fields: Vec<String>,
    /// How often the row was tried.
    pub attempts: i32,
    /// When it was first rejected.
    pub first_seen: DateTime<Utc>,
}

/// Parked children of one mapping waiting for the same parent object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParkedGroup {
    /// The child mapping.
    pub mapping: String,
    /// The child sObject.
    pub object: String,
    /// The parent sObject the children wait for: the reason they are parked.
    pub waiting_for: String,
    /// How many children wait.
    pub count: i64,
    /// How many of them wait for a parent whose own change is dead-lettered: they land
    /// only once that dead letter is fixed (`pgforce errors list` shows it).
    pub parent_dead_lettered: i64,
    /// When the longest-waiting of them was parked.
    pub oldest: DateTime<Utc>,
}

/// Everything stuck in one pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stuck {
    /// The oldest open dead letter, `None` when there is none.
    pub oldest_dead_letter: Option<OldestDeadLetter>,
    /// Parked children by mapping and parent object, largest group first.
    pub parked: Vec<ParkedGroup>,
}

impl Stuck {
    /// Parked children in total.
    pub fn parked_total(&self) -> i64 {
        self.parked.iter().map(|g| g.count).sum()
    }

    /// Parked children per child sObject.
    pub fn parked_by_object(&self) -> std::collections::BTreeMap<&str, i64> {
        let mut out = std::collections::BTreeMap::new();
        for g in &self.parked {
            *out.entry(g.object.as_str()).or_insert(0) += g.count;
        }
        out
    }
}

/// Read what is stuck in `pipeline` from the state schema `schema` (already quoted).
pub async fn read(client: &Client, schema: &str, pipeline: &str) -> Result<Stuck, StateError> {
    Ok(Stuck {
        oldest_dead_letter: oldest_dead_letter(client, schema, pipeline).await?,
        parked: parked_groups(client, schema, pipeline).await?,
    })
}

async fn oldest_dead_letter(
    client: &Client,
    s: &str,
    pipeline: &str,
) -> Result<Option<OldestDeadLetter>, StateError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT mapping, object, error_code, message, fields, attempts, first_seen
                 FROM {s}.errors WHERE pipeline = $1 AND status = 'open'
                 ORDER BY first_seen, id LIMIT 1"
            ),
            &[&pipeline],
        )
        .await
        .map_err(query("reading the oldest dead letter"))?;
    Ok(row.map(|r| OldestDeadLetter {
        mapping: r.get(0),
        object: r.get(1),
        error_code: r.get(2),
        message: r.get(3),
        fields: r.get(4),
        attempts: r.get(5),
        first_seen: r.get(6),
    }))
}

async fn parked_groups(
    client: &Client,
    s: &str,
    pipeline: &str,
) -> Result<Vec<ParkedGroup>, StateError> {
    let rows = client
        .query(
            &format!(
                "SELECT k.mapping, k.object, k.parent_object, count(*), min(k.first_seen),
                        count(*) FILTER (WHERE EXISTS (
                            SELECT 1 FROM {s}.parked_parents p JOIN {s}.errors e
                              ON e.pipeline = p.pipeline AND e.status = 'open'
                             AND e.object = p.parent_object AND e.external_id = p.parent_external_id
                             WHERE p.pipeline = k.pipeline AND p.mapping = k.mapping
                               AND p.external_id = k.external_id))
                 FROM {s}.parked k WHERE k.pipeline = $1
                 GROUP BY k.mapping, k.object, k.parent_object
                 ORDER BY count(*) DESC, k.mapping, k.parent_object"
            ),
            &[&pipeline],
        )
        .await
        .map_err(query("grouping parked changes"))?;
    Ok(rows
        .into_iter()
        .map(|r| ParkedGroup {
            mapping: r.get(0),
            object: r.get(1),
            waiting_for: r.get(2),
            count: r.get(3),
            oldest: r.get(4),
            parent_dead_lettered: r.get(5),
        })
        .collect())
}

fn query(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StateError {
    move |source| StateError::Query { context, source }
}
