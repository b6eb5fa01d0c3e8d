//! Routing: fairness, capacity, the unassigned queue, rules, sticky owners.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both;
use crate::support::{Db, TestApp};

async fn owners(app: &TestApp) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for lead in app.leads("").await {
        let owner = lead["owner"]["id"].as_str().unwrap_or("unassigned").to_owned();
        *counts.entry(owner).or_default() += 1;
    }
    counts
}

async fn thirty_leads_over_three_reps_is_ten_each(db: Db) {
    let app = TestApp::spawn(db, "").await;
    for i in 0..30 {
        app.submit("contact", json!({"email": format!("p{i}@example.com"), "message": "hello"})).await;
    }
    let counts = owners(&app).await;
    assert_eq!(counts, BTreeMap::from([("anna".into(), 10), ("ben".into(), 10), ("chen".into(), 10)]));
}
both!(thirty_leads_over_three_reps_is_ten_each);

const SMALL_TEAM: &str = r#"
[[teams]]
id = "sales"
strategy = "least_loaded"
after_hours = true
[[reps]]
id = "anna"
name = "Anna"
capacity = 2
teams = ["sales"]
[[reps]]
id = "ben"
name = "Ben"
capacity = 2
teams = ["sales"]
"#;

async fn nobody_goes_above_capacity_and_the_queue_drains_when_room_frees(db: Db) {
    let app = TestApp::spawn_people(db, SMALL_TEAM).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(app.submit("contact", json!({"email": format!("c{i}@example.com")})).await);
    }
    let counts = owners(&app).await;
    assert_eq!(counts, BTreeMap::from([("anna".into(), 2), ("ben".into(), 2), ("unassigned".into(), 2)]));
    let waiting = app.leads("&unassigned=true").await;
    assert_eq!(waiting.len(), 2, "the waiting queue is visible");

    // Closing a lead frees room: the oldest waiting lead gets that rep at once.
    let anna_lead = app.leads("&owner=anna").await[0]["id"].as_str().expect("id").to_owned();
    let (status, _) = app.patch(&format!("/api/v1/leads/{anna_lead}"), json!({"status": "won"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.leads("&unassigned=true").await.len(), 1);
    assert_eq!(app.leads("&owner=anna").await.iter().filter(|l| l["closed_at"].is_null()).count(), 2);

    // More capacity through the API drains the rest.
    let (status, rep) = app.patch("/api/v1/reps/ben", json!({"capacity": 3})).await;
    assert_eq!(status, StatusCode::OK, "{rep}");
    assert_eq!(rep["open_leads"], 3);
    assert!(app.leads("&unassigned=true").await.is_empty());
    let reps = app.get("/api/v1/reps").await;
    for rep in reps["items"].as_array().expect("reps") {
        assert!(rep["open_leads"].as_i64() <= rep["capacity"].as_i64(), "{rep}");
    }
}
both!(nobody_goes_above_capacity_and_the_queue_drains_when_room_frees);

async fn leads_wait_while_nobody_is_eligible_and_go_out_when_someone_is(db: Db) {
    let app = TestApp::spawn(
        db,
        r#"
        [[teams]]
        id = "night"
        members = ["nora"]
        [[reps]]
        id = "nora"
        name = "Nora"
        active = false
        out_of_office_until = "2099-01-01"
        [[routing.rules]]
        team = "night"
        match = { utm_source = "nightly" }
        "#,
    )
    .await;
    let id = app.submit("contact", json!({"email": "owl@example.com", "utm_source": "nightly"})).await;
    let lead = app.lead(&id).await;
    assert!(lead["owner"].is_null(), "inactive and away: nobody eligible");
    assert_eq!(lead["team"], "night", "the rule chose the team");

    app.patch("/api/v1/reps/nora", json!({"active": true})).await;
    assert!(app.lead(&id).await["owner"].is_null(), "still out of office");
    let (status, _) = app.patch("/api/v1/reps/nora", json!({"out_of_office_until": null})).await;
    assert_eq!(status, StatusCode::OK);
    let lead = app.lead(&id).await;
    assert_eq!(lead["owner"]["id"], "nora");
    assert_eq!(lead["assignments"][0]["reason"], "round_robin");
}
both!(leads_wait_while_nobody_is_eligible_and_go_out_when_someone_is);

async fn a_returning_contact_goes_back_to_their_previous_owner(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let first = app.submit("contact", json!({"email": "loyal@example.com"})).await;
    let owner = app.lead(&first).await["owner"]["id"].as_str().expect("owner").to_owned();
    app.patch(&format!("/api/v1/leads/{first}"), json!({"status": "won"})).await;
    // Others arrive in between, moving the round-robin on.
    for i in 0..4 {
        app.submit("contact", json!({"email": format!("other{i}@example.com")})).await;
    }
    let second = app.submit("contact", json!({"email": "Loyal@Example.com", "message": "new project"})).await;
    assert_ne!(first, second, "a closed lead is not reopened by a new inquiry");
    let lead = app.lead(&second).await;
    assert_eq!(lead["owner"]["id"], owner.as_str());
    assert_eq!(lead["assignments"][0]["reason"], "sticky_owner");
}
both!(a_returning_contact_goes_back_to_their_previous_owner);

async fn weighted_round_robin_splits_by_weight(db: Db) {
    let app = TestApp::spawn_people(
        db,
        r#"
        [routing]
        default_team = "w"
        [[teams]]
        id = "w"
        strategy = "weighted_round_robin"
        members = ["big", "small"]
        after_hours = true
        [[reps]]
        id = "big"
        name = "Big"
        weight = 3
        [[reps]]
        id = "small"
        name = "Small"
        "#,
    )
    .await;
    for i in 0..12 {
        app.submit("contact", json!({"email": format!("w{i}@example.com")})).await;
    }
    assert_eq!(owners(&app).await, BTreeMap::from([("big".into(), 9), ("small".into(), 3)]));
    let _: Value = Value::Null;
}
both!(weighted_round_robin_splits_by_weight);
