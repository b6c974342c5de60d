//! [`JobError`]: why a job run stopped, always naming the job, with what to do about it.
//! A run that ends in any of these is never recorded as done (see `jobs::store`).

use crate::checkpoint::StateError;
use crate::error_class::{pg_class, Classify, ErrorClass};
use crate::salesforce::SalesforceError;
use crate::sink::SinkError;

/// Why a job run failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No job of that name in the config.
    #[error("no job named {job:?} in pipeline {pipeline}; `pgforce jobs list` shows the jobs")]
    Unknown { pipeline: String, job: String },
    /// The job's configuration cannot work (a secret, the database URL).
    #[error("job {job}: configuration: {message}")]
    Config { job: String, message: String },
    /// Connecting to the job's database failed.
    #[error("job {job}: cannot connect to Postgres: {source}")]
    Connect {
        job: String,
        #[source]
        source: crate::pgconn::ConnectError,
    },
    /// The job's query failed (syntax, a missing table, the statement timeout).
    #[error("job {job}: the query failed: {message}")]
    Query {
        job: String,
        message: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A result value the target cannot use (a NULL key, a duplicate key, a non-object row).
    #[error("job {job}: {message}")]
    BadResult { job: String, message: String },
    /// The membership target's Campaign does not exist and may not be created.
    #[error("job {job}: Campaign {campaign:?} does not exist; create it in Salesforce or set create_campaign = true")]
    CampaignMissing { job: String, campaign: String },
    /// A membership run would remove more members than the safety limit allows.
    #[error("job {job}: refused to remove {remove} of {members} members of Campaign {campaign:?} ({percent:.1}%, limit {limit}%); check the segment query, or run `pgforce jobs run {job} --force`")]
    SafetyLimit {
        job: String,
        campaign: String,
        remove: usize,
        members: usize,
        percent: f64,
        limit: u8,
    },
    /// Salesforce's API allocation is used up (or the reserve reached); the run stops and
    /// resends what did not land next time.
    #[error("job {job}: paused by the Salesforce API limit: {source}")]
    ApiLimit {
        job: String,
        #[source]
        source: SalesforceError,
    },
    /// A Salesforce call failed as a whole.
    #[error("job {job}: Salesforce: {source}")]
    Salesforce {
        job: String,
        #[source]
        source: SalesforceError,
    },
    /// Sending records failed as a whole (after the client's retries).
    #[error("job {job}: sending to Salesforce: {source}")]
    Send {
        job: String,
        #[source]
        source: SinkError,
    },
    /// The job's bookkeeping in the state schema failed.
    #[error("job {job}: state store: {source}")]
    State {
        job: String,
        #[source]
        source: StateError,
    },
}

impl JobError {
    /// A Salesforce error, told apart: an API-limit pause is its own variant.
    pub fn salesforce(job: &str, source: SalesforceError) -> JobError {
        let job = job.to_string();
        match source {
            e @ SalesforceError::LimitExceeded { .. } => JobError::ApiLimit { job, source: e },
            e => JobError::Salesforce { job, source: e },
        }
    }

    /// A sink error, told apart the same way.
    pub fn send(job: &str, source: SinkError) -> JobError {
        if let SinkError::Remote(e) = &source {
            if let Some(SalesforceError::LimitExceeded { reason, until }) =
                e.downcast_ref::<SalesforceError>()
            {
                return JobError::ApiLimit {
                    job: job.to_string(),
                    source: SalesforceError::LimitExceeded {
                        reason: reason.clone(),
                        until: *until,
                    },
                };
            }
        }
        JobError::Send {
            job: job.to_string(),
            source,
        }
    }

    /// A state-store error of `job`.
    pub fn state(job: &str) -> impl FnOnce(StateError) -> JobError + '_ {
        move |source| JobError::State {
            job: job.to_string(),
            source,
        }
    }

    /// The metric label of the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            JobError::Unknown { .. } | JobError::Config { .. } => "config",
            JobError::Connect { .. } | JobError::Query { .. } => "query",
            JobError::BadResult { .. } => "result",
            JobError::CampaignMissing { .. } => "campaign_missing",
            JobError::SafetyLimit { .. } => "safety_limit",
            JobError::ApiLimit { .. } => "api_limit",
            JobError::Salesforce { .. } | JobError::Send { .. } => "salesforce",
            JobError::State { .. } => "state",
        }
    }
}

impl Classify for JobError {
    fn class(&self) -> ErrorClass {
        match self {
            JobError::Unknown { .. }
            | JobError::Config { .. }
            | JobError::BadResult { .. }
            | JobError::CampaignMissing { .. }
            | JobError::SafetyLimit { .. } => ErrorClass::Permanent,
            JobError::Connect { source, .. } => {
                if source.is_transient() {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Permanent
                }
            }
            JobError::Query { source, .. } => pg_class(source),
            JobError::ApiLimit { .. } => ErrorClass::Throttled,
            JobError::Salesforce { source, .. } => source.class(),
            JobError::Send { source, .. } => source.class(),
            JobError::State { source, .. } => source.class(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_job_and_the_way_out() {
        let e = JobError::SafetyLimit {
            job: "segment".into(),
            campaign: "Spring".into(),
            remove: 50,
            members: 100,
            percent: 50.0,
            limit: 20,
        };
        let text = e.to_string();
        assert!(
            text.contains("job segment") && text.contains("--force"),
            "{text}"
        );
        assert_eq!(e.class(), ErrorClass::Permanent);
        let e = JobError::CampaignMissing {
            job: "segment".into(),
            campaign: "Spring".into(),
        };
        assert!(e.to_string().contains("create_campaign = true"));
    }

    #[test]
    fn an_api_limit_is_its_own_kind() {
        let limit = SalesforceError::LimitExceeded {
            reason: "REQUEST_LIMIT_EXCEEDED".into(),
            until: chrono::Utc::now(),
        };
        let e = JobError::salesforce("usage", limit);
        assert_eq!(e.kind(), "api_limit");
        assert_eq!(e.class(), ErrorClass::Throttled);
        assert!(e
            .to_string()
            .starts_with("job usage: paused by the Salesforce API limit"));
    }
}
