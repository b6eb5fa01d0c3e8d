//! Changes people make to leads after intake: status, owner, next action, notes, tasks, and
//! their decisions about merges (`merges`). Each is one transaction that also writes its events
//! (and so its outbox rows).

pub mod merges;

use serde_json::json;

use crate::assignment::{assign_waiting, assigned_event};
use crate::base::ms;
use crate::core::Core;
use crate::domain::followup;
use crate::domain::lead::{self, LeadRuleError, Status};
use crate::events::{self, LEAD_MESSAGE, LEAD_REASSIGNED_AWAY, LEAD_STATUS_CHANGED};
use crate::store::{Assignment, LeadRow, NewEvent, NewInteraction, StatusChange, StoreError, TaskPatch, TaskRow, Tx};

/// Who is acting: admins may do anything, a rep only on their own leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Admin,
    Rep(String),
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Admin => "admin".into(),
            Actor::Rep(id) => format!("rep:{id}"),
        }
    }
    pub fn may_see(&self, lead: &LeadRow) -> bool {
        match self {
            Actor::Admin => true,
            Actor::Rep(id) => lead.owner.as_ref().is_some_and(|o| &o.id == id),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Rule(#[from] LeadRuleError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for PipelineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => PipelineError::NotFound(what),
            other => PipelineError::Store(other),
        }
    }
}

/// A requested change. `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct LeadUpdate {
    pub status: Option<Status>,
    pub lost_reason: Option<String>,
    /// Says why, for the reason `other`.
    pub lost_note: Option<String>,
    pub owner: Option<String>,
    /// Why an admin hands the lead to someone else (kept with the assignment's event).
    pub reassign_note: Option<String>,
    pub next_action_at: Option<Option<i64>>,
    pub next_action_note: Option<Option<String>>,
}

/// How a note or logged touch appears on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// Internal note: not a message to the prospect.
    #[default]
    Note,
    /// A call, email or message the rep sent outside leadrouter: counts as a response.
    Call,
    Message,
}

/// People's changes to leads (the API, the dashboard, the rep console in Telegram).
#[derive(Clone)]
pub struct Pipeline {
    pub core: Core,
}

impl Pipeline {
    pub fn new(core: Core) -> Self {
        Pipeline { core }
    }

    pub async fn update_lead(&self, actor: &Actor, lead_id: &str, u: &LeadUpdate) -> Result<(), PipelineError> {
        let now = ms(jiff::Timestamp::now());
        let mut tx = self.core.store.begin().await?;
        let lead = tx.lead_for_update(lead_id).await?;
        let freed_capacity = self.change_lead(&mut tx, actor, &lead, u, now).await?;
        tx.commit().await?;
        self.core.wake_outbox();
        if freed_capacity {
            assign_waiting(&self.core).await?;
        }
        Ok(())
    }

    /// The change itself, inside the caller's transaction (a rep's Telegram command commits it
    /// with the update that asked for it). Returns whether an owner's capacity freed up.
    pub(crate) async fn change_lead(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        lead: &LeadRow,
        u: &LeadUpdate,
        now: i64,
    ) -> Result<bool, PipelineError> {
        if !actor.may_see(lead) {
            return Err(PipelineError::NotFound("lead"));
        }
        if let Some(into) = &lead.merged_into {
            return Err(PipelineError::Conflict(format!(
                "this lead was merged into lead {into}: work on that one (an admin can undo the merge)"
            )));
        }
        let current = lead.status;
        let mut freed_capacity = false;
        if let Actor::Rep(_) = actor {
            // The owner working on the lead has evidently taken it on.
            tx.accept_lead(&lead.id, now).await?;
        }

        let rules = self.pipeline_rules();
        let next_action = u.next_action_at.unwrap_or(lead.next_action_at);
        // Checked when the status moves or the next action is cleared: leads that predate the
        // rule keep working until someone touches them.
        if u.status.is_some_and(|to| to != current) || u.next_action_at == Some(None) {
            lead::check_next_action(u.status.unwrap_or(current), next_action, rules)?;
        }
        let actor_label = actor.label();
        if let Some(to) = u.status {
            let t = lead::transition(current, to, u.lost_reason.as_deref(), u.lost_note.as_deref(), rules)?;
            if t.reopens()
                && let Some(other) = tx.other_open_lead(&lead.contact_id, &lead.id).await?
            {
                return Err(PipelineError::Conflict(format!(
                    "the contact already has open lead {other}; close it before reopening this one"
                )));
            }
            if t.changes() || t.lost_reason != lead.lost_reason || t.lost_note != lead.lost_note {
                let change = StatusChange {
                    to,
                    lost_reason: t.lost_reason.as_deref(),
                    lost_note: t.lost_note.as_deref(),
                    actor: Some(&actor_label),
                };
                let event = self.change_status(tx, lead, &change, now).await?;
                tx.record_events(&[event]).await?;
                freed_capacity = t.closes();
            }
        } else if u.lost_reason.is_some() || u.lost_note.is_some() {
            if current != Status::Lost {
                return Err(LeadRuleError::ReasonWithoutLost.into());
            }
            let reason = u.lost_reason.as_deref().or(lead.lost_reason.as_deref());
            let note = u.lost_note.as_deref().or(lead.lost_note.as_deref());
            let t = lead::transition(current, current, reason, note, rules)?;
            let change = StatusChange {
                to: current,
                lost_reason: t.lost_reason.as_deref(),
                lost_note: t.lost_note.as_deref(),
                actor: Some(&actor_label),
            };
            tx.set_status(lead, &change, now).await?;
        }

        if let Some(owner) = &u.owner {
            if *actor != Actor::Admin {
                return Err(PipelineError::Forbidden("only an admin can reassign a lead".into()));
            }
            if lead.closed_at.is_some() || u.status.is_some_and(|s| !s.is_open()) {
                return Err(PipelineError::Conflict("a closed lead cannot be reassigned; reopen it first".into()));
            }
            if lead.owner.as_ref().map(|o| &o.id) != Some(owner) {
                let Some(rep) = tx.rep_candidate(owner).await? else {
                    return Err(PipelineError::Invalid(format!("owner `{owner}` is not a rep")));
                };
                let previous = lead.owner.as_ref().map(|o| o.id.as_str());
                let mut event = assigned_event(
                    &self.core.settings,
                    &lead.id,
                    (owner, &rep.name),
                    "manual",
                    Some(&actor_label),
                    now,
                );
                event.data["data"]["previous_owner"] = json!(previous);
                event.data["data"]["note"] = json!(u.reassign_note);
                events::announce(&mut event, &self.core.settings, lead.team_id.as_deref());
                let mut events = vec![event];
                if let Some(previous) = previous {
                    let who = lead.contact_name.as_deref().unwrap_or("a lead");
                    let alert = followup::handed_over(who, &rep.name, u.reassign_note.as_deref());
                    let data = json!({"lead": {"id": lead.id}, "rep": previous, "alert": alert});
                    let mut left = events::lead_event(
                        &self.core.settings,
                        LEAD_REASSIGNED_AWAY,
                        &lead.id,
                        Some(&actor.label()),
                        data,
                        now,
                    );
                    events::alert_rep(&mut left, &self.core.settings, previous);
                    events.push(left);
                }
                // An admin's explicit choice may go above the rep's capacity.
                let a = Assignment {
                    lead_id: &lead.id,
                    previous_owner: previous,
                    rep_id: owner,
                    route: None,
                    reason: "manual",
                    wrr_updates: &[],
                    enforce_capacity: false,
                };
                tx.assign(&a, &events, now).await?;
                freed_capacity |= previous.is_some();
            }
        }

        if u.next_action_at.is_some() || u.next_action_note.is_some() {
            let note = u.next_action_note.clone().unwrap_or(lead.next_action_note.clone());
            tx.set_next_action(&lead.id, next_action, note.as_deref(), now).await?;
        }
        Ok(freed_capacity)
    }

    /// Applies a validated status change and builds its `lead.status_changed` event, announced
    /// in the team chat; the caller may add deliveries before recording it.
    pub(crate) async fn change_status(
        &self,
        tx: &mut Tx,
        lead: &LeadRow,
        change: &StatusChange<'_>,
        now: i64,
    ) -> Result<NewEvent, StoreError> {
        tx.set_status(lead, change, now).await?;
        let data = json!({"lead": {"id": lead.id}, "from": lead.status, "to": change.to.as_str(),
                          "lost_reason": change.lost_reason, "lost_note": change.lost_note});
        let mut event = events::lead_event(&self.core.settings, LEAD_STATUS_CHANGED, &lead.id, change.actor, data, now);
        events::announce(&mut event, &self.core.settings, lead.team_id.as_deref());
        Ok(event)
    }

    /// What status changes are checked against.
    pub fn pipeline_rules(&self) -> lead::Rules<'_> {
        lead::Rules {
            lost_reasons: &self.core.settings.pipeline.lost_reasons,
            require_next_action: self.core.settings.pipeline.require_next_action,
        }
    }

    /// Adds a note or logs a touch on the lead's timeline.
    pub async fn add_note(
        &self,
        actor: &Actor,
        lead_id: &str,
        kind: NoteKind,
        text: &str,
    ) -> Result<String, PipelineError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PipelineError::Invalid("`text` must not be empty".into()));
        }
        if text.chars().count() > 20_000 {
            return Err(PipelineError::Invalid("`text` is longer than 20000 characters".into()));
        }
        let now = ms(jiff::Timestamp::now());
        let mut tx = self.core.store.begin().await?;
        let lead = tx.lead_for_update(lead_id).await?;
        if !actor.may_see(&lead) {
            return Err(PipelineError::NotFound("lead"));
        }
        let author = match actor {
            Actor::Rep(id) => Some(id.as_str()),
            Actor::Admin => None,
        };
        let (direction, kind_name) = match kind {
            NoteKind::Note => ("internal", "note"),
            NoteKind::Call => ("outbound", "call"),
            NoteKind::Message => ("outbound", "message"),
        };
        let mut events = Vec::new();
        if direction == "outbound" {
            tx.mark_first_response(&lead.id, now).await?;
            if author.is_some_and(|a| lead.owner.as_ref().is_some_and(|o| o.id == a)) {
                tx.accept_lead(&lead.id, now).await?;
            }
            let data = json!({"lead": {"id": lead.id}, "message": {"channel": "api", "direction": direction, "kind": kind_name, "text": text}});
            events.push(events::lead_event(
                &self.core.settings,
                LEAD_MESSAGE,
                &lead.id,
                Some(&actor.label()),
                data,
                now,
            ));
        }
        let note = NewInteraction {
            lead_id: &lead.id,
            channel: "api",
            direction,
            kind: kind_name,
            author_id: author,
            external_id: None,
            text,
            attachments_json: "[]",
            at: now,
        };
        let id = tx.add_interaction(&note, &events).await?;
        tx.commit().await?;
        self.core.wake_outbox();
        Ok(id)
    }
}

/// A task's title: what to do, in a line.
fn task_title(title: &str) -> Result<&str, PipelineError> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 500 {
        return Err(PipelineError::Invalid("`title` must be 1 to 500 characters".into()));
    }
    Ok(title)
}

impl Pipeline {
    pub async fn add_task(
        &self,
        actor: &Actor,
        lead_id: &str,
        title: &str,
        due_at: Option<i64>,
    ) -> Result<TaskRow, PipelineError> {
        let title = task_title(title)?;
        let now = ms(jiff::Timestamp::now());
        let mut tx = self.core.store.begin().await?;
        let lead = tx.lead_for_update(lead_id).await?;
        if !actor.may_see(&lead) {
            return Err(PipelineError::NotFound("lead"));
        }
        let author = actor.label();
        let task = tx.add_task(&lead.id, title, due_at, Some(&author), now).await?;
        tx.commit().await?;
        Ok(task)
    }

    pub async fn update_task(
        &self,
        actor: &Actor,
        lead_id: &str,
        task_id: &str,
        patch: &TaskPatch,
    ) -> Result<TaskRow, PipelineError> {
        if let Some(title) = &patch.title {
            task_title(title)?;
        }
        let patch = TaskPatch { title: patch.title.as_deref().map(|t| t.trim().to_owned()), ..patch.clone() };
        let now = ms(jiff::Timestamp::now());
        let mut tx = self.core.store.begin().await?;
        let lead = tx.lead_for_update(lead_id).await?;
        if !actor.may_see(&lead) {
            return Err(PipelineError::NotFound("lead"));
        }
        let task = tx.update_task(&lead.id, task_id, &patch, now).await?;
        tx.commit().await?;
        Ok(task)
    }
}
