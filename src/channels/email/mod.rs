//! The email channel: each `[[imap]]` mailbox is read by one worker that fetches new mail by
//! UID, turns inquiries into leads and records everything else as skipped, advancing the
//! mailbox's cursor in the same transaction, and only then flags or moves the message.

pub mod imap;
pub mod normalise;
pub mod parse;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::imap::{Fetched, ImapError, ImapSession, timed};
use self::parse::{MailboxContext, Verdict};
use super::status::{ChannelStatus, State};
use crate::base::ms;
use crate::base::retry::{backoff, sleep_or_cancel};
use crate::domain::{Bookkeeping, Cursor, Identity, InboundMeta};
use crate::intake::{Intake, IntakeError, RawItem};
use crate::settings::{ImapSettings, Settings};
use crate::store::InboundRecord;

/// Messages fetched per round trip.
const FETCH_BATCH: usize = 500;
/// IDLE is renewed before servers drop it (RFC 2177: 29 minutes at most).
const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);
/// Retry pause after refused credentials: visible, but without hammering the server.
const AUTH_RETRY: Duration = Duration::from_secs(300);

pub struct MailboxReader {
    settings: ImapSettings,
    intake: Intake,
    status: ChannelStatus,
    /// Addresses that are us: the mailbox's own, and our notification sender.
    own: Vec<String>,
    region: Option<crate::domain::Region>,
}

impl MailboxReader {
    pub fn new(settings: ImapSettings, intake: Intake, status: ChannelStatus) -> Self {
        let (own, region) = reading_context(&intake.settings, &settings);
        MailboxReader { settings, intake, status, own, region }
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
            let lock = match self.intake.store.try_singleton(&worker).await {
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
        let store = &self.intake.store;
        let unavailable = |e: crate::store::StoreError| ImapError::Protocol(format!("storage: {e}"));
        let cursor = store.mailbox_cursor(&self.settings.id).await.map_err(unavailable)?;
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
        let now = ms(jiff::Timestamp::now());
        store
            .reset_cursor(&self.settings.id, Cursor { uidvalidity, last_uid: last }, now)
            .await
            .map_err(unavailable)?;
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
        let cursor = Cursor { uidvalidity, last_uid: m.uid };
        let meta = InboundMeta { mailbox: Some(s.id.clone()), ..Default::default() };
        let now = ms(jiff::Timestamp::now());
        let unavailable = |e: crate::store::StoreError| ImapError::Protocol(format!("storage: {e}"));
        let (message_id, reason, undeliverable) = match parse::parse(&m.raw, &ctx) {
            Ok(Verdict::Inquiry(mail)) => match normalise::to_inquiry(&s.id, &mail, m.internal_ms) {
                Some(inquiry) => {
                    span.record("external_id", inquiry.external_id.as_str());
                    let raw = RawItem::new(&meta, &m.raw);
                    let also = vec![Bookkeeping::MailboxCursor { mailbox: s.id.clone(), cursor }];
                    return match self.intake.submit_with(&inquiry, raw, also).await {
                        Ok(outcome) => {
                            if let Some(id) = outcome.lead_id() {
                                span.record("lead_id", id);
                            }
                            Ok(())
                        }
                        // Recorded as a failed item, replayable: move on.
                        Err(IntakeError::Failed { .. }) => {
                            self.intake.store.advance_cursor(&s.id, cursor, now).await.map_err(unavailable)
                        }
                        Err(IntakeError::Unavailable(e)) => Err(unavailable(e)),
                    };
                }
                None => (mail.message_id.clone(), "no_sender".to_owned(), Vec::new()),
            },
            Ok(Verdict::Skip { reason, message_id, undeliverable }) => {
                (message_id, reason.as_str().to_owned(), undeliverable)
            }
            Err(e) => {
                let key = format!("uid:{}:{uidvalidity}:{}", s.id, m.uid);
                tracing::warn!(error = %e, "unparseable message recorded as failed");
                self.intake
                    .store
                    .record_failed_inbound("email", &key, &meta, &m.raw, &e.to_string(), now)
                    .await
                    .map_err(unavailable)?;
                return self.intake.store.advance_cursor(&s.id, cursor, now).await.map_err(unavailable);
            }
        };
        metrics::counter!("leadrouter_inquiries_total", "channel" => "email", "outcome" => "skipped").increment(1);
        tracing::info!(reason = %reason, "mail skipped");
        let skipped =
            InboundRecord { channel: "email", external_id: &message_id, meta: &meta, payload: &m.raw, reason: &reason };
        let mut also = vec![Bookkeeping::MailboxCursor { mailbox: s.id.clone(), cursor }];
        also.extend(
            undeliverable.iter().filter_map(|a| Identity::parse("email", a, None).ok()).map(Bookkeeping::Undeliverable),
        );
        self.intake.store.record_skipped(&skipped, &also, now).await.map_err(unavailable)
    }
}

/// What parsing a mailbox's mail needs from the config: the addresses that are us (the
/// mailbox's own and our notification sender) and the region for national phone numbers.
pub fn reading_context(settings: &Settings, mailbox: &ImapSettings) -> (Vec<String>, Option<crate::domain::Region>) {
    let own = mailbox.own_addresses().into_iter().chain(settings.notify_from().map(str::to_owned)).collect();
    let region = mailbox.default_region;
    (own, region)
}
