//! Website forms: `POST /api/v1/forms/{form_id}`. `parse` reads bodies, `providers` maps each
//! form builder's fields, `signature` checks who may post, `normalise` builds the inquiry.
//! The HTTP handler lives in `http::forms`.

pub mod normalise;
pub mod parse;
pub mod providers;
pub mod signature;

use std::borrow::Cow;

use bytes::Bytes;
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::domain::Inquiry;
use crate::settings::{FormSettings, Settings};
use parse::{BodyError, parse_body};
use providers::{MapError, map_submission};

/// A form post as received, after its signature was checked.
pub struct Received<'a> {
    pub form: &'a FormSettings,
    pub content_type: Option<&'a str>,
    pub body: Bytes,
    pub referer: Option<&'a str>,
    /// The client's `Idempotency-Key` header.
    pub idempotency_key: Option<&'a str>,
    /// Replay passes the key the item was stored under.
    pub external_id: Option<String>,
    pub received_at: Timestamp,
    pub dedup_window_ms: i64,
}

/// What a form post turns out to be.
#[derive(Debug)]
pub enum Parsed {
    /// A bot filled the honeypot: answer like a success, keep nothing.
    Honeypot,
    /// A provider checking the endpoint (Tilda's `test=test`).
    TestPing,
    Inquiry(Box<Inquiry>),
}

#[derive(Debug, thiserror::Error)]
pub enum WebformError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Map(#[from] MapError),
    #[error(transparent)]
    NoContact(#[from] normalise::NormaliseError),
    #[error("Idempotency-Key must be 1–200 characters")]
    BadKey,
}

pub async fn read(r: Received<'_>) -> Result<Parsed, WebformError> {
    let fields = parse_body(r.content_type, r.body.clone()).await?;
    if let Some(trap) = &r.form.honeypot
        && fields.get(trap).is_some_and(|v| !v.trim().is_empty())
    {
        return Ok(Parsed::Honeypot);
    }
    let submission = map_submission(r.form.provider, &fields, &r.form.fields)?;
    if submission.test_ping {
        return Ok(Parsed::TestPing);
    }
    let key = match r.external_id {
        Some(k) => k,
        None => idempotency_key(
            &r.form.id,
            r.idempotency_key,
            submission.submission_id.as_deref(),
            &r.body,
            r.received_at,
            r.dedup_window_ms,
        )?,
    };
    let inquiry = normalise::to_inquiry(r.form, &submission, r.referer, key, r.received_at)?;
    Ok(Parsed::Inquiry(Box::new(inquiry)))
}

/// The submission's idempotency key, most explicit first: the client's `Idempotency-Key`, the
/// provider's submission id, else a hash of the body within the dedup window (a double click
/// or a retried post inside the window is the same submission).
fn idempotency_key(
    form_id: &str,
    header: Option<&str>,
    submission_id: Option<&str>,
    body: &[u8],
    now: Timestamp,
    window_ms: i64,
) -> Result<String, WebformError> {
    if let Some(key) = header {
        if key.is_empty() || key.len() > 200 {
            return Err(WebformError::BadKey);
        }
        return Ok(format!("{form_id}:key:{key}"));
    }
    if let Some(id) = submission_id {
        return Ok(format!("{form_id}:sub:{}", id.chars().take(200).collect::<String>()));
    }
    let bucket = now.as_millisecond() / window_ms.max(1);
    Ok(format!("{form_id}:hash:{}:{bucket}", hex::encode(Sha256::digest(body))))
}

/// The form's settings. With no `[[forms]]` at all (a fresh install) every form id is accepted
/// with the generic provider and no secret, so trying leadrouter needs no config; once any form
/// is declared only declared forms exist.
pub fn form_config<'a>(settings: &'a Settings, form_id: &str) -> Option<Cow<'a, FormSettings>> {
    if settings.forms.is_empty() {
        return crate::settings::valid_form_id(form_id).then(|| Cow::Owned(FormSettings::open(form_id)));
    }
    settings.form(form_id).map(Cow::Borrowed)
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::settings::FormProvider;
    use proptest::prelude::*;

    const TYPES: [&str; 6] = [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=XyZ",
        "text/plain",
        "",
        "application/json; charset=windows-1251",
    ];

    fn run(form: &FormSettings, content_type: &str, body: Vec<u8>) -> Result<Parsed, WebformError> {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(read(Received {
            form,
            content_type: Some(content_type).filter(|c| !c.is_empty()),
            body: Bytes::from(body),
            referer: None,
            idempotency_key: None,
            external_id: None,
            received_at: Timestamp::UNIX_EPOCH,
            dedup_window_ms: 1000,
        }))
    }

    proptest! {
        /// Whatever arrives, under any provider: an answer, never a panic.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400), t in 0usize..6, p in 0usize..6) {
            let provider = [FormProvider::Generic, FormProvider::Tilda, FormProvider::Webflow, FormProvider::Typeform, FormProvider::Jotform, FormProvider::Elementor][p];
            let form = FormSettings { provider, honeypot: Some("website".into()), ..FormSettings::open("f") };
            let _ = run(&form, TYPES[t], body);
        }

        /// Structured but hostile: deep nesting, odd keys, multipart fragments.
        #[test]
        fn structured_noise_never_panics(key in "[a-z\\[\\]._-]{0,12}", value in ".{0,40}", depth in 0usize..40, t in 0usize..3) {
            let form = FormSettings::open("f");
            let nested = format!("{}{}{}", "{\"a\":".repeat(depth), serde_json::to_string(&value).unwrap_or_default(), "}".repeat(depth));
            let bodies = [
                format!("{{\"{key}\": {nested}}}"),
                format!("{}={}&email=a%40b.co", key, value.replace('&', "")),
                format!("--XyZ\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}\r\n--XyZ--\r\n"),
            ];
            let _ = run(&form, TYPES[t], bodies[t].clone().into_bytes());
        }
    }
}
