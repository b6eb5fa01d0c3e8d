//! Inbound items: every item a channel received, keyed by `(channel, external_id)`. Intake
//! claims the key in its own transaction (`intake_writes`), which makes redelivery a no-op;
//! here are the failed items and their replay.

use super::rows::{Col, Sql};
use super::{Result, Store, new_id};

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

impl Store {
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
        sqlx::query(
            "INSERT INTO inbound_items (id, channel, external_id, meta, payload, status, reason, received_at, processed_at) \
             VALUES ($1, $2, $3, $4, $5, 'failed', $6, $7, $7) \
             ON CONFLICT (channel, external_id) DO UPDATE SET status = 'failed', reason = $6, processed_at = $7",
        )
        .bind(&id)
        .bind(channel)
        .bind(external_id)
        .bind(meta)
        .bind(payload.to_vec())
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
