//! The Telegram channel: prospects (and reps) write to the bot. Updates arrive through our own
//! `getUpdates` loop (polling) or `POST /telegram/webhook`; either way an update is committed
//! before Telegram hears that we have it: polling asks for the next offset only after the
//! batch is stored, the webhook answers 200 only after commit. teloxide's own listeners
//! confirm first and handle later, which loses updates on a crash. `decode` is pure: the
//! live paths and `replay` share it; whether a sender is a rep is the application's to say.

pub mod parse;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::parse::{ProspectMessage, TelegramEvent, TgUser, deep_link_source};
use super::status::{ChannelStatus, State};
use super::{Decoded, Inlet, Item, Unavailable};
use crate::base::retry::{backoff, sleep_or_cancel};
use crate::domain::identity::TelegramUserId;
use crate::domain::{
    Attachment, Bookkeeping, Channel, Delivery, EmailAddress, Identity, InboundMeta, Inquiry, Message, PhoneE164,
    Reply, Source, TelegramMessage,
};
use crate::settings::TelegramSettings;

const WORKER: &str = "telegram";
const ALLOWED_UPDATES: [&str; 4] = ["message", "edited_message", "callback_query", "my_chat_member"];

#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    /// The Bot API refused the token: nothing works until the config changes.
    #[error("the Bot API refused the token (401 Unauthorized)")]
    Unauthorized,
    /// Telegram asks us to wait.
    #[error("flood control: retry in {0} s")]
    RetryAfter(u64),
    #[error("Bot API error {code}: {description}")]
    Api { code: i64, description: String },
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// The update is not committed and must not be confirmed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Something a person did in the bot that may be a rep's, as the application receives it.
#[derive(Debug)]
pub enum Input {
    /// A private message: a rep's command or reply, or else the prospect's `inquiry` (with
    /// what comes with it: reachable again, the welcome for `/start`).
    Message { message: Box<ProspectMessage>, inquiry: Box<Inquiry>, also: Vec<Bookkeeping> },
    /// A button pressed on one of our messages (`at`: its chat and message).
    Button { callback: String, from: TgUser, at: Option<(i64, i32)>, data: String },
    /// `/start link-<code>`: a rep linking their chat.
    Link { chat_id: i64, code: String },
}

/// The bot: reads updates (polling or webhook) and hands them to the inlet.
pub struct TelegramChannel<I> {
    inlet: I,
    settings: TelegramSettings,
    public_url: String,
    http: reqwest::Client,
    base: String,
    bot_username: Arc<OnceLock<String>>,
}

impl<I: Inlet> TelegramChannel<I> {
    /// `public_url` is where Telegram reaches the webhook (`server.public_url`).
    pub fn new(settings: &TelegramSettings, public_url: &str, inlet: I) -> Result<Self, TelegramError> {
        // Long polls wait `poll_timeout`; a request must be allowed longer than that.
        let http = reqwest::Client::builder().timeout(settings.poll_timeout.0 + Duration::from_secs(15)).build()?;
        Ok(TelegramChannel {
            base: settings.bot_base(),
            settings: settings.clone(),
            public_url: public_url.to_owned(),
            inlet,
            http,
            bot_username: Arc::new(OnceLock::new()),
        })
    }

    /// Calls a Bot API method with JSON parameters.
    async fn call(&self, method: &str, params: Value) -> Result<Value, TelegramError> {
        let response: Value =
            self.http.post(format!("{}/{method}", self.base)).json(&params).send().await?.json().await?;
        if response["ok"].as_bool() == Some(true) {
            return Ok(response["result"].clone());
        }
        let code = response["error_code"].as_i64().unwrap_or(0);
        Err(match code {
            401 | 404 => TelegramError::Unauthorized,
            429 => TelegramError::RetryAfter(response["parameters"]["retry_after"].as_u64().unwrap_or(5)),
            _ => TelegramError::Api {
                code,
                description: response["description"].as_str().unwrap_or_default().to_owned(),
            },
        })
    }

    /// Checks the token (`getMe`) and remembers the bot's username for deep links.
    pub async fn check_token(&self) -> Result<String, TelegramError> {
        let me = self.call("getMe", json!({})).await?;
        let username = me["username"].as_str().unwrap_or_default().to_owned();
        let _ = self.bot_username.set(username.clone());
        Ok(username)
    }

    /// The bot's username (asked once, then remembered): what `t.me` links name.
    pub async fn username(&self) -> Result<String, TelegramError> {
        match self.bot_username.get() {
            Some(name) => Ok(name.clone()),
            None => self.check_token().await,
        }
    }

    /// Webhook mode: tells Telegram where to deliver (never deleted on shutdown: with several
    /// instances one stopping would cut the others off).
    pub async fn set_webhook(&self) -> Result<(), TelegramError> {
        let url = format!("{}/telegram/webhook", self.public_url.trim_end_matches('/'));
        let secret = self.settings.webhook_secret.as_ref().map(|s| s.expose_secret().to_owned());
        self.call("setWebhook", json!({"url": url, "secret_token": secret, "allowed_updates": ALLOWED_UPDATES}))
            .await
            .map(|_| ())
    }

    /// Polls until cancelled; one instance at a time holds the bot (a token has one consumer).
    pub async fn run_polling(&self, status: ChannelStatus, cancel: CancellationToken) {
        status.set(WORKER, State::Starting, None);
        let mut failures: u32 = 0;
        while !cancel.is_cancelled() {
            let lock = match self.inlet.hold(WORKER).await {
                Ok(Some(lock)) => lock,
                Ok(None) => {
                    status.set(WORKER, State::Standby, None);
                    sleep_or_cancel(Duration::from_secs(5), &cancel).await;
                    continue;
                }
                Err(e) => {
                    status.set(WORKER, State::Error, Some(e.to_string()));
                    sleep_or_cancel(Duration::from_secs(5), &cancel).await;
                    continue;
                }
            };
            let result = self.poll(&status, &cancel, &mut failures).await;
            drop(lock);
            let wait = match result {
                Ok(()) => break,
                Err(TelegramError::Unauthorized) => {
                    status.set(WORKER, State::AuthFailed, Some(TelegramError::Unauthorized.to_string()));
                    Duration::from_secs(300)
                }
                Err(TelegramError::RetryAfter(secs)) => Duration::from_secs(secs),
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, failures, "Telegram polling interrupted");
                    status.set(WORKER, State::Error, Some(e.to_string()));
                    backoff(Duration::from_secs(1), Duration::from_secs(120), failures)
                }
            };
            sleep_or_cancel(wait, &cancel).await;
        }
        tracing::info!("Telegram poller stopped");
    }

    async fn poll(
        &self,
        status: &ChannelStatus,
        cancel: &CancellationToken,
        failures: &mut u32,
    ) -> Result<(), TelegramError> {
        let timeout = self.settings.poll_timeout.0.as_secs();
        // Telegram keeps every update until a call asks with a higher offset: after a crash
        // the batch that was not confirmed comes again, and update ids make that a no-op.
        let mut offset: Option<i64> = None;
        loop {
            let params = json!({"offset": offset, "timeout": timeout, "allowed_updates": ALLOWED_UPDATES});
            let updates = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                updates = self.call("getUpdates", params) => updates?,
            };
            status.set(WORKER, State::Connected, None);
            *failures = 0;
            for raw in updates.as_array().into_iter().flatten() {
                let bytes = serde_json::to_vec(raw).unwrap_or_default();
                self.handle(bytes).await?;
                if let Some(id) = raw["update_id"].as_i64() {
                    offset = Some(offset.map_or(id + 1, |o| o.max(id + 1)));
                }
            }
        }
    }

    /// Commits one update. `Err` only when it could not be committed: then it must not be
    /// confirmed to Telegram.
    pub async fn handle(&self, bytes: Vec<u8>) -> Result<(), Unavailable> {
        let item = decode(bytes, self.bot_username.get().map(String::as_str));
        let span = tracing::info_span!("telegram", external_id = %item.key, lead_id = tracing::field::Empty);
        if let Some(lead) = self.inlet.take(item).instrument(span.clone()).await? {
            span.record("lead_id", lead.as_str());
        }
        Ok(())
    }
}

/// What an update is, keyed by its `update_id` (a content hash when it has none). `bot` is
/// the bot's username, for the leads' source.
pub fn decode(bytes: Vec<u8>, bot: Option<&str>) -> Item {
    let raw: Result<Value, _> = serde_json::from_slice(&bytes);
    let key = match raw.as_ref().ok().and_then(|r| r["update_id"].as_i64()) {
        Some(id) => format!("update:{id}"),
        None => format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
    };
    let decoded = match raw {
        Ok(mut raw) => {
            // NULs are dropped before anything reads the update: the same text on both
            // backends, for prospects and for the reps' commands alike.
            crate::domain::text::strip_nul_json(&mut raw);
            match parse::parse_update(&raw) {
                Ok((_, event)) => decoded(&key, event, bot),
                Err(e) => Decoded::Unreadable { error: e.to_string(), also: Vec::new() },
            }
        }
        Err(e) => Decoded::Unreadable { error: format!("not JSON: {e}"), also: Vec::new() },
    };
    Item { channel: Channel::Telegram, key, meta: InboundMeta::default(), payload: bytes, decoded }
}

fn decoded(key: &str, event: TelegramEvent, bot: Option<&str>) -> Decoded {
    let user = |id: i64| TelegramUserId::new(id).ok().map(Identity::from);
    match event {
        TelegramEvent::Message(m) => {
            if let Some(code) = m.start_payload.as_deref().and_then(|p| p.strip_prefix("link-")) {
                return Decoded::Telegram(Input::Link { chat_id: m.chat_id, code: code.to_owned() });
            }
            // Writing to us again means they unblocked the bot.
            let mut also: Vec<Bookkeeping> = user(m.from.id).map(Bookkeeping::Deliverable).into_iter().collect();
            if m.start_payload.is_some() {
                also.push(Bookkeeping::Reply(Reply {
                    delivery: Delivery::Welcome { chat: m.chat_id },
                    key: key.to_owned(),
                    label: "telegram.welcome",
                    lead_id: None,
                    payload: json!({}),
                }));
            }
            let inquiry = Box::new(inquiry(key, &m, bot));
            Decoded::Telegram(Input::Message { message: m, inquiry, also })
        }
        TelegramEvent::Edited(m) => {
            Decoded::Edited { message_key: message_key(m.chat_id, m.message_id), text: m.text.clone() }
        }
        TelegramEvent::Blocked { user_id } => Decoded::Skipped {
            reason: "blocked".into(),
            also: user(user_id).map(Bookkeeping::Undeliverable).into_iter().collect(),
        },
        TelegramEvent::Callback { id, from, chat_id, message_id, data } => {
            Decoded::Telegram(Input::Button { callback: id, from, at: chat_id.zip(message_id), data })
        }
        TelegramEvent::Ignored { reason } => Decoded::Skipped { reason: reason.into(), also: Vec::new() },
    }
}

/// A prospect's message as an inquiry.
pub fn inquiry(key: &str, m: &ProspectMessage, bot: Option<&str>) -> Inquiry {
    let mut identities: Vec<Identity> = Vec::new();
    if let Ok(id) = TelegramUserId::new(m.from.id) {
        identities.push(id.into());
    }
    // A contact the prospect shared of themself is their phone (Telegram omits the '+').
    identities.extend(
        m.shared_phone.iter().chain(&m.phones).filter_map(|p| PhoneE164::parse(p, None).ok()).map(Identity::from),
    );
    identities.extend(m.emails.iter().filter_map(|e| EmailAddress::parse(e).ok()).map(Identity::from));
    let mut source = Source { bot: bot.map(str::to_owned), ..Default::default() };
    let mut custom = serde_json::Map::new();
    if let Some(payload) = m.start_payload.as_deref().filter(|p| !p.is_empty()) {
        let (utm_source, utm_campaign) = deep_link_source(payload);
        source.utm_source = utm_source;
        source.utm_campaign = utm_campaign;
        custom.insert("start_payload".into(), payload.into());
    }
    if let Some(username) = &m.from.username {
        custom.insert("telegram_username".into(), username.clone().into());
    }
    let received = jiff::Timestamp::from_second(m.date).unwrap_or_else(|_| jiff::Timestamp::now());
    Inquiry::builder(Channel::Telegram, key, received)
        .source(source)
        .name(Some(&m.from.full_name()))
        .identities(identities)
        .language(m.from.language.clone())
        .message(Message {
            subject: None,
            text: m.text.clone(),
            attachments: m.attachments.iter().map(Attachment::clone).collect(),
            external_id: Some(message_key(m.chat_id, m.message_id)),
        })
        .custom_fields(custom)
        .build()
}

/// A Telegram message's id on the timeline.
pub fn message_key(chat_id: i64, message_id: i32) -> String {
    TelegramMessage::new(chat_id, message_id).key()
}
