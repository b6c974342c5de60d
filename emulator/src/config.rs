//! The emulator's configuration: org, users, connected apps, token lifetime, limits,
//! snapshot and schema files, and faults. Loadable from a JSON file (camelCase keys, every
//! key optional); [`EmulatorConfig::default`] is the demo setup.
//!
//! ```json
//! {"orgId": "00D5g0000012345",
//!  "users": [{"username": "integration@pgforce.demo", "password": "demo-password"}],
//!  "connectedApps": [{"name": "pgforce", "clientId": "pgforce-demo-client",
//!                     "clientSecret": "pgforce-demo-secret",
//!                     "jwtPublicKeys": ["-----BEGIN PUBLIC KEY-----\n..."],
//!                     "runAs": "integration@pgforce.demo"}],
//!  "tokenLifetimeSecs": 7200, "dailyApiLimit": 100000,
//!  "snapshotFile": "emulator-data.jsonl", "schemaFile": "schema.json",
//!  "faults": [{"kind": "latency", "ms": 50, "pathPrefix": "/services/data"}],
//!  "profile": "realistic", "latency": {"roundTripMs": 30, "bulkIngestRowsPerSec": 20000},
//!  "pubsub": {"listen": "127.0.0.1:7443", "keepaliveMs": 60000, "retentionSecs": 259200,
//!             "overflowThreshold": 100000}}
//! ```
//!
//! `profile` is `instant` (default) or `realistic`; `latency` overrides single figures of it
//! (see [`super::latency`] for the keys, the figures and their sources).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::faults::FaultSpec;
use super::latency::{LatencyOverrides, ProfileName};
use super::pubsub::PubSubConfig;

/// Demo username.
pub const DEMO_USERNAME: &str = "integration@pgforce.demo";
/// Demo password.
pub const DEMO_PASSWORD: &str = "demo-password";
/// Demo connected app client id.
pub const DEMO_CLIENT_ID: &str = "pgforce-demo-client";
/// Demo connected app client secret.
pub const DEMO_CLIENT_SECRET: &str = "pgforce-demo-secret";

/// Everything an emulator instance is started with.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct EmulatorConfig {
    /// Org id (15 or 18 chars, prefix `00D`).
    pub org_id: String,
    /// Users that may log in; the first is the default for [`super::EmulatorHandle::issue_token`].
    pub users: Vec<UserConfig>,
    /// Connected apps (OAuth clients).
    pub connected_apps: Vec<ConnectedAppConfig>,
    /// Access-token lifetime (the org's session timeout), seconds.
    pub token_lifetime_secs: u64,
    /// Daily API request allocation (`DailyApiRequests.Max`).
    pub daily_api_limit: u64,
    /// JWT `aud` values accepted besides login/test.salesforce.com.
    pub extra_jwt_audiences: Vec<String>,
    /// Whether the emulator's own base URL is an accepted JWT `aud`.
    pub accept_base_url_audience: bool,
    /// Load records from this file at start (if it exists) and save them at shutdown.
    pub snapshot_file: Option<PathBuf>,
    /// Extra objects and fields (see [`super::schema`] for the shape).
    pub schema_file: Option<PathBuf>,
    /// Faults active from the start.
    pub faults: Vec<FaultSpec>,
    /// The latency profile (`instant` or `realistic`).
    pub profile: ProfileName,
    /// Overrides of single figures of the profile.
    pub latency: LatencyOverrides,
    /// The web-server (authorization-code) flow.
    pub oauth_web: OAuthWebConfig,
    /// Log every request (method, path, status, duration) at INFO; see
    /// [`super::request_log`].
    pub log_requests: bool,
    /// The Pub/Sub API listener and Change Data Capture (keepalive, retention, overflow).
    pub pubsub: PubSubConfig,
}

/// Settings of the OAuth web-server flow (`/services/oauth2/authorize`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct OAuthWebConfig {
    /// Skip the login-and-consent page: `authorize` redirects with a code at once, for the
    /// user named by `login_hint` or else the first configured user (tests).
    pub auto_approve: bool,
    /// Allowed `redirect_uri` values (the connected apps' callback URLs); empty accepts
    /// any absolute http(s) URL.
    pub callback_urls: Vec<String>,
}

/// A user of the emulated org.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserConfig {
    /// Login name (`sub` of JWT assertions).
    pub username: String,
    /// Password for the password grant.
    #[serde(default)]
    pub password: Option<String>,
    /// Fixed user id (generated when absent).
    #[serde(default)]
    pub id: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name (defaults to the part of the username before `@`).
    #[serde(default)]
    pub last_name: Option<String>,
    /// Email (defaults to the username).
    #[serde(default)]
    pub email: Option<String>,
}

/// An OAuth client.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectedAppConfig {
    /// Display name (used in `per-app-api-usage`).
    #[serde(default = "default_app_name")]
    pub name: String,
    /// Consumer key.
    pub client_id: String,
    /// Consumer secret (also the key of the token response `signature`).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// PEM public keys (or certificates' keys) that verify JWT-bearer assertions.
    #[serde(default)]
    pub jwt_public_keys: Vec<String>,
    /// Username the client-credentials grant runs as.
    #[serde(default)]
    pub run_as: Option<String>,
}

fn default_app_name() -> String {
    "pgforce".to_string()
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            org_id: "00D5g00000PGFRC".to_string(),
            users: vec![UserConfig {
                username: DEMO_USERNAME.to_string(),
                password: Some(DEMO_PASSWORD.to_string()),
                id: None,
                first_name: Some("Integration".to_string()),
                last_name: Some("User".to_string()),
                email: None,
            }],
            connected_apps: vec![ConnectedAppConfig {
                name: default_app_name(),
                client_id: DEMO_CLIENT_ID.to_string(),
                client_secret: Some(DEMO_CLIENT_SECRET.to_string()),
                jwt_public_keys: Vec::new(),
                run_as: Some(DEMO_USERNAME.to_string()),
            }],
            token_lifetime_secs: 7200,
            daily_api_limit: 100_000,
            extra_jwt_audiences: Vec::new(),
            accept_base_url_audience: true,
            snapshot_file: None,
            schema_file: None,
            faults: Vec::new(),
            profile: ProfileName::Instant,
            latency: LatencyOverrides::default(),
            oauth_web: OAuthWebConfig::default(),
            log_requests: false,
            pubsub: PubSubConfig::default(),
        }
    }
}

/// Why a config file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read emulator config {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the documented shape.
    #[error("invalid emulator config {path}: {source}")]
    Parse {
        /// File path.
        path: String,
        /// Underlying error.
        source: serde_json::Error,
    },
}

impl EmulatorConfig {
    /// Loads a JSON config file; keys not given keep their demo defaults.
    pub fn from_file(path: &Path) -> Result<EmulatorConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })
    }
}
