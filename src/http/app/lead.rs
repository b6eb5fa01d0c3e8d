//! `/app/leads/{id}`: the lead card (contact, whole timeline, status, next action, owner,
//! notes, tasks) and the forms that change it. Every change goes through the `Pipeline`, as the
//! API's do; a rule the change breaks is shown on the re-rendered card (422), nothing changed.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::inbox::{source, who};
use super::session::{Post, csrf_field};
use super::{
    AppError, AppResult, Nav, Session, datetime_local, filled, layout, parse_local, query, render, status_label,
    time_el,
};
use crate::base::ms;
use crate::domain::Status;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::pipeline::{LeadUpdate, NoteKind};
use crate::store::{LeadRow, RepRecord, TaskPatch};

#[derive(Debug, Default, Deserialize)]
struct CardQuery {
    saved: Option<String>,
}

pub(super) async fn page(
    session: Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> AppResult<Response> {
    let q: CardQuery = query(raw.as_deref())?;
    let notice = match filled(&q.saved) {
        Some("status") => Some("Status changed."),
        Some("next-action") => Some("Next action saved."),
        Some("note") => Some("Note added."),
        Some("owner") => Some("Lead reassigned."),
        Some("task") => Some("Task saved."),
        Some("merged") => Some("Merged: the two contacts are one person now."),
        Some("waiting") => Some("Your confirmation is recorded; the other owner still has to confirm."),
        Some("apart") => Some("Kept apart: the contacts stay separate."),
        _ => None,
    };
    card(&state, &session, &id, StatusCode::OK, Flash { notice, error: None }).await
}

struct Flash<'a> {
    notice: Option<&'a str>,
    error: Option<String>,
}

/// The lead as this session may see it: another rep's lead does not exist (404).
async fn visible_lead(state: &AppState, session: &Session, id: &str) -> AppResult<LeadRow> {
    match state.store().lead(id).await? {
        Some(lead) if session.actor.may_see(&lead) => Ok(lead),
        _ => Err(AppError(ApiError::NotFound("lead"))),
    }
}

async fn card(
    state: &AppState,
    session: &Session,
    id: &str,
    status: StatusCode,
    flash: Flash<'_>,
) -> AppResult<Response> {
    let lead = visible_lead(state, session, id).await?;
    let (identities, interactions, assignments) = state.store().lead_timeline(&lead).await?;
    let changes = state.store().status_changes(&lead.id).await?;
    let tasks = state.store().tasks(&lead.id).await?;
    let reviews = state.store().pending_reviews_of(&lead.contact_id).await?;
    // An admin sees who the other record is; a rep only that there is one (it is someone else's).
    let mut others = Vec::new();
    for r in &reviews {
        let other = if r.into_id == lead.contact_id { &r.from_id } else { &r.into_id };
        let detail = if session.is_admin() { state.store().contact(other).await? } else { None };
        others.push(detail.map(|c| (c.contact.name, c.leads.first().map(|(id, ..)| id.clone()))));
    }
    let reps = if session.is_admin() { state.store().reps().await? } else { Vec::new() };
    let now = ms(jiff::Timestamp::now());
    let name = who(&lead, &identities);
    let reasons = &state.settings().pipeline.lost_reasons;
    let path = format!("/app/leads/{}", lead.id);

    // One timeline, oldest first: messages, notes, status changes and hand-overs.
    let mut timeline: Vec<(i64, Markup)> = Vec::new();
    for i in &interactions {
        let label = match (i.kind.as_str(), i.direction.as_str()) {
            ("note", _) => "Note".to_owned(),
            ("call", _) => "Call".to_owned(),
            (_, "inbound") => format!("Message in ({})", i.channel),
            (_, "outbound") => format!("Message out ({})", i.channel),
            (kind, dir) => format!("{kind} {dir}"),
        };
        timeline.push((
            i.at,
            html! {
                li class={"event " (i.direction)} {
                    p .meta { strong { (label) } @if let Some(a) = &i.author_id { " · " (a) } " · " (time_el(i.at)) }
                    @if let Some(s) = &i.subject { p .subject { (s) } }
                    p .text { (i.text) }
                }
            },
        ));
    }
    for c in &changes {
        timeline.push((
            c.at,
            html! {
                li .event .change {
                    p .meta {
                        strong { "Status: " (status_label(c.from_status)) " → " (status_label(c.to_status)) }
                        @if let Some(a) = &c.actor { " · " (a) } " · " (time_el(c.at))
                    }
                }
            },
        ));
    }
    for a in &assignments {
        timeline.push((
            a.at,
            html! {
                li .event .change {
                    p .meta { strong { "Assigned to " (a.rep_id) } " · " (a.reason.replace('_', " ")) " · " (time_el(a.at)) }
                }
            },
        ));
    }
    timeline.sort_by_key(|(at, _)| *at);

    let content = html! {
        p .crumbs { a href="/app" { "← Inbox" } }
        h1 {
            (name) " "
            @if lead.merged_into.is_some() { span .badge { "Merged" } }
            @else { span class={"badge status-" (lead.status)} { (status_label(lead.status)) } }
        }
        @if let Some(error) = &flash.error {
            p .alert role="alert" #card-error tabindex="-1" { (error) }
        }
        @if let Some(notice) = flash.notice {
            p .notice role="status" { (notice) }
        }
        @for (r, other) in reviews.iter().zip(&others) {
            section .panel .review aria-labelledby={"h-review-" (r.id)} {
                h2 id={"h-review-" (r.id)} { "Possible duplicate" }
                p {
                    "Someone wrote with details of this contact and of another contact that has an owner"
                    @if let Some((name, lead_id)) = other {
                        " ("
                        @match lead_id {
                            Some(l) => a href={"/app/leads/" (l)} { (name.as_deref().unwrap_or("no name")) },
                            None => (name.as_deref().unwrap_or("no name")),
                        }
                        ")"
                    }
                    ". They were not merged, because anyone can type anyone's address into a form. "
                    "Merge them if they are the same person; their leads become one."
                }
                @if !r.confirmed_by.is_empty() { p .muted { "Confirmed so far by: " (r.confirmed_by.join(", ")) } }
                div .actions {
                    form .inline method="post" action={(path) "/merge-reviews/" (r.id) "/confirm"} {
                        (csrf_field(session))
                        button type="submit" { "Merge them" }
                    }
                    form .inline method="post" action={(path) "/merge-reviews/" (r.id) "/reject"} {
                        (csrf_field(session))
                        button type="submit" .secondary { "Keep apart" }
                    }
                }
            }
        }
        @if let Some(into) = &lead.merged_into {
            p .notice #merged role="status" {
                "This lead was merged into " a href={"/app/leads/" (into)} { "the same person's other lead" }
                ": its messages are there now, and that is the one to work on. An admin can undo the merge."
            }
        }
        div .card-grid {
            section aria-labelledby="h-details" .panel {
                h2 #h-details { "Details" }
                dl .details {
                    dt { "Status" } dd #lead-status data-status=(lead.status) { (status_label(lead.status)) }
                    @if let Some(r) = &lead.lost_reason { dt { "Lost because" } dd { (r) @if let Some(n) = &lead.lost_note { " — " (n) } } }
                    dt { "Owner" } dd { @match &lead.owner { Some(o) => (o.name), None => span .muted { "unassigned" } } }
                    dt { "Channel" } dd { (lead.channel) @if let Some(s) = source(&lead) { " · " (s) } }
                    dt { "Next action" } dd {
                        @if let Some(at) = lead.next_action_at {
                            (time_el(at)) @if lead.overdue(now) { " " span .badge .overdue { "overdue" } }
                            @if let Some(n) = &lead.next_action_note { br; (n) }
                        } @else { span .muted { "none" } }
                    }
                    dt { "Created" } dd { (time_el(lead.created_at)) }
                    dt { "Last activity" } dd { (time_el(lead.last_activity_at)) }
                    dt { "First response" } dd { @match lead.first_response_at { Some(at) => (time_el(at)), None => span .muted { "not yet" } } }
                    @for i in &identities {
                        dt { (i.kind) } dd {
                            @match i.kind.as_str() {
                                "email" => a href={"mailto:" (i.value)} { (i.value) },
                                "phone" => a href={"tel:" (i.value)} { (i.value) },
                                _ => (i.value),
                            }
                        }
                    }
                }
            }
            // A merged lead is worked on through the lead it went into.
            @if lead.merged_into.is_none() {
            section aria-labelledby="h-status" .panel {
                h2 #h-status { "Change status" }
                form method="post" action={(path) "/status"} .stack {
                    (csrf_field(session))
                    label for="status" { "New status" }
                    select #status name="status" {
                        @for s in Status::ALL {
                            option value=(s.as_str()) selected[s == lead.status] { (status_label(s)) }
                        }
                    }
                    label for="lost_reason" { "Lost reason (when lost)" }
                    @if reasons.is_empty() {
                        input #lost_reason type="text" name="lost_reason" maxlength="200";
                    } @else {
                        select #lost_reason name="lost_reason" {
                            option value="" { "—" }
                            @for r in reasons { option value=(r) { (r) } }
                        }
                    }
                    label for="lost_note" { "Lost note (needed for “other”)" }
                    input #lost_note type="text" name="lost_note" maxlength="2000";
                    label for="status_next_action_at" { "Next action (UTC)" }
                    input #status_next_action_at type="datetime-local" name="next_action_at"
                        value=[lead.next_action_at.map(datetime_local)];
                    label for="status_next_action_note" { "Next action note" }
                    input #status_next_action_note type="text" name="next_action_note" maxlength="2000"
                        value=[lead.next_action_note.as_deref()];
                    button type="submit" { "Change status" }
                }
            }
            section aria-labelledby="h-next" .panel {
                h2 #h-next { "Next action" }
                form method="post" action={(path) "/next-action"} .stack {
                    (csrf_field(session))
                    label for="next_action_at" { "When (UTC)" }
                    input #next_action_at type="datetime-local" name="next_action_at" value=[lead.next_action_at.map(datetime_local)];
                    label for="next_action_note" { "What" }
                    input #next_action_note type="text" name="next_action_note" maxlength="2000" value=[lead.next_action_note.as_deref()];
                    div .actions {
                        button type="submit" { "Save next action" }
                        button type="submit" name="clear" value="1" .secondary { "Clear" }
                    }
                }
            }
            @if session.is_admin() {
                section aria-labelledby="h-owner" .panel {
                    h2 #h-owner { "Reassign" }
                    (reassign_form(session, &path, &lead, &reps))
                }
            }
            section aria-labelledby="h-note" .panel {
                h2 #h-note { "Add a note" }
                form method="post" action={(path) "/notes"} .stack {
                    (csrf_field(session))
                    label for="note_kind" { "Kind" }
                    select #note_kind name="kind" {
                        option value="note" { "Internal note" }
                        option value="call" { "Call made (counts as a response)" }
                        option value="message" { "Message sent elsewhere (counts as a response)" }
                    }
                    label for="note_text" { "Text" }
                    textarea #note_text name="text" rows="3" required maxlength="20000" {}
                    button type="submit" { "Add note" }
                }
            }
            section aria-labelledby="h-tasks" .panel {
                h2 #h-tasks { "Tasks" }
                @if tasks.is_empty() { p .muted { "No tasks." } }
                ul .tasks {
                    @for t in &tasks {
                        li {
                            @if t.done_at.is_some() { s { (t.title) } " " span .muted { "done" } }
                            @else {
                                (t.title)
                                @if let Some(due) = t.due_at { " · due " (time_el(due)) }
                                form .inline method="post" action={(path) "/tasks/" (t.id) "/done"} {
                                    (csrf_field(session))
                                    button type="submit" .small aria-label={"Mark “" (t.title) "” done"} { "Done" }
                                }
                            }
                        }
                    }
                }
                form method="post" action={(path) "/tasks"} .stack {
                    (csrf_field(session))
                    label for="task_title" { "New task" }
                    input #task_title type="text" name="title" required maxlength="500";
                    label for="task_due" { "Due (UTC, optional)" }
                    input #task_due type="datetime-local" name="due_at";
                    button type="submit" { "Add task" }
                }
            }
            }
        }
        section aria-labelledby="h-timeline" .panel .timeline {
            h2 #h-timeline { "Timeline" }
            @if timeline.is_empty() { p .muted { "Nothing yet." } }
            ol .events { @for (_, item) in &timeline { (item) } }
        }
    };
    Ok(render(status, layout(&name, session, Nav::Lead, content)))
}

fn reassign_form(session: &Session, path: &str, lead: &LeadRow, reps: &[RepRecord]) -> Markup {
    html! {
        form method="post" action={(path) "/reassign"} .stack {
            (csrf_field(session))
            label for="owner" { "New owner" }
            select #owner name="owner" {
                @for r in reps {
                    option value=(r.id) selected[lead.owner.as_ref().is_some_and(|o| o.id == r.id)] {
                        (r.name) @if !r.active { " (inactive)" } @if r.out_of_office_until.is_some() { " (out of office)" }
                    }
                }
            }
            label for="reassign_note" { "Why (optional)" }
            input #reassign_note type="text" name="reassign_note" maxlength="2000";
            button type="submit" { "Reassign" }
        }
    }
}

/// After a change: back to the card (or the board) with a notice; a broken rule re-renders
/// the card with the pipeline's message and the error's status.
async fn finish(
    state: &AppState,
    session: &Session,
    id: &str,
    result: Result<(), AppError>,
    saved: &str,
    back_to_board: bool,
) -> AppResult<Response> {
    match result {
        Ok(()) if back_to_board => Ok(Redirect::to("/app/board").into_response()),
        Ok(()) => Ok(Redirect::to(&format!("/app/leads/{id}?saved={saved}")).into_response()),
        Err(AppError(e @ (ApiError::Unprocessable(..) | ApiError::Conflict(_) | ApiError::Forbidden(_)))) => {
            let status = e.status();
            card(state, session, id, status, Flash { notice: None, error: Some(e.to_string()) }).await
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct StatusForm {
    status: Option<String>,
    lost_reason: Option<String>,
    lost_note: Option<String>,
    next_action_at: Option<String>,
    next_action_note: Option<String>,
    /// `board` when posted from the board.
    back: Option<String>,
}

pub(super) async fn change_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { session, form }: Post<StatusForm>,
) -> AppResult<Response> {
    let result = async {
        let status = filled(&form.status)
            .ok_or_else(|| ApiError::invalid("choose a status"))?
            .parse::<Status>()
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let next_action_at = filled(&form.next_action_at).map(|v| parse_local("next_action_at", v)).transpose()?;
        let update = LeadUpdate {
            status: Some(status),
            lost_reason: filled(&form.lost_reason).map(str::to_owned),
            lost_note: filled(&form.lost_note).map(str::to_owned),
            next_action_at: next_action_at.map(Some),
            next_action_note: filled(&form.next_action_note).map(|n| Some(n.to_owned())),
            ..Default::default()
        };
        state.pipeline().update_lead(&session.actor, &id, &update).await?;
        Ok::<(), AppError>(())
    }
    .await;
    let board = filled(&form.back) == Some("board");
    finish(&state, &session, &id, result, "status", board).await
}

#[derive(Debug, Deserialize)]
pub(super) struct NextActionForm {
    next_action_at: Option<String>,
    next_action_note: Option<String>,
    clear: Option<String>,
}

pub(super) async fn next_action(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { session, form }: Post<NextActionForm>,
) -> AppResult<Response> {
    let result = async {
        let update = if filled(&form.clear).is_some() {
            LeadUpdate { next_action_at: Some(None), next_action_note: Some(None), ..Default::default() }
        } else {
            let at = filled(&form.next_action_at)
                .ok_or_else(|| ApiError::invalid("choose when the next action is (or use Clear)"))?;
            LeadUpdate {
                next_action_at: Some(Some(parse_local("next_action_at", at)?)),
                next_action_note: Some(filled(&form.next_action_note).map(str::to_owned)),
                ..Default::default()
            }
        };
        state.pipeline().update_lead(&session.actor, &id, &update).await?;
        Ok::<(), AppError>(())
    }
    .await;
    finish(&state, &session, &id, result, "next-action", false).await
}

#[derive(Debug, Deserialize)]
pub(super) struct NoteForm {
    kind: Option<String>,
    text: Option<String>,
}

pub(super) async fn add_note(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { session, form }: Post<NoteForm>,
) -> AppResult<Response> {
    let result = async {
        let kind = match filled(&form.kind) {
            None | Some("note") => NoteKind::Note,
            Some("call") => NoteKind::Call,
            Some("message") => NoteKind::Message,
            Some(other) => return Err(AppError(ApiError::invalid(format!("unknown note kind `{other}`")))),
        };
        state.pipeline().add_note(&session.actor, &id, kind, form.text.as_deref().unwrap_or_default()).await?;
        Ok(())
    }
    .await;
    finish(&state, &session, &id, result, "note", false).await
}

#[derive(Debug, Deserialize)]
pub(super) struct ReassignForm {
    owner: Option<String>,
    reassign_note: Option<String>,
}

pub(super) async fn reassign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { session, form }: Post<ReassignForm>,
) -> AppResult<Response> {
    let result = async {
        session.require_admin()?;
        let owner = filled(&form.owner).ok_or_else(|| ApiError::invalid("choose the new owner"))?;
        let update = LeadUpdate {
            owner: Some(owner.to_owned()),
            reassign_note: filled(&form.reassign_note).map(str::to_owned),
            ..Default::default()
        };
        state.pipeline().update_lead(&session.actor, &id, &update).await?;
        Ok::<(), AppError>(())
    }
    .await;
    finish(&state, &session, &id, result, "owner", false).await
}

#[derive(Debug, Deserialize)]
pub(super) struct TaskForm {
    title: Option<String>,
    due_at: Option<String>,
}

pub(super) async fn add_task(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { session, form }: Post<TaskForm>,
) -> AppResult<Response> {
    let result = async {
        let due_at = filled(&form.due_at).map(|v| parse_local("due_at", v)).transpose()?;
        state.pipeline().add_task(&session.actor, &id, form.title.as_deref().unwrap_or_default(), due_at).await?;
        Ok::<(), AppError>(())
    }
    .await;
    finish(&state, &session, &id, result, "task", false).await
}

/// "Merge them" / "Keep apart" on a held merge about this lead's contact.
pub(super) async fn decide_merge(
    State(state): State<AppState>,
    Path((id, review_id, decision)): Path<(String, String, String)>,
    Post { session, form: _ }: Post<super::session::Empty>,
) -> AppResult<Response> {
    visible_lead(&state, &session, &id).await?;
    let result = match decision.as_str() {
        "confirm" => state.pipeline().confirm_merge(&session.actor, &review_id).await.map(|c| match c {
            crate::pipeline::merges::Confirmed::Merged => "merged",
            crate::pipeline::merges::Confirmed::Waiting(_) => "waiting",
        }),
        "reject" => state.pipeline().reject_merge(&session.actor, &review_id).await.map(|()| "apart"),
        _ => return Err(AppError(ApiError::NotFound("page"))),
    };
    match result {
        Ok(saved) => finish(&state, &session, &id, Ok(()), saved, false).await,
        Err(e) => finish(&state, &session, &id, Err(e.into()), "", false).await,
    }
}

pub(super) async fn task_done(
    State(state): State<AppState>,
    Path((id, task_id)): Path<(String, String)>,
    Post { session, form: _ }: Post<super::session::Empty>,
) -> AppResult<Response> {
    let patch = TaskPatch { done: Some(true), ..Default::default() };
    let result =
        state.pipeline().update_task(&session.actor, &id, &task_id, &patch).await.map(|_| ()).map_err(AppError::from);
    finish(&state, &session, &id, result, "task", false).await
}
