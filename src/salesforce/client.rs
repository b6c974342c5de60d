//! [`SalesforceClient`]: the HTTP core every REST, Collections and Bulk call goes through.
//!
//! One call = governor permit → bearer token → request → `Sforce-Limit-Info` recorded →
//! outcome. A 401 `INVALID_SESSION_ID` re-mints the token once and retries once; transient
//! failures are retried per [`RetryPolicy`]; `REQUEST_LIMIT_EXCEEDED` pauses the governor and
//! the call waits (up to `GovernorConfig::max_pause_wait`) for the pause to lift.
//!
//! The client is cheap to clone (an `Arc` inside) and safe to share between tasks; one token
//! refresh runs at a time and the others reuse its result.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use parking_lot::RwLock;
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;
use url::Url;

use super::auth::{join_path, Authenticator, Credentials, Session};
use super::error::{api_error_from_body, Result, SalesforceError};
use super::limits::{ApiUsage, Governor, GovernorConfig, GovernorState, Permit};
use super::metrics;
use super::retry::{is_concurrency_limit, retry_reason, Failure, RetryPolicy};

/// The default REST API version.
pub const DEFAULT_API_VERSION: &str = "v62.0";

/// Everything needed to build a [`SalesforceClient`]. Start from [`ClientConfig::new`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How to log in.
    pub credentials: Credentials,
    /// REST API version, `vNN.N` (a bare `NN.N` is accepted). Default `v62.0`.
    pub api_version: String,
    /// Retries for transient failures.
    pub retry: RetryPolicy,
    /// Protection of the org's API allocation.
    pub governor: GovernorConfig,
    /// Timeout of one ordinary request. Default 120 s.
    pub request_timeout: Duration,
    /// Timeout of one Bulk CSV upload or result download. Default 10 min.
    pub upload_timeout: Duration,
    /// Timeout for establishing a connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Sent as `Sforce-Call-Options: client=<name>` so change events caused by pgforce can be
    /// recognised (their `changeOrigin` carries it). Default `pgforce`.
    pub client_name: Option<String>,
    /// The `pipeline` label on the client's metrics (calls, API budget); empty outside a
    /// pipeline.
    pub pipeline: String,
}

impl ClientConfig {
    /// A configuration with defaults for everything but the credentials.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            api_version: DEFAULT_API_VERSION.to_string(),
            retry: RetryPolicy::default(),
            governor: GovernorConfig::default(),
            request_timeout: Duration::from_secs(120),
            upload_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            client_name: Some("pgforce".to_string()),
            pipeline: String::new(),
        }
    }
}

/// A Salesforce API client. Clone it freely; clones share the session, usage and governor.
#[derive(Clone)]
pub struct SalesforceClient {
    /// Shared state.
    inner: Arc<Inner>,
}

/// The state shared by all clones.
struct Inner {
    /// HTTP connection pool.
    http: reqwest::Client,
    /// Token requests.
    auth: Authenticator,
    /// `vNN.N`.
    api_version: String,
    /// Retry policy.
    retry: RetryPolicy,
    /// Default per-request timeout.
    request_timeout: Duration,
    /// Timeout for CSV uploads/downloads.
    upload_timeout: Duration,
    /// `Sforce-Call-Options` value.
    call_options: Option<String>,
    /// Limits governor.
    governor: Governor,
    /// The `pipeline` metric label.
    pipeline: String,
    /// Current session, if logged in.
    session: RwLock<Option<Arc<Session>>>,
    /// Serialises token refreshes.
    refresh_lock: tokio::sync::Mutex<()>,
    /// Serialises `/limits` probes at the end of a pause.
    probe_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SalesforceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceClient")
            .field("api_version", &self.inner.api_version)
            .field("auth", &self.inner.auth)
            .field("instance_url", &self.instance_url().map(String::from))
            .field("governor", &self.inner.governor.state())
            .finish_non_exhaustive()
    }
}

/// What a call sends: where, how, and how it is labelled in metrics and traces.
#[derive(Debug, Clone)]
pub(crate) struct Call<'a> {
    /// HTTP method.
    pub method: Method,
    /// Where.
    pub target: Target,
    /// Query string pairs.
    pub query: Vec<(&'static str, String)>,
    /// Request body.
    pub body: Body,
    /// Expect CSV rather than JSON back.
    pub accept_csv: bool,
    /// Metric/trace label, e.g. `upsert`.
    pub operation: &'static str,
    /// sObject name for metrics and traces (empty when none).
    pub object: &'a str,
    /// Safe to repeat if the outcome is unknown.
    pub idempotent: bool,
    /// Use the long (upload/download) timeout.
    pub long_timeout: bool,
}

/// Where a call goes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Segments under `/services/data/vNN.N/` (each percent-encoded).
    Data(Vec<String>),
    /// A server-given path such as `nextRecordsUrl`; must start with `/services/`.
    Path(String),
}

/// A request body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// No body.
    Empty,
    /// `application/json`.
    Json(Bytes),
    /// `text/csv` compressed with gzip (`Content-Encoding: gzip`, which Bulk uploads accept).
    GzipCsv(Bytes),
}

/// A response with a status below 400.
#[derive(Debug)]
pub(crate) struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: Bytes,
}

impl<'a> Call<'a> {
    /// A call with defaults: no query, no body, JSON, idempotent, normal timeout.
    pub(crate) fn new(
        method: Method,
        segments: &[&str],
        operation: &'static str,
        object: &'a str,
    ) -> Self {
        Self {
            idempotent: method != Method::POST,
            method,
            target: Target::Data(segments.iter().map(|s| s.to_string()).collect()),
            query: Vec::new(),
            body: Body::Empty,
            accept_csv: false,
            operation,
            object,
            long_timeout: false,
        }
    }

    /// Adds a JSON body.
    pub(crate) fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| SalesforceError::invalid_input(format!("cannot encode body: {e}")))?;
        self.body = Body::Json(bytes.into());
        Ok(self)
    }

    /// Adds a query pair.
    pub(crate) fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }
}

impl SalesforceClient {
    /// Builds a client; no network call is made until the first request (see [`Self::login`]).
    pub fn new(config: ClientConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pgforce/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SalesforceError::config(format!("cannot build the HTTP client: {e}")))?;
        Self::with_http_client(config, http)
    }

    /// Builds a client on a caller-supplied `reqwest::Client` (proxies, custom roots). It
    /// should not follow redirects.
    pub fn with_http_client(config: ClientConfig, http: reqwest::Client) -> Result<Self> {
        let auth = Authenticator::new(config.credentials)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                auth,
                api_version: normalize_version(&config.api_version)?,
                retry: config.retry,
                request_timeout: config.request_timeout,
                upload_timeout: config.upload_timeout,
                call_options: config.client_name.map(|c| format!("client={c}")),
                governor: Governor::new(config.governor, config.pipeline.clone()),
                pipeline: config.pipeline,
                session: RwLock::new(None),
                refresh_lock: tokio::sync::Mutex::new(()),
                probe_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Obtains a fresh token now, so bad credentials fail at start-up rather than mid-sync.
    pub async fn login(&self) -> Result<()> {
        let seen = self.current_session().map_or(0, |s| s.generation);
        self.refresh(seen).await.map(|_| ())
    }

    /// The REST API version in use, `vNN.N`.
    pub fn api_version(&self) -> &str {
        &self.inner.api_version
    }

    /// The instance URL of the current session, once logged in.
    pub fn instance_url(&self) -> Option<Url> {
        self.current_session().map(|s| s.instance_url.clone())
    }

    /// The identity URL of the current session (`…/id/{orgId}/{userId}`), once logged in.
    /// Its last segment is the integration user's id, which change events carry as
    /// `commitUser` (useful to recognise pgforce's own writes).
    pub fn identity_url(&self) -> Option<String> {
        self.current_session().and_then(|s| s.identity_url.clone())
    }

    /// What a gRPC API (the Pub/Sub API) sends as call metadata instead of a bearer header:
    /// the access token, the instance URL and the org id (`tenantid`), logging in first if
    /// needed. Pass the credentials a server just refused as `refused` to get a freshly
    /// minted token (at most one refresh runs however many callers ask; a token newer than
    /// the refused one is reused). The token is never logged.
    pub async fn session_credentials(
        &self,
        refused: Option<&SessionCredentials>,
    ) -> Result<SessionCredentials> {
        let session = match refused {
            None => self.session().await?,
            Some(old) => self.refresh(old.generation).await?,
        };
        SessionCredentials::of(&session)
    }

    /// The API usage last reported by Salesforce.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        self.inner.governor.usage()
    }

    /// The limits governor's state, for health and status pages.
    pub fn governor_state(&self) -> GovernorState {
        self.inner.governor.state()
    }

    /// Sends a call with governor, token refresh and retries. Statuses below 400 are returned;
    /// anything else becomes an error.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Reply> {
        let span = tracing::debug_span!(
            "salesforce_call",
            operation = call.operation,
            object = call.object
        );
        self.send_with_retries(call).instrument(span).await
    }

    /// Sends a call and decodes a JSON response.
    pub(crate) async fn send_json<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T> {
        let reply = self.send(call).await?;
        parse_json(&reply.body, call.operation)
    }

    /// The loop behind [`Self::send`].
    async fn send_with_retries(&self, call: &Call<'_>) -> Result<Reply> {
        let policy = &self.inner.retry;
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            self.wait_for_governor().await?;
            let session = self.session().await?;
            let url = self.url_for(&session, &call.target)?;
            attempt += 1;
            let (failure_err, failure_kind) = match self.send_once(call, &session, url).await {
                Ok(reply) if reply.status < 400 => return Ok(reply),
                Ok(reply) => {
                    let err = api_error_from_body(reply.status, &reply.body);
                    let (code, message) = api_code_message(&err);
                    if reply.status == 401 && code == "INVALID_SESSION_ID" {
                        if refreshed {
                            return Err(session_rejected(message));
                        }
                        refreshed = true;
                        attempt -= 1;
                        tracing::info!("salesforce session expired, requesting a new token");
                        self.refresh(session.generation).await?;
                        continue;
                    }
                    if code == "REQUEST_LIMIT_EXCEEDED" && !is_concurrency_limit(message) {
                        self.inner.governor.limit_exceeded(message);
                        attempt -= 1;
                        continue;
                    }
                    (err, None)
                }
                Err(e) => {
                    let kind = failure_of(&e);
                    (transport_error(e, attempt), Some(kind))
                }
            };
            let failure = failure_kind.unwrap_or_else(|| status_failure(&failure_err));
            match retry_reason(failure, call.idempotent) {
                Some(reason) if attempt < policy.max_attempts.max(1) => {
                    metrics::record_retry(call.operation, reason);
                    let delay = policy.delay(attempt);
                    tracing::debug!(attempt, reason, ?delay, "retrying salesforce call");
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(failure_err),
            }
        }
    }

    /// One HTTP exchange: builds the request, records usage and metrics.
    async fn send_once(
        &self,
        call: &Call<'_>,
        session: &Session,
        url: Url,
    ) -> std::result::Result<Reply, reqwest::Error> {
        let timeout = if call.long_timeout {
            self.inner.upload_timeout
        } else {
            self.inner.request_timeout
        };
        let mut req = self
            .inner
            .http
            .request(call.method.clone(), url)
            .bearer_auth(session.access_token.expose_secret())
            .timeout(timeout)
            .header(
                ACCEPT,
                if call.accept_csv {
                    "text/csv"
                } else {
                    "application/json"
                },
            );
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        if let Some(opts) = &self.inner.call_options {
            req = req.header("Sforce-Call-Options", opts);
        }
        req = match &call.body {
            Body::Empty => req,
            Body::Json(b) => req.header(CONTENT_TYPE, "application/json").body(b.clone()),
            Body::GzipCsv(b) => req
                .header(CONTENT_TYPE, "text/csv")
                .header(reqwest::header::CONTENT_ENCODING, "gzip")
                .body(b.clone()),
        };
        let outcome = async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            self.observe_limit_header(&headers);
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>(Reply {
                status,
                headers,
                body,
            })
        }
        .await;
        let status_label = match &outcome {
            Ok(r) => r.status.to_string(),
            Err(e) if e.is_timeout() => "timeout".to_string(),
            Err(_) => "transport".to_string(),
        };
        metrics::record_call(
            &self.inner.pipeline,
            call.object,
            call.operation,
            &status_label,
        );
        outcome
    }

    /// Records `Sforce-Limit-Info` if present.
    fn observe_limit_header(&self, headers: &HeaderMap) {
        let usage = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| ApiUsage::parse_header(v, Utc::now()));
        if let Some(usage) = usage {
            self.inner.governor.observe(usage);
        }
    }

    /// Resolves a call target against the session's instance URL.
    fn url_for(&self, session: &Session, target: &Target) -> Result<Url> {
        match target {
            Target::Data(segments) => {
                let mut url = join_path(
                    &session.instance_url,
                    &format!("services/data/{}", self.api_version()),
                )?;
                url.path_segments_mut()
                    .map_err(|_| SalesforceError::config("instance URL cannot be a base"))?
                    .extend(segments);
                Ok(url)
            }
            Target::Path(path) => {
                if !path.starts_with("/services/") {
                    return Err(SalesforceError::BadResponse {
                        context: "next page URL".into(),
                        detail: format!(
                            "expected a path starting with /services/, got {}",
                            super::error::snippet(path.as_bytes())
                        ),
                    });
                }
                join_path(&session.instance_url, path)
            }
        }
    }

    /// Waits while the governor says so; fails once a pause outlasts `max_pause_wait`.
    async fn wait_for_governor(&self) -> Result<()> {
        let start = tokio::time::Instant::now();
        let max_wait = self.inner.governor.config().max_pause_wait;
        loop {
            match self.inner.governor.permit() {
                Permit::Go => return Ok(()),
                Permit::Delay(d) => {
                    tokio::time::sleep(d).await;
                    return Ok(());
                }
                Permit::Wait(until, until_utc, reason) => {
                    if let Some(deadline) = max_wait.and_then(|m| start.checked_add(m)) {
                        if until > deadline {
                            return Err(SalesforceError::LimitExceeded {
                                reason: reason.to_string(),
                                until: until_utc,
                            });
                        }
                    }
                    tracing::debug!(%until_utc, "salesforce calls paused by the governor");
                    tokio::time::sleep_until(until).await;
                }
                Permit::Probe => self.probe_limits().await,
            }
        }
    }

    /// At the end of a pause: one `/limits` call (no governor, no retries) to learn whether
    /// there is room again.
    async fn probe_limits(&self) {
        let _guard = self.inner.probe_lock.lock().await;
        if self.inner.governor.permit() != Permit::Probe {
            return; // another task already probed
        }
        let usage = match self.probe_once().await {
            Ok(usage) => usage,
            Err(err) => {
                tracing::warn!(error = %err, "salesforce /limits probe failed");
                None
            }
        };
        self.inner.governor.finish_probe(usage);
    }

    /// Sends `GET /limits` once and reads `DailyApiRequests`.
    async fn probe_once(&self) -> Result<Option<ApiUsage>> {
        let session = self.session().await?;
        let call = Call::new(Method::GET, &["limits"], "limits", "");
        let url = self.url_for(&session, &call.target)?;
        let reply = self
            .send_once(&call, &session, url)
            .await
            .map_err(|e| transport_error(e, 1))?;
        if reply.status >= 400 {
            let err = api_error_from_body(reply.status, &reply.body);
            if err.api_code() == Some("REQUEST_LIMIT_EXCEEDED") {
                let (_, message) = api_code_message(&err);
                self.inner.governor.limit_exceeded(message);
            }
            return Err(err);
        }
        let limits: super::rest::Limits = parse_json(&reply.body, "limits")?;
        Ok(limits.daily_api_usage())
    }

    /// The current session, if any.
    fn current_session(&self) -> Option<Arc<Session>> {
        self.inner.session.read().clone()
    }

    /// The current session, logging in first if needed.
    async fn session(&self) -> Result<Arc<Session>> {
        match self.current_session() {
            Some(s) => Ok(s),
            None => self.refresh(0).await,
        }
    }

    /// Obtains a new token unless one newer than `seen_generation` already exists.
    async fn refresh(&self, seen_generation: u64) -> Result<Arc<Session>> {
        let _guard = self.inner.refresh_lock.lock().await;
        let current = self.current_session();
        if let Some(s) = &current {
            if s.generation > seen_generation {
                return Ok(s.clone());
            }
        }
        let generation = current.map_or(0, |s| s.generation) + 1;
        let session = Arc::new(self.fetch_token(generation).await?);
        tracing::info!(
            grant = self.inner.auth.credentials().grant_name(),
            instance_url = %session.instance_url,
            "salesforce token obtained"
        );
        *self.inner.session.write() = Some(session.clone());
        Ok(session)
    }

    /// Requests a token, retrying transport failures and 5xx.
    async fn fetch_token(&self, generation: u64) -> Result<Session> {
        let policy = &self.inner.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .inner
                .auth
                .request_token(&self.inner.http, self.inner.request_timeout, generation)
                .await;
            metrics::record_call(
                &self.inner.pipeline,
                "",
                "oauth_token",
                if result.is_ok() { "200" } else { "error" },
            );
            match result {
                Ok(s) => return Ok(s),
                Err(e) if e.is_transient() && attempt < policy.max_attempts.max(1) => {
                    metrics::record_retry("oauth_token", "transient");
                    tokio::time::sleep(policy.delay(attempt)).await;
                }
                Err(SalesforceError::Transport {
                    timeout, message, ..
                }) => {
                    return Err(SalesforceError::Transport {
                        attempts: attempt,
                        timeout,
                        message,
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Decodes a JSON body, or explains why not with a short snippet.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8], context: &str) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        SalesforceError::bad_response(context, &format!("cannot decode JSON: {e}"), body)
    })
}

/// Turns a reqwest error into [`SalesforceError::Transport`], without the URL.
pub(crate) fn transport_error(e: reqwest::Error, attempts: u32) -> SalesforceError {
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    SalesforceError::Transport {
        attempts,
        timeout,
        message,
    }
}

/// Classifies a reqwest error for retrying.
fn failure_of(e: &reqwest::Error) -> Failure<'static> {
    if e.is_connect() {
        Failure::Connect
    } else if e.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Transport
    }
}

/// Classifies an API error for retrying.
fn status_failure(err: &SalesforceError) -> Failure<'_> {
    match err {
        SalesforceError::Api {
            status,
            code,
            message,
            ..
        } => Failure::Status {
            status: *status,
            code,
            message,
        },
        _ => Failure::Transport,
    }
}

/// `(errorCode, message)` of an API error, or empty strings.
fn api_code_message(err: &SalesforceError) -> (&str, &str) {
    match err {
        SalesforceError::Api { code, message, .. } => (code, message),
        _ => ("", ""),
    }
}

/// The error for a 401 right after a fresh token.
fn session_rejected(message: &str) -> SalesforceError {
    SalesforceError::Auth {
        error: "INVALID_SESSION_ID".into(),
        description: message.to_string(),
        hint: "a freshly issued token was rejected too: check the connected app's IP \
               restrictions and session policies, and that the user is active and has API access"
            .into(),
    }
}

/// Accepts `v62.0` or `62.0`; refuses anything else.
fn normalize_version(v: &str) -> Result<String> {
    let bare = v.trim().trim_start_matches('v');
    let ok = bare.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(format!("v{bare}"))
    } else {
        Err(SalesforceError::config(format!(
            "api_version {v:?} is not of the form v62.0"
        )))
    }
}

/// The credentials of one session as a gRPC API needs them (see
/// [`SalesforceClient::session_credentials`]). `Debug` shows everything but the token.
#[derive(Clone)]
pub struct SessionCredentials {
    /// The bearer token.
    access_token: secrecy::SecretString,
    /// The org's instance URL.
    pub instance_url: Url,
    /// The org id: from the identity URL (`…/id/{orgId}/{userId}`), else the token's prefix
    /// before `!` (the 15-character form).
    pub org_id: String,
    /// The session generation these credentials came from.
    generation: u64,
}

impl SessionCredentials {
    /// Extracts the credentials of `session`; an error when neither the identity URL nor the
    /// token names the org.
    fn of(session: &Session) -> Result<Self> {
        let org_id = session
            .identity_url
            .as_deref()
            .and_then(org_id_from_identity_url)
            .or_else(|| org_id_from_token(session.access_token.expose_secret()))
            .ok_or_else(|| {
                SalesforceError::config(
                    "the token response names no org id (no identity URL `id` and no `!` in \
                     the token), which the Pub/Sub API needs as `tenantid`",
                )
            })?;
        Ok(Self {
            access_token: session.access_token.clone(),
            instance_url: session.instance_url.clone(),
            org_id,
            generation: session.generation,
        })
    }

    /// The access token; expose it only to put it on the wire.
    pub fn access_token(&self) -> &secrecy::SecretString {
        &self.access_token
    }
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("access_token", &"<redacted>")
            .field("instance_url", &self.instance_url.as_str())
            .field("org_id", &self.org_id)
            .finish()
    }
}

/// `{orgId}` of `…/id/{orgId}/{userId}`.
fn org_id_from_identity_url(url: &str) -> Option<String> {
    let mut segments = url.trim_end_matches('/').rsplit('/');
    let _user = segments.next()?;
    let org = segments.next()?;
    let id_segment = segments.next()?;
    (id_segment == "id" && !org.is_empty()).then(|| org.to_string())
}

/// The org id a Salesforce token starts with (`00D…!…`).
fn org_id_from_token(token: &str) -> Option<String> {
    let (prefix, _) = token.split_once('!')?;
    (!prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| prefix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(normalize_version("62.0").unwrap(), "v62.0");
        assert_eq!(normalize_version("v45.0").unwrap(), "v45.0");
        assert!(normalize_version("latest").is_err());
        assert!(normalize_version("v62").is_err());
    }

    #[test]
    fn org_id_comes_from_the_identity_url_or_the_token() {
        let url = "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS";
        assert_eq!(
            org_id_from_identity_url(url).as_deref(),
            Some("00Dxx0000001gPLEAY")
        );
        assert_eq!(org_id_from_identity_url("https://x/none"), None);
        assert_eq!(org_id_from_identity_url("005xx"), None);
        assert_eq!(
            org_id_from_token("00Dxx0000001gPL!AR8AQ").as_deref(),
            Some("00Dxx0000001gPL")
        );
        assert_eq!(org_id_from_token("opaque-token"), None);
        assert_eq!(org_id_from_token("!abc"), None);
    }
}
