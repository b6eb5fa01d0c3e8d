//! Analytics against a dataset whose answers the test works out itself: 30 leads over ten
//! days from three sources and two teams, taken through different paths of the pipeline,
//! answered after known delays. Run on SQLite and PostgreSQL, and the two compared.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::support::{ADMIN, Db, TestApp, postgres_admin_url};

/// Monday 2026-11-02 00:00 UTC.
const D0: i64 = 1_793_577_600_000;
const DAY: i64 = 86_400_000;
const N: usize = 30;

const EXTRA: &str = r#"
[pipeline]
stale_after = "1d"

[[teams]]
id = "support"
members = ["dana"]
after_hours = true

[[reps]]
id = "dana"
name = "Dana"
api_token = "dana-token-for-tests-0123456789"

[[routing.rules]]
team = "support"
match = { form = "help" }

[[forms]]
id = "help"
"#;

/// What the test did to lead `i`, and so what the numbers must say.
#[derive(Debug, Clone)]
struct Planned {
    created_at: i64,
    form: &'static str,
    utm: Option<&'static str>,
    /// The furthest stage reached: 0 new … 5 won.
    furthest: usize,
    status: &'static str,
    lost_reason: Option<&'static str>,
    response_ms: Option<i64>,
    overdue: bool,
    stale: bool,
    owner: String,
}

fn plan(i: usize) -> Planned {
    let (furthest, status, lost_reason) = match i % 5 {
        0 => (0, "new", None),
        1 => (5, "won", None),
        2 => (1, "lost", Some("too expensive")),
        3 => (4, "waiting_response", None),
        _ => (0, "lost", Some("no budget")),
    };
    let open = !matches!(status, "won" | "lost");
    Planned {
        created_at: D0 + (i as i64 % 10) * DAY + (i as i64 * 3571 % 86_400) * 1000,
        form: if i % 6 == 5 { "help" } else { "contact" },
        utm: match i % 3 {
            0 => Some("google"),
            1 => Some("yandex"),
            _ => None,
        },
        furthest,
        status,
        lost_reason,
        response_ms: (!i.is_multiple_of(4)).then(|| ((i as i64 * 37) % 300 + 10) * 1000),
        overdue: open && i % 5 == 3 && i < 15,
        stale: open && i.is_multiple_of(7),
        owner: String::new(),
    }
}

/// Creates the dataset through the API (and sets its clock-bound columns directly, since the
/// test cannot wait ten days).
async fn build(app: &TestApp) -> Vec<Planned> {
    let pool = app.store().reader_pool();
    let mut planned = Vec::new();
    for i in 0..N {
        let mut p = plan(i);
        let mut body = json!({"email": format!("lead{i}@example.com"), "name": format!("Lead {i}")});
        if let Some(utm) = p.utm {
            body["utm_source"] = json!(utm);
        }
        let id = app.submit(p.form, body).await;
        let path = format!("/api/v1/leads/{id}");
        let next = if p.overdue { "2020-01-01T00:00:00Z" } else { "2030-01-01T00:00:00Z" };
        let steps: Vec<Value> = match i % 5 {
            1 => vec![
                json!({"status": "qualification", "next_action_at": next}),
                json!({"status": "proposal_sent"}),
                json!({"status": "won"}),
            ],
            2 => vec![
                json!({"status": "qualification", "next_action_at": next}),
                json!({"status": "lost", "lost_reason": "too expensive"}),
            ],
            // Skips stages: negotiation straight from new.
            3 => vec![json!({"status": "negotiation", "next_action_at": next}), json!({"status": "waiting_response"})],
            4 => vec![json!({"status": "lost", "lost_reason": "no budget"})],
            _ => vec![],
        };
        for step in steps {
            let (status, lead) = app.patch(&path, step.clone()).await;
            assert_eq!(status, StatusCode::OK, "{step}: {lead}");
        }
        if p.response_ms.is_some() {
            let (status, _) = app
                .send_as(ADMIN, Method::POST, &format!("{path}/notes"), &json!({"text": "called", "kind": "call"}))
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let lead = app.lead(&id).await;
        assert_eq!(lead["status"], p.status);
        p.owner = lead["owner"]["id"].as_str().expect("owner").to_owned();
        let activity = if p.stale { D0 } else { jiff::Timestamp::now().as_millisecond() };
        sqlx::query(
            "UPDATE leads SET created_at = $1, first_response_at = $2 + $1, last_activity_at = $3 WHERE id = $4",
        )
        .bind(p.created_at)
        .bind(p.response_ms)
        .bind(activity)
        .bind(&id)
        .execute(&pool)
        .await
        .expect("set the dataset's times");
        planned.push(p);
    }
    planned
}

/// Linear interpolation between closest ranks (PostgreSQL's `percentile_cont`), in seconds.
fn percentile(sorted_ms: &[i64], p: f64) -> f64 {
    let pos = (sorted_ms.len() - 1) as f64 * p;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    let hi = (lo + 1).min(sorted_ms.len() - 1);
    (sorted_ms[lo] as f64 * (1.0 - frac) + sorted_ms[hi] as f64 * frac) / 1000.0
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-6)
}

fn counts<'a>(keys: impl Iterator<Item = &'a str>) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k.to_owned()).or_insert(0) += 1;
    }
    m
}

fn as_counts(v: &Value) -> BTreeMap<String, i64> {
    v.as_object().map(|o| o.iter().filter_map(|(k, n)| Some((k.clone(), n.as_i64()?))).collect()).unwrap_or_default()
}

fn source(p: &Planned) -> String {
    p.utm.map_or_else(|| format!("form:{}", p.form), str::to_owned)
}

fn check(s: &Value, leads: &[&Planned], reps: &[&str]) {
    assert_eq!(s["leads"]["total"], leads.len() as i64);
    assert_eq!(as_counts(&s["leads"]["by_channel"]), counts(leads.iter().map(|_| "webform")));
    let sources: Vec<String> = leads.iter().map(|p| source(p)).collect();
    assert_eq!(as_counts(&s["leads"]["by_source"]), counts(sources.iter().map(String::as_str)));

    // Per day: every day of the range present, zeros included.
    let series = s["leads"]["series"].as_array().expect("series");
    assert_eq!(series.len(), 10);
    for (d, point) in series.iter().enumerate() {
        let start = jiff::Timestamp::from_millisecond(D0 + d as i64 * DAY).expect("ts").to_string();
        assert_eq!(point["start"], start.as_str());
        let that_day: Vec<&&Planned> = leads.iter().filter(|p| (p.created_at - D0) / DAY == d as i64).collect();
        assert_eq!(point["total"], that_day.len() as i64, "day {d}");
        let sources: Vec<String> = that_day.iter().map(|p| source(p)).collect();
        assert_eq!(as_counts(&point["by_source"]), counts(sources.iter().map(String::as_str)), "day {d}");
    }

    let stages = ["new", "qualification", "proposal_sent", "negotiation", "waiting_response", "won"];
    for (k, stage) in stages.iter().enumerate() {
        let reached = leads.iter().filter(|p| p.furthest >= k).count() as i64;
        assert_eq!(s["funnel"][stage], reached, "reached {stage}");
        if k > 0 {
            let before = leads.iter().filter(|p| p.furthest >= k - 1).count() as f64;
            let expected = if before > 0.0 { json!(reached as f64 / before) } else { Value::Null };
            assert!(
                s["funnel_conversion"][stage] == expected
                    || close(&s["funnel_conversion"][stage], expected.as_f64().unwrap_or(-1.0)),
                "{stage}: {} vs {expected}",
                s["funnel_conversion"][stage]
            );
        }
    }
    assert_eq!(s["funnel"]["lost"], leads.iter().filter(|p| p.status == "lost").count() as i64);
    let statuses = counts(leads.iter().map(|p| p.status));
    for (status, n) in as_counts(&s["status_now"]) {
        assert_eq!(n, statuses.get(&status).copied().unwrap_or(0), "status_now {status}");
    }
    assert_eq!(as_counts(&s["lost_reasons"]), counts(leads.iter().filter_map(|p| p.lost_reason)));

    let mut all: Vec<i64> = leads.iter().filter_map(|p| p.response_ms).collect();
    all.sort_unstable();
    let fr = &s["first_response"];
    assert_eq!(fr["count"], all.len() as i64);
    assert!(close(&fr["mean_s"], all.iter().sum::<i64>() as f64 / all.len() as f64 / 1000.0), "{fr}");
    assert!(close(&fr["median_s"], percentile(&all, 0.5)), "{fr}");
    assert!(close(&fr["p90_s"], percentile(&all, 0.9)), "{fr}");
    assert!(close(&fr["by_channel"]["webform"]["median_s"], percentile(&all, 0.5)), "{fr}");

    let rows = s["reps"].as_array().expect("reps");
    assert_eq!(rows.iter().filter_map(|r| r["id"].as_str()).collect::<Vec<_>>(), reps);
    for rep in rows {
        let id = rep["id"].as_str().expect("id");
        let own: Vec<&&Planned> = leads.iter().filter(|p| p.owner == id).collect();
        let won = own.iter().filter(|p| p.status == "won").count() as i64;
        let lost = own.iter().filter(|p| p.status == "lost").count() as i64;
        let open = own.iter().filter(|p| !matches!(p.status, "won" | "lost")).count() as i64;
        assert_eq!((&rep["open"], &rep["won"], &rep["lost"]), (&json!(open), &json!(won), &json!(lost)), "{rep}");
        if won + lost > 0 {
            assert!(close(&rep["conversion"], won as f64 / (won + lost) as f64), "{rep}");
        }
        let mut times: Vec<i64> = own.iter().filter_map(|p| p.response_ms).collect();
        times.sort_unstable();
        if times.is_empty() {
            assert!(rep["first_response_median_s"].is_null(), "{rep}");
        } else {
            assert!(close(&rep["first_response_median_s"], percentile(&times, 0.5)), "{rep}");
            assert!(close(&fr["by_rep"][id]["p90_s"], percentile(&times, 0.9)), "{fr}");
        }
    }
    assert_eq!(s["unassigned"], 0);
    assert_eq!(s["overdue"], leads.iter().filter(|p| p.overdue).count() as i64);
    assert_eq!(s["stale"], leads.iter().filter(|p| p.stale).count() as i64);
}

const RANGE: &str = "from=2026-11-02T00:00:00Z&to=2026-11-12T00:00:00Z";

async fn the_summary_matches_the_dataset(db: Db) {
    let app = TestApp::spawn(db, EXTRA).await;
    let planned = build(&app).await;
    let everyone: Vec<&Planned> = planned.iter().collect();
    let s = app.get(&format!("/api/v1/stats/summary?{RANGE}")).await;
    check(&s, &everyone, &["anna", "ben", "chen", "dana"]);

    // One team: its leads, its members.
    let support: Vec<&Planned> = planned.iter().filter(|p| p.form == "help").collect();
    let s = app.get(&format!("/api/v1/stats/summary?{RANGE}&team=support")).await;
    check(&s, &support, &["dana"]);

    // Weeks start on Monday: 2026-11-02 and 2026-11-09.
    let s = app.get(&format!("/api/v1/stats/summary?{RANGE}&bucket=week")).await;
    let weeks = s["leads"]["series"].as_array().expect("series");
    let first_week = planned.iter().filter(|p| p.created_at < D0 + 7 * DAY).count() as i64;
    assert_eq!(weeks.len(), 2);
    assert_eq!((&weeks[0]["start"], &weeks[0]["total"]), (&json!("2026-11-02T00:00:00Z"), &json!(first_week)));
    assert_eq!(weeks[1]["total"], N as i64 - first_week);

    // A range before everything is all zeros, not an error.
    let s = app.get("/api/v1/stats/summary?from=2026-10-01&to=2026-10-03").await;
    assert_eq!((&s["leads"]["total"], &s["funnel"]["new"]), (&json!(0), &json!(0)));
    assert!(s["first_response"]["median_s"].is_null());

    for bad in ["bucket=month", "team=nobody", "from=2020-01-01&to=2026-01-01", "from=2026-11-03&to=2026-11-02"] {
        let (status, body) = app.get_as(ADMIN, &format!("/api/v1/stats/summary?{bad}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (status, _) = app.get_as("anna-token-for-tests-0123456789", &format!("/api/v1/stats/summary?{RANGE}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "managers' numbers are for admins");

    // The CSV export: the same leads, one row each, oldest first.
    let r = app
        .client
        .get(app.url(&format!("/api/v1/stats/leads.csv?{RANGE}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("csv");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().is_ok_and(|t| t.starts_with("text/csv")));
    let text = r.text().await.expect("text");
    let mut csv = csv::Reader::from_reader(text.as_bytes());
    let header = csv.headers().expect("header").clone();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), N);
    let mut by_time = planned.clone();
    by_time.sort_by_key(|p| p.created_at);
    for (row, p) in rows.iter().zip(&by_time) {
        assert_eq!(&row[col("created_at")], jiff::Timestamp::from_millisecond(p.created_at).expect("ts").to_string());
        assert_eq!(
            (&row[col("status")], &row[col("owner")], &row[col("source")]),
            (p.status, p.owner.as_str(), source(p).as_str())
        );
        let expected = p.response_ms.map(|ms| (ms as f64 / 1000.0).to_string()).unwrap_or_default();
        assert_eq!(&row[col("first_response_s")], expected);
    }
}
both!(the_summary_matches_the_dataset);

/// Every number in `a` and `b` the same (floats to 1e-9 relative).
fn same(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "{at}");
            for (k, v) in x {
                same(v, &y[k], &format!("{at}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                same(v, w, &format!("{at}[{i}]"));
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{at}: {x} vs {y}");
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// The same dataset on both backends gives the same summary, figure for figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_agree() {
    if postgres_admin_url().await.is_none() {
        return;
    }
    let lite = TestApp::spawn(Db::Sqlite, EXTRA).await;
    let pg = TestApp::spawn(Db::Postgres, EXTRA).await;
    build(&lite).await;
    build(&pg).await;
    for query in ["", "&team=support", "&bucket=week"] {
        let path = format!("/api/v1/stats/summary?{RANGE}{query}");
        let summary = lite.get(&path).await;
        assert!(summary["leads"]["total"].as_i64().is_some_and(|n| n > 0), "{summary}");
        same(&summary, &pg.get(&path).await, &path);
    }
}
