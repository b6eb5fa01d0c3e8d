//! Lead events: what happened, as JSON, and which outbox deliveries each one fans out to.

use serde_json::{Value, json};

use crate::base::new_id;
use crate::settings::Settings;
use crate::store::NewEvent;

pub use crate::domain::EventType;
use crate::domain::{Delivery, NotifyVia};

pub const LEAD_CREATED: EventType = EventType::LeadCreated;
pub const LEAD_ASSIGNED: EventType = EventType::LeadAssigned;
pub const LEAD_STATUS_CHANGED: EventType = EventType::LeadStatusChanged;
pub const LEAD_MESSAGE: EventType = EventType::LeadMessage;
pub const LEAD_NEXT_ACTION_DUE: EventType = EventType::LeadNextActionDue;
pub const LEAD_STALE: EventType = EventType::LeadStale;
pub const LEAD_ESCALATED: EventType = EventType::LeadEscalated;
pub const LEAD_REASSIGNED_AWAY: EventType = EventType::LeadReassignedAway;
pub const CONTACT_MERGE_HELD: EventType = EventType::ContactMergeHeld;
pub const DIGEST_DAILY: EventType = EventType::DigestDaily;

/// Builds an event on `lead_id` with a delivery to every webhook that subscribed to its type.
/// (Telegram and email notifiers add their deliveries here too.)
pub fn lead_event(
    settings: &Settings,
    event_type: EventType,
    lead_id: &str,
    actor: Option<&str>,
    data: Value,
    at: i64,
) -> NewEvent {
    let mut event = event(settings, event_type, actor, data, at);
    event.lead_id = Some(lead_id.to_owned());
    event
}

/// An event about no lead in particular (a digest).
pub fn event(settings: &Settings, event_type: EventType, actor: Option<&str>, data: Value, at: i64) -> NewEvent {
    let id = new_id();
    let deliveries = settings
        .notify
        .webhooks
        .iter()
        .filter(|w| w.wants(event_type))
        .map(|w| Delivery::Webhook { url: w.url.clone() })
        .collect();
    let at_rfc = crate::base::from_ms(at).to_string();
    let body = json!({ "id": id, "type": event_type.as_str(), "at": at_rfc, "data": data });
    NewEvent {
        id,
        lead_id: None,
        event_type,
        actor: actor.map(str::to_owned),
        data: body,
        at,
        deliveries,
        email_domain: settings.notify_from().and_then(|from| from.rsplit_once('@').map(|(_, d)| d.to_owned())),
    }
}

/// Sends `rep_id` the event's `data.alert` (`subject`, `text`) as it is: by email or in
/// Telegram, whichever the rep hears by. Reminders, escalations, stale leads and digests
/// are alerts; they go to whoever they concern, owner or not.
pub fn alert_rep(event: &mut NewEvent, settings: &Settings, rep_id: &str) {
    for via in ways_to_hear(settings) {
        event.deliveries.push(Delivery::Alert { via, rep: rep_id.to_owned() });
    }
}

/// Tells `rep_id` about the event by email and in Telegram, as far as those are configured.
/// The notifiers decide at sending time which one the rep hears by (`reps.notify`); the other
/// delivery is recorded as skipped.
pub fn notify_rep(event: &mut NewEvent, settings: &Settings, rep_id: &str) {
    for via in ways_to_hear(settings) {
        event.deliveries.push(Delivery::Rep { via, rep: rep_id.to_owned() });
    }
}

/// Email and Telegram, as far as they are configured.
fn ways_to_hear(settings: &Settings) -> impl Iterator<Item = NotifyVia> {
    let email = settings.notify.email.is_some().then_some(NotifyVia::Email);
    let telegram = settings.telegram.enabled.then_some(NotifyVia::Telegram);
    email.into_iter().chain(telegram)
}

/// Announces the event in the team's Telegram group (`notify_chat_id`): a new lead is posted,
/// a later change edits that post.
pub fn announce(event: &mut NewEvent, settings: &Settings, team_id: Option<&str>) {
    let team = team_id.and_then(|id| settings.team(id)).filter(|t| t.notify_chat_id.is_some());
    if let Some(team) = team.filter(|_| settings.telegram.enabled) {
        event.deliveries.push(Delivery::TeamPost { team: team.id.clone() });
    }
}

/// Adds the acknowledgement to a prospect who wrote to `mailbox`, if that mailbox sends one.
pub fn acknowledge(event: &mut NewEvent, settings: &Settings, mailbox: &str, address: &str) {
    if settings.notify.email.is_some() && settings.imap.iter().any(|m| m.id == mailbox && m.acknowledge) {
        event.deliveries.push(Delivery::Acknowledgement { mailbox: mailbox.to_owned(), address: address.to_owned() });
    }
}
