//! The `update` target: each result row → one record's fields, matched by `Id` or an
//! External ID field, sent only when the row's hash differs from the job's snapshot of the
//! last acknowledged value.
//!
//! The snapshot moves only for rows Salesforce acknowledged, in the transaction that
//! records the run (`JobStore::finish_update`): a rejected row, a row a failed Bulk job did
//! not process, and every row of a run that stopped are sent again next time. Keys that left
//! the result are dropped from the snapshot, so they are sent again if they come back.
//! Writes are upserts keyed by the match field, so sending a row twice is harmless.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::error::JobError;
use super::query::{key_text, run_query, ResultRow};
use super::runner::{RunCtx, RunReport};
use super::send::{send, Keyed, Write};
use super::store::{RowError, RunState};
use crate::config::jobs::UpdateTarget;

/// What a run has to send.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// (key, row hash, record) of every row that changed.
    pub send: Vec<(String, String, Map<String, Value>)>,
    /// Rows equal to the snapshot.
    pub unchanged: u64,
    /// Snapshot keys no longer in the result.
    pub gone: Vec<String>,
    /// Rows that cannot be sent (no key, a key twice).
    pub errors: Vec<RowError>,
}

/// Compare the result with the snapshot (pure).
pub fn plan(u: &UpdateTarget, rows: Vec<ResultRow>, snapshot: &HashMap<String, String>) -> Plan {
    let mut p = Plan::default();
    let mut seen = HashSet::new();
    for (n, row) in rows.into_iter().enumerate() {
        let Some(key) = key_text(row.values.get(&u.key.column)) else {
            p.errors.push(row_error(
                format!("(row {})", n + 1),
                "JOB_NULL_KEY",
                format!("column {} is NULL or empty", u.key.column),
            ));
            continue;
        };
        if !seen.insert(key.clone()) {
            p.errors.push(row_error(
                key,
                "JOB_DUPLICATE_KEY",
                format!(
                    "more than one row has this {}; only the first is sent",
                    u.key.column
                ),
            ));
            continue;
        }
        if snapshot.get(&key) == Some(&row.hash) {
            p.unchanged += 1;
            continue;
        }
        let record = record(u, &key, &row.values);
        p.send.push((key, row.hash, record));
    }
    p.gone = snapshot
        .keys()
        .filter(|k| !seen.contains(*k))
        .cloned()
        .collect();
    p
}

/// The record for one row: the key field and every mapped field (`null` clears it).
fn record(u: &UpdateTarget, key: &str, values: &Map<String, Value>) -> Map<String, Value> {
    let mut r = Map::with_capacity(u.fields.len() + 1);
    r.insert(u.key.field.clone(), Value::String(key.to_string()));
    for (column, field) in &u.fields {
        if let Some(v) = values.get(column) {
            r.insert(field.clone(), v.clone());
        }
    }
    r
}

fn row_error(key: String, code: &str, message: String) -> RowError {
    RowError {
        key,
        code: code.to_string(),
        message,
        fields: Vec::new(),
    }
}

/// One run of an update job.
pub(super) async fn run(ctx: &mut RunCtx<'_>, u: &UpdateTarget) -> Result<RunReport, JobError> {
    let job = ctx.job;
    let rows = run_query(ctx.db, job, &[]).await?;
    let snapshot = ctx
        .store
        .snapshot(&job.name)
        .await
        .map_err(JobError::state(&job.name))?;
    let mut report = RunReport::new(job, ctx.opts.dry_run);
    report.rows_seen = rows.len() as u64;
    let plan = plan(u, rows, &snapshot);
    report.counts = vec![
        ("changed", plan.send.len() as u64),
        ("unchanged", plan.unchanged),
        ("gone", plan.gone.len() as u64),
    ];
    for (key, _, r) in &plan.send {
        report.sample(key, "update", r);
    }
    report.errors = plan.errors.clone();
    if ctx.opts.dry_run {
        let outcome = report.outcome(RunState::DryRun, None);
        ctx.store
            .end_run(ctx.run_id, &outcome)
            .await
            .map_err(JobError::state(&job.name))?;
        return Ok(report);
    }
    let hashes: HashMap<String, String> = plan
        .send
        .iter()
        .map(|(k, h, _)| (k.clone(), h.clone()))
        .collect();
    let records: Vec<Keyed> = plan.send.into_iter().map(|(k, _, r)| (k, r)).collect();
    let sent = send(
        ctx.sf,
        &u.object,
        Write::Upsert(&u.key.field),
        records,
        u.bulk_threshold,
        &u.key.field,
    )
    .await
    .map_err(|e| JobError::salesforce(&job.name, e))?;
    let acked: Vec<(String, String)> = sent
        .ok
        .iter()
        .filter_map(|(k, _)| hashes.get(k).map(|h| (k.clone(), h.clone())))
        .collect();
    report.sent = acked.len() as u64;
    report.calls = sent.calls;
    report.errors.extend(sent.failed);
    let (state, message) = if sent.unprocessed.is_empty() {
        (RunState::Done, None)
    } else {
        let m = format!(
            "{} row(s) were not processed by Salesforce; they are sent again next run",
            sent.unprocessed.len()
        );
        (RunState::Failed, Some(m))
    };
    let outcome = report.outcome(state, message);
    ctx.store
        .finish_update(
            ctx.run_id,
            &job.name,
            &acked,
            &plan.gone,
            &report.errors,
            &outcome,
        )
        .await
        .map_err(JobError::state(&job.name))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::jobs::MatchKey;

    fn target() -> UpdateTarget {
        UpdateTarget {
            object: "Account".into(),
            key: MatchKey {
                column: "id".into(),
                field: "External_Id__c".into(),
            },
            fields: [("mrr".to_string(), "MRR__c".to_string())].into(),
            bulk_threshold: 2000,
        }
    }

    fn row(id: &str, mrr: i64) -> ResultRow {
        let values = serde_json::json!({"id": id, "mrr": mrr});
        ResultRow {
            values: values.as_object().unwrap().clone(),
            hash: format!("{id}:{mrr}"),
        }
    }

    #[test]
    fn only_changed_rows_are_sent() {
        let snapshot: HashMap<String, String> = [
            ("a".into(), "a:1".into()),
            ("b".into(), "b:2".into()),
            ("gone".into(), "x".into()),
        ]
        .into();
        let p = plan(
            &target(),
            vec![row("a", 1), row("b", 3), row("c", 4)],
            &snapshot,
        );
        let sent: Vec<&str> = p.send.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(sent, ["b", "c"]);
        assert_eq!(p.unchanged, 1);
        assert_eq!(p.gone, ["gone"]);
        assert_eq!(p.send[0].2["External_Id__c"], "b");
        assert_eq!(p.send[0].2["MRR__c"], 3);
    }

    #[test]
    fn rows_without_a_usable_key_are_errors() {
        let mut null = row("x", 1);
        null.values.insert("id".into(), Value::Null);
        let p = plan(
            &target(),
            vec![null, row("a", 1), row("a", 2)],
            &HashMap::new(),
        );
        let codes: Vec<&str> = p.errors.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["JOB_NULL_KEY", "JOB_DUPLICATE_KEY"]);
        assert_eq!(p.send.len(), 1);
    }
}
