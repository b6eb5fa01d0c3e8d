//! Notifiers: the outbox's sinks, one per kind of delivery. They render at sending time from
//! what is stored, read through a `Directory` (implemented by the application over the store):
//! notifiers never see the store, and what they do to it is limited to that port.

pub mod email;
pub mod telegram;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;

use crate::domain::records::{IdentityRow, InteractionRow, LeadRow, OutboxMessage, RepRecord};
use crate::domain::{Delivery, NotifyVia, TelegramMessage};
use crate::settings::Settings;

/// Why a lookup failed (the database is unreachable): worth another attempt.
pub type LookupError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Worth another attempt later (network, timeouts, 5xx, 429).
    #[error("{0}")]
    Retryable(String),
    /// What the message is about could not be read now; tried again later.
    #[error("looking up what to send: {0}")]
    Lookup(#[source] LookupError),
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

/// A lead as a notification shows it.
#[derive(Debug, Clone)]
pub struct LeadFile {
    pub lead: LeadRow,
    pub identities: Vec<IdentityRow>,
    pub interactions: Vec<InteractionRow>,
}

/// What notifiers read and note while they send.
pub trait Directory: Clone + Send + Sync + 'static {
    fn lead(&self, id: &str) -> impl Future<Output = Result<Option<LeadFile>, LookupError>> + Send;
    fn rep(&self, id: &str) -> impl Future<Output = Result<Option<RepRecord>, LookupError>> + Send;
    /// The rep whose Telegram chat this is.
    fn rep_in_chat(&self, chat: i64) -> impl Future<Output = Result<Option<String>, LookupError>> + Send;
    /// Our messages about `lead` in a Telegram chat, oldest first (a team post to edit).
    fn posts_in_chat(&self, lead: &str, chat: i64) -> impl Future<Output = Result<Vec<i64>, LookupError>> + Send;
    /// A message we sent is about `lead`: a reply to it reaches the lead.
    fn remember(&self, message: TelegramMessage, lead: &str) -> impl Future<Output = Result<(), LookupError>> + Send;
    /// `address` got a sent acknowledgement since `since` (other than message `except`).
    fn acknowledged_since(
        &self,
        address: &str,
        since: i64,
        except: &str,
    ) -> impl Future<Output = Result<bool, LookupError>> + Send;
    /// Telegram said the prospect blocked the bot or is gone: stop offering them as reachable.
    fn unreachable(&self, telegram_user: i64, at: i64) -> impl Future<Output = Result<(), LookupError>> + Send;
}

/// All notifiers, built once at start-up.
pub struct Notifiers<D> {
    webhook: webhook::WebhookNotifier,
    email: email::EmailNotifier<D>,
    telegram: telegram::TelegramNotifier<D>,
}

impl<D: Directory> Notifiers<D> {
    pub fn new(settings: &Arc<Settings>, directory: D) -> anyhow::Result<Self> {
        Ok(Notifiers {
            webhook: webhook::WebhookNotifier::new(settings)?,
            email: email::EmailNotifier::new(settings.clone(), directory.clone())?,
            telegram: telegram::TelegramNotifier::new(settings.clone(), directory)?,
        })
    }

    pub async fn send(&self, message: &OutboxMessage) -> Result<(), NotifyError> {
        match &message.delivery {
            Delivery::Webhook { url } => self.webhook.send(url, message).await,
            Delivery::Rep { via: NotifyVia::Email | NotifyVia::Auto, rep } => self.email.rep_email(rep, message).await,
            Delivery::Alert { via: NotifyVia::Email | NotifyVia::Auto, rep } => {
                self.email.alert_email(rep, message).await
            }
            Delivery::Acknowledgement { mailbox, address } => {
                self.email.acknowledgement(message, mailbox, address).await
            }
            Delivery::Rep { rep, .. } => self.telegram.rep_card(rep, message).await,
            Delivery::Alert { rep, .. } => self.telegram.alert(rep, message).await,
            Delivery::TeamPost { team } => self.telegram.team_post(team, message).await,
            Delivery::Welcome { chat } => self.telegram.welcome(*chat).await,
            Delivery::BotAction { .. } => self.telegram.bot_action(message).await,
            Delivery::Unrecognised { kind, target } => {
                Err(NotifyError::Permanent(format!("no notifier for `{kind}` messages to {target} in this build")))
            }
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
