//! Connection strings: pgforce's TLS keys (`sslmode`, `sslrootcert`) are taken out of a
//! libpq conninfo (`host=... sslmode=verify-full`) or a `postgres://` URL
//! (`?sslmode=verify-full`) before the rest is handed to [`tokio_postgres::Config`], which
//! knows only `disable`/`prefer`/`require` and no CA file.
//!
//! Nothing here echoes a value in an error: a conninfo may hold a password.

use std::path::PathBuf;
use std::str::FromStr;

/// How hard a connection insists on TLS (libpq's `sslmode`, without `allow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it; plaintext fallback only on loopback and Unix sockets.
    Prefer,
    /// TLS always; the certificate is checked against `sslrootcert` when one is given.
    Require,
    /// TLS always; the certificate must chain to `sslrootcert` (any host name).
    VerifyCa,
    /// TLS always; the certificate must chain to `sslrootcert` and name the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            "allow" => Err(
                "sslmode=allow is not supported (it tries plaintext first): use \
                 prefer, require, verify-ca or verify-full"
                    .into(),
            ),
            _ => Err(
                "sslmode must be one of disable, prefer, require, verify-ca, verify-full".into(),
            ),
        }
    }

    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS keys of a connection string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsKeys {
    /// `sslmode`, when given.
    pub mode: Option<SslMode>,
    /// `sslrootcert`: a PEM file of CA certificates.
    pub root_cert: Option<PathBuf>,
}

/// Keys libpq knows that pgforce refuses with a reason instead of tokio-postgres' bare
/// "unknown option".
const UNSUPPORTED: [(&str, &str); 6] = [
    (
        "sslcert",
        "client certificates are not supported: authenticate with a password (scram-sha-256)",
    ),
    (
        "sslkey",
        "client certificates are not supported: authenticate with a password (scram-sha-256)",
    ),
    (
        "sslpassword",
        "client certificates are not supported: authenticate with a password (scram-sha-256)",
    ),
    ("sslcrl", "certificate revocation lists are not supported"),
    (
        "sslcrldir",
        "certificate revocation lists are not supported",
    ),
    ("requiressl", "use sslmode=require instead"),
];

/// Split `conninfo` into the text tokio-postgres parses and pgforce's TLS keys.
pub fn split(conninfo: &str) -> Result<(String, TlsKeys), String> {
    let trimmed = conninfo.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        split_url(trimmed)
    } else {
        split_key_values(conninfo)
    }
}

/// Parse a connection string into a tokio-postgres config and the TLS keys.
pub fn parse(conninfo: &str) -> Result<(tokio_postgres::Config, TlsKeys), String> {
    let (rest, keys) = split(conninfo)?;
    let config = tokio_postgres::Config::from_str(&rest).map_err(|e| e.to_string())?;
    Ok((config, keys))
}

/// Record one TLS key; `Ok(false)` when `key` is not one of ours.
fn take_key(keys: &mut TlsKeys, key: &str, value: &str) -> Result<bool, String> {
    match key {
        "sslmode" => keys.mode = Some(SslMode::parse(value)?),
        "sslrootcert" if value.is_empty() => return Err("sslrootcert is empty".into()),
        "sslrootcert" => keys.root_cert = Some(PathBuf::from(value)),
        _ => {
            if let Some((name, why)) = UNSUPPORTED.iter().find(|(name, _)| *name == key) {
                return Err(format!("{name}: {why}"));
            }
            return Ok(false);
        }
    }
    Ok(true)
}

fn split_url(url: &str) -> Result<(String, TlsKeys), String> {
    let mut keys = TlsKeys::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), keys));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k)?;
        let value = percent_decode(v)?;
        if !take_key(&mut keys, &key, &value)? {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, keys))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("the URL has a malformed percent escape")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URL's query is not valid UTF-8 once decoded".into())
}

/// One `key=value` pair of a libpq conninfo, value unquoted and unescaped.
fn key_values(conninfo: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = conninfo.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err("the connection string has a key without `=`".into());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.push(chars.next().ok_or("unterminated quoted value")?),
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quoted value for {key:?}")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

fn split_key_values(conninfo: &str) -> Result<(String, TlsKeys), String> {
    let mut keys = TlsKeys::default();
    let mut rest = String::new();
    for (key, value) in key_values(conninfo)? {
        if take_key(&mut keys, &key, &value)? {
            continue;
        }
        if !rest.is_empty() {
            rest.push(' ');
        }
        rest.push_str(&key);
        rest.push_str("='");
        for c in value.chars() {
            if c == '\'' || c == '\\' {
                rest.push('\\');
            }
            rest.push(c);
        }
        rest.push('\'');
    }
    Ok((rest, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_tls_keys_out_of_key_value_strings() {
        let (rest, keys) = split(
            "host=db.example.com  user = 'al ice' password='p\\'w' sslmode=verify-full sslrootcert=/etc/ca.pem",
        )
        .unwrap();
        assert_eq!(keys.mode, Some(SslMode::VerifyFull));
        assert_eq!(keys.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        let config = tokio_postgres::Config::from_str(&rest).unwrap();
        assert_eq!(config.get_user(), Some("al ice"));
        assert_eq!(config.get_password(), Some(&b"p'w"[..]));
        assert!(!rest.contains("sslmode"));
    }

    #[test]
    fn takes_tls_keys_out_of_urls() {
        let (config, keys) = parse(
            "postgres://u:pw@db.example.com:6543/app?sslmode=verify-ca&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(keys.mode, Some(SslMode::VerifyCa));
        assert_eq!(keys.root_cert, Some(PathBuf::from("/tmp/ca.pem")));
        assert_eq!(config.get_application_name(), Some("x"));
        assert_eq!(config.get_ports(), &[6543]);
        let (rest, keys) = split("postgresql://u@h/db?sslmode=require").unwrap();
        assert_eq!(rest, "postgresql://u@h/db");
        assert_eq!(keys.mode, Some(SslMode::Require));
        assert_eq!(split("postgres://u@h/db").unwrap().1, TlsKeys::default());
    }

    #[test]
    fn refuses_bad_tls_keys_without_echoing_the_string() {
        let err = split("host=h password=hunter2 sslmode=sometimes").unwrap_err();
        assert!(err.contains("sslmode must be one of"), "{err}");
        assert!(!err.contains("hunter2"));
        assert!(split("host=h sslmode=allow").unwrap_err().contains("allow"));
        assert!(split("host=h sslcert=/c.pem")
            .unwrap_err()
            .contains("client certificates"));
        assert!(split("postgres://h/db?sslkey=/k.pem").is_err());
        assert!(split("host=h sslrootcert=''").is_err());
        assert!(split("host=h password='hunter2")
            .unwrap_err()
            .contains("unterminated"));
        assert!(!split("host=h password='hunter2")
            .unwrap_err()
            .contains("hunter2"));
        assert!(split("postgres://h/db?sslmode=%zz").is_err());
        assert!(split("host").is_err());
    }

    #[test]
    fn keeps_unknown_keys_for_tokio_postgres_to_judge() {
        let (rest, keys) = split("host=h connect_timeout=5 target_session_attrs=any").unwrap();
        assert_eq!(keys, TlsKeys::default());
        assert!(tokio_postgres::Config::from_str(&rest).is_ok());
        assert!(parse("host=h bogus=1").is_err());
    }
}
