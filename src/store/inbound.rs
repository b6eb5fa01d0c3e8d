//! Inbound items: every item a channel received, keyed by `(channel, external_id)`. Intake
//! claims the key in its own transaction (`intake_writes`), which makes redelivery a no-op;
//! here are the failed items and their replay.

use super::batch::Batch;
use super::rows::{Col, Sql};
use super::{Result, Store, Tx, new_id};
use crate::domain::{Bookkeeping, Identity, InboundMeta, Reply};

/// What of a processed or skipped item's body is kept: enough to see what arrived. Its size
/// and sha256 describe the whole; a failed item keeps all of it, for replay.
pub const RAW_EXCERPT_BYTES: usize = 4096;

/// How a raw body is stored: `(excerpt or whole, size, sha256 hex)`.
pub(super) fn raw_parts(payload: &[u8], whole: bool, sha256: &str) -> (Vec<u8>, i64, String) {
    let kept = if whole { payload } else { &payload[..payload.len().min(RAW_EXCERPT_BYTES)] };
    (kept.to_vec(), i64::try_from(payload.len()).unwrap_or(i64::MAX), sha256.to_owned())
}

/// sha256 (hex) of a raw body.
pub fn payload_sha256(payload: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(payload))
}

#[derive(Debug, Clone)]
pub struct InboundItem {
    pub id: String,
    pub channel: String,
    pub external_id: String,
    pub meta: InboundMeta,
    pub payload: Vec<u8>,
    pub status: String,
    pub reason: Option<String>,
    pub lead_id: Option<String>,
    pub received_at: i64,
}

/// An inbound item recorded with its reason: an auto-reply or group message that is not a
/// lead, or something a rep did in Telegram.
pub struct InboundRecord<'a> {
    pub channel: &'a str,
    pub external_id: &'a str,
    pub meta: &'a InboundMeta,
    pub payload: &'a [u8],
    pub reason: &'a str,
}

/// Statements: what a channel learned with an item (see `Bookkeeping`).
pub(super) fn push_bookkeeping(b: &mut Batch, items: &[Bookkeeping], now: i64) {
    for item in items {
        match item {
            Bookkeeping::MailboxCursor { mailbox, cursor } => super::mailboxes::push_cursor(b, mailbox, *cursor, now),
            Bookkeeping::Undeliverable(who) => push_undeliverable(b, who, now),
            Bookkeeping::Deliverable(who) => {
                b.exec(
                    "UPDATE identities SET undeliverable_at = NULL WHERE kind = $1 AND value = $2 \
                     AND undeliverable_at IS NOT NULL",
                    vec![who.kind().as_str().into(), who.value().into()],
                );
            }
            Bookkeeping::Reply(r) => push_reply(b, r, now),
        }
    }
}

/// Statement: nothing sent to `who` arrives (a bounce, a blocked bot).
pub(super) fn push_undeliverable(b: &mut Batch, who: &Identity, now: i64) {
    b.exec(
        "UPDATE identities SET undeliverable_at = $1 WHERE kind = $2 AND value = $3",
        vec![now.into(), who.kind().as_str().into(), who.value().into()],
    );
}

fn push_reply(b: &mut Batch, r: &Reply, now: i64) {
    b.exec(
        "INSERT INTO outbox (id, kind, target, event_id, event_type, lead_id, payload, status, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8) ON CONFLICT (kind, target, event_id) DO NOTHING",
        vec![
            new_id().into(),
            r.delivery.kind().into(),
            r.delivery.target().into(),
            r.key.as_str().into(),
            r.label.into(),
            r.lead_id.clone().into(),
            r.payload.to_string().into(),
            now.into(),
        ],
    );
}

impl Tx {
    /// Writes what a channel learned with an item (see `Bookkeeping`) in this transaction.
    pub async fn write_bookkeeping(&mut self, items: &[Bookkeeping], now: i64) -> Result<()> {
        let mut b = Batch::new();
        push_bookkeeping(&mut b, items, now);
        if !b.is_empty() {
            self.run(b).await?;
        }
        Ok(())
    }

    /// Notes the lead an item (a rep's update) was about.
    pub async fn link_inbound_item(&mut self, channel: &str, key: &str, lead_id: &str) -> Result<()> {
        sqlx::query("UPDATE inbound_items SET lead_id = $1 WHERE channel = $2 AND external_id = $3")
            .bind(lead_id.to_owned())
            .bind(channel.to_owned())
            .bind(key.to_owned())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Writes what a channel learned with an item recorded some other way (a failed item), in
    /// a transaction of its own.
    pub async fn write_bookkeeping(&self, items: &[Bookkeeping], now: i64) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        tx.write_bookkeeping(items, now).await?;
        tx.commit().await
    }

    /// Records an edit of a message already on a timeline (found by its own external id),
    /// idempotently under the edit's key.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_edit(
        &self,
        channel: &str,
        key: &str,
        meta: &InboundMeta,
        payload: &[u8],
        message_id: &str,
        text: &str,
        now: i64,
    ) -> Result<()> {
        let meta = serde_json::to_string(meta).unwrap_or_else(|_| "{}".into());
        let (kept, size, sha) = raw_parts(payload, false, &payload_sha256(payload));
        let mut b = Batch::new();
        b.exec(
            "INSERT INTO inbound_items (id, channel, external_id, meta, payload, payload_size, payload_sha256, raw_kept, \
             status, reason, received_at, processed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 'processed', 'edit', $8, $8) ON CONFLICT (channel, external_id) DO NOTHING",
            vec![
                new_id().into(),
                channel.into(),
                key.into(),
                meta.into(),
                kept.into(),
                size.into(),
                sha.into(),
                now.into(),
            ],
        );
        b.exec(
            "UPDATE interactions SET text = $1 WHERE channel = $2 AND external_id = $3",
            vec![text.into(), channel.into(), message_id.into()],
        );
        let mut tx = self.begin().await?;
        tx.run(b).await?;
        tx.commit().await
    }

    /// Records a skipped item, with the channel's own bookkeeping (`also`), in one
    /// transaction. A redelivered item changes nothing; a replayed failure becomes skipped.
    pub async fn record_skipped(&self, item: &InboundRecord<'_>, also: &[Bookkeeping], now: i64) -> Result<()> {
        let meta = serde_json::to_string(item.meta).unwrap_or_else(|_| "{}".into());
        let (kept, size, sha) = raw_parts(item.payload, false, &payload_sha256(item.payload));
        let mut b = Batch::new();
        b.exec(
            "INSERT INTO inbound_items (id, channel, external_id, meta, payload, payload_size, payload_sha256, raw_kept, \
             status, reason, received_at, processed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 'skipped', $8, $9, $9) ON CONFLICT (channel, external_id) \
             DO UPDATE SET status = 'skipped', reason = $8, processed_at = $9, payload = $5, raw_kept = 1 \
             WHERE inbound_items.status = 'failed'",
            vec![
                new_id().into(),
                item.channel.into(),
                item.external_id.into(),
                meta.into(),
                kept.into(),
                size.into(),
                sha.into(),
                item.reason.into(),
                now.into(),
            ],
        );
        push_bookkeeping(&mut b, also, now);
        let mut tx = self.begin().await?;
        tx.run(b).await?;
        tx.commit().await
    }

    /// Records an item that could not be processed, in its own transaction (the intake
    /// transaction that failed has rolled back). Replaces an earlier failure of the same key.
    pub async fn record_failed_inbound(
        &self,
        channel: &str,
        external_id: &str,
        meta: &InboundMeta,
        payload: &[u8],
        error: &str,
        now: i64,
    ) -> Result<String> {
        let mut tx = self.begin().await?;
        let meta = serde_json::to_string(meta).unwrap_or_else(|_| "{}".into());
        let id = new_id();
        let (whole, size, sha) = raw_parts(payload, true, &payload_sha256(payload));
        sqlx::query(
            "INSERT INTO inbound_items (id, channel, external_id, meta, payload, payload_size, payload_sha256, raw_kept, \
             status, reason, received_at, processed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 'failed', $8, $9, $9) \
             ON CONFLICT (channel, external_id) DO UPDATE SET status = 'failed', reason = $8, processed_at = $9, \
             payload = $5, payload_size = $6, payload_sha256 = $7, raw_kept = 0",
        )
        .bind(&id)
        .bind(channel)
        .bind(external_id)
        .bind(meta)
        .bind(whole)
        .bind(size)
        .bind(sha)
        .bind(error.to_owned())
        .bind(now)
        .execute(&mut *tx.tx)
        .await?;
        let id: String = sqlx::query_scalar("SELECT id FROM inbound_items WHERE channel = $1 AND external_id = $2")
            .bind(channel)
            .bind(external_id)
            .fetch_one(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn inbound_item(&self, id: &str) -> Result<Option<InboundItem>> {
        let mut q = Sql::new(
            "SELECT id, channel, external_id, meta, payload, status, reason, lead_id, received_at FROM inbound_items WHERE id = ",
        );
        q.bind(id.to_owned());
        let row = q.build().fetch_optional(self.reader()).await?;
        row.map(|r| inbound_from_row(&r)).transpose()
    }

    /// Clears the excerpts of processed and skipped items received before `before`, at most
    /// `limit` of them (the scheduler calls it until nothing is left). Their size and sha256
    /// stay. Returns how many were cleared.
    pub async fn clear_old_payloads(&self, before: i64, limit: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE inbound_items SET payload = $1, meta = '{}', raw_kept = 0 WHERE id IN \
             (SELECT id FROM inbound_items WHERE raw_kept = 1 AND received_at < $2 ORDER BY received_at LIMIT $3)",
        )
        .bind(Vec::<u8>::new())
        .bind(before)
        .bind(limit)
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// How many items a channel has delivered (any status).
    pub async fn inbound_count(&self, channel: &str) -> Result<i64> {
        let n = sqlx::query_scalar("SELECT COUNT(*) FROM inbound_items WHERE channel = $1")
            .bind(channel.to_owned())
            .fetch_one(self.reader())
            .await?;
        Ok(n)
    }

    pub async fn failed_inbound_ids(&self, limit: i64) -> Result<Vec<String>> {
        let ids =
            sqlx::query_scalar("SELECT id FROM inbound_items WHERE status = 'failed' ORDER BY received_at LIMIT $1")
                .bind(limit)
                .fetch_all(self.reader())
                .await?;
        Ok(ids)
    }
}

fn inbound_from_row(r: &sqlx::any::AnyRow) -> Result<InboundItem> {
    let meta: String = r.col("meta")?;
    Ok(InboundItem {
        id: r.col("id")?,
        channel: r.col("channel")?,
        external_id: r.col("external_id")?,
        meta: serde_json::from_str(&meta).unwrap_or_default(),
        payload: r.col("payload")?,
        status: r.col("status")?,
        reason: r.col("reason")?,
        lead_id: r.col("lead_id")?,
        received_at: r.col("received_at")?,
    })
}
