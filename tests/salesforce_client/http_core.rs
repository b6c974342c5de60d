//! The Salesforce client's auth, HTTP core and limits against an in-test stub: JWT claims,
//! OAuth error hints, token refresh on 401, retries, `REQUEST_LIMIT_EXCEEDED`,
//! `Sforce-Limit-Info`, secrets kept out of Debug/Display, TLS rule, metrics.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::sf_stub::*;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use pgforce::salesforce::auth::JwtClaims;
use pgforce::salesforce::{
    ClientConfig, Credentials, GovernorState, PauseReason, SalesforceClient, SalesforceError,
};
use secrecy::SecretString;
use serde_json::json;

/// An RSA key pair made with openssl: (private PEM, public PEM).
fn rsa_key_pair() -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let public = dir.path().join("pub.pem");
    let ok = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "openssl genrsa failed");
    let ok = Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "openssl rsa -pubout failed");
    (
        std::fs::read_to_string(key).unwrap(),
        std::fs::read_to_string(public).unwrap(),
    )
}

/// A stub with the token route plus `GET /sobjects/Account/describe` answered by `describe`.
async fn describe_stub<F, R>(describe: F) -> Stub
where
    F: Fn(usize, String) -> R + Clone + Send + Sync + 'static,
    R: IntoResponse,
{
    serve(|base, hits| {
        let h = hits.clone();
        token_routes(&base, hits).route(
            &format!("{V}/sobjects/Account/describe"),
            get(move |headers: HeaderMap| async move {
                let n = h.bump("describe");
                describe(n, bearer(&headers)).into_response()
            }),
        )
    })
    .await
}

/// The form and decoded JWT claims of a token request.
type TokenRequest = (HashMap<String, String>, JwtClaims);

#[tokio::test]
async fn jwt_assertion_carries_claims() {
    let (private_pem, public_pem) = rsa_key_pair();
    let seen: Arc<Mutex<Option<TokenRequest>>> = Arc::default();
    let seen2 = seen.clone();
    let stub = serve(move |base, _hits| {
        Router::new().route(
            "/services/oauth2/token",
            post(move |body: Bytes| async move {
                let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap();
                let mut v = Validation::new(Algorithm::RS256);
                v.set_audience(&["https://login.salesforce.com"]);
                v.set_issuer(&["consumer-key"]);
                let key = DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap();
                let claims = jsonwebtoken::decode::<JwtClaims>(&form["assertion"], &key, &v)
                    .expect("assertion verifies with the public key")
                    .claims;
                *seen2.lock().unwrap() = Some((form, claims));
                token_response(&base, "JWT-TOKEN")
            }),
        )
    })
    .await;
    let creds = Credentials::jwt_bearer(
        "consumer-key",
        "integration@example.com",
        SecretString::from(private_pem),
        stub.base.clone(),
    );
    let client = SalesforceClient::new(ClientConfig::new(creds)).unwrap();
    client.login().await.unwrap();
    assert_eq!(
        client.instance_url().unwrap().as_str(),
        format!("{}/", stub.base)
    );

    let (form, claims) = seen.lock().unwrap().take().unwrap();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    assert_eq!(claims.iss, "consumer-key");
    assert_eq!(claims.sub, "integration@example.com");
    assert_eq!(claims.aud, "https://login.salesforce.com");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 170..=now + 190).contains(&claims.exp),
        "exp about 3 minutes ahead"
    );
}

#[tokio::test]
async fn oauth_error_says_what_to_fix() {
    let stub = serve(|_base, hits| {
        Router::new().route(
            "/services/oauth2/token",
            post(move || async move {
                hits.bump("token");
                (
                    StatusCode::BAD_REQUEST,
                    r#"{"error":"invalid_grant","error_description":"audience is invalid"}"#,
                )
            }),
        )
    })
    .await;
    let err = client(&stub).login().await.unwrap_err();
    match &err {
        SalesforceError::Auth {
            error, description, ..
        } => {
            assert_eq!(error, "invalid_grant");
            assert_eq!(description, "audience is invalid");
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(
            "set the audience to https://login.salesforce.com or https://test.salesforce.com"
        ),
        "{text}"
    );
    assert_eq!(
        stub.hits.count("token"),
        1,
        "400 from the token endpoint is not retried"
    );
}

#[tokio::test]
async fn client_credentials_form_is_documented() {
    let stub = describe_stub(|_, _| json_response(StatusCode::OK, describe_body())).await;
    client(&stub).describe("Account").await.unwrap();
    let (body, _) = &stub.hits.bodies("token")[0];
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(body).unwrap();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "stub-client-id");
    assert_eq!(form["client_secret"], CLIENT_SECRET);
}

#[tokio::test]
async fn refreshes_once_on_invalid_session_then_retries() {
    let stub = describe_stub(|_, token| {
        if token == "TOKEN-1" {
            sf_error(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
            )
        } else {
            json_response(StatusCode::OK, describe_body())
        }
    })
    .await;
    let d = client(&stub).describe("Account").await.unwrap();
    assert_eq!(d.name, "Account");
    assert_eq!(stub.hits.count("token"), 2);
    assert_eq!(stub.hits.count("describe"), 2);
}

#[tokio::test]
async fn second_invalid_session_fails_cleanly() {
    let stub = describe_stub(|_, _| {
        sf_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    })
    .await;
    let err = client(&stub).describe("Account").await.unwrap_err();
    assert!(
        matches!(&err, SalesforceError::Auth { error, .. } if error == "INVALID_SESSION_ID"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(stub.hits.count("token"), 2, "one refresh only");
    assert_eq!(stub.hits.count("describe"), 2, "one retry only");
}

#[tokio::test]
async fn retries_503_then_succeeds() {
    let stub = describe_stub(|n, _| {
        if n < 3 {
            (StatusCode::SERVICE_UNAVAILABLE, "<html>maintenance</html>").into_response()
        } else {
            json_response(StatusCode::OK, describe_body())
        }
    })
    .await;
    client(&stub).describe("Account").await.unwrap();
    assert_eq!(stub.hits.count("describe"), 3);
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let stub = describe_stub(|_, _| StatusCode::BAD_GATEWAY.into_response()).await;
    let err = client(&stub).describe("Account").await.unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.api_code(), Some("HTTP_502"));
    assert_eq!(stub.hits.count("describe"), 4);
}

#[tokio::test]
async fn no_retry_on_validation_error() {
    let stub = describe_stub(|_, _| {
        sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            "sObject type 'Account' is not supported.",
        )
    })
    .await;
    let err = client(&stub).describe("Account").await.unwrap_err();
    match &err {
        SalesforceError::Api {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!((*status, code.as_str()), (400, "INVALID_TYPE"));
            assert!(message.contains("not supported"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stub.hits.count("describe"), 1);
}

#[tokio::test]
async fn unable_to_lock_row_is_retried() {
    let stub = describe_stub(|n, _| {
        if n == 1 {
            sf_error(
                StatusCode::BAD_REQUEST,
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records: 003xx",
            )
        } else {
            json_response(StatusCode::OK, describe_body())
        }
    })
    .await;
    client(&stub).describe("Account").await.unwrap();
    assert_eq!(stub.hits.count("describe"), 2);
}

#[tokio::test]
async fn connection_refused_reports_attempts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = SalesforceClient::new(config(&base)).unwrap();
    match client.login().await.unwrap_err() {
        SalesforceError::Transport { attempts, .. } => assert_eq!(attempts, 4),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn request_limit_exceeded_pauses_governor() {
    let stub = describe_stub(|_, _| {
        sf_error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    })
    .await;
    let mut cfg = config(&stub.base);
    cfg.governor.limit_exceeded_backoff = Duration::from_secs(600);
    cfg.governor.max_pause_wait = Some(Duration::ZERO);
    let client = SalesforceClient::new(cfg).unwrap();
    let err = client.describe("Account").await.unwrap_err();
    assert!(
        matches!(err, SalesforceError::LimitExceeded { .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    match client.governor_state() {
        GovernorState::Paused {
            reason: PauseReason::RequestLimitExceeded { message },
            until,
        } => {
            assert!(message.contains("TotalRequests"));
            assert!(until > chrono::Utc::now() + chrono::Duration::seconds(500));
        }
        other => panic!("{other:?}"),
    }
    // While paused nothing is sent.
    client.describe("Account").await.unwrap_err();
    assert_eq!(stub.hits.count("describe"), 1);
}

#[tokio::test]
async fn pause_lifts_after_limits_probe() {
    let stub = serve(|base, hits| {
        let (h1, h2) = (hits.clone(), hits.clone());
        token_routes(&base, hits)
            .route(
                &format!("{V}/sobjects/Account/describe"),
                get(move || async move {
                    if h1.bump("describe") == 1 {
                        sf_error(
                            StatusCode::FORBIDDEN,
                            "REQUEST_LIMIT_EXCEEDED",
                            "TotalRequests Limit exceeded.",
                        )
                    } else {
                        json_response(StatusCode::OK, describe_body())
                    }
                }),
            )
            .route(
                &format!("{V}/limits"),
                get(move || async move {
                    h2.bump("limits");
                    json_response(
                        StatusCode::OK,
                        json!({"DailyApiRequests": {"Max": 5000, "Remaining": 4900}}),
                    )
                }),
            )
    })
    .await;
    let client = client(&stub);
    client.describe("Account").await.unwrap();
    assert_eq!(stub.hits.count("limits"), 1);
    assert_eq!(stub.hits.count("describe"), 2);
    assert_eq!(client.governor_state(), GovernorState::Normal);
}

/// A stub whose describe answers carry this `Sforce-Limit-Info`.
async fn usage_stub(limit_info: &'static str) -> Stub {
    describe_stub(move |_, _| {
        (
            StatusCode::OK,
            [
                ("content-type", "application/json"),
                ("sforce-limit-info", limit_info),
            ],
            describe_body().to_string(),
        )
    })
    .await
}

#[tokio::test]
async fn limit_info_header_updates_usage() {
    let stub =
        usage_stub("api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)")
            .await;
    let client = client(&stub);
    client.describe("Account").await.unwrap();
    let usage = client.api_usage().unwrap();
    assert_eq!((usage.used, usage.max), (25, 5000));
    let app = usage.per_app.unwrap();
    assert_eq!(
        (app.used, app.max, app.app_name.as_str()),
        (17, 250, "sample-connected-app")
    );
    assert_eq!(client.governor_state(), GovernorState::Normal);
}

#[tokio::test]
async fn usage_near_the_reserve_slows_then_pauses() {
    let stub = usage_stub("api-usage=4250/5000").await;
    let client = client(&stub);
    client.describe("Account").await.unwrap();
    assert!(
        matches!(
            client.governor_state(),
            GovernorState::Slowed {
                used: 4250,
                max: 5000,
                ..
            }
        ),
        "{:?}",
        client.governor_state()
    );

    let stub = usage_stub("api-usage=4600/5000").await;
    let mut cfg = config(&stub.base);
    cfg.governor.max_pause_wait = Some(Duration::ZERO);
    cfg.governor.reserve_recheck = Duration::from_secs(300);
    let client = SalesforceClient::new(cfg).unwrap();
    client.describe("Account").await.unwrap();
    assert!(matches!(
        client.governor_state(),
        GovernorState::Paused {
            reason: PauseReason::Reserve {
                used: 4600,
                max: 5000
            },
            ..
        }
    ));
    let err = client.describe("Account").await.unwrap_err();
    assert!(err.to_string().contains("reserve"), "{err}");
    assert_eq!(stub.hits.count("describe"), 1);
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_display() {
    let (private_pem, _) = rsa_key_pair();
    let key_line = private_pem.lines().nth(1).unwrap().to_string();
    let all_creds = [
        Credentials::jwt_bearer(
            "cid",
            "u@example.com",
            SecretString::from(private_pem),
            "https://login.salesforce.com",
        ),
        Credentials::RefreshToken {
            client_id: "cid".into(),
            client_secret: Some(SecretString::from("REFRESH-CLIENT-SECRET".to_string())),
            refresh_token: SecretString::from("REFRESH-TOKEN-SECRET".to_string()),
            login_url: "https://login.salesforce.com".into(),
        },
        Credentials::UsernamePassword {
            client_id: "cid".into(),
            client_secret: SecretString::from("PW-CLIENT-SECRET".to_string()),
            username: "u@example.com".into(),
            password: SecretString::from("PASSWORD-SECRET".to_string()),
            login_url: "https://login.salesforce.com".into(),
        },
    ];
    let secrets = [
        key_line.as_str(),
        "REFRESH-CLIENT-SECRET",
        "REFRESH-TOKEN-SECRET",
        "PW-CLIENT-SECRET",
        "PASSWORD-SECRET",
        CLIENT_SECRET,
        "TOKEN-1",
    ];
    let mut printed = Vec::new();
    for creds in all_creds {
        let cfg = ClientConfig::new(creds);
        printed.push(format!("{cfg:?}"));
        printed.push(format!("{:?}", SalesforceClient::new(cfg).unwrap()));
    }

    // A logged-in client, and errors from a call that used the token.
    let stub = describe_stub(|_, _| {
        sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "No such column 'Foo'",
        )
    })
    .await;
    let cfg = config(&stub.base);
    printed.push(format!("{cfg:?}"));
    let client = SalesforceClient::new(cfg).unwrap();
    let err = client.describe("Account").await.unwrap_err();
    printed.push(format!("{client:?}"));
    printed.push(format!("{err:?} {err}"));
    let stub = serve(|_, _| {
        Router::new().route(
            "/services/oauth2/token",
            post(|| async { (StatusCode::BAD_REQUEST, r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#) }),
        )
    })
    .await;
    let err = client_for_base(&stub.base).login().await.unwrap_err();
    printed.push(format!("{err:?} {err}"));
    let stub = serve(|_, _| {
        Router::new().route(
            "/services/oauth2/token",
            post(|| async {
                (
                    StatusCode::OK,
                    r#"{"access_token":"TOKEN-1","instance_url":5}"#,
                )
            }),
        )
    })
    .await;
    let err = client_for_base(&stub.base).login().await.unwrap_err();
    assert!(matches!(err, SalesforceError::BadResponse { .. }));
    printed.push(format!("{err:?} {err}"));

    for text in &printed {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} leaked in {text}");
        }
    }
}

/// A client-credentials client for `base`.
fn client_for_base(base: &str) -> SalesforceClient {
    SalesforceClient::new(config(base)).unwrap()
}

#[tokio::test]
async fn plain_http_to_remote_hosts_is_refused() {
    let err = SalesforceClient::new(config("http://acme.my.salesforce.com")).unwrap_err();
    assert!(matches!(err, SalesforceError::Config { .. }));
    assert!(err.to_string().contains("use https://"), "{err}");

    // An instance_url handed out by the token endpoint obeys the same rule.
    let stub = serve(|_, _| {
        Router::new().route(
            "/services/oauth2/token",
            post(|| async { token_response("http://evil.example.com", "TOKEN-1") }),
        )
    })
    .await;
    let err = client_for_base(&stub.base).login().await.unwrap_err();
    assert!(err.to_string().contains("use https://"), "{err}");
}

#[test]
fn calls_are_counted_in_metrics() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let stub = describe_stub(|n, _| {
                if n == 1 {
                    StatusCode::SERVICE_UNAVAILABLE.into_response()
                } else {
                    json_response(StatusCode::OK, describe_body())
                }
            })
            .await;
            client(&stub).describe("Account").await.unwrap();
        });
    });
    let text = handle.render();
    assert!(
        text.contains(
            r#"pgforce_salesforce_api_calls_total{pipeline="",object="Account",operation="describe",status_class="2xx"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"operation="describe",status_class="5xx"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"pgforce_salesforce_api_remaining{pipeline=""} 4982"#),
        "{text}"
    );
}
