//! A real Prometheus scrapes a real `pgforce run` (against a throwaway Postgres and the
//! emulator over HTTP) with the shipped alert rules loaded, and the test asks it, through its
//! HTTP API, what an operator's Grafana and Alertmanager would see:
//!
//! - every metric the Grafana dashboard (`deploy/grafana`) and the alert rules
//!   (`deploy/prometheus`) query has series, carrying every label those queries group, join
//!   or filter by; every dashboard query returns data and its legend's labels;
//! - inducing the conditions fires the matching alerts (pending or firing): dead letters rising
//!   (rows the emulator rejects), a Bulk job that ends `Failed`, the API budget low (the
//!   emulator's `/__emulator/limits`), pgforce stopped (`PgforceDown`), and pgforce back up but
//!   unable to reach Postgres (`PgforceSlotInactive`, `PgforcePipelineDown`).
//!
//! The rules are loaded from a copy generated at test time with every `for:` cut to 1 s (the
//! expressions are the shipped ones). Prometheus scrapes and evaluates every second; each wait
//! has its own deadline and the test stops its children on every exit path.
//!
//! Without a `prometheus` binary on the PATH the test says so and passes, except where it is
//! required (`CI` or `PGFORCE_REQUIRE_PROMTOOL=1`, which `.ci/run` exports): there it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::crash::*;
use serde_json::{json, Value};

const NAMESPACE: &str = "ops-test";
const POD: &str = "pgforce-0";

// ---------------------------------------------------------------------------------------------
// What the dashboard and the alerts query

/// The metric names and label names one PromQL expression uses.
#[derive(Debug, Default, PartialEq)]
struct Uses {
    metrics: BTreeSet<String>,
    labels: BTreeSet<String>,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    Punct(char),
}

/// Identifiers and punctuation of a PromQL expression; strings, numbers, durations and
/// Grafana variables (`$pipeline`) are dropped.
fn tokenize(expr: &str) -> Vec<Tok> {
    let chars: Vec<char> = expr.chars().collect();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '$' || c.is_ascii_digit() || c == '.' {
            i += 1;
            while i < chars.len() && (word(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if word(c) {
            let start = i;
            while i < chars.len() && word(chars[i]) {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            if !c.is_whitespace() {
                out.push(Tok::Punct(c));
            }
            i += 1;
        }
    }
    out
}

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Binary operators and modifiers spelled as words.
const WORD_OPERATORS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2"];

/// The metrics and labels an expression uses: a name inside `{…}` is a label; a name before
/// `(` or before `by`/`without` is a function or aggregation; the rest are metrics.
fn uses(expr: &str) -> Uses {
    let toks = tokenize(expr);
    let mut out = Uses::default();
    let mut braces = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let next = toks.get(i + 1);
        match &toks[i] {
            Tok::Punct('{') => braces += 1,
            Tok::Punct('}') => braces = braces.saturating_sub(1),
            Tok::Ident(name) if braces > 0 => {
                out.labels.insert(name.clone());
            }
            Tok::Ident(kw) if LABEL_LISTS.contains(&kw.as_str()) => {
                if next == Some(&Tok::Punct('(')) {
                    i += 2;
                    while i < toks.len() && toks[i] != Tok::Punct(')') {
                        if let Tok::Ident(label) = &toks[i] {
                            out.labels.insert(label.clone());
                        }
                        i += 1;
                    }
                }
            }
            Tok::Ident(kw) if WORD_OPERATORS.contains(&kw.as_str()) => {}
            Tok::Ident(_)
                if matches!(next, Some(Tok::Punct('(')))
                    || matches!(next, Some(Tok::Ident(k)) if k == "by" || k == "without") => {}
            Tok::Ident(name) => {
                out.metrics.insert(name.clone());
            }
            Tok::Punct(_) => {}
        }
        i += 1;
    }
    out
}

#[test]
fn extractor_finds_metrics_and_labels() {
    let u = uses(
        r#"sum by (namespace, pipeline, object) (increase(pgforce_bulk_jobs_total{state=~"(?i)failed|aborted"}[15m])) > 0"#,
    );
    assert_eq!(u.metrics, set(&["pgforce_bulk_jobs_total"]));
    assert_eq!(u.labels, set(&["namespace", "pipeline", "object", "state"]));
    let u = uses(
        "max by (namespace, pipeline) (pgforce_slot_active) == 0\nunless on (namespace, pipeline)\nmin by (namespace, pipeline) (pgforce_backfill_progress_ratio) < 1",
    );
    assert_eq!(
        u.metrics,
        set(&["pgforce_slot_active", "pgforce_backfill_progress_ratio"])
    );
    assert_eq!(u.labels, set(&["namespace", "pipeline"]));
    let u = uses(
        r#"histogram_quantile(0.99, sum by (pipeline, le) (rate(pgforce_flush_latency_seconds_bucket{pipeline=~"$pipeline"}[$__rate_interval])))"#,
    );
    assert_eq!(u.metrics, set(&["pgforce_flush_latency_seconds_bucket"]));
    assert_eq!(u.labels, set(&["pipeline", "le"]));
    let u = uses(r#"absent(up{job="pgforce"} == 1)"#);
    assert_eq!(u.metrics, set(&["up"]));
    assert_eq!(u.labels, set(&["job"]));
    let u = uses("min by (namespace, pipeline) (a_total / b_max) < 0.1 and c");
    assert_eq!(u.metrics, set(&["a_total", "b_max", "c"]));
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A path under the repository root.
fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The PrometheusRule's `spec` (the rule groups) as YAML.
fn rule_spec() -> serde_yaml_ng::Value {
    let text = std::fs::read_to_string(repo("deploy/prometheus/pgforce-alerts.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    doc["spec"].clone()
}

/// `alert name → expression` of every shipped rule.
fn alert_exprs() -> BTreeMap<String, String> {
    let spec = rule_spec();
    let mut out = BTreeMap::new();
    for group in spec["groups"].as_sequence().expect("rule groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("an alerting rule").to_owned();
            let expr = rule["expr"].as_str().expect("an expression").to_owned();
            out.insert(name, expr);
        }
    }
    out
}

/// The rules file Prometheus loads: the shipped rules with every `for:` cut to 1 s.
fn test_rules_file() -> String {
    let mut spec = rule_spec();
    for group in spec["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            if let Some(map) = rule.as_mapping_mut() {
                if map.contains_key("for") {
                    map.insert("for".into(), "1s".into());
                }
            }
        }
    }
    serde_yaml_ng::to_string(&spec).unwrap()
}

/// One dashboard query: its expression and legend.
#[derive(Debug)]
struct Panel {
    title: String,
    expr: String,
    legend: String,
}

/// Every target of the Grafana dashboard.
fn dashboard_queries() -> Vec<Panel> {
    let text = std::fs::read_to_string(repo("deploy/grafana/pgforce-dashboard.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    collect_targets(&dash, "", &mut out);
    assert!(out.len() > 10, "the dashboard has queries: {out:?}");
    out
}

fn collect_targets(v: &Value, title: &str, out: &mut Vec<Panel>) {
    match v {
        Value::Object(map) => {
            let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
            if let Some(expr) = map.get("expr").and_then(Value::as_str) {
                out.push(Panel {
                    title: title.to_owned(),
                    expr: expr.to_owned(),
                    legend: map
                        .get("legendFormat")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                });
            }
            for child in map.values() {
                collect_targets(child, title, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|c| collect_targets(c, title, out)),
        _ => {}
    }
}

/// The `{{label}}` names in a legend format.
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}"))
        .map(|(label, _)| label.trim().to_owned())
        .collect()
}

/// A dashboard expression with the Grafana variables this test's one pipeline needs.
fn grafana_to_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "30s")
        .replace("$pipeline", PIPELINE)
}

// ---------------------------------------------------------------------------------------------
// Prometheus

/// Whether a missing Prometheus fails the test (CI) instead of skipping it.
fn prometheus_required() -> bool {
    let set =
        |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("CI") || set("PGFORCE_REQUIRE_PROMTOOL")
}

/// A Prometheus server on a free port, in a temp dir, killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Prometheus {
    /// Start scraping `target` (host:port) every second with `rules` loaded.
    fn start(target: &str, rules: &str) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("pgforce-prometheus-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
        let config = format!(
            r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: pgforce
    static_configs:
      - targets: ["{target}"]
        labels: {{namespace: "{NAMESPACE}", pod: "{POD}"}}
"#
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            addr,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        }
    }

    fn log(&self) -> String {
        log_tail(&self.dir.path().join("prometheus.log"), 30)
    }

    /// Wait until Prometheus answers `/-/ready` and has loaded the rules.
    async fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let url = format!("http://{}/-/ready", self.addr);
            if let Ok(r) = self.http.get(url).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let rules = self.api("rules", &[]).await;
        let loaded = rules["groups"].as_array().map_or(0, Vec::len);
        assert!(loaded >= 3, "rules not loaded: {rules}\n{}", self.log());
    }

    /// `GET /api/v1/<path>`'s `data`, panicking on an API error.
    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let url = format!("http://{}/api/v1/{path}", self.addr);
        let body: Value = self
            .http
            .get(url)
            .query(params)
            .send()
            .await
            .unwrap_or_else(|e| panic!("prometheus {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("prometheus {path}: {e}"));
        assert_eq!(
            body["status"], "success",
            "prometheus {path} {params:?}: {body}"
        );
        body["data"].clone()
    }

    /// An instant query's result vector.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let data = self.api("query", &[("query", promql)]).await;
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The active alerts (pending or firing).
    async fn alerts(&self) -> Vec<Value> {
        let data = self.api("alerts", &[]).await;
        data["alerts"].as_array().cloned().unwrap_or_default()
    }

    /// Wait until alert `name` with `labels` is pending or firing; returns it. On timeout the
    /// panic shows the active alerts, the series the alert's expression reads and pgforce's log.
    async fn wait_alert(
        &self,
        env: &Env,
        name: &str,
        labels: &[(&str, &str)],
        limit: Duration,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let alerts = self.alerts().await;
            let found = alerts.iter().find(|a| {
                a["labels"]["alertname"] == name
                    && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
                    && matches!(a["state"].as_str(), Some("pending" | "firing"))
            });
            if let Some(alert) = found {
                note(format!(
                    "alert {name} is {}: {}",
                    alert["state"], alert["labels"]
                ));
                return alert.clone();
            }
            if Instant::now() >= deadline {
                let expr = alert_exprs().remove(name).unwrap_or_default();
                let mut series = Vec::new();
                for metric in uses(&expr).metrics {
                    series.push(json!({metric.clone(): self.query(&metric).await}));
                }
                panic!(
                    "alert {name} {labels:?} never went pending/firing within {limit:?}\n\
                     active: {}\nseries of `{expr}`: {}\npgforce log:\n{}",
                    Value::Array(alerts),
                    Value::Array(series),
                    env.log_tail("pgforce", 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Wait until an instant query returns data.
    async fn wait_query(&self, promql: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.query(promql).await.is_empty() {
            assert!(
                Instant::now() < deadline,
                "`{promql}` returned nothing within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Wait until every metric in `names` has at least one current series.
    async fn wait_series(&self, names: &BTreeSet<String>, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let mut missing = Vec::new();
            for name in names {
                if self.query(name).await.is_empty() {
                    missing.push(name.clone());
                }
            }
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no series within {limit:?} for metrics the dashboard or alerts use: {missing:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Checks

/// Every metric of every query has a current series carrying every label the query uses.
async fn check_labels(prom: &Prometheus, source: &str, expr: &str) {
    let used = uses(expr);
    assert!(
        !used.metrics.is_empty(),
        "{source}: no metric found in {expr}"
    );
    for metric in &used.metrics {
        let series = prom.query(metric).await;
        assert!(!series.is_empty(), "{source}: no series for {metric}");
        let missing: Vec<&String> = used
            .labels
            .iter()
            .filter(|label| {
                !series
                    .iter()
                    .any(|s| s["metric"].get(label.as_str()).is_some())
            })
            .collect();
        assert!(
            missing.is_empty(),
            "{source}: {metric} has no series with label(s) {missing:?} that `{expr}` uses; \
             exported: {}",
            Value::Array(series)
        );
    }
}

/// Every dashboard query returns data, and every label its legend shows.
async fn check_dashboard(prom: &Prometheus) {
    for panel in dashboard_queries() {
        let source = format!("dashboard panel {:?}", panel.title);
        check_labels(prom, &source, &panel.expr).await;
        let promql = grafana_to_promql(&panel.expr);
        let result = prom.query(&promql).await;
        if uses(&panel.expr).labels.contains("state") {
            // Failed/Aborted jobs only: data once a job failed (the test makes one fail).
            note(format!("{source}: {} series", result.len()));
        }
        assert!(!result.is_empty(), "{source}: `{promql}` returns no data");
        for label in legend_labels(&panel.legend) {
            assert!(
                result.iter().all(|r| r["metric"].get(&label).is_some()),
                "{source}: legend {:?} shows {label}, which `{promql}` does not return: {}",
                panel.legend,
                Value::Array(result.clone())
            );
        }
    }
}

/// `metric → documented labels` from the metric table in deploy/README.md.
fn documented_labels() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(repo("deploy/README.md")).unwrap();
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix("`pgforce_")?.strip_suffix('`')?;
            let labels = cells
                .get(3)?
                .split(',')
                .map(|l| l.trim().trim_matches('`').to_owned())
                .filter(|l| !l.is_empty())
                .collect();
            Some((format!("pgforce_{name}"), labels))
        })
        .collect()
}

/// Labels Prometheus adds (target labels of this test's scrape config, histogram buckets).
const ADDED_LABELS: &[&str] = &["__name__", "instance", "job", "namespace", "pod", "le"];

/// The exported series of a documented metric carry the documented labels, and no others.
async fn check_documented_labels(prom: &Prometheus) {
    let documented = documented_labels();
    assert!(documented.len() > 10, "README metric table: {documented:?}");
    let mut wrong = Vec::new();
    for (metric, labels) in documented {
        let series = prom
            .query(&format!("{{__name__=~\"{metric}(_bucket)?\"}}"))
            .await;
        let mut seen = BTreeSet::new();
        for s in &series {
            let exported: BTreeSet<String> = s["metric"]
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| !ADDED_LABELS.contains(&k.as_str()))
                .cloned()
                .collect();
            // Prometheus drops empty label values (`object=""` on a login call), so a series
            // may lack a documented label, but never carries an undocumented one.
            if !exported.is_subset(&labels) {
                wrong.push(format!(
                    "{metric}: exported {exported:?}, documented {labels:?}"
                ));
            }
            seen.extend(exported);
        }
        if !series.is_empty() && seen != labels {
            wrong.push(format!(
                "{metric}: exported {seen:?} in all, documented {labels:?}"
            ));
        }
    }
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "exported labels differ from deploy/README.md's metric table:\n{}",
        wrong.join("\n")
    );
}

/// Every metric the dashboard and the alerts use, by name.
fn used_metrics() -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for expr in alert_exprs().values() {
        all.extend(uses(expr).metrics);
    }
    for panel in dashboard_queries() {
        all.extend(uses(&panel.expr).metrics);
    }
    all
}

// ---------------------------------------------------------------------------------------------
// Inducing conditions

/// Contacts whose `last_name` is NULL: the emulator rejects them (REQUIRED_FIELD_MISSING), one
/// transaction every 1.5 s until `stop` is set, so the dead-letter counter keeps rising.
fn reject_contacts_until(url: String, stop: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        let pg = connect(&url).await;
        let mut id = 900_000i64;
        while !*stop.borrow() {
            id += 1;
            let _ = pg
                .execute(
                    "INSERT INTO contacts (id, account_id, last_name) VALUES ($1, 1, NULL)",
                    &[&id],
                )
                .await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    });
}

/// `n` new Accounts in one transaction (above the collections threshold: a Bulk job).
async fn insert_accounts(pg: &tokio_postgres::Client, from: i64, n: i64) {
    pg.batch_execute(&format!(
        "INSERT INTO accounts SELECT g, 'Ops ' || g, NULL, NULL, 1 FROM generate_series({from}, {}) g",
        from + n - 1
    ))
    .await
    .unwrap();
}

/// `PUT /__emulator/limits` on the emulator.
async fn set_emulator_limits(base: &str, body: Value) {
    let resp = reqwest::Client::new()
        .put(format!("{base}/__emulator/limits"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "limits: {}", resp.status());
}

/// `POST /__emulator/faults` on the emulator.
async fn add_emulator_fault(base: &str, body: Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/__emulator/faults"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "faults: {}", resp.status());
}

async fn wait_streaming(env: &Env, addr: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while pipeline_state(addr).await.as_deref() != Some("streaming") {
        assert!(
            Instant::now() < deadline,
            "pgforce not streaming within {limit:?}:\n{}",
            env.log_tail("pgforce", 40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The test

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_sees_what_dashboard_and_alerts_query_and_alerts_fire() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            !prometheus_required(),
            "prometheus is required here (CI or PGFORCE_REQUIRE_PROMTOOL=1) but not on the \
             PATH: install Debian's `prometheus` package (.ci/run does)"
        );
        eprintln!("prometheus not installed; skipping the real-Prometheus scrape and alert test");
        return;
    }
    let started = Instant::now();
    let mut env = Env::start(ConfigOptions::default()).await;
    let pg = env.client().await;
    seed(&pg, 300, 100).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = env.spawn("pgforce", Some(&addr));
    let mut prom = Prometheus::start(&addr, &test_rules_file());
    prom.wait_ready(Duration::from_secs(30)).await;
    wait_streaming(&env, &addr, Duration::from_secs(120)).await;
    let base = env.emulator.base_url().to_owned();
    let wait = Duration::from_secs(90);

    // Prometheus must have scraped the counters at 0 before anything fails, or `increase()`
    // cannot see the first failure.
    prom.wait_query(
        &format!(r#"pgforce_bulk_jobs_total{{pipeline="{PIPELINE}", object="Account", state="failed"}} == 0"#),
        wait,
    )
    .await;

    // Traffic on both paths, a Bulk job that ends Failed, and rows Salesforce rejects.
    insert_accounts(&pg, 10_000, 300).await;
    pg.batch_execute("UPDATE accounts SET site = 'updated' WHERE id <= 5")
        .await
        .unwrap();
    add_emulator_fault(
        &base,
        json!({"kind": "bulk_job_failed", "method": "PATCH",
               "pathPrefix": format!("/services/data/v{API_VERSION}/jobs/ingest/"), "times": 1}),
    )
    .await;
    insert_accounts(&pg, 20_000, 300).await;
    pg.batch_execute("ALTER TABLE contacts ALTER COLUMN last_name DROP NOT NULL")
        .await
        .unwrap();
    let (stop_rejects, rejects) = tokio::sync::watch::channel(false);
    reject_contacts_until(env.db_url.clone(), rejects);

    // Every metric the dashboard and the alerts use is exported, with the labels they use.
    let metrics = used_metrics();
    note(format!(
        "metrics used by the dashboard and alerts: {metrics:?}"
    ));
    prom.wait_series(&metrics, wait).await;
    for (alert, expr) in alert_exprs() {
        check_labels(&prom, &format!("alert {alert}"), &expr).await;
    }
    let pipeline = [("pipeline", PIPELINE), ("namespace", NAMESPACE)];
    prom.wait_alert(
        &env,
        "PgforceDeadLettersRising",
        &[pipeline[0], pipeline[1], ("mapping", "contacts")],
        wait,
    )
    .await;
    prom.wait_alert(
        &env,
        "PgforceBulkJobsFailing",
        &[pipeline[0], ("object", "Account")],
        wait,
    )
    .await;
    check_dashboard(&prom).await;
    check_documented_labels(&prom).await;
    stop_rejects.send(true).unwrap();

    // The org's daily API budget nearly spent: the next calls carry it in Sforce-Limit-Info.
    set_emulator_limits(&base, json!({"dailyApiLimit": 100_000, "used": 95_000})).await;
    insert_accounts(&pg, 30_000, 3).await;
    prom.wait_alert(&env, "PgforceSalesforceApiBudgetLow", &pipeline, wait)
        .await;
    prom.wait_alert(&env, "PgforceGovernorPaused", &pipeline, wait)
        .await;
    set_emulator_limits(&base, json!({"dailyApiLimit": 50_000_000, "used": 0})).await;

    // pgforce stopped: nothing healthy to scrape.
    child.signal(libc::SIGTERM);
    let exit = child.wait_exit(Duration::from_secs(60)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "SIGTERM: {exit:?}\n{}",
        env.log_tail("pgforce", 40)
    );
    prom.wait_alert(&env, "PgforceDown", &[], wait).await;

    // pgforce back, but Postgres is gone: the process is scraped, no replica streams.
    drop(pg);
    env.cluster.stop().expect("stop Postgres");
    let _child = env.spawn("pgforce", Some(&addr));
    prom.wait_alert(&env, "PgforceSlotInactive", &pipeline, wait)
        .await;
    prom.wait_alert(&env, "PgforcePipelineDown", &pipeline, wait)
        .await;
    note(format!("done in {:?}", started.elapsed()));
}
