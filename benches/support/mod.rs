//! Helpers shared by the benches: each bench writes its figures as one JSON object to
//! `target/bench/<bench>.json` (so runs can be compared across commits), and reads the
//! process's resident memory.
#![allow(dead_code)]

#[path = "../../emulator/benches/emulator/figures.rs"]
mod figures;
// Each bench uses some of these.
#[allow(unused_imports)]
pub use figures::{load_average, rss_bytes, write_json};

use pgforce::config::{SecretRef, SecretResolver};
use secrecy::SecretString;

/// Resolves a bench config's two secret references (`env:` names): the database URL of the
/// bench's throwaway cluster and the emulator's demo client secret.
pub struct Secrets {
    pub db: String,
    pub db_env: &'static str,
    pub secret_env: &'static str,
}

impl Secrets {
    /// For a config naming them `DATABASE_URL` and `SF_CLIENT_SECRET`.
    pub fn new(db: impl Into<String>) -> Secrets {
        Secrets {
            db: db.into(),
            db_env: "DATABASE_URL",
            secret_env: "SF_CLIENT_SECRET",
        }
    }
}

impl SecretResolver for Secrets {
    fn resolve(&self, reference: &SecretRef) -> Result<SecretString, String> {
        match reference {
            SecretRef::Env(n) if n == self.db_env => Ok(self.db.clone().into()),
            SecretRef::Env(n) if n == self.secret_env => {
                Ok(pgforce_emulator::config::DEMO_CLIENT_SECRET
                    .to_string()
                    .into())
            }
            other => Err(format!(
                "the bench resolves only its own two secrets, not {other:?}"
            )),
        }
    }
}

/// Salesforce data API calls the emulator counted (every family but login and limits).
pub fn data_calls(emulator: &pgforce_emulator::EmulatorHandle) -> u64 {
    let stats = emulator.state().stats.json();
    stats["byFamily"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "oauth" | "limits"))
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0)
}
