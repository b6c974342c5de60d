//! Real-client conformance: drives the emulator with simple-salesforce
//! (`tests/conformance/simple_salesforce_check.py`).
//!
//! The emulator runs in-process on `127.0.0.1:0` with a connected app trusting an RSA key
//! generated for this run (`openssl genrsa`). The Python comes from `PGFORCE_PYTHON`
//! (default `target/ci-venv/bin/python`, which `.ci/run` creates with simple-salesforce).
//! Without it the test fails and says so, unless `PGFORCE_SKIP_PYTHON=1`.

use std::path::PathBuf;
use std::process::Command;

use pgforce::emulator::config::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME};
use pgforce::emulator::EmulatorConfig;

use crate::support::start;

/// The interpreter to use, or why there is none.
fn python() -> Result<PathBuf, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let py = std::env::var("PGFORCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/ci-venv/bin/python"));
    let ok = Command::new(&py)
        .args(["-c", "import simple_salesforce"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Ok(py)
    } else {
        Err(format!(
            "{} with simple-salesforce is missing: run `.ci/run` (CI installs it into target/ci-venv), \
             point PGFORCE_PYTHON at a Python that has simple-salesforce 1.12, or set PGFORCE_SKIP_PYTHON=1",
            py.display()
        ))
    }
}

/// Generates an RSA key pair with openssl; returns (private key path, public key PEM).
fn key_pair(dir: &std::path::Path) -> (PathBuf, String) {
    let key = dir.join("k.pem");
    let status = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .expect("openssl runs");
    assert!(status.status.success(), "openssl genrsa failed: {status:?}");
    let public = Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&key)
        .output()
        .expect("openssl runs");
    assert!(
        public.status.success(),
        "openssl rsa -pubout failed: {public:?}"
    );
    (key, String::from_utf8(public.stdout).expect("PEM is text"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_conformance() {
    if std::env::var("PGFORCE_SKIP_PYTHON").as_deref() == Ok("1") {
        eprintln!("PGFORCE_SKIP_PYTHON=1: skipping the simple-salesforce conformance check");
        return;
    }
    let py = python().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, public_pem) = key_pair(dir.path());
    let mut config = EmulatorConfig::default();
    config.connected_apps[0].jwt_public_keys = vec![public_pem];
    let emu = start::emulator(config).await;
    let script = std::env::var("PGFORCE_CONFORMANCE_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/conformance/simple_salesforce_check.py")
        });
    let base = emu.base_url().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&py)
            .arg(&script)
            .env("EMULATOR_URL", base)
            .env("SF_USERNAME", DEMO_USERNAME)
            .env("SF_CONSUMER_KEY", DEMO_CLIENT_ID)
            .env("SF_CONSUMER_SECRET", DEMO_CLIENT_SECRET)
            .env("SF_PRIVATE_KEY", &key)
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
        "simple-salesforce conformance failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all simple-salesforce checks passed"));
}
