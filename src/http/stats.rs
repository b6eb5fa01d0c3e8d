//! `/api/v1/stats/summary`: where leads come from, where they stand, who converts.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use super::leads::parse_time;
use super::views::ts;
use crate::domain::Status;
use crate::store::ms;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(summary))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Range {
    /// Start (inclusive), RFC 3339 or a date. Default: 30 days before `to`.
    pub from: Option<String>,
    /// End (exclusive). Default: now.
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeadCounts {
    pub total: i64,
    pub by_channel: BTreeMap<String, i64>,
    pub by_source: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FirstResponse {
    pub mean_s: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RepSummary {
    pub id: String,
    pub open: i64,
    pub won: i64,
    pub lost: i64,
    /// won / (won + lost); null before anything closed.
    pub conversion: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryView {
    pub from: String,
    pub to: String,
    pub leads: LeadCounts,
    /// Leads created in the range by their current status.
    pub funnel: BTreeMap<String, i64>,
    pub lost_reasons: BTreeMap<String, i64>,
    pub first_response: FirstResponse,
    pub reps: Vec<RepSummary>,
    pub unassigned: i64,
}

#[utoipa::path(get, path = "/api/v1/stats/summary", tag = "stats", params(Range), security(("bearer" = [])),
    responses((status = 200, body = SummaryView)))]
async fn summary(
    caller: Caller,
    State(state): State<AppState>,
    ApiQuery(range): ApiQuery<Range>,
) -> ApiResult<axum::Json<SummaryView>> {
    caller.require_admin()?;
    Ok(axum::Json(summary_view(&state, &range).await?))
}

/// The summary for `range`, as the API returns it (the dashboard renders the same).
pub(crate) async fn summary_view(state: &AppState, range: &Range) -> ApiResult<SummaryView> {
    let to = match &range.to {
        Some(t) => parse_time("to", t)?,
        None => ms(jiff::Timestamp::now()),
    };
    let from = match &range.from {
        Some(f) => parse_time("from", f)?,
        None => to - 30 * 24 * 3600 * 1000,
    };
    if from >= to {
        return Err(ApiError::invalid("`from` must be before `to`"));
    }
    let s = state.store().summary(from, to).await?;
    let funnel = Status::ALL
        .iter()
        .map(|st| (st.as_str().to_owned(), s.by_status.get(st.as_str()).copied().unwrap_or(0)))
        .collect();
    Ok(SummaryView {
        from: ts(from),
        to: ts(to),
        leads: LeadCounts { total: s.total, by_channel: s.by_channel, by_source: s.by_source },
        funnel,
        lost_reasons: s.lost_reasons,
        first_response: FirstResponse { mean_s: s.first_response_mean_ms.map(|m| m / 1000.0) },
        reps: s
            .reps
            .into_iter()
            .map(|r| RepSummary {
                conversion: (r.won + r.lost > 0).then(|| r.won as f64 / (r.won + r.lost) as f64),
                id: r.id,
                open: r.open,
                won: r.won,
                lost: r.lost,
            })
            .collect(),
        unassigned: s.unassigned,
    })
}
