//! The OAuth web-server flow over real HTTP: authorize (auto-approved and through the
//! consent form), code redemption with refresh tokens, PKCE, revocation and userinfo.

use pgforce_emulator::config::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME};
use pgforce_emulator::{Emulator, EmulatorConfig, EmulatorHandle, OAuthWebConfig};
use reqwest::{Client, StatusCode};
use serde_json::Value;

const CALLBACK: &str = "http://localhost:1717/OauthRedirect";

struct Env {
    handle: EmulatorHandle,
    http: Client,
}

impl Env {
    async fn start(auto_approve: bool) -> Env {
        let config = EmulatorConfig {
            oauth_web: OAuthWebConfig {
                auto_approve,
                callback_urls: vec![CALLBACK.to_string()],
            },
            ..EmulatorConfig::default()
        };
        let handle = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("emulator starts");
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Env { handle, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url())
    }

    async fn authorize(&self, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut q = vec![
            ("response_type", "code"),
            ("client_id", DEMO_CLIENT_ID),
            ("redirect_uri", CALLBACK),
            ("state", "xyz 1"),
        ];
        q.extend_from_slice(extra);
        self.http
            .get(self.url("/services/oauth2/authorize"))
            .query(&q)
            .send()
            .await
            .unwrap()
    }

    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url("/services/oauth2/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn redeem(&self, code: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
            ("redirect_uri", CALLBACK),
        ])
        .await
    }

    async fn limits_status(&self, token: &str) -> StatusCode {
        self.http
            .get(self.url("/services/data/v60.0/limits"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// The query pairs of a redirect's `Location`, after checking it goes to the callback.
fn redirect_params(r: &reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "expected a redirect");
    let location = r.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(CALLBACK), "{location}");
    let url = url::Url::parse(location).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn auto_approved_code_gives_access_and_refresh_tokens_once() {
    let env = Env::start(true).await;
    let pairs = redirect_params(&env.authorize(&[]).await);
    assert_eq!(param(&pairs, "state"), Some("xyz 1"));
    let code = param(&pairs, "code").expect("code").to_string();

    let (status, body) = env.redeem(&code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().expect("refresh token");
    assert!(body["signature"].is_string());
    assert_eq!(env.limits_status(access).await, StatusCode::OK);

    let (status, body) = env.redeem(&code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let (status, body) = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let renewed = body["access_token"].as_str().unwrap();
    assert_eq!(env.limits_status(renewed).await, StatusCode::OK);
}

#[tokio::test]
async fn code_is_bound_to_redirect_uri_and_client_secret() {
    let env = Env::start(true).await;
    let code = |r: &reqwest::Response| param(&redirect_params(r), "code").unwrap().to_string();

    let c = code(&env.authorize(&[]).await);
    let (status, body) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
            ("redirect_uri", "http://localhost:9999/other"),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "redirect_uri_mismatch");

    let c = code(&env.authorize(&[]).await);
    let (status, body) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("client_id", DEMO_CLIENT_ID),
            ("redirect_uri", CALLBACK),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client", "{body}");
}

#[tokio::test]
async fn pkce_code_needs_the_verifier_not_the_secret() {
    let env = Env::start(true).await;
    // Challenge = BASE64URL(SHA256(verifier)), computed independently.
    let verifier = "pgforce-emulator-pkce-verifier-0123456789abcdefghij";
    let challenge = "QGCf79l61uJBv5H18I_6jAZhwQNT-sSP7fUMphHvLCM";
    let pkce = [
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    let redeem = |code: String, verifier: &'static str| {
        let env = &env;
        async move {
            env.token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", DEMO_CLIENT_ID),
                ("redirect_uri", CALLBACK),
                ("code_verifier", verifier),
            ])
            .await
        }
    };
    let c = param(&redirect_params(&env.authorize(&pkce).await), "code")
        .unwrap()
        .to_string();
    let (status, body) = redeem(c, "wrong-verifier-wrong-verifier-wrong-verifier").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let c = param(&redirect_params(&env.authorize(&pkce).await), "code")
        .unwrap()
        .to_string();
    let (status, body) = redeem(c, verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh_token"].is_string());
}

#[tokio::test]
async fn consent_form_logs_in_approves_or_denies() {
    let env = Env::start(false).await;
    let page = env.authorize(&[]).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\""), "{html}");

    let consent = |username: &'static str, password: &'static str, action: &'static str| {
        let env = &env;
        async move {
            env.http
                .post(env.url("/services/oauth2/authorize"))
                .form(&[
                    ("response_type", "code"),
                    ("client_id", DEMO_CLIENT_ID),
                    ("redirect_uri", CALLBACK),
                    ("state", "s"),
                    ("username", username),
                    ("password", password),
                    ("action", action),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = consent(DEMO_USERNAME, "not-the-password", "Allow").await;
    assert_eq!(
        wrong.status(),
        StatusCode::OK,
        "a bad login shows the form again"
    );
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("check your username and password"));

    let denied = redirect_params(&consent(DEMO_USERNAME, DEMO_PASSWORD, "Deny").await);
    assert_eq!(param(&denied, "error"), Some("access_denied"));
    assert_eq!(param(&denied, "code"), None);

    let allowed = redirect_params(&consent(DEMO_USERNAME, DEMO_PASSWORD, "Allow").await);
    assert_eq!(param(&allowed, "state"), Some("s"));
    let (status, body) = env.redeem(param(&allowed, "code").unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn authorize_refuses_unknown_apps_callbacks_and_response_types() {
    let env = Env::start(true).await;
    let r = env
        .http
        .get(env.url("/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "nope"),
            ("redirect_uri", CALLBACK),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("invalid_client_id"));

    let r = env
        .http
        .get(env.url("/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", DEMO_CLIENT_ID),
            ("redirect_uri", "http://evil.example/cb"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "never redirects to an unknown callback"
    );
    assert!(r.text().await.unwrap().contains("redirect_uri_mismatch"));

    let r = env
        .http
        .get(env.url("/services/oauth2/authorize"))
        .query(&[
            ("response_type", "token"),
            ("client_id", DEMO_CLIENT_ID),
            ("redirect_uri", CALLBACK),
        ])
        .send()
        .await
        .unwrap();
    let pairs = redirect_params(&r);
    assert_eq!(param(&pairs, "error"), Some("unsupported_response_type"));
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_access_tokens() {
    let env = Env::start(true).await;
    let code = param(&redirect_params(&env.authorize(&[]).await), "code")
        .unwrap()
        .to_string();
    let (_, body) = env.redeem(&code).await;
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();

    let r = env
        .http
        .post(env.url("/services/oauth2/revoke"))
        .form(&[("token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(env.limits_status(access).await, StatusCode::UNAUTHORIZED);
    let (status, body) = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let r = env
        .http
        .get(env.url("/services/oauth2/revoke"))
        .query(&[("token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "already revoked");
}

#[tokio::test]
async fn userinfo_describes_the_token_user() {
    let env = Env::start(true).await;
    let token = env.handle.issue_default_token().unwrap();
    let r = env
        .http
        .get(env.url("/services/oauth2/userinfo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["preferred_username"], DEMO_USERNAME);
    let user_id = info["user_id"].as_str().unwrap();
    assert!(info["sub"].as_str().unwrap().ends_with(user_id), "{info}");
    assert!(info["organization_id"].as_str().unwrap().starts_with("00D"));
    assert_eq!(info["given_name"], "Integration");

    let r = env
        .http
        .get(env.url("/services/oauth2/userinfo"))
        .bearer_auth("00Dxx!not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.text().await.unwrap(), "Bad_OAuth_Token");
}
