//! The rep side of the bot, one of the surfaces people act through (beside the API and the
//! dashboard): linking a rep's chat, the buttons on lead cards, commands, and replies relayed
//! to the prospect. It changes leads through the same pipeline calls the others use. Each
//! update is one transaction together with its inbound record and the bot's answers (outbox
//! rows), so a redelivered update changes nothing and is answered once. A refused action
//! (someone else's lead, a stale button) rolls back and only its answer is recorded.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::assignment::{assign_waiting, assigned_event};
use crate::base::ms;
use crate::base::retry::race_pause;
use crate::cards::outgoing::{self, Outgoing};
use crate::cards::telegram::{self as render, Action, View};
use crate::channels::telegram::message_key;
use crate::channels::telegram::parse::{ProspectMessage, TgUser};
use crate::core::Core;
use crate::domain::TelegramMessage;
use crate::domain::lead::{LeadRuleError, Status};
use crate::domain::routing::Strategy;
use crate::events::{self, LEAD_MESSAGE};
use crate::pipeline::{Actor, LeadUpdate, Pipeline, PipelineError};
use crate::store::{Assignment, InboundRecord, LeadFilter, LeadRow, NewInteraction, RepRecord, StoreError, Tx};

/// What a rep made inactive (or removed from the config) hears when they try anything.
const SWITCHED_OFF: &str = "Your leadrouter access is switched off: ask an admin.";
/// What an accepted action leaves behind besides its own writes.
#[derive(Default)]
struct Done {
    lead_id: Option<String>,
    out: Vec<Outgoing>,
    freed_capacity: bool,
}

/// Why an action did not happen.
enum Refusal {
    /// Rolled back; the bot says why.
    Said(Vec<Outgoing>),
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

const ATTEMPTS: u32 = crate::base::retry::RACE_ATTEMPTS;

/// The rep console in Telegram.
#[derive(Clone)]
pub struct TelegramConsole {
    pipeline: Pipeline,
}

/// One rep-side request, run inside the update's transaction.
enum Work<'a> {
    /// Only answers (help, lists, a card).
    Reply {
        lead_id: Option<String>,
        out: Vec<Outgoing>,
    },
    /// Refused before touching anything.
    Refuse(Vec<Outgoing>),
    Link {
        code_hash: String,
        chat: i64,
    },
    Press {
        rep: &'a RepRecord,
        action: Action,
        callback: &'a str,
        at: Option<(i64, i32)>,
    },
    Status {
        rep: &'a RepRecord,
        lead_id: String,
        status: Status,
        reason: Option<String>,
        chat: i64,
    },
    Relay {
        rep: &'a RepRecord,
        message: &'a ProspectMessage,
        lead_id: Option<String>,
    },
    /// `/next`: the lead's next step.
    Next {
        rep: &'a RepRecord,
        lead_id: String,
        at: i64,
        note: Option<String>,
        chat: i64,
    },
}

impl TelegramConsole {
    pub fn new(pipeline: Pipeline) -> Self {
        TelegramConsole { pipeline }
    }

    fn core(&self) -> &Core {
        &self.pipeline.core
    }

    /// Runs `work` in one transaction with the update's inbound record (again when it loses a
    /// race on PostgreSQL). `Err` only when storage is unavailable.
    async fn in_tx(&self, rec: &InboundRecord<'_>, work: Work<'_>) -> Result<(), StoreError> {
        let store = &self.core().store;
        for attempt in 0..ATTEMPTS {
            let now = ms(jiff::Timestamp::now());
            let mut tx = store.begin().await?;
            if !tx.record_inbound(rec, None, now).await? {
                return Ok(()); // seen before: its effects are already committed
            }
            match self.run(&mut tx, &work, now).await {
                Ok(done) => {
                    let replies = outgoing::replies(rec.external_id, &done.out);
                    let mut written = tx.write_bookkeeping(&replies, now).await;
                    if let (Ok(()), Some(lead)) = (&written, &done.lead_id) {
                        written = tx.link_inbound_item(rec.channel, rec.external_id, lead).await;
                    }
                    let committed = match written {
                        Ok(()) => tx.commit().await,
                        Err(e) => Err(e),
                    };
                    match committed {
                        Err(StoreError::Retry) => {}
                        other => {
                            other?;
                            self.core().wake_outbox();
                            if done.freed_capacity
                                && let Err(e) = assign_waiting(self.core()).await
                            {
                                tracing::warn!(error = %e, "assigning waiting leads failed");
                            }
                            return Ok(());
                        }
                    }
                }
                Err(Refusal::Said(out)) => {
                    drop(tx);
                    let refused = InboundRecord { reason: "refused", ..*rec };
                    let also = outgoing::replies(rec.external_id, &out);
                    store.record_skipped(&refused, &also, now).await?;
                    self.core().wake_outbox();
                    return Ok(());
                }
                Err(Refusal::Store(StoreError::Retry)) => {}
                Err(Refusal::Store(e @ (StoreError::Database(_) | StoreError::Migrate(_)))) => return Err(e),
                // Not a storage outage: keep the update as a failed item (`replay` retries it)
                // and move on, rather than asking Telegram for it forever.
                Err(Refusal::Store(e)) => {
                    drop(tx);
                    tracing::warn!(error = %e, "rep update recorded as failed");
                    store
                        .record_failed_inbound(rec.channel, rec.external_id, rec.meta, rec.payload, &e.to_string(), now)
                        .await?;
                    return Ok(());
                }
            }
            tokio::time::sleep(race_pause(attempt)).await;
        }
        Err(StoreError::Retry)
    }

    async fn run(&self, tx: &mut Tx, work: &Work<'_>, now: i64) -> Result<Done, Refusal> {
        match work {
            Work::Reply { lead_id, out } => {
                Ok(Done { lead_id: lead_id.clone(), out: out.clone(), freed_capacity: false })
            }
            Work::Refuse(out) => Err(Refusal::Said(out.clone())),
            Work::Link { code_hash, chat } => match tx.use_rep_link(code_hash, *chat, now).await? {
                Some((_, name)) => {
                    Ok(Done { out: vec![Outgoing::Text { chat: *chat, text: render::help(&name) }], ..Done::default() })
                }
                None => Err(Refusal::Said(vec![Outgoing::Text {
                    chat: *chat,
                    text: "This link is unknown, used or expired. Ask an admin for a new one.".into(),
                }])),
            },
            Work::Press { rep, action, callback, at } => self.press(tx, rep, action, callback, *at, now).await,
            Work::Status { rep, lead_id, status, reason, chat } => {
                let refuse = |text: String| Refusal::Said(vec![Outgoing::Text { chat: *chat, text }]);
                let lead = tx.lead_for_update(lead_id).await?;
                let update = LeadUpdate { status: Some(*status), lost_reason: reason.clone(), ..Default::default() };
                let freed = self.change(tx, rep, &lead, &update, now).await.map_err(refuse)?;
                let who = lead.contact_name.clone().unwrap_or_else(|| "The lead".into());
                let text = format!("{who}: {}.", status.as_str().replace('_', " "));
                Ok(Done {
                    freed_capacity: freed,
                    lead_id: Some(lead.id),
                    out: vec![Outgoing::Text { chat: *chat, text }],
                })
            }
            Work::Relay { rep, message, lead_id } => self.relay(tx, rep, message, lead_id.as_deref(), now).await,
            Work::Next { rep, lead_id, at, note, chat } => {
                let refuse = |text: String| Refusal::Said(vec![Outgoing::Text { chat: *chat, text }]);
                let lead = tx.lead_for_update(lead_id).await?;
                let update = LeadUpdate {
                    next_action_at: Some(Some(*at)),
                    next_action_note: Some(note.clone()),
                    ..Default::default()
                };
                self.change(tx, rep, &lead, &update, now).await.map_err(refuse)?;
                let who = lead.contact_name.clone().unwrap_or_else(|| "The lead".into());
                let text = format!("{who}: next step {}.", render::when(*at, note.as_deref()));
                Ok(Done { lead_id: Some(lead.id), out: vec![Outgoing::Text { chat: *chat, text }], ..Done::default() })
            }
        }
    }

    /// `/start link-<code>`: whoever opens a rep's one-time link becomes that rep in Telegram.
    pub async fn link(&self, rec: &InboundRecord<'_>, chat: i64, code: &str) -> Result<(), StoreError> {
        let code_hash = hex::encode(Sha256::digest(code.as_bytes()));
        self.in_tx(rec, Work::Link { code_hash, chat }).await
    }

    /// A button pressed on one of our messages.
    pub async fn button(
        &self,
        rec: &InboundRecord<'_>,
        callback: &str,
        from: &TgUser,
        at: Option<(i64, i32)>,
        data: &str,
    ) -> Result<(), StoreError> {
        let refuse = |text: &str| {
            Work::Refuse(vec![Outgoing::Answer { callback: callback.into(), text: text.into(), alert: true }])
        };
        let Some(action) = Action::decode(data) else {
            return self.in_tx(rec, refuse("This button no longer works.")).await;
        };
        let rep = self.core().store.rep_in_telegram(from.id).await?;
        let work = match &rep {
            Some(rep) if !rep.active => refuse(SWITCHED_OFF),
            Some(rep) => Work::Press { rep, action, callback, at },
            None => refuse("Only linked reps can use these buttons: ask an admin for your link."),
        };
        self.in_tx(rec, work).await
    }

    async fn press(
        &self,
        tx: &mut Tx,
        rep: &RepRecord,
        action: &Action,
        callback: &str,
        at: Option<(i64, i32)>,
        now: i64,
    ) -> Result<Done, Refusal> {
        let answer = |text: &str| Outgoing::Answer { callback: callback.into(), text: text.into(), alert: false };
        let refuse =
            |text: String| Refusal::Said(vec![Outgoing::Answer { callback: callback.into(), text, alert: true }]);
        let lead = match tx.lead_for_update(action.lead_id()).await {
            Err(StoreError::NotFound(_)) => return Err(refuse("This lead no longer exists.".into())),
            other => other?,
        };
        let mine = lead.owner.as_ref().is_some_and(|o| o.id == rep.id);
        let in_team = lead.team_id.as_ref().is_some_and(|t| rep.teams.contains(t));
        let own_chat = rep.telegram_chat_id.filter(|c| at.is_none_or(|(chat, _)| chat == *c));
        // Re-render the card the button was on, when it is the rep's own (a team post is
        // edited by its announcement delivery).
        let edit_card = |view: View| {
            at.filter(|(chat, _)| Some(*chat) == own_chat).map(|(chat, message)| Outgoing::EditCard {
                chat,
                message,
                lead: lead.id.clone(),
                view,
            })
        };
        let mut done = Done { lead_id: Some(lead.id.clone()), ..Done::default() };
        match action {
            Action::Take(_) => {
                if lead.closed_at.is_some() {
                    return Err(refuse(format!("This lead is closed ({}).", lead.status.words())));
                }
                match &lead.owner {
                    Some(_) if mine => {
                        let accepted = tx.accept_lead(&lead.id, now).await?;
                        done.out.push(answer(if accepted { "It's yours." } else { "It's already yours." }));
                        // Pressed under a team post: it now says who took the lead.
                        let team_post = at.filter(|(chat, _)| Some(*chat) != own_chat && accepted);
                        done.out.extend(team_post.map(|(chat, message)| Outgoing::EditCard {
                            chat,
                            message,
                            lead: lead.id.clone(),
                            view: View::Team,
                        }));
                    }
                    Some(other) => return Err(refuse(format!("{} has this lead now.", other.name))),
                    None => {
                        self.take_unowned(tx, rep, &lead, in_team, now).await?.map_err(refuse)?;
                        done.out.push(answer("It's yours."));
                    }
                }
                done.out.extend(edit_card(View::Rep));
            }
            Action::Open(_) => {
                if !(mine || lead.owner.is_none() && in_team) {
                    return Err(refuse(self.not_yours(&lead)));
                }
                let chat = rep.telegram_chat_id.or(at.map(|(c, _)| c)).unwrap_or_default();
                done.out.push(Outgoing::Card { chat, lead: lead.id.clone(), view: View::Detail });
                let text = if own_chat.is_some() { "" } else { "Sent to your private chat with the bot." };
                done.out.push(answer(text));
            }
            Action::Lost(_) | Action::Back(_) if !mine || lead.closed_at.is_some() => {
                return Err(refuse(self.not_yours(&lead)));
            }
            Action::Lost(_) => {
                let reasons = &self.core().settings.telegram_lost_reasons();
                if let Some((chat, message)) = at {
                    let buttons = render::lost_reasons(&lead.id, reasons);
                    done.out.push(Outgoing::EditButtons { chat, message, buttons });
                }
                done.out.push(answer("Why was it lost?"));
            }
            Action::Back(_) => {
                done.out.extend(edit_card(View::Rep));
                done.out.push(answer(""));
            }
            Action::LostReason(_, n) => {
                let Some(reason) = self.core().settings.telegram_lost_reasons().get(*n).cloned() else {
                    return Err(refuse("This button is out of date.".into()));
                };
                let update =
                    LeadUpdate { status: Some(Status::Lost), lost_reason: Some(reason.clone()), ..Default::default() };
                done.freed_capacity = self.change(tx, rep, &lead, &update, now).await.map_err(refuse)?;
                done.out.push(answer(&format!("Marked lost: {reason}.")));
                done.out.extend(edit_card(View::Rep));
            }
        }
        Ok(done)
    }

    /// Takes on a lead nobody owns (a claim in the team chat, or one waiting for room).
    /// `Ok(Err(why))` when the rep may not.
    async fn take_unowned(
        &self,
        tx: &mut Tx,
        rep: &RepRecord,
        lead: &LeadRow,
        in_team: bool,
        now: i64,
    ) -> Result<Result<(), String>, StoreError> {
        let settings = &self.core().settings;
        if !in_team {
            let team = lead.team_id.as_deref().unwrap_or("another team");
            return Ok(Err(format!("Only members of team {team} can take this lead.")));
        }
        let Some(me) = tx.rep_candidate(&rep.id).await? else { return Ok(Err("You are not a rep any more.".into())) };
        if !me.active {
            return Ok(Err("You are marked inactive: ask an admin to reactivate you.".into()));
        }
        if !me.has_capacity() {
            return Ok(Err(format!("You already have {} open leads, your capacity. Close one first.", me.open_leads)));
        }
        let team = lead.team_id.as_deref().and_then(|t| settings.team(t));
        let reason = if team.is_some_and(|t| t.strategy == Strategy::Claim) { "claim" } else { "taken" };
        let actor = Actor::Rep(rep.id.clone()).label();
        let mut event =
            assigned_event(&self.core().settings, &lead.id, (&rep.id, &rep.name), reason, Some(&actor), now);
        events::announce(&mut event, settings, lead.team_id.as_deref());
        let a = Assignment {
            lead_id: &lead.id,
            previous_owner: None,
            rep_id: &rep.id,
            route: None,
            reason,
            wrr_updates: &[],
            enforce_capacity: true,
        };
        tx.assign(&a, &[event], now).await?;
        tx.accept_lead(&lead.id, now).await?;
        Ok(Ok(()))
    }

    fn not_yours(&self, lead: &LeadRow) -> String {
        match (&lead.owner, lead.closed_at) {
            (_, Some(_)) => format!("This lead is closed ({}).", lead.status.words()),
            (Some(o), _) => format!("This lead is {}'s.", o.name),
            (None, _) => "This lead is not yours.".into(),
        }
    }

    /// A status change by the rep, through the same rules as the API.
    async fn change(
        &self,
        tx: &mut Tx,
        rep: &RepRecord,
        lead: &LeadRow,
        update: &LeadUpdate,
        now: i64,
    ) -> Result<bool, String> {
        match self.pipeline.change_lead(tx, &Actor::Rep(rep.id.clone()), lead, update, now).await {
            Ok(freed) => Ok(freed),
            Err(PipelineError::NotFound(_)) => Err(self.not_yours(lead)),
            Err(PipelineError::Store(e)) => Err(format!("storage: {e}")),
            Err(PipelineError::Rule(LeadRuleError::NextActionRequired(status))) => {
                let id = render::short_id(&lead.id);
                Err(format!(
                    "{} needs a next step first: /next {id} <when> [what], e.g. /next {id} 2d call back",
                    status.as_str().replace('_', " ")
                ))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// A linked rep wrote to the bot: a command, or a reply to one of our lead messages.
    pub async fn message(
        &self,
        rec: &InboundRecord<'_>,
        rep: &RepRecord,
        m: &ProspectMessage,
    ) -> Result<(), StoreError> {
        let chat = m.chat_id;
        let text = |text: String| vec![Outgoing::Text { chat, text }];
        let reply = |out: Vec<Outgoing>| Work::Reply { lead_id: None, out };
        let command = m.command.clone().map(|(name, rest)| match name.strip_prefix("lead_") {
            Some(id) => ("lead".to_owned(), id.to_owned()),
            None => (name, rest),
        });
        let work = match command.as_ref().map(|(n, r)| (n.as_str(), r.as_str())) {
            _ if !rep.active => Work::Refuse(text(SWITCHED_OFF.into())),
            _ if m.start_payload.is_some() => reply(text(render::help(&rep.name))),
            Some(("help", _)) => reply(text(render::help(&rep.name))),
            Some(("leads", _)) => {
                let filter =
                    LeadFilter { owner: Some(rep.id.clone()), open: Some(true), limit: 30, ..Default::default() };
                let leads = self.core().store.leads(&filter, ms(jiff::Timestamp::now())).await?;
                reply(text(render::lead_list(&leads)))
            }
            Some(("lead", typed)) => match self.find_lead(rep, typed).await? {
                Ok(id) => Work::Reply {
                    out: vec![Outgoing::Card { chat, lead: id.clone(), view: View::Detail }],
                    lead_id: Some(id),
                },
                Err(why) => Work::Refuse(text(why)),
            },
            Some(("status", args)) => {
                let mut words = args.split_whitespace();
                let (typed, status) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
                let reason = Some(words.collect::<Vec<_>>().join(" ")).filter(|r| !r.is_empty());
                match (self.find_lead(rep, typed).await?, status.parse::<Status>()) {
                    (Ok(lead_id), Ok(status)) => Work::Status { rep, lead_id, status, reason, chat },
                    (Err(why), _) => Work::Refuse(text(why)),
                    (_, Err(e)) => Work::Refuse(text(format!("{e}. Usage: /status <id> <status> [reason]"))),
                }
            }
            Some(("next", args)) => {
                let mut words = args.split_whitespace();
                let (typed, when) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
                let note = Some(words.collect::<Vec<_>>().join(" ")).filter(|n| !n.is_empty());
                match (self.find_lead(rep, typed).await?, render::parse_when(when, jiff::Timestamp::now())) {
                    (Ok(lead_id), Some(at)) => Work::Next { rep, lead_id, at: ms(at), note, chat },
                    (Err(why), _) => Work::Refuse(text(why)),
                    (_, None) => Work::Refuse(text(format!(
                        "`{when}` is not a time. Usage: /next <id> <when> [what], where <when> is 2h, 3d, \
                         2026-12-01 or 2026-12-01T10:00:00Z"
                    ))),
                }
            }
            Some((other, _)) => Work::Refuse(text(format!("Unknown command /{other}.\n\n{}", render::help(&rep.name)))),
            None => match m.reply_to_message_id {
                Some(replied) => {
                    let lead_id = self.core().store.lead_of_message(TelegramMessage::new(chat, replied)).await?;
                    Work::Relay { rep, message: m, lead_id }
                }
                None => {
                    reply(text("To answer a prospect, reply to their lead's message. /help shows the commands.".into()))
                }
            },
        };
        self.in_tx(rec, work).await
    }

    /// A rep's lead by the id (or its end) they typed.
    async fn find_lead(&self, rep: &RepRecord, typed: &str) -> Result<Result<String, String>, StoreError> {
        let Some(id) = render::typed_lead_id(typed) else {
            return Ok(Err("Which lead? Give its id as /leads shows it, e.g. /lead 1a2b3c4d.".into()));
        };
        let ids = self.core().store.owned_leads_ending_with(&rep.id, id).await?;
        Ok(match ids.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(format!("You have no lead {id}. /leads lists yours.")),
            _ => Err(format!("Several of your leads end with {id}: type more of the id.")),
        })
    }

    /// A rep's reply to a lead card or a relayed message: copied to the prospect, kept on the
    /// timeline as an outbound message, and the lead counts as answered.
    async fn relay(
        &self,
        tx: &mut Tx,
        rep: &RepRecord,
        m: &ProspectMessage,
        lead_id: Option<&str>,
        now: i64,
    ) -> Result<Done, Refusal> {
        let chat = m.chat_id;
        let refuse = |text: String| Refusal::Said(vec![Outgoing::Text { chat, text }]);
        let Some(lead_id) = lead_id else {
            return Err(refuse(
                "That message is not about a lead. Reply to a lead's message to answer the prospect.".into(),
            ));
        };
        let lead = tx.lead_for_update(lead_id).await?;
        if lead.owner.as_ref().is_none_or(|o| o.id != rep.id) {
            return Err(refuse(format!("{} Your message was not sent.", self.not_yours(&lead))));
        }
        let who = lead.contact_name.clone().unwrap_or_else(|| "The prospect".into());
        let Some(contact) = tx.telegram_contact(&lead.contact_id).await? else {
            let short = render::short_id(&lead.id);
            return Err(refuse(format!("{who} has no Telegram; answer them by email or phone (/lead_{short}).")));
        };
        if contact.blocked {
            return Err(refuse(format!("{who} blocked the bot: your message cannot reach them.")));
        }
        let settings = &self.core().settings;
        let actor = format!("rep:{}", rep.id);
        let data = json!({"lead": {"id": lead.id}, "message": {"channel": "telegram", "direction": "outbound", "text": m.text}});
        let event = events::lead_event(settings, LEAD_MESSAGE, &lead.id, Some(&actor), data, now);
        let attachments = serde_json::to_string(&m.attachments).unwrap_or_else(|_| "[]".into());
        let external = message_key(chat, m.message_id);
        let reply = NewInteraction {
            lead_id: &lead.id,
            channel: "telegram",
            direction: "outbound",
            kind: "message",
            author_id: Some(&rep.id),
            external_id: Some(&external),
            text: &m.text,
            attachments_json: &attachments,
            at: now,
        };
        tx.add_interaction(&reply, &[event]).await?;
        tx.mark_first_response(&lead.id, now).await?;
        tx.accept_lead(&lead.id, now).await?;
        Ok(Done {
            lead_id: Some(lead.id.clone()),
            out: vec![Outgoing::Relay { to: contact.user_id, from_chat: chat, message: m.message_id, lead: lead.id }],
            freed_capacity: false,
        })
    }
}
