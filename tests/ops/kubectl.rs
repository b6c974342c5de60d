//! `kubectl kustomize` builds `deploy/kubernetes` and `deploy/prometheus`, and what it builds
//! references only what exists: the Deployment's ServiceAccount and ConfigMap (and the
//! ConfigMap keys it mounts) are in the output, every Secret name and key it uses is one the
//! documented Secret (`secret.example.yaml`, created by hand, not applied) carries, the image
//! override applied, and the Service, PodDisruptionBudget and ServiceMonitor select what the
//! Deployment and Service really label and name. The rules kustomization yields the
//! PrometheusRule.
//!
//! Without `kubectl` on the PATH the test says so and passes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_yaml_ng::Value;

/// `kubectl kustomize <dir>`'s documents, or `None` without kubectl.
fn kustomize(dir: &str) -> Option<Vec<Value>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let out = match Command::new("kubectl").arg("kustomize").arg(&path).output() {
        Ok(out) => out,
        Err(_) => return None,
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 manifests");
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{dir}: output parses: {e}")))
        .filter(|v| !v.is_null())
        .collect();
    assert!(!docs.is_empty(), "{dir}: kustomize built nothing");
    Some(docs)
}

fn kubectl_missing() -> bool {
    if Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_err()
    {
        eprintln!("kubectl not installed; skipping the kustomize build checks");
        return true;
    }
    false
}

fn kind_named<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
}

fn only<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "one {kind} expected");
    found[0]
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    serde_yaml_ng::from_value(v.clone()).unwrap_or_default()
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map(Vec::as_slice).unwrap_or(&[])
}

/// `selector ⊆ labels`, and the selector is not empty.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The hand-made Secret the manifests expect: its name and keys.
fn documented_secret() -> (String, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/secret.example.yaml");
    let doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
    let mut keys: Vec<String> = Vec::new();
    for field in ["stringData", "data"] {
        keys.extend(str_map(&doc[field]).into_keys());
    }
    (name, keys)
}

#[test]
fn kubernetes_kustomization_builds_and_references_only_what_exists() {
    if kubectl_missing() {
        return;
    }
    let docs = kustomize("deploy/kubernetes").expect("kubectl is installed");
    let deployment = only(&docs, "Deployment");
    let pod = &deployment["spec"]["template"];
    let pod_labels = str_map(&pod["metadata"]["labels"]);
    let spec = &pod["spec"];
    let (secret_name, secret_keys) = documented_secret();
    assert!(
        kind_named(&docs, "Secret", &secret_name).is_none(),
        "the placeholder Secret must not be applied by the kustomization"
    );

    let sa = spec["serviceAccountName"]
        .as_str()
        .expect("a ServiceAccount");
    assert!(
        kind_named(&docs, "ServiceAccount", sa).is_some(),
        "ServiceAccount {sa} missing"
    );

    for volume in seq(&spec["volumes"]) {
        if let Some(name) = volume["configMap"]["name"].as_str() {
            let cm = kind_named(&docs, "ConfigMap", name)
                .unwrap_or_else(|| panic!("ConfigMap {name} missing"));
            let data = str_map(&cm["data"]);
            for item in seq(&volume["configMap"]["items"]) {
                let key = item["key"].as_str().unwrap();
                assert!(data.contains_key(key), "ConfigMap {name} has no key {key}");
            }
        }
        if let Some(name) = volume["secret"]["secretName"].as_str() {
            assert_eq!(name, secret_name, "volume mounts an undocumented Secret");
            for item in seq(&volume["secret"]["items"]) {
                let key = item["key"].as_str().unwrap().to_owned();
                assert!(
                    secret_keys.contains(&key),
                    "Secret key {key} is not documented"
                );
            }
        }
    }
    let containers = seq(&spec["containers"]);
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    assert_eq!(
        container["image"].as_str(),
        Some("registry.example.com/pgforce:0.1.0"),
        "the kustomization's image override applies"
    );
    for env in seq(&container["env"]) {
        let from = &env["valueFrom"];
        if let Some(name) = from["secretKeyRef"]["name"].as_str() {
            assert_eq!(
                name, secret_name,
                "env {:?}: undocumented Secret",
                env["name"]
            );
            let key = from["secretKeyRef"]["key"].as_str().unwrap().to_owned();
            assert!(
                secret_keys.contains(&key),
                "Secret key {key} is not documented"
            );
        }
        if let Some(name) = from["configMapKeyRef"]["name"].as_str() {
            let key = from["configMapKeyRef"]["key"].as_str().unwrap();
            let cm = kind_named(&docs, "ConfigMap", name)
                .unwrap_or_else(|| panic!("ConfigMap {name} missing"));
            assert!(
                str_map(&cm["data"]).contains_key(key),
                "ConfigMap {name} has no key {key}"
            );
        }
    }
    let volume_names: Vec<&str> = seq(&spec["volumes"])
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for mount in seq(&container["volumeMounts"]) {
        let name = mount["name"].as_str().unwrap();
        assert!(
            volume_names.contains(&name),
            "volumeMount {name} has no volume"
        );
    }
    let container_ports: Vec<&str> = seq(&container["ports"])
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();

    let service = only(&docs, "Service");
    assert!(
        selects(&str_map(&service["spec"]["selector"]), &pod_labels),
        "the Service selects no pod of the Deployment"
    );
    let mut service_ports = Vec::new();
    for port in seq(&service["spec"]["ports"]) {
        if let Some(target) = port["targetPort"].as_str() {
            assert!(
                container_ports.contains(&target),
                "Service targetPort {target} unknown"
            );
        }
        service_ports.extend(port["name"].as_str());
    }
    let pdb = only(&docs, "PodDisruptionBudget");
    assert!(
        selects(
            &str_map(&pdb["spec"]["selector"]["matchLabels"]),
            &pod_labels
        ),
        "the PodDisruptionBudget selects no pod of the Deployment"
    );
    let monitor = only(&docs, "ServiceMonitor");
    assert!(
        selects(
            &str_map(&monitor["spec"]["selector"]["matchLabels"]),
            &str_map(&service["metadata"]["labels"])
        ),
        "the ServiceMonitor selects no Service"
    );
    for endpoint in seq(&monitor["spec"]["endpoints"]) {
        let port = endpoint["port"].as_str().expect("a named port");
        assert!(
            service_ports.contains(&port),
            "ServiceMonitor port {port} unknown"
        );
    }
}

#[test]
fn prometheus_kustomization_builds_the_rule() {
    if kubectl_missing() {
        return;
    }
    let docs = kustomize("deploy/prometheus").expect("kubectl is installed");
    let rule = only(&docs, "PrometheusRule");
    let groups = seq(&rule["spec"]["groups"]);
    assert!(groups.len() >= 3, "rule groups: {groups:?}");
    assert!(groups.iter().all(|g| !seq(&g["rules"]).is_empty()));
}
