//! `/api/v1/outbox`: what the notifiers delivered, what is pending, what died.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, into_page, page_limit};
use super::views::ts;
use crate::base::ms;
use crate::store::OutboxRow;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_outbox)).routes(routes!(retry_outbox))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// `pending`, `sent`, `skipped` or `dead`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxView {
    pub id: String,
    /// `webhook`, `email` or `telegram`.
    pub kind: String,
    pub target: String,
    pub event_id: String,
    pub event_type: String,
    pub lead_id: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
}

impl From<OutboxRow> for OutboxView {
    fn from(r: OutboxRow) -> Self {
        OutboxView {
            id: r.id,
            kind: r.kind,
            target: r.target,
            event_id: r.event_id,
            event_type: r.event_type,
            lead_id: r.lead_id,
            status: r.status,
            attempts: r.attempts,
            next_attempt_at: ts(r.next_attempt_at),
            last_error: r.last_error,
            created_at: ts(r.created_at),
            sent_at: r.sent_at.map(ts),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxList {
    pub items: Vec<OutboxView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/outbox", tag = "outbox", params(OutboxQuery), security(("bearer" = [])),
    responses((status = 200, body = OutboxList)))]
async fn list_outbox(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> ApiResult<axum::Json<OutboxList>> {
    if let Some(s) = &q.status
        && !matches!(s.as_str(), "pending" | "sent" | "skipped" | "dead")
    {
        return Err(ApiError::BadRequest("bad_query", "status must be pending, sent, skipped or dead".into()));
    }
    let limit = page_limit(q.limit)?;
    let rows = state.store().outbox_list(q.status.as_deref(), limit + 1, q.cursor.as_deref()).await?;
    let (rows, next_cursor) = into_page(rows, limit, |r| r.id.clone());
    Ok(axum::Json(OutboxList { items: rows.into_iter().map(OutboxView::from).collect(), next_cursor }))
}

#[utoipa::path(post, path = "/api/v1/outbox/{id}/retry", tag = "outbox", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 202, description = "queued again"), (status = 404, body = super::views::ErrorBody)))]
async fn retry_outbox(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::http::StatusCode> {
    if state.store().outbox_retry(&id, ms(jiff::Timestamp::now())).await? {
        Ok(axum::http::StatusCode::ACCEPTED)
    } else {
        Err(ApiError::NotFound("dead outbox message"))
    }
}
