//! Building a pipeline's connections from its configuration.

use secrecy::ExposeSecret;

use super::PipelineError;
use crate::config::{split_table, AuthConfig, PipelineConfig, Secret};
use crate::replication::TableRef;
use crate::salesforce::{ClientConfig, Credentials, GovernorConfig, SalesforceClient};

fn secret(p: &PipelineConfig, s: &Secret) -> Result<secrecy::SecretString, PipelineError> {
    s.value().cloned().map_err(|e| PipelineError::Config {
        pipeline: p.name.clone(),
        message: e.to_string(),
    })
}

/// The source database URL (a secret: never log it).
pub(crate) fn database_url(p: &PipelineConfig) -> Result<String, PipelineError> {
    Ok(secret(p, &p.source.database_url)?
        .expose_secret()
        .to_string())
}

/// A Salesforce client for the pipeline's org (not logged in yet).
pub fn salesforce_client(p: &PipelineConfig) -> Result<SalesforceClient, PipelineError> {
    let sf = &p.salesforce;
    let credentials = match &sf.auth {
        AuthConfig::JwtBearer(a) => Credentials::JwtBearer {
            client_id: a.client_id.clone(),
            username: a.username.clone(),
            private_key_pem: secret(p, &a.private_key)?,
            login_url: sf.login_url.clone(),
            audience: a.audience.clone().unwrap_or_else(|| sf.login_url.clone()),
        },
        AuthConfig::RefreshToken(a) => Credentials::RefreshToken {
            client_id: a.client_id.clone(),
            client_secret: a.client_secret.as_ref().map(|s| secret(p, s)).transpose()?,
            refresh_token: secret(p, &a.refresh_token)?,
            login_url: sf.login_url.clone(),
        },
        AuthConfig::ClientCredentials(a) => Credentials::ClientCredentials {
            client_id: a.client_id.clone(),
            client_secret: secret(p, &a.client_secret)?,
            my_domain_url: sf
                .instance_url
                .clone()
                .unwrap_or_else(|| sf.login_url.clone()),
        },
        AuthConfig::Password(a) => {
            let mut password = secret(p, &a.password)?.expose_secret().to_string();
            if let Some(t) = &a.security_token {
                password.push_str(secret(p, t)?.expose_secret());
            }
            Credentials::UsernamePassword {
                client_id: a.client_id.clone(),
                client_secret: secret(p, &a.client_secret)?,
                username: a.username.clone(),
                password: password.into(),
                login_url: sf.login_url.clone(),
            }
        }
    };
    let mut config = ClientConfig::new(credentials);
    config.api_version = sf.api_version.clone();
    config.pipeline = p.name.clone();
    // Change events carry it back in `changeOrigin`: how a pair recognises its own writes.
    config.client_name = Some(crate::bidi::client_tag(&p.name));
    config.governor = GovernorConfig {
        reserve_fraction: f64::from(sf.api_reserve_percent) / 100.0,
        limit_exceeded_backoff: std::time::Duration::from_secs(sf.limit_exceeded_pause_secs),
        ..GovernorConfig::default()
    };
    SalesforceClient::new(config).map_err(|source| PipelineError::Salesforce {
        pipeline: p.name.clone(),
        source,
    })
}

/// The mapped tables, each once.
pub fn table_refs(p: &PipelineConfig) -> Vec<TableRef> {
    let mut out: Vec<TableRef> = Vec::new();
    for m in &p.mappings {
        if let Some((schema, name)) = split_table(&m.table) {
            let t = TableRef::new(schema, name);
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}
