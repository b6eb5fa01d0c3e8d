//! The email channel: each `[[imap]]` mailbox is read by one worker that fetches new mail by
//! UID, decodes each message (`decode`, pure: inquiry, skipped with its reason, or unreadable)
//! and hands it to the inlet with the mailbox's cursor, which moves in the same transaction;
//! only then is the message flagged or moved.

pub mod imap;
pub mod normalise;
pub mod parse;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::imap::{Fetched, ImapError, ImapSession, timed};
use self::parse::{MailboxContext, Verdict};
use super::status::{ChannelStatus, State};
use super::{Decoded, Inlet, Item};
use crate::base::retry::{backoff, sleep_or_cancel};
use crate::domain::{Bookkeeping, Channel, Cursor, Identity, InboundMeta};
use crate::settings::{ImapSettings, Settings};

/// Messages fetched per round trip.
const FETCH_BATCH: usize = 500;
/// IDLE is renewed before servers drop it (RFC 2177: 29 minutes at most).
const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);
/// Retry pause after refused credentials: visible, but without hammering the server.
const AUTH_RETRY: Duration = Duration::from_secs(300);

pub struct MailboxReader<I> {
    settings: ImapSettings,
    inlet: I,
    status: ChannelStatus,
    /// Addresses that are us: the mailbox's own, and our notification sender.
    own: Vec<String>,
    region: Option<crate::domain::Region>,
}

impl<I: Inlet> MailboxReader<I> {
    pub fn new(all: &Settings, settings: ImapSettings, inlet: I, status: ChannelStatus) -> Self {
        let (own, region) = reading_context(all, &settings);
        MailboxReader { settings, inlet, status, own, region }
    }

    fn worker(&self) -> String {
        format!("imap:{}", self.settings.id)
    }

    /// Reads the mailbox until cancelled, reconnecting with backoff and jitter.
    pub async fn run(self, cancel: CancellationToken) {
        let worker = self.worker();
        self.status.set(&worker, State::Starting, None);
        let mut failures: u32 = 0;
        while !cancel.is_cancelled() {
            let lock = match self.inlet.hold(&worker).await {
                Ok(Some(lock)) => lock,
                Ok(None) => {
                    // Another instance reads this mailbox; take over if it goes away.
                    self.status.set(&worker, State::Standby, None);
                    sleep_or_cancel(Duration::from_secs(5), &cancel).await;
                    continue;
                }
                Err(e) => {
                    self.status.set(&worker, State::Error, Some(e.to_string()));
                    sleep_or_cancel(Duration::from_secs(5), &cancel).await;
                    continue;
                }
            };
            let result = self.session(&cancel, &mut failures).await;
            drop(lock);
            let pause = match result {
                Ok(()) => break,
                Err(ImapError::Auth(msg)) => {
                    tracing::error!(mailbox = %self.settings.id, error = %msg, "IMAP login refused");
                    metrics::counter!("leadrouter_channel_errors_total", "worker" => worker.clone(), "kind" => "auth")
                        .increment(1);
                    self.status.set(&worker, State::AuthFailed, Some(msg));
                    AUTH_RETRY
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(mailbox = %self.settings.id, error = %e, failures, "IMAP session ended");
                    metrics::counter!("leadrouter_channel_errors_total", "worker" => worker.clone(), "kind" => "io")
                        .increment(1);
                    self.status.set(&worker, State::Error, Some(e.to_string()));
                    backoff(Duration::from_secs(1), Duration::from_secs(300), failures)
                }
            };
            sleep_or_cancel(pause, &cancel).await;
        }
        tracing::info!(mailbox = %self.settings.id, "mailbox reader stopped");
    }

    async fn session(&self, cancel: &CancellationToken, failures: &mut u32) -> Result<(), ImapError> {
        let s = &self.settings;
        let limit = s.command_timeout.0;
        let mut session = imap::connect(s).await?;
        let mailbox = timed(limit, "SELECT", session.select(&s.folder)).await?;
        let uidvalidity =
            mailbox.uid_validity.ok_or_else(|| ImapError::Protocol("the server sent no UIDVALIDITY".into()))?;
        let idle = s.idle && timed(limit, "CAPABILITY", session.capabilities()).await?.has_str("IDLE");
        let mut last = self.start_uid(&mut session, uidvalidity, mailbox.uid_next).await?;
        self.status.set(&self.worker(), State::Connected, None);
        *failures = 0;
        tracing::info!(mailbox = %s.id, uidvalidity, last_uid = last, idle, "mailbox reader connected");
        loop {
            // After every wake-up: mail may have arrived between the last fetch and IDLE.
            let pending = imap::uids_from(&mut session, last.saturating_add(1), limit).await?;
            for chunk in pending.chunks(FETCH_BATCH) {
                let (Some(&first), Some(&end)) = (chunk.first(), chunk.last()) else { continue };
                let batch = imap::fetch_range(&mut session, first, end, limit).await?;
                let mut committed = Vec::with_capacity(batch.len());
                for message in &batch {
                    self.ingest(uidvalidity, message).await?;
                    committed.push(message.uid);
                    last = message.uid;
                }
                imap::mark_processed(&mut session, &committed, s.processed_folder.as_deref(), limit).await?;
            }
            if cancel.is_cancelled() {
                let _ = timed(limit, "LOGOUT", session.logout()).await;
                return Ok(());
            }
            if idle {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    next = imap::idle(session, IDLE_RENEW, limit) => session = next?,
                }
            } else {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(s.poll_interval.0) => {}
                }
                timed(limit, "NOOP", session.noop()).await?;
            }
        }
    }

    /// The last UID already handled: the stored cursor, or, on first start and after the
    /// folder's UIDVALIDITY changed, the start of the backfill window.
    async fn start_uid(
        &self,
        session: &mut ImapSession,
        uidvalidity: u32,
        uid_next: Option<u32>,
    ) -> Result<u32, ImapError> {
        let cursor = self.inlet.cursor(&self.settings.id).await?;
        if let Some(c) = cursor.filter(|c| c.uidvalidity == uidvalidity) {
            return Ok(c.last_uid);
        }
        if cursor.is_some() {
            // UIDs were renumbered: rescan the window; Message-IDs keep this from importing twice.
            tracing::warn!(mailbox = %self.settings.id, uidvalidity, "UIDVALIDITY changed: rescanning");
        }
        let last = if self.settings.backfill_all {
            0
        } else {
            let since = jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::try_from(self.settings.backfill.0).unwrap_or_default())
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
                .to_zoned(jiff::tz::TimeZone::UTC)
                .date();
            match imap::first_uid_since(session, since, self.settings.command_timeout.0).await? {
                Some(first) => first.saturating_sub(1),
                None => uid_next.unwrap_or(1).saturating_sub(1),
            }
        };
        self.inlet.reset_cursor(&self.settings.id, Cursor { uidvalidity, last_uid: last }).await?;
        Ok(last)
    }

    /// One message: a lead, a skipped item, or a failed one; the cursor moves past it in the
    /// same transaction. Only storage being unavailable stops the reader (it retries later).
    async fn ingest(&self, uidvalidity: u32, m: &Fetched) -> Result<(), ImapError> {
        let span = tracing::info_span!(
            "email",
            mailbox = %self.settings.id,
            uid = m.uid,
            external_id = tracing::field::Empty,
            lead_id = tracing::field::Empty
        );
        self.ingest_in(uidvalidity, m, &span).instrument(span.clone()).await
    }

    async fn ingest_in(&self, uidvalidity: u32, m: &Fetched, span: &tracing::Span) -> Result<(), ImapError> {
        let s = &self.settings;
        let ctx = MailboxContext { own_addresses: &self.own, default_region: self.region };
        let mut item = decode(&s.id, &m.raw, &ctx, m.internal_ms);
        if matches!(item.decoded, Decoded::Unreadable { .. }) {
            item.key = format!("uid:{}:{uidvalidity}:{}", s.id, m.uid);
        }
        span.record("external_id", item.key.as_str());
        // The cursor moves past the message in its own transaction, whatever it turned out to be.
        let cursor =
            Bookkeeping::MailboxCursor { mailbox: s.id.clone(), cursor: Cursor { uidvalidity, last_uid: m.uid } };
        match &mut item.decoded {
            Decoded::Inquiry { also, .. } | Decoded::Skipped { also, .. } | Decoded::Unreadable { also, .. } => {
                also.insert(0, cursor);
            }
            Decoded::Edited { .. } | Decoded::Telegram(_) => {}
        }
        if let Some(lead) = self.inlet.take(item).await? {
            span.record("lead_id", lead.as_str());
        }
        Ok(())
    }
}

/// What a message from mailbox `mailbox_id` is, keyed by its Message-ID (or content hash).
/// `received_ms` is the server's arrival time, when known.
pub fn decode(mailbox_id: &str, raw: &[u8], ctx: &MailboxContext<'_>, received_ms: Option<i64>) -> Item {
    let meta = InboundMeta { mailbox: Some(mailbox_id.to_owned()), ..Default::default() };
    let item = |key: String, decoded| Item {
        channel: Channel::Email,
        key,
        meta: meta.clone(),
        payload: raw.to_vec(),
        decoded,
    };
    match parse::parse(raw, ctx) {
        Ok(Verdict::Inquiry(mail)) => match normalise::to_inquiry(mailbox_id, &mail, received_ms) {
            Some(inquiry) => {
                let key = inquiry.external_id.clone();
                item(key, Decoded::Inquiry { inquiry: Box::new(inquiry), also: Vec::new() })
            }
            None => item(mail.message_id.clone(), Decoded::Skipped { reason: "no_sender".into(), also: Vec::new() }),
        },
        Ok(Verdict::Skip { reason, message_id, undeliverable }) => {
            let also = undeliverable
                .iter()
                .filter_map(|a| Identity::parse("email", a, None).ok())
                .map(Bookkeeping::Undeliverable)
                .collect();
            item(message_id, Decoded::Skipped { reason: reason.as_str().to_owned(), also })
        }
        Err(e) => {
            use sha2::{Digest, Sha256};
            let key = format!("sha256:{}", hex::encode(Sha256::digest(raw)));
            item(key, Decoded::Unreadable { error: e.to_string(), also: Vec::new() })
        }
    }
}

/// What parsing a mailbox's mail needs from the config: the addresses that are us (the
/// mailbox's own and our notification sender) and the region for national phone numbers.
pub fn reading_context(settings: &Settings, mailbox: &ImapSettings) -> (Vec<String>, Option<crate::domain::Region>) {
    let own = mailbox.own_addresses().into_iter().chain(settings.notify_from().map(str::to_owned)).collect();
    let region = mailbox.default_region;
    (own, region)
}
