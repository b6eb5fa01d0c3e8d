//! What the scheduler looks for: next actions falling due, leads gone quiet, leads nobody
//! answers, and the daily digest's numbers. Due leads are claimed with `FOR UPDATE SKIP
//! LOCKED` on PostgreSQL, so instances running the same job split the work instead of
//! repeating it; on SQLite the single writer orders them.

use super::rows::{Col, LEAD_SELECT, LeadRow, Sql};
use super::{Backend, Result, Tx};
use crate::domain::followup::DigestCounts;

impl Tx {
    fn claim_clause(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE OF l SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    /// Leads matching `condition` (over `l`, with `$1…` bound to `args`), claimed.
    async fn due(&mut self, condition: &str, args: &[i64], limit: i64) -> Result<Vec<LeadRow>> {
        let sql = format!("{LEAD_SELECT} WHERE {condition} LIMIT {limit}{}", self.claim_clause());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in args {
            q = q.bind(*a);
        }
        q.fetch_all(&mut *self.tx).await?.iter().map(LeadRow::from_row).collect()
    }

    /// Open leads whose next action fell due and whose owner was not yet reminded of it.
    pub async fn due_reminders(&mut self, now: i64, limit: i64) -> Result<Vec<LeadRow>> {
        self.due(
            "l.closed_at IS NULL AND l.next_action_at IS NOT NULL AND l.next_action_at <= $1 \
             AND l.owner_id IS NOT NULL AND (l.reminded_for IS NULL OR l.reminded_for <> l.next_action_at)",
            &[now],
            limit,
        )
        .await
    }

    pub async fn mark_reminded(&mut self, lead: &LeadRow) -> Result<()> {
        sqlx::query("UPDATE leads SET reminded_for = $1 WHERE id = $2")
            .bind(lead.next_action_at)
            .bind(lead.id.clone())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Open leads without activity since `quiet_since` that were not reported since then.
    pub async fn stale_leads(&mut self, quiet_since: i64, limit: i64) -> Result<Vec<LeadRow>> {
        self.due(
            "l.closed_at IS NULL AND l.last_activity_at <= $1 \
             AND (l.stale_for IS NULL OR l.stale_for <> l.last_activity_at)",
            &[quiet_since],
            limit,
        )
        .await
    }

    pub async fn mark_stale(&mut self, lead: &LeadRow) -> Result<()> {
        sqlx::query("UPDATE leads SET stale_for = $1 WHERE id = $2")
            .bind(lead.last_activity_at)
            .bind(lead.id.clone())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Open leads `waiting_response` since before `waiting_since`, counting from whichever is
    /// later: entering the status, or the prospect's last message.
    pub async fn waiting_too_long(&mut self, waiting_since: i64, limit: i64) -> Result<Vec<LeadRow>> {
        self.due(
            "l.closed_at IS NULL AND l.status = 'waiting_response' \
             AND COALESCE((SELECT MAX(s.at) FROM status_changes s WHERE s.lead_id = l.id \
                           AND s.to_status = 'waiting_response'), l.updated_at) <= $1 \
             AND COALESCE((SELECT MAX(i.at) FROM interactions i WHERE i.lead_id = l.id \
                           AND i.direction = 'inbound'), 0) <= $1",
            &[waiting_since],
            limit,
        )
        .await
    }

    /// Open leads with at least `attempts` outbound messages since the prospect last wrote,
    /// the latest sent before `last_before`.
    pub async fn unanswered(&mut self, attempts: i64, last_before: i64, limit: i64) -> Result<Vec<LeadRow>> {
        self.due(
            "l.closed_at IS NULL AND l.owner_id IS NOT NULL AND l.first_response_at IS NOT NULL AND $1 <= \
             (SELECT COUNT(*) FROM interactions o WHERE o.lead_id = l.id AND o.direction = 'outbound' \
              AND o.at > COALESCE((SELECT MAX(i.at) FROM interactions i WHERE i.lead_id = l.id \
                                   AND i.direction = 'inbound'), 0)) \
             AND (SELECT MAX(o.at) FROM interactions o WHERE o.lead_id = l.id AND o.direction = 'outbound') <= $2",
            &[attempts, last_before],
            limit,
        )
        .await
    }

    pub async fn mark_escalated(&mut self, lead_id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE leads SET escalated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(lead_id.to_owned())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Takes the digest for `manager` on `day`; false when another run already sent it.
    pub async fn claim_digest(&mut self, manager: &str, day: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO digests (manager_id, day, sent_at) VALUES ($1, $2, $3) \
             ON CONFLICT (manager_id, day) DO NOTHING",
        )
        .bind(manager.to_owned())
        .bind(day.to_owned())
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The digest over `teams`: leads created and closed in `[from, to)`; unassigned, overdue
    /// and stale as of `now`.
    pub async fn digest_counts(
        &mut self,
        teams: &[String],
        (from, to): (i64, i64),
        now: i64,
        quiet_since: Option<i64>,
    ) -> Result<DigestCounts> {
        let mut q = Sql::new("SELECT SUM(CASE WHEN created_at >= ");
        q.bind(from).push(" AND created_at < ").bind(to).push(" THEN 1 ELSE 0 END) AS new_leads");
        q.push(", SUM(CASE WHEN closed_at IS NULL AND owner_id IS NULL THEN 1 ELSE 0 END) AS unassigned");
        q.push(", SUM(CASE WHEN closed_at IS NULL AND next_action_at < ").bind(now);
        q.push(" THEN 1 ELSE 0 END) AS overdue, SUM(CASE WHEN closed_at IS NULL AND last_activity_at <= ");
        q.bind(quiet_since.unwrap_or(i64::MIN)).push(" THEN 1 ELSE 0 END) AS stale");
        for status in ["won", "lost"] {
            q.push(&format!(", SUM(CASE WHEN status = '{status}' AND closed_at >= ")).bind(from);
            q.push(" AND closed_at < ").bind(to).push(&format!(" THEN 1 ELSE 0 END) AS {status}"));
        }
        // NULL in the list matches nothing: an empty team list counts nothing.
        q.push(" FROM leads WHERE merged_into IS NULL AND team_id IN (NULL");
        for t in teams {
            q.push(", ").bind(t.clone());
        }
        q.push(")");
        let row = q.build().fetch_one(&mut *self.tx).await?;
        let n = |c: &str| -> Result<i64> { Ok(row.col::<Option<i64>>(c)?.unwrap_or(0)) };
        Ok(DigestCounts {
            new: n("new_leads")?,
            unassigned: n("unassigned")?,
            overdue: n("overdue")?,
            stale: n("stale")?,
            won: n("won")?,
            lost: n("lost")?,
        })
    }
}
