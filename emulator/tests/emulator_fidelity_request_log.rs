//! The request log over real HTTP: method, path, status and duration of each request,
//! and never a token, password, code or body.

use std::io::Write;
use std::sync::{Arc, Mutex};

use pgforce_emulator::config::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME};
use pgforce_emulator::{request_log, Emulator, EmulatorConfig};
use serde_json::Value;

/// Log lines captured by the test's subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn requests_are_logged_without_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(format!("{}=info", request_log::TARGET))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber");

    let config = EmulatorConfig {
        log_requests: true,
        ..EmulatorConfig::default()
    };
    let emu = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = emu.base_url().to_string();
    let http = reqwest::Client::new();

    let token: Value = http
        .post(format!("{base}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
            ("username", DEMO_USERNAME),
            ("password", DEMO_PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap().to_string();
    let r = http
        .get(format!("{base}/services/data/v60.0/limits"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{base}/services/data/v60.0/sobjects/NoSuchObject"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .get(format!("{base}/services/oauth2/revoke?token={access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    emu.shutdown().await;

    let log = captured.text();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no log line with {needle:?} in:\n{log}"))
            .to_string()
    };
    let limits = line("path=/services/data/v60.0/limits");
    assert!(limits.contains("method=GET"), "{limits}");
    assert!(limits.contains("status=200"), "{limits}");
    assert!(limits.contains("duration_ms="), "{limits}");
    assert!(line("path=/services/data/v60.0/sobjects/NoSuchObject").contains("status=404"));
    assert!(line("path=/services/oauth2/token").contains("method=POST"));
    assert!(line("path=/services/oauth2/revoke").contains("status=200"));

    assert!(
        !log.contains(&access),
        "the access token leaked into the log:\n{log}"
    );
    assert!(
        !log.contains(DEMO_PASSWORD),
        "the password leaked into the log"
    );
    assert!(
        !log.contains(DEMO_CLIENT_SECRET),
        "the client secret leaked into the log"
    );
    assert!(
        !log.contains("Bearer"),
        "an Authorization header leaked into the log"
    );
}
