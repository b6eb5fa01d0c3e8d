//! Telegram messages through the outbox, sent with teloxide's typed client: the welcome, lead
//! cards for reps and team chats (rendered at sending time from what is stored), the bot's
//! answers to reps, and reps' replies copied to prospects. Telegram's limits are kept here —
//! about 30 messages a second overall, one a second per chat, 20 a minute per group — and a
//! 429 puts the message back for as long as Telegram asks.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use teloxide::prelude::*;
use teloxide::types::{
    ButtonRequest, CallbackQueryId, InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, KeyboardMarkup,
    MessageId, ReactionType,
};
use teloxide::{ApiError, RequestError};

use super::{Directory, LeadFile, NotifyError, hears_by};
use crate::base::ms;
use crate::cards::outgoing::Outgoing;
use crate::cards::telegram::{self as render, Keyboard, LeadFacts, View};
use crate::domain::records::{OutboxMessage, RepRecord};
use crate::domain::{EventType, TelegramMessage};
use crate::settings::{NotifyVia, Settings};

pub struct TelegramNotifier<D> {
    bot: Option<Bot>,
    settings: Arc<Settings>,
    directory: D,
    overall: DefaultDirectRateLimiter,
    per_chat: DefaultKeyedRateLimiter<i64>,
    per_group: DefaultKeyedRateLimiter<i64>,
}

fn per_second(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// A rendered lead card.
struct Card {
    lead_id: String,
    text: String,
    keys: Keyboard,
}

fn card(file: &LeadFile, view: View, headline: &str, viewer: Option<&str>) -> Card {
    let LeadFile { lead, identities, interactions } = file;
    let (text, keys) = render::card(&LeadFacts { lead, identities, interactions }, view, headline, viewer);
    Card { lead_id: lead.id.clone(), text, keys }
}

impl<D: Directory> TelegramNotifier<D> {
    pub fn new(settings: Arc<Settings>, directory: D) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        let t = &settings.telegram;
        let bot = match (&t.token, t.enabled) {
            (Some(token), true) => Some(Bot::new(token.expose_secret()).set_api_url(reqwest::Url::parse(&t.api_url)?)),
            _ => None,
        };
        Ok(TelegramNotifier {
            bot,
            directory,
            overall: RateLimiter::direct(Quota::per_second(per_second(25))),
            // Short bursts pass (a card and the answer to a button); a steady stream is paced.
            per_chat: RateLimiter::keyed(Quota::per_second(per_second(1)).allow_burst(per_second(3))),
            per_group: RateLimiter::keyed(Quota::per_minute(per_second(20)).allow_burst(per_second(3))),
            settings,
        })
    }

    fn bot(&self) -> Result<&Bot, NotifyError> {
        self.bot.as_ref().ok_or_else(|| NotifyError::Permanent("the Telegram channel is not enabled any more".into()))
    }

    /// Something the bot does in answer to a rep, as the message's payload says.
    pub async fn bot_action(&self, m: &OutboxMessage) -> Result<(), NotifyError> {
        let bot = self.bot()?;
        match serde_json::from_str::<Outgoing>(&m.payload) {
            Ok(out) => self.outgoing(bot, out).await,
            Err(e) => Err(NotifyError::Permanent(format!("unreadable bot action for {}: {e}", m.delivery.target()))),
        }
    }

    /// Waits for room under Telegram's limits before writing to `chat`.
    async fn pace(&self, chat: i64) {
        self.overall.until_ready().await;
        if chat < 0 {
            self.per_group.until_key_ready(&chat).await;
        } else {
            self.per_chat.until_key_ready(&chat).await;
        }
        if self.per_chat.len() > 10_000 {
            self.per_chat.retain_recent();
            self.per_group.retain_recent();
        }
    }

    pub async fn welcome(&self, chat: i64) -> Result<(), NotifyError> {
        let bot = self.bot()?;
        let t = &self.settings.telegram;
        self.pace(chat).await;
        let mut request = bot.send_message(ChatId(chat), &t.welcome);
        if !t.share_phone_button.is_empty() {
            let button = KeyboardButton::new(&t.share_phone_button).request(ButtonRequest::Contact);
            request =
                request.reply_markup(KeyboardMarkup::new(vec![vec![button]]).resize_keyboard().one_time_keyboard());
        }
        request.await.map(|_| ()).map_err(classify)
    }

    async fn facts(&self, lead_id: &str) -> Result<LeadFile, NotifyError> {
        let file = self.directory.lead(lead_id).await.map_err(NotifyError::Lookup)?;
        file.ok_or_else(|| NotifyError::Skipped("the lead no longer exists".into()))
    }

    /// The rep and their chat, when they hear by Telegram.
    async fn rep_chat(&self, rep_id: &str, otherwise: &str) -> Result<(RepRecord, i64), NotifyError> {
        let Some(rep) = self.directory.rep(rep_id).await.map_err(NotifyError::Lookup)? else {
            return Err(NotifyError::Skipped("the rep no longer exists".into()));
        };
        match rep.telegram_chat_id.filter(|_| hears_by(&rep, &self.settings) == NotifyVia::Telegram) {
            Some(chat) => Ok((rep, chat)),
            None => Err(NotifyError::Skipped(otherwise.into())),
        }
    }

    /// Sends a card and remembers it, so that a reply to it reaches the lead.
    async fn send_card(&self, bot: &Bot, chat: i64, card: Card) -> Result<(), NotifyError> {
        self.pace(chat).await;
        let sent =
            bot.send_message(ChatId(chat), card.text).reply_markup(markup(&card.keys)).await.map_err(classify)?;
        self.directory.remember(TelegramMessage::new(chat, sent.id.0), &card.lead_id).await.map_err(NotifyError::Lookup)
    }

    async fn edit_card(&self, bot: &Bot, chat: i64, message: i32, card: Card) -> Result<(), NotifyError> {
        self.pace(chat).await;
        let edit = bot.edit_message_text(ChatId(chat), MessageId(message), card.text).reply_markup(markup(&card.keys));
        edit.await.map(|_| ()).or_else(unchanged_is_fine)
    }

    /// A rep's notification about their lead, unless they hear by email or it is not theirs
    /// any more.
    pub async fn rep_card(&self, rep_id: &str, m: &OutboxMessage) -> Result<(), NotifyError> {
        let bot = self.bot()?;
        let (rep, chat) = self.rep_chat(rep_id, "the rep hears about leads by email").await?;
        let event = m.body();
        let facts = self.facts(event.lead_id().unwrap_or_default()).await?;
        if facts.lead.owner.as_ref().is_none_or(|o| o.id != rep.id) {
            return Err(NotifyError::Skipped("the lead has another owner now".into()));
        }
        let headline = render::headline(m.event(), event.data.reason.as_deref(), View::Rep);
        self.send_card(bot, chat, card(&facts, View::Rep, headline, Some(&rep.id))).await
    }

    /// A reminder, escalation, stale-lead alert or digest, as its text says, with the lead's
    /// command to open it.
    pub async fn alert(&self, rep_id: &str, m: &OutboxMessage) -> Result<(), NotifyError> {
        let bot = self.bot()?;
        let (_, chat) = self.rep_chat(rep_id, "the rep hears by email").await?;
        let event = m.body();
        let mut text = event.data.alert.as_ref().map(|a| a.text.clone()).unwrap_or_default();
        if text.is_empty() {
            return Err(NotifyError::Permanent("the event carries no alert text".into()));
        }
        if let Some(lead) = event.lead_id() {
            text.push_str(&format!("\n/lead_{}", render::short_id(lead)));
        }
        self.pace(chat).await;
        bot.send_message(ChatId(chat), text).await.map(|_| ()).map_err(classify)
    }

    /// The team chat's post about a lead: made when the lead is new, edited when it changes.
    pub async fn team_post(&self, team_id: &str, m: &OutboxMessage) -> Result<(), NotifyError> {
        let bot = self.bot()?;
        let Some(chat) = self.settings.team(team_id).and_then(|t| t.notify_chat_id) else {
            return Err(NotifyError::Skipped("the team has no notify_chat_id any more".into()));
        };
        let lead_id = m.body().lead_id().unwrap_or_default().to_owned();
        let facts = self.facts(&lead_id).await?;
        let posted = self.directory.posts_in_chat(&lead_id, chat).await.map_err(NotifyError::Lookup)?;
        let headline = render::headline(Some(EventType::LeadCreated), None, View::Team);
        match (posted.first(), m.event()) {
            (Some(&message), _) => {
                let message = i32::try_from(message).unwrap_or_default();
                self.edit_card(bot, chat, message, card(&facts, View::Team, headline, None)).await
            }
            (None, Some(EventType::LeadCreated)) => {
                self.send_card(bot, chat, card(&facts, View::Team, headline, None)).await
            }
            (None, _) => Err(NotifyError::Skipped("the lead was never announced in the team chat".into())),
        }
    }

    async fn outgoing(&self, bot: &Bot, out: Outgoing) -> Result<(), NotifyError> {
        match out {
            Outgoing::Text { chat, text } => {
                self.pace(chat).await;
                bot.send_message(ChatId(chat), text).await.map(|_| ()).map_err(classify)
            }
            Outgoing::Card { chat, lead, view } => {
                let facts = self.facts(&lead).await?;
                let viewer = self.directory.rep_in_chat(chat).await.map_err(NotifyError::Lookup)?;
                let headline = render::headline(None, None, view);
                self.send_card(bot, chat, card(&facts, view, headline, viewer.as_deref())).await
            }
            Outgoing::EditCard { chat, message, lead, view } => {
                let facts = self.facts(&lead).await?;
                let viewer = self.directory.rep_in_chat(chat).await.map_err(NotifyError::Lookup)?;
                let headline = render::headline(None, None, view);
                self.edit_card(bot, chat, message, card(&facts, view, headline, viewer.as_deref())).await
            }
            Outgoing::EditButtons { chat, message, buttons } => {
                self.pace(chat).await;
                let edit =
                    bot.edit_message_reply_markup(ChatId(chat), MessageId(message)).reply_markup(markup(&buttons));
                edit.await.map(|_| ()).or_else(unchanged_is_fine)
            }
            Outgoing::Answer { callback, text, alert } => {
                self.overall.until_ready().await;
                let mut answer = bot.answer_callback_query(CallbackQueryId(callback)).show_alert(alert);
                if !text.is_empty() {
                    answer = answer.text(text);
                }
                match answer.await {
                    Err(RequestError::Api(ApiError::InvalidQueryId)) => {
                        Err(NotifyError::Skipped("the button press is too old to answer".into()))
                    }
                    other => other.map(|_| ()).map_err(classify),
                }
            }
            Outgoing::Relay { to, from_chat, message, lead } => self.relay(bot, to, from_chat, message, &lead).await,
        }
    }

    /// Copies a rep's message to the prospect; a 👍 on it tells the rep it arrived.
    async fn relay(&self, bot: &Bot, to: i64, from_chat: i64, message: i32, lead: &str) -> Result<(), NotifyError> {
        self.pace(to).await;
        match bot.copy_message(ChatId(to), ChatId(from_chat), MessageId(message)).await {
            Ok(copy) => {
                // The prospect's reply to the copy is a message to the bot like any other; the
                // ref lets a rep see which lead a copy belonged to.
                let _ = self.directory.remember(TelegramMessage::new(to, copy.0), lead).await;
                let thumbs = vec![ReactionType::Emoji { emoji: "👍".into() }];
                if let Err(e) = bot.set_message_reaction(ChatId(from_chat), MessageId(message)).reaction(thumbs).await {
                    tracing::debug!(error = %e, "could not mark the relayed message");
                }
                Ok(())
            }
            Err(RequestError::Api(ApiError::BotBlocked | ApiError::UserDeactivated | ApiError::ChatNotFound)) => {
                let now = ms(jiff::Timestamp::now());
                if let Err(e) = self.directory.unreachable(to, now).await {
                    tracing::warn!(error = %e, "could not mark the prospect unreachable");
                }
                self.pace(from_chat).await;
                let notice = "⚠️ Not delivered: the prospect blocked the bot or deleted their account.";
                let _ = bot.send_message(ChatId(from_chat), notice).reply_parameters(reply_to(message)).await;
                Err(NotifyError::Permanent("the prospect blocked the bot or deleted their account".into()))
            }
            Err(e) => Err(classify(e)),
        }
    }
}

fn reply_to(message: i32) -> teloxide::types::ReplyParameters {
    teloxide::types::ReplyParameters::new(MessageId(message)).allow_sending_without_reply()
}

fn markup(keys: &Keyboard) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new(
        keys.iter().map(|row| row.iter().map(|b| InlineKeyboardButton::callback(b.text.clone(), b.data.clone()))),
    )
}

/// Editing a message to what it already says is a success.
fn unchanged_is_fine(e: RequestError) -> Result<(), NotifyError> {
    match e {
        RequestError::Api(ApiError::MessageNotModified) => Ok(()),
        RequestError::Api(ApiError::MessageToEditNotFound | ApiError::MessageIdInvalid) => {
            Err(NotifyError::Skipped("the message to edit is gone".into()))
        }
        other => Err(classify(other)),
    }
}

/// Flood control and network trouble pass; a blocked bot or a chat that is gone do not.
fn classify(e: RequestError) -> NotifyError {
    match e {
        RequestError::RetryAfter(secs) => NotifyError::RetryAfter("Telegram flood control".into(), secs.duration()),
        RequestError::Network(_) | RequestError::Io(_) => NotifyError::Retryable(e.to_string()),
        RequestError::Api(ApiError::BotBlocked | ApiError::ChatNotFound | ApiError::UserDeactivated) => {
            NotifyError::Permanent(e.to_string())
        }
        RequestError::Api(_) => NotifyError::Retryable(e.to_string()),
        other => NotifyError::Permanent(other.to_string()),
    }
}
