//! rustls for Postgres: one client configuration per [`Verification`], the SSLRequest
//! exchange and handshake used by the hand-written replication connection, and the
//! `tls-server-end-point` channel binding data for SCRAM-SHA-256-PLUS.
//!
//! The crypto provider is aws-lc-rs (the one reqwest already links), chosen explicitly so
//! no process-wide default has to be installed.

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::error::{Attempt, ConnectError};
use super::policy::Verification;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls client configuration for `verification`, with the CAs of `root_cert`.
pub fn client_config(
    verification: Verification,
    root_cert: Option<&Path>,
) -> Result<Arc<ClientConfig>, ConnectError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Config(format!("TLS setup failed: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (verification, root_cert) {
        (Verification::None, _) | (_, None) => Arc::new(EncryptOnly(provider)),
        (Verification::Ca, Some(path)) => Arc::new(ChainOnly(webpki(path, provider)?)),
        (Verification::Full, Some(path)) => webpki(path, provider)?,
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A configuration that is never used to handshake (a plaintext connection still hands
/// tokio-postgres a connector).
pub fn unused_config() -> Result<Arc<ClientConfig>, ConnectError> {
    client_config(Verification::None, None)
}

fn webpki(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, ConnectError> {
    let roots = Arc::new(load_roots(path)?);
    WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| ConnectError::RootCert {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

/// Every certificate of a PEM file, as trust anchors; `system` (as in libpq 16) means the
/// operating system's trust store.
pub fn load_roots(path: &Path) -> Result<RootCertStore, ConnectError> {
    let err = |reason: String| ConnectError::RootCert {
        path: path.display().to_string(),
        reason,
    };
    if path == Path::new("system") {
        return system_roots().map_err(err);
    }
    let text = std::fs::read(path).map_err(|e| err(format!("cannot read it ({})", e.kind())))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&text) {
        let cert = cert.map_err(|e| err(format!("it is not valid PEM ({e})")))?;
        roots
            .add(cert)
            .map_err(|e| err(format!("it holds a certificate rustls cannot use ({e})")))?;
    }
    if roots.is_empty() {
        return Err(err("it holds no PEM certificate".into()));
    }
    Ok(roots)
}

/// The operating system's trust store (`SSL_CERT_FILE`/`SSL_CERT_DIR` override it).
fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(format!(
            "the system trust store holds no usable certificate{why}"
        ));
    }
    Ok(roots)
}

/// `sslmode=require` without a CA file: encrypted, any certificate accepted (libpq's
/// behaviour). Handshake signatures are still checked, so the peer holds the key of the
/// certificate it shows.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the full WebPKI check except the host name. rustls checks the chain
/// before the name, so a name mismatch means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as C;
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// What the SSLRequest exchange produced.
pub enum Negotiated {
    /// The server declined and plaintext is allowed.
    Plain(TcpStream),
    /// TLS is up; with the channel binding data when the certificate allows it.
    Tls {
        stream: Box<TlsStream<TcpStream>>,
        channel_binding: Option<Vec<u8>>,
    },
}

/// Send SSLRequest; on 'S' run the handshake for `host`, on 'N' fall back to plaintext when
/// `required` is false.
pub async fn negotiate(
    mut stream: TcpStream,
    config: Arc<ClientConfig>,
    required: bool,
    attempt: &Attempt,
) -> Result<Negotiated, ConnectError> {
    let io_err = |e: std::io::Error| ConnectError::Handshake {
        addr: attempt.addr.clone(),
        detail: format!("while sending the TLS request: {e}"),
        transient: true,
    };
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    stream.write_all(&buf).await.map_err(io_err)?;
    // Exactly one byte: anything the server sends after 'S' belongs to the handshake.
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).await.map_err(io_err)?;
    match answer[0] {
        b'S' => {}
        b'N' if !required => return Ok(Negotiated::Plain(stream)),
        b'N' => return Err(attempt.refused()),
        other => {
            return Err(ConnectError::Protocol {
                addr: attempt.addr.clone(),
                detail: format!("byte {other:#04x} instead of 'S' or 'N'"),
            })
        }
    }
    let name = ServerName::try_from(attempt.host.clone()).map_err(|e| {
        ConnectError::Config(format!(
            "{:?} cannot be checked against a certificate: {e}",
            attempt.host
        ))
    })?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| attempt.handshake_error(&e))?;
    let channel_binding = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|cert| server_end_point(cert.as_ref()));
    Ok(Negotiated::Tls {
        stream: Box::new(tls),
        channel_binding,
    })
}

/// RFC 5929 `tls-server-end-point`: the server certificate hashed with its signature's hash
/// (MD5 and SHA-1 become SHA-256). `None` for signatures without a single hash (Ed25519,
/// RSASSA-PSS), which then authenticate without channel binding.
pub fn server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    let oid = cert.signature_algorithm.oid.to_string();
    let hash = match oid.as_str() {
        // md5/sha1/sha256 with RSA; ecdsa with sha1/sha256
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.10045.4.1"
        | "1.2.840.10045.4.3.2" => sha2::Sha256::digest(cert_der).to_vec(),
        // sha384 with RSA, ecdsa with sha384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => sha2::Sha384::digest(cert_der).to_vec(),
        // sha512 with RSA, ecdsa with sha512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => sha2::Sha512::digest(cert_der).to_vec(),
        _ => return None,
    };
    Some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_missing_empty_and_garbage_ca_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = load_roots(&missing).unwrap_err();
        assert!(e.to_string().contains("cannot read it"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = load_roots(&empty).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let bad = dir.path().join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(load_roots(&bad).is_err());
        assert!(client_config(Verification::Full, Some(&missing)).is_err());
    }

    #[test]
    fn channel_binding_of_garbage_is_none() {
        assert_eq!(server_end_point(b""), None);
        assert_eq!(server_end_point(&[0x30, 0x82, 0xff]), None);
    }
}
