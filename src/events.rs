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
    }
}
