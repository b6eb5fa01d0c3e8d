//! A team's `sla`: the time an owner has to take a lead on (press Take, answer the prospect,
//! change its status or log a touch) before it goes to the next rep. Runs on the scheduler's
//! tick; several instances may run it at once (the team's row lock orders them).

use serde_json::json;

use crate::domain::plan;
use crate::domain::routing::Strategy;
use crate::events::{self, LEAD_ASSIGNED};
use crate::intake::Intake;
use crate::store::{StoreError, ms, retry_pause};

const ATTEMPTS: usize = 8;

impl Intake {
    /// Hands leads nobody took on within their team's `sla` to another eligible member.
    /// Returns how many moved.
    pub async fn reassign_unaccepted(&self) -> Result<usize, StoreError> {
        let mut moved = 0;
        for team in self.settings.teams.iter().filter(|t| t.sla.is_some()) {
            let sla = team.sla.map(|d| d.as_millis_i64()).unwrap_or(i64::MAX);
            for attempt in 0..ATTEMPTS {
                match self.reassign_team(&team.id, sla).await {
                    Err(StoreError::Retry) if attempt + 1 < ATTEMPTS => tokio::time::sleep(retry_pause(attempt)).await,
                    other => {
                        moved += other?;
                        break;
                    }
                }
            }
        }
        if moved > 0 {
            self.outbox_wakeup.notify_one();
            tracing::info!(moved, "leads not taken on within the sla reassigned");
        }
        Ok(moved)
    }

    async fn reassign_team(&self, team_id: &str, sla_ms: i64) -> Result<usize, StoreError> {
        let now = jiff::Timestamp::now();
        let mut tx = self.store.begin().await?;
        let overdue = tx.unaccepted_leads(team_id, ms(now) - sla_ms, 100).await?;
        let mut moved = 0;
        for (lead_id, previous) in overdue {
            let mut team = tx.team_context(self.team_ref(team_id)).await?;
            // Claim teams too: the lead already went round-robin after nobody claimed it.
            team.strategy = match team.strategy {
                Strategy::Claim => Strategy::RoundRobin,
                other => other,
            };
            team.candidates.retain(|c| c.rep_id != previous);
            let Some(next) = plan::choose_owner(&team, None, false, now) else { continue };
            let name = team.candidates.iter().find(|c| c.rep_id == next.rep_id).map(|c| c.name.clone());
            let data = json!({"lead": {"id": lead_id, "owner": {"id": next.rep_id, "name": name}},
                              "reason": "sla", "previous_owner": previous});
            let mut event = events::lead_event(&self.settings, LEAD_ASSIGNED, &lead_id, None, data, ms(now));
            events::notify_rep(&mut event, &self.settings, &next.rep_id);
            events::announce(&mut event, &self.settings, Some(team_id));
            let route = Some((team_id, team.seq + 1));
            tx.assign(
                &lead_id,
                Some(&previous),
                &next.rep_id,
                route,
                "sla",
                &next.wrr_updates,
                true,
                &[event],
                ms(now),
            )
            .await?;
            moved += 1;
        }
        tx.commit().await?;
        Ok(moved)
    }
}
