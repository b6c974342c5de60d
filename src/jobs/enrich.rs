//! The `enrich` target: each new Lead is looked up in Postgres — the job's query run with
//! the Lead's `params` fields as `$1`, `$2`, … — and updated with the first row's mapped
//! fields (or the `no_match` marker).
//!
//! New Leads are found by polling `CreatedDate >= cursor` (the `lead_created` trigger; Change
//! Data Capture replaces the poll when that subscriber lands). Each Lead handled is recorded
//! (`job_enriched`) in the transaction that moves the cursor, so a Lead is enriched once even
//! when polls overlap or the trigger fires twice; a Lead whose update failed for a reason
//! worth retrying is not recorded, and the cursor stays at or before it.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use futures::TryStreamExt;
use serde_json::{json, Map, Value};

use super::error::JobError;
use super::query::{key_text, run_query};
use super::runner::{RunCtx, RunReport};
use super::send::{send, Keyed, Write};
use super::store::RunState;
use crate::config::jobs::{EnrichTarget, TriggerConfig};

/// Most Leads one run handles; the rest are picked up by the next.
const MAX_LEADS: usize = 2_000;

/// A new Lead: its Id, when it was created, and the query's parameters.
#[derive(Debug, Clone, PartialEq)]
struct Lead {
    id: String,
    created: DateTime<Utc>,
    params: Vec<Option<String>>,
}

/// One run of an enrich job.
pub(super) async fn run(ctx: &mut RunCtx<'_>, e: &EnrichTarget) -> Result<RunReport, JobError> {
    let job = ctx.job;
    let since = start_cursor(ctx).await?;
    let leads = new_leads(ctx, e, since).await?;
    let ids: Vec<String> = leads.iter().map(|l| l.id.clone()).collect();
    let done = ctx
        .store
        .enriched(&job.name, &ids)
        .await
        .map_err(JobError::state(&job.name))?;
    let todo: Vec<&Lead> = leads.iter().filter(|l| !done.contains(&l.id)).collect();
    let mut report = RunReport::new(job, ctx.opts.dry_run);
    let mut records: Vec<Keyed> = Vec::new();
    let mut unmatched: Vec<String> = Vec::new();
    for lead in &todo {
        let rows = run_query(ctx.db, job, &lead.params).await?;
        report.rows_seen += rows.len() as u64;
        match (rows.first(), &e.no_match) {
            (Some(row), _) => {
                records.push((lead.id.clone(), lead_record(e, &lead.id, &row.values)))
            }
            (None, Some(marker)) => {
                let r = Map::from_iter([
                    ("Id".to_string(), json!(lead.id)),
                    (marker.field.clone(), json!(marker.value)),
                ]);
                unmatched.push(lead.id.clone());
                records.push((lead.id.clone(), r));
            }
            (None, None) => unmatched.push(lead.id.clone()),
        }
    }
    report.counts = vec![
        ("new_leads", todo.len() as u64),
        ("already_enriched", (leads.len() - todo.len()) as u64),
        ("matched", (todo.len() - unmatched.len()) as u64),
        ("unmatched", unmatched.len() as u64),
    ];
    for (id, r) in &records {
        report.sample(id, "enrich", r);
    }
    if ctx.opts.dry_run {
        let outcome = report.outcome(RunState::DryRun, None);
        ctx.store
            .end_run(ctx.run_id, &outcome)
            .await
            .map_err(JobError::state(&job.name))?;
        return Ok(report);
    }
    let with_record: BTreeSet<String> = records.iter().map(|(id, _)| id.clone()).collect();
    let sent = send(ctx.sf, "Lead", Write::Upsert("Id"), records, 2_000, "Id")
        .await
        .map_err(|err| JobError::salesforce(&job.name, err))?;
    report.sent = sent.ok.len() as u64;
    report.calls = sent.calls;
    let unmatched_set: BTreeSet<&String> = unmatched.iter().collect();
    let mut finished: Vec<(String, bool)> = sent
        .ok
        .iter()
        .map(|(id, _)| (id.clone(), !unmatched_set.contains(id)))
        .collect();
    // Leads with nothing to send are done as they are.
    finished.extend(
        unmatched
            .iter()
            .filter(|id| !with_record.contains(*id))
            .map(|id| (id.clone(), false)),
    );
    let mut retry: Vec<&str> = sent.unprocessed.iter().map(String::as_str).collect();
    for f in &sent.failed {
        if crate::error_class::record_class(&f.code).is_retryable() {
            retry.push(&f.key);
        } else {
            finished.push((f.key.clone(), false));
        }
    }
    report.errors.extend(sent.failed.iter().cloned());
    let cursor = next_cursor(&leads, &retry, since);
    let state = if retry.is_empty() {
        RunState::Done
    } else {
        RunState::Failed
    };
    let message =
        (!retry.is_empty()).then(|| format!("{} Lead(s) are retried next run", retry.len()));
    let outcome = report.outcome(state, message);
    let cursor = soql_datetime(cursor);
    ctx.store
        .finish_enrich(
            ctx.run_id,
            &job.name,
            &finished,
            Some(cursor.as_str()),
            &report.errors,
            &outcome,
        )
        .await
        .map_err(JobError::state(&job.name))?;
    Ok(report)
}

/// The Lead's update: its Id and the mapped columns of the first row.
fn lead_record(e: &EnrichTarget, id: &str, values: &Map<String, Value>) -> Map<String, Value> {
    let mut r = Map::from_iter([("Id".to_string(), json!(id))]);
    for (column, field) in &e.fields {
        if let Some(v) = values.get(column) {
            r.insert(field.clone(), v.clone());
        }
    }
    r
}

/// Where this run starts: the stored cursor, or `lookback_hours` ago on the first run.
async fn start_cursor(ctx: &RunCtx<'_>) -> Result<DateTime<Utc>, JobError> {
    let job = ctx.job;
    let stored = ctx
        .store
        .cursor(&job.name)
        .await
        .map_err(JobError::state(&job.name))?;
    if let Some(at) = stored.as_deref().and_then(parse_datetime) {
        return Ok(at);
    }
    let hours = match job.trigger {
        TriggerConfig::LeadCreated { lookback_hours, .. } => lookback_hours,
        _ => 24,
    };
    Ok(Utc::now() - Duration::hours(i64::try_from(hours).unwrap_or(24)))
}

/// The cursor after a run: before the first Lead to retry, else the newest Lead seen.
fn next_cursor(leads: &[Lead], retry: &[&str], since: DateTime<Utc>) -> DateTime<Utc> {
    let first_retry = leads
        .iter()
        .filter(|l| retry.contains(&l.id.as_str()))
        .map(|l| l.created)
        .min();
    match first_retry {
        Some(at) => at,
        None => leads
            .iter()
            .map(|l| l.created)
            .max()
            .unwrap_or(since)
            .max(since),
    }
}

/// Leads created at or after `since`, oldest first, with their parameter values.
async fn new_leads(
    ctx: &RunCtx<'_>,
    e: &EnrichTarget,
    since: DateTime<Utc>,
) -> Result<Vec<Lead>, JobError> {
    let job = &ctx.job.name;
    let mut fields: Vec<&str> = vec!["Id", "CreatedDate"];
    for p in &e.params {
        if !fields.iter().any(|f| f.eq_ignore_ascii_case(p)) {
            fields.push(p);
        }
    }
    let soql = format!(
        "SELECT {} FROM Lead WHERE CreatedDate >= {} ORDER BY CreatedDate LIMIT {MAX_LEADS}",
        fields.join(", "),
        soql_datetime(since)
    );
    let records: Vec<Map<String, Value>> = ctx
        .sf
        .query(soql)
        .try_collect()
        .await
        .map_err(|err| JobError::salesforce(job, err))?;
    Ok(records.iter().filter_map(|r| lead(e, r)).collect())
}

fn lead(e: &EnrichTarget, r: &Map<String, Value>) -> Option<Lead> {
    let id = r.get("Id")?.as_str()?.to_string();
    let created = parse_datetime(r.get("CreatedDate")?.as_str()?)?;
    let params = e
        .params
        .iter()
        .map(|p| {
            let v = r
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(p))
                .map(|(_, v)| v);
            key_text(v)
        })
        .collect();
    Some(Lead {
        id,
        created,
        params,
    })
}

/// A Salesforce datetime (`2026-01-02T03:04:05.000+0000`, or RFC 3339).
fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// A SOQL datetime literal, to the second (the `>=` comparison and the record of handled
/// Leads make the overlap harmless).
fn soql_datetime(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salesforce_datetimes_parse() {
        let a = parse_datetime("2026-01-02T03:04:05.000+0000").unwrap();
        let b = parse_datetime("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(soql_datetime(a), "2026-01-02T03:04:05Z");
        assert_eq!(parse_datetime("yesterday"), None);
    }

    #[test]
    fn the_cursor_stays_before_a_lead_to_retry() {
        let at = |s: &str| parse_datetime(s).unwrap();
        let leads = vec![
            Lead {
                id: "a".into(),
                created: at("2026-01-01T00:00:00Z"),
                params: vec![],
            },
            Lead {
                id: "b".into(),
                created: at("2026-01-01T00:00:05Z"),
                params: vec![],
            },
        ];
        let since = at("2025-12-31T00:00:00Z");
        assert_eq!(next_cursor(&leads, &[], since), at("2026-01-01T00:00:05Z"));
        assert_eq!(
            next_cursor(&leads, &["a"], since),
            at("2026-01-01T00:00:00Z")
        );
        assert_eq!(next_cursor(&[], &[], since), since);
    }
}
