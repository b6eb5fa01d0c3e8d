//! The Telegram channel: prospects write to the bot in private chats. Updates arrive through
//! our own `getUpdates` loop (polling) or `POST /telegram/webhook`; either way an update is
//! committed before Telegram hears that we have it: polling asks for the next offset only
//! after the batch is stored, the webhook answers 200 only after commit. teloxide's own
//! listeners confirm first and handle later, which loses updates on a crash.

pub mod outgoing;
pub mod parse;
pub mod render;
mod reps;

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::parse::{ProspectMessage, TelegramEvent, deep_link_source};
use super::status::{ChannelStatus, State};
use crate::base::ms;
use crate::base::retry::{backoff, sleep_or_cancel};
use crate::domain::identity::TelegramUserId;
use crate::domain::{Attachment, Channel, EmailAddress, Identity, Inquiry, Message, PhoneE164, Source};
use crate::domain::{Bookkeeping, InboundMeta, Reply};
use crate::intake::{Intake, IntakeError, RawItem};
use crate::store::{InboundRecord, StoreError};

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
    /// Storage is unavailable: the update is not committed and must not be confirmed.
    #[error("storage unavailable: {0}")]
    Storage(String),
}

/// The bot's side of intake, shared by the poller and the webhook handler.
pub struct TelegramChannel {
    intake: Intake,
    http: reqwest::Client,
    base: String,
    bot_username: std::sync::OnceLock<String>,
}

impl TelegramChannel {
    pub fn new(intake: Intake) -> Self {
        let settings = &intake.settings.telegram;
        let http = reqwest::Client::builder()
            .timeout(settings.poll_timeout.0 + Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        TelegramChannel { base: settings.bot_base(), intake, http, bot_username: std::sync::OnceLock::new() }
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

    /// A one-time deep link that makes whoever opens it rep `rep_id` in Telegram, and when it
    /// expires. Only the code's hash is stored.
    pub async fn rep_link(&self, rep_id: &str) -> Result<(String, i64), TelegramError> {
        let username = match self.bot_username.get() {
            Some(name) => name.clone(),
            None => self.check_token().await?,
        };
        let code =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, rand::random::<[u8; 18]>());
        let now = ms(jiff::Timestamp::now());
        let ttl = i64::try_from(self.intake.settings.telegram.link_ttl.0.as_millis()).unwrap_or(i64::MAX);
        let expires_at = now.saturating_add(ttl);
        let hash = hex::encode(Sha256::digest(code.as_bytes()));
        self.intake
            .store
            .create_rep_link(rep_id, &hash, expires_at, now)
            .await
            .map_err(|e| TelegramError::Storage(e.to_string()))?;
        Ok((format!("https://t.me/{username}?start=link-{code}"), expires_at))
    }

    /// Webhook mode: tells Telegram where to deliver (never deleted on shutdown: with several
    /// instances one stopping would cut the others off).
    pub async fn set_webhook(&self) -> Result<(), TelegramError> {
        let settings = &self.intake.settings;
        let url = format!("{}/telegram/webhook", settings.server.public_url.trim_end_matches('/'));
        let secret = settings.telegram.webhook_secret.as_ref().map(|s| s.expose_secret().to_owned());
        self.call("setWebhook", json!({"url": url, "secret_token": secret, "allowed_updates": ALLOWED_UPDATES}))
            .await
            .map(|_| ())
    }

    /// Polls until cancelled; one instance at a time holds the bot (a token has one consumer).
    pub async fn run_polling(&self, status: ChannelStatus, cancel: CancellationToken) {
        status.set(WORKER, State::Starting, None);
        let mut failures: u32 = 0;
        while !cancel.is_cancelled() {
            let lock = match self.intake.store.try_singleton(WORKER).await {
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
        let timeout = self.intake.settings.telegram.poll_timeout.0.as_secs();
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
                self.handle(raw, &bytes).await?;
                if let Some(id) = raw["update_id"].as_i64() {
                    offset = Some(offset.map_or(id + 1, |o| o.max(id + 1)));
                }
            }
        }
    }

    /// Commits one update. `Err` only when storage is unavailable: then it must not be
    /// confirmed to Telegram.
    pub async fn handle(&self, raw: &Value, bytes: &[u8]) -> Result<(), TelegramError> {
        let now = ms(jiff::Timestamp::now());
        let key = match raw["update_id"].as_i64() {
            Some(id) => format!("update:{id}"),
            None => format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
        };
        let span = tracing::info_span!("telegram", external_id = %key, lead_id = tracing::field::Empty);
        let meta = InboundMeta::default();
        let storage = |e: StoreError| TelegramError::Storage(e.to_string());
        // NULs are dropped before anything reads the update: the same text on both backends,
        // for prospects and for the reps' commands alike.
        let mut clean = raw.clone();
        crate::domain::text::strip_nul_json(&mut clean);
        let event = match parse::parse_update(&clean) {
            Ok((_, event)) => event,
            Err(e) => {
                tracing::warn!(parent: &span, error = %e, "unreadable update recorded as failed");
                let store = &self.intake.store;
                return store
                    .record_failed_inbound("telegram", &key, &meta, bytes, &e.to_string(), now)
                    .await
                    .map(|_| ())
                    .map_err(storage);
            }
        };
        let (key_ref, meta_ref) = (&key, &meta);
        let record = move |reason: &'static str| InboundRecord {
            channel: "telegram",
            external_id: key_ref,
            meta: meta_ref,
            payload: bytes,
            reason,
        };
        let skip = |reason: &'static str, also: Vec<Bookkeeping>| async move {
            metrics::counter!("leadrouter_inquiries_total", "channel" => "telegram", "outcome" => "skipped")
                .increment(1);
            self.intake.store.record_skipped(&record(reason), &also, now).await.map_err(storage)
        };
        match event {
            TelegramEvent::Message(m) => {
                if let Some(code) = m.start_payload.as_deref().and_then(|p| p.strip_prefix("link-")) {
                    return self.link_rep(&record("link"), m.chat_id, code).instrument(span).await;
                }
                if let Some(rep) = self.intake.store.rep_in_telegram(m.from.id).await.map_err(storage)? {
                    return self.rep_message(&record("rep"), &rep, &m).instrument(span).await;
                }
                let inquiry = self.inquiry(&key, &m);
                // Writing to us again means they unblocked the bot.
                let mut also: Vec<Bookkeeping> =
                    TelegramUserId::new(m.from.id).map(|id| Bookkeeping::Deliverable(id.into())).into_iter().collect();
                if m.start_payload.is_some() {
                    also.push(Bookkeeping::Reply(Reply {
                        kind: "telegram",
                        target: format!("welcome:{}", m.chat_id),
                        key: key.clone(),
                        label: "telegram.welcome",
                        lead_id: None,
                        payload: json!({}),
                    }));
                }
                match self.intake.submit_with(&inquiry, RawItem::new(&meta, bytes), also).instrument(span.clone()).await
                {
                    Ok(outcome) => {
                        if let Some(id) = outcome.lead_id() {
                            span.record("lead_id", id);
                        }
                        Ok(())
                    }
                    // Stored as a failed item: confirm it, `replay` retries it.
                    Err(IntakeError::Failed { .. }) => Ok(()),
                    Err(IntakeError::Unavailable(e)) => Err(storage(e)),
                }
            }
            TelegramEvent::Edited(m) => {
                let external = message_key(m.chat_id, m.message_id);
                self.intake
                    .store
                    .record_edit("telegram", &key, &meta, bytes, &external, &m.text, now)
                    .await
                    .map_err(storage)
            }
            TelegramEvent::Blocked { user_id } => {
                tracing::info!(parent: &span, "the user blocked the bot: marked unreachable");
                let also =
                    TelegramUserId::new(user_id).map(|id| Bookkeeping::Undeliverable(id.into())).into_iter().collect();
                skip("blocked", also).await
            }
            TelegramEvent::Callback { id, from, chat_id, message_id, data } => {
                self.button(&record("button"), &id, &from, chat_id.zip(message_id), &data).instrument(span).await
            }
            TelegramEvent::Ignored { reason } => skip(reason, Vec::new()).await,
        }
    }

    fn inquiry(&self, key: &str, m: &ProspectMessage) -> Inquiry {
        let mut identities: Vec<Identity> = Vec::new();
        if let Ok(id) = TelegramUserId::new(m.from.id) {
            identities.push(id.into());
        }
        // A contact the prospect shared of themself is their phone (Telegram omits the '+').
        identities.extend(
            m.shared_phone.iter().chain(&m.phones).filter_map(|p| PhoneE164::parse(p, None).ok()).map(Identity::from),
        );
        identities.extend(m.emails.iter().filter_map(|e| EmailAddress::parse(e).ok()).map(Identity::from));
        let mut source = Source { bot: self.bot_username.get().cloned(), ..Default::default() };
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
        let mut inquiry = Inquiry {
            channel: Channel::Telegram,
            external_id: key.to_owned(),
            source,
            contact_name: Some(m.from.full_name()).filter(|n| !n.is_empty()),
            identities,
            language: m.from.language.clone(),
            country: None,
            message: Message {
                subject: None,
                text: m.text.clone(),
                attachments: m.attachments.iter().map(Attachment::clone).collect(),
                external_id: Some(message_key(m.chat_id, m.message_id)),
            },
            custom_fields: custom,
            thread: Vec::new(),
            received_at: jiff::Timestamp::from_second(m.date).unwrap_or_else(|_| jiff::Timestamp::now()),
        };
        inquiry.normalise_identities();
        inquiry
    }
}

/// A Telegram message's id on the timeline.
pub fn message_key(chat_id: i64, message_id: i32) -> String {
    format!("msg:{chat_id}:{message_id}")
}
