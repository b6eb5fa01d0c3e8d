//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    /// Each channel worker (`imap:<id>`, …): `starting`, `connected`, `standby` (another
    /// instance has it), `error` or `auth_failed`, with the last error. A failing channel does
    /// not make the API unready.
    #[schema(value_type = Object)]
    pub channels: std::collections::BTreeMap<String, crate::channels::status::Health>,
}

#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Readiness), (status = 503, body = super::views::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Readiness>, ApiError> {
    state.store().ping().await.map_err(|e| ApiError::Unavailable(format!("database unreachable: {e}")))?;
    Ok(axum::Json(Readiness { status: "ready", channels: state.0.channels.snapshot() }))
}

#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match &state.0.metrics {
        Some(handle) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
        }
        None => ApiError::NotFound("metrics recorder").into_response(),
    }
}
