//! Latency profiles over real HTTP: which delays each request and Bulk job is charged, with
//! what duration, and how the Bulk state machine advances as the delays end. The timer is
//! replaced by a recording [`Sleeper`] (optionally holding chosen delays until the test
//! releases them), so nothing here measures time.

mod emulator_support;

use std::sync::Arc;
use std::time::Duration;

use emulator_support::Emu;
use parking_lot::Mutex;
use pgforce_emulator::latency::{LatencyOverrides, SleepFuture};
use pgforce_emulator::{Delay, Emulator, EmulatorConfig, ProfileName, Sleeper};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

/// Records every delay; holds those `hold` matches until [`Gate::release`].
struct Gate {
    seen: Mutex<Vec<(Delay, Duration)>>,
    hold: fn(Delay) -> bool,
    permits: Arc<Semaphore>,
}

impl Gate {
    fn new(hold: fn(Delay) -> bool) -> Arc<Gate> {
        Arc::new(Gate {
            seen: Mutex::new(Vec::new()),
            hold,
            permits: Arc::new(Semaphore::new(0)),
        })
    }

    fn seen(&self) -> Vec<(Delay, Duration)> {
        self.seen.lock().clone()
    }

    /// Lets one held delay end.
    fn release(&self) {
        self.permits.add_permits(1);
    }

    /// Waits (polling, bounded) until `n` delays matching `pred` were charged.
    async fn wait_for(&self, pred: fn(&Delay) -> bool, n: usize) {
        for _ in 0..4_000 {
            if self.seen().iter().filter(|(d, _)| pred(d)).count() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("expected {n} matching delays, saw {:?}", self.seen());
    }
}

impl Sleeper for Gate {
    fn sleep(&self, delay: Delay, duration: Duration) -> SleepFuture {
        self.seen.lock().push((delay, duration));
        let permits = self.permits.clone();
        let hold = (self.hold)(delay);
        Box::pin(async move {
            if hold {
                permits.acquire().await.expect("open").forget();
            }
        })
    }
}

/// The realistic profile without jitter, so durations equal the configured figures.
fn realistic() -> EmulatorConfig {
    EmulatorConfig {
        profile: ProfileName::Realistic,
        latency: LatencyOverrides {
            jitter: Some(0.0),
            ..Default::default()
        },
        ..EmulatorConfig::default()
    }
}

async fn start(config: EmulatorConfig, gate: &Arc<Gate>) -> Emu {
    let emu = Emu::start_with(config).await;
    emu.handle.set_sleeper(gate.clone());
    emu
}

async fn job_info(emu: &Emu, kind: &str, id: &str) -> Value {
    emu.get(&format!("/jobs/{kind}/{id}")).await.json()
}

#[tokio::test]
async fn realistic_requests_pay_a_round_trip_and_writes_a_per_record_cost() {
    let gate = Gate::new(|_| false);
    let emu = start(realistic(), &gate).await;
    let ms = Duration::from_millis;

    emu.insert("Account", json!({"Name": "A"})).await;
    assert_eq!(
        gate.seen(),
        vec![(Delay::RoundTrip, ms(60)), (Delay::Records(1), ms(2))]
    );

    let r = emu
        .post(
            "/composite/sobjects",
            &json!({"records": [
                {"attributes": {"type": "Account"}, "Name": "B"},
                {"attributes": {"type": "Account"}, "Name": "C"},
                {"attributes": {"type": "Account"}, "Name": "D"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        gate.seen()[2..],
        [(Delay::RoundTrip, ms(60)), (Delay::Records(3), ms(6))]
    );

    let r = emu.get("/query?q=SELECT+Id+FROM+Account").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(gate.seen()[4..], [(Delay::RoundTrip, ms(60))]);
}

#[tokio::test]
async fn the_instant_profile_charges_nothing() {
    let gate = Gate::new(|_| true);
    let emu = start(EmulatorConfig::default(), &gate).await;
    emu.insert("Account", json!({"Name": "A"})).await;
    let (_, id) = ingest(&emu, 3).await;
    let (seen, info) = emu.wait_job("ingest", &id).await;
    assert_eq!(info["state"], "JobComplete", "{seen:?}");
    assert!(gate.seen().is_empty(), "{:?}", gate.seen());
}

/// Creates, fills and closes an Account insert job of `rows` rows; returns (info, id).
async fn ingest(emu: &Emu, rows: usize) -> (Value, String) {
    let job = emu
        .post(
            "/jobs/ingest",
            &json!({"object": "Account", "operation": "insert"}),
        )
        .await
        .json();
    let id = job["id"].as_str().expect("job id").to_string();
    let mut csv = String::from("Name\n");
    for i in 0..rows {
        csv.push_str(&format!("Account {i}\n"));
    }
    let put = emu
        .put_csv(&format!("/jobs/ingest/{id}/batches"), csv)
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text);
    let close = emu
        .patch(
            &format!("/jobs/ingest/{id}"),
            &json!({"state": "UploadComplete"}),
        )
        .await;
    assert_eq!(close.status, StatusCode::OK, "{}", close.text);
    (close.json(), id)
}

#[tokio::test]
async fn a_realistic_ingest_job_waits_queued_then_processes_at_the_configured_rate() {
    let gate = Gate::new(|d| matches!(d, Delay::BulkIngestStart | Delay::BulkIngestRows(_)));
    let emu = start(realistic(), &gate).await;
    let (_, id) = ingest(&emu, 12_000).await;

    gate.wait_for(|d| *d == Delay::BulkIngestStart, 1).await;
    let info = job_info(&emu, "ingest", &id).await;
    assert_eq!(info["state"], "UploadComplete");
    gate.release();

    // The first 10,000-row chunk is applied, then held for 10,000 rows / 10,000 rows/s.
    gate.wait_for(|d| matches!(d, Delay::BulkIngestRows(_)), 1)
        .await;
    let info = job_info(&emu, "ingest", &id).await;
    assert_eq!(info["state"], "InProgress");
    assert_eq!(info["numberRecordsProcessed"], 10_000);
    gate.release();

    gate.wait_for(|d| matches!(d, Delay::BulkIngestRows(_)), 2)
        .await;
    gate.release();
    let (_, info) = emu.wait_job("ingest", &id).await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsProcessed"], 12_000);

    let bulk: Vec<_> = gate
        .seen()
        .into_iter()
        .filter(|(d, _)| !matches!(d, Delay::RoundTrip))
        .collect();
    assert_eq!(
        bulk,
        vec![
            (Delay::BulkIngestStart, Duration::from_secs(3)),
            (Delay::BulkIngestRows(10_000), Duration::from_secs(1)),
            (Delay::BulkIngestRows(2_000), Duration::from_millis(200)),
        ]
    );
}

#[tokio::test]
async fn a_realistic_query_job_waits_queued_then_for_its_rows() {
    let gate = Gate::new(|d| matches!(d, Delay::BulkQueryStart | Delay::BulkQueryRows(_)));
    let emu = start(realistic(), &gate).await;
    for name in ["A", "B", "C", "D", "E"] {
        emu.insert("Account", json!({"Name": name})).await;
    }
    let job = emu
        .post(
            "/jobs/query",
            &json!({"operation": "query", "query": "SELECT Id, Name FROM Account"}),
        )
        .await
        .json();
    let id = job["id"].as_str().expect("job id").to_string();

    gate.wait_for(|d| *d == Delay::BulkQueryStart, 1).await;
    assert_eq!(
        job_info(&emu, "query", &id).await["state"],
        "UploadComplete"
    );
    gate.release();

    gate.wait_for(|d| matches!(d, Delay::BulkQueryRows(_)), 1)
        .await;
    assert_eq!(job_info(&emu, "query", &id).await["state"], "InProgress");
    gate.release();

    let (_, info) = emu.wait_job("query", &id).await;
    assert_eq!(info["state"], "JobComplete");
    let rows: Vec<_> = gate
        .seen()
        .into_iter()
        .filter(|(d, _)| matches!(d, Delay::BulkQueryRows(_)))
        .collect();
    // 5 rows at 50,000 rows/s.
    assert_eq!(
        rows,
        vec![(Delay::BulkQueryRows(5), Duration::from_micros(100))]
    );
}

#[tokio::test]
async fn jitter_varies_delays_within_the_configured_band() {
    let gate = Gate::new(|_| false);
    let mut config = realistic();
    config.latency.jitter = Some(0.5);
    let emu = start(config, &gate).await;
    for _ in 0..20 {
        emu.get("/limits").await;
    }
    let trips: Vec<Duration> = gate
        .seen()
        .into_iter()
        .filter(|(d, _)| *d == Delay::RoundTrip)
        .map(|(_, t)| t)
        .collect();
    assert_eq!(trips.len(), 20);
    assert!(trips
        .iter()
        .all(|t| (Duration::from_millis(30)..=Duration::from_millis(90)).contains(t)));
    assert!(trips.iter().any(|t| *t != trips[0]), "{trips:?}");
}

#[tokio::test]
async fn bad_latency_settings_name_the_key() {
    let mut config = realistic();
    config.latency.jitter = Some(2.0);
    let e = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("latency.jitter"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emu.json");
    std::fs::write(&path, r#"{"profile": "slow"}"#).unwrap();
    let e = EmulatorConfig::from_file(&path).unwrap_err();
    assert!(e.to_string().contains("profile"), "{e}");

    std::fs::write(
        &path,
        r#"{"profile": "realistic", "latency": {"roundTripMs": 5}}"#,
    )
    .unwrap();
    let c = EmulatorConfig::from_file(&path).unwrap();
    assert_eq!(c.profile, ProfileName::Realistic);
    assert_eq!(c.latency.round_trip_ms, Some(5));
}
