//! The scheduler's follow-up jobs: remind owners of next actions that fell due, report leads
//! gone quiet, close leads nobody answers (when configured), and send managers their daily
//! digest. Each job is one transaction over a batch of due leads; what it did is marked on the
//! lead in that transaction, so a crash repeats nothing twice and loses nothing, and instances
//! running the same job split the batch (`SKIP LOCKED`) instead of repeating it.

use serde_json::json;

use super::Jobs;
use crate::assignment::assign_waiting;
use crate::base::retry::on_conflict;
use crate::base::{from_ms, ms};
use crate::domain::followup::{self, Alert};
use crate::domain::lead::Status;
use crate::events::{self, DIGEST_DAILY, LEAD_NEXT_ACTION_DUE, LEAD_STALE};
use crate::settings::NO_RESPONSE;
use crate::store::{LeadRow, StatusChange, StoreError};

/// Leads handled per job and transaction; the next tick takes the rest.
const BATCH: i64 = 100;
/// Without `auto_lost_after`, how long the last unanswered attempt is given before closing.
const ATTEMPT_GRACE_MS: i64 = 3 * 24 * 3600 * 1000;
pub const SCHEDULER: &str = "scheduler";

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FollowUp {
    pub reminded: usize,
    pub stale: usize,
    pub auto_lost: usize,
    pub digests: usize,
}

fn who(lead: &LeadRow) -> &str {
    lead.contact_name.as_deref().unwrap_or("a lead")
}

fn alert_data(lead_id: Option<&str>, alert: &Alert) -> serde_json::Value {
    match lead_id {
        Some(id) => json!({"lead": {"id": id}, "alert": alert}),
        None => json!({"alert": alert}),
    }
}

impl Jobs {
    /// One round of every follow-up job.
    pub async fn follow_up(&self) -> Result<FollowUp, StoreError> {
        let done = FollowUp {
            reminded: on_conflict(|| self.remind_due()).await?,
            stale: on_conflict(|| self.report_stale()).await?,
            auto_lost: on_conflict(|| self.close_unanswered()).await?,
            digests: on_conflict(|| self.send_digests()).await?,
        };
        for (job, n) in [
            ("reminder", done.reminded),
            ("stale", done.stale),
            ("auto_lost", done.auto_lost),
            ("digest", done.digests),
        ] {
            metrics::counter!("leadrouter_followup_total", "job" => job).increment(n as u64);
        }
        if done != FollowUp::default() {
            self.core().wake_outbox();
            tracing::info!(?done, "follow-up");
        }
        if done.auto_lost > 0 {
            assign_waiting(self.core()).await?;
        }
        Ok(done)
    }

    /// The team's manager, if it has one.
    fn manager_of(&self, team_id: Option<&str>) -> Option<&str> {
        team_id.and_then(|t| self.core().settings.team(t)).and_then(|t| t.manager.as_deref())
    }

    async fn remind_due(&self) -> Result<usize, StoreError> {
        let now = ms(jiff::Timestamp::now());
        let mut tx = self.core().store.begin().await?;
        let due = tx.due_reminders(now, BATCH).await?;
        for lead in &due {
            tx.mark_reminded(lead).await?;
            let at = lead.next_action_at.unwrap_or(now);
            let alert = followup::reminder(who(lead), lead.next_action_note.as_deref(), at);
            let mut data = alert_data(Some(&lead.id), &alert);
            data["next_action_at"] = json!(from_ms(at).to_string());
            let mut event =
                events::lead_event(&self.core().settings, LEAD_NEXT_ACTION_DUE, &lead.id, Some(SCHEDULER), data, now);
            if let Some(owner) = &lead.owner {
                events::alert_rep(&mut event, &self.core().settings, &owner.id);
            }
            tx.record_events(&[event]).await?;
        }
        tx.commit().await?;
        Ok(due.len())
    }

    async fn report_stale(&self) -> Result<usize, StoreError> {
        let Some(after) = self.core().settings.pipeline.stale_after else { return Ok(0) };
        let now = ms(jiff::Timestamp::now());
        let mut tx = self.core().store.begin().await?;
        let stale = tx.stale_leads(now - after.as_millis_i64(), BATCH).await?;
        for lead in &stale {
            tx.mark_stale(lead).await?;
            let owner = lead.owner.as_ref();
            let alert = followup::stale(
                who(lead),
                &lead.status.words(),
                owner.map(|o| o.name.as_str()),
                now - lead.last_activity_at,
            );
            let data = alert_data(Some(&lead.id), &alert);
            let mut event = events::lead_event(&self.core().settings, LEAD_STALE, &lead.id, Some(SCHEDULER), data, now);
            let manager = self.manager_of(lead.team_id.as_deref());
            let owner = owner.map(|o| o.id.as_str());
            for rep in owner.into_iter().chain(manager.filter(|m| Some(*m) != owner)) {
                events::alert_rep(&mut event, &self.core().settings, rep);
            }
            tx.record_events(&[event]).await?;
        }
        tx.commit().await?;
        Ok(stale.len())
    }

    /// `auto_lost_after` in `waiting_response`, or `auto_lost_attempts` unanswered messages:
    /// closed as lost with `no_response`. Off unless configured.
    async fn close_unanswered(&self) -> Result<usize, StoreError> {
        let p = &self.core().settings.pipeline;
        if p.auto_lost_after.is_none() && p.auto_lost_attempts.is_none() {
            return Ok(0);
        }
        let now = ms(jiff::Timestamp::now());
        let mut tx = self.core().store.begin().await?;
        let mut due = Vec::new();
        if let Some(after) = p.auto_lost_after {
            for lead in tx.waiting_too_long(now - after.as_millis_i64(), BATCH).await? {
                let why =
                    format!("waiting for a response for over {}", followup::rough_duration(after.as_millis_i64()));
                due.push((lead, why));
            }
        }
        if let Some(attempts) = p.auto_lost_attempts {
            let grace = p.auto_lost_after.map_or(ATTEMPT_GRACE_MS, |d| d.as_millis_i64());
            for lead in tx.unanswered(i64::from(attempts), now - grace, BATCH).await? {
                if !due.iter().any(|(d, _)| d.id == lead.id) {
                    due.push((lead, format!("{attempts} messages in a row went unanswered")));
                }
            }
        }
        for (lead, why) in &due {
            let change = StatusChange {
                to: Status::Lost,
                lost_reason: Some(NO_RESPONSE),
                lost_note: Some(why),
                actor: Some(SCHEDULER),
            };
            let mut event = self.pipeline.change_status(&mut tx, lead, &change, now).await?;
            event.data["data"]["alert"] = json!(followup::auto_lost(who(lead), why));
            if let Some(owner) = &lead.owner {
                events::alert_rep(&mut event, &self.core().settings, &owner.id);
            }
            tx.record_events(&[event]).await?;
        }
        tx.commit().await?;
        Ok(due.len())
    }

    /// Each manager's digest, once per local day after `pipeline.digest_at`.
    async fn send_digests(&self) -> Result<usize, StoreError> {
        let Some(at) = self.core().settings.pipeline.digest_at else { return Ok(0) };
        let now = jiff::Timestamp::now();
        let mut managers: Vec<&str> = self.core().settings.teams.iter().filter_map(|t| t.manager.as_deref()).collect();
        managers.sort_unstable();
        managers.dedup();
        let mut sent = 0;
        for manager in managers {
            let Some(rep) = self.core().store.rep(manager).await? else { continue };
            let tz = rep.timezone.as_deref().and_then(|t| jiff::tz::TimeZone::get(t).ok());
            let Some(due) = followup::digest_due(now, &tz.unwrap_or(jiff::tz::TimeZone::UTC), at) else { continue };
            let teams: Vec<String> = self
                .core()
                .settings
                .teams
                .iter()
                .filter(|t| t.manager.as_deref() == Some(manager))
                .map(|t| t.id.clone())
                .collect();
            let mut tx = self.core().store.begin().await?;
            if !tx.claim_digest(manager, &due.day, ms(now)).await? {
                continue;
            }
            let quiet_since = self.core().settings.pipeline.stale_after.map(|d| ms(now) - d.as_millis_i64());
            let counts = tx.digest_counts(&teams, (due.from, due.to), ms(now), quiet_since).await?;
            let alert = followup::digest(&due.day, &teams, &counts);
            let data = json!({"manager": manager, "day": due.day, "teams": teams, "alert": alert, "counts": counts});
            let mut event = events::event(&self.core().settings, DIGEST_DAILY, Some(SCHEDULER), data, ms(now));
            events::alert_rep(&mut event, &self.core().settings, manager);
            tx.record_events(&[event]).await?;
            tx.commit().await?;
            sent += 1;
        }
        Ok(sent)
    }
}
