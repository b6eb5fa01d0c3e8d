//! Merges as records: what each one moved (`merge_moves`, written by `push_merge`), undoing
//! one, and the merges held for review because anonymous input asked for them between
//! contacts that both have owners.

use super::rows::{Col, Sql};
use super::{Result, Store, StoreError, Tx};

/// A merge of `from_id` into `into_id`.
#[derive(Debug, Clone)]
pub struct MergeRow {
    pub id: String,
    pub into_id: String,
    pub from_id: String,
    /// `shared identity` (intake), `manual`, `review`.
    pub reason: String,
    pub actor: Option<String>,
    pub at: i64,
    pub undone_at: Option<i64>,
    pub undone_by: Option<String>,
}

/// A merge waiting for (or decided by) review.
#[derive(Debug, Clone)]
pub struct MergeReviewRow {
    pub id: String,
    pub into_id: String,
    pub from_id: String,
    /// The lead the inquiry that linked them went to.
    pub lead_id: Option<String>,
    pub channel: String,
    /// `pending`, `merged` or `rejected`.
    pub status: String,
    /// Reps who confirmed so far.
    pub confirmed_by: Vec<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
}

/// What undoing a merge gave back.
#[derive(Debug, Clone, Default)]
pub struct Undone {
    /// Folded leads open again.
    pub reopened: Vec<String>,
    /// Folded leads left closed, because their contact has another open lead by now.
    pub left_closed: Vec<String>,
}

const MERGE_COLUMNS: &str = "id, into_id, from_id, reason, actor, at, undone_at, undone_by";
const REVIEW_COLUMNS: &str =
    "id, into_id, from_id, lead_id, channel, status, confirmed_by, created_at, decided_at, decided_by";

fn merge_from_row(r: &sqlx::any::AnyRow) -> Result<MergeRow> {
    Ok(MergeRow {
        id: r.col("id")?,
        into_id: r.col("into_id")?,
        from_id: r.col("from_id")?,
        reason: r.col("reason")?,
        actor: r.col("actor")?,
        at: r.col("at")?,
        undone_at: r.col("undone_at")?,
        undone_by: r.col("undone_by")?,
    })
}

fn review_from_row(r: &sqlx::any::AnyRow) -> Result<MergeReviewRow> {
    let confirmed: String = r.col("confirmed_by")?;
    Ok(MergeReviewRow {
        id: r.col("id")?,
        into_id: r.col("into_id")?,
        from_id: r.col("from_id")?,
        lead_id: r.col("lead_id")?,
        channel: r.col("channel")?,
        status: r.col("status")?,
        confirmed_by: serde_json::from_str(&confirmed).unwrap_or_default(),
        created_at: r.col("created_at")?,
        decided_at: r.col("decided_at")?,
        decided_by: r.col("decided_by")?,
    })
}

impl Store {
    /// The merges into `contact_id`, oldest first.
    pub async fn merges_into(&self, contact_id: &str) -> Result<Vec<MergeRow>> {
        let mut q = Sql::new("SELECT ");
        q.push(MERGE_COLUMNS).push(" FROM contact_merges WHERE into_id = ").bind(contact_id.to_owned());
        q.push(" ORDER BY at, id");
        q.build().fetch_all(self.reader()).await?.iter().map(merge_from_row).collect()
    }

    /// Pending reviews about `contact_id`, on either side.
    pub async fn pending_reviews_of(&self, contact_id: &str) -> Result<Vec<MergeReviewRow>> {
        let mut q = Sql::new("SELECT ");
        q.push(REVIEW_COLUMNS).push(" FROM merge_reviews WHERE status = 'pending' AND (into_id = ");
        q.bind(contact_id.to_owned()).push(" OR from_id = ").bind(contact_id.to_owned()).push(") ORDER BY created_at");
        q.build().fetch_all(self.reader()).await?.iter().map(review_from_row).collect()
    }

    /// Reviews with `status`, newest first; for a rep, only those about contacts with a lead
    /// of theirs.
    pub async fn merge_reviews(&self, status: &str, rep: Option<&str>, limit: i64) -> Result<Vec<MergeReviewRow>> {
        let mut q = Sql::new("SELECT ");
        q.push(REVIEW_COLUMNS).push(" FROM merge_reviews WHERE status = ").bind(status.to_owned());
        if let Some(rep) = rep {
            q.push(" AND (into_id IN (SELECT contact_id FROM leads WHERE owner_id = ").bind(rep.to_owned());
            q.push(") OR from_id IN (SELECT contact_id FROM leads WHERE owner_id = ").bind(rep.to_owned()).push("))");
        }
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ").bind(limit);
        q.build().fetch_all(self.reader()).await?.iter().map(review_from_row).collect()
    }
}

impl Tx {
    /// A review, locked until commit on PostgreSQL.
    pub async fn merge_review_for_update(&mut self, id: &str) -> Result<MergeReviewRow> {
        let mut q = Sql::new("SELECT ");
        q.push(REVIEW_COLUMNS).push(" FROM merge_reviews WHERE id = ").bind(id.to_owned());
        q.push(self.backend.for_update());
        let row = q.build().fetch_optional(&mut *self.tx).await?.ok_or(StoreError::NotFound("merge review"))?;
        review_from_row(&row)
    }

    /// The reps who own a lead of either contact: those whose confirmation a review needs.
    pub async fn owners_of(&mut self, contacts: &[&str]) -> Result<Vec<String>> {
        let mut q = Sql::new("SELECT DISTINCT owner_id FROM leads WHERE owner_id IS NOT NULL AND contact_id IN (");
        for (i, c) in contacts.iter().enumerate() {
            q.push(if i == 0 { "" } else { ", " }).bind((*c).to_owned());
        }
        q.push(") ORDER BY owner_id");
        q.build().fetch_all(&mut *self.tx).await?.iter().map(|r| r.col("owner_id")).collect()
    }

    pub async fn record_confirmation(&mut self, id: &str, confirmed_by: &[String]) -> Result<()> {
        sqlx::query("UPDATE merge_reviews SET confirmed_by = $1 WHERE id = $2 AND status = 'pending'")
            .bind(serde_json::to_string(confirmed_by).unwrap_or_else(|_| "[]".into()))
            .bind(id.to_owned())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Closes a pending review as `merged` or `rejected`.
    pub async fn decide_review(&mut self, id: &str, status: &str, by: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE merge_reviews SET status = $1, decided_at = $2, decided_by = $3 WHERE id = $4 AND status = 'pending'",
        )
        .bind(status.to_owned())
        .bind(now)
        .bind(by.to_owned())
        .bind(id.to_owned())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Undoes a merge: the identities and leads it moved go back, folded leads open again
    /// (with their messages), and the merged contact stands on its own. A merge whose target
    /// was merged on since must wait until that later merge is undone.
    pub async fn undo_merge(&mut self, merge_id: &str, actor: &str, now: i64) -> Result<Undone> {
        let mut q = Sql::new("SELECT ");
        q.push(MERGE_COLUMNS).push(" FROM contact_merges WHERE id = ").bind(merge_id.to_owned());
        let merge = q.build().fetch_optional(&mut *self.tx).await?.ok_or(StoreError::NotFound("merge"))?;
        let merge = merge_from_row(&merge)?;
        if merge.undone_at.is_some() {
            return Err(StoreError::Conflict("this merge was undone already".into()));
        }
        let (into, from) = (merge.into_id.as_str(), merge.from_id.as_str());
        let mut ids = [into, from];
        ids.sort_unstable();
        for id in ids {
            let mut q = Sql::new("SELECT merged_into FROM contacts WHERE id = ");
            q.bind(id.to_owned()).push(self.backend.for_update());
            let row = q.build().fetch_optional(&mut *self.tx).await?.ok_or(StoreError::NotFound("contact"))?;
            let merged_into: Option<String> = row.col("merged_into")?;
            let expected = if id == from { Some(into) } else { None };
            if merged_into.as_deref() != expected {
                return Err(StoreError::Conflict(match merged_into {
                    Some(later) if id == into => {
                        format!("contact {into} was merged into {later} since: undo that merge first")
                    }
                    _ => format!("contact {from} is no longer merged into {into}"),
                }));
            }
        }
        let moves: Vec<(String, Option<String>, String)> =
            sqlx::query("SELECT item, kind, value FROM merge_moves WHERE merge_id = $1")
                .bind(merge_id.to_owned())
                .fetch_all(&mut *self.tx)
                .await?
                .iter()
                .map(|r| Ok((r.col("item")?, r.col("kind")?, r.col("value")?)))
                .collect::<Result<_>>()?;
        for (item, kind, value) in &moves {
            let q = match item.as_str() {
                "identity" => sqlx::query(
                    "UPDATE identities SET contact_id = $1 WHERE contact_id = $2 AND kind = $3 AND value = $4",
                )
                .bind(from.to_owned())
                .bind(into.to_owned())
                .bind(kind.clone().unwrap_or_default())
                .bind(value.clone()),
                "lead" => sqlx::query("UPDATE leads SET contact_id = $1 WHERE contact_id = $2 AND id = $3")
                    .bind(from.to_owned())
                    .bind(into.to_owned())
                    .bind(value.clone()),
                _ => continue,
            };
            q.execute(&mut *self.tx).await?;
        }
        for (_, original_lead, interaction) in moves.iter().filter(|(item, ..)| item == "message") {
            sqlx::query("UPDATE interactions SET lead_id = $1 WHERE id = $2")
                .bind(original_lead.clone())
                .bind(interaction.clone())
                .execute(&mut *self.tx)
                .await?;
        }
        let mut undone = Undone::default();
        for (_, keep, folded) in moves.iter().filter(|(item, ..)| item == "fold") {
            let row = sqlx::query("SELECT contact_id, owner_id, merged_into FROM leads WHERE id = $1")
                .bind(folded.clone())
                .fetch_optional(&mut *self.tx)
                .await?;
            let Some(row) = row else { continue };
            let (contact, owner, merged_into): (String, Option<String>, Option<String>) =
                (row.col("contact_id")?, row.col("owner_id")?, row.col("merged_into")?);
            if merged_into != *keep {
                continue;
            }
            if self.other_open_lead(&contact, folded).await?.is_some() {
                undone.left_closed.push(folded.clone());
                continue;
            }
            sqlx::query("UPDATE leads SET merged_into = NULL, closed_at = NULL, updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(folded.clone())
                .execute(&mut *self.tx)
                .await?;
            if let Some(owner) = owner {
                sqlx::query("UPDATE reps SET open_leads = open_leads + 1 WHERE id = $1")
                    .bind(owner)
                    .execute(&mut *self.tx)
                    .await?;
            }
            undone.reopened.push(folded.clone());
        }
        sqlx::query("UPDATE contacts SET merged_into = NULL, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(from.to_owned())
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("UPDATE contact_merges SET undone_at = $1, undone_by = $2 WHERE id = $3")
            .bind(now)
            .bind(actor.to_owned())
            .bind(merge_id.to_owned())
            .execute(&mut *self.tx)
            .await?;
        Ok(undone)
    }
}
