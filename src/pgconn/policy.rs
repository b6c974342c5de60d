//! When a connection must, may or must not use TLS, and how the server's certificate is
//! checked. Pure decisions, no I/O.
//!
//! The rule: TLS for anything not on loopback. A TCP host that is not `localhost` or a
//! loopback address never gets a plaintext connection unless the connection string says
//! `sslmode=disable` itself; without `sslmode` (or with `prefer`) such a host gets TLS or
//! an error. Loopback hosts keep libpq's `prefer` default (TLS when the server offers it).
//! Unix sockets never use TLS (Postgres does not offer it there).

use std::net::IpAddr;

use tokio_postgres::config::Host;

use super::conninfo::SslMode;

/// What kind of path the connection takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// A Unix-domain socket.
    UnixSocket,
    /// TCP to `localhost` or a loopback address.
    Loopback,
    /// TCP to anything else.
    Remote,
}

/// Whether TLS is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// No SSLRequest; plaintext.
    Plain,
    /// SSLRequest; plaintext if the server declines.
    Optional,
    /// SSLRequest; an error if the server declines.
    Required,
}

/// How the server's certificate is checked once TLS is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Encryption only: any certificate (no protection against an active attacker).
    None,
    /// The chain must lead to a CA in `sslrootcert`; the host name is not checked.
    Ca,
    /// The chain must lead to a CA in `sslrootcert` and the certificate must name the host.
    Full,
}

/// The route of a whole config: the least trusted of its hosts (and `hostaddr`s).
pub fn route_of(config: &tokio_postgres::Config) -> Route {
    let hosts = config.get_hosts().iter().map(|h| match h {
        Host::Tcp(name) => route_of_host(name),
        Host::Unix(_) => Route::UnixSocket,
    });
    let addrs = config.get_hostaddrs().iter().map(|a| route_of_ip(*a));
    hosts.chain(addrs).max().unwrap_or(Route::UnixSocket)
}

/// `localhost` and loopback addresses are [`Route::Loopback`]; every other name is remote.
pub fn route_of_host(host: &str) -> Route {
    if host.eq_ignore_ascii_case("localhost") {
        return Route::Loopback;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => route_of_ip(ip),
        Err(_) => Route::Remote,
    }
}

fn route_of_ip(ip: IpAddr) -> Route {
    if ip.is_loopback() {
        Route::Loopback
    } else {
        Route::Remote
    }
}

/// Whether to negotiate TLS, or why the combination is refused.
pub fn negotiation(mode: Option<SslMode>, route: Route) -> Result<Negotiation, String> {
    use SslMode::*;
    match (route, mode) {
        (_, Some(Disable)) => Ok(Negotiation::Plain),
        (Route::UnixSocket, None | Some(Prefer)) => Ok(Negotiation::Plain),
        (Route::UnixSocket, Some(m @ (Require | VerifyCa | VerifyFull))) => Err(format!(
            "sslmode={} cannot be used over a Unix socket (Postgres offers no TLS there): \
             connect over TCP (host=name or address) or drop sslmode",
            m.as_str()
        )),
        (Route::Loopback, None | Some(Prefer)) => Ok(Negotiation::Optional),
        (Route::Remote, None | Some(Prefer)) => Ok(Negotiation::Required),
        (_, Some(Require | VerifyCa | VerifyFull)) => Ok(Negotiation::Required),
    }
}

/// How to check the certificate: `verify-*` need a CA file; with a CA file, `require` and
/// `prefer` check the chain too (as libpq does).
pub fn verification(mode: Option<SslMode>, has_root_cert: bool) -> Result<Verification, String> {
    match (mode, has_root_cert) {
        (Some(m @ (SslMode::VerifyCa | SslMode::VerifyFull)), false) => Err(format!(
            "sslmode={} needs sslrootcert=/path/to/ca.pem: the PEM file of the CA that signed \
             the server's certificate",
            m.as_str()
        )),
        (Some(SslMode::VerifyFull), true) => Ok(Verification::Full),
        (_, true) => Ok(Verification::Ca),
        (_, false) => Ok(Verification::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn names_loopback_routes() {
        assert_eq!(route_of_host("localhost"), Route::Loopback);
        assert_eq!(route_of_host("LOCALHOST"), Route::Loopback);
        assert_eq!(route_of_host("127.0.0.1"), Route::Loopback);
        assert_eq!(route_of_host("127.10.0.1"), Route::Loopback);
        assert_eq!(route_of_host("::1"), Route::Loopback);
        assert_eq!(route_of_host("[::1]"), Route::Loopback);
        assert_eq!(route_of_host("10.0.0.5"), Route::Remote);
        assert_eq!(route_of_host("db.example.com"), Route::Remote);
        assert_eq!(route_of_host("localhost.example.com"), Route::Remote);
    }

    #[test]
    fn a_config_is_as_remote_as_its_least_local_host() {
        let route = |s: &str| route_of(&tokio_postgres::Config::from_str(s).unwrap());
        assert_eq!(route("host=/tmp"), Route::UnixSocket);
        assert_eq!(route("host=/tmp,localhost"), Route::Loopback);
        assert_eq!(route("host=localhost,db.example.com"), Route::Remote);
        assert_eq!(route("host=localhost hostaddr=10.1.2.3"), Route::Remote);
        assert_eq!(route("host=db.internal hostaddr=127.0.0.1"), Route::Remote);
    }

    #[test]
    fn never_plaintext_off_loopback_unless_disabled_explicitly() {
        use Negotiation::*;
        assert_eq!(negotiation(None, Route::Remote), Ok(Required));
        assert_eq!(
            negotiation(Some(SslMode::Prefer), Route::Remote),
            Ok(Required)
        );
        assert_eq!(
            negotiation(Some(SslMode::Disable), Route::Remote),
            Ok(Plain)
        );
        assert_eq!(negotiation(None, Route::Loopback), Ok(Optional));
        assert_eq!(
            negotiation(Some(SslMode::Require), Route::Loopback),
            Ok(Required)
        );
        assert_eq!(negotiation(None, Route::UnixSocket), Ok(Plain));
        let err = negotiation(Some(SslMode::VerifyFull), Route::UnixSocket).unwrap_err();
        assert!(err.contains("Unix socket"), "{err}");
    }

    #[test]
    fn verify_modes_need_a_ca_file() {
        let err = verification(Some(SslMode::VerifyFull), false).unwrap_err();
        assert!(err.contains("sslrootcert"), "{err}");
        assert!(verification(Some(SslMode::VerifyCa), false).is_err());
        assert_eq!(
            verification(Some(SslMode::VerifyFull), true),
            Ok(Verification::Full)
        );
        assert_eq!(
            verification(Some(SslMode::VerifyCa), true),
            Ok(Verification::Ca)
        );
        assert_eq!(
            verification(Some(SslMode::Require), true),
            Ok(Verification::Ca)
        );
        assert_eq!(
            verification(Some(SslMode::Require), false),
            Ok(Verification::None)
        );
        assert_eq!(verification(None, false), Ok(Verification::None));
    }
}
