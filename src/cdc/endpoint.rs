//! Where the subscriber connects: the `pubsub_endpoint` setting checked and turned into a
//! lazily connecting gRPC channel. `https://` uses rustls with the operating system's root
//! certificates; plain `http://` is accepted only for a loopback host (the emulator), so a
//! token is never sent in clear text over a network.

use std::net::IpAddr;
use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use url::Url;

/// The settings key named in endpoint errors.
pub const ENDPOINT_KEY: &str = "pubsub_endpoint";

/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// HTTP/2 pings keep a quiet subscription's connection known to be alive between keepalives.
const HTTP2_KEEPALIVE: Duration = Duration::from_secs(30);

/// Why an endpoint is unusable; the message names [`ENDPOINT_KEY`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ENDPOINT_KEY} {endpoint:?}: {reason}")]
pub struct EndpointError {
    pub endpoint: String,
    pub reason: String,
}

impl crate::error_class::Classify for EndpointError {
    fn class(&self) -> crate::error_class::ErrorClass {
        crate::error_class::ErrorClass::Permanent
    }
}

/// A channel to `endpoint`; no connection is made until the first call.
pub fn channel(endpoint: &str) -> Result<Channel, EndpointError> {
    let fail = |reason: String| EndpointError {
        endpoint: endpoint.to_string(),
        reason,
    };
    let url = Url::parse(endpoint).map_err(|e| fail(format!("not a URL ({e})")))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| fail("has no host".into()))?
        .to_string();
    let builder = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| fail(format!("not a gRPC endpoint ({e})")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(HTTP2_KEEPALIVE)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    let builder = match url.scheme() {
        "https" => {
            let tls = ClientTlsConfig::new()
                .with_native_roots()
                .domain_name(host.trim_matches(['[', ']']));
            builder
                .tls_config(tls)
                .map_err(|e| fail(format!("cannot set up TLS ({e})")))?
        }
        "http" if is_loopback(&host) => builder,
        "http" => {
            return Err(fail(
                "plain http is only allowed to a loopback host; use https://".into(),
            ))
        }
        other => return Err(fail(format!("scheme {other:?} is not https or http"))),
    };
    Ok(builder.connect_lazy())
}

/// `localhost`, `127.0.0.0/8` or `::1`.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_matches(['[', ']']);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("127.1.2.3"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("10.0.0.1"));
        assert!(!is_loopback("api.pubsub.salesforce.com"));
    }

    #[tokio::test]
    async fn plain_http_is_accepted_on_loopback_only() {
        assert!(channel("http://127.0.0.1:7011").is_ok());
        assert!(channel("http://localhost:7011").is_ok());
        let err = channel("http://pubsub.example.com:7011").unwrap_err();
        assert!(err.to_string().contains("pubsub_endpoint"), "{err}");
        assert!(err.to_string().contains("loopback"), "{err}");
    }

    #[tokio::test]
    async fn https_and_bad_endpoints() {
        // Native roots may be missing in a minimal container; either way no panic, and an
        // error names the key.
        match channel("https://api.pubsub.salesforce.com:7443") {
            Ok(_) => {}
            Err(e) => assert!(e.to_string().contains("pubsub_endpoint"), "{e}"),
        }
        for bad in ["", "api.pubsub.salesforce.com:7443", "ftp://x:1", "http://"] {
            let err = channel(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("pubsub_endpoint"),
                "{bad}: {err}"
            );
        }
    }
}
