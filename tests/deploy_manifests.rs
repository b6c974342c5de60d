//! Offline checks of everything under `deploy/`: the Kubernetes manifests and the alert rules
//! parse and are wired to what the ops server really serves; every metric that an alert or a
//! dashboard panel queries exists in `src/metrics.rs`; the README's metric table matches the
//! catalogue; the Dockerfile matches the server's port and user. No network, no cluster.
//!
//! When `promtool` is on the PATH, the alert rules are also checked and unit-tested with it
//! (`deploy/prometheus/pgforce-alerts.test.yaml`); without it that test says so and passes,
//! except in CI (`CI` or `PGFORCE_REQUIRE_PROMTOOL=1`), where a missing promtool fails it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use pgforce::server::{DEFAULT_PORT, HEALTHZ_PATH, LISTEN_ENV, METRICS_PATH, READYZ_PATH};
use serde::Deserialize;
use serde_yaml_ng::Value;

// ---------------------------------------------------------------------------------------------
// Loading

/// A path under the repository root.
fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A file's text, panicking with its path.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The YAML files of a deploy directory, sorted; promtool test files are not manifests.
fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .filter(|p| !file_name(p).ends_with(".test.yaml"))
        .collect();
    files.sort();
    files
}

/// The final component of a path, as text.
fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap()
}

/// Every non-empty YAML document in a file.
fn docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// Every manifest document of `deploy/kubernetes` and `deploy/prometheus` with its file name.
fn all_manifests() -> Vec<(String, Value)> {
    ["deploy/kubernetes", "deploy/prometheus"]
        .iter()
        .flat_map(|dir| yaml_files(dir))
        .flat_map(|path| {
            let name = file_name(&path).to_owned();
            docs(&path).into_iter().map(move |d| (name.clone(), d))
        })
        .collect()
}

/// The single document of `kind` in `deploy/kubernetes`.
fn kube(kind: &str) -> Value {
    let mut found: Vec<Value> = yaml_files("deploy/kubernetes")
        .iter()
        .flat_map(|p| docs(p))
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} in deploy/kubernetes");
    found.remove(0)
}

/// The value at a dotted path (`spec.template.spec`), or `None`.
fn opt<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// The value at a dotted path, panicking with the path when missing.
fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    opt(value, path).unwrap_or_else(|| panic!("missing {path}"))
}

/// The string at a dotted path.
fn text<'a>(value: &'a Value, path: &str) -> &'a str {
    at(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

/// The sequence at a dotted path.
fn seq<'a>(value: &'a Value, path: &str) -> &'a [Value] {
    at(value, path)
        .as_sequence()
        .unwrap_or_else(|| panic!("{path} is not a list"))
}

/// A string→string mapping (labels, selectors).
fn string_map(value: &Value) -> BTreeMap<String, String> {
    serde_yaml_ng::from_value(value.clone()).expect("a string map")
}

/// The Deployment's single container.
fn container(deployment: &Value) -> &Value {
    let containers = seq(deployment, "spec.template.spec.containers");
    assert_eq!(containers.len(), 1, "one container expected");
    &containers[0]
}

// ---------------------------------------------------------------------------------------------
// The metric catalogue, read from src/metrics.rs

/// One metric of the catalogue: its kind (`counter|gauge|histogram`) and help text.
#[derive(Debug, Clone, PartialEq)]
struct MetricDef {
    kind: String,
    help: String,
}

/// Parse `pub const X: &str = "pgforce_…"` and `describe_<kind>!(X, …, "help")` from the file.
fn catalogue() -> BTreeMap<String, MetricDef> {
    let src = read(&repo("src/metrics.rs"));
    let consts = metric_consts(&src);
    let mut out = BTreeMap::new();
    for kind in ["counter", "gauge", "histogram"] {
        let opener = format!("describe_{kind}!(");
        for (start, _) in src.match_indices(&opener) {
            let body = &src[start + opener.len()..];
            let body = &body[..body.find(");").expect("describe macro is closed")];
            let ident = body.split(',').next().unwrap().trim();
            let name = consts
                .get(ident)
                .unwrap_or_else(|| panic!("unknown {ident}"));
            let help = last_string_literal(body);
            let def = MetricDef {
                kind: kind.to_owned(),
                help,
            };
            assert!(
                out.insert(name.clone(), def).is_none(),
                "{name} described twice"
            );
        }
    }
    out
}

/// `CONST_NAME → "pgforce_…"` for every metric name constant.
fn metric_consts(src: &str) -> BTreeMap<String, String> {
    src.lines()
        .filter_map(|line| line.trim().strip_prefix("pub const "))
        .filter_map(|rest| {
            let (ident, rest) = rest.split_once(": &str = \"")?;
            let value = rest.strip_suffix("\";")?;
            value
                .starts_with("pgforce_")
                .then(|| (ident.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The last `"…"` literal in a snippet of Rust (help texts carry no escapes).
fn last_string_literal(body: &str) -> String {
    let end = body.rfind('"').expect("a string literal");
    let start = body[..end].rfind('"').expect("an opening quote");
    body[start + 1..end].to_owned()
}

/// Whether a queried series name exists: a catalogue metric, or a histogram's
/// `_bucket`/`_sum`/`_count` series.
fn is_known_series(name: &str, cat: &BTreeMap<String, MetricDef>) -> bool {
    if cat.contains_key(name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .and_then(|base| cat.get(base))
            .is_some_and(|def| def.kind == "histogram")
    })
}

// ---------------------------------------------------------------------------------------------
// The README's metric table

/// One row of the README metric table.
#[derive(Debug)]
struct DocRow {
    name: String,
    kind: String,
    labels: Vec<String>,
    meaning: String,
}

/// The rows of the `| Metric | Type | Labels | Meaning |` table in deploy/README.md.
fn readme_metric_rows() -> Vec<DocRow> {
    read(&repo("deploy/README.md"))
        .lines()
        .filter(|l| l.starts_with("| `pgforce_"))
        .map(|line| {
            let cells: Vec<String> = line
                .replace("\\|", "\u{0}")
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().replace('\u{0}', "|"))
                .collect();
            assert_eq!(cells.len(), 4, "metric row has 4 cells: {line}");
            let unquote = |s: &str| s.trim().trim_matches('`').to_owned();
            DocRow {
                name: unquote(&cells[0]),
                kind: cells[1].clone(),
                labels: cells[2].split(',').map(unquote).collect(),
                meaning: cells[3].clone(),
            }
        })
        .collect()
}

/// Labels that Prometheus or the histogram format add on top of pgforce's own.
const INFRA_LABELS: &[&str] = &["namespace", "pod", "instance", "job", "le", "container"];

/// Every label name a query may use: documented metric labels plus infrastructure labels.
fn known_labels() -> BTreeSet<String> {
    readme_metric_rows()
        .into_iter()
        .flat_map(|row| row.labels)
        .chain(INFRA_LABELS.iter().map(|s| s.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A small PromQL scanner: enough to check brackets, metric names and label names

/// A PromQL token; string contents are dropped.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str,
    Open(char),
    Close(char),
    Other,
}

/// Split PromQL into tokens; numbers and durations (`15m`, `0.5`) become `Other`.
fn tokenize(expr: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i)?;
            toks.push(Tok::Str);
            continue;
        }
        let word_end = |from: usize| {
            (from..chars.len())
                .find(|&j| {
                    !(chars[j].is_ascii_alphanumeric()
                        || chars[j] == '_'
                        || chars[j] == ':'
                        || chars[j] == '.')
                })
                .unwrap_or(chars.len())
        };
        if c.is_ascii_alphabetic() || c == '_' {
            let end = word_end(i);
            toks.push(Tok::Ident(chars[i..end].iter().collect()));
            i = end;
        } else if c.is_ascii_digit() {
            i = word_end(i);
            toks.push(Tok::Other);
        } else {
            toks.push(match c {
                '(' | '[' | '{' => Tok::Open(c),
                ')' | ']' | '}' => Tok::Close(c),
                _ => Tok::Other,
            });
            i += 1;
        }
    }
    Ok(toks)
}

/// The index after the string literal starting at `start`.
fn skip_string(chars: &[char], start: usize) -> Result<usize, String> {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("unterminated string".into())
}

/// Brackets `()[]{}` balance and nest properly.
fn check_balanced(toks: &[Tok]) -> Result<(), String> {
    let mut stack = Vec::new();
    for tok in toks {
        match tok {
            Tok::Open(c) => stack.push(*c),
            Tok::Close(c) => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(want) {
                    return Err(format!("unbalanced {c}"));
                }
            }
            _ => {}
        }
    }
    match stack.last() {
        Some(open) => Err(format!("unclosed {open}")),
        None => Ok(()),
    }
}

/// Metric names (`pgforce_*`) and label names (in `{…}` selectors and `by/on/…(…)` lists).
fn names_in(toks: &[Tok]) -> (BTreeSet<String>, BTreeSet<String>) {
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
    let mut in_labels: Option<char> = None;
    for (i, tok) in toks.iter().enumerate() {
        match tok {
            Tok::Open('{') => in_labels = Some('}'),
            Tok::Open('(')
                if i > 0
                    && matches!(&toks[i - 1], Tok::Ident(w) if LABEL_LISTS.contains(&w.as_str())) =>
            {
                in_labels = Some(')')
            }
            Tok::Close(c) if in_labels == Some(*c) => in_labels = None,
            Tok::Ident(word) if in_labels.is_some() => {
                labels.insert(word.clone());
            }
            Tok::Ident(word) if word.starts_with("pgforce_") => {
                metrics.insert(word.clone());
            }
            _ => {}
        }
    }
    (metrics, labels)
}

/// Check one PromQL expression: balanced, known metrics, documented labels. Returns problems.
fn check_promql(where_: &str, expr: &str, cat: &BTreeMap<String, MetricDef>) -> Vec<String> {
    let toks = match tokenize(expr) {
        Ok(toks) => toks,
        Err(e) => return vec![format!("{where_}: {e}")],
    };
    let mut problems = Vec::new();
    if let Err(e) = check_balanced(&toks) {
        problems.push(format!("{where_}: {e} in {expr:?}"));
    }
    let (metrics, labels) = names_in(&toks);
    if metrics.is_empty() && !expr.contains("up{") {
        problems.push(format!("{where_}: queries no pgforce metric"));
    }
    for metric in metrics.iter().filter(|m| !is_known_series(m, cat)) {
        problems.push(format!("{where_}: {metric} is not in src/metrics.rs"));
    }
    let known = known_labels();
    for label in labels.iter().filter(|l| !known.contains(*l)) {
        problems.push(format!(
            "{where_}: label {label} is not documented in deploy/README.md"
        ));
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Tests: manifests

#[test]
fn every_manifest_has_api_version_kind_and_name() {
    let manifests = all_manifests();
    assert!(
        manifests.len() >= 9,
        "found only {} documents",
        manifests.len()
    );
    for (file, doc) in &manifests {
        assert!(
            opt(doc, "apiVersion").and_then(Value::as_str).is_some(),
            "{file}: apiVersion"
        );
        let kind = opt(doc, "kind").and_then(Value::as_str);
        assert!(kind.is_some(), "{file}: kind");
        if kind != Some("Kustomization") {
            let name = opt(doc, "metadata.name").and_then(Value::as_str);
            assert!(name.is_some_and(|n| !n.is_empty()), "{file}: metadata.name");
            assert!(
                opt(doc, "metadata.namespace").is_none(),
                "{file}: namespace-agnostic"
            );
        }
    }
}

#[test]
fn kustomizations_list_every_manifest_but_the_example_secret() {
    for dir in ["deploy/kubernetes", "deploy/prometheus"] {
        let kustomization = docs(&repo(&format!("{dir}/kustomization.yaml"))).remove(0);
        let listed: BTreeSet<&str> = seq(&kustomization, "resources")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for res in &listed {
            assert!(
                repo(&format!("{dir}/{res}")).is_file(),
                "{dir}: {res} is listed but missing"
            );
        }
        for path in yaml_files(dir) {
            let name = file_name(&path);
            let expected = !matches!(name, "kustomization.yaml" | "secret.example.yaml");
            assert_eq!(
                listed.contains(name),
                expected,
                "{dir}/{name} listed = {expected}?"
            );
        }
    }
}

#[test]
fn probes_and_scrapes_hit_served_paths_on_the_ops_port() {
    let deployment = kube("Deployment");
    let c = container(&deployment);
    let port = seq(c, "ports")
        .iter()
        .find(|p| text(p, "name") == "metrics")
        .expect("a port named metrics");
    assert_eq!(
        at(port, "containerPort").as_u64(),
        Some(u64::from(DEFAULT_PORT))
    );
    assert_eq!(text(c, "livenessProbe.httpGet.path"), HEALTHZ_PATH);
    assert_eq!(text(c, "readinessProbe.httpGet.path"), READYZ_PATH);
    assert_eq!(text(c, "livenessProbe.httpGet.port"), "metrics");
    assert_eq!(text(c, "readinessProbe.httpGet.port"), "metrics");
    let listen = env_value(c, LISTEN_ENV).expect("PGFORCE_OPS_LISTEN is set");
    assert_eq!(listen, format!("0.0.0.0:{DEFAULT_PORT}"));

    let service = kube("Service");
    let svc_port = &seq(&service, "spec.ports")[0];
    assert_eq!(text(svc_port, "name"), "metrics");
    assert_eq!(text(svc_port, "targetPort"), "metrics");
    let monitor = kube("ServiceMonitor");
    let endpoint = &seq(&monitor, "spec.endpoints")[0];
    assert_eq!(text(endpoint, "port"), "metrics");
    assert_eq!(text(endpoint, "path"), METRICS_PATH);
    assert_eq!(text(&monitor, "apiVersion"), "monitoring.coreos.com/v1");
}

/// A literal `env` value of the container.
fn env_value(container: &Value, name: &str) -> Option<String> {
    seq(container, "env")
        .iter()
        .find(|e| text(e, "name") == name)
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[test]
fn selectors_match_the_pod_labels() {
    let deployment = kube("Deployment");
    let pod_labels = string_map(at(&deployment, "spec.template.metadata.labels"));
    let is_subset = |sel: &BTreeMap<String, String>, of: &BTreeMap<String, String>| {
        !sel.is_empty() && sel.iter().all(|(k, v)| of.get(k) == Some(v))
    };
    let deploy_sel = string_map(at(&deployment, "spec.selector.matchLabels"));
    assert!(is_subset(&deploy_sel, &pod_labels), "Deployment selector");
    let service = kube("Service");
    assert!(
        is_subset(&string_map(at(&service, "spec.selector")), &pod_labels),
        "Service"
    );
    let pdb = kube("PodDisruptionBudget");
    let pdb_sel = string_map(at(&pdb, "spec.selector.matchLabels"));
    assert!(
        is_subset(&pdb_sel, &pod_labels),
        "PodDisruptionBudget selector"
    );
    let monitor = kube("ServiceMonitor");
    let service_labels = string_map(at(&service, "metadata.labels"));
    let mon_sel = string_map(at(&monitor, "spec.selector.matchLabels"));
    assert!(
        is_subset(&mon_sel, &service_labels),
        "ServiceMonitor selector"
    );
}

#[test]
fn deployment_runs_non_root_hardened_and_highly_available() {
    let deployment = kube("Deployment");
    assert!(
        at(&deployment, "spec.replicas").as_u64() >= Some(2),
        "two replicas for HA"
    );
    let pod = at(&deployment, "spec.template.spec");
    assert_eq!(
        at(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    assert_eq!(at(pod, "securityContext.runAsUser").as_u64(), Some(10001));
    assert_eq!(
        at(pod, "automountServiceAccountToken").as_bool(),
        Some(false)
    );
    let c = container(&deployment);
    assert_eq!(at(c, "securityContext.runAsNonRoot").as_bool(), Some(true));
    assert_eq!(
        at(c, "securityContext.readOnlyRootFilesystem").as_bool(),
        Some(true)
    );
    assert_eq!(
        at(c, "securityContext.allowPrivilegeEscalation").as_bool(),
        Some(false)
    );
    let drop: Vec<&str> = seq(c, "securityContext.capabilities.drop")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(drop, ["ALL"]);
    for key in [
        "requests.cpu",
        "requests.memory",
        "limits.cpu",
        "limits.memory",
    ] {
        assert!(opt(at(c, "resources"), key).is_some(), "resources.{key}");
    }
    let pdb = kube("PodDisruptionBudget");
    assert_eq!(at(&pdb, "spec.maxUnavailable").as_u64(), Some(1));
    assert_eq!(
        at(&deployment, "spec.strategy.rollingUpdate.maxUnavailable").as_u64(),
        Some(0)
    );
}

#[test]
fn config_mounts_secrets_and_grace_period_line_up() {
    let deployment = kube("Deployment");
    let c = container(&deployment);
    let config_map = kube("ConfigMap");
    // The key has a dot in it, so it cannot go through the dotted-path helper.
    let toml_text = at(&config_map, "data")
        .get("pgforce.toml")
        .and_then(Value::as_str)
        .expect("the ConfigMap holds pgforce.toml");
    let config: toml::Table = toml::from_str(toml_text).expect("pgforce.toml parses");
    // And it is a valid pgforce config, not just TOML.
    if let Err(e) = pgforce::config::Config::parse_unresolved(toml_text) {
        panic!("the ConfigMap's pgforce.toml is not a valid config: {e}");
    }

    // --config points at the ConfigMap's key under the config mount.
    let args: Vec<&str> = seq(c, "args").iter().filter_map(Value::as_str).collect();
    let config_path = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    let mounts = seq(c, "volumeMounts");
    let mount_of = |volume: &str| {
        let m = mounts.iter().find(|m| text(m, "name") == volume).unwrap();
        text(m, "mountPath").to_owned()
    };
    assert_eq!(config_path, format!("{}/pgforce.toml", mount_of("config")));

    // env: references are set from the Secret; file: references live under the secret mount.
    let secret_dir = mount_of("secrets");
    for reference in secret_refs(&toml::Value::Table(config.clone())) {
        if let Some(var) = reference.strip_prefix("env:") {
            let from_secret = seq(c, "env")
                .iter()
                .any(|e| text(e, "name") == var && opt(e, "valueFrom.secretKeyRef.name").is_some());
            assert!(from_secret, "{var} is not filled from a Secret");
        } else if let Some(file) = reference.strip_prefix("file:") {
            assert!(
                file.starts_with(&format!("{secret_dir}/")),
                "{file} outside {secret_dir}"
            );
        }
    }

    let grace = config["server"]["shutdown_grace_seconds"]
        .as_integer()
        .unwrap();
    let termination = at(
        &deployment,
        "spec.template.spec.terminationGracePeriodSeconds",
    )
    .as_i64()
    .unwrap();
    assert!(
        termination >= grace + 10,
        "terminationGracePeriodSeconds {termination} vs grace {grace}"
    );
}

/// Every `env:`/`file:` string in a TOML tree.
fn secret_refs(value: &toml::Value) -> Vec<String> {
    match value {
        toml::Value::String(s) if s.starts_with("env:") || s.starts_with("file:") => {
            vec![s.clone()]
        }
        toml::Value::Table(t) => t.values().flat_map(secret_refs).collect(),
        toml::Value::Array(a) => a.iter().flat_map(secret_refs).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn example_secret_holds_only_placeholders_and_every_needed_key() {
    let path = repo("deploy/kubernetes/secret.example.yaml");
    assert!(
        read(&path).starts_with("# EXAMPLE ONLY"),
        "marked as an example"
    );
    let secret = docs(&path).remove(0);
    let data = string_map(at(&secret, "stringData"));
    for (key, value) in &data {
        let placeholder = value.contains("CHANGE-ME") || value.contains("example.com");
        assert!(placeholder, "{key} does not look like a placeholder");
    }
    let deployment = kube("Deployment");
    let c = container(&deployment);
    let env_keys = seq(c, "env")
        .iter()
        .filter_map(|e| opt(e, "valueFrom.secretKeyRef.key").and_then(Value::as_str));
    let volume_keys = seq(&deployment, "spec.template.spec.volumes")
        .iter()
        .filter_map(|v| opt(v, "secret.items"))
        .flat_map(|items| items.as_sequence().unwrap())
        .map(|item| text(item, "key"));
    for key in env_keys.chain(volume_keys) {
        assert!(data.contains_key(key), "example Secret lacks {key}");
    }
}

#[test]
fn dockerfile_matches_the_ops_server() {
    let dockerfile = read(&repo("deploy/Dockerfile"));
    let has = |line: &str| dockerfile.lines().any(|l| l.trim() == line);
    assert!(dockerfile.contains("FROM rust:1-bookworm AS builder"));
    assert!(dockerfile.contains("FROM debian:bookworm-slim"));
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(dockerfile.contains("repository root") || dockerfile.contains("REPOSITORY ROOT"));
    assert!(has(&format!("EXPOSE {DEFAULT_PORT}")));
    assert!(has("USER 10001:10001"));
    assert!(has(&format!("ENV {LISTEN_ENV}=0.0.0.0:{DEFAULT_PORT}")));
    assert!(has(r#"ENTRYPOINT ["pgforce"]"#));
    assert!(has(
        r#"CMD ["run", "--config", "/etc/pgforce/pgforce.toml"]"#
    ));
}

// ---------------------------------------------------------------------------------------------
// Tests: alerts, dashboard, README

/// The PrometheusRule document.
fn prometheus_rule() -> Value {
    docs(&repo("deploy/prometheus/pgforce-alerts.yaml")).remove(0)
}

#[test]
fn alerts_are_complete_and_query_known_metrics() {
    let rule = prometheus_rule();
    assert_eq!(text(&rule, "kind"), "PrometheusRule");
    let readme = read(&repo("deploy/README.md")).to_lowercase();
    let cat = catalogue();
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for group in seq(&rule, "spec.groups") {
        for r in seq(group, "rules") {
            let alert = text(r, "alert");
            assert!(names.insert(alert.to_owned()), "{alert} defined twice");
            problems.extend(check_promql(alert, text(r, "expr"), &cat));
            let severity = text(r, "labels.severity");
            assert!(
                ["critical", "warning", "info"].contains(&severity),
                "{alert}: {severity}"
            );
            for key in ["summary", "description", "runbook"] {
                assert!(
                    !text(r, &format!("annotations.{key}")).is_empty(),
                    "{alert}: {key}"
                );
            }
            let anchor = text(r, "annotations.runbook").split('#').nth(1).unwrap();
            assert!(
                readme.contains(&format!("### {anchor}\n")),
                "{alert}: no README heading"
            );
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    for required in [
        "PgforceReplicationLagGrowing",
        "PgforceSlotInactive",
        "PgforceDeadLettersRising",
        "PgforceSalesforceApiBudgetLow",
        "PgforceCheckpointStale",
        "PgforceGovernorPaused",
        "PgforcePipelineDown",
    ] {
        assert!(names.contains(required), "missing alert {required}");
    }
}

#[test]
fn dashboard_panels_have_datasource_and_targets_on_known_metrics() {
    let path = repo("deploy/grafana/pgforce-dashboard.json");
    let dash: serde_json::Value = serde_json::from_str(&read(&path)).expect("dashboard parses");
    assert!(dash["schemaVersion"].as_u64() >= Some(36));
    let vars = dash["templating"]["list"].as_array().unwrap();
    let var = |name: &str| vars.iter().find(|v| v["name"] == name).expect(name);
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(
        var("pipeline")["definition"],
        "label_values(pgforce_pipeline_up, pipeline)"
    );
    let cat = catalogue();
    let (mut problems, mut ids, mut queried) = (Vec::new(), BTreeSet::new(), BTreeSet::new());
    for panel in dash["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: duplicate id"
        );
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{title}: gridPos");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: datasource"
        );
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
        for target in targets.unwrap_or_else(|| panic!("{title}: no targets")) {
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "{title}: target datasource"
            );
            let expr = target["expr"].as_str().unwrap();
            assert!(
                expr.contains("$pipeline"),
                "{title}: not filtered by $pipeline"
            );
            problems.extend(check_promql(title, expr, &cat));
            queried.extend(names_in(&tokenize(expr).unwrap()).0);
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(queried.len() >= 15, "dashboard covers only {queried:?}");
}

#[test]
fn metrics_all_lists_every_constant() {
    let consts: BTreeSet<String> = metric_consts(&read(&repo("src/metrics.rs")))
        .into_values()
        .collect();
    let all: BTreeSet<String> = pgforce::metrics::ALL
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(all, consts);
    assert_eq!(all.len(), pgforce::metrics::ALL.len(), "duplicates in ALL");
    let described: BTreeSet<String> = catalogue().into_keys().collect();
    assert_eq!(described, consts, "every metric has a describe_* call");
}

#[test]
fn readme_metric_table_matches_the_catalogue() {
    let cat = catalogue();
    let rows = readme_metric_rows();
    let documented: BTreeSet<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let catalogued: BTreeSet<&str> = cat.keys().map(String::as_str).collect();
    assert_eq!(
        documented, catalogued,
        "README metric table vs src/metrics.rs"
    );
    for row in &rows {
        let def = &cat[&row.name];
        assert_eq!(row.kind, def.kind, "{}: type", row.name);
        assert_eq!(row.meaning, def.help, "{}: meaning", row.name);
        assert_eq!(
            row.labels.first().map(String::as_str),
            Some("pipeline"),
            "{}",
            row.name
        );
    }
}

#[test]
fn promql_scanner_catches_mistakes() {
    let cat = catalogue();
    let ok = r#"sum by (pipeline) (rate(pgforce_dead_letter_total{error_code=~"a|(b"}[5m]))"#;
    assert!(check_promql("ok", ok, &cat).is_empty());
    let bucket =
        "histogram_quantile(0.9, sum by (le) (rate(pgforce_flush_latency_seconds_bucket[5m])))";
    assert!(check_promql("bucket", bucket, &cat).is_empty());
    assert!(!check_promql("paren", "max(pgforce_slot_active", &cat).is_empty());
    assert!(!check_promql("name", "pgforce_nope_total", &cat).is_empty());
    assert!(!check_promql("suffix", "pgforce_slot_active_bucket", &cat).is_empty());
    assert!(!check_promql("label", "max by (podname) (pgforce_slot_active)", &cat).is_empty());
}

#[test]
fn alert_rules_pass_promtool_when_installed() {
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            !promtool_required(),
            "promtool is required here (CI or PGFORCE_REQUIRE_PROMTOOL=1) but not on the PATH: \
             install Debian's `prometheus` package (.ci/run does)"
        );
        eprintln!("promtool not installed; skipping promtool check and unit tests");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = serde_yaml_ng::to_string(at(&prometheus_rule(), "spec")).unwrap();
    std::fs::write(dir.path().join("pgforce-alerts.rules.yml"), spec).unwrap();
    let test_file = dir.path().join("pgforce-alerts.test.yaml");
    std::fs::copy(
        repo("deploy/prometheus/pgforce-alerts.test.yaml"),
        &test_file,
    )
    .unwrap();
    for args in [
        ["check", "rules", "pgforce-alerts.rules.yml"],
        ["test", "rules", "pgforce-alerts.test.yaml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Whether a missing promtool is a failure: in CI (`CI` set, not `false`/`0`) or when
/// `PGFORCE_REQUIRE_PROMTOOL=1`, which `.ci/run` exports.
fn promtool_required() -> bool {
    let set =
        |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("CI") || set("PGFORCE_REQUIRE_PROMTOOL")
}
