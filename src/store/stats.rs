//! Manager numbers, computed in SQL on both backends over leads created in `[from, to)`.

use std::collections::BTreeMap;

use super::rows::Col;
use super::{Result, Store};

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub total: i64,
    pub by_channel: BTreeMap<String, i64>,
    pub by_source: BTreeMap<String, i64>,
    pub by_status: BTreeMap<String, i64>,
    pub lost_reasons: BTreeMap<String, i64>,
    pub first_response_mean_ms: Option<f64>,
    pub reps: Vec<RepStats>,
    /// Open leads without an owner right now (not limited to the window).
    pub unassigned: i64,
}

#[derive(Debug, Clone, Default)]
pub struct RepStats {
    pub id: String,
    pub open: i64,
    pub won: i64,
    pub lost: i64,
}

/// Leads merged away as duplicates are not leads of their own.
const WINDOW: &str = "FROM leads WHERE created_at >= $1 AND created_at < $2 AND merged_into IS NULL";

impl Store {
    pub async fn summary(&self, from: i64, to: i64) -> Result<Summary> {
        let db = self.reader();
        let counts = |sql: String| async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(from).bind(to).fetch_all(db).await?;
            rows.iter().map(|r| Ok((r.col::<String>("k")?, r.col::<i64>("n")?))).collect::<Result<BTreeMap<_, _>>>()
        };
        let by_channel = counts(format!("SELECT channel AS k, COUNT(*) AS n {WINDOW} GROUP BY channel")).await?;
        let by_source = counts(format!(
            "SELECT COALESCE(utm_source, 'form:' || source_form, 'mailbox:' || source_mailbox, 'bot:' || source_bot, channel) \
             AS k, COUNT(*) AS n {WINDOW} GROUP BY 1"
        ))
        .await?;
        let by_status = counts(format!("SELECT status AS k, COUNT(*) AS n {WINDOW} GROUP BY status")).await?;
        let lost_reasons = counts(format!(
            "SELECT COALESCE(lost_reason, 'unknown') AS k, COUNT(*) AS n {WINDOW} AND status = 'lost' GROUP BY 1"
        ))
        .await?;
        let mean: Option<f64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(AVG(first_response_at - created_at) AS DOUBLE PRECISION) {WINDOW} AND first_response_at IS NOT NULL"
        )))
        .bind(from)
        .bind(to)
        .fetch_one(db)
        .await?;
        let reps = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT owner_id AS id, \
             SUM(CASE WHEN closed_at IS NULL THEN 1 ELSE 0 END) AS open, \
             SUM(CASE WHEN status = 'won' THEN 1 ELSE 0 END) AS won, \
             SUM(CASE WHEN status = 'lost' THEN 1 ELSE 0 END) AS lost \
             {WINDOW} AND owner_id IS NOT NULL GROUP BY owner_id ORDER BY owner_id"
        )))
        .bind(from)
        .bind(to)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| Ok(RepStats { id: r.col("id")?, open: r.col("open")?, won: r.col("won")?, lost: r.col("lost")? }))
        .collect::<Result<_>>()?;
        let unassigned: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM leads WHERE owner_id IS NULL AND closed_at IS NULL")
                .fetch_one(db)
                .await?;
        Ok(Summary {
            total: by_channel.values().sum(),
            by_channel,
            by_source,
            by_status,
            lost_reasons,
            first_response_mean_ms: mean,
            reps,
            unassigned,
        })
    }
}
