//! Outbound webhooks: the event JSON, signed, to every subscribed URL.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::NotifyError;
use crate::domain::records::OutboxMessage;
use crate::settings::Settings;

pub const SIGNATURE_HEADER: &str = "x-leadrouter-signature";
pub const EVENT_ID_HEADER: &str = "x-leadrouter-event-id";
pub const EVENT_HEADER: &str = "x-leadrouter-event";
pub const DELIVERY_HEADER: &str = "x-leadrouter-delivery";

pub struct WebhookNotifier {
    client: reqwest::Client,
    /// `(url, secret)` of each configured webhook.
    targets: Vec<(String, Option<SecretString>)>,
}

/// `sha256=` + hex HMAC-SHA256 of the body: what receivers check.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl WebhookNotifier {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.outbox.request_timeout.0)
            .user_agent(concat!("leadrouter/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let targets = settings.notify.webhooks.iter().map(|w| (w.url.clone(), w.secret.clone())).collect();
        Ok(WebhookNotifier { client, targets })
    }

    #[tracing::instrument(skip_all, fields(event_id = %m.event_id, event = %m.event_type, delivery = %m.id))]
    pub async fn send(&self, target: &str, m: &OutboxMessage) -> Result<(), NotifyError> {
        // The URL may have left the config since the message was written.
        let Some((url, secret)) = self.targets.iter().find(|(url, _)| url == target) else {
            return Err(NotifyError::Permanent(format!("webhook {target} is no longer configured")));
        };
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, &m.event_type)
            .header(EVENT_ID_HEADER, &m.event_id)
            .header(DELIVERY_HEADER, &m.id);
        if let Some(secret) = secret {
            request = request.header(SIGNATURE_HEADER, sign(secret.expose_secret(), m.payload.as_bytes()));
        }
        let response =
            request.body(m.payload.clone()).send().await.map_err(|e| NotifyError::Retryable(format!("{e}")))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status == reqwest::StatusCode::GONE {
            Err(NotifyError::Permanent(format!("{url} answered 410 Gone")))
        } else {
            Err(NotifyError::Retryable(format!("{url} answered {status}")))
        }
    }
}
