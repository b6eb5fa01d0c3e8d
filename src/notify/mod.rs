//! Notifiers: the outbox's sinks. A closed set dispatched by the message's `kind`.

pub mod webhook;

use crate::settings::Settings;
use crate::store::OutboxMessage;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Worth another attempt later (network, timeouts, 5xx, 429).
    #[error("{0}")]
    Retryable(String),
    /// Will never succeed as it is (no such target, receiver said gone).
    #[error("{0}")]
    Permanent(String),
}

/// All notifiers, built once at start-up.
pub struct Notifiers {
    webhook: webhook::WebhookNotifier,
}

impl Notifiers {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Notifiers { webhook: webhook::WebhookNotifier::new(settings)? })
    }

    pub async fn send(&self, message: &OutboxMessage) -> Result<(), NotifyError> {
        match message.kind.as_str() {
            "webhook" => self.webhook.send(message).await,
            other => Err(NotifyError::Permanent(format!("no notifier for `{other}` messages in this build"))),
        }
    }
}
