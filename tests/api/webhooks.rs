//! Outbound webhooks through the outbox: signed, retried, dead after N attempts.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::support::{ADMIN, Db, TestApp, eventually};

#[derive(Clone, Default)]
pub(crate) struct Received(pub Arc<Mutex<Vec<(HeaderMap, String)>>>);

/// A webhook receiver on a free port answering `status`.
pub(crate) async fn receiver(status: StatusCode) -> (String, Received) {
    let received = Received::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let store = store.clone();
            async move {
                store.0.lock().expect("lock").push((headers, body));
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

async fn subscribed_webhooks_get_signed_events(db: Db) {
    let (url, received) = receiver(StatusCode::OK).await;
    let app = TestApp::spawn(db, &format!("[[notify.webhooks]]\nurl = \"{url}\"\nsecret = \"hook-secret\"\nevents = [\"lead.created\", \"lead.assigned\", \"lead.status_changed\"]\n")).await;
    let id = app.submit("contact", json!({"email": "hook@example.com", "message": "hello"})).await;
    eventually(5, || async { received.0.lock().expect("lock").len() >= 2 }).await;
    app.submit("contact", json!({"email": "hook@example.com", "message": "not subscribed: lead.message"})).await;
    app.patch(&format!("/api/v1/leads/{id}"), json!({"status": "won"})).await;
    eventually(5, || async { received.0.lock().expect("lock").len() >= 3 }).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let got = received.0.lock().expect("lock").clone();
    let types: Vec<&str> = got.iter().map(|(h, _)| h["x-leadrouter-event"].to_str().unwrap_or("")).collect();
    assert_eq!(types, ["lead.created", "lead.assigned", "lead.status_changed"]);
    for (headers, body) in &got {
        let signature = headers["x-leadrouter-signature"].to_str().expect("signature");
        assert_eq!(signature, leadrouter::notify::webhook::sign("hook-secret", body.as_bytes()));
        let event: Value = serde_json::from_str(body).expect("json");
        assert_eq!(headers["x-leadrouter-event-id"].to_str().expect("id"), event["id"].as_str().expect("event id"));
        assert_eq!(event["data"]["lead"]["id"], id.as_str());
    }
    let created: Value = serde_json::from_str(&got[0].1).expect("json");
    assert_eq!(created["data"]["lead"]["contact"]["identities"][0]["value"], "hook@example.com");
    assert!(created["data"]["lead"]["owner"]["id"].is_string());
    let sent = app.get("/api/v1/outbox?status=sent").await;
    assert_eq!(sent["items"].as_array().map(Vec::len), Some(3));
}
both!(subscribed_webhooks_get_signed_events);

async fn failing_webhooks_are_retried_then_dead_and_visible(db: Db) {
    let (url, received) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    let app = TestApp::spawn(db, &format!("[[notify.webhooks]]\nurl = \"{url}\"\nevents = [\"lead.created\"]\n")).await;
    let app_settings_attempts = 10;
    app.submit("contact", json!({"email": "retry@example.com"})).await;
    eventually(20, || async {
        app.get("/api/v1/outbox?status=dead").await["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    let dead = app.get("/api/v1/outbox?status=dead").await;
    let message = &dead["items"][0];
    assert_eq!(message["attempts"], app_settings_attempts);
    assert!(message["last_error"].as_str().is_some_and(|e| e.contains("500")), "{message}");
    assert_eq!(received.0.lock().expect("lock").len(), app_settings_attempts as usize, "one request per attempt");
    let ids: std::collections::BTreeSet<String> = received
        .0
        .lock()
        .expect("lock")
        .iter()
        .map(|(h, _)| h["x-leadrouter-event-id"].to_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same event id");

    let id = message["id"].as_str().expect("id");
    let r =
        app.client.post(app.url(&format!("/api/v1/outbox/{id}/retry"))).bearer_auth(ADMIN).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    eventually(5, || async { received.0.lock().expect("lock").len() > app_settings_attempts as usize }).await;
}
both!(failing_webhooks_are_retried_then_dead_and_visible);
