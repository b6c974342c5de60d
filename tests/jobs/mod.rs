//! Query-driven jobs (`[[pipelines.jobs]]`) end to end: a throwaway Postgres, the in-process
//! emulator over real HTTP, and [`pgforce::jobs::JobRunner`] (or the real `pgforce` binary).
//! API calls are counted through the emulator's request statistics.
//!
//! - `update`: first run sends all, an unchanged second run sends nothing, a 1% change
//!   sends 1%; Bulk when large; per-row errors with Salesforce's code; a failed run resends.
//! - `membership`: adds and removes exactly the difference, leaves members pgforce did not
//!   add alone, the safety limit, a missing Campaign.
//! - `enrich`: a Lead created over REST is enriched once even when the trigger fires twice.
//! - `crash`: kill -9 of `pgforce jobs run` mid-run; the next run completes it without
//!   duplicates.
//! - `cli`: `pgforce jobs run [--dry-run]`, `jobs list` and `status` of the real binary.
//! - `templates`: every job template in `deploy/examples/` validates and runs.

mod cli;
mod crash;
mod enrich;
mod membership;
mod templates;
mod update;

use pgforce::config::PipelineConfig;
use pgforce::jobs::{JobRunOptions, JobRunner, RunReport};
use pgforce_emulator::ids::Id;
use serde_json::{json, Map, Value};

use crate::support::pipeline::{Batching, Harness};

/// The config of the harness's pipeline with one job (TOML body of `[[pipelines.jobs]]`).
pub fn config(h: &Harness, job: &str) -> PipelineConfig {
    h.builder(&Batching::default())
        .job_toml(job)
        .pipeline(&h.secrets())
        .unwrap_or_else(|e| panic!("the job config parses: {e}\n{job}"))
}

/// A runner for `cfg`.
pub async fn runner(cfg: &PipelineConfig) -> JobRunner {
    JobRunner::connect(cfg)
        .await
        .expect("the job runner connects")
}

/// Run `name` once (not dry); panics on failure.
pub async fn run(r: &JobRunner, name: &str) -> RunReport {
    r.run(name, JobRunOptions::default())
        .await
        .unwrap_or_else(|e| panic!("job {name} runs: {e}"))
}

/// The emulator's default user, as the author of seeded records.
fn user(h: &Harness) -> Id {
    h.emulator
        .state()
        .default_user()
        .expect("a default user")
        .id
}

/// Insert a record straight into the emulator's store; its Id.
pub fn seed(h: &Harness, object: &str, fields: Value) -> String {
    let Value::Object(map) = fields else {
        panic!("a record is an object")
    };
    h.emulator
        .state()
        .store
        .insert(object, &map, user(h))
        .unwrap_or_else(|e| panic!("seed {object}: {e:?}"))
        .to_string()
}

/// Accounts `External_Id__c` = 1..=n in the emulator.
pub fn seed_accounts(h: &Harness, n: i64) {
    let bodies: Vec<Map<String, Value>> = (1..=n)
        .map(|i| {
            let v = json!({"Name": format!("Account {i}"), "External_Id__c": i.to_string()});
            v.as_object().cloned().unwrap()
        })
        .collect();
    for r in h
        .emulator
        .state()
        .store
        .insert_many("Account", &bodies, user(h))
    {
        r.expect("seed an Account");
    }
}

/// Data requests (everything but OAuth and limits) made while `f` ran.
pub async fn calls_during<T>(h: &Harness, f: impl std::future::Future<Output = T>) -> (T, u64) {
    let before = h.data_calls();
    let out = f.await;
    (out, h.data_calls() - before)
}

/// `(row_key, error_code)` of every recorded job error.
pub async fn job_errors(h: &Harness) -> Vec<(String, String)> {
    h.pg.query(
        "SELECT row_key, error_code FROM pgforce.job_errors ORDER BY id",
        &[],
    )
    .await
    .expect("read job errors")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// The states of every run of `job`, oldest first.
pub async fn run_states(h: &Harness, job: &str) -> Vec<String> {
    h.pg.query(
        "SELECT state FROM pgforce.job_runs WHERE job = $1 ORDER BY id",
        &[&job],
    )
    .await
    .expect("read job runs")
    .iter()
    .map(|r| r.get(0))
    .collect()
}
