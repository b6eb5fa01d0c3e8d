//! What can happen that the outside world hears of: every event has one of these types, which
//! webhooks subscribe to by name (`lead.created`, …).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    #[serde(rename = "lead.created")]
    LeadCreated,
    #[serde(rename = "lead.assigned")]
    LeadAssigned,
    #[serde(rename = "lead.status_changed")]
    LeadStatusChanged,
    #[serde(rename = "lead.message")]
    LeadMessage,
    /// The owner's next action fell due.
    #[serde(rename = "lead.next_action_due")]
    LeadNextActionDue,
    /// No activity on an open lead for `pipeline.stale_after`.
    #[serde(rename = "lead.stale")]
    LeadStale,
    /// The sla moved a lead `max_reassignments` times and nobody took it on.
    #[serde(rename = "lead.escalated")]
    LeadEscalated,
    /// The sla moved a lead away from this rep (the event for the rep it left).
    #[serde(rename = "lead.reassigned_away")]
    LeadReassignedAway,
    /// An inquiry linked contacts that both have owners: their merge waits for review.
    #[serde(rename = "contact.merge_held")]
    ContactMergeHeld,
    /// A manager's daily numbers.
    #[serde(rename = "digest.daily")]
    DigestDaily,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::LeadCreated,
        EventType::LeadAssigned,
        EventType::LeadStatusChanged,
        EventType::LeadMessage,
        EventType::LeadNextActionDue,
        EventType::LeadStale,
        EventType::LeadEscalated,
        EventType::LeadReassignedAway,
        EventType::ContactMergeHeld,
        EventType::DigestDaily,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::LeadCreated => "lead.created",
            EventType::LeadAssigned => "lead.assigned",
            EventType::LeadStatusChanged => "lead.status_changed",
            EventType::LeadMessage => "lead.message",
            EventType::LeadNextActionDue => "lead.next_action_due",
            EventType::LeadStale => "lead.stale",
            EventType::LeadEscalated => "lead.escalated",
            EventType::LeadReassignedAway => "lead.reassigned_away",
            EventType::ContactMergeHeld => "contact.merge_held",
            EventType::DigestDaily => "digest.daily",
        }
    }

    /// The type stored under `name`, if it is one.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the notifiers read of an event as stored (`{"id", "type", "at", "data": {…}}`),
/// parsed once by name instead of by path. Everything is optional: an event carries only
/// what its type needs.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct EventBody {
    pub data: EventData,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct EventData {
    pub lead: Option<LeadRef>,
    pub message: Option<MessageRef>,
    /// A reminder's, escalation's or digest's ready-made words.
    pub alert: Option<super::followup::Alert>,
    /// Why the lead was assigned (`sla`, `claimed`, …).
    pub reason: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct LeadRef {
    pub id: String,
    pub contact: Option<ContactRef>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ContactRef {
    pub name: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct MessageRef {
    pub subject: Option<String>,
    /// The channel's id of the message (an email's Message-ID).
    pub external_id: Option<String>,
}

impl EventBody {
    /// An unreadable body reads as empty: the notifier then finds nothing to say and says so.
    pub fn parse(json: &str) -> EventBody {
        serde_json::from_str(json).unwrap_or_default()
    }

    pub fn lead_id(&self) -> Option<&str> {
        self.data.lead.as_ref().map(|l| l.id.as_str()).filter(|id| !id.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).ok(), Some(serde_json::Value::String(t.as_str().into())));
        }
        assert_eq!(EventType::parse("lead.nothing"), None);
    }

    #[test]
    fn bodies_read_what_notifiers_need_and_tolerate_the_rest() {
        let body = EventBody::parse(
            r#"{"id":"e1","type":"lead.created","at":"2026-01-01T00:00:00Z","data":{"lead":{"id":"l1",
               "contact":{"name":"Ana"},"status":"new"},"message":{"subject":"Hi","external_id":"a@b"},
               "reason":"round_robin","extra":[1,2]}}"#,
        );
        assert_eq!(body.lead_id(), Some("l1"));
        assert_eq!(body.data.lead.and_then(|l| l.contact?.name).as_deref(), Some("Ana"));
        assert_eq!(body.data.message.and_then(|m| m.external_id).as_deref(), Some("a@b"));
        assert_eq!(body.data.reason.as_deref(), Some("round_robin"));
        let alert = EventBody::parse(r#"{"data":{"alert":{"subject":"S","text":"T"}}}"#);
        assert_eq!(alert.data.alert.map(|a| (a.subject, a.text)), Some(("S".into(), "T".into())));
        assert_eq!(EventBody::parse("not json").lead_id(), None);
        assert_eq!(EventBody::parse(r#"{"data":{"lead":{"id":""}}}"#).lead_id(), None);
    }
}
