//! What channels deliver besides the inquiry itself, and what became of an item: the plain
//! values that pass between a channel, the application and the store.

use super::{Delivery, Identity};

/// What replay needs besides the raw payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InboundMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referer: Option<String>,
    /// The `[[imap]]` mailbox an email came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
}

/// Where a mailbox's reader is: the UID of the last message committed, valid while the
/// folder's UIDVALIDITY stays the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

/// What a channel learned with an item, written in the item's own transaction (whether the
/// item turns out new, a duplicate or skipped), so that both commit or neither does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bookkeeping {
    /// The mailbox's reader has everything up to this message (never moved backwards).
    MailboxCursor { mailbox: String, cursor: Cursor },
    /// Nothing sent to this identity arrives: a bounce, a blocked bot.
    Undeliverable(Identity),
    /// They wrote again: what we send arrives again (a Telegram user who unblocked the bot).
    Deliverable(Identity),
    /// A message for the outbox that no event stands behind: the welcome answer to `/start`,
    /// the bot's answers to a rep.
    Reply(Reply),
}

/// An outbox message of a channel's own. `key` makes it idempotent: the same key for the same
/// target is one message, however often the item that asked for it is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub delivery: Delivery,
    pub key: String,
    /// What it is, for the outbox listing (`telegram.welcome`, `telegram.answer`).
    pub label: &'static str,
    pub lead_id: Option<String>,
    pub payload: serde_json::Value,
}

/// What intake did with an inquiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new lead was opened.
    Created { lead_id: String, contact_id: String, owner: Option<String> },
    /// The message joined the contact's open lead.
    Joined { lead_id: String, contact_id: String },
    /// Seen before: nothing changed.
    Duplicate { lead_id: Option<String> },
    /// The sender used the key of an earlier item for a different body: nothing changed.
    KeyReused,
}

impl Outcome {
    pub fn lead_id(&self) -> Option<&str> {
        match self {
            Outcome::Created { lead_id, .. } | Outcome::Joined { lead_id, .. } => Some(lead_id),
            Outcome::Duplicate { lead_id } => lead_id.as_deref(),
            Outcome::KeyReused => None,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Created { .. } => "created",
            Outcome::Joined { .. } => "joined",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::KeyReused => "key_reused",
        }
    }
}
