//! OAuth 2.0 for Salesforce: the [`Credentials`] pgforce can log in with, the token request
//! for each grant (JWT bearer, refresh token, client credentials, username-password), the
//! token response, and OAuth errors turned into [`SalesforceError::Auth`] with a fix-it hint.
//!
//! Secrets (private key, client secret, refresh token, password, access token) live in
//! [`SecretString`] and are exposed only while building the form body of the token request.
//! Every URL a token is sent to must be `https://`, except loopback hosts (tests, emulator).

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::error::{snippet, Result, SalesforceError};

/// Production login host; a valid JWT audience.
pub const LOGIN_URL: &str = "https://login.salesforce.com";
/// Sandbox login host; a valid JWT audience.
pub const TEST_LOGIN_URL: &str = "https://test.salesforce.com";
/// How far in the future the JWT assertion expires (simple-salesforce uses the same).
const JWT_LIFETIME: Duration = Duration::from_secs(180);

/// How pgforce logs in to Salesforce. Construct a variant directly or use the helpers.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// OAuth 2.0 JWT bearer flow: a connected app with an uploaded certificate; no secret and
    /// no refresh token. A new token is minted whenever the session expires.
    JwtBearer {
        /// The connected app's consumer key (`iss`).
        client_id: String,
        /// The Salesforce username the token is for (`sub`).
        username: String,
        /// PEM RSA private key (PKCS#1 or PKCS#8) matching the app's certificate.
        private_key_pem: SecretString,
        /// Where the token request goes: login/test host or the org's My Domain URL.
        login_url: String,
        /// The JWT `aud`: `https://login.salesforce.com`, `https://test.salesforce.com`, or an
        /// Experience Cloud site URL (never the My Domain URL).
        audience: String,
    },
    /// OAuth 2.0 refresh-token flow.
    RefreshToken {
        /// The connected app's consumer key.
        client_id: String,
        /// The consumer secret, if the app requires it for refresh.
        client_secret: Option<SecretString>,
        /// The refresh token obtained from an earlier web-server flow.
        refresh_token: SecretString,
        /// Where the token request goes: login/test host or the org's My Domain URL.
        login_url: String,
    },
    /// OAuth 2.0 client-credentials flow; runs as the app's "Run As" user.
    ClientCredentials {
        /// The connected app's consumer key.
        client_id: String,
        /// The consumer secret.
        client_secret: SecretString,
        /// The org's My Domain URL, e.g. `https://acme.my.salesforce.com` (login/test refuse
        /// this grant).
        my_domain_url: String,
    },
    /// OAuth 2.0 username-password flow (blocked by default in orgs since Summer '23).
    UsernamePassword {
        /// The connected app's consumer key.
        client_id: String,
        /// The consumer secret.
        client_secret: SecretString,
        /// The Salesforce username.
        username: String,
        /// Password with the security token appended.
        password: SecretString,
        /// Where the token request goes: login/test host or the org's My Domain URL.
        login_url: String,
    },
}

impl Credentials {
    /// JWT bearer credentials sending the token request to `login_url`. The audience is
    /// `login_url` when that is the login or test host, else `https://login.salesforce.com`
    /// (set the `audience` field yourself for a sandbox My Domain).
    pub fn jwt_bearer(
        client_id: impl Into<String>,
        username: impl Into<String>,
        private_key_pem: SecretString,
        login_url: impl Into<String>,
    ) -> Self {
        let login_url = login_url.into();
        let trimmed = login_url.trim_end_matches('/');
        let audience = if trimmed == LOGIN_URL || trimmed == TEST_LOGIN_URL {
            trimmed.to_string()
        } else {
            LOGIN_URL.to_string()
        };
        Self::JwtBearer {
            client_id: client_id.into(),
            username: username.into(),
            private_key_pem,
            login_url,
            audience,
        }
    }

    /// The OAuth grant name, for logs and errors.
    pub fn grant_name(&self) -> &'static str {
        match self {
            Self::JwtBearer { .. } => "jwt-bearer",
            Self::RefreshToken { .. } => "refresh_token",
            Self::ClientCredentials { .. } => "client_credentials",
            Self::UsernamePassword { .. } => "password",
        }
    }

    /// The base URL the token request is sent to.
    fn token_base(&self) -> &str {
        match self {
            Self::JwtBearer { login_url, .. }
            | Self::RefreshToken { login_url, .. }
            | Self::UsernamePassword { login_url, .. } => login_url,
            Self::ClientCredentials { my_domain_url, .. } => my_domain_url,
        }
    }
}

/// A live Salesforce session: the access token and where to send API calls.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The bearer token.
    pub(crate) access_token: SecretString,
    /// The org's instance URL from the token response.
    pub instance_url: Url,
    /// The identity URL (`…/id/{orgId}/{userId}`), when sent.
    pub identity_url: Option<String>,
    /// Increments each time a new token is obtained; used to refresh only once per expiry.
    pub(crate) generation: u64,
}

/// Validated credentials, ready to request tokens.
pub(crate) struct Authenticator {
    /// The credentials as configured.
    credentials: Credentials,
    /// `{base}/services/oauth2/token`.
    token_url: Url,
    /// The parsed JWT signing key (JWT bearer only).
    jwt_key: Option<EncodingKey>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("grant", &self.credentials.grant_name())
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

/// The JWT bearer assertion's claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct JwtClaims {
    /// Consumer key.
    pub iss: String,
    /// Username.
    pub sub: String,
    /// Login host audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// The token endpoint's success body (§1.2); unknown fields are ignored.
#[derive(Deserialize)]
struct TokenResponse {
    /// The access token (moved into a `SecretString` right away).
    access_token: String,
    /// The org's instance URL.
    instance_url: String,
    /// The identity URL.
    #[serde(default)]
    id: Option<String>,
}

/// The token endpoint's error body (§1.3).
#[derive(Deserialize)]
struct OAuthErrorBody {
    /// e.g. `invalid_grant`.
    error: String,
    /// e.g. `audience is invalid`.
    #[serde(default)]
    error_description: String,
}

impl Authenticator {
    /// Validates the credentials: secure URLs, the right host for the grant, a parsable key.
    pub(crate) fn new(credentials: Credentials) -> Result<Self> {
        let base = require_secure_url(credentials.token_base(), "login URL")?;
        if let Credentials::ClientCredentials { .. } = &credentials {
            if is_generic_login_host(&base) {
                return Err(SalesforceError::config(
                    "the client-credentials grant must be sent to the org's My Domain URL \
                     (https://<domain>.my.salesforce.com), not login.salesforce.com or \
                     test.salesforce.com",
                ));
            }
        }
        let token_url = join_path(&base, "services/oauth2/token")?;
        let jwt_key = match &credentials {
            Credentials::JwtBearer {
                private_key_pem, ..
            } => Some(
                EncodingKey::from_rsa_pem(private_key_pem.expose_secret().as_bytes()).map_err(
                    |_| {
                        SalesforceError::config(
                            "the JWT private key is not a valid PEM RSA private key \
                             (expected -----BEGIN PRIVATE KEY----- or \
                             -----BEGIN RSA PRIVATE KEY-----)",
                        )
                    },
                )?,
            ),
            _ => None,
        };
        Ok(Self {
            credentials,
            token_url,
            jwt_key,
        })
    }

    /// The credentials this authenticator uses.
    pub(crate) fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Sends one token request. Returns the session, or an error classified for retry:
    /// transport failures and 5xx are transient; OAuth errors are [`SalesforceError::Auth`].
    pub(crate) async fn request_token(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
        generation: u64,
    ) -> Result<Session> {
        let form = self.form()?;
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.expose_secret())).collect();
        let response = http
            .post(self.token_url.clone())
            .form(&pairs)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| super::client::transport_error(e, 1))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| super::client::transport_error(e, 1))?;
        if status == 200 {
            return parse_token_response(&body, generation);
        }
        Err(self.token_error(status, &body))
    }

    /// The form fields for this grant; values are secrets so nothing leaks via Debug.
    fn form(&self) -> Result<Vec<(&'static str, SecretString)>> {
        let s = |v: &str| SecretString::from(v.to_string());
        Ok(match &self.credentials {
            Credentials::JwtBearer { .. } => vec![
                (
                    "grant_type",
                    s("urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ),
                ("assertion", self.jwt_assertion()?),
            ],
            Credentials::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
                ..
            } => {
                let mut form = vec![
                    ("grant_type", s("refresh_token")),
                    ("refresh_token", refresh_token.clone()),
                    ("client_id", s(client_id)),
                ];
                if let Some(secret) = client_secret {
                    form.push(("client_secret", secret.clone()));
                }
                form
            }
            Credentials::ClientCredentials {
                client_id,
                client_secret,
                ..
            } => vec![
                ("grant_type", s("client_credentials")),
                ("client_id", s(client_id)),
                ("client_secret", client_secret.clone()),
            ],
            Credentials::UsernamePassword {
                client_id,
                client_secret,
                username,
                password,
                ..
            } => vec![
                ("grant_type", s("password")),
                ("client_id", s(client_id)),
                ("client_secret", client_secret.clone()),
                ("username", s(username)),
                ("password", password.clone()),
            ],
        })
    }

    /// Builds and signs the RS256 JWT assertion (iss, sub, aud, exp = now + 3 min).
    fn jwt_assertion(&self) -> Result<SecretString> {
        let (
            Credentials::JwtBearer {
                client_id,
                username,
                audience,
                ..
            },
            Some(key),
        ) = (&self.credentials, &self.jwt_key)
        else {
            return Err(SalesforceError::config(
                "JWT assertion requested without a JWT key",
            ));
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let claims = JwtClaims {
            iss: client_id.clone(),
            sub: username.clone(),
            aud: audience.trim_end_matches('/').to_string(),
            exp: (now + JWT_LIFETIME).as_secs(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
            .map_err(|e| SalesforceError::config(format!("could not sign the JWT: {e}")))?;
        Ok(SecretString::from(token))
    }

    /// Maps a non-200 token response to an error.
    fn token_error(&self, status: u16, body: &[u8]) -> SalesforceError {
        match serde_json::from_slice::<OAuthErrorBody>(body) {
            Ok(err) if status < 500 => SalesforceError::Auth {
                hint: oauth_hint(&err.error, &err.error_description, &self.credentials),
                error: err.error,
                description: err.error_description,
            },
            _ if status >= 500 || status == 408 || status == 429 => SalesforceError::Api {
                status,
                code: format!("HTTP_{status}"),
                message: format!("token endpoint: {}", snippet(body)),
                fields: Vec::new(),
            },
            _ => SalesforceError::Auth {
                error: format!("HTTP_{status}"),
                description: snippet(body),
                hint: format!(
                    "check the login URL ({}); it must point at a Salesforce login or My Domain host",
                    self.token_url
                ),
            },
        }
    }
}

/// Parses a 200 token response. The body holds the token, so it never appears in errors.
fn parse_token_response(body: &[u8], generation: u64) -> Result<Session> {
    let parsed: TokenResponse =
        serde_json::from_slice(body).map_err(|e| SalesforceError::BadResponse {
            context: "OAuth token response".into(),
            detail: format!(
                "not the documented JSON ({} bytes, {}); body withheld because it may hold a token",
                body.len(),
                e.classify_name()
            ),
        })?;
    let instance_url = require_secure_url(&parsed.instance_url, "instance_url from the token")?;
    Ok(Session {
        access_token: SecretString::from(parsed.access_token),
        instance_url,
        identity_url: parsed.id,
        generation,
    })
}

/// A short name for a serde_json error category (no input echo).
trait ClassifyName {
    /// e.g. "syntax error".
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "missing or mistyped field",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// What to change, for each documented OAuth error (§1.3).
pub(crate) fn oauth_hint(error: &str, description: &str, credentials: &Credentials) -> String {
    let d = description.to_ascii_lowercase();
    let hint = match (error, d.as_str()) {
        (_, d) if d.contains("audience is invalid") => {
            "set the audience to https://login.salesforce.com or https://test.salesforce.com \
             (not the My Domain URL)"
        }
        (_, d) if d.contains("expired authorization code") => {
            "the JWT was already expired when Salesforce saw it: check this machine's clock"
        }
        (_, d) if d.contains("hasn't approved this consumer") => {
            "pre-authorize the user for the connected app (Admin approved users are \
             pre-authorized, plus the user's profile or permission set) or approve it once"
        }
        (_, d) if d.contains("invalid assertion") => {
            "the JWT did not verify: upload the certificate matching the private key to the \
             connected app and check the consumer key and username"
        }
        (_, d) if d.contains("not supported on this domain") => {
            "send this grant to the org's My Domain URL (https://<domain>.my.salesforce.com)"
        }
        (_, d) if d.contains("expired access/refresh token") => {
            "the refresh token was revoked or expired: authorize the app again for a new one"
        }
        (_, d) if d.contains("authentication failure") => {
            "check the username, the password with the security token appended, that the user \
             is active, and that the org allows this login flow"
        }
        ("invalid_client", _) => "check the consumer secret (client_secret) of the connected app",
        ("invalid_client_id", _) => "check the consumer key (client_id) of the connected app",
        ("unsupported_grant_type", _) => {
            "enable this OAuth flow in the connected app (e.g. Enable Client Credentials Flow)"
        }
        _ => "check the connected app and the credentials in the pgforce configuration",
    };
    format!("{hint}; grant {}", credentials.grant_name())
}

/// Parses `url` and refuses anything but `https://`, except `http://` to a loopback host.
pub(crate) fn require_secure_url(url: &str, what: &str) -> Result<Url> {
    let parsed = Url::parse(url.trim())
        .map_err(|e| SalesforceError::config(format!("{what} {url:?} is not a valid URL: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback(&parsed) => Ok(parsed),
        "http" => Err(SalesforceError::config(format!(
            "{what} {url:?} uses plain http to a non-loopback host; use https:// \
             (http is only allowed for 127.0.0.1, ::1 and localhost)"
        ))),
        other => Err(SalesforceError::config(format!(
            "{what} {url:?} has scheme {other:?}; use https://"
        ))),
    }
}

/// True for `localhost` and loopback IP literals.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// True for login.salesforce.com / test.salesforce.com.
fn is_generic_login_host(url: &Url) -> bool {
    matches!(
        url.host_str(),
        Some("login.salesforce.com" | "test.salesforce.com")
    )
}

/// Joins a relative path onto a base URL, treating the base as a directory.
pub(crate) fn join_path(base: &Url, path: &str) -> Result<Url> {
    let mut dir = base.clone();
    if !dir.path().ends_with('/') {
        let p = format!("{}/", dir.path());
        dir.set_path(&p);
    }
    dir.join(path.trim_start_matches('/'))
        .map_err(|e| SalesforceError::config(format!("cannot build URL from {base}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_for_loopback() {
        assert!(require_secure_url("http://127.0.0.1:8080", "x").is_ok());
        assert!(require_secure_url("http://[::1]:8080", "x").is_ok());
        assert!(require_secure_url("http://localhost", "x").is_ok());
        assert!(require_secure_url("https://acme.my.salesforce.com", "x").is_ok());
        let err = require_secure_url("http://acme.my.salesforce.com", "x").unwrap_err();
        assert!(err.to_string().contains("use https://"), "{err}");
        assert!(require_secure_url("ftp://x", "x").is_err());
    }

    #[test]
    fn client_credentials_refuse_login_host() {
        let err = Authenticator::new(Credentials::ClientCredentials {
            client_id: "id".into(),
            client_secret: SecretString::from("s".to_string()),
            my_domain_url: LOGIN_URL.into(),
        })
        .unwrap_err();
        assert!(err.to_string().contains("My Domain"), "{err}");
    }

    #[test]
    fn audience_hint_names_the_fix() {
        let creds = Credentials::jwt_bearer(
            "id",
            "u",
            SecretString::from("k".to_string()),
            "https://acme.my.salesforce.com",
        );
        let hint = oauth_hint("invalid_grant", "audience is invalid", &creds);
        assert!(hint.contains("https://login.salesforce.com or https://test.salesforce.com"));
        match creds {
            Credentials::JwtBearer { audience, .. } => assert_eq!(audience, LOGIN_URL),
            _ => unreachable!(),
        }
    }

    #[test]
    fn join_keeps_base_path() {
        let base = Url::parse("http://127.0.0.1:1/prefix").unwrap();
        assert_eq!(
            join_path(&base, "/services/oauth2/token").unwrap().as_str(),
            "http://127.0.0.1:1/prefix/services/oauth2/token"
        );
    }
}
