//! `/app/reps`: who is on the team and available. Anyone signed in sees it; only an admin
//! changes it, through the same rep patch as `PATCH /api/v1/reps/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::session::{Post, csrf_field};
use super::{AppResult, Nav, Session, filled, layout, render, time_el};
use crate::base::ms;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::reps::apply_patch;
use crate::store::RepPatch;

pub(super) async fn page(session: Session, State(state): State<AppState>) -> AppResult<Response> {
    let reps = state.store().reps().await?;
    let now = ms(jiff::Timestamp::now());
    let admin = session.is_admin();
    let content = html! {
        h1 { "Reps" }
        table .reps {
            caption .visually-hidden { "Reps and their availability" }
            thead { tr {
                th scope="col" { "Rep" } th scope="col" { "Teams" } th scope="col" { "Active" }
                th scope="col" { "Out of office until" } th scope="col" { "Open leads / capacity" }
            } }
            tbody {
                @for r in &reps {
                    tr {
                        th scope="row" data-label="Rep" { (r.name) " " span .muted { "(" (r.id) ")" } }
                        td data-label="Teams" { (r.teams.join(", ")) }
                        td data-label="Active" {
                            @if r.active { "Yes" } @else { span .badge .overdue { "No" } }
                            @if admin {
                                form .inline method="post" action={"/app/reps/" (r.id) "/active"} {
                                    (csrf_field(&session))
                                    input type="hidden" name="active" value=(if r.active { "false" } else { "true" });
                                    button type="submit" .small .secondary {
                                        (if r.active { "Deactivate" } else { "Activate" })
                                        span .visually-hidden { " " (r.name) }
                                    }
                                }
                            }
                        }
                        td data-label="Out of office until" {
                            @match r.out_of_office_until.filter(|until| *until > now) {
                                Some(until) => { (time_el(until)) }
                                None => { span .muted { "available" } }
                            }
                            @if admin {
                                form .inline method="post" action={"/app/reps/" (r.id) "/out-of-office"} {
                                    (csrf_field(&session))
                                    label .visually-hidden for={"ooo-" (r.id)} { "Out of office until (date) for " (r.name) }
                                    input #{"ooo-" (r.id)} type="date" name="until";
                                    button type="submit" .small { "Set" }
                                    @if r.out_of_office_until.is_some() {
                                        button type="submit" name="clear" value="1" .small .secondary { "Back at work" }
                                    }
                                }
                            }
                        }
                        td data-label="Open leads / capacity" {
                            (r.open_leads) " / " @match r.capacity { Some(c) => (c), None => "∞" }
                        }
                    }
                }
            }
        }
    };
    Ok(render(StatusCode::OK, layout("Reps", &session, Nav::Reps, content)))
}

#[derive(Debug, Deserialize)]
pub(super) struct ActiveForm {
    active: Option<String>,
}

pub(super) async fn set_active(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { session, form }: Post<ActiveForm>,
) -> AppResult<Response> {
    session.require_admin()?;
    let active = match filled(&form.active) {
        Some("true") => true,
        Some("false") => false,
        _ => return Err(ApiError::invalid("`active` must be true or false").into()),
    };
    apply_patch(&state, &id, &RepPatch { active: Some(active), ..Default::default() }).await?;
    Ok(Redirect::to("/app/reps").into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct OutOfOfficeForm {
    until: Option<String>,
    clear: Option<String>,
}

pub(super) async fn set_out_of_office(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { session, form }: Post<OutOfOfficeForm>,
) -> AppResult<Response> {
    session.require_admin()?;
    let until = if filled(&form.clear).is_some() {
        None
    } else {
        let day = filled(&form.until).ok_or_else(|| ApiError::invalid("choose the date the rep is back"))?;
        let at = crate::settings::parse_instant(day)
            .ok_or_else(|| ApiError::invalid(format!("`{day}` is not a date like 2026-12-01")))?;
        Some(ms(at))
    };
    apply_patch(&state, &id, &RepPatch { out_of_office_until: Some(until), ..Default::default() }).await?;
    Ok(Redirect::to("/app/reps").into_response())
}
