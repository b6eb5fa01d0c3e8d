//! Notifiers: the outbox's sinks. A closed set dispatched by the message's `kind`.

pub mod email;
pub mod telegram;
pub mod webhook;

use std::sync::Arc;

use crate::settings::Settings;
use crate::store::{OutboxMessage, Store};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Worth another attempt later (network, timeouts, 5xx, 429).
    #[error("{0}")]
    Retryable(String),
    /// Will never succeed as it is (no such target, receiver said gone).
    #[error("{0}")]
    Permanent(String),
    /// Nothing to send, by design (the rep hears about leads in Telegram, the prospect was
    /// already acknowledged): recorded as skipped.
    #[error("{0}")]
    Skipped(String),
}

/// All notifiers, built once at start-up.
pub struct Notifiers {
    webhook: webhook::WebhookNotifier,
    email: email::EmailNotifier,
    telegram: telegram::TelegramNotifier,
}

impl Notifiers {
    pub fn new(settings: &Arc<Settings>, store: Store) -> anyhow::Result<Self> {
        Ok(Notifiers {
            webhook: webhook::WebhookNotifier::new(settings)?,
            email: email::EmailNotifier::new(settings.clone(), store)?,
            telegram: telegram::TelegramNotifier::new(settings)?,
        })
    }

    pub async fn send(&self, message: &OutboxMessage) -> Result<(), NotifyError> {
        match message.kind.as_str() {
            "webhook" => self.webhook.send(message).await,
            "email" => self.email.send(message).await,
            "telegram" => self.telegram.send(message).await,
            other => Err(NotifyError::Permanent(format!("no notifier for `{other}` messages in this build"))),
        }
    }
}
