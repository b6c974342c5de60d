//! Real-client conformance with jsforce (`tests/conformance/jsforce_check.cjs`): SOAP,
//! OAuth password and web-server (authorization code + refresh token) login, CRUD, query paging, collections, Bulk 2.0 ingest and query against a live
//! emulator. jsforce 3.10.16 (the last release supporting Node 20) comes from
//! `PGFORCE_NODE_MODULES` (default `target/ci-node/node_modules`, which `.ci/run` fills).
//! Without node or the package the test is skipped with a message saying how to install it,
//! unless `PGFORCE_NODE_MODULES` is set (as `.ci/run` does): then it fails.

use std::path::PathBuf;
use std::process::Command;

use pgforce_emulator::config::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME};
use pgforce_emulator::{Emulator, EmulatorConfig, OAuthWebConfig};

/// `node_modules` holding jsforce, or why the check cannot run.
fn node_modules() -> Result<PathBuf, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let modules = std::env::var("PGFORCE_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/ci-node/node_modules"));
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("node is not installed".into());
    }
    if !modules.join("jsforce/package.json").exists() {
        return Err(format!(
            "jsforce is not installed in {}: run `.ci/run`, or \
             `npm install --prefix target/ci-node jsforce@3.10.16`, or set PGFORCE_NODE_MODULES",
            modules.display()
        ));
    }
    Ok(modules)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsforce_conformance() {
    let modules = match node_modules() {
        Ok(m) => m,
        Err(why) if std::env::var_os("PGFORCE_NODE_MODULES").is_some() => {
            panic!("jsforce conformance cannot run: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED jsforce conformance: {why}");
            return;
        }
    };
    let config = EmulatorConfig {
        oauth_web: OAuthWebConfig {
            auto_approve: true,
            callback_urls: vec!["http://localhost:1717/OauthRedirect".into()],
        },
        ..EmulatorConfig::default()
    };
    let emu = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/jsforce_check.cjs");
    let base = emu.base_url().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .env("NODE_PATH", &modules)
            .env("EMULATOR_URL", base)
            .env("SF_USERNAME", DEMO_USERNAME)
            .env("SF_PASSWORD", DEMO_PASSWORD)
            .env("SF_CONSUMER_KEY", DEMO_CLIENT_ID)
            .env("SF_CONSUMER_SECRET", DEMO_CLIENT_SECRET)
            .output()
            .expect("node runs")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "jsforce conformance failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all jsforce checks passed"), "{stdout}");
}
