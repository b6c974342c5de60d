//! A tiny in-test Salesforce stub (axum on 127.0.0.1:0) answering with the documented shapes,
//! plus helpers to build a client against it. Each test mounts only the routes it needs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use pgforce::salesforce::{
    ClientConfig, Credentials, GovernorConfig, RetryPolicy, SalesforceClient,
};
use secrecy::SecretString;
use serde_json::{json, Value};

/// The data API prefix the client uses by default.
pub const V: &str = "/services/data/v62.0";
/// The client secret used by [`config`]; tests assert it never leaks.
pub const CLIENT_SECRET: &str = "stub-client-secret-9f8e7d";

/// Per-route call counters and captured request bodies.
#[derive(Default)]
pub struct Hits {
    /// Route key → calls.
    counts: Mutex<HashMap<String, usize>>,
    /// Captured bodies, in arrival order.
    bodies: Mutex<Vec<(String, Vec<u8>, HeaderMap)>>,
}

impl Hits {
    /// Counts a call; returns the count including this one.
    pub fn bump(&self, key: &str) -> usize {
        let mut c = self.counts.lock().unwrap();
        let n = c.entry(key.to_string()).or_default();
        *n += 1;
        *n
    }

    /// Calls seen for a key.
    pub fn count(&self, key: &str) -> usize {
        self.counts.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    /// Stores a request body.
    pub fn capture(&self, key: &str, body: &[u8], headers: &HeaderMap) {
        self.bodies
            .lock()
            .unwrap()
            .push((key.to_string(), body.to_vec(), headers.clone()));
    }

    /// Captured bodies for a key.
    pub fn bodies(&self, key: &str) -> Vec<(Vec<u8>, HeaderMap)> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _, _)| k == key)
            .map(|(_, b, h)| (b.clone(), h.clone()))
            .collect()
    }
}

/// A running stub.
pub struct Stub {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// Counters shared with the routes.
    pub hits: Arc<Hits>,
}

/// Starts a stub; `build` gets the base URL and the counters and returns the routes.
pub async fn serve(build: impl FnOnce(String, Arc<Hits>) -> Router) -> Stub {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(Hits::default());
    let app = build(base.clone(), hits.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Stub { base, hits }
}

/// The OAuth token route: each call issues `TOKEN-<n>` with `instance_url` = the stub.
pub fn token_routes(base: &str, hits: Arc<Hits>) -> Router {
    let base = base.to_string();
    Router::new().route(
        "/services/oauth2/token",
        post(move |body: Bytes| async move {
            let n = hits.bump("token");
            let headers = HeaderMap::new();
            hits.capture("token", &body, &headers);
            token_response(&base, &format!("TOKEN-{n}"))
        }),
    )
}

/// The documented success body of the token endpoint.
pub fn token_response(instance_url: &str, token: &str) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "access_token": token,
            "instance_url": instance_url,
            "id": "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
            "token_type": "Bearer",
            "issued_at": "1718000000123",
            "signature": "0CmxinZir53Yex7nE0TD+zMpvIWYGb/bdJh6XfOH6EQ=",
            "scope": "api"
        }),
    )
}

/// A JSON response with a `Sforce-Limit-Info` header.
pub fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [
            ("content-type", "application/json;charset=UTF-8"),
            ("sforce-limit-info", "api-usage=18/5000"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// A documented error body `[{"message","errorCode","fields"}]`.
pub fn sf_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!([{"message": message, "errorCode": code, "fields": []}]),
    )
}

/// The bearer token of a request.
pub fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string()
}

/// Client-credentials config against the stub, with millisecond retries.
pub fn config(base: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(Credentials::ClientCredentials {
        client_id: "stub-client-id".into(),
        client_secret: SecretString::from(CLIENT_SECRET.to_string()),
        my_domain_url: base.to_string(),
    });
    cfg.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    cfg.governor = GovernorConfig {
        limit_exceeded_backoff: Duration::from_millis(50),
        reserve_recheck: Duration::from_millis(50),
        ..GovernorConfig::default()
    };
    cfg.request_timeout = Duration::from_secs(5);
    cfg
}

/// A client for the stub.
pub fn client(stub: &Stub) -> SalesforceClient {
    SalesforceClient::new(config(&stub.base)).unwrap()
}

/// A describe body with one field.
pub fn describe_body() -> Value {
    json!({
        "name": "Account", "label": "Account", "keyPrefix": "001", "custom": false,
        "createable": true, "updateable": true, "deletable": true, "queryable": true,
        "fields": [{"name": "Name", "type": "string", "length": 255, "nillable": false,
                    "createable": true, "updateable": true, "picklistValues": []}]
    })
}
