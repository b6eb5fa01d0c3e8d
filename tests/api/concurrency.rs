//! Many inquiries at once: still one contact per person, one open lead, fair routing.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use serde_json::json;

use crate::both;
use crate::support::{Db, TestApp};

async fn a_hundred_simultaneous_posts_from_ten_people(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let posts = (0..100).map(|i| {
        let person = i % 10;
        // Half of each person's posts carry their email, half their phone, some both: every
        // post must still land on the one contact.
        let body = match i % 3 {
            0 => json!({"email": format!("person{person}@example.com"), "phone": format!("+1 415 555 01{person:02}"), "message": format!("msg {i}")}),
            1 => json!({"email": format!("Person{person}@Example.com"), "message": format!("msg {i}")}),
            _ => json!({"email": format!("person{person}@example.com"), "phone": format!("(415) 555-01{person:02}"), "message": format!("msg {i}")}),
        };
        let app = &app;
        async move { app.submit("contact", body).await }
    });
    let ids = join_all(posts).await;
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 10);
    assert_eq!(app.count("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL").await, 10);
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 10);
    assert_eq!(app.count("SELECT COUNT(*) FROM interactions").await, 100);
    assert_eq!(app.count("SELECT COUNT(*) FROM identities").await, 20);
}
both!(a_hundred_simultaneous_posts_from_ten_people);

async fn round_robin_stays_fair_under_concurrency(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let posts = (0..30).map(|i| {
        let app = &app;
        async move { app.submit("contact", json!({"email": format!("fair{i}@example.com")})).await }
    });
    join_all(posts).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for lead in app.leads("").await {
        *counts.entry(lead["owner"]["id"].as_str().unwrap_or("none").to_owned()).or_default() += 1;
    }
    assert_eq!(counts, BTreeMap::from([("anna".into(), 10), ("ben".into(), 10), ("chen".into(), 10)]));
}
both!(round_robin_stays_fair_under_concurrency);
