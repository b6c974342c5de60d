//! Pipeline configuration: the TOML model, secret references, and validation against the
//! Postgres catalog and Salesforce describe.
//!
//! Loading is three steps, each reporting problems by TOML key path
//! (`pipelines[0].mappings[2].external_id.field`) with a line and column:
//! 1. deserialize ([`model`]; unknown keys are rejected),
//! 2. static checks (names, limits, transform parameters, lookup cycles),
//! 3. resolve secret references (`env:NAME`, `file:/path`).
//!
//! [`validate::validate`] then checks a loaded config against a live database catalog
//! ([`catalog::PgCatalog`]) and Salesforce describe results ([`describe::SfDescribe`]).

pub mod catalog;
pub mod describe;
mod error;
pub mod inbound;
pub mod jobs;
pub mod model;
pub mod order;
pub mod pair;
mod rules;
pub mod secret;
mod source_map;
pub mod validate;

use std::path::Path;

pub use error::{ConfigError, KeyError, Location};
pub use model::*;
pub use rules::split_table;
pub use secret::{EnvAndFiles, Secret, SecretRef, SecretResolver, UnresolvedSecret};

use source_map::SourceMap;

impl Config {
    /// Read, check and resolve the config file at `path` (secrets from the environment and
    /// files).
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_toml(&text)
    }

    /// Parse, check and resolve a config from TOML text (secrets from the environment and
    /// files).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_with(text, &EnvAndFiles)
    }

    /// Parse, check and resolve a config, resolving secrets with `resolver`. Every problem
    /// is reported at once: the config's own errors and every secret that does not resolve.
    pub fn from_toml_with(
        text: &str,
        resolver: &dyn SecretResolver,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::parse_toml(text)?;
        let mut errors = rules::check(&config);
        errors.extend(config.resolve_secrets(resolver));
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(locate(&SourceMap::new(text), errors)))
        }
    }

    /// Parse and check a config without resolving secrets (for `validate` dry runs and
    /// tests); [`Secret::value`] then returns an error.
    pub fn parse_unresolved(text: &str) -> Result<Config, ConfigError> {
        let config = Config::parse_toml(text)?;
        let errors = rules::check(&config);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(locate(&SourceMap::new(text), errors)))
        }
    }

    /// The TOML itself (types, unknown keys); the first syntax error stops parsing.
    /// Pairs are expanded into their mappings and inbound entries here.
    fn parse_toml(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let map = SourceMap::new(text);
            ConfigError::Invalid(vec![toml_error(&map, &e)])
        })?;
        let mut errors = Vec::new();
        for (i, p) in config.pipelines.iter_mut().enumerate() {
            let key = format!("pipelines[{i}]");
            errors.extend(pair::expand_into(
                &key,
                &p.pairs,
                &mut p.mappings,
                &mut p.inbound,
            ));
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(locate(&SourceMap::new(text), errors)))
        }
    }

    /// Resolve every secret reference; one error per reference that failed.
    fn resolve_secrets(&mut self, resolver: &dyn SecretResolver) -> Vec<KeyError> {
        let mut errors = Vec::new();
        for (i, p) in self.pipelines.iter_mut().enumerate() {
            for (key, secret) in p.secrets_mut() {
                if let Err(reason) = secret.resolve(resolver) {
                    errors.push(KeyError::new(
                        format!("pipelines[{i}].{key}"),
                        format!("cannot resolve secret {}: {reason}", secret.reference()),
                    ));
                }
            }
            if let Some(reason) = database_url_problem(&p.source.database_url) {
                errors.push(KeyError::new(
                    format!("pipelines[{i}].source.database_url"),
                    reason,
                ));
            }
        }
        errors
    }
}

/// Why a resolved database URL's TLS settings cannot work (`verify-*` without
/// `sslrootcert`, an unreadable CA file, TLS over a Unix socket), without quoting the URL.
/// A URL that does not parse is left to the connection, which says why.
fn database_url_problem(url: &Secret) -> Option<String> {
    use secrecy::ExposeSecret;
    let value = url.value().ok()?;
    let target = crate::pgconn::PgTarget::parse(value.expose_secret()).ok()?;
    target.check().err().map(|e| e.to_string())
}

impl PipelineConfig {
    /// Every secret of the pipeline with its key path relative to the pipeline.
    fn secrets_mut(&mut self) -> Vec<(&'static str, &mut Secret)> {
        let mut out: Vec<(&'static str, &mut Secret)> =
            vec![("source.database_url", &mut self.source.database_url)];
        match &mut self.salesforce.auth {
            AuthConfig::JwtBearer(a) => {
                out.push(("salesforce.auth.private_key", &mut a.private_key))
            }
            AuthConfig::RefreshToken(a) => {
                out.push(("salesforce.auth.refresh_token", &mut a.refresh_token));
                if let Some(s) = &mut a.client_secret {
                    out.push(("salesforce.auth.client_secret", s));
                }
            }
            AuthConfig::ClientCredentials(a) => {
                out.push(("salesforce.auth.client_secret", &mut a.client_secret))
            }
            AuthConfig::Password(a) => {
                out.push(("salesforce.auth.client_secret", &mut a.client_secret));
                out.push(("salesforce.auth.password", &mut a.password));
                if let Some(s) = &mut a.security_token {
                    out.push(("salesforce.auth.security_token", s));
                }
            }
        }
        out
    }

    /// The mapping with this name.
    pub fn mapping(&self, name: &str) -> Option<&MappingConfig> {
        self.mappings.iter().find(|m| m.name == name)
    }
}

impl MappingConfig {
    /// `schema.table` (a bare table name is in `public`).
    pub fn qualified_table(&self) -> String {
        match split_table(&self.table) {
            Some((s, t)) => format!("{s}.{t}"),
            None => self.table.clone(),
        }
    }
}

impl SalesforceConfig {
    /// The API version without a leading `v`, e.g. `62.0`.
    pub fn api_version_number(&self) -> &str {
        self.api_version
            .strip_prefix('v')
            .unwrap_or(&self.api_version)
    }
}

/// Turn a toml deserialization error into a [`KeyError`] naming the key.
fn toml_error(map: &SourceMap, e: &toml::de::Error) -> KeyError {
    let message = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return KeyError::new("", message);
    };
    let mut key = map.path_at(&span).unwrap_or("").to_string();
    if let Some(field) = backticked_after(&message, "missing field ")
        .or_else(|| backticked_after(&message, "unknown field "))
        .or_else(|| backticked_after(&message, "unknown variant "))
        .filter(|_| !message.starts_with("unknown variant"))
    {
        if !key.ends_with(&format!(".{field}")) && key != field {
            key = if key.is_empty() {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
        }
    }
    if let Some(child) = inline_secret_key(map, &key, &message)
        .or_else(|| child_named_by_message(map, &key, &message))
    {
        key = child;
    }
    let location = map.location_of(&key).or(Some(map.location(span.start)));
    KeyError {
        key,
        message,
        location,
    }
}

/// Secret errors inside an internally tagged table (`auth`) carry the table's span; find
/// the secret key whose string is not a reference.
fn inline_secret_key(map: &SourceMap, key: &str, message: &str) -> Option<String> {
    const SECRET_KEYS: [&str; 5] = [
        "private_key",
        "client_secret",
        "refresh_token",
        "password",
        "security_token",
    ];
    let is_secret_error = message == secret::INLINE_SECRET
        || message.starts_with("`env:`")
        || message.starts_with("`file:`");
    if !is_secret_error {
        return None;
    }
    map.string_children(key)
        .into_iter()
        .find_map(|(path, text)| {
            let name = path.rsplit('.').next()?;
            let bad = SECRET_KEYS.contains(&name) && SecretRef::try_from(text.to_string()).is_err();
            bad.then(|| path.to_string())
        })
}

/// Errors raised inside an internally tagged table (a transform) carry the table's span;
/// when the message quotes one child's string value (`` `Europe/Paris` ``), name that child.
fn child_named_by_message(map: &SourceMap, key: &str, message: &str) -> Option<String> {
    map.string_children(key)
        .into_iter()
        .find(|(_, text)| !text.is_empty() && message.contains(&format!("`{text}`")))
        .map(|(path, _)| path.to_string())
}

/// The `x` in "<prefix>`x`…".
fn backticked_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(name, _)| name)
}

/// Fill in the locations of errors from the static checks.
fn locate(map: &SourceMap, mut errors: Vec<KeyError>) -> Vec<KeyError> {
    for e in &mut errors {
        e.location = map.location_of(&e.key);
    }
    errors
}
