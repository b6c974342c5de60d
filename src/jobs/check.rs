//! Checking a pipeline's jobs against the live database and org (for `pgforce validate` and
//! `pgforce jobs run`): each query is prepared (not run) to learn its result columns, and
//! [`crate::config::jobs::check_job_columns`] compares them with the target's describe.

use std::collections::BTreeSet;

use super::error::JobError;
use crate::config::describe::{SfDescribe, SfObject};
use crate::config::jobs::{check_job_columns, JobConfig, TargetConfig};
use crate::config::validate::{Diagnostic, Severity};
use crate::config::PipelineConfig;
use crate::salesforce::{SalesforceClient, SalesforceError};

/// Every finding for the jobs of pipeline number `index`.
pub async fn check_jobs(
    index: usize,
    p: &PipelineConfig,
    sf: &SalesforceClient,
) -> Result<Vec<Diagnostic>, JobError> {
    if p.jobs.is_empty() {
        return Ok(Vec::new());
    }
    let config = |message: String| JobError::Config {
        job: format!("(pipeline {})", p.name),
        message,
    };
    let url = super::database_url(p).map_err(config)?;
    let (client, conn) =
        crate::pgconn::connect(&url)
            .await
            .map_err(|source| JobError::Connect {
                job: format!("(pipeline {})", p.name),
                source,
            })?;
    tokio::spawn(conn);
    let describe = describe(p, sf).await?;
    let mut out = Vec::new();
    for (n, job) in p.jobs.iter().enumerate() {
        let key = format!("pipelines[{index}].jobs[{n}]");
        match super::query::columns(&client, job, param_count(job)).await {
            Ok(columns) => out.extend(check_job_columns(&key, job, &columns, &describe)),
            Err(e) => out.push(Diagnostic {
                severity: Severity::Error,
                code: "job.query",
                key: format!("{key}.query"),
                message: e.to_string(),
                fix: "fix the query (try it in psql) or grant the user SELECT on its tables".into(),
            }),
        }
    }
    Ok(out)
}

/// Parameters the job's query takes.
fn param_count(job: &JobConfig) -> usize {
    match &job.target {
        TargetConfig::Enrich(e) => e.params.len(),
        _ => 0,
    }
}

/// Describe every object the jobs write (a missing one is left out, and reported).
async fn describe(p: &PipelineConfig, sf: &SalesforceClient) -> Result<SfDescribe, JobError> {
    let objects: BTreeSet<&str> = p.jobs.iter().map(JobConfig::object).collect();
    let mut d = SfDescribe::new();
    for o in objects {
        match sf.describe_json(o).await {
            Ok(body) => {
                let parsed = SfObject::from_json(&body).map_err(|e| JobError::Config {
                    job: format!("(pipeline {})", p.name),
                    message: e.to_string(),
                })?;
                d.insert(parsed);
            }
            Err(SalesforceError::Api { status: 404, .. }) => {}
            Err(e) => return Err(JobError::salesforce(&format!("(pipeline {})", p.name), e)),
        }
    }
    Ok(d)
}
