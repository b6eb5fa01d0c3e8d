//! Notifiers: the outbox's sinks. A closed set dispatched by the message's `kind`.

pub mod email;
pub mod telegram;
pub mod webhook;

use std::sync::Arc;

use crate::settings::{NotifyVia, Settings};
use crate::store::{OutboxMessage, RepRecord, Store};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Worth another attempt later (network, timeouts, 5xx, 429).
    #[error("{0}")]
    Retryable(String),
    /// The receiver asked us to wait this long (Telegram's flood control, 429 `retry_after`).
    #[error("{0}: retry after {1:?}")]
    RetryAfter(String, std::time::Duration),
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
            email: email::EmailNotifier::new(settings.clone(), store.clone())?,
            telegram: telegram::TelegramNotifier::new(settings.clone(), store)?,
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

/// How a rep hears about their leads: Telegram when the channel is on and their chat is known
/// (unless they chose email), else email.
pub fn hears_by(rep: &RepRecord, settings: &Settings) -> NotifyVia {
    let telegram_works = settings.telegram.enabled && rep.telegram_chat_id.is_some();
    match rep.notify {
        NotifyVia::Email => NotifyVia::Email,
        _ if telegram_works => NotifyVia::Telegram,
        _ => NotifyVia::Email,
    }
}
