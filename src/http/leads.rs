//! `/api/v1/leads`: create through the API channel, list, read, change, add notes.

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Admin, Caller};
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery, into_page, page_limit};
use super::views::{AssignmentView, InteractionView, LeadList, LeadView, TaskView};
use crate::base::ms;
use crate::channels::api::{self, ApiLead, ApiLeadError};
use crate::domain::InboundMeta;
use crate::domain::{Channel, Status};
use crate::intake::{IntakeError, RawItem};
use crate::pipeline::{LeadUpdate, NoteKind, PipelineError};
use crate::store::{LeadFilter, TaskPatch};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_lead, list_leads))
        .routes(routes!(get_lead, patch_lead))
        .routes(routes!(add_note))
        .routes(routes!(add_task))
        .routes(routes!(update_task))
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(super) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

pub(super) fn parse_time(field: &str, value: &str) -> ApiResult<i64> {
    crate::settings::parse_instant(value)
        .map(ms)
        .ok_or_else(|| ApiError::invalid(format!("`{field}` must be an RFC 3339 time like 2026-12-01T09:00:00Z")))
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::NotFound(what) => ApiError::NotFound(what),
            PipelineError::Rule(rule) => ApiError::invalid(rule.to_string()),
            PipelineError::Invalid(msg) => ApiError::invalid(msg),
            PipelineError::Forbidden(msg) => ApiError::Forbidden(msg),
            PipelineError::Conflict(msg) => ApiError::Conflict(msg),
            PipelineError::Store(e) => e.into(),
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Failed { item_id, source } => {
                tracing::error!(item_id, error = %source, "inquiry kept as a failed inbound item");
                ApiError::NotProcessed(item_id)
            }
            IntakeError::Unavailable(e) => ApiError::Unavailable(e.to_string()),
        }
    }
}

/// A lead created through the API.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLead {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Telegram user id.
    pub telegram_id: Option<i64>,
    /// ISO region for reading national phone numbers, e.g. `US`.
    pub default_region: Option<String>,
    pub subject: Option<String>,
    pub message: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub language: Option<String>,
    #[schema(value_type = Object)]
    #[serde(default)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    /// Idempotency key (the `Idempotency-Key` header works too).
    pub external_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/leads", tag = "leads", request_body = NewLead, security(("bearer" = [])),
    responses((status = 201, description = "created, or the open lead it joined", body = LeadView),
              (status = 200, description = "seen before (same idempotency key)", body = LeadView),
              (status = 422, body = super::views::ErrorBody)))]
async fn create_lead(
    _: Admin,
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewLead>,
) -> ApiResult<impl IntoResponse> {
    let sender_key =
        headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned).or(body.external_id.clone());
    let key = sender_key.clone().unwrap_or_else(crate::base::new_id);
    let lead = ApiLead {
        key: &key,
        name: body.name.as_deref(),
        email: body.email.as_deref(),
        phone: body.phone.as_deref(),
        telegram_id: body.telegram_id,
        default_region: body.default_region.as_deref(),
        subject: body.subject.as_deref(),
        message: body.message.as_deref(),
        utm_source: body.utm_source.as_deref(),
        utm_medium: body.utm_medium.as_deref(),
        utm_campaign: body.utm_campaign.as_deref(),
        language: body.language.as_deref(),
        custom_fields: body.custom_fields.clone(),
    };
    let inquiry = api::inquiry(&lead, jiff::Timestamp::now()).map_err(|e| match e {
        ApiLeadError::NoContact => ApiError::Unprocessable("no_contact", e.to_string()),
        ApiLeadError::Invalid(m) => ApiError::invalid(m),
    })?;
    let payload = serde_json::to_vec(&serde_json::json!({"name": body.name, "email": body.email, "phone": body.phone,
        "telegram_id": body.telegram_id, "message": body.message, "subject": body.subject, "language": body.language,
        "custom_fields": body.custom_fields}))
    .unwrap_or_default();
    let meta = InboundMeta { content_type: Some("application/json".into()), ..Default::default() };
    let raw = RawItem { meta: &meta, payload: &payload, sender_key: sender_key.is_some() };
    let outcome = state.intake().submit(&inquiry, raw).await?;
    let status = match outcome {
        crate::intake::Outcome::KeyReused => return Err(super::forms::key_reused()),
        crate::intake::Outcome::Duplicate { .. } => StatusCode::OK,
        _ => StatusCode::CREATED,
    };
    let lead_id = outcome.lead_id().ok_or(ApiError::NotFound("lead"))?.to_owned();
    Ok((status, axum::Json(lead_detail(&state, &lead_id).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeadQuery {
    /// A status name.
    pub status: Option<String>,
    /// A rep id.
    pub owner: Option<String>,
    pub channel: Option<String>,
    /// Search in names, emails, phones and Telegram ids.
    pub q: Option<String>,
    /// Open leads whose next action is past due.
    pub overdue: Option<bool>,
    /// Open leads waiting for an owner.
    pub unassigned: Option<bool>,
    /// `true`: open leads only; `false`: won or lost ones.
    pub open: Option<bool>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/leads", tag = "leads", params(LeadQuery), security(("bearer" = [])),
    responses((status = 200, body = LeadList)))]
async fn list_leads(
    caller: Caller,
    axum::extract::State(state): axum::extract::State<AppState>,
    ApiQuery(q): ApiQuery<LeadQuery>,
) -> ApiResult<axum::Json<LeadList>> {
    let status = q
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(|e| ApiError::BadRequest("bad_query", e.to_string()))?;
    let channel = q
        .channel
        .as_deref()
        .map(str::parse::<Channel>)
        .transpose()
        .map_err(|e| ApiError::BadRequest("bad_query", e))?;
    let limit = page_limit(q.limit)?;
    let owner = match caller.rep_scope() {
        Some(rep) => Some(rep.to_owned()),
        None => q.owner,
    };
    let filter = LeadFilter {
        status,
        owner,
        channel,
        q: q.q.filter(|s| !s.trim().is_empty()),
        overdue: q.overdue,
        unassigned: q.unassigned,
        open: q.open,
        limit: limit + 1,
        cursor: q.cursor,
        ..Default::default()
    };
    let rows = state.store().leads(&filter, ms(jiff::Timestamp::now())).await?;
    let (rows, next_cursor) = into_page(rows, limit, |l| l.id.clone());
    let contact_ids: Vec<String> = rows.iter().map(|l| l.contact_id.clone()).collect();
    let identities = state.store().identities_by_contact(&contact_ids).await?;
    let items = rows
        .into_iter()
        .map(|l| {
            let mine = identities.get(&l.contact_id).cloned().unwrap_or_default();
            LeadView::new(l, mine)
        })
        .collect();
    Ok(axum::Json(LeadList { items, next_cursor }))
}

/// The lead with its contact, timeline and assignment history.
pub(super) async fn lead_detail(state: &AppState, id: &str) -> ApiResult<LeadView> {
    let lead = state.store().lead(id).await?.ok_or(ApiError::NotFound("lead"))?;
    let (identities, interactions, assignments) = state.store().lead_timeline(&lead).await?;
    let mut view = LeadView::new(lead, identities);
    view.interactions = Some(interactions.into_iter().map(InteractionView::from).collect());
    view.assignments = Some(assignments.into_iter().map(AssignmentView::from).collect());
    view.status_changes = Some(state.store().status_changes(id).await?.into_iter().map(Into::into).collect());
    view.tasks = Some(state.store().tasks(id).await?.into_iter().map(Into::into).collect());
    Ok(view)
}

#[utoipa::path(get, path = "/api/v1/leads/{id}", tag = "leads", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = LeadView), (status = 404, body = super::views::ErrorBody)))]
async fn get_lead(
    caller: Caller,
    axum::extract::State(state): axum::extract::State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<LeadView>> {
    let view = lead_detail(&state, &id).await?;
    if let Some(rep) = caller.rep_scope() {
        // Another rep's lead does not exist as far as this token is concerned.
        if view.owner.as_ref().is_none_or(|o| o.id != rep) {
            return Err(ApiError::NotFound("lead"));
        }
    }
    Ok(axum::Json(view))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchLead {
    pub status: Option<String>,
    /// Required with `status: "lost"`: one of `pipeline.lost_reasons`.
    pub lost_reason: Option<String>,
    /// Says why; required with the reason `other`.
    pub lost_note: Option<String>,
    /// Rep id of the new owner (admins only).
    pub owner: Option<String>,
    /// Why the lead changes hands (with `owner`).
    pub reassign_note: Option<String>,
    /// RFC 3339, or null to clear.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub next_action_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub next_action_note: Option<Option<String>>,
}

#[utoipa::path(patch, path = "/api/v1/leads/{id}", tag = "leads", params(("id" = String, Path)), request_body = PatchLead,
    security(("bearer" = [])),
    responses((status = 200, body = LeadView), (status = 404, body = super::views::ErrorBody),
              (status = 409, body = super::views::ErrorBody), (status = 422, body = super::views::ErrorBody)))]
async fn patch_lead(
    caller: Caller,
    axum::extract::State(state): axum::extract::State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PatchLead>,
) -> ApiResult<axum::Json<LeadView>> {
    let status =
        body.status.as_deref().map(str::parse::<Status>).transpose().map_err(|e| ApiError::invalid(e.to_string()))?;
    let next_action_at = match body.next_action_at {
        Some(Some(t)) => Some(Some(parse_time("next_action_at", &t)?)),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(Some(note)) = &body.next_action_note
        && note.chars().count() > 2000
    {
        return Err(ApiError::invalid("`next_action_note` is longer than 2000 characters"));
    }
    if body.reassign_note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(ApiError::invalid("`reassign_note` is longer than 2000 characters"));
    }
    if body.reassign_note.is_some() && body.owner.is_none() {
        return Err(ApiError::invalid("`reassign_note` goes with `owner`"));
    }
    let update = LeadUpdate {
        status,
        lost_reason: body.lost_reason,
        lost_note: body.lost_note,
        owner: body.owner,
        reassign_note: body.reassign_note,
        next_action_at,
        next_action_note: body.next_action_note,
    };
    state.pipeline().update_lead(&caller.0, &id, &update).await?;
    Ok(axum::Json(lead_detail(&state, &id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    pub text: String,
    /// `note` (internal, default), `call` or `message` (a touch made outside leadrouter: counts
    /// as the first response).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub kind: NoteKind,
}

#[utoipa::path(post, path = "/api/v1/leads/{id}/notes", tag = "leads", params(("id" = String, Path)), request_body = NewNote,
    security(("bearer" = [])),
    responses((status = 201, body = LeadView), (status = 404, body = super::views::ErrorBody)))]
async fn add_note(
    caller: Caller,
    axum::extract::State(state): axum::extract::State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewNote>,
) -> ApiResult<impl IntoResponse> {
    state.pipeline().add_note(&caller.0, &id, body.kind, &body.text).await?;
    Ok((StatusCode::CREATED, axum::Json(lead_detail(&state, &id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub title: String,
    /// RFC 3339.
    pub due_at: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/leads/{id}/tasks", tag = "leads", params(("id" = String, Path)), request_body = NewTask,
    security(("bearer" = [])),
    responses((status = 201, body = TaskView), (status = 404, body = super::views::ErrorBody),
              (status = 422, body = super::views::ErrorBody)))]
async fn add_task(
    caller: Caller,
    axum::extract::State(state): axum::extract::State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewTask>,
) -> ApiResult<impl IntoResponse> {
    let due_at = body.due_at.as_deref().map(|t| parse_time("due_at", t)).transpose()?;
    let task = state.pipeline().add_task(&caller.0, &id, &body.title, due_at).await?;
    Ok((StatusCode::CREATED, axum::Json(TaskView::from(task))))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTask {
    pub title: Option<String>,
    /// RFC 3339, or null to clear.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub due_at: Option<Option<String>>,
    pub done: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/leads/{id}/tasks/{task_id}", tag = "leads",
    params(("id" = String, Path), ("task_id" = String, Path)), request_body = PatchTask, security(("bearer" = [])),
    responses((status = 200, body = TaskView), (status = 404, body = super::views::ErrorBody),
              (status = 422, body = super::views::ErrorBody)))]
async fn update_task(
    caller: Caller,
    axum::extract::State(state): axum::extract::State<AppState>,
    ApiPath((id, task_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PatchTask>,
) -> ApiResult<axum::Json<TaskView>> {
    let due_at = match body.due_at {
        Some(Some(t)) => Some(Some(parse_time("due_at", &t)?)),
        Some(None) => Some(None),
        None => None,
    };
    let patch = TaskPatch { title: body.title, due_at, done: body.done };
    let task = state.pipeline().update_task(&caller.0, &id, &task_id, &patch).await?;
    Ok(axum::Json(TaskView::from(task)))
}
