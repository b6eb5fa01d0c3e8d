//! Intake: one inquiry becomes, in one transaction, an inbound item, a contact, a lead (or a
//! message on the open one), an owner, events and outbox rows. Only after commit does the
//! caller acknowledge the inquiry to its channel. How the transaction runs is the store's
//! (`Store::intake`); what it decides is here (`Decisions`: routing, the domain's plan with
//! the merge policy, the events and who hears of them).

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tracing::Instrument;

use crate::assignment::{assigned_event, team_ref};
use crate::base::{ms, new_id};
use crate::core::Core;
use crate::domain::plan::{self, LeadStep, MergePolicy, Owner, Plan, TeamContext};
use crate::domain::routing::{self, Candidate, Facts};
use crate::domain::{Bookkeeping, Channel, Identity, InboundMeta, Inquiry};
use crate::events::{self, LEAD_CREATED, LEAD_MESSAGE};
use crate::settings::Settings;
use crate::store::{IntakeRequest, IntakeRules, NewEvent, StoreError, TeamRef, payload_sha256};

pub use crate::domain::Outcome;

/// The one way in: channels (through the inbox), the API and forms submit inquiries here.
#[derive(Clone)]
pub struct Intake {
    pub core: Core,
    decisions: Arc<Decisions>,
}

/// The raw item as received, kept for replay.
pub struct RawItem<'a> {
    pub meta: &'a InboundMeta,
    pub payload: &'a [u8],
    /// The idempotency key was chosen by the sender (an `Idempotency-Key`): the same key with
    /// another body is refused (`Outcome::KeyReused`), as payment APIs do, instead of being
    /// taken for a retry.
    pub sender_key: bool,
}

impl<'a> RawItem<'a> {
    /// An item keyed by the channel itself (an update id, a Message-ID, a body hash).
    pub fn new(meta: &'a InboundMeta, payload: &'a [u8]) -> Self {
        RawItem { meta, payload, sender_key: false }
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

/// What intake decides, from the settings: the store calls it inside the unit of work.
struct Decisions {
    settings: Arc<Settings>,
    routing: Vec<routing::Rule>,
}

impl Intake {
    pub fn new(core: Core) -> Self {
        let settings = core.settings.clone();
        let decisions = Arc::new(Decisions { routing: settings.rules(), settings });
        Intake { core, decisions }
    }

    /// Processes one inquiry. `Ok` means committed: acknowledge it.
    pub async fn submit(&self, inquiry: &Inquiry, raw: RawItem<'_>) -> Result<Outcome, IntakeError> {
        self.submit_with(inquiry, raw, Vec::new()).await
    }

    /// `submit`, with what the channel learned besides (say, a mailbox cursor) written in the
    /// same transaction, also when the item turns out to be a duplicate.
    pub(crate) async fn submit_with(
        &self,
        inquiry: &Inquiry,
        raw: RawItem<'_>,
        also: Vec<Bookkeeping>,
    ) -> Result<Outcome, IntakeError> {
        let span = tracing::info_span!(
            "intake",
            channel = %inquiry.channel,
            external_id = %inquiry.external_id,
            lead_id = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self.commit_inquiry(inquiry, &raw, also).instrument(span.clone()).await;
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

    async fn commit_inquiry(
        &self,
        inquiry: &Inquiry,
        raw: &RawItem<'_>,
        also: Vec<Bookkeeping>,
    ) -> Result<Outcome, IntakeError> {
        // Every way in passes here: NULs are dropped once for all channels.
        let inquiry = inquiry.clone().without_nul();
        let request = IntakeRequest {
            team: self.team_for(&inquiry),
            meta: raw.meta.clone(),
            payload: raw.payload.to_vec(),
            payload_sha256: payload_sha256(raw.payload),
            sender_key: raw.sender_key,
            also,
            inquiry: inquiry.clone(),
        };
        let error = match self.core.store.intake(request, self.decisions.clone()).await {
            Ok(outcome) => {
                self.core.wake_outbox();
                return Ok(outcome);
            }
            Err(e) => e,
        };
        let now = ms(jiff::Timestamp::now());
        let channel = inquiry.channel.as_str();
        match self
            .core
            .store
            .record_failed_inbound(channel, &inquiry.external_id, raw.meta, raw.payload, &error.to_string(), now)
            .await
        {
            Ok(item_id) => Err(IntakeError::Failed { item_id, source: error }),
            Err(e) => Err(IntakeError::Unavailable(e)),
        }
    }

    fn team_for(&self, inquiry: &Inquiry) -> Option<TeamRef> {
        let s = &inquiry.source;
        let facts = Facts {
            channel: Some(inquiry.channel),
            form: s.form.as_deref(),
            mailbox: s.mailbox.as_deref(),
            utm_source: s.utm_source.as_deref(),
            language: inquiry.language.as_deref(),
            country: inquiry.country.as_deref(),
        };
        let settings = &self.core.settings;
        routing::pick_team(&self.decisions.routing, settings.routing.default_team.as_deref(), &facts)
            .map(|id| team_ref(settings, id))
    }
}

impl IntakeRules for Decisions {
    fn plan(&self, inquiry: &Inquiry, ctx: &plan::Context, now: jiff::Timestamp) -> Plan {
        // Only an admin's API call vouches for the identities it brings together.
        let policy = if inquiry.channel == Channel::Api { MergePolicy::Merge } else { MergePolicy::HoldOwned };
        let plan = plan::plan(
            &inquiry.identities,
            inquiry.contact_name.is_some(),
            ctx,
            self.settings.routing.sticky_owner,
            policy,
            now,
            new_id,
        );
        if let plan::ContactStep::Merge { into, from, .. } = &plan.contact {
            tracing::info!(contact_id = %into, merged = from.len(), folded_leads = plan.folded.len(), "contacts merged");
        }
        if !plan.held.is_empty() {
            tracing::info!(contact_id = %plan.contact.id(), held = plan.held.len(), "merge with owned contacts held for review");
        }
        plan
    }

    fn owner(&self, team: &TeamContext, previous: Option<&Candidate>, now: jiff::Timestamp) -> Option<Owner> {
        plan::choose_owner(team, previous, self.settings.routing.sticky_owner, now)
    }

    fn events(&self, inquiry: &Inquiry, plan: &Plan, ctx: &plan::Context, now: i64) -> Vec<NewEvent> {
        self.intake_events(inquiry, plan, ctx, now)
    }
}

impl Decisions {
    /// The events an intake plan produces: a message on the open lead, or a new lead and its
    /// assignment.
    fn intake_events(&self, inquiry: &Inquiry, plan: &Plan, ctx: &plan::Context, now: i64) -> Vec<NewEvent> {
        let mut events = self.lead_events(inquiry, plan, ctx, now);
        if !plan.held.is_empty() {
            events.push(self.merge_held_event(inquiry, plan, ctx, now));
        }
        events
    }

    /// A merge held for review: the owners of the contacts it would join hear of it (and
    /// webhooks that want `contact.merge_held`).
    fn merge_held_event(&self, inquiry: &Inquiry, plan: &Plan, ctx: &plan::Context, now: i64) -> NewEvent {
        let (LeadStep::Join { lead_id, .. } | LeadStep::Open { lead_id, .. }) = &plan.lead;
        let into = plan.contact.id();
        let who = inquiry.contact_name.as_deref().unwrap_or("A contact");
        let alert = crate::domain::followup::merge_held(who, plan.held.len());
        let data = json!({"lead": {"id": lead_id}, "contact": {"id": into}, "held": plan.held, "alert": alert});
        let mut event = events::lead_event(&self.settings, events::CONTACT_MERGE_HELD, lead_id, None, data, now);
        let mut owners: Vec<&str> = ctx
            .known
            .iter()
            .filter(|k| k.contact_id == into || plan.held.contains(&k.contact_id))
            .filter_map(|k| k.contact_owner.as_deref())
            .collect();
        owners.sort_unstable();
        owners.dedup();
        for owner in owners {
            events::alert_rep(&mut event, &self.settings, owner);
        }
        event
    }

    fn lead_events(&self, inquiry: &Inquiry, plan: &Plan, ctx: &plan::Context, now: i64) -> Vec<NewEvent> {
        let channel = inquiry.channel.as_str();
        let message = json!({"channel": channel, "direction": "inbound", "external_id": inquiry.external_id,
                             "subject": inquiry.message.subject, "text": inquiry.message.text});
        match &plan.lead {
            LeadStep::Join { lead_id, owner_id } => {
                let data = json!({"lead": {"id": lead_id, "owner": owner_id.as_ref().map(|id| json!({"id": id}))}, "message": message});
                let mut event = events::lead_event(&self.settings, LEAD_MESSAGE, lead_id, None, data, now);
                if let Some(owner) = owner_id {
                    events::notify_rep(&mut event, &self.settings, owner);
                }
                vec![event]
            }
            LeadStep::Open { lead_id, owner, team } => {
                let s = &inquiry.source;
                let owner = owner.as_ref().map(|o| {
                    let name = ctx
                        .team
                        .iter()
                        .flat_map(|t| t.candidates.iter())
                        .chain(ctx.previous_owner.iter())
                        .find(|c| c.rep_id == o.rep_id)
                        .map(|c| c.name.clone())
                        .unwrap_or_else(|| o.rep_id.clone());
                    (o, name)
                });
                let owner_json = owner.as_ref().map(|(o, name)| json!({"id": o.rep_id, "name": name}));
                let data = json!({
                    "lead": {
                        "id": lead_id, "status": "new", "channel": channel,
                        "source": {"form": s.form, "mailbox": s.mailbox, "utm_source": s.utm_source, "utm_medium": s.utm_medium, "utm_campaign": s.utm_campaign},
                        "owner": owner_json,
                        "contact": {"id": plan.contact.id(), "name": inquiry.contact_name,
                            "identities": inquiry.identities.iter().map(identity_json).collect::<Vec<_>>()},
                    },
                    "message": message,
                });
                let mut created = events::lead_event(&self.settings, LEAD_CREATED, lead_id, None, data, now);
                events::announce(&mut created, &self.settings, team.as_ref().map(|(t, _)| t.as_str()));
                let sender = inquiry.identities.iter().find(|i| i.kind() == crate::domain::IdentityKind::Email);
                if let (Some(mailbox), Some(sender)) = (&s.mailbox, sender) {
                    events::acknowledge(&mut created, &self.settings, mailbox, sender.value());
                }
                let mut out = vec![created];
                if let Some((o, name)) = owner {
                    out.push(assigned_event(&self.settings, lead_id, (&o.rep_id, &name), o.reason, None, now));
                }
                out
            }
        }
    }
}

fn identity_json(i: &Identity) -> serde_json::Value {
    json!({"kind": i.kind().as_str(), "value": i.value()})
}
