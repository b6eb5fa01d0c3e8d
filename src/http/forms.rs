//! `POST /api/v1/forms/{form_id}`: website forms in, leads out.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, read_body};
use crate::base::{ms, new_id};
use crate::channels::webform::form_config;
use crate::channels::webform::parse::BodyError;
use crate::channels::webform::{self, Parsed, WebformError, signature};
use crate::domain::InboundMeta;
use crate::intake::{Outcome, RawItem};
use crate::settings::{FormSettings, Settings};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(submit_form))
}

/// CORS for form posts from browsers: a declared form allows its `allowed_origins`; in the
/// no-config mode any origin. Other paths get no CORS headers. It wraps the whole router
/// because preflight `OPTIONS` requests must be answered before method routing.
pub fn cors(settings: std::sync::Arc<Settings>) -> CorsLayer {
    CorsLayer::new()
        .allow_methods([axum::http::Method::POST])
        .allow_headers([header::CONTENT_TYPE, axum::http::HeaderName::from_static("idempotency-key")])
        .allow_origin(AllowOrigin::predicate(move |origin, parts| {
            let Some(form_id) = parts.uri.path().strip_prefix("/api/v1/forms/") else { return false };
            match form_config(&settings, form_id) {
                Some(form) if settings.forms.is_empty() => form.allowed_origins.is_empty(),
                Some(form) => form.allowed_origins.iter().any(|o| o.as_bytes() == origin.as_bytes()),
                None => false,
            }
        }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// `accepted`, or `ok` for a provider's test ping.
    pub status: &'static str,
    /// The lead the submission is on.
    pub id: Option<String>,
    /// The same submission was received before.
    pub duplicate: bool,
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A browser's form post (not a script's fetch) gets a redirect instead of JSON.
fn is_browser_post(headers: &HeaderMap) -> bool {
    let ct = header_str(headers, header::CONTENT_TYPE).unwrap_or_default().to_ascii_lowercase();
    let accept = header_str(headers, header::ACCEPT).unwrap_or_default();
    (ct.starts_with("application/x-www-form-urlencoded") || ct.starts_with("multipart/form-data"))
        && accept.contains("text/html")
}

#[utoipa::path(post, path = "/api/v1/forms/{form_id}", tag = "forms", params(("form_id" = String, Path)),
    request_body(description = "form fields as JSON, urlencoded or multipart",
                 content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"), (Object = "multipart/form-data"))),
    responses(
        (status = 202, description = "stored and routed", body = Accepted),
        (status = 200, description = "provider test ping", body = Accepted),
        (status = 303, description = "browser post: redirect to the form's `redirect_to`"),
        (status = 400, body = super::views::ErrorBody), (status = 401, body = super::views::ErrorBody),
        (status = 404, body = super::views::ErrorBody), (status = 413, body = super::views::ErrorBody),
        (status = 415, body = super::views::ErrorBody), (status = 422, body = super::views::ErrorBody),
        (status = 429, body = super::views::ErrorBody)))]
async fn submit_form(
    State(state): State<AppState>,
    ApiPath(form_id): ApiPath<String>,
    req: Request,
) -> ApiResult<Response> {
    let settings = state.settings();
    let form = form_config(settings, &form_id).ok_or(ApiError::NotFound("form"))?;
    let ip = super::client::client_ip(req.headers(), req.extensions(), settings.server.trust_forwarded_for);
    if let Err(not_until) = state.0.form_limiter.check_key(&ip) {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
        return Err(ApiError::TooManyRequests(wait.as_secs().max(1)));
    }
    let now = jiff::Timestamp::now();
    let headers = req.headers().clone();
    let query = req.uri().query().map(str::to_owned);
    let body = read_body(req, settings.server.max_body_bytes).await?;
    signature::verify(&form, &headers, query.as_deref(), &body, ms(now))
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;

    let content_type = header_str(&headers, header::CONTENT_TYPE);
    let referer = header_str(&headers, header::REFERER);
    let idempotency_key = match headers.get("idempotency-key") {
        Some(v) => {
            Some(v.to_str().map_err(|_| ApiError::BadRequest("bad_header", "Idempotency-Key must be ASCII".into()))?)
        }
        None => None,
    };
    let received = webform::Received {
        form: &form,
        content_type,
        body: body.clone(),
        referer,
        idempotency_key,
        external_id: None,
        received_at: now,
        dedup_window_ms: settings.server.dedup_window.as_millis_i64(),
    };
    let inquiry = match webform::read(received).await.map_err(webform_error)? {
        Parsed::Inquiry(inquiry) => inquiry,
        Parsed::TestPing => {
            return Ok(
                (StatusCode::OK, axum::Json(Accepted { status: "ok", id: None, duplicate: false })).into_response()
            );
        }
        Parsed::Honeypot => {
            // Bots must not learn they were caught: the answer a real submission gets, down to
            // the redirect and the Location of a lead that does not exist.
            tracing::info!(form = %form.id, "honeypot filled: dropped");
            metrics::counter!("leadrouter_inquiries_total", "channel" => "webform", "outcome" => "honeypot")
                .increment(1);
            return Ok(answer(&form, &headers, Some(new_id()), false));
        }
    };
    let meta = InboundMeta {
        form_id: Some(form.id.clone()),
        content_type: content_type.map(str::to_owned),
        referer: referer.map(str::to_owned),
        mailbox: None,
    };
    let raw = RawItem { meta: &meta, payload: &body, sender_key: idempotency_key.is_some() };
    let (id, duplicate) = match state.intake().submit(&inquiry, raw).await {
        Ok(Outcome::KeyReused) => return Err(key_reused()),
        Ok(outcome @ Outcome::Duplicate { .. }) => (outcome.lead_id().map(str::to_owned), true),
        Ok(outcome) => (outcome.lead_id().map(str::to_owned), false),
        // Kept as a failed inbound item (nothing is lost, it can be replayed), but it is no
        // lead: the sender hears so, and a retry processes it again.
        Err(e) => return Err(e.into()),
    };
    Ok(answer(&form, &headers, id, duplicate))
}

/// A stored submission's answer: a browser's form post goes to the form's thank-you page,
/// anything else gets 202 with the lead's id and `Location`.
fn answer(form: &FormSettings, headers: &HeaderMap, id: Option<String>, duplicate: bool) -> Response {
    if let Some(target) = form.redirect_to.as_deref().filter(|_| is_browser_post(headers)) {
        return Redirect::to(target).into_response();
    }
    let location = id.as_ref().and_then(|id| HeaderValue::from_str(&format!("/api/v1/leads/{id}")).ok());
    let mut response =
        (StatusCode::ACCEPTED, axum::Json(Accepted { status: "accepted", id, duplicate })).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The answer to an `Idempotency-Key` sent again with another body.
pub(super) fn key_reused() -> ApiError {
    ApiError::Unprocessable(
        "idempotency_key_reused",
        "this Idempotency-Key was already used for a different body: use a new key for a new submission".into(),
    )
}

fn webform_error(e: WebformError) -> ApiError {
    match e {
        WebformError::Body(b @ BodyError::UnsupportedType(_)) => ApiError::UnsupportedMediaType(b.to_string()),
        WebformError::Body(b) => ApiError::BadRequest("malformed_body", b.to_string()),
        WebformError::Map(m) => ApiError::BadRequest("malformed_body", m.to_string()),
        WebformError::NoContact(n) => ApiError::Unprocessable("no_contact", n.to_string()),
        WebformError::BadKey => ApiError::BadRequest("bad_header", e.to_string()),
    }
}
