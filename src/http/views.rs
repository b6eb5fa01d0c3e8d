//! JSON shapes of the API (DESIGN.md's contract) and their conversion from stored rows.

use serde::Serialize;
use utoipa::ToSchema;

use crate::base::from_ms;
use crate::store::{
    AssignmentRow, ContactSummary, IdentityRow, InteractionRow, LeadRow, RepRecord, StatusChangeRow, TaskRow,
};

/// RFC 3339 UTC.
pub fn ts(ms: i64) -> String {
    from_ms(ms).to_string()
}

pub fn ts_opt(ms: Option<i64>) -> Option<String> {
    ms.map(ts)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityView {
    /// `email`, `phone` (E.164) or `telegram` (user id).
    pub kind: String,
    pub value: String,
    /// Set when a bounce reported the address: when that happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undeliverable_since: Option<String>,
}

impl From<IdentityRow> for IdentityView {
    fn from(i: IdentityRow) -> Self {
        IdentityView { kind: i.kind, value: i.value, undeliverable_since: i.undeliverable_at.map(ts) }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    pub form: Option<String>,
    pub mailbox: Option<String>,
    pub bot: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub referrer: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnerView {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactRefView {
    pub id: String,
    pub name: Option<String>,
    pub identities: Vec<IdentityView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InteractionView {
    pub id: String,
    pub channel: String,
    /// `inbound`, `outbound`, or `internal` for notes.
    pub direction: String,
    /// `message`, `note` or `call`.
    pub kind: String,
    pub author: Option<String>,
    pub subject: Option<String>,
    pub text: String,
    #[schema(value_type = Vec<Object>)]
    pub attachments: serde_json::Value,
    pub at: String,
}

impl From<InteractionRow> for InteractionView {
    fn from(i: InteractionRow) -> Self {
        InteractionView {
            id: i.id,
            channel: i.channel,
            direction: i.direction,
            kind: i.kind,
            author: i.author_id,
            subject: i.subject,
            text: i.text,
            attachments: serde_json::from_str(&i.attachments).unwrap_or_else(|_| serde_json::json!([])),
            at: ts(i.at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssignmentView {
    pub rep_id: String,
    pub team: Option<String>,
    /// `round_robin`, `weighted_round_robin`, `least_loaded`, `sticky_owner`, `manual`.
    pub reason: String,
    pub at: String,
}

impl From<AssignmentRow> for AssignmentView {
    fn from(a: AssignmentRow) -> Self {
        AssignmentView { rep_id: a.rep_id, team: a.team_id, reason: a.reason, at: ts(a.at) }
    }
}

/// A lead. List responses leave out `interactions` and `assignments` (null).
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadView {
    pub id: String,
    pub status: String,
    pub lost_reason: Option<String>,
    pub lost_note: Option<String>,
    pub channel: String,
    pub source: SourceView,
    pub team: Option<String>,
    pub owner: Option<OwnerView>,
    pub assigned_at: Option<String>,
    pub accepted_at: Option<String>,
    pub first_response_at: Option<String>,
    pub next_action_at: Option<String>,
    pub next_action_note: Option<String>,
    /// Open, and its next action is past due.
    pub overdue: bool,
    pub last_activity_at: String,
    pub closed_at: Option<String>,
    /// The lead this one was folded into by a merge of two records of one person: closed as
    /// part of that lead (its messages moved there), not lost. An admin can undo the merge.
    pub merged_into: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub language: Option<String>,
    #[schema(value_type = Object)]
    pub custom_fields: serde_json::Value,
    pub contact: ContactRefView,
    pub interactions: Option<Vec<InteractionView>>,
    pub assignments: Option<Vec<AssignmentView>>,
    /// Every status change, oldest first (detail only).
    pub status_changes: Option<Vec<StatusChangeView>>,
    pub tasks: Option<Vec<TaskView>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusChangeView {
    pub from: String,
    pub to: String,
    /// `admin`, `rep:<id>` or `scheduler`.
    pub actor: Option<String>,
    pub at: String,
}

impl From<StatusChangeRow> for StatusChangeView {
    fn from(c: StatusChangeRow) -> Self {
        StatusChangeView {
            from: c.from_status.as_str().to_owned(),
            to: c.to_status.as_str().to_owned(),
            actor: c.actor,
            at: ts(c.at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    pub id: String,
    pub lead_id: String,
    pub title: String,
    pub due_at: Option<String>,
    pub done_at: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
}

impl From<TaskRow> for TaskView {
    fn from(t: TaskRow) -> Self {
        TaskView {
            id: t.id,
            lead_id: t.lead_id,
            title: t.title,
            due_at: ts_opt(t.due_at),
            done_at: ts_opt(t.done_at),
            created_by: t.created_by,
            created_at: ts(t.created_at),
        }
    }
}

impl LeadView {
    pub fn new(l: LeadRow, identities: Vec<IdentityRow>) -> Self {
        let overdue = l.overdue(crate::base::ms(jiff::Timestamp::now()));
        LeadView {
            source: SourceView {
                form: l.source_form,
                mailbox: l.source_mailbox,
                bot: l.source_bot,
                utm_source: l.utm_source,
                utm_medium: l.utm_medium,
                utm_campaign: l.utm_campaign,
                utm_term: l.utm_term,
                utm_content: l.utm_content,
                referrer: l.referrer,
            },
            owner: l.owner.map(|o| OwnerView { id: o.id, name: o.name }),
            contact: ContactRefView {
                id: l.contact_id,
                name: l.contact_name,
                identities: identities.into_iter().map(IdentityView::from).collect(),
            },
            custom_fields: serde_json::from_str(&l.custom_fields).unwrap_or_else(|_| serde_json::json!({})),
            overdue,
            id: l.id,
            status: l.status.as_str().to_owned(),
            lost_reason: l.lost_reason,
            lost_note: l.lost_note,
            channel: l.channel.as_str().to_owned(),
            team: l.team_id,
            assigned_at: ts_opt(l.assigned_at),
            accepted_at: ts_opt(l.accepted_at),
            first_response_at: ts_opt(l.first_response_at),
            next_action_at: ts_opt(l.next_action_at),
            next_action_note: l.next_action_note,
            last_activity_at: ts(l.last_activity_at),
            closed_at: ts_opt(l.closed_at),
            merged_into: l.merged_into,
            created_at: ts(l.created_at),
            updated_at: ts(l.updated_at),
            language: l.language,
            interactions: None,
            assignments: None,
            status_changes: None,
            tasks: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeadList {
    pub items: Vec<LeadView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    pub id: String,
    pub name: Option<String>,
    pub identities: Vec<IdentityView>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ContactSummary> for ContactView {
    fn from(c: ContactSummary) -> Self {
        ContactView {
            id: c.id,
            name: c.name,
            identities: c.identities.into_iter().map(IdentityView::from).collect(),
            created_at: ts(c.created_at),
            updated_at: ts(c.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RepView {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub telegram_chat_id: Option<i64>,
    pub capacity: Option<i64>,
    pub weight: i64,
    pub teams: Vec<String>,
    pub languages: Vec<String>,
    pub timezone: Option<String>,
    pub working_hours: Option<String>,
    pub active: bool,
    pub out_of_office_until: Option<String>,
    pub open_leads: i64,
    /// `auto`, `email` or `telegram`.
    pub notify: String,
}

impl From<RepRecord> for RepView {
    fn from(r: RepRecord) -> Self {
        RepView {
            id: r.id,
            name: r.name,
            email: r.email,
            telegram_chat_id: r.telegram_chat_id,
            capacity: r.capacity,
            weight: r.weight,
            teams: r.teams,
            languages: r.languages,
            timezone: r.timezone,
            working_hours: r.working_hours,
            active: r.active,
            out_of_office_until: ts_opt(r.out_of_office_until),
            open_leads: r.open_leads,
            notify: r.notify.as_str().to_owned(),
        }
    }
}

/// `{"error":{"code","message"}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}
