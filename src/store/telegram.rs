//! What the Telegram rep side keeps: one-time codes that link a rep's chat, and which of our
//! messages (`msg:<chat>:<message>`) belong to which lead, so that a rep's reply to one reaches
//! that lead's prospect and a team announcement can be edited later.

use super::inbound::InboundRecord;
use super::rows::Col;
use super::{Result, Store, Tx, new_id};
use crate::domain::TelegramMessage;

/// The prospect's Telegram account on a lead's contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelegramContact {
    pub user_id: i64,
    /// They blocked the bot: nothing we send arrives.
    pub blocked: bool,
}

impl Store {
    pub async fn create_rep_link(&self, rep_id: &str, code_hash: &str, expires_at: i64, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO rep_links (code_hash, rep_id, expires_at, created_at) VALUES ($1, $2, $3, $4)")
            .bind(code_hash.to_owned())
            .bind(rep_id.to_owned())
            .bind(expires_at)
            .bind(now)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await
    }

    /// The lead a message we sent belongs to.
    pub async fn lead_of_message(&self, message: TelegramMessage) -> Result<Option<String>> {
        let id = sqlx::query_scalar("SELECT lead_id FROM thread_refs WHERE message_id = $1")
            .bind(message.key())
            .fetch_optional(self.reader())
            .await?;
        Ok(id)
    }

    /// Remembers that a message we just sent is about `lead_id`.
    pub async fn remember_message(&self, message: TelegramMessage, lead_id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO thread_refs (message_id, lead_id) VALUES ($1, $2) ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(message.key())
        .bind(lead_id.to_owned())
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await
    }

    /// Our messages about `lead_id` in Telegram chat `chat_id`, oldest first.
    pub async fn messages_in_chat(&self, lead_id: &str, chat_id: i64) -> Result<Vec<i64>> {
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT message_id FROM thread_refs WHERE lead_id = $1 ORDER BY message_id")
                .bind(lead_id.to_owned())
                .fetch_all(self.reader())
                .await?;
        let mut ids: Vec<i64> = keys
            .iter()
            .filter_map(|k| TelegramMessage::from_key(k))
            .filter(|m| m.chat == chat_id)
            .map(|m| m.message)
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// A send to the prospect failed because they blocked the bot.
    pub async fn mark_telegram_unreachable(&self, user_id: i64, now: i64) -> Result<()> {
        let Ok(who) = crate::domain::identity::TelegramUserId::new(user_id) else { return Ok(()) };
        let mut b = super::batch::Batch::new();
        super::inbound::push_undeliverable(&mut b, &who.into(), now);
        let mut tx = self.begin().await?;
        tx.run(b).await?;
        tx.commit().await
    }

    /// Leads owned by `rep_id` whose id ends with `suffix` (reps type the short form that
    /// `/leads` shows).
    pub async fn owned_leads_ending_with(&self, rep_id: &str, suffix: &str) -> Result<Vec<String>> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM leads WHERE owner_id = $1 AND id LIKE $2")
            .bind(rep_id.to_owned())
            .bind(format!("%{suffix}"))
            .fetch_all(self.reader())
            .await?;
        Ok(ids)
    }
}

impl Tx {
    /// Claims an inbound item's key as processed (also over an earlier failure, when it is
    /// replayed). `false`: it was handled before, do nothing.
    pub async fn record_inbound(&mut self, item: &InboundRecord<'_>, lead_id: Option<&str>, now: i64) -> Result<bool> {
        let meta = serde_json::to_string(item.meta).unwrap_or_else(|_| "{}".into());
        let done = sqlx::query(
            "INSERT INTO inbound_items (id, channel, external_id, meta, payload, status, reason, lead_id, received_at, \
             processed_at) VALUES ($1, $2, $3, $4, $5, 'processed', $6, $7, $8, $8) \
             ON CONFLICT (channel, external_id) DO UPDATE SET status = 'processed', reason = $6, processed_at = $8 \
             WHERE inbound_items.status = 'failed'",
        )
        .bind(new_id())
        .bind(item.channel.to_owned())
        .bind(item.external_id.to_owned())
        .bind(meta)
        .bind(item.payload.to_vec())
        .bind(item.reason.to_owned())
        .bind(lead_id.map(str::to_owned))
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The owner has taken the lead on. `false` when they already had.
    pub async fn accept_lead(&mut self, lead_id: &str, now: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE leads SET accepted_at = $1, updated_at = $1 WHERE id = $2 AND accepted_at IS NULL")
                .bind(now)
                .bind(lead_id.to_owned())
                .execute(&mut *self.tx)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn telegram_contact(&mut self, contact_id: &str) -> Result<Option<TelegramContact>> {
        let row = sqlx::query(
            "SELECT value, undeliverable_at FROM identities WHERE contact_id = $1 AND kind = 'telegram' \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(contact_id.to_owned())
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let value: String = row.col("value")?;
        let blocked: Option<i64> = row.col("undeliverable_at")?;
        Ok(value.parse().ok().map(|user_id| TelegramContact { user_id, blocked: blocked.is_some() }))
    }

    /// Uses a link code: the rep it was made for now hears in `chat_id` (and nobody else does).
    /// `None` when the code is unknown, used or expired.
    /// Returns the rep's id and name.
    pub async fn use_rep_link(&mut self, code_hash: &str, chat_id: i64, now: i64) -> Result<Option<(String, String)>> {
        let rep: Option<String> = sqlx::query_scalar(
            "UPDATE rep_links SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING rep_id",
        )
        .bind(now)
        .bind(code_hash.to_owned())
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(rep) = rep else { return Ok(None) };
        sqlx::query(
            "UPDATE reps SET telegram_chat_id = NULL, updated_at = $1 WHERE telegram_chat_id = $2 AND id <> $3",
        )
        .bind(now)
        .bind(chat_id)
        .bind(rep.clone())
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("UPDATE reps SET telegram_chat_id = $1, updated_at = $2 WHERE id = $3")
            .bind(chat_id)
            .bind(now)
            .bind(rep.clone())
            .execute(&mut *self.tx)
            .await?;
        let name: String = sqlx::query_scalar("SELECT name FROM reps WHERE id = $1")
            .bind(rep.clone())
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(Some((rep, name)))
    }
}
