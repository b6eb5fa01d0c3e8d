//! Owners after intake: the `lead.assigned` event every assignment writes, the team as the
//! store routes in it, and offering leads that wait for an owner to reps who became eligible
//! (the scheduler's tick, and right after a change freed someone's capacity).

use serde_json::json;

use crate::base::ms;
use crate::base::retry::on_conflict;
use crate::core::Core;
use crate::domain::plan;
use crate::domain::routing::Strategy;
use crate::events::{self, LEAD_ASSIGNED};
use crate::settings::Settings;
use crate::store::{Assignment, NewEvent, StoreError, TeamRef};

/// Team `id` as configured, for the store's routing.
pub fn team_ref(settings: &Settings, id: &str) -> TeamRef {
    let team = settings.team(id);
    TeamRef {
        id: id.to_owned(),
        strategy: team.map(|t| t.strategy).unwrap_or_default(),
        after_hours: team.is_some_and(|t| t.after_hours),
    }
}

/// `lead.assigned` for `rep_id`, who is told. Callers add `previous_owner` and the team
/// announcement where those apply.
pub fn assigned_event(
    settings: &Settings,
    lead_id: &str,
    (rep_id, rep_name): (&str, &str),
    reason: &str,
    actor: Option<&str>,
    now: i64,
) -> NewEvent {
    let data = json!({"lead": {"id": lead_id, "owner": {"id": rep_id, "name": rep_name}}, "reason": reason});
    let mut event = events::lead_event(settings, LEAD_ASSIGNED, lead_id, actor, data, now);
    events::notify_rep(&mut event, settings, rep_id);
    event
}

/// Offers waiting leads to reps who became eligible. Returns how many got an owner.
pub async fn assign_waiting(core: &Core) -> Result<usize, StoreError> {
    on_conflict(|| try_assign_waiting(core)).await
}

async fn try_assign_waiting(core: &Core) -> Result<usize, StoreError> {
    let settings = &core.settings;
    let now = jiff::Timestamp::now();
    let mut tx = core.store.begin().await?;
    let waiting = tx.unassigned_leads(500).await?;
    let mut full_teams: Vec<String> = Vec::new();
    let mut assigned = 0;
    for (lead_id, team_id, created_at) in waiting {
        let Some(team_id) = team_id.or_else(|| settings.routing.default_team.clone()) else { continue };
        if full_teams.contains(&team_id) {
            continue;
        }
        let team_ref = team_ref(settings, &team_id);
        // A claim lead waits for someone to press Take, until the team's sla runs out; then it
        // goes round-robin.
        let claim_timeout = team_ref.strategy == Strategy::Claim;
        if claim_timeout {
            let sla = settings.team(&team_id).and_then(|t| t.sla).map(|d| d.as_millis_i64());
            if sla.is_none_or(|sla| ms(now) - created_at < sla) {
                continue;
            }
        }
        let mut team = tx.team_context(&team_ref).await?;
        if claim_timeout {
            team.strategy = Strategy::RoundRobin;
        }
        let Some(mut owner) = plan::choose_owner(&team, None, false, now) else {
            full_teams.push(team_id);
            continue;
        };
        if claim_timeout {
            owner.reason = "claim_timeout";
        }
        let name = team.name_of(&owner.rep_id);
        let mut event = assigned_event(settings, &lead_id, (&owner.rep_id, &name), owner.reason, None, ms(now));
        events::announce(&mut event, settings, Some(&team_id));
        let route = Some((team_id.as_str(), team.seq + 1));
        let a = Assignment {
            lead_id: &lead_id,
            previous_owner: None,
            rep_id: &owner.rep_id,
            route,
            reason: owner.reason,
            wrr_updates: &owner.wrr_updates,
            enforce_capacity: true,
        };
        tx.assign(&a, &[event], ms(now)).await?;
        assigned += 1;
    }
    tx.commit().await?;
    if assigned > 0 {
        core.wake_outbox();
        tracing::info!(assigned, "waiting leads assigned");
    }
    Ok(assigned)
}
