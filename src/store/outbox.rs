//! The outbox: side effects written with the change that caused them, delivered later.

use super::rows::{Col, Sql};
use super::{Backend, Result, Store};
use crate::domain::Delivery;

pub use crate::domain::records::OutboxMessage;

/// An outbox row as the API shows it.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    pub kind: String,
    pub target: String,
    pub event_id: String,
    pub event_type: String,
    pub lead_id: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

impl Store {
    /// Claims up to `limit` due messages by pushing their next attempt `lease_ms` into the
    /// future: a worker that dies mid-send leaves them to be retried after the lease. Several
    /// instances claim disjoint sets (`SKIP LOCKED`).
    pub async fn claim_outbox(&self, now: i64, lease_ms: i64, limit: i64) -> Result<Vec<OutboxMessage>> {
        let skip_locked = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut tx = self.begin().await?;
        let mut q = Sql::new(
            "SELECT id, kind, target, event_id, event_type, payload, attempts FROM outbox \
             WHERE status = 'pending' AND next_attempt_at <= ",
        );
        q.bind(now).push(" ORDER BY next_attempt_at, id LIMIT ").bind(limit).push(skip_locked);
        let rows = q.build().fetch_all(&mut *tx.tx).await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in &rows {
            let m = OutboxMessage {
                id: r.col("id")?,
                delivery: Delivery::from_columns(&r.col::<String>("kind")?, &r.col::<String>("target")?),
                event_id: r.col("event_id")?,
                event_type: r.col("event_type")?,
                payload: r.col("payload")?,
                attempts: r.col("attempts")?,
            };
            sqlx::query("UPDATE outbox SET next_attempt_at = $1 WHERE id = $2")
                .bind(now + lease_ms)
                .bind(m.id.clone())
                .execute(&mut *tx.tx)
                .await?;
            claimed.push(m);
        }
        tx.commit().await?;
        Ok(claimed)
    }

    pub async fn outbox_sent(&self, id: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = $1, last_error = NULL WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await
    }

    /// Records that there was nothing to send, and why.
    pub async fn outbox_skipped(&self, id: &str, why: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE outbox SET status = 'skipped', last_error = $1, sent_at = $2 WHERE id = $3")
            .bind(why.chars().take(1000).collect::<String>())
            .bind(now)
            .bind(id)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await
    }

    /// Whether `address` got an acknowledgement (another than `except`) since `since`.
    pub async fn acknowledged_since(&self, address: &str, since: i64, except: &str) -> Result<bool> {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT id FROM outbox WHERE kind = 'email' AND target LIKE 'ack:%' AND target LIKE $1 \
             AND status = 'sent' AND sent_at >= $2 AND id <> $3 LIMIT 1",
        )
        .bind(format!("%:{address}"))
        .bind(since)
        .bind(except)
        .fetch_optional(self.reader())
        .await?;
        Ok(found.is_some())
    }

    /// Records a failed attempt: retried at `retry_at`, or dead when `None`.
    pub async fn outbox_failed(&self, id: &str, error: &str, retry_at: Option<i64>) -> Result<()> {
        let mut tx = self.begin().await?;
        let status = if retry_at.is_some() { "pending" } else { "dead" };
        sqlx::query(
            "UPDATE outbox SET status = $1, attempts = attempts + 1, last_error = $2, \
             next_attempt_at = COALESCE($3, next_attempt_at) WHERE id = $4",
        )
        .bind(status)
        .bind(error.chars().take(1000).collect::<String>())
        .bind(retry_at)
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await
    }

    /// Puts a dead message back in the queue.
    pub async fn outbox_retry(&self, id: &str, now: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n =
            sqlx::query("UPDATE outbox SET status = 'pending', next_attempt_at = $1 WHERE id = $2 AND status = 'dead'")
                .bind(now)
                .bind(id)
                .execute(&mut *tx.tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// `(status, count)` for every status present.
    pub async fn outbox_depth(&self) -> Result<Vec<(String, i64)>> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status").fetch_all(self.reader()).await?;
        rows.iter().map(|r| Ok((r.col("status")?, r.col("n")?))).collect()
    }

    pub async fn outbox_list(&self, status: Option<&str>, limit: i64, cursor: Option<&str>) -> Result<Vec<OutboxRow>> {
        let mut q = Sql::new(
            "SELECT id, kind, target, event_id, event_type, lead_id, status, attempts, next_attempt_at, last_error, \
             created_at, sent_at FROM outbox WHERE 1 = 1",
        );
        if let Some(s) = status {
            q.push(" AND status = ").bind(s.to_owned());
        }
        if let Some(c) = cursor {
            q.push(" AND id < ").bind(c.to_owned());
        }
        q.push(" ORDER BY id DESC LIMIT ").bind(limit);
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: r.col("id")?,
                    kind: r.col("kind")?,
                    target: r.col("target")?,
                    event_id: r.col("event_id")?,
                    event_type: r.col("event_type")?,
                    lead_id: r.col("lead_id")?,
                    status: r.col("status")?,
                    attempts: r.col("attempts")?,
                    next_attempt_at: r.col("next_attempt_at")?,
                    last_error: r.col("last_error")?,
                    created_at: r.col("created_at")?,
                    sent_at: r.col("sent_at")?,
                })
            })
            .collect()
    }
}
