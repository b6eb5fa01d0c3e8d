//! Lead events: what happened, as JSON, and which outbox deliveries each one fans out to.

use serde_json::{Value, json};

use crate::settings::Settings;
use crate::store::{NewEvent, new_id};

pub const LEAD_CREATED: &str = "lead.created";
pub const LEAD_ASSIGNED: &str = "lead.assigned";
pub const LEAD_STATUS_CHANGED: &str = "lead.status_changed";
pub const LEAD_MESSAGE: &str = "lead.message";

/// Builds an event on `lead_id` with a delivery to every webhook that subscribed to its type.
/// (Telegram and email notifiers add their deliveries here too.)
pub fn lead_event(
    settings: &Settings,
    event_type: &'static str,
    lead_id: &str,
    actor: Option<&str>,
    data: Value,
    at: i64,
) -> NewEvent {
    let id = new_id();
    let deliveries =
        settings.notify.webhooks.iter().filter(|w| w.wants(event_type)).map(|w| ("webhook", w.url.clone())).collect();
    let at_rfc = crate::store::from_ms(at).to_string();
    let body = json!({ "id": id, "type": event_type, "at": at_rfc, "data": data });
    NewEvent {
        id,
        lead_id: Some(lead_id.to_owned()),
        event_type,
        actor: actor.map(str::to_owned),
        data: body,
        at,
        deliveries,
        email_domain: settings.notify_from().and_then(|from| from.rsplit_once('@').map(|(_, d)| d.to_owned())),
    }
}

/// Adds an email to `rep_id` about the event, when email notifications are configured. The
/// notifier decides at sending time whether the rep hears by email (see `notify::email`).
pub fn notify_rep(event: &mut NewEvent, settings: &Settings, rep_id: &str) {
    if settings.notify.email.is_some() {
        event.deliveries.push(("email", format!("{REP_TARGET}{rep_id}")));
    }
}

/// Adds the acknowledgement to a prospect who wrote to `mailbox`, if that mailbox sends one.
pub fn acknowledge(event: &mut NewEvent, settings: &Settings, mailbox: &str, address: &str) {
    if settings.notify.email.is_some() && settings.imap.iter().any(|m| m.id == mailbox && m.acknowledge) {
        event.deliveries.push(("email", format!("{ACK_TARGET}{mailbox}:{address}")));
    }
}

/// Email outbox targets: `rep:<rep id>` and `ack:<mailbox id>:<address>`.
pub const REP_TARGET: &str = "rep:";
pub const ACK_TARGET: &str = "ack:";
