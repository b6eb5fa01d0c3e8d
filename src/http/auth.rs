//! Bearer tokens: admin tokens from the config, rep tokens from the reps table (hashed). A
//! token is honoured only while it is valid now: a rep made inactive or removed from the
//! config, or a token rotated out of the config, is refused at once. Failed attempts are
//! counted per client (`AuthFailures`): past the limit the client gets 429 before any token
//! of theirs is even checked, so guessing gains nothing from speed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::AppState;
use super::client::client_ip;
use super::error::ApiError;
use crate::pipeline::Actor;

/// The authenticated caller of an API endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Actor);

impl Caller {
    /// The rep whose leads this caller is limited to, if any.
    pub fn rep_scope(&self) -> Option<&str> {
        match &self.0 {
            Actor::Admin => None,
            Actor::Rep(id) => Some(id),
        }
    }
}

/// An admin caller. As an extractor it refuses anyone else (403) before the body is read, so
/// a rep learns nothing from an admin endpoint, not even its schema.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ip = client_ip(&parts.headers, &parts.extensions, state.settings().server.trust_forwarded_for);
        state.auth_failures().check(ip)?;
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("missing bearer token (Authorization: Bearer <token>)".into()))?;
        match actor_for_token(state, token).await? {
            Some(actor) => Ok(Caller(actor)),
            None => {
                state.auth_failures().failed(ip, parts.uri.path());
                Err(ApiError::Unauthorized("invalid token".into()))
            }
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await?.0 {
            Actor::Admin => Ok(Admin),
            Actor::Rep(_) => Err(ApiError::Forbidden("this endpoint needs an admin token".into())),
        }
    }
}

/// sha256 of a token: what is stored and compared, never the token itself.
pub(super) fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Who an API token belongs to: an admin token from the config, or an active rep's
/// `api_token`. The dashboard's sign-in checks tokens the same way.
pub(super) async fn actor_for_token(state: &AppState, token: &str) -> Result<Option<Actor>, ApiError> {
    actor_for_digest(state, &token_digest(token)).await
}

/// `actor_for_token` from the token's sha256: a dashboard session re-checks the token that
/// made it on every request.
pub(super) async fn actor_for_digest(state: &AppState, digest: &[u8; 32]) -> Result<Option<Actor>, ApiError> {
    let mut admin = subtle::Choice::from(0);
    for known in &state.0.admin_token_hashes {
        admin |= known.ct_eq(digest);
    }
    if bool::from(admin) {
        return Ok(Some(Actor::Admin));
    }
    Ok(state.store().rep_by_token_hash(&hex::encode(digest)).await?.map(Actor::Rep))
}

/// Failed authentications per client address in a fixed window. A client over the limit is
/// refused with 429 until its window ends; the first refusal of a window is logged (the
/// address and path, never what was tried).
pub struct AuthFailures {
    limit: u32,
    window: Duration,
    clients: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl AuthFailures {
    pub fn new(limit: u32, window: Duration) -> Self {
        AuthFailures { limit: limit.max(1), window, clients: Mutex::new(HashMap::new()) }
    }

    /// `Err(429)` while `ip` is over the limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        match clients.get(&ip) {
            Some(w) if w.failures >= self.limit && now < w.started + self.window => {
                let wait = (w.started + self.window).saturating_duration_since(now);
                Err(ApiError::TooManyRequests(wait.as_secs().max(1)))
            }
            _ => Ok(()),
        }
    }

    /// Counts one failed attempt from `ip` at `path`.
    pub fn failed(&self, ip: IpAddr, path: &str) {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let w = clients.entry(ip).or_insert(Window { started: now, failures: 0 });
        if now >= w.started + self.window {
            *w = Window { started: now, failures: 0 };
        }
        w.failures += 1;
        metrics::counter!("leadrouter_auth_failures_total").increment(1);
        if w.failures == self.limit {
            tracing::warn!(client = %ip, path, failures = w.failures, window = ?self.window,
                "too many failed authentications: refusing this client until the window ends");
        } else if w.failures < self.limit {
            tracing::info!(client = %ip, path, "authentication failed");
        }
    }

    /// Forgets clients whose window is over (keeps memory bounded).
    pub fn prune(&self) {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.retain(|_, w| now < w.started + self.window);
    }
}

/// Declares the bearer scheme in the OpenAPI document.
pub struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_over_the_limit_waits_for_its_window_and_others_do_not() {
        let failures = AuthFailures::new(3, Duration::from_millis(200));
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            assert!(failures.check(a).is_ok());
            failures.failed(a, "/api/v1/leads");
        }
        assert!(matches!(failures.check(a), Err(ApiError::TooManyRequests(1))));
        assert!(failures.check(b).is_ok(), "another client is not affected");
        std::thread::sleep(Duration::from_millis(250));
        assert!(failures.check(a).is_ok(), "the window ended");
        failures.prune();
        assert!(failures.clients.lock().map(|c| c.is_empty()).unwrap_or(false));
    }
}
