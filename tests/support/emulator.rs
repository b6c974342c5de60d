//! Shared helpers for the emulator integration tests: an in-process emulator on
//! `127.0.0.1:0`, a bearer token, and small JSON/CSV HTTP helpers over reqwest.

use std::cell::RefCell;

use pgforce::emulator::{EmulatorConfig, EmulatorHandle};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::start;
use crate::support::wait::{wait_until, Deadline};

/// How [`Emu::wait_job`] polls: every 5 ms, for up to 60 s.
const JOB_POLL: Deadline = Deadline::secs(60).every_ms(5);

/// API version the tests speak.
pub const V: &str = "v60.0";

/// A running emulator and an authenticated client.
pub struct Emu {
    /// The emulator.
    pub handle: EmulatorHandle,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Bearer token of the default user.
    pub token: String,
    /// HTTP client.
    pub client: reqwest::Client,
}

/// A response: status, headers and body text.
pub struct Resp {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body.
    pub text: String,
}

impl Resp {
    /// The body as JSON (`Null` if empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

impl Emu {
    /// Starts an emulator with the default config.
    pub async fn start() -> Emu {
        let handle = start::emulator(EmulatorConfig::default()).await;
        let token = handle.issue_default_token().expect("token");
        Emu {
            base: handle.base_url().to_string(),
            handle,
            token,
            client: reqwest::Client::new(),
        }
    }

    /// `base + /services/data/v60.0 + path` (absolute paths are kept).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/services/") {
            format!("{}{path}", self.base)
        } else {
            format!("{}/services/data/{V}{path}", self.base)
        }
    }

    /// Sends a request with an optional JSON body and extra headers.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        Resp {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap_or_default(),
        }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None, &[]).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    /// PATCH JSON.
    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::PATCH, path, Some(body), &[]).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None, &[]).await
    }

    /// PUT a CSV body.
    pub async fn put_csv(&self, path: &str, csv: impl Into<String>) -> Resp {
        let resp = self
            .client
            .put(self.url(path))
            .bearer_auth(&self.token)
            .header("content-type", "text/csv")
            .body(csv.into())
            .send()
            .await
            .expect("request");
        Resp {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap_or_default(),
        }
    }

    /// Creates a record through REST; returns its id.
    pub async fn insert(&self, object: &str, body: Value) -> String {
        let r = self.post(&format!("/sobjects/{object}"), &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json()["id"].as_str().unwrap().to_string()
    }

    /// Reads a record through REST.
    pub async fn read(&self, object: &str, id: &str) -> Resp {
        self.get(&format!("/sobjects/{object}/{id}")).await
    }

    /// Polls a Bulk job until it reaches a terminal state; returns every state seen and the
    /// final job info.
    pub async fn wait_job(&self, kind: &str, id: &str) -> (Vec<String>, Value) {
        // Fast polls, to see the states a job passes through.
        let seen: RefCell<Vec<String>> = RefCell::default();
        let info = wait_until(&format!("job {id} finishes"), JOB_POLL, || async {
            let info = self.get(&format!("/jobs/{kind}/{id}")).await.json();
            let state = info["state"].as_str().unwrap_or_default().to_string();
            let mut seen = seen.borrow_mut();
            if seen.last() != Some(&state) {
                seen.push(state.clone());
            }
            match state.as_str() {
                "JobComplete" | "Failed" | "Aborted" => Ok(info),
                _ => Err(format!("states so far: {seen:?}")),
            }
        })
        .await;
        (seen.into_inner(), info)
    }
}
