//! A team's `sla`: the time an owner has to take a lead on (press Take, answer the prospect,
//! change its status or log a touch) before it goes to the next rep, both of them told; after
//! `max_reassignments` moves it stays and the team's manager is alerted. Runs on the scheduler's
//! tick; several instances may run it at once (the team's row lock orders them).

use serde_json::json;

use super::Jobs;
use crate::assignment::{assigned_event, team_ref};
use crate::base::ms;
use crate::base::retry::on_conflict;
use crate::domain::followup;
use crate::domain::plan;
use crate::domain::routing::Strategy;
use crate::events::{self, LEAD_ESCALATED, LEAD_REASSIGNED_AWAY};
use crate::settings::TeamSettings;
use crate::store::{Assignment, StoreError};

impl Jobs {
    /// Hands leads nobody took on within their team's `sla` to another eligible member.
    /// Returns how many moved.
    pub async fn reassign_unaccepted(&self) -> Result<usize, StoreError> {
        let mut moved = 0;
        for team in self.core().settings.teams.iter().filter(|t| t.sla.is_some()) {
            moved += on_conflict(|| self.reassign_team(team)).await?;
        }
        if moved > 0 {
            self.core().wake_outbox();
            tracing::info!(moved, "leads not taken on within the sla reassigned");
        }
        Ok(moved)
    }

    async fn reassign_team(&self, settings: &TeamSettings) -> Result<usize, StoreError> {
        let team_id = settings.id.as_str();
        let sla_ms = settings.sla.map_or(i64::MAX, |d| d.as_millis_i64());
        let now = jiff::Timestamp::now();
        let mut tx = self.core().store.begin().await?;
        let overdue = tx.unaccepted_leads(team_id, ms(now) - sla_ms, 100).await?;
        let mut moved = 0;
        for (lead, moves) in overdue {
            // The query only returns owned leads.
            let Some(owner) = &lead.owner else { continue };
            let (lead_id, previous) = (lead.id.as_str(), owner.id.clone());
            let who = lead.contact_name.as_deref().unwrap_or("a lead");
            if moves >= i64::from(settings.max_reassignments) {
                // Moving it on again would only ping-pong it: a person decides now.
                tx.mark_escalated(lead_id, ms(now)).await?;
                let alert = followup::escalated(who, &owner.name, moves + 1);
                let data = json!({"lead": {"id": lead_id}, "owner": previous, "reassignments": moves, "alert": alert});
                let mut event = events::lead_event(&self.core().settings, LEAD_ESCALATED, lead_id, None, data, ms(now));
                match &settings.manager {
                    Some(manager) => events::alert_rep(&mut event, &self.core().settings, manager),
                    None => {
                        tracing::warn!(lead = %lead_id, team = team_id, "nobody takes this lead on and the team has no manager to alert")
                    }
                }
                tx.record_events(&[event]).await?;
                continue;
            }
            let mut team = tx.team_context(&team_ref(&self.core().settings, team_id)).await?;
            // Claim teams too: the lead already went round-robin after nobody claimed it.
            team.strategy = match team.strategy {
                Strategy::Claim => Strategy::RoundRobin,
                other => other,
            };
            team.candidates.retain(|c| c.rep_id != previous);
            let Some(next) = plan::choose_owner(&team, None, false, now) else { continue };
            let name = team.name_of(&next.rep_id);
            let mut event = assigned_event(&self.core().settings, lead_id, (&next.rep_id, &name), "sla", None, ms(now));
            event.data["data"]["previous_owner"] = json!(previous);
            events::announce(&mut event, &self.core().settings, Some(team_id));
            // The rep it leaves hears so too: the card they have is no longer theirs to act on.
            let alert = followup::moved_away(who, &name);
            let mut left = events::lead_event(
                &self.core().settings,
                LEAD_REASSIGNED_AWAY,
                lead_id,
                None,
                json!({"lead": {"id": lead_id}, "rep": previous, "alert": alert}),
                ms(now),
            );
            events::alert_rep(&mut left, &self.core().settings, &previous);
            let route = Some((team_id, team.seq + 1));
            let a = Assignment {
                lead_id,
                previous_owner: Some(&previous),
                rep_id: &next.rep_id,
                route,
                reason: "sla",
                wrr_updates: &next.wrr_updates,
                enforce_capacity: true,
            };
            tx.assign(&a, &[event, left], ms(now)).await?;
            moved += 1;
        }
        tx.commit().await?;
        Ok(moved)
    }
}
