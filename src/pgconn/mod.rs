//! Every Postgres connection pgforce opens — the replication stream, the state store,
//! ordinary queries — is described by one [`PgTarget`] and gets its TLS from here.
//!
//! Guarantees:
//! - `sslmode` is `disable`, `prefer`, `require`, `verify-ca` or `verify-full`, with the CA
//!   file in `sslrootcert` (PEM), in a conninfo or as `postgres://` URL query parameters.
//! - TLS for anything not on loopback: a remote host never gets plaintext unless the
//!   connection string says `sslmode=disable` itself (see [`policy`]).
//! - Errors name the server and what to do, and never contain the connection string.
//!
//! Ordinary connections use tokio-postgres with `tokio-postgres-rustls` (which also binds
//! SCRAM to the TLS channel); the replication connection negotiates TLS through
//! [`tls::negotiate`].

mod conninfo;
mod error;
pub mod policy;
pub(crate) mod tls;

use std::sync::Arc;

use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use conninfo::{SslMode, TlsKeys};
pub(crate) use error::Attempt;
pub use error::ConnectError;
use policy::{Negotiation, Route, Verification};

/// The connection task of an ordinary client: spawn it (or poll it) for the client to work.
pub type PgConnection = Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// Where and how to connect: tokio-postgres settings plus pgforce's TLS keys.
#[derive(Debug, Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    tls: TlsKeys,
}

/// What [`PgTarget::plan`] decided for one connection.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub negotiation: Negotiation,
    /// The rustls configuration (unused when plaintext).
    pub tls: Arc<rustls::ClientConfig>,
    pub attempt: Attempt,
}

impl PgTarget {
    /// Parse a libpq conninfo or a `postgres://` URL.
    pub fn parse(conninfo: &str) -> Result<PgTarget, ConnectError> {
        let (config, tls) = conninfo::parse(conninfo).map_err(ConnectError::Config)?;
        Ok(PgTarget { config, tls })
    }

    /// An already-built tokio-postgres config; TLS as if no `sslmode` was given.
    pub fn from_config(config: tokio_postgres::Config) -> PgTarget {
        PgTarget {
            config,
            tls: TlsKeys::default(),
        }
    }

    /// The tokio-postgres settings (host, user, ...; its `ssl_mode` is not used).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// Change tokio-postgres settings (e.g. `application_name`).
    pub fn config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.config
    }

    /// The TLS keys as written.
    pub fn tls_keys(&self) -> &TlsKeys {
        &self.tls
    }

    /// Whether the connection string carries a password.
    pub fn has_password(&self) -> bool {
        self.config.get_password().is_some()
    }

    /// `host:port` of the first host, for messages.
    pub fn addr(&self) -> String {
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) if h.contains(':') => format!("[{h}]:{port}"),
            Some(Host::Tcp(h)) => format!("{h}:{port}"),
            Some(Host::Unix(dir)) => dir.join(format!(".s.PGSQL.{port}")).display().to_string(),
            None => format!("(no host):{port}"),
        }
    }

    /// Whether the TLS settings can work (a CA file where one is needed and readable, no
    /// TLS over a Unix socket), without connecting.
    pub fn check(&self) -> Result<(), ConnectError> {
        self.decide().map(|_| ())
    }

    /// Decide TLS for this target and build the rustls configuration (reads `sslrootcert`).
    pub(crate) fn plan(&self) -> Result<Plan, ConnectError> {
        let plan = self.decide()?;
        if plan.negotiation == Negotiation::Plain && policy::route_of(&self.config) == Route::Remote
        {
            tracing::warn!(
                addr = %plan.attempt.addr,
                "plaintext connection to a host that is not on loopback (sslmode=disable)"
            );
        }
        Ok(plan)
    }

    fn decide(&self) -> Result<Plan, ConnectError> {
        let route = policy::route_of(&self.config);
        let negotiation =
            policy::negotiation(self.tls.mode, route).map_err(ConnectError::Config)?;
        let verification = policy::verification(self.tls.mode, self.tls.root_cert.is_some())
            .map_err(ConnectError::Config)?;
        let tls = match negotiation {
            Negotiation::Plain => tls::unused_config()?,
            _ => tls::client_config(verification, self.tls.root_cert.as_deref())?,
        };
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            _ => String::new(),
        };
        let why_required = match (self.tls.mode, route, verification) {
            (Some(m), _, _) if m != SslMode::Prefer => format!("sslmode={}", m.as_str()),
            (_, Route::Remote, _) => {
                format!("{host} is not on loopback, and pgforce uses TLS for every such host")
            }
            (_, _, Verification::Ca) => "sslrootcert is set".into(),
            _ => "TLS was requested".into(),
        };
        let attempt = Attempt {
            addr: self.addr(),
            host,
            root: self
                .tls
                .root_cert
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(none)".into()),
            why_required,
            plaintext: negotiation == Negotiation::Plain,
        };
        Ok(Plan {
            negotiation,
            tls,
            attempt,
        })
    }

    /// Open an ordinary tokio-postgres client. The returned connection must be spawned.
    pub async fn connect(&self) -> Result<(Client, PgConnection), ConnectError> {
        let plan = self.plan()?;
        let mut config = self.config.clone();
        config.ssl_mode(match plan.negotiation {
            Negotiation::Plain => tokio_postgres::config::SslMode::Disable,
            Negotiation::Optional => tokio_postgres::config::SslMode::Prefer,
            Negotiation::Required => tokio_postgres::config::SslMode::Require,
        });
        let connector = MakeRustlsConnect::new((*plan.tls).clone());
        config
            .connect(connector)
            .await
            .map_err(|e| plan.attempt.pg_error(e))
    }
}

/// Parse `conninfo` and open an ordinary client (see [`PgTarget::connect`]).
pub async fn connect(conninfo: &str) -> Result<(Client, PgConnection), ConnectError> {
    PgTarget::parse(conninfo)?.connect().await
}

/// Whether `conninfo` (a conninfo or URL) carries a password; an error when it cannot be
/// parsed (the reason never quotes the string).
pub fn has_password(conninfo: &str) -> Result<bool, String> {
    conninfo::parse(conninfo).map(|(config, _)| config.get_password().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_hosts_need_tls_or_an_explicit_disable() {
        let plan = PgTarget::parse("host=db.example.com user=u")
            .unwrap()
            .plan()
            .unwrap();
        assert_eq!(plan.negotiation, Negotiation::Required);
        assert!(plan.attempt.why_required.contains("not on loopback"));
        let plan = PgTarget::parse("host=db.example.com user=u sslmode=disable")
            .unwrap()
            .plan()
            .unwrap();
        assert_eq!(plan.negotiation, Negotiation::Plain);
        let plan = PgTarget::parse("postgres://u@localhost/db")
            .unwrap()
            .plan()
            .unwrap();
        assert_eq!(plan.negotiation, Negotiation::Optional);
    }

    #[test]
    fn plan_errors_name_the_missing_piece() {
        let e = PgTarget::parse("host=db.example.com sslmode=verify-full")
            .unwrap()
            .plan()
            .unwrap_err();
        assert!(e.to_string().contains("sslrootcert"), "{e}");
        let e = PgTarget::parse("host=h sslmode=verify-ca sslrootcert=/nonexistent/ca.pem")
            .unwrap()
            .plan()
            .unwrap_err();
        assert!(matches!(e, ConnectError::RootCert { .. }), "{e}");
    }

    #[test]
    fn finds_passwords() {
        assert_eq!(has_password("postgres://u:pw@h/db"), Ok(true));
        assert_eq!(has_password("host=h user=u password=x"), Ok(true));
        assert_eq!(has_password("postgres://u@h/db?sslmode=require"), Ok(false));
        assert!(has_password("host=h sslmode=nope").is_err());
    }

    #[test]
    fn addresses_for_messages() {
        assert_eq!(
            PgTarget::parse("host=h port=6000").unwrap().addr(),
            "h:6000"
        );
        assert_eq!(PgTarget::parse("host=::1").unwrap().addr(), "[::1]:5432");
    }
}
