//! Who may post to a form: checked on the raw body, before anything is parsed.

use axum::http::HeaderMap;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::settings::{FormProvider, FormSettings};

type HmacSha256 = Hmac<Sha256>;

/// Webflow signs a timestamp: older than this, a valid signature is a replay.
const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("this form needs {0}")]
    Missing(&'static str),
    #[error("the signature or secret does not match")]
    Mismatch,
    #[error("the signed timestamp is more than 5 minutes away from now")]
    Stale,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn hmac(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Checks the form's secret or signature. Forms without a secret are open.
pub fn verify(
    form: &FormSettings,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
    now_ms: i64,
) -> Result<(), SignatureError> {
    let Some(secret) = &form.secret else { return Ok(()) };
    let secret = secret.expose_secret().as_bytes();
    match form.provider {
        FormProvider::Webflow => {
            let ts = header(headers, "x-webflow-timestamp")
                .ok_or(SignatureError::Missing("an X-Webflow-Timestamp header"))?;
            let sig = header(headers, "x-webflow-signature")
                .ok_or(SignatureError::Missing("an X-Webflow-Signature header"))?;
            let expected = hex::encode(hmac(secret, &[ts.as_bytes(), b":", body]));
            if !same(expected.as_bytes(), sig.to_ascii_lowercase().as_bytes()) {
                return Err(SignatureError::Mismatch);
            }
            let ts: i64 = ts.parse().map_err(|_| SignatureError::Mismatch)?;
            if (now_ms - ts).abs() > MAX_SKEW_MS {
                return Err(SignatureError::Stale);
            }
            Ok(())
        }
        FormProvider::Typeform => {
            let sig =
                header(headers, "typeform-signature").ok_or(SignatureError::Missing("a Typeform-Signature header"))?;
            let given = sig.strip_prefix("sha256=").ok_or(SignatureError::Mismatch)?;
            let expected = base64::engine::general_purpose::STANDARD.encode(hmac(secret, &[body]));
            if same(expected.as_bytes(), given.as_bytes()) { Ok(()) } else { Err(SignatureError::Mismatch) }
        }
        FormProvider::Generic | FormProvider::Tilda | FormProvider::Jotform | FormProvider::Elementor => {
            verify_shared_secret(secret, headers, query, body)
        }
    }
}

/// Form builders differ in what they can send: a header, a bearer token, a signature of the
/// body, or only a URL. Any one of them, matching, is enough.
fn verify_shared_secret(
    secret: &[u8],
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    if let Some(sig) = header(headers, "x-leadrouter-signature") {
        let given = sig.strip_prefix("sha256=").unwrap_or(sig).to_ascii_lowercase();
        let expected = hex::encode(hmac(secret, &[body]));
        return if same(expected.as_bytes(), given.as_bytes()) { Ok(()) } else { Err(SignatureError::Mismatch) };
    }
    let bearer = header(headers, "authorization").and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    let from_query = query.and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "secret")
            .map(|(_, v)| v)
    });
    let given = header(headers, "x-leadrouter-secret").map(str::to_owned).or(bearer.map(str::to_owned)).or(from_query);
    match given {
        None => Err(SignatureError::Missing(
            "its secret (X-Leadrouter-Secret header, Authorization: Bearer, ?secret= or an X-Leadrouter-Signature HMAC)",
        )),
        Some(g) if same(g.as_bytes(), secret) => Ok(()),
        Some(_) => Err(SignatureError::Mismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn form(provider: FormProvider, secret: Option<&str>) -> FormSettings {
        FormSettings { provider, secret: secret.map(|s| s.to_owned().into()), ..FormSettings::open("f") }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn webflow_signs_timestamp_and_body() {
        let f = form(FormProvider::Webflow, Some("wf-secret"));
        let body = br#"{"triggerType":"form_submission"}"#;
        let ts = "1763800000000";
        let sig = hex::encode(hmac(b"wf-secret", &[ts.as_bytes(), b":", body]));
        let h = headers(&[("x-webflow-timestamp", ts), ("x-webflow-signature", &sig)]);
        assert_eq!(verify(&f, &h, None, body, 1763800001000), Ok(()));
        assert_eq!(verify(&f, &h, None, b"tampered", 1763800001000), Err(SignatureError::Mismatch));
        assert_eq!(verify(&f, &h, None, body, 1763800000000 + 6 * 60 * 1000), Err(SignatureError::Stale));
        assert!(matches!(verify(&f, &HeaderMap::new(), None, body, 0), Err(SignatureError::Missing(_))));
    }

    #[test]
    fn typeform_signs_the_body_in_base64() {
        let f = form(FormProvider::Typeform, Some("tf"));
        let body = br#"{"event_id":"x"}"#;
        let sig = format!("sha256={}", base64::engine::general_purpose::STANDARD.encode(hmac(b"tf", &[body])));
        assert_eq!(verify(&f, &headers(&[("typeform-signature", &sig)]), None, body, 0), Ok(()));
        assert_eq!(
            verify(&f, &headers(&[("typeform-signature", "sha256=AAAA")]), None, body, 0),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn shared_secret_in_any_supported_place() {
        let f = form(FormProvider::Generic, Some("s3cret"));
        assert_eq!(verify(&f, &headers(&[("x-leadrouter-secret", "s3cret")]), None, b"", 0), Ok(()));
        assert_eq!(verify(&f, &headers(&[("authorization", "Bearer s3cret")]), None, b"", 0), Ok(()));
        assert_eq!(verify(&f, &HeaderMap::new(), Some("a=1&secret=s3cret"), b"", 0), Ok(()));
        let sig = format!("sha256={}", hex::encode(hmac(b"s3cret", &[b"body"])));
        assert_eq!(verify(&f, &headers(&[("x-leadrouter-signature", &sig)]), None, b"body", 0), Ok(()));
        assert_eq!(
            verify(&f, &headers(&[("x-leadrouter-secret", "wrong")]), None, b"", 0),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(verify(&f, &HeaderMap::new(), None, b"", 0), Err(SignatureError::Missing(_))));
        assert_eq!(verify(&form(FormProvider::Generic, None), &HeaderMap::new(), None, b"", 0), Ok(()));
    }
}
