//! The outbox worker: claim due messages in a short transaction, send them outside it, then
//! mark each sent or schedule its retry with exponential backoff and jitter. A message is
//! delivered at least once; receivers deduplicate by the event id.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::base::ms;
use crate::domain::TelegramMessage;
use crate::domain::records::RepRecord;
use crate::notify::{Directory, LeadFile, LookupError, Notifiers, NotifyError};
use crate::settings::OutboxSettings;
use crate::store::{OutboxMessage, Store};

const BATCH: i64 = 32;

pub struct OutboxWorker {
    pub store: Store,
    pub notifiers: Notifiers<Store>,
    pub settings: OutboxSettings,
    /// Rung after commits that wrote outbox rows, so delivery does not wait for the next poll.
    pub wakeup: Arc<Notify>,
}

/// Delay before attempt `attempts + 1` of a message.
pub fn backoff(settings: &OutboxSettings, attempts: u32) -> Duration {
    crate::base::retry::backoff(settings.base_backoff.0, settings.max_backoff.0, attempts)
}

impl OutboxWorker {
    pub async fn run(self, cancel: CancellationToken) {
        let mut last_depth_report = std::time::Instant::now() - Duration::from_secs(60);
        loop {
            match self.drain_once().await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox: claiming failed"),
            }
            if last_depth_report.elapsed() > Duration::from_secs(5) {
                self.report_depth().await;
                last_depth_report = std::time::Instant::now();
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.wakeup.notified() => {}
                _ = tokio::time::sleep(self.settings.poll_interval.0) => {}
            }
        }
        tracing::info!("outbox worker stopped");
    }

    /// Claims and sends one batch. Returns how many messages it handled.
    pub async fn drain_once(&self) -> crate::store::Result<usize> {
        let now = ms(jiff::Timestamp::now());
        let batch = self.store.claim_outbox(now, self.settings.lease.as_millis_i64(), BATCH).await?;
        let n = batch.len();
        // One sequence per target, in event order (a receiver sees `lead.created` before
        // `lead.assigned`); targets proceed in parallel.
        let mut by_target: Vec<(String, Vec<&OutboxMessage>)> = Vec::new();
        for m in &batch {
            let target = m.delivery.target();
            match by_target.iter_mut().find(|(t, _)| *t == target) {
                Some((_, list)) => list.push(m),
                None => by_target.push((target, vec![m])),
            }
        }
        join_all(by_target.into_iter().map(|(_, list)| async move {
            for m in list {
                self.deliver(m).await;
            }
        }))
        .await;
        Ok(n)
    }

    async fn deliver(&self, m: &OutboxMessage) {
        let result = self.notifiers.send(m).await;
        let now = jiff::Timestamp::now();
        let outcome = match result {
            Ok(()) => self.store.outbox_sent(&m.id, ms(now)).await.map(|_| "sent"),
            Err(NotifyError::Skipped(why)) => self.store.outbox_skipped(&m.id, &why, ms(now)).await.map(|_| "skipped"),
            Err(e) => {
                let attempts = u32::try_from(m.attempts + 1).unwrap_or(u32::MAX);
                let permanent = matches!(e, NotifyError::Permanent(_));
                let mut wait = backoff(&self.settings, attempts - 1);
                if let NotifyError::RetryAfter(_, asked) = &e {
                    wait = wait.max(*asked);
                }
                let retry_at = (!permanent && attempts < self.settings.max_attempts)
                    .then(|| ms(now).saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)));
                metrics::counter!("leadrouter_outbox_failures_total", "kind" => m.delivery.kind().to_owned())
                    .increment(1);
                tracing::warn!(delivery = %m.id, kind = %m.delivery.kind(), attempts, dead = retry_at.is_none(), error = %e, "delivery failed");
                self.store.outbox_failed(&m.id, &e.to_string(), retry_at).await.map(|_| "failed")
            }
        };
        match outcome {
            Ok(label) => {
                metrics::counter!("leadrouter_outbox_deliveries_total", "kind" => m.delivery.kind().to_owned(), "result" => label)
                    .increment(1)
            }
            // The lease runs out and the message is tried again: at least once, never lost.
            Err(e) => tracing::error!(delivery = %m.id, error = %e, "could not record delivery result"),
        }
    }

    async fn report_depth(&self) {
        if let Ok(depth) = self.store.outbox_depth().await {
            for status in ["pending", "sent", "skipped", "dead"] {
                let n = depth.iter().find(|(s, _)| s == status).map(|(_, n)| *n).unwrap_or(0);
                metrics::gauge!("leadrouter_outbox_messages", "status" => status).set(n as f64);
            }
        }
    }
}

/// The notifiers read what they send from the store, through their port.
impl Directory for Store {
    async fn lead(&self, id: &str) -> Result<Option<LeadFile>, LookupError> {
        let Some(lead) = Store::lead(self, id).await? else { return Ok(None) };
        let (identities, interactions, _) = self.lead_timeline(&lead).await?;
        Ok(Some(LeadFile { lead, identities, interactions }))
    }

    async fn rep(&self, id: &str) -> Result<Option<RepRecord>, LookupError> {
        Ok(Store::rep(self, id).await?)
    }

    async fn rep_in_chat(&self, chat: i64) -> Result<Option<String>, LookupError> {
        Ok(self.rep_by_telegram(chat).await?)
    }

    async fn posts_in_chat(&self, lead: &str, chat: i64) -> Result<Vec<i64>, LookupError> {
        Ok(self.messages_in_chat(lead, chat).await?)
    }

    async fn remember(&self, message: TelegramMessage, lead: &str) -> Result<(), LookupError> {
        Ok(self.remember_message(message, lead).await?)
    }

    async fn acknowledged_since(&self, address: &str, since: i64, except: &str) -> Result<bool, LookupError> {
        Ok(Store::acknowledged_since(self, address, since, except).await?)
    }

    async fn unreachable(&self, telegram_user: i64, at: i64) -> Result<(), LookupError> {
        Ok(self.mark_telegram_unreachable(telegram_user, at).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Period as D;

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        let s = OutboxSettings { base_backoff: D::from_secs(2), max_backoff: D::from_secs(60), ..Default::default() };
        for attempts in 0..10 {
            let full = (2000u64 << attempts).min(60_000);
            let d = backoff(&s, attempts).as_millis() as u64;
            assert!((full / 2..=full).contains(&d), "attempt {attempts}: {d} ms not in {}..={full}", full / 2);
        }
    }
}
