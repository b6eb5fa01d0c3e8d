//! `/api/v1/reps`: list, create, change availability (admins only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath};
use super::leads::{nullable, parse_time};
use super::views::RepView;
use crate::base::ms;
use crate::domain::working_hours::WorkingHours;
use crate::settings::NotifyVia;
use crate::store::{RepPatch, RepRecord, RepSeed};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_reps, create_rep)).routes(routes!(patch_rep))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RepList {
    pub items: Vec<RepView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/reps", tag = "reps", security(("bearer" = [])), responses((status = 200, body = RepList)))]
async fn list_reps(_: Admin, State(state): State<AppState>) -> ApiResult<axum::Json<RepList>> {
    let items = state.store().reps().await?.into_iter().map(RepView::from).collect();
    Ok(axum::Json(RepList { items, next_cursor: None }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRep {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub telegram_chat_id: Option<i64>,
    pub capacity: Option<u32>,
    pub weight: Option<u32>,
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default)]
    pub languages: Vec<String>,
    pub timezone: Option<String>,
    pub working_hours: Option<String>,
    pub active: Option<bool>,
    /// `auto` (Telegram when there is a chat id, else email), `email` or `telegram`.
    #[schema(value_type = Option<String>)]
    pub notify: Option<NotifyVia>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedRep {
    #[serde(flatten)]
    pub rep: RepView,
    /// The rep's API token. Shown once; only its hash is stored.
    pub api_token: String,
}

fn check_schedule(timezone: Option<&str>, hours: Option<&str>) -> ApiResult<()> {
    if let Some(tz) = timezone {
        jiff::tz::TimeZone::get(tz).map_err(|_| ApiError::invalid(format!("unknown timezone `{tz}`")))?;
    }
    if let Some(h) = hours {
        WorkingHours::parse(h).map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    Ok(())
}

fn check_teams(state: &AppState, teams: &[String]) -> ApiResult<()> {
    match teams.iter().find(|t| state.settings().team(t).is_none()) {
        Some(t) => Err(ApiError::invalid(format!("team `{t}` is not defined in the config"))),
        None => Ok(()),
    }
}

#[utoipa::path(post, path = "/api/v1/reps", tag = "reps", request_body = NewRep, security(("bearer" = [])),
    responses((status = 201, body = CreatedRep), (status = 409, body = super::views::ErrorBody), (status = 422, body = super::views::ErrorBody)))]
async fn create_rep(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewRep>,
) -> ApiResult<impl IntoResponse> {
    let id = body.id.trim();
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(ApiError::invalid("`id` must be 1–64 letters, digits, `-`, `_` or `.`"));
    }
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid("`name` must not be empty"));
    }
    if body.weight == Some(0) {
        return Err(ApiError::invalid("`weight` must be at least 1"));
    }
    check_schedule(body.timezone.as_deref(), body.working_hours.as_deref())?;
    check_teams(&state, &body.teams)?;
    let token = format!("lr_{}{}", crate::base::new_id(), crate::base::new_id());
    let seed = RepSeed {
        id: id.to_owned(),
        name: body.name.trim().to_owned(),
        email: body.email,
        telegram_chat_id: body.telegram_chat_id,
        api_token_hash: Some(crate::base::token_hash(&token)),
        capacity: body.capacity,
        weight: body.weight.unwrap_or(1),
        languages: body.languages,
        timezone: body.timezone,
        working_hours: body.working_hours,
        active: body.active.unwrap_or(true),
        out_of_office_until: None,
        teams: body.teams,
        notify: body.notify.unwrap_or_default(),
    };
    let mut tx = state.store().begin().await?;
    tx.create_rep(&seed, ms(jiff::Timestamp::now())).await?;
    tx.commit().await?;
    crate::assignment::assign_waiting(state.core()).await?;
    let rep = state.store().rep(id).await?.ok_or(ApiError::NotFound("rep"))?;
    Ok((StatusCode::CREATED, axum::Json(CreatedRep { rep: rep.into(), api_token: token })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRep {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub telegram_chat_id: Option<Option<i64>>,
    /// Maximum open leads; null = unlimited.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>)]
    pub capacity: Option<Option<u32>>,
    pub weight: Option<u32>,
    pub active: Option<bool>,
    /// RFC 3339 or a date; null = back at work.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub out_of_office_until: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub working_hours: Option<Option<String>>,
    pub teams: Option<Vec<String>>,
    #[schema(value_type = Option<String>)]
    pub notify: Option<NotifyVia>,
}

#[utoipa::path(patch, path = "/api/v1/reps/{id}", tag = "reps", params(("id" = String, Path)), request_body = PatchRep,
    security(("bearer" = [])),
    responses((status = 200, body = RepView), (status = 404, body = super::views::ErrorBody), (status = 422, body = super::views::ErrorBody)))]
async fn patch_rep(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PatchRep>,
) -> ApiResult<axum::Json<RepView>> {
    if body.weight == Some(0) {
        return Err(ApiError::invalid("`weight` must be at least 1"));
    }
    if body.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::invalid("`name` must not be empty"));
    }
    check_schedule(body.timezone.clone().flatten().as_deref(), body.working_hours.clone().flatten().as_deref())?;
    if let Some(teams) = &body.teams {
        check_teams(&state, teams)?;
    }
    let out_of_office_until = match body.out_of_office_until {
        Some(Some(t)) => Some(Some(parse_time("out_of_office_until", &t)?)),
        Some(None) => Some(None),
        None => None,
    };
    let patch = RepPatch {
        name: body.name,
        email: body.email,
        telegram_chat_id: body.telegram_chat_id,
        capacity: body.capacity,
        weight: body.weight,
        active: body.active,
        out_of_office_until,
        timezone: body.timezone,
        working_hours: body.working_hours,
        teams: body.teams,
        notify: body.notify,
    };
    Ok(axum::Json(apply_patch(&state, &id, &patch).await?.into()))
}

/// Changes a rep (the API's PATCH and the dashboard's reps page) and hands out the leads that
/// were waiting for someone like them.
pub(super) async fn apply_patch(state: &AppState, id: &str, patch: &RepPatch) -> ApiResult<RepRecord> {
    let mut tx = state.store().begin().await?;
    tx.patch_rep(id, patch, ms(jiff::Timestamp::now())).await?;
    tx.commit().await?;
    // Back from leave, made active, given room: waiting leads go out now.
    crate::assignment::assign_waiting(state.core()).await?;
    state.store().rep(id).await?.ok_or(ApiError::NotFound("rep"))
}
