//! The managers' web dashboard under `/app`: server-rendered HTML (maud), one stylesheet and a
//! little JavaScript that only enhances (every form posts without it). A page acts as the
//! signed-in token's `Actor` through the same `Pipeline` and store calls the API uses, so a rep
//! sees only their own leads here too.

mod analytics;
mod board;
mod charts;
mod inbox;
mod lead;
mod reps;
mod session;

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::base::from_ms;
use crate::domain::Status;
use crate::pipeline::{Actor, PipelineError};
use crate::store::StoreError;
pub(super) use session::Session;
use session::csrf_field;

const CSS: &str = include_str!("static/app.css");
const JS: &str = include_str!("static/app.js");

/// Asset URLs carry a hash of the content, so browsers may cache them for good.
static CSS_URL: LazyLock<String> = LazyLock::new(|| format!("/app/static/app.css?v={}", short_hash(CSS)));
static JS_URL: LazyLock<String> = LazyLock::new(|| format!("/app/static/app.js?v={}", short_hash(JS)));

fn short_hash(s: &str) -> String {
    crate::base::token_hash(s).chars().take(12).collect()
}

pub fn router(state: AppState) -> Router {
    let timeout = state.settings().server.request_timeout.0;
    Router::new()
        .route("/app", get(inbox::page))
        .route("/app/", get(|| async { axum::response::Redirect::to("/app") }))
        .route("/app/login", get(session::login_form).post(session::login))
        .route("/app/logout", post(session::logout))
        .route("/app/board", get(board::page))
        .route("/app/analytics", get(analytics::page))
        .route("/app/reps", get(reps::page))
        .route("/app/reps/{id}/active", post(reps::set_active))
        .route("/app/reps/{id}/out-of-office", post(reps::set_out_of_office))
        .route("/app/leads/{id}", get(lead::page))
        .route("/app/leads/{id}/status", post(lead::change_status))
        .route("/app/leads/{id}/next-action", post(lead::next_action))
        .route("/app/leads/{id}/notes", post(lead::add_note))
        .route("/app/leads/{id}/reassign", post(lead::reassign))
        .route("/app/leads/{id}/tasks", post(lead::add_task))
        .route("/app/leads/{id}/tasks/{task_id}/done", post(lead::task_done))
        .route("/app/leads/{id}/merge-reviews/{review_id}/{decision}", post(lead::decide_merge))
        .route("/app/static/app.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/app/static/app.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .route("/app/{*rest}", get(not_found))
        .with_state(state)
        .layer(axum::middleware::map_response(security_headers))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")], body)
        .into_response()
}

async fn not_found(_session: Session) -> AppError {
    AppError(ApiError::NotFound("page"))
}

/// Pages are never cached and never framed; scripts and styles come only from `/app/static`.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    let is_html =
        h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.starts_with("text/html"));
    if is_html {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A failed page: the API's error, shown as HTML with the same status.
#[derive(Debug)]
pub(super) struct AppError(pub ApiError);

impl From<ApiError> for AppError {
    fn from(e: ApiError) -> Self {
        AppError(e)
    }
}
impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError(e.into())
    }
}
impl From<PipelineError> for AppError {
    fn from(e: PipelineError) -> Self {
        AppError(e.into())
    }
}

impl AppError {
    /// What the person is told (internals are logged, never shown).
    pub fn message(&self) -> String {
        match &self.0 {
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "dashboard request failed");
                "Something went wrong on our side; try again.".into()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let body = html! {
            main #main .narrow {
                h1 { (title) }
                p .alert role="alert" { (self.message()) }
                p { a href="/app" { "Back to the inbox" } }
            }
        };
        (status, Html(document(title, false, body).into_string())).into_response()
    }
}

pub(super) type AppResult<T> = Result<T, AppError>;

/// Which nav entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Inbox,
    Board,
    Analytics,
    Reps,
    Lead,
}

/// The page frame: skip link, nav with `aria-current`, sign-out form, main landmark.
pub(super) fn layout(title: &str, session: &Session, nav: Nav, content: Markup) -> Markup {
    let admin = session.actor == Actor::Admin;
    let items: &[(Nav, &str, &str, bool)] = &[
        (Nav::Inbox, "/app", "Inbox", true),
        (Nav::Board, "/app/board", "Board", true),
        (Nav::Analytics, "/app/analytics", "Analytics", admin),
        (Nav::Reps, "/app/reps", "Reps", true),
    ];
    let who = match &session.actor {
        Actor::Admin => "admin".to_owned(),
        Actor::Rep(id) => id.clone(),
    };
    let body = html! {
        a .skip href="#main" { "Skip to content" }
        header .top {
            a .brand href="/app" { "leadrouter" }
            nav aria-label="Main" {
                ul {
                    @for (item, href, label, shown) in items {
                        @if *shown {
                            li { a href=(href) aria-current=[(*item == nav).then_some("page")] { (label) } }
                        }
                    }
                }
            }
            form .signout method="post" action="/app/logout" {
                (csrf_field(session))
                span .who { "Signed in as " strong { (who) } }
                button type="submit" { "Sign out" }
            }
        }
        main #main tabindex="-1" { (content) }
    };
    document(title, true, body)
}

/// A whole page: `<head>` with the stylesheet (and the script, where the page uses it) around `body`.
pub(super) fn document(title: &str, with_script: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · leadrouter" }
                link rel="stylesheet" href=(*CSS_URL);
                @if with_script { script src=(*JS_URL) defer {} }
            }
            body { (body) }
        }
    }
}

/// A page's HTML response.
pub(super) fn render(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// Query strings of GET pages: a malformed one is a 400 page, not axum's plain text.
pub(super) fn query<T: DeserializeOwned>(raw: Option<&str>) -> AppResult<T> {
    serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|e| AppError(ApiError::BadRequest("bad_query", e.to_string())))
}

/// `2026-05-01 14:03 UTC`: every time in the dashboard is shown (and read) in UTC.
pub(super) fn when(ms: i64) -> String {
    from_ms(ms).strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// A `<time>` element with the machine-readable instant.
pub(super) fn time_el(ms: i64) -> Markup {
    html! { time datetime=(crate::http::views::ts(ms)) { (when(ms)) } }
}

/// The value an `<input type="datetime-local">` shows for `ms` (UTC).
pub(super) fn datetime_local(ms: i64) -> String {
    from_ms(ms).strftime("%Y-%m-%dT%H:%M").to_string()
}

/// Reads an `<input type="datetime-local">` value (`2026-05-01T14:03`, seconds optional) as UTC;
/// RFC 3339 and plain dates are accepted too.
pub(super) fn parse_local(field: &str, value: &str) -> Result<i64, ApiError> {
    let value = value.trim();
    let parsed = value
        .parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .or_else(|| crate::settings::parse_instant(value));
    parsed
        .map(crate::base::ms)
        .ok_or_else(|| ApiError::invalid(format!("`{field}` must be a date and time like 2026-12-01T09:00 (UTC)")))
}

/// A form field that was left empty counts as absent.
pub(super) fn filled(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Human words for a status, capitalised: `Proposal sent`.
pub(super) fn status_label(status: Status) -> String {
    let s = status.words();
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_local_round_trips_in_utc() {
        let ms = parse_local("next_action_at", "2030-01-02T09:30").expect("parses");
        assert_eq!(crate::http::views::ts(ms), "2030-01-02T09:30:00Z");
        assert_eq!(datetime_local(ms), "2030-01-02T09:30");
        assert!(parse_local("x", "2030-01-02T09:30:00Z").is_ok());
        assert!(parse_local("x", "tomorrow").is_err());
        assert_eq!(status_label(Status::ProposalSent), "Proposal sent");
    }
}
