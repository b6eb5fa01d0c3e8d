//! Extractors whose rejections are API errors (axum's own answer in plain text).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;

/// A JSON body, limited to `server.max_body_bytes`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json =
            req.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
                ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType("send a JSON body with Content-Type: application/json".into()));
        }
        let body = read_body(req, state.settings().server.max_body_bytes).await?;
        if json_has_nul(&body) {
            return Err(nul_refused("the body"));
        }
        match axum::Json::<T>::from_bytes(&body) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::invalid(e.body_text())),
            Err(e) => Err(ApiError::BadRequest("malformed_json", e.body_text())),
        }
    }
}

/// A NUL character cannot be stored on PostgreSQL: refused (400) wherever people send text,
/// so that both backends behave the same. (Inquiries from channels drop them instead.)
pub fn nul_refused(place: &str) -> ApiError {
    ApiError::BadRequest(
        "nul_character",
        format!("{place} contains a NUL character (\\u0000 or %00), which is not allowed"),
    )
}

/// Whether a JSON text has a `\u0000` escape in one of its strings (the only way a NUL can
/// be in valid JSON). An escaped backslash followed by `u0000` is not one.
pub fn json_has_nul(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(&b"0000"[..]) {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Whether URL-encoded text (a path, a query, a form body) encodes a NUL.
pub fn urlencoded_has_nul(text: &[u8]) -> bool {
    text.windows(3).any(|w| w == b"%00") || text.contains(&0)
}

/// Middleware: a URL whose path or query encodes a NUL is answered 400 before any handler.
pub async fn refuse_nul_in_url(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = req.uri();
    if urlencoded_has_nul(uri.path().as_bytes()) || uri.query().is_some_and(|q| urlencoded_has_nul(q.as_bytes())) {
        return nul_refused("the URL").into_response();
    }
    next.run(req).await
}

/// The raw body, with the size limit answered as a JSON 413.
pub async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    // A declared length over the limit is refused before a byte of the body is read.
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| ApiError::TooLarge(limit))
}

pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e @ QueryRejection::FailedToDeserializeQueryString(_)) => {
                Err(ApiError::BadRequest("bad_query", e.body_text()))
            }
            Err(e) => Err(ApiError::BadRequest("bad_query", e.body_text())),
        }
    }
}

pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e @ PathRejection::FailedToDeserializePathParams(_)) => {
                Err(ApiError::BadRequest("bad_path", e.body_text()))
            }
            Err(e) => Err(ApiError::BadRequest("bad_path", e.body_text())),
        }
    }
}

/// A list's page size: 50 unless asked, 1–200.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(50);
    if (1..=200).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest("bad_query", "limit must be between 1 and 200".into()))
    }
}

/// Cuts `limit + 1` fetched items to a page; the cursor is the last item's id when more exist.
pub fn into_page<T>(mut items: Vec<T>, limit: i64, id: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if items.len() > limit {
        items.truncate(limit);
        let cursor = items.last().map(id);
        (items, cursor)
    } else {
        (items, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_only_where_it_is() {
        assert!(json_has_nul(br#"{"name":"nul\u0000byte"}"#));
        assert!(!json_has_nul(br#"{"name":"not \\u0000 a nul"}"#));
        assert!(json_has_nul(br#"{"name":"\u00001"}"#), "a NUL followed by a digit");
        assert!(!json_has_nul(br#"{"name":"plain"}"#));
        assert!(urlencoded_has_nul(b"q=a%00b") && !urlencoded_has_nul(b"q=a%2500"));
    }
}
