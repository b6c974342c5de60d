//! Why a Postgres connection could not be opened, in words an operator can act on. Every
//! message names the server (`host:port`) and never contains the connection string (it
//! may hold a password).

use std::error::Error as _;

/// A failure to open a Postgres connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The connection string is malformed or asks for something unsupported.
    #[error("invalid connection string: {0}")]
    Config(String),

    /// The CA file could not be used.
    #[error("cannot use sslrootcert {path}: {reason}: give a PEM file holding the certificate of the CA that signed the server's certificate")]
    RootCert { path: String, reason: String },

    /// The server answered the SSLRequest with "no".
    #[error("PostgreSQL at {addr} does not accept TLS (ssl is off on the server) but this connection requires it ({why}): turn on ssl in the server's postgresql.conf, or set sslmode=disable in the connection string if the network is trusted")]
    TlsRefused { addr: String, why: String },

    /// The server wants TLS (pg_hba.conf has only `hostssl` lines) and we said sslmode=disable.
    #[error("PostgreSQL at {addr} accepts only TLS connections for this user and database (pg_hba.conf has no plaintext entry), but the connection string says sslmode=disable: use sslmode=verify-full with sslrootcert=/path/to/ca.pem (or sslmode=require)")]
    TlsRequiredByServer { addr: String },

    /// The certificate does not chain to a trusted CA.
    #[error("the TLS certificate of PostgreSQL at {addr} is not trusted ({detail}): check that sslrootcert={root} holds the CA that signed the server's certificate")]
    Untrusted {
        addr: String,
        root: String,
        detail: String,
    },

    /// The certificate is trusted but does not name the host we connected to.
    #[error("the TLS certificate of PostgreSQL at {addr} is not valid for the host name {host:?}: connect with a name the certificate lists (its subjectAltName), or use sslmode=verify-ca to check only the CA")]
    HostnameMismatch { addr: String, host: String },

    /// Another TLS failure (protocol versions, a bad certificate encoding, an alert).
    #[error("TLS handshake with PostgreSQL at {addr} failed: {detail}")]
    Handshake {
        addr: String,
        detail: String,
        /// An I/O failure (connection reset) rather than a TLS verdict.
        transient: bool,
    },

    /// The server did not answer the SSLRequest as the protocol says.
    #[error("PostgreSQL at {addr} sent an unexpected answer to the TLS request: {detail}")]
    Protocol { addr: String, detail: String },

    /// Any other failure of an ordinary (tokio-postgres) connection.
    #[error("cannot connect to PostgreSQL at {addr}: {}", pg_detail(.source))]
    Postgres {
        addr: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl ConnectError {
    /// The SQLSTATE, when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ConnectError::Postgres { source, .. } => source.code().map(|c| c.code()),
            _ => None,
        }
    }

    /// True when trying again later may succeed (network trouble, a server starting up);
    /// false for configuration and certificate problems.
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::Handshake { transient, .. } => *transient,
            ConnectError::Postgres { source, .. } => match source.code() {
                Some(code) => code.code().starts_with("57P") || code.code().starts_with("08"),
                None => source.as_db_error().is_none(),
            },
            _ => false,
        }
    }
}

/// The server's message and SQLSTATE, else tokio-postgres' own text (which for a bare
/// db error says only "db error").
fn pg_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match e.source() {
            Some(inner) => format!("{e}: {inner}"),
            None => e.to_string(),
        },
    }
}

/// What the caller knows about the connection attempt, for messages.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    /// `host:port` of the first host.
    pub addr: String,
    /// The host name the certificate must name.
    pub host: String,
    /// The CA file, for messages (`(none)` without one).
    pub root: String,
    /// Why TLS is required (for [`ConnectError::TlsRefused`]).
    pub why_required: String,
    /// Whether TLS was off for this attempt (sslmode=disable or a Unix socket).
    pub plaintext: bool,
}

impl Attempt {
    /// A rustls verdict in words.
    pub fn tls_error(&self, err: &rustls::Error) -> ConnectError {
        use rustls::CertificateError as C;
        match err {
            rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            ) => ConnectError::HostnameMismatch {
                addr: self.addr.clone(),
                host: self.host.clone(),
            },
            rustls::Error::InvalidCertificate(
                C::UnknownIssuer
                | C::BadSignature
                | C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. }
                | C::UnhandledCriticalExtension,
            ) => ConnectError::Untrusted {
                addr: self.addr.clone(),
                root: self.root.clone(),
                detail: err.to_string(),
            },
            other => ConnectError::Handshake {
                addr: self.addr.clone(),
                detail: other.to_string(),
                transient: false,
            },
        }
    }

    /// A failed handshake's I/O error: tokio-rustls wraps the rustls verdict in it.
    pub fn handshake_error(&self, err: &std::io::Error) -> ConnectError {
        match err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            Some(tls) => self.tls_error(tls),
            None => ConnectError::Handshake {
                addr: self.addr.clone(),
                detail: err.to_string(),
                transient: true,
            },
        }
    }

    pub fn refused(&self) -> ConnectError {
        ConnectError::TlsRefused {
            addr: self.addr.clone(),
            why: self.why_required.clone(),
        }
    }

    /// A server error at startup: a pg_hba.conf rejection of a plaintext attempt means
    /// the server wants TLS.
    pub fn needs_tls(&self, code: &str, message: &str) -> bool {
        self.plaintext && code == "28000" && message.contains("no encryption")
    }

    /// Classify a tokio-postgres connect error.
    pub fn pg_error(&self, err: tokio_postgres::Error) -> ConnectError {
        if let Some(verdict) = rustls_in(&err) {
            return self.tls_error(verdict);
        }
        if let Some(db) = err.as_db_error() {
            if self.needs_tls(db.code().code(), db.message()) {
                return ConnectError::TlsRequiredByServer {
                    addr: self.addr.clone(),
                };
            }
        }
        let refused = err
            .source()
            .is_some_and(|s| s.to_string() == "server does not support TLS");
        if refused {
            return self.refused();
        }
        if let Some(io) = io_in(&err) {
            if err
                .to_string()
                .starts_with("error performing TLS handshake")
            {
                return self.handshake_error(io);
            }
        }
        ConnectError::Postgres {
            addr: self.addr.clone(),
            source: err,
        }
    }
}

/// The rustls error somewhere in `err`'s chain (io::Error hides its payload from
/// `source()`, so look inside those too).
fn rustls_in(err: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        next = e.source();
    }
    None
}

fn io_in(err: &tokio_postgres::Error) -> Option<&std::io::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt() -> Attempt {
        Attempt {
            addr: "db.example.com:5432".into(),
            host: "db.example.com".into(),
            root: "/etc/ca.pem".into(),
            why_required: "sslmode=verify-full".into(),
            plaintext: false,
        }
    }

    #[test]
    fn names_certificate_verdicts() {
        use rustls::CertificateError as C;
        let a = attempt();
        let e = a.tls_error(&rustls::Error::InvalidCertificate(C::NotValidForName));
        assert!(matches!(e, ConnectError::HostnameMismatch { .. }));
        assert!(e.to_string().contains("db.example.com:5432"), "{e}");
        assert!(e.to_string().contains("verify-ca"), "{e}");
        let e = a.tls_error(&rustls::Error::InvalidCertificate(C::UnknownIssuer));
        assert!(matches!(e, ConnectError::Untrusted { .. }));
        assert!(e.to_string().contains("sslrootcert=/etc/ca.pem"), "{e}");
        let e = a.tls_error(&rustls::Error::InvalidCertificate(C::Expired));
        assert!(matches!(e, ConnectError::Untrusted { .. }));
        let e = a.tls_error(&rustls::Error::NoCertificatesPresented);
        assert!(matches!(
            e,
            ConnectError::Handshake {
                transient: false,
                ..
            }
        ));
        assert!(!e.is_transient());
    }

    #[test]
    fn looks_inside_io_errors() {
        let a = attempt();
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(matches!(
            a.handshake_error(&io),
            ConnectError::Untrusted { .. }
        ));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let e = a.handshake_error(&reset);
        assert!(e.is_transient(), "{e}");
    }

    #[test]
    fn a_hba_rejection_of_plaintext_means_the_server_wants_tls() {
        let mut a = attempt();
        let msg =
            "no pg_hba.conf entry for host \"10.0.0.1\", user \"u\", database \"d\", no encryption";
        assert!(!a.needs_tls("28000", msg));
        a.plaintext = true;
        assert!(a.needs_tls("28000", msg));
        assert!(!a.needs_tls("28P01", msg));
    }
}
