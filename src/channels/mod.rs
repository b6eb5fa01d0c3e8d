//! Channel adapters: each turns what its channel delivers into an `Item` (pure `decode`
//! functions, which `replay` uses too) and hands it to an `Inlet`, the application's one way
//! in. An item is acknowledged to its channel only after the inlet says it is committed.
//! Channels know neither the store nor intake: what they learn besides the item (a mailbox
//! cursor, an identity that bounced) travels with it as `Bookkeeping`.

pub mod api;
pub mod email;
pub mod status;
pub mod telegram;
pub mod webform;

use std::future::Future;

use crate::domain::{Bookkeeping, Channel, Cursor, InboundMeta, Inquiry};

/// One item a channel received, decoded.
#[derive(Debug)]
pub struct Item {
    pub channel: Channel,
    /// The idempotency key within the channel: a redelivered item with the same key is a no-op.
    pub key: String,
    pub meta: InboundMeta,
    /// The raw item as received, kept for `replay` (bounded once processed).
    pub payload: Vec<u8>,
    pub decoded: Decoded,
}

/// What an item turned out to be.
#[derive(Debug)]
pub enum Decoded {
    /// An inquiry: it becomes a lead or joins one.
    Inquiry { inquiry: Box<Inquiry>, also: Vec<Bookkeeping> },
    /// Not a lead (an auto-reply, a group message): kept as skipped with the reason.
    Skipped { reason: String, also: Vec<Bookkeeping> },
    /// Could not be read: kept as failed, for `replay`.
    Unreadable { error: String, also: Vec<Bookkeeping> },
    /// A message already on a timeline was edited (its channel's message key, the new text).
    Edited { message_key: String, text: String },
    /// Someone using the bot who may be one of our reps: only the application can tell.
    Telegram(telegram::Input),
}

/// The application could not commit the item: do not acknowledge it; it comes again.
#[derive(Debug, thiserror::Error)]
#[error("storage unavailable: {0}")]
pub struct Unavailable(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Something held while it lives (a poller's or mailbox reader's turn, across instances).
pub type Held = Box<dyn Send>;

/// What a channel may ask of the application. Implemented by `crate::inbox::Inbox`.
pub trait Inlet: Clone + Send + Sync + 'static {
    /// Commits the item with what came with it; the lead it went to, if any. `Ok` means
    /// committed (a failure to process it is kept as a failed item): acknowledge it.
    fn take(&self, item: Item) -> impl Future<Output = Result<Option<String>, Unavailable>> + Send;
    /// This instance's turn at `worker` (one poller per bot, one reader per mailbox), held
    /// while the value lives; `None` while another instance has it.
    fn hold(&self, worker: &str) -> impl Future<Output = Result<Option<Held>, Unavailable>> + Send;
    /// Where a mailbox's reader stopped.
    fn cursor(&self, mailbox: &str) -> impl Future<Output = Result<Option<Cursor>, Unavailable>> + Send;
    /// Starts a mailbox's reader over from `cursor` (first start, UIDVALIDITY changed).
    fn reset_cursor(&self, mailbox: &str, cursor: Cursor) -> impl Future<Output = Result<(), Unavailable>> + Send;
}
