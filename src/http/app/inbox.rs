//! `/app`: the lead inbox, with filters, search and cursor pagination.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::{AppError, AppResult, Nav, Session, filled, layout, query, render, status_label, time_el};
use crate::base::ms;
use crate::domain::{Channel, Status};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::into_page;
use crate::store::{IdentityRow, LeadFilter, LeadRow};

const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize, Serialize)]
pub(super) struct InboxQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    overdue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unassigned: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

/// A checkbox: ticked is `on` (or `true`/`1` in a hand-written URL).
fn ticked(v: &Option<String>) -> bool {
    filled(v).is_some_and(|v| !matches!(v, "false" | "0" | "off"))
}

pub(super) async fn page(
    session: Session,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> AppResult<Response> {
    let q: InboxQuery = query(raw.as_deref())?;
    let status = filled(&q.status)
        .map(str::parse::<Status>)
        .transpose()
        .map_err(|e| AppError(ApiError::BadRequest("bad_query", e.to_string())))?;
    let channel = filled(&q.channel)
        .map(str::parse::<Channel>)
        .transpose()
        .map_err(|e| AppError(ApiError::BadRequest("bad_query", e)))?;
    let owner = match session.rep_scope() {
        Some(rep) => Some(rep.to_owned()),
        None => filled(&q.owner).map(str::to_owned),
    };
    let filter = LeadFilter {
        status,
        owner,
        channel,
        q: filled(&q.q).map(str::to_owned),
        overdue: ticked(&q.overdue).then_some(true),
        unassigned: ticked(&q.unassigned).then_some(true),
        limit: PAGE + 1,
        cursor: filled(&q.cursor).map(str::to_owned),
        ..Default::default()
    };
    let now = ms(jiff::Timestamp::now());
    let rows = state.store().leads(&filter, now).await?;
    let (rows, next_cursor) = into_page(rows, PAGE, |l| l.id.clone());
    let contact_ids: Vec<String> = rows.iter().map(|l| l.contact_id.clone()).collect();
    let identities = state.store().identities_by_contact(&contact_ids).await?;
    let reps = if session.is_admin() { state.store().reps().await? } else { Vec::new() };

    let next = next_cursor.map(|cursor| {
        let next = InboxQuery { cursor: Some(cursor), ..clean(&q) };
        format!("/app?{}", serde_urlencoded::to_string(&next).unwrap_or_default())
    });
    let content = html! {
        h1 { "Inbox" }
        form .filters method="get" action="/app" role="search" data-autosubmit {
            div .field .grow {
                label for="f-q" { "Search" }
                input #f-q type="search" name="q" value=[filled(&q.q)] placeholder="Name, email, phone, Telegram id";
            }
            div .field {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "Any" }
                    @for s in Status::ALL {
                        option value=(s.as_str()) selected[filled(&q.status) == Some(s.as_str())] { (status_label(s)) }
                    }
                }
            }
            @if session.is_admin() {
                div .field {
                    label for="f-owner" { "Owner" }
                    select #f-owner name="owner" {
                        option value="" { "Anyone" }
                        @for r in &reps {
                            option value=(r.id) selected[filled(&q.owner) == Some(r.id.as_str())] { (r.name) }
                        }
                    }
                }
            }
            div .field {
                label for="f-channel" { "Channel" }
                select #f-channel name="channel" {
                    option value="" { "Any" }
                    @for c in Channel::ALL.map(Channel::as_str) {
                        option value=(c) selected[filled(&q.channel) == Some(c)] { (c) }
                    }
                }
            }
            div .checks {
                label { input type="checkbox" name="overdue" checked[ticked(&q.overdue)]; " Overdue" }
                @if session.is_admin() {
                    label { input type="checkbox" name="unassigned" checked[ticked(&q.unassigned)]; " Unassigned" }
                }
            }
            div .actions {
                button type="submit" { "Filter" }
                a .button .secondary href="/app" { "Clear" }
            }
        }
        @if rows.is_empty() {
            p .empty role="status" { "No leads match." }
        } @else {
            table .leads {
                caption .visually-hidden { "Leads, newest first" }
                thead { tr {
                    th scope="col" { "Lead" } th scope="col" { "Status" } th scope="col" { "Owner" }
                    th scope="col" { "Channel / source" } th scope="col" { "Next action" } th scope="col" { "Last activity" }
                } }
                tbody {
                    @for l in &rows {
                        (row(l, identities.get(&l.contact_id).map(Vec::as_slice).unwrap_or_default(), now))
                    }
                }
            }
        }
        @if let Some(next) = next {
            nav .pager aria-label="Pages" { a .button href=(next) rel="next" { "Older leads" } }
        }
    };
    Ok(render(StatusCode::OK, layout("Inbox", &session, Nav::Inbox, content)))
}

/// The filters without the cursor (for the next page's link).
fn clean(q: &InboxQuery) -> InboxQuery {
    let keep = |v: &Option<String>| filled(v).map(str::to_owned);
    InboxQuery {
        status: keep(&q.status),
        owner: keep(&q.owner),
        channel: keep(&q.channel),
        q: keep(&q.q),
        overdue: keep(&q.overdue),
        unassigned: keep(&q.unassigned),
        cursor: None,
    }
}

/// Who a lead is: the contact's name, else their first identity.
pub(super) fn who(l: &LeadRow, identities: &[IdentityRow]) -> String {
    l.contact_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| identities.first().map(|i| i.value.clone()))
        .unwrap_or_else(|| "(no name)".into())
}

pub(super) fn source(l: &LeadRow) -> Option<String> {
    l.utm_source.clone().or(l.source_form.clone()).or(l.source_mailbox.clone()).or(l.source_bot.clone())
}

fn row(l: &LeadRow, identities: &[IdentityRow], now: i64) -> Markup {
    html! {
        tr {
            td data-label="Lead" { a href={"/app/leads/" (l.id)} { (who(l, identities)) } }
            td data-label="Status" { span class={"badge status-" (l.status)} { (status_label(l.status)) } }
            td data-label="Owner" {
                @match &l.owner { Some(o) => (o.name), None => span .muted { "unassigned" } }
            }
            td data-label="Channel / source" {
                (l.channel) @if let Some(s) = source(l) { " · " span .muted { (s) } }
            }
            td data-label="Next action" {
                @if let Some(at) = l.next_action_at {
                    (time_el(at))
                    @if l.overdue(now) { " " span .badge .overdue { "overdue" } }
                } @else { span .muted { "—" } }
            }
            td data-label="Last activity" { (time_el(l.last_activity_at)) }
        }
    }
}
