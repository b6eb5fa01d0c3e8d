//! Bearer tokens: admin tokens from the config, rep tokens from the reps table (hashed).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::AppState;
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

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.0 {
            Actor::Admin => Ok(()),
            Actor::Rep(_) => Err(ApiError::Forbidden("this endpoint needs an admin token".into())),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
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
            None => Err(ApiError::Unauthorized("invalid token".into())),
        }
    }
}

/// Who an API token belongs to: an admin token from the config, or a rep's `api_token`.
/// The dashboard's sign-in checks tokens the same way.
pub(super) async fn actor_for_token(state: &AppState, token: &str) -> Result<Option<Actor>, ApiError> {
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut admin = subtle::Choice::from(0);
    for known in &state.0.admin_token_hashes {
        admin |= known.ct_eq(&hash);
    }
    if bool::from(admin) {
        return Ok(Some(Actor::Admin));
    }
    Ok(state.store().rep_by_token_hash(&hex::encode(hash)).await?.map(Actor::Rep))
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
