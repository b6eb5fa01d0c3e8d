//! The HTTP API: one `AppState`, one file per resource, one error type.

mod app;
mod auth;
mod client;
mod contacts;
mod error;
mod export;
mod extract;
mod forms;
mod leads;
mod merges;
mod ops;
mod outbox;
mod reps;
mod serve;
mod stats;
mod telegram;
mod views;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::Request;
use governor::{DefaultKeyedRateLimiter, Quota};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use auth::BearerScheme;
pub use auth::{Admin, Caller};
pub use error::{ApiError, ApiResult};
pub use serve::{ConnectionLimits, connection_budget, serve};

use crate::channels::status::ChannelStatus;
use crate::channels::telegram::TelegramChannel;
use crate::core::Core;
use crate::inbox::Inbox;
use crate::intake::Intake;
use crate::pipeline::Pipeline;
use crate::settings::Settings;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    intake: Intake,
    pipeline: Pipeline,
    metrics: Option<PrometheusHandle>,
    channels: ChannelStatus,
    telegram: Option<Arc<TelegramChannel<Inbox>>>,
    /// sha256 of each admin token: compared in constant time, never kept in clear.
    admin_token_hashes: Vec<[u8; 32]>,
    form_limiter: DefaultKeyedRateLimiter<IpAddr>,
    auth_failures: auth::AuthFailures,
}

impl AppState {
    pub fn new(
        intake: Intake,
        metrics: Option<PrometheusHandle>,
        channels: ChannelStatus,
        telegram: Option<Arc<TelegramChannel<Inbox>>>,
    ) -> Self {
        use secrecy::ExposeSecret;
        let settings = &intake.core.settings;
        let admin_token_hashes =
            settings.auth.admin_tokens.iter().map(|t| auth::token_digest(t.expose_secret())).collect();
        let per_second = NonZeroU32::new(settings.server.form_rate_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.server.form_rate_burst).unwrap_or(NonZeroU32::MIN);
        let form_limiter = DefaultKeyedRateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst));
        let auth_failures = auth::AuthFailures::new(settings.auth.failure_limit, settings.auth.failure_window.0);
        AppState(Arc::new(Inner {
            pipeline: Pipeline::new(intake.core.clone()),
            intake,
            metrics,
            channels,
            telegram,
            admin_token_hashes,
            form_limiter,
            auth_failures,
        }))
    }

    pub fn intake(&self) -> &Intake {
        &self.0.intake
    }
    /// People's changes to leads.
    pub fn pipeline(&self) -> &Pipeline {
        &self.0.pipeline
    }
    pub fn core(&self) -> &Core {
        &self.0.intake.core
    }
    pub fn store(&self) -> &Store {
        &self.0.intake.core.store
    }
    pub fn settings(&self) -> &Settings {
        &self.0.intake.core.settings
    }

    pub(crate) fn auth_failures(&self) -> &auth::AuthFailures {
        &self.0.auth_failures
    }

    /// Forgets rate-limit state of clients that went quiet (keeps memory bounded).
    pub fn prune_rate_limits(&self) {
        self.0.form_limiter.retain_recent();
        self.0.auth_failures.prune();
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "leadrouter", description = "Omnichannel lead intake and routing"),
    modifiers(&BearerScheme),
    tags((name = "forms"), (name = "leads"), (name = "contacts"), (name = "reps"), (name = "stats"), (name = "outbox"), (name = "telegram"), (name = "ops"))
)]
struct ApiDoc;

/// The whole HTTP surface, with the OpenAPI document built from the same handlers.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(forms::router())
        .merge(leads::router())
        .merge(contacts::router())
        .merge(merges::router())
        .merge(reps::router())
        .merge(stats::router())
        .merge(outbox::router())
        .merge(ops::router())
        .merge(telegram::router())
        .split_for_parts();
    let openapi = Arc::new(openapi);
    let timeout = state.settings().server.request_timeout.0;
    let cors = forms::cors(state.0.intake.core.settings.clone());
    let dashboard = app::router(state.clone());
    api.route("/openapi.json", axum::routing::get(move || async move { axum::Json(openapi.as_ref().clone()) }))
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(axum::middleware::map_response(error::json_errors))
        // The dashboard answers in HTML, errors included: merged after the JSON error layer.
        .merge(dashboard)
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            // Spans are named by the matched route, not the raw path (ids stay out of names).
            let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
            let request_id =
                req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            tracing::info_span!("http", method = %req.method(), route, request_id)
        }))
        .layer(cors)
        .layer(axum::middleware::from_fn(extract::refuse_nul_in_url))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}
