//! OAuth token endpoint of the Salesforce emulator over real HTTP: JWT bearer (RS256 key pair
//! made with `openssl` at test time), password, client credentials, refresh token, errors,
//! identity URL, revocation and token expiry.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pgforce_emulator::config::{
    ConnectedAppConfig, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME,
};
use pgforce_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

const JWT_CLIENT: &str = "jwt-client";

/// An RSA key pair as (private PEM, public PEM).
struct KeyPair {
    private: String,
    public: String,
}

/// Generates an RSA key pair with the `openssl` binary.
fn generate_keys() -> KeyPair {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("key.pem");
    let pubkey = dir.path().join("pub.pem");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .status()
        .expect("openssl runs")
        .success();
    assert!(ok, "openssl genpkey");
    let ok = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&pubkey)
        .status()
        .expect("openssl runs")
        .success();
    assert!(ok, "openssl pkey -pubout");
    KeyPair {
        private: std::fs::read_to_string(&key).expect("private key"),
        public: std::fs::read_to_string(&pubkey).expect("public key"),
    }
}

/// The connected app's key pair and an unrelated one (for bad-signature tests).
fn keys() -> &'static (KeyPair, KeyPair) {
    static KEYS: OnceLock<(KeyPair, KeyPair)> = OnceLock::new();
    KEYS.get_or_init(|| (generate_keys(), generate_keys()))
}

struct Env {
    emu: EmulatorHandle,
    http: Client,
}

impl Env {
    async fn new() -> Env {
        let mut config = EmulatorConfig::default();
        config.connected_apps.push(ConnectedAppConfig {
            name: "jwt-app".into(),
            client_id: JWT_CLIENT.into(),
            client_secret: Some("jwt-secret".into()),
            jwt_public_keys: vec![keys().0.public.clone()],
            run_as: None,
        });
        config.token_lifetime_secs = 600;
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let emu = Emulator::start(config, addr)
            .await
            .expect("emulator starts");
        Env {
            emu,
            http: Client::new(),
        }
    }

    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/services/oauth2/token", self.emu.base_url()))
            .form(form)
            .send()
            .await
            .expect("response");
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn api_status(&self, token: &str) -> StatusCode {
        self.http
            .get(format!(
                "{}/services/data/v60.0/sobjects",
                self.emu.base_url()
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("response")
            .status()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An RS256 assertion signed with `private_pem`.
fn assertion(private_pem: &str, claims: Value) -> String {
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("private key parses");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).expect("jwt encodes")
}

fn claims(aud: &str, sub: &str, exp: i64) -> Value {
    json!({"iss": JWT_CLIENT, "sub": sub, "aud": aud, "exp": exp})
}

const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn assert_oauth_error(status: StatusCode, body: &Value, error: &str, description: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body,
        &json!({"error": error, "error_description": description})
    );
}

#[tokio::test]
async fn jwt_bearer_issues_a_working_token() {
    let env = Env::new().await;
    let jwt = assertion(
        &keys().0.private,
        claims("https://login.salesforce.com", DEMO_USERNAME, now() + 180),
    );
    let (s, v) = env
        .token(&[("grant_type", JWT_GRANT), ("assertion", &jwt)])
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let state = env.emu.state();
    let access = v["access_token"].as_str().unwrap();
    assert!(access.starts_with(&format!("{}!", state.org_id.as_15())));
    assert_eq!(v["instance_url"], env.emu.base_url());
    assert_eq!(v["token_type"], "Bearer");
    assert!(v.get("refresh_token").is_none());
    let user = state.default_user().unwrap().id;
    let id_url = format!("{}/id/{}/{}", env.emu.base_url(), state.org_id, user);
    assert_eq!(v["id"], id_url);
    assert_eq!(state.org_id.as_str().len(), 18);
    let issued_at = v["issued_at"].as_str().unwrap();
    let ms: i64 = issued_at.parse().unwrap();
    assert!((ms / 1000 - now()).abs() < 60);
    let mut mac = Hmac::<Sha256>::new_from_slice(b"jwt-secret").unwrap();
    mac.update(format!("{id_url}{issued_at}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(v["signature"], expected);
    assert_eq!(env.api_status(access).await, StatusCode::OK);

    let identity = env
        .http
        .get(&id_url)
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(identity.status(), StatusCode::OK);
    let identity: Value = identity.json().await.unwrap();
    assert_eq!(identity["username"], DEMO_USERNAME);
    assert_eq!(identity["user_id"], user.to_string());

    let sandbox = assertion(
        &keys().0.private,
        claims("https://test.salesforce.com", DEMO_USERNAME, now() + 60),
    );
    assert_eq!(
        env.token(&[("grant_type", JWT_GRANT), ("assertion", &sandbox)])
            .await
            .0,
        StatusCode::OK
    );
    let own = assertion(
        &keys().0.private,
        claims(env.emu.base_url(), DEMO_USERNAME, now() + 60),
    );
    assert_eq!(
        env.token(&[("grant_type", JWT_GRANT), ("assertion", &own)])
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn jwt_bearer_errors() {
    let env = Env::new().await;
    let login = "https://login.salesforce.com";
    let cases = [
        (
            assertion(&keys().1.private, claims(login, DEMO_USERNAME, now() + 60)),
            "invalid_grant",
            "invalid assertion",
        ),
        (
            assertion(
                &keys().0.private,
                claims("https://acme.my.salesforce.com", DEMO_USERNAME, now() + 60),
            ),
            "invalid_grant",
            "audience is invalid",
        ),
        (
            assertion(&keys().0.private, claims(login, DEMO_USERNAME, now() - 10)),
            "invalid_grant",
            "expired authorization code",
        ),
        (
            assertion(
                &keys().0.private,
                claims(login, "nobody@example.com", now() + 60),
            ),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        (
            assertion(
                &keys().0.private,
                json!({"iss": "unknown", "sub": DEMO_USERNAME, "aud": login, "exp": now() + 60}),
            ),
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            "not.a.jwt".to_string(),
            "invalid_grant",
            "invalid assertion",
        ),
        (String::new(), "invalid_grant", "invalid assertion"),
    ];
    for (jwt, error, description) in cases {
        let (s, v) = env
            .token(&[("grant_type", JWT_GRANT), ("assertion", &jwt)])
            .await;
        assert_oauth_error(s, &v, error, description);
    }
    let (s, v) = env.token(&[("grant_type", JWT_GRANT)]).await;
    assert_oauth_error(s, &v, "invalid_grant", "invalid assertion");
}

#[tokio::test]
async fn password_grant() {
    let env = Env::new().await;
    let base = [
        ("grant_type", "password"),
        ("client_id", DEMO_CLIENT_ID),
        ("client_secret", DEMO_CLIENT_SECRET),
        ("username", DEMO_USERNAME),
    ];
    let mut ok = base.to_vec();
    ok.push(("password", DEMO_PASSWORD));
    let (s, v) = env.token(&ok).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        env.api_status(v["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );

    let mut bad = base.to_vec();
    bad.push(("password", "wrong"));
    let (s, v) = env.token(&bad).await;
    assert_oauth_error(s, &v, "invalid_grant", "authentication failure");

    let (s, v) = env
        .token(&[
            ("grant_type", "password"),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", "nope"),
            ("username", DEMO_USERNAME),
            ("password", DEMO_PASSWORD),
        ])
        .await;
    assert_oauth_error(s, &v, "invalid_client", "invalid client credentials");
    let (s, v) = env
        .token(&[
            ("grant_type", "password"),
            ("client_id", "who"),
            ("client_secret", "x"),
            ("username", DEMO_USERNAME),
            ("password", DEMO_PASSWORD),
        ])
        .await;
    assert_oauth_error(s, &v, "invalid_client_id", "client identifier invalid");
}

#[tokio::test]
async fn client_credentials_in_body_or_basic_auth() {
    let env = Env::new().await;
    let (s, v) = env
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
        ])
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v.get("refresh_token").is_none());
    assert!(v["signature"].is_string());
    assert_eq!(v["api_instance_url"], env.emu.base_url());

    let resp = env
        .http
        .post(format!("{}/services/oauth2/token", env.emu.base_url()))
        .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let (s, v) = env
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", "wrong"),
        ])
        .await;
    assert_oauth_error(s, &v, "invalid_client", "invalid client credentials");
    let (s, v) = env
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEMO_CLIENT_ID),
        ])
        .await;
    assert_oauth_error(s, &v, "invalid_client", "invalid client credentials");
}

#[tokio::test]
async fn refresh_token_grant() {
    let env = Env::new().await;
    let refresh = env
        .emu
        .issue_refresh_token(DEMO_USERNAME, DEMO_CLIENT_ID)
        .unwrap();
    let (s, v) = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", DEMO_CLIENT_ID),
            ("refresh_token", &refresh),
        ])
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        env.api_status(v["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
    let (s, v) = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
            ("refresh_token", "bogus"),
        ])
        .await;
    assert_oauth_error(s, &v, "invalid_grant", "expired access/refresh token");
    let (s, v) = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", JWT_CLIENT),
            ("refresh_token", &refresh),
        ])
        .await;
    assert_oauth_error(s, &v, "invalid_grant", "expired access/refresh token");
}

#[tokio::test]
async fn grant_type_errors() {
    let env = Env::new().await;
    let (s, v) = env.token(&[("grant_type", "not_a_grant_type")]).await;
    assert_oauth_error(s, &v, "unsupported_grant_type", "grant type not supported");
    let (s, v) = env.token(&[("username", "x")]).await;
    assert_oauth_error(s, &v, "invalid_request", "grant type is missing");
    let resp = env
        .http
        .post(format!("{}/services/oauth2/token", env.emu.base_url()))
        .body("%%%garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tokens_expire_and_can_be_revoked() {
    let env = Env::new().await;
    let token = env.emu.issue_default_token().unwrap();
    assert_eq!(env.api_status(&token).await, StatusCode::OK);
    env.emu.advance_clock(chrono::Duration::seconds(601));
    let resp = env
        .http
        .get(format!(
            "{}/services/data/v60.0/sobjects",
            env.emu.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v[0]["errorCode"], "INVALID_SESSION_ID");
    assert_eq!(v[0]["message"], "Session expired or invalid");

    let token = env.emu.issue_default_token().unwrap();
    let resp = env
        .http
        .post(format!("{}/services/oauth2/revoke", env.emu.base_url()))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(env.api_status(&token).await, StatusCode::UNAUTHORIZED);

    let token = env.emu.issue_default_token().unwrap();
    env.emu.expire_tokens();
    assert_eq!(env.api_status(&token).await, StatusCode::UNAUTHORIZED);
}
