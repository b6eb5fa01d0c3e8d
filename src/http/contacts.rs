//! `/api/v1/contacts`: search, read, merge, erase (admins only).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery, into_page, page_limit};
use super::views::{ContactView, ts};
use crate::base::ms;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts))
        .routes(routes!(get_contact, erase_contact))
        .routes(routes!(merge_contact))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactList {
    pub items: Vec<ContactView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", params(ContactQuery), security(("bearer" = [])),
    responses((status = 200, body = ContactList)))]
async fn list_contacts(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> ApiResult<axum::Json<ContactList>> {
    let limit = page_limit(q.limit)?;
    let items =
        state.store().contacts(q.q.as_deref().filter(|s| !s.trim().is_empty()), limit + 1, q.cursor.as_deref()).await?;
    let (items, next_cursor) = into_page(items, limit, |c| c.id.clone());
    Ok(axum::Json(ContactList { items: items.into_iter().map(ContactView::from).collect(), next_cursor }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactLead {
    pub id: String,
    pub status: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactDetailView {
    #[serde(flatten)]
    pub contact: ContactView,
    /// Set when this contact was merged into another.
    pub merged_into: Option<String>,
    pub leads: Vec<ContactLead>,
    /// Other contacts merged into this one, oldest first (each can be undone).
    pub merges: Vec<super::merges::MergeView>,
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ContactDetailView), (status = 404, body = super::views::ErrorBody)))]
async fn get_contact(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<ContactDetailView>> {
    let c = state.store().contact(&id).await?.ok_or(ApiError::NotFound("contact"))?;
    let merges = state.store().merges_into(&id).await?;
    Ok(axum::Json(ContactDetailView {
        contact: c.contact.into(),
        merged_into: c.merged_into,
        leads: c.leads.into_iter().map(|(id, status, at)| ContactLead { id, status, created_at: ts(at) }).collect(),
        merges: merges.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The contact to merge into this one.
    pub other_id: String,
}

#[utoipa::path(post, path = "/api/v1/contacts/{id}/merge", tag = "contacts", params(("id" = String, Path)), request_body = MergeRequest,
    security(("bearer" = [])),
    responses((status = 200, body = ContactDetailView), (status = 404, body = super::views::ErrorBody), (status = 409, body = super::views::ErrorBody)))]
async fn merge_contact(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MergeRequest>,
) -> ApiResult<axum::Json<ContactDetailView>> {
    if body.other_id == id {
        return Err(ApiError::invalid("a contact cannot be merged with itself"));
    }
    for cid in [&id, &body.other_id] {
        let c = state.store().contact(cid).await?.ok_or(ApiError::NotFound("contact"))?;
        if let Some(into) = c.merged_into {
            return Err(ApiError::Conflict(format!("contact {cid} was already merged into {into}")));
        }
    }
    let mut tx = state.store().begin().await?;
    tx.merge_contacts(&id, std::slice::from_ref(&body.other_id), "manual", Some("admin"), ms(jiff::Timestamp::now()))
        .await?;
    tx.commit().await?;
    get_contact(Admin, State(state), ApiPath(id)).await
}

#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "personal data erased from every table (and, on SQLite, from the file and its WAL); leads stay, without content, for statistics"), (status = 404, body = super::views::ErrorBody)))]
async fn erase_contact(_: Admin, State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<StatusCode> {
    let mut tx = state.store().begin().await?;
    tx.erase_contact(&id, ms(jiff::Timestamp::now())).await?;
    tx.commit().await?;
    // The old pages go from the write-ahead log too; a reader holding an old snapshot can
    // delay that by moments.
    for attempt in 0..20 {
        match state.store().forget_old_pages().await {
            Ok(()) => break,
            Err(e) if attempt == 19 => tracing::warn!(error = %e, "erased, but the WAL was not emptied yet"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    tracing::info!(contact_id = %id, "contact erased");
    Ok(StatusCode::NO_CONTENT)
}
