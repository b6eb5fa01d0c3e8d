//! Intake: one inquiry becomes, in one transaction, an inbound item, a contact, a lead (or a
//! message on the open one), an owner, events and outbox rows. Only after commit does the
//! caller acknowledge the inquiry to its channel.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokio::sync::Notify;
use tracing::Instrument;

use crate::domain::dedup::{self, Resolution};
use crate::domain::routing::{self, Facts, Strategy};
use crate::domain::{Identity, Inquiry};
use crate::events::{self, LEAD_ASSIGNED, LEAD_CREATED, LEAD_MESSAGE};
use crate::settings::Settings;
use crate::store::{Claim, InboundMeta, LeadDraft, Store, StoreError, Tx, from_ms, ms, new_id};

/// How often a unit of work is retried after losing a race to another writer.
const MAX_ATTEMPTS: usize = 8;

/// Everything intake needs, shared by channels, API and scheduler.
#[derive(Clone)]
pub struct Intake {
    pub store: Store,
    pub settings: Arc<Settings>,
    rules: Arc<Vec<routing::Rule>>,
    /// Rung after commits that may have written outbox rows.
    pub outbox_wakeup: Arc<Notify>,
}

/// The raw item as received, kept for replay.
pub struct RawItem<'a> {
    pub meta: &'a InboundMeta,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new lead was opened.
    Created { lead_id: String, contact_id: String, owner: Option<String> },
    /// The message joined the contact's open lead.
    Joined { lead_id: String, contact_id: String },
    /// Seen before: nothing changed.
    Duplicate { lead_id: Option<String> },
}

impl Outcome {
    pub fn lead_id(&self) -> Option<&str> {
        match self {
            Outcome::Created { lead_id, .. } | Outcome::Joined { lead_id, .. } => Some(lead_id),
            Outcome::Duplicate { lead_id } => lead_id.as_deref(),
        }
    }
    fn label(&self) -> &'static str {
        match self {
            Outcome::Created { .. } => "created",
            Outcome::Joined { .. } => "joined",
            Outcome::Duplicate { .. } => "duplicate",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The item could not be processed; it was recorded as a failed inbound item (replayable).
    #[error("inquiry could not be processed and was recorded as failed inbound item {item_id}: {source}")]
    Failed { item_id: String, source: StoreError },
    /// Not even the failure could be recorded: nothing was committed, do not acknowledge.
    #[error("storage unavailable: {0}")]
    Unavailable(StoreError),
}

/// A routing result to announce.
struct Assigned {
    rep_id: String,
    rep_name: String,
    reason: &'static str,
}

impl Intake {
    pub fn new(store: Store, settings: Arc<Settings>) -> Self {
        let rules = Arc::new(settings.rules());
        Intake { store, settings, rules, outbox_wakeup: Arc::new(Notify::new()) }
    }

    /// Processes one inquiry. `Ok` means committed: acknowledge it.
    pub async fn submit(&self, inquiry: &Inquiry, raw: RawItem<'_>) -> Result<Outcome, IntakeError> {
        let span = tracing::info_span!(
            "intake",
            channel = %inquiry.channel,
            external_id = %inquiry.external_id,
            lead_id = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self.submit_with_retries(inquiry, &raw).instrument(span.clone()).await;
        let channel = inquiry.channel.as_str();
        match &result {
            Ok(outcome) => {
                if let Some(id) = outcome.lead_id() {
                    span.record("lead_id", id);
                }
                metrics::counter!("leadrouter_inquiries_total", "channel" => channel, "outcome" => outcome.label())
                    .increment(1);
                if let Outcome::Created { owner, .. } = outcome {
                    metrics::counter!("leadrouter_leads_created_total", "channel" => channel).increment(1);
                    if owner.is_some() {
                        metrics::histogram!("leadrouter_assignment_seconds").record(started.elapsed().as_secs_f64());
                    }
                }
                span.in_scope(|| tracing::debug!(outcome = outcome.label(), "inquiry committed"));
            }
            Err(e) => {
                metrics::counter!("leadrouter_inquiries_total", "channel" => channel, "outcome" => "failed")
                    .increment(1);
                span.in_scope(|| tracing::error!(error = %e, "inquiry failed"));
            }
        }
        result
    }

    async fn submit_with_retries(&self, inquiry: &Inquiry, raw: &RawItem<'_>) -> Result<Outcome, IntakeError> {
        let mut last = StoreError::Retry;
        for attempt in 0..MAX_ATTEMPTS {
            match self.try_submit(inquiry, raw).await {
                Ok(outcome) => return Ok(outcome),
                Err(StoreError::Retry) => {
                    tracing::debug!(attempt, "lost a race with another writer, retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
        let now = ms(jiff::Timestamp::now());
        let channel = inquiry.channel.as_str();
        match self
            .store
            .record_failed_inbound(channel, &inquiry.external_id, raw.meta, raw.payload, &last.to_string(), now)
            .await
        {
            Ok(item_id) => Err(IntakeError::Failed { item_id, source: last }),
            Err(e) => Err(IntakeError::Unavailable(e)),
        }
    }

    async fn try_submit(&self, inquiry: &Inquiry, raw: &RawItem<'_>) -> Result<Outcome, StoreError> {
        let now = ms(jiff::Timestamp::now());
        let mut tx = self.store.begin().await?;
        let item_id =
            match tx.claim_inbound(inquiry.channel.as_str(), &inquiry.external_id, raw.meta, raw.payload, now).await? {
                Claim::New(id) => id,
                Claim::Duplicate { lead_id, .. } => return Ok(Outcome::Duplicate { lead_id }),
            };

        let contact_id = self.resolve_contact(&mut tx, inquiry, now).await?;
        let attachments = serde_json::to_string(&inquiry.message.attachments).unwrap_or_else(|_| "[]".into());
        let channel = inquiry.channel.as_str();
        let outcome = match tx.open_lead(&contact_id).await? {
            Some(open) => {
                tx.add_interaction(
                    &open.id,
                    channel,
                    "inbound",
                    "message",
                    None,
                    Some(&inquiry.external_id),
                    inquiry.message.subject.as_deref(),
                    &inquiry.message.text,
                    &attachments,
                    now,
                )
                .await?;
                let data = json!({
                    "lead": {"id": open.id, "owner": open.owner_id.as_ref().map(|id| json!({"id": id}))},
                    "message": {"channel": channel, "direction": "inbound", "subject": inquiry.message.subject, "text": inquiry.message.text},
                });
                tx.record_event(&events::lead_event(&self.settings, LEAD_MESSAGE, &open.id, None, data, now)).await?;
                Outcome::Joined { lead_id: open.id, contact_id: contact_id.clone() }
            }
            None => self.open_lead(&mut tx, inquiry, &contact_id, &attachments, now).await?,
        };
        tx.finish_inbound(&item_id, "processed", outcome.lead_id(), None, now).await?;
        tx.commit().await?;
        self.outbox_wakeup.notify_one();
        Ok(outcome)
    }

    /// Finds the person behind the inquiry, merging contacts it proves to be one person.
    async fn resolve_contact(&self, tx: &mut Tx, inquiry: &Inquiry, now: i64) -> Result<String, StoreError> {
        let matches = tx.contacts_matching(&inquiry.identities).await?;
        let name = inquiry.contact_name.as_deref();
        let contact_id = match dedup::resolve(&matches) {
            Resolution::New => tx.create_contact(name, now).await?,
            Resolution::Existing(id) => id,
            Resolution::Merge { into, from } => {
                let merged = tx.merge_contacts(&into, &from, "shared identity", now).await?;
                tracing::info!(contact_id = %into, merged = from.len(), folded_leads = merged.folded_leads.len(), "contacts merged");
                into
            }
        };
        tx.lock_contact(&contact_id, name, now).await?;
        tx.attach_identities(&contact_id, &inquiry.identities, now).await?;
        Ok(contact_id)
    }

    async fn open_lead(
        &self,
        tx: &mut Tx,
        inquiry: &Inquiry,
        contact_id: &str,
        attachments: &str,
        now: i64,
    ) -> Result<Outcome, StoreError> {
        let lead_id = new_id();
        let s = &inquiry.source;
        let facts = Facts {
            channel: Some(inquiry.channel),
            form: s.form.as_deref(),
            mailbox: s.mailbox.as_deref(),
            utm_source: s.utm_source.as_deref(),
            language: inquiry.language.as_deref(),
            country: inquiry.country.as_deref(),
        };
        let team = routing::pick_team(&self.rules, self.settings.routing.default_team.as_deref(), &facts);
        let sticky = if self.settings.routing.sticky_owner { tx.previous_owner(contact_id).await? } else { None };
        tx.insert_lead(&LeadDraft { id: &lead_id, contact_id, inquiry, team_id: team, now }).await?;
        let channel = inquiry.channel.as_str();
        tx.add_interaction(
            &lead_id,
            channel,
            "inbound",
            "message",
            None,
            Some(&inquiry.external_id),
            inquiry.message.subject.as_deref(),
            &inquiry.message.text,
            attachments,
            now,
        )
        .await?;
        let assigned = self.route(tx, &lead_id, team, sticky.as_deref(), now).await?;
        let owner = assigned.as_ref().map(|a| json!({"id": a.rep_id, "name": a.rep_name}));
        let data = json!({
            "lead": {
                "id": lead_id, "status": "new", "channel": channel,
                "source": {"form": s.form, "mailbox": s.mailbox, "utm_source": s.utm_source, "utm_medium": s.utm_medium, "utm_campaign": s.utm_campaign},
                "owner": owner,
                "contact": {"id": contact_id, "name": inquiry.contact_name,
                    "identities": inquiry.identities.iter().map(identity_json).collect::<Vec<_>>()},
            },
            "message": {"subject": inquiry.message.subject, "text": inquiry.message.text},
        });
        tx.record_event(&events::lead_event(&self.settings, LEAD_CREATED, &lead_id, None, data, now)).await?;
        if let Some(a) = &assigned {
            self.announce_assignment(tx, &lead_id, a, now).await?;
        }
        Ok(Outcome::Created { lead_id, contact_id: contact_id.to_owned(), owner: assigned.map(|a| a.rep_id) })
    }

    async fn announce_assignment(&self, tx: &mut Tx, lead_id: &str, a: &Assigned, now: i64) -> Result<(), StoreError> {
        let data = json!({"lead": {"id": lead_id, "owner": {"id": a.rep_id, "name": a.rep_name}}, "reason": a.reason});
        tx.record_event(&events::lead_event(&self.settings, LEAD_ASSIGNED, lead_id, None, data, now)).await
    }

    /// Chooses and records an owner in `team`, or leaves the lead waiting.
    async fn route(
        &self,
        tx: &mut Tx,
        lead_id: &str,
        team: Option<&str>,
        sticky: Option<&str>,
        now: i64,
    ) -> Result<Option<Assigned>, StoreError> {
        let Some(team_id) = team else { return Ok(None) };
        let team = self.settings.team(team_id);
        let strategy = team.map(|t| t.strategy).unwrap_or_default();
        let after_hours = team.is_some_and(|t| t.after_hours);
        let target = tx.lock_team(team_id).await?;
        let candidates = tx.team_candidates(team_id).await?;
        let at = from_ms(now);

        if let Some(prev) = sticky {
            let candidate = match candidates.iter().find(|c| c.rep_id == prev) {
                Some(c) => Some(c.clone()),
                None => tx.rep_candidate(prev).await?,
            };
            if candidate.is_some_and(|c| c.is_eligible(at, after_hours)) {
                let rep_name = tx.assign(lead_id, None, prev, Some(&target), "sticky_owner", &[], true, now).await?;
                return Ok(Some(Assigned { rep_id: prev.to_owned(), rep_name, reason: "sticky_owner" }));
            }
        }
        let Some(choice) = routing::choose(strategy, &candidates, at, after_hours) else {
            if strategy != Strategy::Claim {
                tracing::info!(team = team_id, "no eligible rep: lead waits unassigned");
            }
            return Ok(None);
        };
        let rep_name = tx
            .assign(lead_id, None, &choice.rep_id, Some(&target), choice.reason, &choice.wrr_updates, true, now)
            .await?;
        Ok(Some(Assigned { rep_id: choice.rep_id, rep_name, reason: choice.reason }))
    }

    /// Offers waiting leads to reps who became eligible. Returns how many got an owner.
    pub async fn assign_waiting(&self) -> Result<usize, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            match self.try_assign_waiting().await {
                Err(StoreError::Retry) => tokio::time::sleep(backoff(attempt)).await,
                other => return other,
            }
        }
        Err(StoreError::Retry)
    }

    async fn try_assign_waiting(&self) -> Result<usize, StoreError> {
        let now = ms(jiff::Timestamp::now());
        let mut tx = self.store.begin().await?;
        let waiting = tx.unassigned_leads(500).await?;
        let mut full_teams: Vec<Option<String>> = Vec::new();
        let mut assigned = 0;
        for (lead_id, team_id, _contact) in waiting {
            if full_teams.contains(&team_id) {
                continue;
            }
            let team = team_id.as_deref().or(self.settings.routing.default_team.as_deref());
            match self.route(&mut tx, &lead_id, team, None, now).await? {
                Some(a) => {
                    self.announce_assignment(&mut tx, &lead_id, &a, now).await?;
                    assigned += 1;
                }
                None => full_teams.push(team_id),
            }
        }
        tx.commit().await?;
        if assigned > 0 {
            self.outbox_wakeup.notify_one();
            tracing::info!(assigned, "waiting leads assigned");
        }
        Ok(assigned)
    }
}

fn identity_json(i: &Identity) -> serde_json::Value {
    json!({"kind": i.kind().as_str(), "value": i.value()})
}

/// Short, jittered pauses between retries: contention clears in milliseconds.
fn backoff(attempt: usize) -> std::time::Duration {
    let base = 2u64.saturating_pow(attempt as u32).min(64);
    std::time::Duration::from_millis(base + rand::random_range(0..=base))
}
