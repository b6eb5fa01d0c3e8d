//! Intake: one inquiry becomes, in one transaction, an inbound item, a contact, a lead (or a
//! message on the open one), an owner, events and outbox rows. Only after commit does the
//! caller acknowledge the inquiry to its channel.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokio::sync::{Notify, oneshot};
use tracing::Instrument;

use crate::base::retry::on_conflict;
use crate::base::{ms, new_id};
use crate::domain::plan::{self, ContactStep, LeadStep, MergePolicy, Plan};
use crate::domain::routing::{self, Facts, Strategy};
use crate::domain::{Channel, Identity, Inquiry};
use crate::events::{self, LEAD_ASSIGNED, LEAD_CREATED, LEAD_MESSAGE};
use crate::settings::Settings;
use crate::store::{
    Backend, Batch, BatchRows, ContextQueries, InboundMeta, IntakeWrite, NewEvent, Step, Store, StoreError, TeamRef,
    UnitOfWork, assignment_writes, context_reads, intake_writes, parse_context, parse_team, payload_sha256, team_reads,
};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new lead was opened.
    Created { lead_id: String, contact_id: String, owner: Option<String> },
    /// The message joined the contact's open lead.
    Joined { lead_id: String, contact_id: String },
    /// Seen before: nothing changed.
    Duplicate { lead_id: Option<String> },
    /// The sender used the key of an earlier item for a different body: nothing changed.
    KeyReused,
}

impl Outcome {
    pub fn lead_id(&self) -> Option<&str> {
        match self {
            Outcome::Created { lead_id, .. } | Outcome::Joined { lead_id, .. } => Some(lead_id),
            Outcome::Duplicate { lead_id } => lead_id.as_deref(),
            Outcome::KeyReused => None,
        }
    }
    fn label(&self) -> &'static str {
        match self {
            Outcome::Created { .. } => "created",
            Outcome::Joined { .. } => "joined",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::KeyReused => "key_reused",
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

impl Intake {
    pub fn new(store: Store, settings: Arc<Settings>) -> Self {
        let rules = Arc::new(settings.rules());
        Intake { store, settings, rules, outbox_wakeup: Arc::new(Notify::new()) }
    }

    /// Processes one inquiry. `Ok` means committed: acknowledge it.
    pub async fn submit(&self, inquiry: &Inquiry, raw: RawItem<'_>) -> Result<Outcome, IntakeError> {
        self.submit_with(inquiry, raw, Batch::new()).await
    }

    /// `submit`, with the channel's own bookkeeping (say, a mailbox cursor) written in the
    /// same transaction, also when the item turns out to be a duplicate.
    pub(crate) async fn submit_with(
        &self,
        inquiry: &Inquiry,
        raw: RawItem<'_>,
        also: Batch,
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

    async fn commit_inquiry(&self, inquiry: &Inquiry, raw: &RawItem<'_>, also: Batch) -> Result<Outcome, IntakeError> {
        // Every way in passes here: NULs are dropped once for all channels.
        let inquiry = inquiry.clone().without_nul();
        let (reply, outcome) = oneshot::channel();
        let unit = IntakeUnit {
            intake: self.clone(),
            inquiry: inquiry.clone(),
            meta_json: serde_json::to_string(raw.meta).unwrap_or_else(|_| "{}".into()),
            payload: raw.payload.to_vec(),
            payload_sha256: payload_sha256(raw.payload),
            sender_key: raw.sender_key,
            phase: Phase::Start,
            also,
            outcome: None,
            reply: Some(reply),
        };
        self.store.perform(Box::new(unit)).await;
        let error = match outcome.await {
            Ok(Ok(outcome)) => {
                self.outbox_wakeup.notify_one();
                return Ok(outcome);
            }
            Ok(Err(e)) => e,
            Err(_) => StoreError::Corrupt("the writer dropped the inquiry".into()),
        };
        let now = ms(jiff::Timestamp::now());
        let channel = inquiry.channel.as_str();
        match self
            .store
            .record_failed_inbound(channel, &inquiry.external_id, raw.meta, raw.payload, &error.to_string(), now)
            .await
        {
            Ok(item_id) => Err(IntakeError::Failed { item_id, source: error }),
            Err(e) => Err(IntakeError::Unavailable(e)),
        }
    }

    fn team_for(&self, inquiry: &Inquiry) -> Option<TeamRef<'_>> {
        let s = &inquiry.source;
        let facts = Facts {
            channel: Some(inquiry.channel),
            form: s.form.as_deref(),
            mailbox: s.mailbox.as_deref(),
            utm_source: s.utm_source.as_deref(),
            language: inquiry.language.as_deref(),
            country: inquiry.country.as_deref(),
        };
        routing::pick_team(&self.rules, self.settings.routing.default_team.as_deref(), &facts)
            .map(|id| self.team_ref(id))
    }

    pub(crate) fn team_ref<'a>(&'a self, id: &'a str) -> TeamRef<'a> {
        let team = self.settings.team(id);
        TeamRef {
            id,
            strategy: team.map(|t| t.strategy).unwrap_or_default(),
            after_hours: team.is_some_and(|t| t.after_hours),
        }
    }

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
                    out.push(self.assigned_event(lead_id, (&o.rep_id, &name), o.reason, None, now));
                }
                out
            }
        }
    }

    /// `lead.assigned` for `rep_id`, who is told. Callers add `previous_owner` and the team
    /// announcement where those apply.
    pub(crate) fn assigned_event(
        &self,
        lead_id: &str,
        (rep_id, rep_name): (&str, &str),
        reason: &str,
        actor: Option<&str>,
        now: i64,
    ) -> NewEvent {
        let data = json!({"lead": {"id": lead_id, "owner": {"id": rep_id, "name": rep_name}}, "reason": reason});
        let mut event = events::lead_event(&self.settings, LEAD_ASSIGNED, lead_id, actor, data, now);
        events::notify_rep(&mut event, &self.settings, rep_id);
        event
    }

    /// Offers waiting leads to reps who became eligible. Returns how many got an owner.
    pub async fn assign_waiting(&self) -> Result<usize, StoreError> {
        on_conflict(|| self.try_assign_waiting()).await
    }

    async fn try_assign_waiting(&self) -> Result<usize, StoreError> {
        let now = jiff::Timestamp::now();
        let mut tx = self.store.begin().await?;
        let waiting = tx.unassigned_leads(500).await?;
        let mut full_teams: Vec<String> = Vec::new();
        let mut assigned = 0;
        for (lead_id, team_id, created_at) in waiting {
            let Some(team_id) = team_id.or_else(|| self.settings.routing.default_team.clone()) else { continue };
            if full_teams.contains(&team_id) {
                continue;
            }
            let team_ref = self.team_ref(&team_id);
            // A claim lead waits for someone to press Take, until the team's sla runs out;
            // then it goes round-robin.
            let claim_timeout = team_ref.strategy == Strategy::Claim;
            if claim_timeout {
                let sla = self.settings.team(&team_id).and_then(|t| t.sla).map(|d| d.as_millis_i64());
                if sla.is_none_or(|sla| ms(now) - created_at < sla) {
                    continue;
                }
            }
            let mut team = tx.team_context(team_ref).await?;
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
            let name =
                team.candidates.iter().find(|c| c.rep_id == owner.rep_id).map(|c| c.name.clone()).unwrap_or_default();
            let mut event = self.assigned_event(&lead_id, (&owner.rep_id, &name), owner.reason, None, ms(now));
            events::announce(&mut event, &self.settings, Some(&team_id));
            let route = Some((team_id.as_str(), team.seq + 1));
            tx.assign(&lead_id, None, &owner.rep_id, route, owner.reason, &owner.wrr_updates, true, &[event], ms(now))
                .await?;
            assigned += 1;
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

impl IntakeUnit {
    fn decide_context(
        &mut self,
        rows: &BatchRows,
        queries: ContextQueries,
        backend: Backend,
    ) -> Result<Step, StoreError> {
        let (inquiry, intake) = (&self.inquiry, &self.intake);
        let team = intake.team_for(inquiry).filter(|_| backend == Backend::Sqlite);
        let (seen, ctx) = parse_context(rows, queries, team)?;
        if let Some(seen) = seen.filter(|s| !s.failed) {
            let other_body = seen.payload_sha256.as_ref().is_some_and(|h| *h != self.payload_sha256);
            self.outcome = Some(if self.sender_key && other_body {
                Outcome::KeyReused
            } else {
                Outcome::Duplicate { lead_id: seen.lead_id }
            });
            return Ok(Step::Done(self.also.clone()));
        }
        let now = jiff::Timestamp::now();
        // Only an admin's API call vouches for the identities it brings together.
        let policy = if inquiry.channel == Channel::Api { MergePolicy::Merge } else { MergePolicy::HoldOwned };
        let mut plan = plan::plan(
            &inquiry.identities,
            inquiry.contact_name.is_some(),
            &ctx,
            intake.settings.routing.sticky_owner,
            policy,
            now,
            new_id,
        );
        if let ContactStep::Merge { into, from, .. } = &plan.contact {
            tracing::info!(contact_id = %into, merged = from.len(), folded_leads = plan.folded.len(), "contacts merged");
        }
        if !plan.held.is_empty() {
            tracing::info!(contact_id = %plan.contact.id(), held = plan.held.len(), "merge with owned contacts held for review");
        }
        let contact_id = plan.contact.id().to_owned();
        let write = |plan: &Plan, events: &[NewEvent]| {
            intake_writes(&IntakeWrite {
                inquiry,
                plan,
                meta_json: &self.meta_json,
                payload: &self.payload,
                payload_sha256: &self.payload_sha256,
                events,
                now: ms(now),
            })
        };
        // PostgreSQL: the lead is written now, its owner chosen in a second round.
        if let (LeadStep::Open { lead_id, team, .. }, Some(route)) = (&mut plan.lead, intake.team_for(inquiry))
            && backend == Backend::Postgres
        {
            *team = Some((route.id.to_owned(), 0));
            self.outcome = Some(Outcome::Created { lead_id: lead_id.clone(), contact_id, owner: None });
            let writes = write(&plan, &[]);
            let (reads, members) = team_reads(backend, route.id);
            self.phase = Phase::Routing { members, plan: Box::new(plan), ctx: Box::new(ctx), now };
            return Ok(Step::More { writes, reads });
        }
        let events = intake.intake_events(inquiry, &plan, &ctx, ms(now));
        let mut writes = write(&plan, &events);
        writes.append(self.also.clone());
        self.outcome = Some(match plan.lead {
            LeadStep::Join { lead_id, .. } => Outcome::Joined { lead_id, contact_id },
            LeadStep::Open { lead_id, owner, .. } => {
                Outcome::Created { lead_id, contact_id, owner: owner.map(|o| o.rep_id) }
            }
        });
        Ok(Step::Done(writes))
    }

    /// PostgreSQL's second round: the team is locked and read; choose and record the owner.
    fn decide_owner(
        &mut self,
        rows: &BatchRows,
        members: usize,
        mut plan: Plan,
        mut ctx: plan::Context,
        now: jiff::Timestamp,
    ) -> Result<Step, StoreError> {
        let intake = &self.intake;
        let route = intake.team_for(&self.inquiry).ok_or_else(|| StoreError::Corrupt("team vanished".into()))?;
        let team = parse_team(rows, members, route)?;
        let owner = plan::choose_owner(&team, ctx.previous_owner.as_ref(), intake.settings.routing.sticky_owner, now);
        let seq = team.seq + 1;
        let LeadStep::Open { lead_id, .. } = &plan.lead else {
            return Err(StoreError::Corrupt("routing a lead that is not new".into()));
        };
        let lead_id = lead_id.clone();
        plan.lead =
            LeadStep::Open { lead_id: lead_id.clone(), team: Some((team.id.clone(), seq)), owner: owner.clone() };
        ctx.team = Some(team);
        let events = intake.intake_events(&self.inquiry, &plan, &ctx, ms(now));
        let mut writes = assignment_writes(&lead_id, owner.as_ref().map(|o| (o, (route.id, seq))), &events, ms(now));
        writes.append(self.also.clone());
        if let Some(Outcome::Created { owner: slot, .. }) = &mut self.outcome {
            *slot = owner.map(|o| o.rep_id);
        }
        Ok(Step::Done(writes))
    }
}

/// One inquiry as a unit of work: read the person's and the team's state, decide (domain
/// `plan`), write. Runs in the SQLite writer's groups or alone on PostgreSQL, where routing
/// is a second round so that the team's lock is held only for the assignment itself.
struct IntakeUnit {
    intake: Intake,
    inquiry: Inquiry,
    meta_json: String,
    payload: Vec<u8>,
    payload_sha256: String,
    sender_key: bool,
    phase: Phase,
    /// Written with the unit's own writes, whatever they are.
    also: Batch,
    outcome: Option<Outcome>,
    reply: Option<oneshot::Sender<Result<Outcome, StoreError>>>,
}

enum Phase {
    Start,
    Context { queries: ContextQueries, backend: Backend },
    Routing { members: usize, plan: Box<Plan>, ctx: Box<plan::Context>, now: jiff::Timestamp },
}

impl UnitOfWork for IntakeUnit {
    fn reads(&mut self, backend: Backend) -> Batch {
        // SQLite has one writer: the team's state is read up front, no lock needed.
        let team = match backend {
            Backend::Sqlite => self.intake.team_for(&self.inquiry).map(|t| t.id),
            Backend::Postgres => None,
        };
        let i = &self.inquiry;
        let (batch, queries) =
            context_reads(backend, i.channel.as_str(), &i.external_id, &i.identities, &i.thread, team);
        self.phase = Phase::Context { queries, backend };
        batch
    }

    fn decide(&mut self, rows: BatchRows) -> Result<Step, StoreError> {
        match std::mem::replace(&mut self.phase, Phase::Start) {
            Phase::Start => Err(StoreError::Corrupt("decide before reads".into())),
            Phase::Context { queries, backend } => self.decide_context(&rows, queries, backend),
            Phase::Routing { members, plan, ctx, now } => self.decide_owner(&rows, members, *plan, *ctx, now),
        }
    }

    fn finish(mut self: Box<Self>, result: Result<(), StoreError>) {
        let result = result.and_then(|()| self.outcome.take().ok_or_else(|| StoreError::Corrupt("no outcome".into())));
        if let Some(reply) = self.reply.take() {
            // The caller may have gone (client disconnected); the work is committed regardless.
            let _ = reply.send(result);
        }
    }
}
