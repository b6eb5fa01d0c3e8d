//! The one way in: what every channel hands over (`channels::Item`) is committed here. An
//! inquiry goes to intake; everything else is recorded with its reason; what a rep does in
//! the bot goes to the rep console. What came with an item (a mailbox cursor, a bounce) is
//! written with it, whatever the item turned out to be. Live readers and `replay` both come
//! through here.

use crate::base::ms;
use crate::channels::telegram::Input;
use crate::channels::{Decoded, Held, Inlet, Item, Unavailable};
use crate::console::telegram::TelegramConsole;
use crate::domain::{Bookkeeping, Cursor};
use crate::intake::{Intake, IntakeError, RawItem};
use crate::pipeline::Pipeline;
use crate::store::{InboundRecord, StoreError};

/// The application's side of the channels.
#[derive(Clone)]
pub struct Inbox {
    intake: Intake,
    console: TelegramConsole,
}

fn unavailable(e: StoreError) -> Unavailable {
    Unavailable(Box::new(e))
}

/// An item's parts, once its decoded value is taken out.
struct Raw {
    channel: crate::domain::Channel,
    key: String,
    meta: crate::domain::InboundMeta,
    payload: Vec<u8>,
}

impl Raw {
    fn record<'a>(&'a self, reason: &'a str) -> InboundRecord<'a> {
        InboundRecord {
            channel: self.channel.as_str(),
            external_id: &self.key,
            meta: &self.meta,
            payload: &self.payload,
            reason,
        }
    }
}

impl Inbox {
    pub fn new(intake: Intake) -> Self {
        Inbox { console: TelegramConsole::new(Pipeline::new(intake.core.clone())), intake }
    }

    async fn inquiry(
        &self,
        raw: &Raw,
        inquiry: &crate::domain::Inquiry,
        also: Vec<Bookkeeping>,
    ) -> Result<Option<String>, Unavailable> {
        let item = RawItem::new(&raw.meta, &raw.payload);
        match self.intake.submit_with(inquiry, item, also.clone()).await {
            Ok(outcome) => Ok(outcome.lead_id().map(str::to_owned)),
            // Kept as a failed item (replay retries it); what came with it still counts.
            Err(IntakeError::Failed { .. }) => {
                self.intake
                    .core
                    .store
                    .write_bookkeeping(&also, ms(jiff::Timestamp::now()))
                    .await
                    .map_err(unavailable)?;
                Ok(None)
            }
            Err(IntakeError::Unavailable(e)) => Err(unavailable(e)),
        }
    }

    /// A person in the bot: the console if they are one of our reps, else a prospect.
    async fn telegram(&self, raw: &Raw, input: Input) -> Result<Option<String>, Unavailable> {
        let console = match input {
            Input::Link { chat_id, code } => self.console.link(&raw.record("link"), chat_id, &code).await,
            Input::Button { callback, from, at, data } => {
                self.console.button(&raw.record("button"), &callback, &from, at, &data).await
            }
            Input::Message { message, inquiry, also } => {
                match self.intake.core.store.rep_in_telegram(message.from.id).await.map_err(unavailable)? {
                    Some(rep) => self.console.message(&raw.record("rep"), &rep, &message).await,
                    None => return self.inquiry(raw, &inquiry, also).await,
                }
            }
        };
        console.map(|()| None).map_err(unavailable)
    }
}

impl Inlet for Inbox {
    async fn take(&self, item: Item) -> Result<Option<String>, Unavailable> {
        let now = ms(jiff::Timestamp::now());
        let store = &self.intake.core.store;
        let Item { channel, key, meta, payload, decoded } = item;
        let raw = Raw { channel, key, meta, payload };
        match decoded {
            Decoded::Inquiry { inquiry, also } => return self.inquiry(&raw, &inquiry, also).await,
            Decoded::Telegram(input) => return self.telegram(&raw, input).await,
            Decoded::Skipped { reason, also } => {
                metrics::counter!("leadrouter_inquiries_total", "channel" => channel.as_str(), "outcome" => "skipped")
                    .increment(1);
                tracing::info!(reason = %reason, "item skipped");
                store.record_skipped(&raw.record(&reason), &also, now).await.map_err(unavailable)?;
            }
            Decoded::Unreadable { error, also } => {
                tracing::warn!(error = %error, "unreadable item recorded as failed");
                store
                    .record_failed_inbound(channel.as_str(), &raw.key, &raw.meta, &raw.payload, &error, now)
                    .await
                    .map_err(unavailable)?;
                store.write_bookkeeping(&also, now).await.map_err(unavailable)?;
            }
            Decoded::Edited { message_key, text } => {
                store
                    .record_edit(channel.as_str(), &raw.key, &raw.meta, &raw.payload, &message_key, &text, now)
                    .await
                    .map_err(unavailable)?;
            }
        }
        self.intake.core.wake_outbox();
        Ok(None)
    }

    async fn hold(&self, worker: &str) -> Result<Option<Held>, Unavailable> {
        let guard = self.intake.core.store.try_singleton(worker).await.map_err(unavailable)?;
        Ok(guard.map(|g| Box::new(g) as Held))
    }

    async fn cursor(&self, mailbox: &str) -> Result<Option<Cursor>, Unavailable> {
        self.intake.core.store.mailbox_cursor(mailbox).await.map_err(unavailable)
    }

    async fn reset_cursor(&self, mailbox: &str, cursor: Cursor) -> Result<(), Unavailable> {
        self.intake.core.store.reset_cursor(mailbox, cursor, ms(jiff::Timestamp::now())).await.map_err(unavailable)
    }
}
