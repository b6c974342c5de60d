//! The ops server over real HTTP: start it on 127.0.0.1:0, scrape `/metrics` and parse the
//! Prometheus text, check `/healthz`, `/readyz` transitions and the `/status` JSON.
//!
//! The metrics recorder is process-global: every test installs it through
//! `pgforce::metrics::install()` (idempotent) and uses its own `pipeline` label values so
//! tests running in parallel do not see each other's samples.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use pgforce::metrics as m;
use pgforce::server::{
    Health, NotReadyReason, OpsServer, OpsServerHandle, PipelineState, PipelineStatus, Readiness,
    StatusReport,
};

/// One sample line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: samples plus the `# TYPE` of each family.
#[derive(Debug, Default)]
struct Exposition {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
    help: BTreeMap<String, String>,
}

impl Exposition {
    /// The value of the one sample with this name whose labels include all of `want`.
    fn value(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        let mut hits = self.samples.iter().filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        });
        let hit = hits.next()?;
        assert!(
            hits.next().is_none(),
            "several samples match {name} {want:?}"
        );
        Some(hit.value)
    }
}

/// Parse the Prometheus text format (0.0.4): comments, `name{labels} value [timestamp]`.
fn parse_exposition(text: &str) -> Exposition {
    let mut out = Exposition::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line has a kind");
            out.types.insert(name.to_owned(), kind.to_owned());
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.help.insert(name.to_owned(), help.to_owned());
        } else if !line.starts_with('#') {
            out.samples.push(parse_sample(line));
        }
    }
    out
}

/// Parse one sample line.
fn parse_sample(line: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let name = line[..name_end].to_owned();
    let (labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end + 1..])
    } else {
        (BTreeMap::new(), &line[name_end..])
    };
    let value = rest
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    Sample {
        name,
        labels,
        value,
    }
}

/// Parse `k="v",k2="v2"}` (after the opening brace); returns the labels and the rest.
fn parse_labels(mut s: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches(',');
        if let Some(rest) = s.strip_prefix('}') {
            return (labels, rest);
        }
        let (key, rest) = s.split_once("=\"").expect("label has =\"");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().expect("label value is closed") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("escape has a char").1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        s = &rest[end + 1..];
    }
}

/// Start a server on a free loopback port with the given registry.
async fn start(health: Health) -> (OpsServerHandle, String) {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = OpsServer::start(addr, health).await.expect("server starts");
    let base = format!("http://{}", server.local_addr());
    (server, base)
}

/// A pipeline status that passes every readiness check.
fn ready(name: &str) -> PipelineStatus {
    PipelineStatus {
        state: PipelineState::Streaming,
        postgres_connected: true,
        salesforce_connected: true,
        slot_active: true,
        ..PipelineStatus::starting(name)
    }
}

#[tokio::test]
async fn metrics_scrape_has_names_labels_and_values() {
    m::install();
    let p = "scrape-test";
    metrics::counter!(m::CHANGES_DECODED, "pipeline" => p).increment(7);
    metrics::counter!(m::CHANGES_APPLIED, "pipeline" => p).increment(5);
    metrics::gauge!(m::REPLICATION_LAG_BYTES, "pipeline" => p).set(4096.0);
    metrics::gauge!(m::SLOT_ACTIVE, "pipeline" => p).set(1.0);
    metrics::counter!(m::DEAD_LETTERS, "pipeline" => p, "mapping" => "accounts",
        "error_code" => "REQUIRED_FIELD_MISSING")
    .increment(2);
    metrics::histogram!(m::FLUSH_LATENCY, "pipeline" => p).record(0.2);
    metrics::histogram!(m::FLUSH_LATENCY, "pipeline" => p).record(3.0);

    let (server, base) = start(Health::new()).await;
    let resp = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    let expo = parse_exposition(&text);

    let pl = [("pipeline", p)];
    assert_eq!(expo.value(m::CHANGES_DECODED, &pl), Some(7.0));
    assert_eq!(expo.value(m::CHANGES_APPLIED, &pl), Some(5.0));
    assert_eq!(expo.value(m::REPLICATION_LAG_BYTES, &pl), Some(4096.0));
    assert_eq!(expo.value(m::SLOT_ACTIVE, &pl), Some(1.0));
    let dl = [
        ("pipeline", p),
        ("mapping", "accounts"),
        ("error_code", "REQUIRED_FIELD_MISSING"),
    ];
    assert_eq!(expo.value(m::DEAD_LETTERS, &dl), Some(2.0));

    assert_eq!(expo.types[m::CHANGES_DECODED], "counter");
    assert_eq!(expo.types[m::REPLICATION_LAG_BYTES], "gauge");
    assert_eq!(expo.types[m::FLUSH_LATENCY], "histogram");
    assert!(expo.help[m::REPLICATION_LAG_BYTES].contains("confirmed flush LSN"));

    let bucket = format!("{}_bucket", m::FLUSH_LATENCY);
    let le = |le| [("pipeline", p), ("le", le)];
    assert_eq!(expo.value(&bucket, &le("0.1")), Some(0.0));
    assert_eq!(expo.value(&bucket, &le("0.25")), Some(1.0));
    assert_eq!(expo.value(&bucket, &le("5")), Some(2.0));
    assert_eq!(expo.value(&bucket, &le("+Inf")), Some(2.0));
    let count = format!("{}_count", m::FLUSH_LATENCY);
    assert_eq!(expo.value(&count, &pl), Some(2.0));
    let sum = expo
        .value(&format!("{}_sum", m::FLUSH_LATENCY), &pl)
        .unwrap();
    assert!((sum - 3.2).abs() < 1e-9, "{sum}");

    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn healthz_answers_ok() {
    let (server, base) = start(Health::new()).await;
    let resp = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok");
    let missing = reqwest::get(format!("{base}/nope")).await.unwrap();
    assert_eq!(missing.status(), 404);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn readyz_is_503_with_reasons_until_every_pipeline_is_ready() {
    let health = Health::new();
    let (server, base) = start(health.clone()).await;
    let url = format!("{base}/readyz");

    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 503, "no pipeline registered yet");

    health.publish(ready("accounts"));
    health.publish(PipelineStatus::starting("orders"));
    health.update("accounts", |s| {
        s.state = PipelineState::Paused;
        s.governor_paused = true;
        s.governor_reason = Some("API reserve reached".into());
    });
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Readiness = resp.json().await.unwrap();
    assert!(!body.ready);
    let reasons: BTreeMap<_, _> = body
        .pipelines
        .iter()
        .map(|p| (p.name.as_str(), p.reasons.clone()))
        .collect();
    assert_eq!(
        reasons["accounts"],
        [NotReadyReason::Paused, NotReadyReason::GovernorPaused]
    );
    assert!(reasons["orders"].contains(&NotReadyReason::PostgresDisconnected));
    assert!(reasons["orders"].contains(&NotReadyReason::SlotInactive));

    health.publish(ready("accounts"));
    health.publish(ready("orders"));
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Readiness = resp.json().await.unwrap();
    assert!(body.ready && body.pipelines.iter().all(|p| p.ready));

    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn status_json_round_trips() {
    let health = Health::new();
    health.publish(PipelineStatus {
        confirmed_lsn: Some("16/B374D848".into()),
        lag_bytes: 8192,
        in_flight_jobs: 2,
        changes_per_sec: 12.5,
        dead_letters: 3,
        api_remaining: Some(14_000),
        api_max: Some(15_000),
        last_error: Some("Salesforce answered 503; retrying".into()),
        ..ready("accounts")
    });
    health.publish(PipelineStatus::starting("orders"));
    let (server, base) = start(health.clone()).await;

    let resp = reqwest::get(format!("{base}/status")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let report: StatusReport = serde_json::from_str(&text).unwrap();
    assert_eq!(report.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(report.pipelines, health.snapshot());
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(raw["pipelines"][0]["state"], "streaming");
    assert_eq!(raw["pipelines"][1]["name"], "orders");

    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let (server, base) = start(Health::new()).await;
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    server.shutdown().await.unwrap();
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
}
