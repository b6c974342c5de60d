//! The one way tests write a pgforce config: a typed builder that renders TOML, so the real
//! parser and its checks run on every config a test uses, without a copied template per
//! test file. [`ConfigBuilder`] holds the pipeline (names, source, Salesforce login,
//! batching, `[server]` and `[journal]` knobs); [`Mapping`] renders one
//! `[[pipelines.mappings]]` table. Mappings that exercise unusual keys can be added as raw
//! TOML with [`ConfigBuilder::mappings_toml`]. Secrets are `env:` references, resolved by a
//! [`Secrets`] map in-process or by the child's environment when the text is written to a
//! file for `pgforce`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pgforce::config::{Config, ConfigError, PipelineConfig, SecretRef, SecretResolver};
use pgforce_emulator::config as emu;
use secrecy::SecretString;

/// How the pipeline logs in to Salesforce (secret fields are `env:` / `file:` references).
#[derive(Debug, Clone)]
pub enum Auth {
    /// `type = "client_credentials"`.
    ClientCredentials {
        client_id: String,
        client_secret: String,
    },
    /// `type = "refresh_token"`.
    RefreshToken {
        client_id: String,
        refresh_token: String,
    },
}

impl Auth {
    /// The emulator's demo connected app, its secret read from env var `secret_env`.
    pub fn emulator_demo(secret_env: &str) -> Auth {
        Auth::ClientCredentials {
            client_id: emu::DEMO_CLIENT_ID.to_string(),
            client_secret: format!("env:{secret_env}"),
        }
    }

    fn toml(&self) -> String {
        match self {
            Auth::ClientCredentials {
                client_id,
                client_secret,
            } => format!(
                r#"{{ type = "client_credentials", client_id = "{client_id}", client_secret = "{client_secret}" }}"#
            ),
            Auth::RefreshToken {
                client_id,
                refresh_token,
            } => format!(
                r#"{{ type = "refresh_token", client_id = "{client_id}", refresh_token = "{refresh_token}" }}"#
            ),
        }
    }
}

/// One `[[pipelines.mappings]]` table, keyed by `id` → `External_Id__c`.
#[derive(Debug, Clone)]
pub struct Mapping {
    name: String,
    table: String,
    object: String,
    key: (String, String),
    /// Other top-level keys of the mapping, as `key = <TOML value>`.
    settings: Vec<(String, String)>,
    lookups: Vec<String>,
    /// `column = <TOML value>` lines of `[pipelines.mappings.fields]`.
    fields: Vec<(String, String)>,
}

impl Mapping {
    /// Mapping `name` of `table` (schema-qualified) onto `object`.
    pub fn new(name: &str, table: &str, object: &str) -> Mapping {
        Mapping {
            name: name.to_string(),
            table: table.to_string(),
            object: object.to_string(),
            key: ("id".to_string(), "External_Id__c".to_string()),
            settings: Vec::new(),
            lookups: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// `column` copied to `field` with the default conversion.
    pub fn field(self, column: &str, field: &str) -> Mapping {
        self.field_toml(column, &format!("\"{field}\""))
    }

    /// `column = <value>` in the fields table, e.g. a field with a transform.
    pub fn field_toml(mut self, column: &str, value: &str) -> Mapping {
        self.fields.push((column.to_string(), value.to_string()));
        self
    }

    /// A lookup: `column` holds the parent's `External_Id__c`, set through `relationship`.
    pub fn lookup(mut self, column: &str, object: &str, relationship: &str) -> Mapping {
        self.lookups.push(format!(
            r#"{{ column = "{column}", object = "{object}", relationship = "{relationship}", external_id_field = "External_Id__c" }}"#
        ));
        self
    }

    /// Another top-level key of the mapping: `key = <TOML value>` (e.g. `delete`, `"\"delete\""`).
    pub fn set(mut self, key: &str, value: &str) -> Mapping {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }

    /// The `[[pipelines.mappings]]` table as TOML.
    pub fn toml(&self) -> String {
        let mut out = String::new();
        let (column, field) = &self.key;
        let _ = writeln!(
            out,
            "[[pipelines.mappings]]\nname = \"{}\"\ntable = \"{}\"\nobject = \"{}\"\nexternal_id = {{ column = \"{column}\", field = \"{field}\" }}",
            self.name, self.table, self.object
        );
        for (k, v) in &self.settings {
            let _ = writeln!(out, "{k} = {v}");
        }
        if !self.lookups.is_empty() {
            let _ = writeln!(out, "lookups = [\n  {},\n]", self.lookups.join(",\n  "));
        }
        if !self.fields.is_empty() {
            let _ = writeln!(out, "\n[pipelines.mappings.fields]");
            for (k, v) in &self.fields {
                let _ = writeln!(out, "{k} = {v}");
            }
        }
        out
    }
}

/// Batching knobs (`[pipelines.batching]`); unset ones keep pgforce's defaults.
#[derive(Debug, Clone, Default)]
pub struct Batching {
    pub max_batch_rows: Option<usize>,
    pub max_batch_age_ms: Option<u64>,
    pub collections_threshold: Option<usize>,
}

/// A config with one pipeline, rendered as TOML.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    name: String,
    database_url: String,
    login_url: Option<String>,
    instance_url: Option<String>,
    api_version: Option<String>,
    limit_exceeded_pause_secs: Option<u64>,
    pubsub_endpoint: Option<String>,
    auth: Auth,
    batching: Batching,
    shutdown_grace_seconds: Option<u64>,
    journal_dir: Option<PathBuf>,
    mappings: Vec<String>,
    jobs: Vec<String>,
}

impl ConfigBuilder {
    /// Pipeline `name` with publication and slot `pgforce_<name>`, the source URL from env
    /// var `db_env`, and a placeholder login (set one with [`ConfigBuilder::emulator`] or
    /// [`ConfigBuilder::salesforce`]).
    pub fn new(name: &str, db_env: &str) -> ConfigBuilder {
        ConfigBuilder {
            name: name.to_string(),
            database_url: format!("env:{db_env}"),
            login_url: None,
            instance_url: None,
            api_version: None,
            limit_exceeded_pause_secs: None,
            pubsub_endpoint: None,
            auth: Auth::ClientCredentials {
                client_id: "x".into(),
                client_secret: "env:SECRET".into(),
            },
            batching: Batching::default(),
            shutdown_grace_seconds: None,
            journal_dir: None,
            mappings: Vec::new(),
            jobs: Vec::new(),
        }
    }

    /// Log in to the emulator at `base` as its demo app (secret from env var `secret_env`),
    /// API version 62.0.
    pub fn emulator(self, base: &str, secret_env: &str) -> ConfigBuilder {
        self.salesforce(Some(base), Some(base), Auth::emulator_demo(secret_env))
            .api_version("62.0")
    }

    /// The Salesforce login: `login_url`, `instance_url` (each omitted when `None`), auth.
    pub fn salesforce(
        mut self,
        login_url: Option<&str>,
        instance_url: Option<&str>,
        auth: Auth,
    ) -> ConfigBuilder {
        self.login_url = login_url.map(str::to_string);
        self.instance_url = instance_url.map(str::to_string);
        self.auth = auth;
        self
    }

    pub fn api_version(mut self, version: &str) -> ConfigBuilder {
        self.api_version = Some(version.to_string());
        self
    }

    /// `salesforce.pubsub_endpoint` (the emulator's Pub/Sub API for CDC entries).
    pub fn pubsub_endpoint(mut self, url: &str) -> ConfigBuilder {
        self.pubsub_endpoint = Some(url.to_string());
        self
    }

    /// `salesforce.limit_exceeded_pause_secs`.
    pub fn limit_exceeded_pause_secs(mut self, secs: u64) -> ConfigBuilder {
        self.limit_exceeded_pause_secs = Some(secs);
        self
    }

    pub fn batching(mut self, batching: Batching) -> ConfigBuilder {
        self.batching = batching;
        self
    }

    /// `[server] shutdown_grace_seconds`.
    pub fn shutdown_grace_seconds(mut self, secs: u64) -> ConfigBuilder {
        self.shutdown_grace_seconds = Some(secs);
        self
    }

    /// `[journal] dir`.
    pub fn journal(mut self, dir: &Path) -> ConfigBuilder {
        self.journal_dir = Some(dir.to_path_buf());
        self
    }

    pub fn mapping(mut self, mapping: Mapping) -> ConfigBuilder {
        self.mappings.push(mapping.toml());
        self
    }

    /// `[[pipelines.mappings]]` tables written as TOML by the test.
    pub fn mappings_toml(mut self, toml: &str) -> ConfigBuilder {
        self.mappings.push(toml.to_string());
        self
    }

    /// `[[pipelines.inbound]]` tables (Salesforce → Postgres entries) written as TOML by
    /// the test; they follow the mappings in the pipeline.
    pub fn inbound_toml(mut self, toml: &str) -> ConfigBuilder {
        self.mappings.push(toml.to_string());
        self
    }

    /// A `[[pipelines.jobs]]` table written as TOML by the test (without the header line).
    pub fn job_toml(mut self, toml: &str) -> ConfigBuilder {
        self.jobs.push(format!("[[pipelines.jobs]]\n{toml}"));
        self
    }

    /// The config file's text.
    pub fn toml(&self) -> String {
        let mut out = String::new();
        if let Some(grace) = self.shutdown_grace_seconds {
            let _ = writeln!(out, "[server]\nshutdown_grace_seconds = {grace}\n");
        }
        if let Some(dir) = &self.journal_dir {
            let _ = writeln!(out, "[journal]\ndir = \"{}\"\n", dir.display());
        }
        let name = &self.name;
        let _ = writeln!(
            out,
            "[[pipelines]]\nname = \"{name}\"\npublication = \"pgforce_{name}\"\nslot = \"pgforce_{name}\"\nsource = {{ database_url = \"{}\" }}\n",
            self.database_url
        );
        let b = &self.batching;
        let batching: Vec<String> = [
            b.max_batch_rows.map(|v| format!("max_batch_rows = {v}")),
            b.max_batch_age_ms
                .map(|v| format!("max_batch_age_ms = {v}")),
            b.collections_threshold
                .map(|v| format!("collections_threshold = {v}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !batching.is_empty() {
            let _ = writeln!(out, "[pipelines.batching]\n{}\n", batching.join("\n"));
        }
        let _ = writeln!(out, "[pipelines.salesforce]");
        let optional = [
            (
                "login_url",
                self.login_url.as_ref().map(|v| format!("\"{v}\"")),
            ),
            (
                "instance_url",
                self.instance_url.as_ref().map(|v| format!("\"{v}\"")),
            ),
            (
                "api_version",
                self.api_version.as_ref().map(|v| format!("\"{v}\"")),
            ),
            (
                "limit_exceeded_pause_secs",
                self.limit_exceeded_pause_secs.map(|v| v.to_string()),
            ),
            (
                "pubsub_endpoint",
                self.pubsub_endpoint.as_ref().map(|v| format!("\"{v}\"")),
            ),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                let _ = writeln!(out, "{key} = {v}");
            }
        }
        let _ = writeln!(out, "auth = {}\n", self.auth.toml());
        for m in self.mappings.iter().chain(&self.jobs) {
            let _ = writeln!(out, "{m}");
        }
        out
    }

    /// Parsed with `env:` references left unresolved (no environment needed).
    pub fn unresolved(&self) -> PipelineConfig {
        match Config::parse_unresolved(&self.toml()) {
            Ok(mut c) => c.pipelines.remove(0),
            Err(e) => panic!("test config invalid: {e}\n{}", self.toml()),
        }
    }

    /// Parsed with secrets from `secrets`.
    pub fn resolve(&self, secrets: &Secrets) -> Result<Config, ConfigError> {
        Config::from_toml_with(&self.toml(), secrets)
    }

    /// The only pipeline, parsed with secrets from `secrets`.
    pub fn pipeline(&self, secrets: &Secrets) -> Result<PipelineConfig, ConfigError> {
        Ok(self.resolve(secrets)?.pipelines.remove(0))
    }

    /// Write the text to `path` (for the `pgforce` binary).
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.toml()).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    }
}

/// Resolves `env:NAME` references from a map instead of the process environment (tests run
/// in parallel in one process and must not set env vars for each other).
#[derive(Debug, Clone, Default)]
pub struct Secrets(HashMap<String, String>);

impl Secrets {
    pub fn new(pairs: &[(&str, &str)]) -> Secrets {
        Secrets(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl SecretResolver for Secrets {
    fn resolve(&self, reference: &SecretRef) -> Result<SecretString, String> {
        let SecretRef::Env(name) = reference else {
            return Err("tests resolve env: references only".into());
        };
        self.0
            .get(name)
            .map(|v| SecretString::from(v.clone()))
            .ok_or_else(|| format!("{name} is not set"))
    }
}
