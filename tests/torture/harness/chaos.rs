//! The failures the run injects between transactions: SIGKILL of pgforce, emulator faults
//! (5xx, `UNABLE_TO_LOCK_ROW`, dropped connections, slow answers, token expiry, Bulk jobs
//! ending `Failed`), Bulk jobs aborted from outside, the slot dropped (pgforce recreates
//! it), and Postgres restarted or crashed.

use std::time::{Duration, Instant};

use pgforce_emulator::{FaultKind, FaultSpec};
use rand::Rng;
use serde_json::Value;

use super::env::{Env, API_VERSION, SLOT};
use super::workload::Generator;

/// A random HTTP fault for a few requests.
pub fn random_http_fault(g: &mut Generator) -> (String, FaultSpec) {
    let times = g.rng.random_range(1..6);
    let p = g.rng.random_range(0.1..0.6);
    let kind = match g.rng.random_range(0..6) {
        0 => FaultKind::HttpStatus { status: 500 },
        1 => FaultKind::HttpStatus { status: 503 },
        2 => FaultKind::UnableToLockRow,
        3 => FaultKind::DropConnection,
        4 => FaultKind::Latency {
            ms: g.rng.random_range(500..3000),
        },
        _ => FaultKind::RequestLimitExceeded,
    };
    let prefix = match g.rng.random_range(0..3) {
        0 => format!("/services/data/v{API_VERSION}/jobs/ingest"),
        1 => format!("/services/data/v{API_VERSION}/composite"),
        _ => "/services/data".to_string(),
    };
    let spec = FaultSpec::always(kind)
        .matching(None, &prefix)
        .with_probability(p)
        .times(times);
    (
        format!("{:?} on {prefix} p={p:.2} x{times}", spec.kind),
        spec,
    )
}

/// Make the next Bulk job end `Failed`.
pub fn bulk_failed() -> FaultSpec {
    FaultSpec::always(FaultKind::BulkJobFailed { message: None }).times(1)
}

/// Abort one open Bulk ingest job from outside (an admin in Setup), waiting up to `limit`
/// for one to exist. Returns the job id aborted.
pub async fn abort_a_bulk_job(env: &Env, limit: Duration) -> Option<String> {
    let token = env.emulator.issue_default_token()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let base = format!(
        "{}/services/data/v{API_VERSION}/jobs/ingest",
        env.emulator.base_url()
    );
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let list: Value = http
            .get(&base)
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let open = list["records"].as_array().and_then(|jobs| {
            jobs.iter()
                .find(|j| matches!(j["state"].as_str(), Some("Open" | "UploadComplete")))
                .and_then(|j| j["id"].as_str().map(str::to_string))
        });
        if let Some(id) = open {
            let resp = http
                .patch(format!("{base}/{id}"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"state": "Aborted"}))
                .send()
                .await
                .ok()?;
            if resp.status().is_success() {
                return Some(id);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Drop the replication slot (pgforce must not be running).
pub async fn drop_slot(env: &Env) -> Result<(), String> {
    let pg = env.client().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = pg
            .query_opt(
                "SELECT pg_drop_replication_slot(slot_name)::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&SLOT],
            )
            .await;
        match r {
            Ok(_) => return Ok(()),
            // Still active for a moment after the kill.
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("dropping the slot: {e}")),
        }
    }
}

/// Restart (fast) or crash and start Postgres.
pub fn bounce_postgres(env: &mut Env, crash: bool) -> Result<(), String> {
    tokio::task::block_in_place(|| {
        if crash {
            env.cluster.crash().map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_millis(300));
            env.cluster.start_again().map_err(|e| e.to_string())
        } else {
            env.cluster.restart().map_err(|e| e.to_string())
        }
    })
}
