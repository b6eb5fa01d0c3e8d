//! Signing in to the dashboard with an API token, the `lr_session` cookie, and the CSRF token
//! every state-changing form carries.
//!
//! The session id is 32 random bytes (hex) kept only in the browser's cookie; the database
//! holds its sha256, and the sha256 of the token that signed in: every request checks that
//! token again, so rotating it, deactivating its rep or removing them from the config ends the
//! session at once. The CSRF token is derived from the session id (sha256 of a fixed prefix
//! and the id): unguessable without the cookie, different for every session, nothing to store.
//! The sign-in form itself is protected too (login CSRF): its post must come from our own
//! origin and carry the token derived from the short-lived `lr_login` cookie the form set.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AppError, document, render};
use crate::base::{ms, token_hash};
use crate::http::AppState;
use crate::http::auth::{actor_for_digest, actor_for_token, token_digest};
use crate::http::client::client_ip;
use crate::http::error::ApiError;
use crate::http::extract::{nul_refused, read_body, urlencoded_has_nul};
use crate::pipeline::Actor;
use crate::store::SessionRow;

pub(super) const COOKIE: &str = "lr_session";
/// The sign-in form's own cookie (login CSRF).
const LOGIN_COOKIE: &str = "lr_login";
/// How long a sign-in lasts.
const LIFETIME_MS: i64 = 12 * 3600 * 1000;

/// A signed-in person. As an extractor, its absence sends the browser to the sign-in form.
#[derive(Debug, Clone)]
pub(in crate::http) struct Session {
    pub actor: Actor,
    csrf: String,
    id_hash: String,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.actor == Actor::Admin
    }

    /// The rep this session is limited to, if any.
    pub fn rep_scope(&self) -> Option<&str> {
        match &self.actor {
            Actor::Admin => None,
            Actor::Rep(id) => Some(id),
        }
    }

    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.is_admin() { Ok(()) } else { Err(AppError(ApiError::Forbidden("only an admin can do this".into()))) }
    }
}

fn csrf_for(session_id: &str) -> String {
    derive(b"leadrouter dashboard csrf\0", session_id)
}

fn login_csrf_for(nonce: &str) -> String {
    derive(b"leadrouter sign-in csrf\0", nonce)
}

fn derive(prefix: &[u8], secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(prefix);
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The hidden field every state-changing form needs.
pub(super) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

fn cookie_value<'a>(headers: &'a HeaderMap, cookie: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie)
        .map(|(_, value)| value.trim())
        .filter(|v| v.len() == 64 && hex::decode(v).is_ok())
}

/// To the sign-in form, coming back to `back` (a dashboard page someone opened from a link)
/// once signed in.
fn to_login(back: Option<&str>) -> Response {
    match back.and_then(safe_return) {
        Some(back) => {
            let query = serde_urlencoded::to_string([("next", back)]).unwrap_or_default();
            Redirect::to(&format!("/app/login?{query}")).into_response()
        }
        None => Redirect::to("/app/login").into_response(),
    }
}

/// Only a dashboard path: `next` must not send anyone off the site.
fn safe_return(path: &str) -> Option<&str> {
    let ok = path.starts_with("/app/") && !path.starts_with("/app/login") && !path.contains(['\\', '\r', '\n']);
    ok.then_some(path)
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // A page opened from a link (an email about a lead) is where signing in leads back to.
        let back = (parts.method == axum::http::Method::GET).then(|| parts.uri.path_and_query()).flatten();
        let to_login = || to_login(back.map(|p| p.as_str()));
        let Some(id) = cookie_value(&parts.headers, COOKIE) else {
            return Err(to_login());
        };
        let id_hash = token_hash(id);
        let now = ms(jiff::Timestamp::now());
        let row = match state.store().session(&id_hash, now).await {
            Ok(Some(row)) => row,
            Ok(None) => return Err(to_login()),
            Err(e) => return Err(AppError::from(e).into_response()),
        };
        match session_actor(state, &row).await {
            Ok(Some(actor)) => Ok(Session { actor, csrf: csrf_for(id), id_hash }),
            Ok(None) => {
                // The token that made it is no longer valid: the session ends with it.
                if let Err(e) = state.store().delete_session(&id_hash).await {
                    tracing::warn!(error = %e, "could not remove an ended session");
                }
                Err(to_login())
            }
            Err(e) => Err(AppError(e).into_response()),
        }
    }
}

/// The session's actor, if the token it was made with still stands for that actor.
async fn session_actor(state: &AppState, row: &SessionRow) -> Result<Option<Actor>, ApiError> {
    let Some(digest) = hex::decode(&row.token_hash).ok().and_then(|d| <[u8; 32]>::try_from(d).ok()) else {
        return Ok(None);
    };
    Ok(actor_for_digest(state, &digest).await?.filter(|actor| actor.label() == row.actor))
}

/// A form post from a signed-in person, with its CSRF token checked and its body limited to
/// `server.max_body_bytes` (as the API's are). A missing or wrong token is 403.
pub(super) struct Post<T> {
    pub session: Session,
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Post<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let bytes =
            read_body(req, state.settings().server.max_body_bytes).await.map_err(|e| AppError(e).into_response())?;
        if urlencoded_has_nul(&bytes) {
            return Err(AppError(nul_refused("the form")).into_response());
        }
        let given = serde_urlencoded::from_bytes::<CsrfOnly>(&bytes).ok().and_then(|c| c.csrf).unwrap_or_default();
        if !same(&given, &session.csrf) {
            let e = ApiError::Forbidden("this form's security token is missing or out of date: reload the page".into());
            return Err(AppError(e).into_response());
        }
        let form = serde_urlencoded::from_bytes::<T>(&bytes)
            .map_err(|e| AppError(ApiError::BadRequest("bad_form", e.to_string())).into_response())?;
        Ok(Post { session, form })
    }
}

fn login_page(error: Option<&str>, next: Option<&str>, csrf: &str) -> Markup {
    let body = html! {
        main #main .narrow {
            h1 { "Sign in to leadrouter" }
            @if let Some(error) = error {
                p .alert role="alert" #login-error { (error) }
            }
            form method="post" action="/app/login" .stack {
                input type="hidden" name="login_csrf" value=(csrf);
                @if let Some(next) = next { input type="hidden" name="next" value=(next); }
                label for="token" { "API token" }
                input #token type="password" name="token" required autocomplete="current-password"
                    autofocus aria-describedby=[error.map(|_| "login-error")];
                p .hint { "An admin token from the config, or your own rep API token." }
                button type="submit" { "Sign in" }
            }
        }
    };
    document("Sign in", false, body)
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

/// The sign-in page, with a fresh `lr_login` cookie whose derived token the form carries.
fn login_response(status: StatusCode, error: Option<&str>, next: Option<&str>) -> Response {
    let nonce = hex::encode(rand::random::<[u8; 32]>());
    let mut response = render(status, login_page(error, next, &login_csrf_for(&nonce)));
    let cookie = format!("{LOGIN_COOKIE}={nonce}; HttpOnly; SameSite=Strict; Path=/app/login; Max-Age=3600");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

pub(super) async fn login_form(axum::extract::Query(q): axum::extract::Query<LoginQuery>) -> Response {
    login_response(StatusCode::OK, None, q.next.as_deref().and_then(safe_return))
}

#[derive(Deserialize)]
struct LoginForm {
    token: Option<String>,
    next: Option<String>,
    login_csrf: Option<String>,
}

/// A sign-in post from another site (login CSRF) is refused: its `Origin`, when the browser
/// sends one, must be ours, and it must carry the token of the form we served.
fn login_post_is_ours(state: &AppState, headers: &HeaderMap, form: Option<&LoginForm>) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else { return false };
        let public =
            reqwest::Url::parse(&state.settings().server.public_url).ok().map(|u| u.origin().ascii_serialization());
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let ours = public.as_deref() == Some(origin)
            || host.is_some_and(|h| origin == format!("http://{h}") || origin == format!("https://{h}"));
        if !ours {
            return false;
        }
    }
    let given = form.and_then(|f| f.login_csrf.as_deref()).unwrap_or_default();
    cookie_value(headers, LOGIN_COOKIE).is_some_and(|nonce| same(given, &login_csrf_for(nonce)))
}

pub(super) async fn login(State(state): State<AppState>, req: Request) -> Result<Response, AppError> {
    let ip = client_ip(req.headers(), req.extensions(), state.settings().server.trust_forwarded_for);
    let headers = req.headers().clone();
    let bytes = read_body(req, state.settings().server.max_body_bytes).await?;
    let form = serde_urlencoded::from_bytes::<LoginForm>(&bytes).ok();
    let next = form.as_ref().and_then(|f| f.next.clone());
    let next = next.as_deref().and_then(safe_return);
    if !login_post_is_ours(&state, &headers, form.as_ref()) {
        tracing::info!(client = %ip, "sign-in post without our form's token or from another origin: refused");
        return Ok(login_response(
            StatusCode::FORBIDDEN,
            Some("This sign-in form is out of date. Sign in again from this page."),
            next,
        ));
    }
    if let Err(e) = state.auth_failures().check(ip) {
        return Ok(login_response(
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!("Too many failed sign-ins: {e}.")),
            next,
        ));
    }
    let token = form.and_then(|f| f.token).unwrap_or_default();
    let token = token.trim();
    let actor = if token.is_empty() { None } else { actor_for_token(&state, token).await? };
    let Some(actor) = actor else {
        state.auth_failures().failed(ip, "/app/login");
        return Ok(login_response(
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid. Check it and try again."),
            next,
        ));
    };
    let id = hex::encode(rand::random::<[u8; 32]>());
    let now = ms(jiff::Timestamp::now());
    let session = SessionRow { actor: actor.label(), token_hash: hex::encode(token_digest(token)) };
    state.store().create_session(&token_hash(&id), &session, now, now + LIFETIME_MS).await?;
    tracing::info!(actor = %actor.label(), "dashboard sign-in");
    let secure = if state.settings().server.public_url.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Lax; Path=/app; Max-Age={}{secure}", LIFETIME_MS / 1000);
    let mut response = Redirect::to(next.unwrap_or("/app")).into_response();
    let used = format!("{LOGIN_COOKIE}=; HttpOnly; SameSite=Strict; Path=/app/login; Max-Age=0");
    for c in [cookie, used] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

#[derive(Deserialize)]
pub(super) struct Empty {}

pub(super) async fn logout(State(state): State<AppState>, post: Post<Empty>) -> Result<Response, AppError> {
    state.store().delete_session(&post.session.id_hash).await?;
    let mut response = Redirect::to("/app/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("lr_session=; HttpOnly; SameSite=Lax; Path=/app; Max-Age=0"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        let id = "ab".repeat(32);
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("a=1; lr_session={id} ; b=2")).expect("header"));
        assert_eq!(cookie_value(&headers, COOKIE), Some(id.as_str()));
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("lr_sessionx={id}")).expect("header"));
        assert_eq!(cookie_value(&headers, COOKIE), None);
        headers.insert(header::COOKIE, HeaderValue::from_static("lr_session=not-hex"));
        assert_eq!(cookie_value(&headers, COOKIE), None);
    }

    #[test]
    fn csrf_tokens_differ_per_session() {
        assert_ne!(csrf_for("a"), csrf_for("b"));
        assert_eq!(csrf_for("a").len(), 64);
    }
}
