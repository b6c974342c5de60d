//! Sessions: what an access token stands for, the table of issued access and refresh
//! tokens the data API, the SOAP API and the Pub/Sub API authenticate against, minting
//! them, and reading the bearer token of a request. Tokens are never logged (the `Debug`
//! forms leave them out).

use axum::http::{header, HeaderMap};
use chrono::{DateTime, Duration, Utc};
use dashmap::DashMap;
use rand::distr::{Alphanumeric, SampleString};

use super::ids::Id;
use super::state::EmulatorState;

/// An authenticated session (what an access token stands for).
#[derive(Clone)]
pub struct Session {
    /// The user the session acts as.
    pub user_id: Id,
    /// The user's login name.
    pub username: String,
    /// The connected app that obtained it (None for tokens issued directly).
    pub client_id: Option<String>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// The refresh token it was issued with or from; revoking that one revokes this too.
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id)
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Issued access and refresh tokens.
#[derive(Default)]
pub struct Tokens {
    access: DashMap<String, Session>,
    refresh: DashMap<String, (Id, String, String)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access", &self.access.len())
            .field("refresh", &self.refresh.len())
            .finish()
    }
}

impl Tokens {
    /// The live session of an access token (expired ones are removed).
    pub fn session(&self, token: &str, now: DateTime<Utc>) -> Option<Session> {
        let s = self.access.get(token)?.clone();
        if s.expires_at <= now {
            self.access.remove(token);
            return None;
        }
        Some(s)
    }

    /// Invalidates every access token (refresh tokens stay valid).
    pub fn expire_all(&self) {
        self.access.clear();
    }

    /// Revokes one access token, or a refresh token and every access token issued with or
    /// from it (as Salesforce does).
    pub fn revoke(&self, token: &str) -> bool {
        if self.access.remove(token).is_some() {
            return true;
        }
        if self.refresh.remove(token).is_none() {
            return false;
        }
        self.access
            .retain(|_, s| s.refresh_token.as_deref() != Some(token));
        true
    }

    /// The user, username and connected app a refresh token was issued to.
    pub fn refresh_grant(&self, token: &str) -> Option<(Id, String, String)> {
        self.refresh.get(token).map(|e| e.clone())
    }

    pub(crate) fn link_refresh(&self, access: &str, refresh: &str) {
        if let Some(mut s) = self.access.get_mut(access) {
            s.refresh_token = Some(refresh.to_string());
        }
    }
}

/// Mints an access token `{org15}!{random}` for `user`.
pub fn issue_access_token(
    state: &EmulatorState,
    user_id: Id,
    username: &str,
    client_id: Option<&str>,
) -> (String, Session) {
    let now = state.clock.now();
    let token = format!(
        "{}!{}",
        state.org_id.as_15(),
        Alphanumeric.sample_string(&mut rand::rng(), 96)
    );
    let lifetime = i64::try_from(state.config.token_lifetime_secs).unwrap_or(i64::MAX / 1000);
    let session = Session {
        user_id,
        username: username.to_string(),
        client_id: client_id.map(str::to_string),
        issued_at: now,
        expires_at: now + Duration::seconds(lifetime),
        refresh_token: None,
    };
    state.tokens.access.insert(token.clone(), session.clone());
    (token, session)
}

/// Mints a refresh token for `user` and app `client_id`.
pub fn issue_refresh_token(
    state: &EmulatorState,
    user_id: Id,
    username: &str,
    client_id: &str,
) -> String {
    let token = format!("5Aep{}", Alphanumeric.sample_string(&mut rand::rng(), 83));
    state.tokens.refresh.insert(
        token.clone(),
        (user_id, username.to_string(), client_id.to_string()),
    );
    token
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("Bearer") || scheme.eq_ignore_ascii_case("OAuth"))
        .then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_is_parsed() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
