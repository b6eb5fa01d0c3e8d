//! `POST /telegram/webhook`: updates pushed by Telegram (webhook mode), answered 200 only
//! after the update is committed (an update we cannot read is recorded as a failed item);
//! and the one-time links that connect a rep's Telegram.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, read_body};
use crate::settings::TelegramMode;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(webhook)).routes(routes!(rep_link))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RepLink {
    /// `https://t.me/<bot>?start=link-<code>`: the rep opens it in Telegram, once.
    pub url: String,
    pub expires_at: String,
}

/// A one-time link that connects the rep's Telegram to the bot (`telegram.link_ttl`).
#[utoipa::path(post, path = "/api/v1/reps/{id}/telegram-link", tag = "reps", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 201, body = RepLink), (status = 404, body = super::views::ErrorBody),
              (status = 409, body = super::views::ErrorBody), (status = 503, body = super::views::ErrorBody)))]
async fn rep_link(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, axum::Json<RepLink>)> {
    let Some(channel) = state.0.telegram.clone() else {
        return Err(ApiError::Conflict("the Telegram channel is not enabled (telegram.enabled)".into()));
    };
    if state.store().rep(&id).await?.is_none() {
        return Err(ApiError::NotFound("rep"));
    }
    let username = channel.username().await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    // Only the code's hash is stored: a copy of the database hands out no working links.
    let code = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, rand::random::<[u8; 18]>());
    let now = crate::base::ms(jiff::Timestamp::now());
    let expires_at = now.saturating_add(state.settings().telegram.link_ttl.as_millis_i64());
    state.store().create_rep_link(&id, &crate::base::token_hash(&code), expires_at, now).await?;
    let url = format!("https://t.me/{username}?start=link-{code}");
    Ok((StatusCode::CREATED, axum::Json(RepLink { url, expires_at: crate::base::from_ms(expires_at).to_string() })))
}

#[utoipa::path(post, path = "/telegram/webhook", tag = "telegram",
    params(("X-Telegram-Bot-Api-Secret-Token" = String, Header, description = "telegram.webhook_secret")),
    request_body(content = Object, description = "a Bot API Update"),
    responses((status = 200, description = "committed"), (status = 401, body = super::views::ErrorBody),
              (status = 404, body = super::views::ErrorBody), (status = 503, body = super::views::ErrorBody)))]
async fn webhook(State(state): State<AppState>, req: Request) -> ApiResult<StatusCode> {
    let settings = &state.settings().telegram;
    let channel = match (&state.0.telegram, settings.mode) {
        (Some(channel), TelegramMode::Webhook) => channel.clone(),
        _ => return Err(ApiError::NotFound("Telegram webhook (telegram.mode is not \"webhook\")")),
    };
    let ip = super::client::client_ip(req.headers(), req.extensions(), state.settings().server.trust_forwarded_for);
    state.auth_failures().check(ip)?;
    let given = req.headers().get("x-telegram-bot-api-secret-token").map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    let expected = settings.webhook_secret.as_ref().map(|s| s.expose_secret().as_bytes().to_vec()).unwrap_or_default();
    if expected.is_empty() || given.len() != expected.len() || !bool::from(given.ct_eq(&expected)) {
        state.auth_failures().failed(ip, "/telegram/webhook");
        return Err(ApiError::Unauthorized("missing or wrong X-Telegram-Bot-Api-Secret-Token".into()));
    }
    let body = read_body(req, state.settings().server.max_body_bytes).await?;
    channel.handle(body.to_vec()).await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(StatusCode::OK)
}
