//! Telegram messages through the outbox, sent with teloxide's typed client.

use teloxide::prelude::*;
use teloxide::types::{ButtonRequest, KeyboardButton, KeyboardMarkup};
use teloxide::{ApiError, RequestError};

use super::NotifyError;
use crate::settings::Settings;
use crate::store::OutboxMessage;

pub struct TelegramNotifier {
    bot: Option<Bot>,
    welcome: String,
    share_phone_button: String,
}

impl TelegramNotifier {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        let t = &settings.telegram;
        let bot = match (&t.token, t.enabled) {
            (Some(token), true) => Some(Bot::new(token.expose_secret()).set_api_url(reqwest::Url::parse(&t.api_url)?)),
            _ => None,
        };
        Ok(TelegramNotifier { bot, welcome: t.welcome.clone(), share_phone_button: t.share_phone_button.clone() })
    }

    pub async fn send(&self, m: &OutboxMessage) -> Result<(), NotifyError> {
        let Some(bot) = &self.bot else {
            return Err(NotifyError::Permanent("the Telegram channel is not enabled any more".into()));
        };
        let Some(chat) = m.target.strip_prefix("welcome:").and_then(|c| c.parse::<i64>().ok()) else {
            return Err(NotifyError::Permanent(format!("unknown Telegram target {}", m.target)));
        };
        let mut request = bot.send_message(ChatId(chat), &self.welcome);
        if !self.share_phone_button.is_empty() {
            let button = KeyboardButton::new(&self.share_phone_button).request(ButtonRequest::Contact);
            request =
                request.reply_markup(KeyboardMarkup::new(vec![vec![button]]).resize_keyboard().one_time_keyboard());
        }
        request.await.map(|_| ()).map_err(classify)
    }
}

/// Flood control and network trouble pass; a blocked bot or a chat that is gone do not.
fn classify(e: RequestError) -> NotifyError {
    match e {
        RequestError::RetryAfter(secs) => {
            NotifyError::Retryable(format!("flood control: retry after {} s", secs.seconds()))
        }
        RequestError::Network(_) | RequestError::Io(_) => NotifyError::Retryable(e.to_string()),
        RequestError::Api(ApiError::BotBlocked | ApiError::ChatNotFound | ApiError::UserDeactivated) => {
            NotifyError::Permanent(e.to_string())
        }
        RequestError::Api(_) => NotifyError::Retryable(e.to_string()),
        other => NotifyError::Permanent(other.to_string()),
    }
}
