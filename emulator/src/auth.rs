//! OAuth 2.0 token endpoint (`POST /services/oauth2/token`: JWT bearer, refresh token,
//! client credentials, password, authorization code), revocation and the identity URL.
//! Tokens are never logged. The sessions tokens stand for are [`super::session`]'s; the
//! authorize/consent side of the web-server flow and `userinfo` live in
//! [`super::oauth_web`].

use std::collections::HashSet;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

use super::ids::Id;
use super::session::{bearer, issue_access_token, issue_refresh_token};
use super::state::{AppState, ConnectedApp, EmulatorState};

/// The JWT-bearer grant type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Routes: token endpoint, revoke, identity.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/oauth2/revoke", post(revoke).get(revoke_get))
        .route("/id/{org}/{user}", get(identity))
}

/// An OAuth error response (HTTP 400 unless said otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl OAuthError {
    /// A 400 answer with `error` and `error_description`.
    pub(super) const fn new(error: &'static str, description: &'static str) -> OAuthError {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response()
    }
}

const INVALID_ASSERTION: OAuthError = OAuthError::new("invalid_grant", "invalid assertion");
const BAD_AUDIENCE: OAuthError = OAuthError::new("invalid_grant", "audience is invalid");
const EXPIRED_ASSERTION: OAuthError =
    OAuthError::new("invalid_grant", "expired authorization code");
const NOT_APPROVED: OAuthError =
    OAuthError::new("invalid_grant", "user hasn't approved this consumer");
const AUTH_FAILURE: OAuthError = OAuthError::new("invalid_grant", "authentication failure");
const BAD_REFRESH: OAuthError = OAuthError::new("invalid_grant", "expired access/refresh token");
const BAD_CLIENT_CREDENTIALS: OAuthError =
    OAuthError::new("invalid_client", "invalid client credentials");
const UNKNOWN_CLIENT: OAuthError =
    OAuthError::new("invalid_client_id", "client identifier invalid");
const UNSUPPORTED: OAuthError =
    OAuthError::new("unsupported_grant_type", "grant type not supported");
const MISSING_GRANT: OAuthError = OAuthError::new("invalid_request", "grant type is missing");

/// The form fields of a token request (all optional; each grant checks its own).
#[derive(Debug, Default, Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    assertion: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    username: Option<String>,
    password: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

/// The claims of a JWT-bearer assertion.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Value>,
    /// Seconds since the epoch. Salesforce accepts a number or a numeric string
    /// (simple-salesforce sends a string).
    #[serde(default, deserialize_with = "number_or_numeric_string")]
    exp: Option<i64>,
}

fn number_or_numeric_string<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// `POST /services/oauth2/token`.
async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let result = match form.grant_type.as_deref() {
        None | Some("") => Err(MISSING_GRANT),
        Some(JWT_BEARER) => jwt_bearer(&state, &form),
        Some("refresh_token") => refresh(&state, &form, &headers),
        Some("client_credentials") => client_credentials(&state, &form, &headers),
        Some("password") => password(&state, &form, &headers),
        Some("authorization_code") => authorization_code(&state, &form, &headers),
        Some(_) => Err(UNSUPPORTED),
    };
    match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(e) => {
            tracing::debug!(
                error = e.error,
                description = e.description,
                "token request refused"
            );
            e.into_response()
        }
    }
}

/// JWT bearer: verify the RS256 assertion against the app named by `iss`.
fn jwt_bearer(state: &EmulatorState, form: &TokenForm) -> Result<Value, OAuthError> {
    let assertion = form.assertion.as_deref().ok_or(INVALID_ASSERTION)?;
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| INVALID_ASSERTION)?;
    if header.alg != Algorithm::RS256 {
        return Err(INVALID_ASSERTION);
    }
    let unverified: Claims = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
        .map_err(|_| INVALID_ASSERTION)?;
    let app = state
        .apps
        .get(unverified.iss.as_deref().unwrap_or_default())
        .ok_or(UNKNOWN_CLIENT)?;
    let claims = verify_signature(app, assertion)?;
    if !audience_ok(state, claims.aud.as_ref()) {
        return Err(BAD_AUDIENCE);
    }
    let exp = claims.exp.ok_or(INVALID_ASSERTION)?;
    if exp <= state.clock.now().timestamp() {
        return Err(EXPIRED_ASSERTION);
    }
    let user = state
        .user(claims.sub.as_deref().unwrap_or_default())
        .ok_or(NOT_APPROVED)?;
    Ok(token_body(
        state,
        app,
        user.id,
        &user.username.clone(),
        false,
    ))
}

/// Checks the assertion's signature with each of the app's keys.
fn verify_signature(app: &ConnectedApp, assertion: &str) -> Result<Claims, OAuthError> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    app.jwt_keys
        .iter()
        .find_map(|key| jsonwebtoken::decode::<Claims>(assertion, key, &validation).ok())
        .map(|d| d.claims)
        .ok_or(INVALID_ASSERTION)
}

/// `aud` must be login/test.salesforce.com, a configured audience, or our base URL.
fn audience_ok(state: &EmulatorState, aud: Option<&Value>) -> bool {
    let ok = |a: &str| {
        let a = a.trim_end_matches('/');
        a == "https://login.salesforce.com"
            || a == "https://test.salesforce.com"
            || state
                .config
                .extra_jwt_audiences
                .iter()
                .any(|x| x.trim_end_matches('/') == a)
            || (state.config.accept_base_url_audience && a == state.base_url)
    };
    match aud {
        Some(Value::String(s)) => ok(s),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).any(ok),
        _ => false,
    }
}

/// Client id/secret from the form or HTTP Basic.
fn client_credentials_of(
    form: &TokenForm,
    headers: &HeaderMap,
) -> (Option<String>, Option<String>) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(i, p)| (i.to_string(), p.to_string()))
        });
    match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (form.client_id.clone(), form.client_secret.clone()),
    }
}

/// The app for `client_id`, checking the secret when one is given (or `secret_required`).
fn authenticate_client<'a>(
    state: &'a EmulatorState,
    form: &TokenForm,
    headers: &HeaderMap,
    secret_required: bool,
) -> Result<&'a ConnectedApp, OAuthError> {
    let (id, secret) = client_credentials_of(form, headers);
    let app = state
        .apps
        .get(id.as_deref().unwrap_or_default())
        .ok_or(UNKNOWN_CLIENT)?;
    match (secret, &app.client_secret) {
        (Some(given), Some(expected))
            if constant_time_eq(given.as_bytes(), expected.as_bytes()) =>
        {
            Ok(app)
        }
        (Some(_), _) => Err(BAD_CLIENT_CREDENTIALS),
        (None, _) if secret_required => Err(BAD_CLIENT_CREDENTIALS),
        (None, _) => Ok(app),
    }
}

/// Compares secrets without an early exit.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refresh(
    state: &EmulatorState,
    form: &TokenForm,
    headers: &HeaderMap,
) -> Result<Value, OAuthError> {
    let app = authenticate_client(state, form, headers, false)?;
    let token = form.refresh_token.as_deref().unwrap_or_default();
    let (user_id, username, client) = state.tokens.refresh_grant(token).ok_or(BAD_REFRESH)?;
    if client != app.client_id {
        return Err(BAD_REFRESH);
    }
    let body = token_body(state, app, user_id, &username, false);
    if let Some(access) = body["access_token"].as_str() {
        state.tokens.link_refresh(access, token);
    }
    Ok(body)
}

/// Authorization code: the code from `/services/oauth2/authorize`, once, by the app it was
/// issued to, with the same `redirect_uri`; answers with a refresh token.
fn authorization_code(
    state: &EmulatorState,
    form: &TokenForm,
    headers: &HeaderMap,
) -> Result<Value, OAuthError> {
    let code = form.code.as_deref().unwrap_or_default();
    let pkce = super::oauth_web::code_has_challenge(state, code);
    let app = authenticate_client(state, form, headers, !pkce)?;
    let grant = super::oauth_web::redeem(
        state,
        code,
        &app.client_id,
        form.redirect_uri.as_deref().unwrap_or_default(),
        form.code_verifier.as_deref(),
    )?;
    Ok(token_body(state, app, grant.user_id, &grant.username, true))
}

fn client_credentials(
    state: &EmulatorState,
    form: &TokenForm,
    headers: &HeaderMap,
) -> Result<Value, OAuthError> {
    let app = authenticate_client(state, form, headers, true)?;
    let run_as = app
        .run_as
        .as_deref()
        .and_then(|u| state.user(u))
        .ok_or(OAuthError::new(
            "invalid_grant",
            "no client credentials user enabled",
        ))?;
    let mut body = token_body(state, app, run_as.id, &run_as.username.clone(), false);
    if let Value::Object(m) = &mut body {
        m.insert(
            "api_instance_url".into(),
            Value::String(state.base_url.clone()),
        );
    }
    Ok(body)
}

fn password(
    state: &EmulatorState,
    form: &TokenForm,
    headers: &HeaderMap,
) -> Result<Value, OAuthError> {
    let app = authenticate_client(state, form, headers, true)?;
    let user = state
        .user(form.username.as_deref().unwrap_or_default())
        .ok_or(AUTH_FAILURE)?;
    let given = form.password.as_deref().unwrap_or_default();
    let ok = user
        .password
        .as_deref()
        .is_some_and(|p| constant_time_eq(p.as_bytes(), given.as_bytes()));
    if !ok {
        return Err(AUTH_FAILURE);
    }
    Ok(token_body(
        state,
        app,
        user.id,
        &user.username.clone(),
        false,
    ))
}

/// The §1.2 success body.
fn token_body(
    state: &EmulatorState,
    app: &ConnectedApp,
    user_id: Id,
    username: &str,
    with_refresh: bool,
) -> Value {
    let (access, session) = issue_access_token(state, user_id, username, Some(&app.client_id));
    let id_url = state.identity_url(&user_id);
    let issued_at = session.issued_at.timestamp_millis().to_string();
    let mut body = json!({
        "access_token": access,
        "instance_url": state.base_url,
        "id": id_url,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "scope": "api",
    });
    if let (Some(secret), Value::Object(m)) = (&app.client_secret, &mut body) {
        m.insert(
            "signature".into(),
            Value::String(signature(secret, &id_url, &issued_at)),
        );
    }
    if with_refresh {
        let refresh = issue_refresh_token(state, user_id, username, &app.client_id);
        state.tokens.link_refresh(&access, &refresh);
        if let Value::Object(m) = &mut body {
            m.insert("refresh_token".into(), Value::String(refresh));
            m.insert("scope".into(), Value::String("api refresh_token".into()));
        }
    }
    body
}

/// Base64(HMAC-SHA256(key = client secret, id + issued_at)).
pub fn signature(secret: &str, id_url: &str, issued_at: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(id_url.as_bytes());
    mac.update(issued_at.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[derive(Debug, Deserialize)]
struct RevokeForm {
    token: Option<String>,
}

/// `POST /services/oauth2/revoke` (form body `token=`).
async fn revoke(
    State(state): State<AppState>,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Response {
    let token = form.ok().and_then(|Form(f)| f.token).unwrap_or_default();
    revoke_token(&state, &token)
}

/// `GET /services/oauth2/revoke?token=`.
async fn revoke_get(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<RevokeForm>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let token = query.ok().and_then(|q| q.0.token).unwrap_or_default();
    revoke_token(&state, &token)
}

fn revoke_token(state: &EmulatorState, token: &str) -> Response {
    if state.tokens.revoke(token) {
        StatusCode::OK.into_response()
    } else {
        OAuthError::new("unsupported_token_type", "this token type is not supported")
            .into_response()
    }
}

/// `GET /id/{org}/{user}`: the identity service (needs a valid token).
async fn identity(
    State(state): State<AppState>,
    Path((org, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let now = state.clock.now();
    let Some(session) = bearer(&headers).and_then(|t| state.tokens.session(t, now)) else {
        return super::error::ApiError::invalid_session().into_response();
    };
    let (Ok(org), Ok(user)) = (Id::parse(&org), Id::parse(&user)) else {
        return super::error::ApiError::not_found().into_response();
    };
    if org != state.org_id || user != session.user_id {
        return (StatusCode::FORBIDDEN, "Bad_Id").into_response();
    }
    let record = state.store.get(&user);
    let field = |k: &str| {
        record
            .as_ref()
            .and_then(|r| r.get(k).cloned())
            .unwrap_or(Value::Null)
    };
    let v = "{version}";
    let base = &state.base_url;
    Json(json!({
        "id": state.identity_url(&user), "asserted_user": true, "user_id": user.to_string(),
        "organization_id": org.to_string(), "username": session.username,
        "nick_name": field("Alias"), "display_name": field("Name"), "email": field("Email"),
        "first_name": field("FirstName"), "last_name": field("LastName"), "active": true,
        "user_type": "STANDARD", "language": "en_US", "locale": "en_US", "utcOffset": 0,
        "urls": {
            "rest": format!("{base}/services/data/v{v}/"),
            "sobjects": format!("{base}/services/data/v{v}/sobjects/"),
            "query": format!("{base}/services/data/v{v}/query/"),
            "limits": format!("{base}/services/data/v{v}/limits/"),
            "profile": format!("{base}/{user}"),
        },
        "is_app_installed": true,
        "last_modified_date": field("LastModifiedDate"),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_base64() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") from RFC test vectors.
        let s = signature("key", "The quick brown fox ", "jumps over the lazy dog");
        assert_eq!(s, "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg=");
    }
}
