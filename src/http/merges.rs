//! Merges people decide about: `/api/v1/merge-reviews` (merges held because anonymous input
//! asked for them between contacts that both have owners: an admin, or every owner,
//! confirms; an admin or any owner rejects) and `POST /api/v1/merges/{id}/undo` (admins).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Admin, Caller};
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, page_limit};
use super::views::{ErrorBody, ts, ts_opt};
use crate::pipeline::Actor;
use crate::pipeline::merges::Confirmed;
use crate::store::{MergeReviewRow, MergeRow};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_reviews))
        .routes(routes!(confirm_review))
        .routes(routes!(reject_review))
        .routes(routes!(undo_merge))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MergeReviewView {
    pub id: String,
    /// `pending`, `merged` or `rejected`.
    pub status: String,
    /// The contact the other one would be merged into.
    pub contact_id: String,
    pub other_contact_id: String,
    /// The lead the inquiry that linked them went to.
    pub lead_id: Option<String>,
    pub channel: String,
    /// Owners who confirmed so far.
    pub confirmed_by: Vec<String>,
    pub created_at: String,
    pub decided_at: Option<String>,
    /// `admin` or `rep:<id>`.
    pub decided_by: Option<String>,
}

impl From<MergeReviewRow> for MergeReviewView {
    fn from(r: MergeReviewRow) -> Self {
        MergeReviewView {
            id: r.id,
            status: r.status,
            contact_id: r.into_id,
            other_contact_id: r.from_id,
            lead_id: r.lead_id,
            channel: r.channel,
            confirmed_by: r.confirmed_by,
            created_at: ts(r.created_at),
            decided_at: ts_opt(r.decided_at),
            decided_by: r.decided_by,
        }
    }
}

/// A merge of another contact into this one.
#[derive(Debug, Serialize, ToSchema)]
pub struct MergeView {
    /// Give it to `POST /api/v1/merges/{id}/undo`.
    pub id: String,
    pub from_contact_id: String,
    /// `shared identity` (an inquiry linked them), `manual`, `review` (a held merge confirmed).
    pub reason: String,
    pub actor: Option<String>,
    pub at: String,
    pub undone_at: Option<String>,
    pub undone_by: Option<String>,
}

impl From<MergeRow> for MergeView {
    fn from(m: MergeRow) -> Self {
        MergeView {
            id: m.id,
            from_contact_id: m.from_id,
            reason: m.reason,
            actor: m.actor,
            at: ts(m.at),
            undone_at: ts_opt(m.undone_at),
            undone_by: m.undone_by,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewQuery {
    /// `pending` (default), `merged` or `rejected`.
    pub status: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewList {
    pub items: Vec<MergeReviewView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/merge-reviews", tag = "contacts", params(ReviewQuery), security(("bearer" = [])),
    responses((status = 200, description = "reviews, newest first (a rep: those about contacts with a lead of theirs)", body = ReviewList),
              (status = 400, description = "bad query", body = ErrorBody), (status = 401, description = "no or wrong token", body = ErrorBody)))]
async fn list_reviews(
    caller: Caller,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> ApiResult<axum::Json<ReviewList>> {
    let status = q.status.as_deref().unwrap_or("pending");
    if !matches!(status, "pending" | "merged" | "rejected") {
        return Err(ApiError::BadRequest("bad_query", "status must be pending, merged or rejected".into()));
    }
    let limit = page_limit(q.limit)?;
    let items = state.store().merge_reviews(status, caller.rep_scope(), limit).await?;
    Ok(axum::Json(ReviewList { items: items.into_iter().map(Into::into).collect(), next_cursor: None }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Decision {
    /// `merged`, `waiting` (other owners have yet to confirm) or `rejected`.
    pub status: &'static str,
    /// Owners whose confirmation is still needed.
    pub waiting_for: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/merge-reviews/{id}/confirm", tag = "contacts", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "merged (an admin, or the last owner to confirm), or waiting for other owners", body = Decision),
              (status = 401, description = "no or wrong token", body = ErrorBody),
              (status = 404, description = "no such review among the caller's", body = ErrorBody),
              (status = 409, description = "decided already, or a contact was merged elsewhere since", body = ErrorBody)))]
async fn confirm_review(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<Decision>> {
    Ok(axum::Json(match state.pipeline().confirm_merge(&caller.0, &id).await? {
        Confirmed::Merged => Decision { status: "merged", waiting_for: Vec::new() },
        Confirmed::Waiting(waiting_for) => Decision { status: "waiting", waiting_for },
    }))
}

#[utoipa::path(post, path = "/api/v1/merge-reviews/{id}/reject", tag = "contacts", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "the contacts stay apart", body = Decision),
              (status = 401, description = "no or wrong token", body = ErrorBody),
              (status = 404, description = "no such review among the caller's", body = ErrorBody),
              (status = 409, description = "decided already", body = ErrorBody)))]
async fn reject_review(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<Decision>> {
    state.pipeline().reject_merge(&caller.0, &id).await?;
    Ok(axum::Json(Decision { status: "rejected", waiting_for: Vec::new() }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UndoneView {
    /// Folded leads open again, with their messages.
    pub reopened: Vec<String>,
    /// Folded leads left closed: their contact has another open lead by now.
    pub left_closed: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/merges/{id}/undo", tag = "contacts", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "the merged contact stands on its own again", body = UndoneView),
              (status = 401, description = "no or wrong token", body = ErrorBody), (status = 403, description = "not an admin", body = ErrorBody),
              (status = 404, description = "no such merge", body = ErrorBody),
              (status = 409, description = "undone already, or a later merge must be undone first", body = ErrorBody)))]
async fn undo_merge(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<UndoneView>> {
    let undone = state.pipeline().undo_merge(&Actor::Admin, &id).await?;
    Ok(axum::Json(UndoneView { reopened: undone.reopened, left_closed: undone.left_closed }))
}
