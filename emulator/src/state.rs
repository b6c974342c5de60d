//! The shared application state every endpoint module reads: store, schema, org and users,
//! connected apps, tokens, limits, faults, stats and clock. Handlers receive it as
//! `State<AppState>` (an `Arc`, cheap to clone).
//!
//! Modules that need their own state (Bulk jobs, query cursors) keep it in
//! [`EmulatorState::ext`], a type-keyed slot created on first use, so they need no field here.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use jsonwebtoken::DecodingKey;
use serde_json::{json, Map, Value};

use super::cdc::{Cdc, CdcError};
use super::clock::Clock;
use super::config::{ConnectedAppConfig, EmulatorConfig, UserConfig};
use super::faults::Faults;
use super::ids::{prefix, Id};
use super::latency::{Latency, LatencyError, LatencyProfile};
use super::limits::{Limits, Stats};
use super::schema::{Schema, SchemaError};
use super::session::Tokens;
use super::store::Store;

/// Shared state handle given to every handler.
pub type AppState = Arc<EmulatorState>;

/// A user that can authenticate.
#[derive(Debug, Clone)]
pub struct User {
    /// User record id (`005…`).
    pub id: Id,
    /// Login name.
    pub username: String,
    /// Password for the password grant.
    pub password: Option<String>,
}

/// A connected app (OAuth client).
pub struct ConnectedApp {
    /// Display name.
    pub name: String,
    /// Consumer key.
    pub client_id: String,
    /// Consumer secret.
    pub client_secret: Option<String>,
    /// Keys that verify JWT-bearer assertions.
    pub jwt_keys: Vec<DecodingKey>,
    /// Username of the client-credentials "Run As" user.
    pub run_as: Option<String>,
}

impl std::fmt::Debug for ConnectedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectedApp")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("jwt_keys", &self.jwt_keys.len())
            .finish_non_exhaustive()
    }
}

/// Why the state could not be built from a config.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Bad org or user id.
    #[error("invalid id in emulator config: {0}")]
    Id(String),
    /// A JWT public key is not valid PEM RSA.
    #[error("connected app {app}: invalid JWT public key: {source}")]
    Key {
        /// Client id.
        app: String,
        /// Underlying error.
        source: jsonwebtoken::errors::Error,
    },
    /// The schema file is invalid.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A latency setting is out of range.
    #[error(transparent)]
    Latency(#[from] LatencyError),
    /// A change-event schema could not be derived.
    #[error(transparent)]
    Cdc(#[from] CdcError),
}

/// Everything shared between requests.
#[derive(Debug)]
pub struct EmulatorState {
    /// The config the emulator was started with.
    pub config: EmulatorConfig,
    /// 18-char org id.
    pub org_id: Id,
    /// Object definitions.
    pub schema: Arc<Schema>,
    /// Records.
    pub store: Arc<Store>,
    /// The clock.
    pub clock: Arc<Clock>,
    /// Users by lower-cased username.
    pub users: HashMap<String, User>,
    /// Connected apps by client id.
    pub apps: HashMap<String, ConnectedApp>,
    /// Issued access and refresh tokens.
    pub tokens: Tokens,
    /// Daily allocations.
    pub limits: Limits,
    /// Injected faults.
    pub faults: Arc<Faults>,
    /// Change Data Capture: schemas and the event bus the Pub/Sub API serves.
    pub cdc: Arc<Cdc>,
    /// Call statistics.
    pub stats: Stats,
    /// The latency profile every request and Bulk job is delayed by.
    pub latency: Latency,
    /// When the emulator started (Last-Modified of describe).
    pub started_at: DateTime<Utc>,
    /// `http://127.0.0.1:PORT`, known once bound.
    pub base_url: String,
    /// Per-module state slots; see [`EmulatorState::ext`].
    extensions: DashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl EmulatorState {
    /// Builds the state: schema, store with the configured users, apps, counters.
    pub fn new(config: EmulatorConfig, base_url: String) -> Result<EmulatorState, StateError> {
        let schema = Arc::new(match &config.schema_file {
            Some(p) => Schema::standard_with_file(p)?,
            None => Schema::standard(),
        });
        let clock = Arc::new(Clock::new());
        let store = Arc::new(Store::new(schema.clone(), clock.clone()));
        let org_id =
            Id::parse(&config.org_id).map_err(|e| StateError::Id(format!("orgId: {e}")))?;
        let mut users = HashMap::new();
        for (i, u) in config.users.iter().enumerate() {
            let user = add_user(&store, u, i as u64 + 1)?;
            users.insert(u.username.to_ascii_lowercase(), user);
        }
        let mut apps = HashMap::new();
        for a in &config.connected_apps {
            apps.insert(a.client_id.clone(), connected_app(a)?);
        }
        let latency = Latency::new(LatencyProfile::build(config.profile, &config.latency)?);
        let now = clock.now();
        let faults = Arc::new(Faults::new(&config.faults));
        let cdc = Arc::new(Cdc::new(
            &schema,
            clock.clone(),
            faults.clone(),
            &config.pubsub.cdc(),
        )?);
        store.set_change_sink(cdc.clone());
        Ok(EmulatorState {
            latency,
            limits: Limits::new(config.daily_api_limit, now),
            faults,
            cdc,
            tokens: Tokens::default(),
            stats: Stats::default(),
            started_at: now,
            config,
            org_id,
            schema,
            store,
            clock,
            users,
            apps,
            base_url,
            extensions: DashMap::new(),
        })
    }

    /// The user with this username, case-insensitively.
    pub fn user(&self, username: &str) -> Option<&User> {
        self.users.get(&username.to_ascii_lowercase())
    }

    /// The first configured user (the default actor for tests and the demo).
    pub fn default_user(&self) -> Option<&User> {
        self.config
            .users
            .first()
            .and_then(|u| self.user(&u.username))
    }

    /// The identity URL of a user (`{base}/id/{org18}/{user18}`).
    pub fn identity_url(&self, user: &Id) -> String {
        format!("{}/id/{}/{}", self.base_url, self.org_id, user)
    }

    /// The module state of type `T`, created with `T::default()` on first use.
    pub fn ext<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let slot = self
            .extensions
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()) as Arc<dyn Any + Send + Sync>)
            .clone();
        slot.downcast::<T>()
            .unwrap_or_else(|_| Arc::new(T::default()))
    }
}

/// Inserts a configured user into the User table.
fn add_user(store: &Store, u: &UserConfig, n: u64) -> Result<User, StateError> {
    let id = match &u.id {
        Some(s) => Id::parse(s).map_err(|e| StateError::Id(format!("user {}: {e}", u.username)))?,
        None => Id::from_parts(prefix::USER, n),
    };
    let local = u.username.split('@').next().unwrap_or("user").to_string();
    let now = super::validation::format_datetime(store.clock().now());
    let mut r = Map::new();
    let fields = json!({
        "Id": id.to_string(), "IsDeleted": false, "Username": u.username,
        "FirstName": u.first_name, "LastName": u.last_name.clone().unwrap_or_else(|| local.clone()),
        "Email": u.email.clone().unwrap_or_else(|| u.username.clone()),
        "Alias": local.chars().take(8).collect::<String>(), "IsActive": true,
        "TimeZoneSidKey": "GMT", "LocaleSidKey": "en_US", "LanguageLocaleKey": "en_US",
        "EmailEncodingKey": "UTF-8", "CreatedDate": now, "CreatedById": id.to_string(),
        "LastModifiedDate": now, "LastModifiedById": id.to_string(), "SystemModstamp": now,
    });
    if let Value::Object(m) = fields {
        r.extend(m);
    }
    let name = [
        u.first_name.as_deref(),
        r.get("LastName").and_then(Value::as_str),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    r.insert("Name".into(), Value::String(name));
    store
        .put_raw("User", r)
        .map_err(|e| StateError::Id(format!("user {}: {}", u.username, e.message)))?;
    Ok(User {
        id,
        username: u.username.clone(),
        password: u.password.clone(),
    })
}

/// Parses a connected app's keys.
fn connected_app(a: &ConnectedAppConfig) -> Result<ConnectedApp, StateError> {
    let jwt_keys = a
        .jwt_public_keys
        .iter()
        .map(|pem| DecodingKey::from_rsa_pem(pem.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| StateError::Key {
            app: a.client_id.clone(),
            source,
        })?;
    Ok(ConnectedApp {
        name: a.name.clone(),
        client_id: a.client_id.clone(),
        client_secret: a.client_secret.clone(),
        jwt_keys,
        run_as: a.run_as.clone(),
    })
}
