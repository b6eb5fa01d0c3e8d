//! Records as the store hands them out: plain data that the layers above read (the API's
//! views, the dashboard, the cards, the notifiers) without knowing where it was kept.

use super::{Channel, Delivery, EventType, NotifyVia, Status};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRow {
    pub kind: String,
    pub value: String,
    /// When a bounce reported this address as undeliverable.
    pub undeliverable_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct OwnerRef {
    pub id: String,
    pub name: String,
}

/// A lead as stored, with its owner's and contact's names joined in.
#[derive(Debug, Clone)]
pub struct LeadRow {
    pub id: String,
    pub contact_id: String,
    pub contact_name: Option<String>,
    pub channel: Channel,
    pub source_form: Option<String>,
    pub source_mailbox: Option<String>,
    pub source_bot: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub referrer: Option<String>,
    pub language: Option<String>,
    pub country: Option<String>,
    pub status: Status,
    pub lost_reason: Option<String>,
    pub lost_note: Option<String>,
    pub team_id: Option<String>,
    pub owner: Option<OwnerRef>,
    pub assigned_at: Option<i64>,
    pub accepted_at: Option<i64>,
    pub first_response_at: Option<i64>,
    pub next_action_at: Option<i64>,
    pub next_action_note: Option<String>,
    pub last_activity_at: i64,
    pub custom_fields: String,
    pub closed_at: Option<i64>,
    /// Folded into this lead by a merge (the lead is closed; an admin can undo the merge).
    pub merged_into: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl LeadRow {
    /// Open, and its next action is past due at `now`.
    pub fn overdue(&self, now: i64) -> bool {
        self.closed_at.is_none() && self.next_action_at.is_some_and(|at| at < now)
    }
}

#[derive(Debug, Clone)]
pub struct InteractionRow {
    pub id: String,
    pub channel: String,
    pub direction: String,
    pub kind: String,
    pub author_id: Option<String>,
    pub external_id: Option<String>,
    pub subject: Option<String>,
    pub text: String,
    pub attachments: String,
    pub at: i64,
}

#[derive(Debug, Clone)]
pub struct AssignmentRow {
    pub rep_id: String,
    pub team_id: Option<String>,
    pub reason: String,
    pub at: i64,
}

#[derive(Debug, Clone)]
pub struct RepRecord {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub telegram_chat_id: Option<i64>,
    pub capacity: Option<i64>,
    pub weight: i64,
    pub languages: Vec<String>,
    pub timezone: Option<String>,
    pub working_hours: Option<String>,
    pub active: bool,
    pub out_of_office_until: Option<i64>,
    pub open_leads: i64,
    pub teams: Vec<String>,
    pub notify: NotifyVia,
}

/// A claimed message, ready to send.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: String,
    pub delivery: Delivery,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    /// Attempts before this one.
    pub attempts: i64,
}

impl OutboxMessage {
    /// The event the message tells of (a rep's card, a webhook), if it tells of one (the
    /// bot's answers to a rep are not events).
    pub fn event(&self) -> Option<EventType> {
        EventType::parse(&self.event_type)
    }

    /// What the event says, as far as the notifiers read it.
    pub fn body(&self) -> super::event::EventBody {
        super::event::EventBody::parse(&self.payload)
    }
}
