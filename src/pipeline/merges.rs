//! People deciding about merges: confirming or rejecting a merge held for review, and an
//! admin undoing one. Each is one transaction.

use super::{Actor, Pipeline, PipelineError};
use crate::assignment::assign_waiting;
use crate::base::ms;
use crate::store::{MergeReviewRow, Undone};

/// What a confirmation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// The contacts are one now.
    Merged,
    /// Recorded; these owners have yet to confirm.
    Waiting(Vec<String>),
}

impl Pipeline {
    /// An admin's confirmation merges at once; otherwise every owner of either contact's
    /// leads must confirm. A rep who owns none of them does not see the review.
    pub async fn confirm_merge(&self, actor: &Actor, review_id: &str) -> Result<Confirmed, PipelineError> {
        let now = ms(jiff::Timestamp::now());
        let mut tx = self.core.store.begin().await?;
        let review = open_review(&mut tx, review_id).await?;
        let owners = tx.owners_of(&[&review.into_id, &review.from_id]).await?;
        if let Actor::Rep(rep) = actor {
            if !owners.contains(rep) {
                return Err(PipelineError::NotFound("merge review"));
            }
            let mut by = review.confirmed_by.clone();
            if !by.contains(rep) {
                by.push(rep.clone());
            }
            let waiting: Vec<String> = owners.iter().filter(|o| !by.contains(o)).cloned().collect();
            if !waiting.is_empty() {
                tx.record_confirmation(review_id, &by).await?;
                tx.commit().await?;
                return Ok(Confirmed::Waiting(waiting));
            }
        }
        let label = actor.label();
        let merged = tx
            .merge_contacts(&review.into_id, std::slice::from_ref(&review.from_id), "review", Some(&label), now)
            .await?;
        tx.decide_review(review_id, "merged", &label, now).await?;
        tx.commit().await?;
        if !merged.folded_leads.is_empty() {
            // Folded leads gave their owners' capacity back.
            assign_waiting(&self.core).await?;
        }
        tracing::info!(review_id, contact_id = %review.into_id, "held merge confirmed");
        Ok(Confirmed::Merged)
    }

    /// An admin, or any owner of either contact's leads, rejects the merge: the contacts stay
    /// apart and the review is closed.
    pub async fn reject_merge(&self, actor: &Actor, review_id: &str) -> Result<(), PipelineError> {
        let now = ms(jiff::Timestamp::now());
        let mut tx = self.core.store.begin().await?;
        let review = open_review(&mut tx, review_id).await?;
        if let Actor::Rep(rep) = actor
            && !tx.owners_of(&[&review.into_id, &review.from_id]).await?.contains(rep)
        {
            return Err(PipelineError::NotFound("merge review"));
        }
        tx.decide_review(review_id, "rejected", &actor.label(), now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Undoes a merge (admins only: checked by the caller).
    pub async fn undo_merge(&self, actor: &Actor, merge_id: &str) -> Result<Undone, PipelineError> {
        let now = ms(jiff::Timestamp::now());
        let mut tx = self.core.store.begin().await?;
        let undone = tx.undo_merge(merge_id, &actor.label(), now).await?;
        tx.commit().await?;
        tracing::info!(merge_id, reopened = undone.reopened.len(), "merge undone");
        Ok(undone)
    }
}

async fn open_review(tx: &mut crate::store::Tx, id: &str) -> Result<MergeReviewRow, PipelineError> {
    let review = tx.merge_review_for_update(id).await?;
    if review.status != "pending" {
        return Err(PipelineError::Conflict(format!("this review was decided already ({})", review.status)));
    }
    Ok(review)
}
