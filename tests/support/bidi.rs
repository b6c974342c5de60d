//! Helpers for the two-way tests (`tests/bidi`): a Salesforce client that acts as a
//! person in the org (it sends no `Sforce-Call-Options`, so its changes never look like
//! pgforce's own), and reading records by any field.

use pgforce::salesforce::{ClientConfig, Credentials, SalesforceClient};
use pgforce_emulator::{config as emu, EmulatorHandle};
use secrecy::SecretString;
use serde_json::{Map, Value};

/// A logged-in client for `emulator` that is not pgforce: no client id on its calls.
pub async fn human(emulator: &EmulatorHandle) -> SalesforceClient {
    let mut cfg = ClientConfig::new(Credentials::ClientCredentials {
        client_id: emu::DEMO_CLIENT_ID.into(),
        client_secret: SecretString::from(emu::DEMO_CLIENT_SECRET.to_string()),
        my_domain_url: emulator.base_url().to_string(),
    });
    cfg.client_name = None;
    let client = SalesforceClient::new(cfg).expect("a client");
    client.login().await.expect("log in to the emulator");
    client
}

/// A JSON object as a record.
pub fn record(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("a record is a JSON object, not {other}"),
    }
}

/// The live records of `object` whose `field` equals `value` (case-insensitively).
pub fn records_where(
    emulator: &EmulatorHandle,
    object: &str,
    field: &str,
    value: &str,
) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    emulator
        .state()
        .store
        .scan(object, false, |r| {
            let hit = r
                .get(field)
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(value));
            if hit {
                out.push((**r).clone());
            }
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    out
}

/// `deploy/examples/<file>` as text, its Salesforce login swapped for the emulator at
/// `base` (client credentials of the demo app, secret `env:SF_CLIENT_SECRET`), for a
/// config file the `pgforce` binary reads; `edit` rewrites it further (e.g. the delete
/// policy).
pub fn template_text(base: &str, file: &str, edit: impl Fn(String) -> String) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/examples")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let swapped: Vec<String> = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("login_url =") {
                format!("login_url = \"{base}\"\ninstance_url = \"{base}\"")
            } else if line.trim_start().starts_with("auth =") {
                format!(
                    "auth = {{ type = \"client_credentials\", client_id = \"{}\", client_secret = \"env:SF_CLIENT_SECRET\" }}",
                    emu::DEMO_CLIENT_ID
                )
            } else {
                line.to_string()
            }
        })
        .collect();
    edit(swapped.join("\n"))
}
