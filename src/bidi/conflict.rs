//! Deciding a conflict: both sides changed one field of one record between syncs. The
//! field's [`Conflict`] policy picks the winner (newest by commit time, Postgres on a
//! tie or when its commit time is unknown); every decision is logged with the record,
//! the field, both values' hashes and the winner, and counted in
//! `pgforce_bidi_conflicts_total{pipeline,object,field,winner}`.
//!
//! The inbound side decides in [`super::echo`], the outbound side in [`super::guard`],
//! both through [`decide`].

use chrono::{DateTime, Utc};
use tracing::info;

use crate::config::pair::Conflict;

/// The side whose value a conflict keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    Postgres,
    Salesforce,
}

impl Winner {
    pub fn as_str(self) -> &'static str {
        match self {
            Winner::Postgres => "postgres",
            Winner::Salesforce => "salesforce",
        }
    }
}

/// Who wins under `policy`, given the Salesforce change's commit time and the Postgres
/// row version's (when known: `track_commit_timestamp`).
pub fn decide(
    policy: Conflict,
    salesforce_at: DateTime<Utc>,
    postgres_at: Option<DateTime<Utc>>,
) -> Winner {
    match policy {
        Conflict::Postgres => Winner::Postgres,
        Conflict::Salesforce => Winner::Salesforce,
        Conflict::Newest => match postgres_at {
            Some(pg) if salesforce_at > pg => Winner::Salesforce,
            _ => Winner::Postgres,
        },
    }
}

/// One decided conflict, for the log and the metric.
#[derive(Debug)]
pub struct Decision<'a> {
    pub pipeline: &'a str,
    pub object: &'a str,
    pub record_id: &'a str,
    pub field: &'a str,
    pub postgres_hash: &'a str,
    pub salesforce_hash: &'a str,
    pub winner: Winner,
    pub policy: Conflict,
}

/// Logs and counts `d` (value hashes only: row values never go to logs).
pub fn report(d: &Decision<'_>) {
    info!(
        pipeline = d.pipeline,
        object = d.object,
        record_id = d.record_id,
        field = d.field,
        postgres_value = d.postgres_hash,
        salesforce_value = d.salesforce_hash,
        winner = d.winner.as_str(),
        policy = d.policy.as_str(),
        "two-way conflict decided"
    );
    metrics::counter!(crate::metrics::BIDI_CONFLICTS, "pipeline" => d.pipeline.to_string(),
        "object" => d.object.to_string(), "field" => d.field.to_string(),
        "winner" => d.winner.as_str())
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    #[test]
    fn newest_wins_and_ties_go_to_postgres() {
        assert_eq!(
            decide(Conflict::Newest, at(10), Some(at(9))),
            Winner::Salesforce
        );
        assert_eq!(
            decide(Conflict::Newest, at(9), Some(at(10))),
            Winner::Postgres
        );
        assert_eq!(
            decide(Conflict::Newest, at(10), Some(at(10))),
            Winner::Postgres
        );
        assert_eq!(decide(Conflict::Newest, at(10), None), Winner::Postgres);
        assert_eq!(
            decide(Conflict::Salesforce, at(1), Some(at(9))),
            Winner::Salesforce
        );
        assert_eq!(
            decide(Conflict::Postgres, at(9), Some(at(1))),
            Winner::Postgres
        );
    }
}
