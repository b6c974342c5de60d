//! The OAuth 2.0 web-server (authorization-code) flow's browser side and `userinfo`:
//! `GET /services/oauth2/authorize` shows a login-and-consent form (or, with
//! `oauthWeb.autoApprove`, redirects with a code at once), `POST` of that form approves or
//! denies, and codes are redeemed once by the token endpoint ([`redeem`], called from
//! [`super::auth`]). Codes live 15 minutes, are bound to the app and `redirect_uri`, and
//! honour PKCE (`S256`). `GET|POST /services/oauth2/userinfo` answers the OpenID Connect
//! user info of a bearer token. Neither codes nor tokens are logged.

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use dashmap::DashMap;
use rand::distr::{Alphanumeric, SampleString};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::auth::{constant_time_eq, OAuthError};
use super::ids::Id;
use super::session::bearer;
use super::state::{AppState, EmulatorState, User};

/// How long an authorization code can be redeemed.
const CODE_LIFETIME_MINUTES: i64 = 15;

const INVALID_CODE: OAuthError = OAuthError::new("invalid_grant", "invalid authorization code");
const EXPIRED_CODE: OAuthError = OAuthError::new("invalid_grant", "expired authorization code");
const REDIRECT_MISMATCH: OAuthError = OAuthError::new(
    "redirect_uri_mismatch",
    "redirect_uri must match configuration",
);
const BAD_VERIFIER: OAuthError = OAuthError::new("invalid_grant", "invalid code verifier");

/// Routes: authorize (form and consent) and userinfo.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services/oauth2/authorize", get(authorize).post(consent))
        .route("/services/oauth2/userinfo", get(userinfo).post(userinfo))
}

/// One issued, not yet redeemed code.
#[derive(Debug, Clone)]
struct Grant {
    user_id: Id,
    username: String,
    client_id: String,
    redirect_uri: String,
    code_challenge: Option<String>,
    expires_at: DateTime<Utc>,
}

/// Issued codes (module state in [`EmulatorState::ext`]).
#[derive(Debug, Default)]
struct Codes(DashMap<String, Grant>);

/// The user a redeemed code stands for.
#[derive(Debug, Clone)]
pub struct Redeemed {
    /// The approving user.
    pub user_id: Id,
    /// Their login name.
    pub username: String,
}

/// Whether `code` was issued with a PKCE challenge (then no client secret is needed).
pub fn code_has_challenge(state: &EmulatorState, code: &str) -> bool {
    state
        .ext::<Codes>()
        .0
        .get(code)
        .is_some_and(|g| g.code_challenge.is_some())
}

/// Redeems `code` for `client_id`: once, before it expires, with the `redirect_uri` it was
/// issued for and, if it carries a challenge, the matching `code_verifier`.
pub fn redeem(
    state: &EmulatorState,
    code: &str,
    client_id: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> Result<Redeemed, OAuthError> {
    let (_, grant) = state.ext::<Codes>().0.remove(code).ok_or(INVALID_CODE)?;
    if grant.client_id != client_id {
        return Err(INVALID_CODE);
    }
    if grant.expires_at <= state.clock.now() {
        return Err(EXPIRED_CODE);
    }
    if grant.redirect_uri != redirect_uri {
        return Err(REDIRECT_MISMATCH);
    }
    if let Some(challenge) = &grant.code_challenge {
        let ok = verifier.is_some_and(|v| pkce_s256(v) == *challenge);
        if !ok {
            return Err(BAD_VERIFIER);
        }
    }
    Ok(Redeemed {
        user_id: grant.user_id,
        username: grant.username,
    })
}

/// `BASE64URL(SHA256(verifier))` without padding (RFC 7636 `S256`).
fn pkce_s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The parameters of an authorize request (query string, or hidden fields of the form).
#[derive(Debug, Clone, Default, Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    login_hint: Option<String>,
}

/// The consent form's fields: the authorize parameters plus the login and the choice.
#[derive(Debug, Default, Deserialize)]
struct ConsentForm {
    #[serde(flatten)]
    params: AuthorizeParams,
    username: Option<String>,
    password: Option<String>,
    /// `Allow` or `Deny`.
    action: Option<String>,
}

/// Why an authorize request cannot go back to the app: shown as a page, never redirected
/// (the redirect target itself is not trusted).
fn error_page(error: &str, description: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html><body><h1>OAuth Error</h1><p id=\"error\">error={}</p><p id=\"error_description\">{}</p></body></html>",
        escape(error),
        escape(description)
    );
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}

/// A checked authorize request: the app is known and the redirect target allowed.
#[derive(Debug)]
struct Checked {
    params: AuthorizeParams,
    client_id: String,
    redirect_uri: String,
}

/// Checks the app and the redirect target (errors become a page), then the rest (errors
/// are redirected to the app, as OAuth 2.0 says).
fn check(state: &EmulatorState, params: AuthorizeParams) -> Result<Checked, Box<Response>> {
    let client_id = params.client_id.clone().unwrap_or_default();
    if !state.apps.contains_key(&client_id) {
        return Err(Box::new(error_page(
            "invalid_client_id",
            "client identifier invalid",
        )));
    }
    let redirect_uri = params.redirect_uri.clone().unwrap_or_default();
    if !redirect_allowed(state, &redirect_uri) {
        return Err(Box::new(error_page(
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        )));
    }
    let checked = Checked {
        params,
        client_id,
        redirect_uri,
    };
    if checked.params.response_type.as_deref() != Some("code") {
        return Err(Box::new(redirect_error(
            &checked,
            "unsupported_response_type",
            "response type not supported",
        )));
    }
    let method = checked.params.code_challenge_method.as_deref();
    if checked.params.code_challenge.is_some() && !matches!(method, None | Some("S256")) {
        return Err(Box::new(redirect_error(
            &checked,
            "invalid_request",
            "invalid code challenge method",
        )));
    }
    Ok(checked)
}

fn redirect_allowed(state: &EmulatorState, uri: &str) -> bool {
    let allowed = &state.config.oauth_web.callback_urls;
    if !allowed.is_empty() {
        return allowed.iter().any(|a| a == uri);
    }
    url::Url::parse(uri).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// `redirect_uri` with `pairs` (and the request's `state`) appended to its query.
fn redirect_with(checked: &Checked, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(&checked.redirect_uri) else {
        return error_page(
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        );
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        if let Some(s) = &checked.params.state {
            q.append_pair("state", s);
        }
    }
    Redirect::to(url.as_str()).into_response()
}

fn redirect_error(checked: &Checked, error: &str, description: &str) -> Response {
    redirect_with(
        checked,
        &[("error", error), ("error_description", description)],
    )
}

/// Issues a code for `user` and redirects to the app with it.
fn approve(state: &EmulatorState, checked: &Checked, user: &User) -> Response {
    let code = format!("aPrx{}==", Alphanumeric.sample_string(&mut rand::rng(), 60));
    let grant = Grant {
        user_id: user.id,
        username: user.username.clone(),
        client_id: checked.client_id.clone(),
        redirect_uri: checked.redirect_uri.clone(),
        code_challenge: checked.params.code_challenge.clone(),
        expires_at: state.clock.now() + Duration::minutes(CODE_LIFETIME_MINUTES),
    };
    state.ext::<Codes>().0.insert(code.clone(), grant);
    redirect_with(checked, &[("code", &code)])
}

/// `GET /services/oauth2/authorize`: the consent form, or a code at once when auto-approved.
async fn authorize(
    State(state): State<AppState>,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    let checked = match check(&state, params) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    if state.config.oauth_web.auto_approve {
        let user = match &checked.params.login_hint {
            Some(hint) => state.user(hint),
            None => state.default_user(),
        };
        return match user {
            Some(user) => approve(&state, &checked, user),
            None => redirect_error(&checked, "access_denied", "end-user denied authorization"),
        };
    }
    consent_page(&checked, None)
}

/// `POST /services/oauth2/authorize`: the consent form's answer.
async fn consent(
    State(state): State<AppState>,
    form: Result<Form<ConsentForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_page("invalid_request", "malformed consent form");
    };
    let checked = match check(&state, form.params) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    if form.action.as_deref() != Some("Allow") {
        return redirect_error(&checked, "access_denied", "end-user denied authorization");
    }
    let username = form.username.as_deref().unwrap_or_default();
    let given = form.password.as_deref().unwrap_or_default();
    match state.user(username) {
        Some(user)
            if user
                .password
                .as_deref()
                .is_some_and(|p| constant_time_eq(p.as_bytes(), given.as_bytes())) =>
        {
            approve(&state, &checked, user)
        }
        _ => consent_page(
            &checked,
            Some("Please check your username and password. If you still can't log in, contact your Salesforce administrator."),
        ),
    }
}

/// The login-and-consent page: a form posting back the authorize parameters.
fn consent_page(checked: &Checked, error: Option<&str>) -> Response {
    let p = &checked.params;
    let hidden = [
        ("response_type", p.response_type.as_deref()),
        ("client_id", Some(checked.client_id.as_str())),
        ("redirect_uri", Some(checked.redirect_uri.as_str())),
        ("state", p.state.as_deref()),
        ("code_challenge", p.code_challenge.as_deref()),
        ("code_challenge_method", p.code_challenge_method.as_deref()),
    ];
    let mut fields = String::new();
    for (name, value) in hidden {
        if let Some(v) = value {
            fields.push_str(&format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(v)
            ));
        }
    }
    let error = error.map_or_else(String::new, |e| {
        format!("<p id=\"error\">{}</p>", escape(e))
    });
    let login = p.login_hint.as_deref().map(escape).unwrap_or_default();
    let body = format!(
        "<!DOCTYPE html><html><body><h1>Allow Access?</h1>{error}\
         <form method=\"post\" action=\"/services/oauth2/authorize\">{fields}\
         <input name=\"username\" value=\"{login}\"><input type=\"password\" name=\"password\">\
         <button name=\"action\" value=\"Allow\">Allow</button>\
         <button name=\"action\" value=\"Deny\">Deny</button></form></body></html>"
    );
    Html(body).into_response()
}

/// Minimal HTML escaping for attribute and text content.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `GET|POST /services/oauth2/userinfo`: OpenID Connect user info of the bearer token's user.
async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let now = state.clock.now();
    let Some(session) = bearer(&headers).and_then(|t| state.tokens.session(t, now)) else {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain")],
            "Bad_OAuth_Token",
        )
            .into_response();
    };
    Json(userinfo_body(&state, &session.user_id, &session.username)).into_response()
}

fn userinfo_body(state: &EmulatorState, user: &Id, username: &str) -> Value {
    let record = state.store.get(user);
    let field = |k: &str| {
        record
            .as_ref()
            .and_then(|r| r.get(k).cloned())
            .unwrap_or(Value::Null)
    };
    let base = &state.base_url;
    let v = "{version}";
    json!({
        "sub": state.identity_url(user),
        "user_id": user.to_string(),
        "organization_id": state.org_id.to_string(),
        "preferred_username": username,
        "nickname": field("Alias"),
        "name": field("Name"),
        "email": field("Email"),
        "email_verified": true,
        "given_name": field("FirstName"),
        "family_name": field("LastName"),
        "zoneinfo": "GMT",
        "photos": {
            "picture": format!("{base}/profilephoto/005/F"),
            "thumbnail": format!("{base}/profilephoto/005/T"),
        },
        "profile": format!("{base}/{user}"),
        "picture": format!("{base}/profilephoto/005/F"),
        "address": {},
        "urls": {
            "rest": format!("{base}/services/data/v{v}/"),
            "sobjects": format!("{base}/services/data/v{v}/sobjects/"),
            "query": format!("{base}/services/data/v{v}/query/"),
            "limits": format!("{base}/services/data/v{v}/limits/"),
            "profile": format!("{base}/{user}"),
        },
        "active": true,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "updated_at": field("LastModifiedDate"),
        "is_app_installed": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_is_base64url_sha256() {
        // Expected value computed with Python hashlib + base64.urlsafe_b64encode.
        assert_eq!(
            pkce_s256("pgforce-emulator-pkce-verifier-0123456789abcdefghij"),
            "QGCf79l61uJBv5H18I_6jAZhwQNT-sSP7fUMphHvLCM"
        );
    }

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
