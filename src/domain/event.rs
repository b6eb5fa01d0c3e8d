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
}
