//! Reading leads for the API, and the lifecycle updates the API makes.

use super::batch::Batch;
use super::contacts::push_contact_search;
use super::intake::push_release;
use super::rows::{AssignmentRow, Col, IdentityRow, InteractionRow, LEAD_SELECT, LeadRow, Sql};
use super::{Result, Store, StoreError, Tx, new_id};
use crate::domain::{Channel, Status};

#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    pub status: Option<Status>,
    pub owner: Option<String>,
    pub channel: Option<Channel>,
    pub q: Option<String>,
    /// `Some(true)`: open leads whose next action is due; `Some(false)`: the others.
    pub overdue: Option<bool>,
    pub unassigned: Option<bool>,
    /// `Some(true)`: open leads only; `Some(false)`: won or lost ones.
    pub open: Option<bool>,
    /// Only leads closed at or after this time.
    pub closed_since: Option<i64>,
    pub limit: i64,
    /// Id of the last lead of the previous page.
    pub cursor: Option<String>,
}

impl Store {
    pub async fn lead(&self, id: &str) -> Result<Option<LeadRow>> {
        let mut q = Sql::new(LEAD_SELECT);
        q.push(" WHERE l.id = ").bind(id.to_owned());
        let row = q.build().fetch_optional(self.reader()).await?;
        row.map(|r| LeadRow::from_row(&r)).transpose()
    }

    /// The lead's contact identities, timeline and assignment history.
    pub async fn lead_timeline(
        &self,
        lead: &LeadRow,
    ) -> Result<(Vec<IdentityRow>, Vec<InteractionRow>, Vec<AssignmentRow>)> {
        let identities =
            self.identities_of(std::slice::from_ref(&lead.contact_id)).await?.into_iter().map(|(_, i)| i).collect();
        let interactions = sqlx::query(
            "SELECT id, channel, direction, kind, author_id, external_id, subject, text, attachments, at \
             FROM interactions WHERE lead_id = $1 ORDER BY at, id",
        )
        .bind(lead.id.clone())
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(InteractionRow::from_row)
        .collect::<Result<_>>()?;
        let assignments =
            sqlx::query("SELECT rep_id, team_id, reason, at FROM assignments WHERE lead_id = $1 ORDER BY at, id")
                .bind(lead.id.clone())
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| {
                    Ok(AssignmentRow {
                        rep_id: r.col("rep_id")?,
                        team_id: r.col("team_id")?,
                        reason: r.col("reason")?,
                        at: r.col("at")?,
                    })
                })
                .collect::<Result<_>>()?;
        Ok((identities, interactions, assignments))
    }

    /// Up to `f.limit` leads after `f.cursor`, newest first.
    pub async fn leads(&self, f: &LeadFilter, now: i64) -> Result<Vec<LeadRow>> {
        let mut q = Sql::new(LEAD_SELECT);
        // A lead folded into another by a merge is part of that one now.
        q.push(" WHERE l.merged_into IS NULL");
        if let Some(s) = f.status {
            q.push(" AND l.status = ").bind(s.as_str().to_owned());
        }
        if let Some(o) = &f.owner {
            q.push(" AND l.owner_id = ").bind(o.clone());
        }
        if let Some(c) = f.channel {
            q.push(" AND l.channel = ").bind(c.as_str().to_owned());
        }
        if let Some(since) = f.closed_since {
            q.push(" AND l.closed_at >= ").bind(since);
        }
        match f.overdue {
            Some(true) => {
                q.push(" AND l.closed_at IS NULL AND l.next_action_at < ").bind(now);
            }
            Some(false) => {
                q.push(" AND NOT (l.closed_at IS NULL AND l.next_action_at IS NOT NULL AND l.next_action_at < ")
                    .bind(now)
                    .push(")");
            }
            None => {}
        }
        match f.open {
            Some(true) => q.push(" AND l.closed_at IS NULL"),
            Some(false) => q.push(" AND l.closed_at IS NOT NULL"),
            None => &mut q,
        };
        match f.unassigned {
            Some(true) => q.push(" AND l.owner_id IS NULL AND l.closed_at IS NULL"),
            Some(false) => q.push(" AND l.owner_id IS NOT NULL"),
            None => &mut q,
        };
        if let Some(text) = &f.q {
            push_contact_search(&mut q, "l.contact_id", "c.name", text);
        }
        if let Some(cursor) = &f.cursor {
            q.push(" AND l.id < ").bind(cursor.clone());
        }
        q.push(" ORDER BY l.id DESC LIMIT ").bind(f.limit);
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter().map(LeadRow::from_row).collect()
    }
}

/// A validated status change, as [`Tx::set_status`] applies it.
#[derive(Debug, Clone, Copy)]
pub struct StatusChange<'a> {
    pub to: Status,
    pub lost_reason: Option<&'a str>,
    pub lost_note: Option<&'a str>,
    /// `admin`, `rep:<id>`, `scheduler`.
    pub actor: Option<&'a str>,
}

impl Tx {
    /// The lead, locked for this transaction on PostgreSQL.
    pub async fn lead_for_update(&mut self, id: &str) -> Result<LeadRow> {
        let mut q = Sql::new(LEAD_SELECT);
        q.push(" WHERE l.id = ").bind(id.to_owned());
        if self.backend == super::Backend::Postgres {
            q.push(" FOR UPDATE OF l");
        }
        let row = q.build().fetch_optional(&mut *self.tx).await?.ok_or(StoreError::NotFound("lead"))?;
        LeadRow::from_row(&row)
    }

    /// Applies a validated status change and records it (the funnel counts every stage a lead
    /// reached). Closing frees the owner's capacity; reopening takes it again (the rep may go
    /// above capacity: reopening is a deliberate human decision).
    pub async fn set_status(&mut self, lead: &LeadRow, change: &StatusChange<'_>, now: i64) -> Result<()> {
        let was_open = lead.closed_at.is_none();
        let open = change.to.is_open();
        let closed_at = if open { None } else { lead.closed_at.or(Some(now)) };
        sqlx::query(
            "UPDATE leads SET status = $1, lost_reason = $2, lost_note = $3, closed_at = $4, updated_at = $5, \
             last_activity_at = $5 WHERE id = $6",
        )
        .bind(change.to.as_str())
        .bind(change.lost_reason.map(str::to_owned))
        .bind(change.lost_note.map(str::to_owned))
        .bind(closed_at)
        .bind(now)
        .bind(lead.id.clone())
        .execute(&mut *self.tx)
        .await?;
        if lead.status != change.to {
            sqlx::query(
                "INSERT INTO status_changes (id, lead_id, from_status, to_status, actor, at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(new_id())
            .bind(lead.id.clone())
            .bind(lead.status.as_str())
            .bind(change.to.as_str())
            .bind(change.actor.map(str::to_owned))
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        }
        if let Some(owner) = &lead.owner {
            if was_open && !open {
                let mut b = Batch::new();
                push_release(&mut b, &owner.id);
                self.run(b).await?;
            } else if !was_open && open {
                sqlx::query("UPDATE reps SET open_leads = open_leads + 1 WHERE id = $1")
                    .bind(owner.id.clone())
                    .execute(&mut *self.tx)
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn set_next_action(
        &mut self,
        lead_id: &str,
        at: Option<i64>,
        note: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE leads SET next_action_at = $1, next_action_note = $2, updated_at = $3, last_activity_at = $3 \
             WHERE id = $4",
        )
        .bind(at)
        .bind(note.map(str::to_owned))
        .bind(now)
        .bind(lead_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Records the owner's first outbound touch (first response time starts from creation).
    pub async fn mark_first_response(&mut self, lead_id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE leads SET first_response_at = COALESCE(first_response_at, $1) WHERE id = $2")
            .bind(at)
            .bind(lead_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// A lead whose open duplicate would break "one open lead per contact" cannot be reopened.
    pub async fn other_open_lead(&mut self, contact_id: &str, except: &str) -> Result<Option<String>> {
        let id = sqlx::query_scalar("SELECT id FROM leads WHERE contact_id = $1 AND closed_at IS NULL AND id <> $2")
            .bind(contact_id)
            .bind(except)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(id)
    }
}
