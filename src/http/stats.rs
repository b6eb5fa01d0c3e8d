//! `/api/v1/stats/summary`: where leads come from, where they stand, who converts, how fast
//! they are answered; `/api/v1/stats/leads.csv`: the leads behind those numbers.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::export::CsvExport;
use super::extract::ApiQuery;
use super::leads::parse_time;
use super::views::ts;
use crate::base::ms;
use crate::domain::Status;
use crate::store::{Bucket, Percentiles, SummaryQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(summary)).routes(routes!(export))
}

/// At most this many points in `series`: a longer range needs `bucket=week`.
const MAX_POINTS: i64 = 400;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Range {
    /// Start (inclusive), RFC 3339 or a date. Default: 30 days before `to`.
    pub from: Option<String>,
    /// End (exclusive). Default: now.
    pub to: Option<String>,
    /// Only this team's leads (and its members).
    pub team: Option<String>,
    /// `day` (default) or `week` (Monday to Sunday, UTC): the width of `leads.series` points.
    pub bucket: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeadCounts {
    pub total: i64,
    pub by_channel: BTreeMap<String, i64>,
    /// UTM source (Telegram deep links set one), else `form:<id>`, `mailbox:<id>`, `bot:<name>`,
    /// else the channel.
    pub by_source: BTreeMap<String, i64>,
    /// New leads per day or week, every bucket of the range present (zeros included).
    pub series: Vec<SeriesPointView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesPointView {
    /// The bucket's first instant (00:00 UTC).
    pub start: String,
    pub total: i64,
    pub by_channel: BTreeMap<String, i64>,
    pub by_source: BTreeMap<String, i64>,
}

/// Seconds from a lead's creation to the first outbound touch (a reply, a logged call).
#[derive(Debug, Serialize, ToSchema, Default)]
pub struct ResponseTimes {
    pub count: i64,
    pub mean_s: Option<f64>,
    pub median_s: Option<f64>,
    pub p90_s: Option<f64>,
}

impl From<Option<&Percentiles>> for ResponseTimes {
    fn from(p: Option<&Percentiles>) -> Self {
        match p {
            Some(p) => ResponseTimes {
                count: p.count,
                mean_s: Some(p.mean / 1000.0),
                median_s: Some(p.median / 1000.0),
                p90_s: Some(p.p90 / 1000.0),
            },
            None => ResponseTimes::default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FirstResponse {
    pub count: i64,
    pub mean_s: Option<f64>,
    pub median_s: Option<f64>,
    pub p90_s: Option<f64>,
    pub by_rep: BTreeMap<String, ResponseTimes>,
    pub by_channel: BTreeMap<String, ResponseTimes>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RepSummary {
    pub id: String,
    pub name: String,
    /// Open leads the rep owns now (their load).
    pub open: i64,
    pub won: i64,
    pub lost: i64,
    /// won / (won + lost); null before anything closed.
    pub conversion: Option<f64>,
    pub first_response_median_s: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryView {
    pub from: String,
    pub to: String,
    pub team: Option<String>,
    /// `day` or `week`.
    pub bucket: String,
    pub leads: LeadCounts,
    /// Leads that reached each stage (new → qualification → proposal_sent → negotiation →
    /// waiting_response → won; reaching a later stage counts for the earlier ones), and `lost`:
    /// leads that were lost.
    pub funnel: BTreeMap<String, i64>,
    /// Each stage's count over the previous stage's (null when that one is 0).
    pub funnel_conversion: BTreeMap<String, Option<f64>>,
    /// Leads of the range by their status now.
    pub status_now: BTreeMap<String, i64>,
    pub lost_reasons: BTreeMap<String, i64>,
    pub first_response: FirstResponse,
    pub reps: Vec<RepSummary>,
    /// Open leads without an owner now.
    pub unassigned: i64,
    /// Open leads whose next action is past due now.
    pub overdue: i64,
    /// Open leads without activity for `pipeline.stale_after` now.
    pub stale: i64,
}

#[utoipa::path(get, path = "/api/v1/stats/summary", tag = "stats", params(Range), security(("bearer" = [])),
    responses((status = 200, body = SummaryView), (status = 422, body = super::views::ErrorBody)))]
async fn summary(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(range): ApiQuery<Range>,
) -> ApiResult<axum::Json<SummaryView>> {
    Ok(axum::Json(summary_view(&state, &range).await?))
}

/// The validated query behind a `Range`.
fn summary_query(state: &AppState, range: &Range) -> ApiResult<SummaryQuery> {
    let now = ms(jiff::Timestamp::now());
    let to = match &range.to {
        Some(t) => parse_time("to", t)?,
        None => now,
    };
    let from = match &range.from {
        Some(f) => parse_time("from", f)?,
        None => to - 30 * Bucket::DAY_MS,
    };
    if from >= to {
        return Err(ApiError::invalid("`from` must be before `to`"));
    }
    let bucket = match range.bucket.as_deref() {
        None | Some("day") => Bucket::Day,
        Some("week") => Bucket::Week,
        Some(other) => return Err(ApiError::invalid(format!("`bucket` must be day or week, not `{other}`"))),
    };
    if (to - from) / (Bucket::DAY_MS * bucket.days()) > MAX_POINTS {
        return Err(ApiError::invalid(format!("the range has over {MAX_POINTS} {bucket:?} buckets; use bucket=week")));
    }
    if let Some(team) = &range.team
        && state.settings().team(team).is_none()
    {
        return Err(ApiError::invalid(format!("unknown team `{team}`")));
    }
    let quiet_since = state.settings().pipeline.stale_after.map(|d| now - d.as_millis_i64());
    Ok(SummaryQuery { from, to, team: range.team.clone(), bucket, now, quiet_since })
}

/// The summary for `range`, as the API returns it (the dashboard renders the same).
pub(crate) async fn summary_view(state: &AppState, range: &Range) -> ApiResult<SummaryView> {
    let q = summary_query(state, range)?;
    let s = state.store().summary(&q).await?;

    let first_day = q.bucket.start_day(q.from.div_euclid(Bucket::DAY_MS));
    let last_day = (q.to - 1).div_euclid(Bucket::DAY_MS);
    let series = (first_day..=last_day)
        .step_by(usize::try_from(q.bucket.days()).unwrap_or(1))
        .map(|day| {
            let point = s.series.get(&day).cloned().unwrap_or_default();
            SeriesPointView {
                start: ts(day * Bucket::DAY_MS),
                total: point.total,
                by_channel: point.by_channel,
                by_source: point.by_source,
            }
        })
        .collect();

    // The funnel's stages in order; lost is apart (a lead is lost from any stage).
    let stages: Vec<Status> = Status::ALL.into_iter().filter(|st| *st != Status::Lost).collect();
    let reached = |st: Status| s.reached.get(st.as_str()).copied().unwrap_or(0);
    let mut funnel: BTreeMap<String, i64> = stages.iter().map(|st| (st.as_str().to_owned(), reached(*st))).collect();
    funnel.insert(Status::Lost.as_str().to_owned(), reached(Status::Lost));
    let funnel_conversion = stages
        .windows(2)
        .map(|pair| {
            let before = reached(pair[0]);
            (pair[1].as_str().to_owned(), (before > 0).then(|| reached(pair[1]) as f64 / before as f64))
        })
        .collect();
    let status_now = Status::ALL
        .iter()
        .map(|st| (st.as_str().to_owned(), s.by_status.get(st.as_str()).copied().unwrap_or(0)))
        .collect();

    let overall = ResponseTimes::from(s.first_response.as_ref());
    let first_response = FirstResponse {
        count: overall.count,
        mean_s: overall.mean_s,
        median_s: overall.median_s,
        p90_s: overall.p90_s,
        by_rep: s.first_response_by_rep.iter().map(|(k, p)| (k.clone(), ResponseTimes::from(Some(p)))).collect(),
        by_channel: s
            .first_response_by_channel
            .iter()
            .map(|(k, p)| (k.clone(), ResponseTimes::from(Some(p))))
            .collect(),
    };
    let reps = s
        .reps
        .into_iter()
        .map(|r| RepSummary {
            conversion: (r.won + r.lost > 0).then(|| r.won as f64 / (r.won + r.lost) as f64),
            first_response_median_s: s.first_response_by_rep.get(&r.id).map(|p| p.median / 1000.0),
            id: r.id,
            name: r.name,
            open: r.open,
            won: r.won,
            lost: r.lost,
        })
        .collect();
    Ok(SummaryView {
        from: ts(q.from),
        to: ts(q.to),
        team: q.team,
        bucket: match q.bucket {
            Bucket::Day => "day".into(),
            Bucket::Week => "week".into(),
        },
        leads: LeadCounts { total: s.total, by_channel: s.by_channel, by_source: s.by_source, series },
        funnel,
        funnel_conversion,
        status_now,
        lost_reasons: s.lost_reasons,
        first_response,
        reps,
        unassigned: s.unassigned,
        overdue: s.overdue,
        stale: s.stale,
    })
}

/// The export's columns, in order.
const CSV_HEADER: [&str; 17] = [
    "id",
    "created_at",
    "channel",
    "source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "form",
    "mailbox",
    "team",
    "owner",
    "status",
    "lost_reason",
    "assigned_at",
    "first_response_at",
    "first_response_s",
    "closed_at",
];

#[utoipa::path(get, path = "/api/v1/stats/leads.csv", tag = "stats", params(Range), security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String,
               description = "one row per lead created in the range, with a header row"),
              (status = 422, body = super::views::ErrorBody)))]
async fn export(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(range): ApiQuery<Range>,
) -> ApiResult<impl IntoResponse> {
    let q = summary_query(&state, &range)?;
    let rows = state.store().export_leads(&q).await?;
    let mut csv = CsvExport::new();
    csv.row(CSV_HEADER)?;
    let opt_ts = |t: Option<i64>| t.map(ts).unwrap_or_default();
    for r in rows {
        let response = r.first_response_at.map(|f| ((f - r.created_at) as f64 / 1000.0).to_string());
        csv.row([
            r.id,
            ts(r.created_at),
            r.channel,
            r.source,
            r.utm_source.unwrap_or_default(),
            r.utm_medium.unwrap_or_default(),
            r.utm_campaign.unwrap_or_default(),
            r.form.unwrap_or_default(),
            r.mailbox.unwrap_or_default(),
            r.team.unwrap_or_default(),
            r.owner.unwrap_or_default(),
            r.status,
            r.lost_reason.unwrap_or_default(),
            opt_ts(r.assigned_at),
            opt_ts(r.first_response_at),
            response.unwrap_or_default(),
            opt_ts(r.closed_at),
        ])?;
    }
    let body = csv.finish()?;
    let name = format!("attachment; filename=\"leads-{}-{}.csv\"", &ts(q.from)[..10], &ts(q.to)[..10]);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, name)], body))
}
