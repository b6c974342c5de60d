//! A real third-party Pub/Sub client against the emulator: `tests/conformance/pubsub_check.py`
//! (grpcio with stubs generated at run time from the real proto by grpcio-tools, `avro`
//! from PyPI for the payloads, `bitstring` for changedFields as Salesforce's
//! ChangeEventHeaderUtility.py decodes them) subscribes, decodes, checks errors and resumes
//! by replay id. The Python comes from `PGFORCE_PYTHON` (default `target/ci-venv/bin/python`,
//! which `.ci/run` fills with those packages). Without it the test is skipped with a message
//! saying how to install them, unless `PGFORCE_REQUIRE_PUBSUB_CLIENT=1` (as `.ci/run` sets):
//! then it fails.

use std::path::PathBuf;
use std::process::Command;

use pgforce_emulator::{Emulator, EmulatorConfig};
use serde_json::json;

/// The interpreter with the client packages, or why there is none.
fn python() -> Result<PathBuf, String> {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let py = std::env::var("PGFORCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/ci-venv/bin/python"));
    let ok = Command::new(&py)
        .args(["-c", "import grpc, grpc_tools, avro, bitstring"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Ok(py)
    } else {
        Err(format!(
            "{} with grpcio, grpcio-tools, avro and bitstring is missing: run `.ci/run`, or \
             `target/ci-venv/bin/pip install grpcio grpcio-tools avro bitstring`, or point PGFORCE_PYTHON at such a Python",
            py.display()
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpc_client_subscribes_decodes_and_resumes() {
    let py = match python() {
        Ok(p) => p,
        Err(why) if std::env::var("PGFORCE_REQUIRE_PUBSUB_CLIENT").as_deref() == Ok("1") => {
            panic!("pub/sub client check cannot run: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED pub/sub python client check: {why}");
            return;
        }
    };
    let emu = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts");
    let token = emu.issue_default_token().unwrap();
    let http = reqwest::Client::new();
    let base = emu.base_url().to_string();
    let url = |p: &str| format!("{base}/services/data/v60.0{p}");
    let create = |name: &str| {
        http.post(url("/sobjects/Account"))
            .bearer_auth(&token)
            .json(&json!({"Name": name, "BillingCity": "Paris"}))
            .send()
    };
    let one: serde_json::Value = create("PyOne").await.unwrap().json().await.unwrap();
    let one = one["id"].as_str().unwrap().to_string();
    let r = http
        .patch(url(&format!("/sobjects/Account/{one}")))
        .bearer_auth(&token)
        .json(&json!({"Phone": "555", "BillingCity": "Lyon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let two: serde_json::Value = create("PyTwo").await.unwrap().json().await.unwrap();
    let two = two["id"].as_str().unwrap().to_string();

    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/pubsub_check.py");
    let proto_dir = root.join("proto-fixtures/pubsub");
    let env = [
        ("PUBSUB_ADDR", emu.pubsub_addr().to_string()),
        ("INSTANCE_URL", base.clone()),
        ("ACCESS_TOKEN", token.clone()),
        ("TENANT_ID", emu.org_id()),
        ("PROTO_DIR", proto_dir.display().to_string()),
        ("EXPECT_IDS", format!("{one},{one},{two}")),
    ];
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&py)
            .arg(&script)
            .envs(env)
            .output()
            .expect("python runs")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "pub/sub client check failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all pubsub checks passed"), "{stdout}");
}
