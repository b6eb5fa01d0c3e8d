//! `/app/analytics?from=&to=&team=`: the stats summary (the same function as
//! `GET /api/v1/stats/summary`) as numbers and SVG charts. It reads the summary's JSON, not
//! its Rust type, and every field defensively: a field the summary does not have (yet) shows
//! as "no data" rather than breaking the page.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::charts::{self, Bar, Series};
use super::{AppError, AppResult, Nav, Session, filled, layout, query, render, status_label};
use crate::domain::Status;
use crate::http::AppState;
use crate::http::stats::{Range, summary_view};

#[derive(Debug, Default, Deserialize)]
struct Form {
    from: Option<String>,
    to: Option<String>,
    team: Option<String>,
    bucket: Option<String>,
}

pub(super) async fn page(
    session: Session,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> AppResult<Response> {
    session.require_admin()?;
    let form: Form = query(raw.as_deref())?;
    // The range is read from the query string itself, so whatever the summary learns to
    // filter by (team, bucket) reaches it without this page changing. Empty fields are absent.
    let cleaned: Vec<(String, String)> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(raw.as_deref().unwrap_or(""))
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
    let range: Range = query(serde_urlencoded::to_string(&cleaned).ok().as_deref())?;
    let (status, summary, error) = match summary_view(&state, &range).await {
        Ok(view) => (StatusCode::OK, serde_json::to_value(view).unwrap_or(Value::Null), None),
        Err(e) => {
            let e = AppError(e);
            (e.0.status(), Value::Null, Some(e.message()))
        }
    };
    let teams: Vec<&str> = state.settings().teams.iter().map(|t| t.id.as_str()).collect();
    let content = html! {
        h1 { "Analytics" }
        form .filters method="get" action="/app/analytics" {
            div .field {
                label for="a-from" { "From" }
                input #a-from type="date" name="from" value=[filled(&form.from).map(|d| d.get(..10).unwrap_or(d))];
            }
            div .field {
                label for="a-to" { "To (exclusive)" }
                input #a-to type="date" name="to" value=[filled(&form.to).map(|d| d.get(..10).unwrap_or(d))];
            }
            @if teams.len() > 1 {
                div .field {
                    label for="a-team" { "Team" }
                    select #a-team name="team" {
                        option value="" { "All teams" }
                        @for t in &teams { option value=(t) selected[filled(&form.team) == Some(*t)] { (t) } }
                    }
                }
            }
            div .field {
                label for="a-bucket" { "Per" }
                select #a-bucket name="bucket" {
                    option value="day" selected[filled(&form.bucket) != Some("week")] { "day" }
                    option value="week" selected[filled(&form.bucket) == Some("week")] { "week" }
                }
            }
            div .actions { button type="submit" { "Show" } }
        }
        @if let Some(error) = &error {
            p .alert role="alert" { (error) }
        } @else {
            (body(&summary))
        }
    };
    Ok(render(status, layout("Analytics", &session, Nav::Analytics, content)))
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn no_data() -> Markup {
    html! { p .muted .no-data { "No data." } }
}

fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// Everything under the filters, from the summary's JSON.
pub(super) fn body(s: &Value) -> Markup {
    let first = &s["first_response"];
    let tiles: [(&str, Option<String>); 6] = [
        ("Leads", num(&s["leads"]["total"]).map(charts::number)),
        ("Unassigned now", num(&s["unassigned"]).map(charts::number)),
        ("Overdue", num(&s["overdue"]).map(charts::number)),
        ("Stale", num(&s["stale"]).map(charts::number)),
        ("First response (median)", num(&first["median_s"]).map(charts::duration)),
        ("First response (mean)", num(&first["mean_s"]).map(charts::duration)),
    ];
    html! {
        p .hint {
            @if let (Some(from), Some(to)) = (s["from"].as_str(), s["to"].as_str()) { "From " (from) " to " (to) }
            @if let Some(team) = s["team"].as_str() { " · team " (team) }
        }
        ul .tiles {
            @for (label, value) in &tiles {
                li { span .tile-label { (label) } span .tile-value { (value.as_deref().unwrap_or("—")) } }
            }
        }
        div .chart-grid {
            section .panel aria-labelledby="h-sources" { h2 #h-sources { "Leads by source over time" } (sources_chart(s)) }
            section .panel aria-labelledby="h-funnel" { h2 #h-funnel { "Funnel" } (funnel_chart(s)) }
            section .panel aria-labelledby="h-response" { h2 #h-response { "First response by rep" } (response_chart(s)) }
            section .panel aria-labelledby="h-conversion" { h2 #h-conversion { "Conversion by rep" } (conversion_chart(s)) }
            section .panel aria-labelledby="h-lost" {
                h2 #h-lost { "Lost reasons" }
                @match s["lost_reasons"].as_object().filter(|m| !m.is_empty()) {
                    Some(reasons) => {
                        table .small-table {
                            thead { tr { th scope="col" { "Reason" } th scope="col" { "Leads" } } }
                            tbody { @for (r, n) in reasons { tr { th scope="row" { (r) } td { (num(n).map(charts::number).unwrap_or_default()) } } } }
                        }
                    }
                    None => (no_data()),
                }
            }
        }
    }
}

/// Stacked bars of leads per period by source; without a series, one bar per source.
fn sources_chart(s: &Value) -> Markup {
    let bucket = s["bucket"].as_str().unwrap_or("day");
    if let Some(series) = s["leads"]["series"].as_array().filter(|a| !a.is_empty()) {
        let mut names: Vec<String> = Vec::new();
        for point in series {
            if let Some(by) = point["by_source"].as_object() {
                for k in by.keys() {
                    if !names.contains(k) {
                        names.push(k.clone());
                    }
                }
            }
        }
        let categories: Vec<String> = series
            .iter()
            .map(|p| p["start"].as_str().map(|t| t.get(..10).unwrap_or(t).to_owned()).unwrap_or_default())
            .collect();
        let mut stacks: Vec<Series> = names
            .iter()
            .map(|n| Series {
                name: n.clone(),
                values: series.iter().map(|p| num(&p["by_source"][n.as_str()]).unwrap_or(0.0)).collect(),
            })
            .collect();
        if stacks.is_empty() {
            stacks.push(Series {
                name: "leads".into(),
                values: series.iter().map(|p| num(&p["total"]).unwrap_or(0.0)).collect(),
            });
        }
        let desc = format!("Leads created per {bucket}, stacked by source, over {} periods.", categories.len());
        return charts::stacked_bars("chart-sources", "Leads by source over time", &desc, &categories, &stacks);
    }
    match s["leads"]["by_source"].as_object().filter(|m| !m.is_empty()) {
        Some(by) => {
            let bars: Vec<Bar> = by
                .iter()
                .map(|(k, v)| {
                    let n = num(v).unwrap_or(0.0);
                    Bar { label: k.clone(), value: n, text: charts::number(n) }
                })
                .collect();
            charts::hbars("chart-sources", "Leads by source", "Leads created in the range, by source.", &bars, None)
        }
        None => no_data(),
    }
}

/// Leads that reached each stage, with the conversion from the stage before.
fn funnel_chart(s: &Value) -> Markup {
    let Some(funnel) = s["funnel"].as_object().filter(|m| !m.is_empty()) else { return no_data() };
    let conversion = &s["funnel_conversion"];
    let mut previous: Option<f64> = None;
    let mut bars = Vec::new();
    for status in Status::ALL {
        let Some(n) = funnel.get(status.as_str()).and_then(num) else { continue };
        let rate = num(&conversion[status.as_str()])
            .or_else(|| previous.filter(|p| *p > 0.0 && status != Status::Lost).map(|p| n / p));
        let text = match rate {
            Some(r) if status != Status::New => format!("{} ({})", charts::number(n), pct(r)),
            _ => charts::number(n),
        };
        bars.push(Bar { label: status_label(status), value: n, text });
        if status != Status::Won && status != Status::Lost {
            previous = Some(n);
        }
    }
    if bars.is_empty() {
        return no_data();
    }
    charts::hbars(
        "chart-funnel",
        "Funnel",
        "Leads that reached each stage, with the share of the stage before that got there.",
        &bars,
        None,
    )
}

fn rep_name<'a>(s: &'a Value, id: &'a str) -> &'a str {
    s["reps"]
        .as_array()
        .and_then(|reps| reps.iter().find(|r| r["id"].as_str() == Some(id)))
        .and_then(|r| r["name"].as_str())
        .unwrap_or(id)
}

/// Median and 90th percentile of the first response, per rep.
fn response_chart(s: &Value) -> Markup {
    let Some(by_rep) = s["first_response"]["by_rep"].as_object().filter(|m| !m.is_empty()) else {
        return no_data();
    };
    let rows: Vec<(String, Vec<Option<f64>>)> = by_rep
        .iter()
        .map(|(id, v)| (rep_name(s, id).to_owned(), vec![num(&v["median_s"]), num(&v["p90_s"])]))
        .collect();
    charts::grouped_hbars(
        "chart-response",
        "First response time by rep",
        "Median and 90th percentile time from a lead's arrival to its owner's first response.",
        &["median", "90th percentile"],
        &rows,
        charts::duration,
    )
}

/// Won / (won + lost) per rep.
fn conversion_chart(s: &Value) -> Markup {
    let bars: Vec<Bar> = s["reps"]
        .as_array()
        .map(|reps| {
            reps.iter()
                .filter_map(|r| {
                    let id = r["id"].as_str()?;
                    let c = num(&r["conversion"])?;
                    let label = r["name"].as_str().unwrap_or(id).to_owned();
                    let won = num(&r["won"]).map(charts::number).unwrap_or_default();
                    let lost = num(&r["lost"]).map(charts::number).unwrap_or_default();
                    Some(Bar { label, value: c, text: format!("{} ({won} won, {lost} lost)", pct(c)) })
                })
                .collect()
        })
        .unwrap_or_default();
    if bars.is_empty() {
        return no_data();
    }
    charts::hbars(
        "chart-conversion",
        "Conversion by rep",
        "Share of each rep's closed leads that were won.",
        &bars,
        Some(1.0),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_page_reads_what_is_there_and_says_no_data_for_the_rest() {
        let today = json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-31T00:00:00Z",
            "leads": {"total": 3, "by_channel": {"webform": 3}, "by_source": {"google": 2, "(none)": 1}},
            "funnel": {"new": 3, "qualification": 1, "won": 1, "lost": 0}, "lost_reasons": {},
            "first_response": {"mean_s": null}, "reps": [{"id": "anna", "open": 1, "won": 1, "lost": 0, "conversion": 1.0}],
            "unassigned": 0});
        let html = body(&today).into_string();
        assert!(html.contains("chart-sources-title"), "source totals drawn without a series");
        assert!(html.contains("1 (33%)"), "funnel conversion computed from the stage before");
        assert!(html.contains("100% (1 won, 0 lost)"));
        assert_eq!(html.matches("No data.").count(), 2, "response times and lost reasons");

        let extended = json!({"bucket": "week", "leads": {"total": 2, "series": [
                {"start": "2026-01-05T00:00:00Z", "total": 2, "by_source": {"google": 1, "telegram": 1}}]},
            "first_response": {"median_s": 90, "by_rep": {"anna": {"median_s": 60, "p90_s": 120}}},
            "funnel": {"new": 2}, "funnel_conversion": {"qualification": 0.5}});
        let html = body(&extended).into_string();
        assert!(html.contains("2026-01-05: telegram 1"));
        assert!(html.contains("<td>1 min</td><td>2 min</td>"));
        assert!(html.contains("2 min"), "median tile");
        let empty = body(&Value::Null).into_string();
        assert_eq!(empty.matches("No data.").count(), 5);
    }
}
