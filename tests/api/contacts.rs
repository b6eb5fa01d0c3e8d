//! Contacts: search, manual merge, erasure.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::support::{ADMIN, Db, TestApp, error_code};

async fn contacts_are_searched_merged_and_erased(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let a = app
        .submit("contact", json!({"name": "Ivan Petrov", "email": "ivan@example.com", "message": "secret plans"}))
        .await;
    let b = app.submit("contact", json!({"name": "I. Petrov", "phone": "+14155550132"})).await;
    let contact_a = app.lead(&a).await["contact"]["id"].as_str().expect("contact").to_owned();
    let contact_b = app.lead(&b).await["contact"]["id"].as_str().expect("contact").to_owned();

    let found = app.get("/api/v1/contacts?q=petrov").await;
    assert_eq!(found["items"].as_array().map(Vec::len), Some(2));
    let found = app.get("/api/v1/contacts?q=4155550132").await;
    assert_eq!(found["items"][0]["id"], contact_b.as_str());

    let (status, err) = app
        .send_as(ADMIN, Method::POST, &format!("/api/v1/contacts/{contact_a}/merge"), &json!({"other_id": contact_a}))
        .await;
    assert_eq!((status, error_code(&err)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid"));
    let (status, merged) = app
        .send_as(ADMIN, Method::POST, &format!("/api/v1/contacts/{contact_a}/merge"), &json!({"other_id": contact_b}))
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["identities"].as_array().map(Vec::len), Some(2));
    assert_eq!(merged["leads"].as_array().map(Vec::len), Some(2));
    let gone = app.get(&format!("/api/v1/contacts/{contact_b}")).await;
    assert_eq!(gone["merged_into"], contact_a.as_str());
    let (status, err) = app
        .send_as(ADMIN, Method::POST, &format!("/api/v1/contacts/{contact_a}/merge"), &json!({"other_id": contact_b}))
        .await;
    assert_eq!((status, error_code(&err)), (StatusCode::CONFLICT, "conflict"));
    assert_eq!(app.leads("&status=new").await.len(), 1, "one open lead per person after the merge");

    let r = app
        .client
        .delete(app.url(&format!("/api/v1/contacts/{contact_a}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let erased = app.lead(&a).await;
    assert!(erased["contact"]["name"].is_null());
    assert_eq!(erased["contact"]["identities"], json!([]));
    assert_eq!(erased["interactions"][0]["text"], "[erased]");
    assert_eq!(app.count("SELECT COUNT(*) FROM identities").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 2, "the numbers stay");
    let (status, _) = app.get_as("anna-token-for-tests-0123456789", "/api/v1/contacts").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let r = app.client.delete(app.url("/api/v1/contacts/nope")).bearer_auth(ADMIN).send().await.expect("delete");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
both!(contacts_are_searched_merged_and_erased);
