//! `/app/board`: the pipeline by status. Open stages, plus leads won or lost in the last 30
//! days. Each card moves with a small form (select + button); the script moves it in place.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::inbox::who;
use super::session::csrf_field;
use super::{AppResult, Nav, Session, layout, render, status_label, time_el};
use crate::base::ms;
use crate::domain::Status;
use crate::http::AppState;
use crate::store::LeadFilter;

/// Cards per column.
const COLUMN: i64 = 100;
const CLOSED_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;

pub(super) async fn page(session: Session, State(state): State<AppState>) -> AppResult<Response> {
    let now = ms(jiff::Timestamp::now());
    let owner = session.rep_scope().map(str::to_owned);
    let mut columns = Vec::new();
    for status in Status::ALL {
        let filter = LeadFilter {
            status: Some(status),
            owner: owner.clone(),
            closed_since: (!status.is_open()).then_some(now - CLOSED_WINDOW_MS),
            limit: COLUMN,
            ..Default::default()
        };
        columns.push((status, state.store().leads(&filter, now).await?));
    }
    let ids: Vec<String> = columns.iter().flat_map(|(_, ls)| ls.iter().map(|l| l.contact_id.clone())).collect();
    let identities = state.store().identities_by_contact(&ids).await?;
    let content = html! {
        h1 { "Pipeline" }
        p .hint { "Open leads by stage; won and lost show the last 30 days. Moving a card changes the lead's status." }
        div .board {
            @for (status, leads) in &columns {
                section .column data-status=(status.as_str()) aria-labelledby={"col-" (status.as_str())} {
                    h2 #{"col-" (status.as_str())} {
                        (status_label(*status)) " " span .count { (leads.len()) }
                    }
                    ul .cards {
                        @for l in leads {
                            li .card data-lead=(l.id) {
                                a href={"/app/leads/" (l.id)} { (who(l, identities.get(&l.contact_id).map(Vec::as_slice).unwrap_or_default())) }
                                p .meta {
                                    @match &l.owner { Some(o) => (o.name), None => span .muted { "unassigned" } }
                                    @if let Some(at) = l.next_action_at {
                                        " · " (time_el(at)) @if l.overdue(now) { " " span .badge .overdue { "overdue" } }
                                    }
                                }
                                form .move method="post" action={"/app/leads/" (l.id) "/status"} {
                                    (csrf_field(&session))
                                    input type="hidden" name="back" value="board";
                                    label .visually-hidden for={"move-" (l.id)} { "Move " (who(l, &[])) " to" }
                                    select #{"move-" (l.id)} name="status" {
                                        @for s in Status::ALL {
                                            option value=(s.as_str()) selected[s == *status] { (status_label(s)) }
                                        }
                                    }
                                    button type="submit" .small { "Move" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(render(StatusCode::OK, layout("Board", &session, Nav::Board, content)))
}
