//! The leads API: scope, lifecycle, pagination, search, API intake, errors.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::support::{ADMIN, Db, TestApp, error_code};

async fn a_rep_token_sees_and_changes_only_that_reps_leads(db: Db) {
    let app = TestApp::spawn(db, "").await;
    for i in 0..6 {
        app.submit("contact", json!({"email": format!("s{i}@example.com")})).await;
    }
    let (status, mine) = app.get_as("anna-token-for-tests-0123456789", "/api/v1/leads").await;
    assert_eq!(status, StatusCode::OK);
    let mine = mine["items"].as_array().expect("items").clone();
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|l| l["owner"]["id"] == "anna"));
    // Asking for someone else's leads still yields only her own.
    let (_, filtered) = app.get_as("anna-token-for-tests-0123456789", "/api/v1/leads?owner=ben").await;
    assert!(filtered["items"].as_array().expect("items").iter().all(|l| l["owner"]["id"] == "anna"));

    let bens = app.leads("&owner=ben").await;
    let ben_lead = bens[0]["id"].as_str().expect("id");
    let (status, body) = app.get_as("anna-token-for-tests-0123456789", &format!("/api/v1/leads/{ben_lead}")).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, _) = app
        .send_as(
            "anna-token-for-tests-0123456789",
            Method::PATCH,
            &format!("/api/v1/leads/{ben_lead}"),
            &json!({"status": "won"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.lead(ben_lead).await["status"], "new", "unchanged");

    let anna_lead = mine[0]["id"].as_str().expect("id");
    let (status, lead) = app
        .send_as(
            "anna-token-for-tests-0123456789",
            Method::PATCH,
            &format!("/api/v1/leads/{anna_lead}"),
            &json!({"status": "qualification", "next_action_at": "2030-01-02T09:00:00Z"}),
        )
        .await;
    assert_eq!((status, lead["status"].as_str()), (StatusCode::OK, Some("qualification")));
    let (status, body) = app
        .send_as(
            "anna-token-for-tests-0123456789",
            Method::PATCH,
            &format!("/api/v1/leads/{anna_lead}"),
            &json!({"owner": "ben"}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = app.get_as("anna-token-for-tests-0123456789", "/api/v1/reps").await;
    assert_eq!((status, error_code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = app.get_as("nobody", "/api/v1/leads").await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let r = app.client.get(app.url("/api/v1/leads")).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
both!(a_rep_token_sees_and_changes_only_that_reps_leads);

async fn status_rules_closing_and_reopening(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let id = app.submit("contact", json!({"email": "deal@example.com", "message": "quote please"})).await;
    let path = format!("/api/v1/leads/{id}");

    for (body, needle) in [
        (json!({"status": "lost"}), "needs a `lost_reason`"),
        (json!({"status": "won", "lost_reason": "price"}), "only be set together with status `lost`"),
        (json!({"status": "closed"}), "unknown status"),
        (json!({"next_action_at": "tomorrow"}), "RFC 3339"),
        (json!({"stauts": "won"}), "unknown field"),
        (json!({"owner": "ghost"}), "not a rep"),
        (json!({"status": "qualification"}), "needs a `next_action_at`"),
        (json!({"status": "lost", "lost_reason": "price"}), "not one of the configured reasons: too expensive"),
        (json!({"status": "lost", "lost_reason": "other"}), "needs a `lost_note`"),
    ] {
        let (status, err) = app.patch(&path, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert!(err["error"]["message"].as_str().is_some_and(|m| m.contains(needle)), "{body}: {err}");
    }
    assert_eq!(app.lead(&id).await["status"], "new");

    let (_, lead) = app.patch(&path, json!({"status": "proposal_sent", "next_action_at": "2030-01-02T09:00:00Z", "next_action_note": "call back"})).await;
    assert_eq!(lead["status"], "proposal_sent");
    assert_eq!(lead["next_action_at"], "2030-01-02T09:00:00Z");
    assert_eq!(lead["next_action_note"], "call back");

    let (status, lead) = app.patch(&path, json!({"status": "lost", "lost_reason": "too expensive"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lead["lost_reason"], "too expensive");
    assert!(lead["closed_at"].is_string());
    let owner = lead["owner"]["id"].as_str().expect("owner").to_owned();
    let reps = app.get("/api/v1/reps").await;
    let rep = reps["items"].as_array().expect("reps").iter().find(|r| r["id"] == owner.as_str()).expect("rep").clone();
    assert_eq!(rep["open_leads"], 0, "closing frees the owner's capacity");

    // A new inquiry from the same person opens a new lead: the closed one stays closed.
    let newer = app.submit("contact", json!({"email": "deal@example.com", "message": "changed my mind"})).await;
    assert_ne!(newer, id);
    let (status, err) = app.patch(&path, json!({"status": "qualification"})).await;
    assert_eq!((status, error_code(&err)), (StatusCode::CONFLICT, "conflict"), "two open leads for one person");
    let (status, dup) = app
        .patch(
            &format!("/api/v1/leads/{newer}"),
            json!({"status": "lost", "lost_reason": "Other", "lost_note": "asked twice"}),
        )
        .await;
    assert_eq!(
        (status, &dup["lost_reason"], &dup["lost_note"]),
        (StatusCode::OK, &json!("other"), &json!("asked twice"))
    );
    let (status, lead) = app.patch(&path, json!({"status": "qualification"})).await;
    assert_eq!(status, StatusCode::OK, "{lead}");
    assert!(lead["closed_at"].is_null() && lead["lost_reason"].is_null());

    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT data FROM events WHERE type = 'lead.status_changed' ORDER BY at")
            .fetch_all(&app.store().reader_pool())
            .await
            .expect("events");
    assert!(statuses.len() >= 4, "every status change is an event: {statuses:?}");
}
both!(status_rules_closing_and_reopening);

async fn notes_and_logged_touches_build_the_timeline(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let id = app.submit("contact", json!({"email": "timeline@example.com", "message": "first"})).await;
    let owner = app.lead(&id).await["owner"]["id"].as_str().expect("owner").to_owned();
    let token = format!("{owner}-token-for-tests-0123456789");
    let (status, lead) = app
        .send_as(&token, Method::POST, &format!("/api/v1/leads/{id}/notes"), &json!({"text": "budget confirmed"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(lead["first_response_at"].is_null(), "an internal note is not a response");
    let (_, lead) = app
        .send_as(
            &token,
            Method::POST,
            &format!("/api/v1/leads/{id}/notes"),
            &json!({"text": "called, left voicemail", "kind": "call"}),
        )
        .await;
    assert!(lead["first_response_at"].is_string());
    let timeline: Vec<(String, String)> = lead["interactions"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|i| (i["direction"].as_str().unwrap_or("").to_owned(), i["text"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(
        timeline,
        [
            ("inbound".into(), "first".into()),
            ("internal".into(), "budget confirmed".into()),
            ("outbound".into(), "called, left voicemail".into())
        ]
    );
    let (status, err) =
        app.send_as(ADMIN, Method::POST, &format!("/api/v1/leads/{id}/notes"), &json!({"text": "  "})).await;
    assert_eq!((status, error_code(&err)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid"));
}
both!(notes_and_logged_touches_build_the_timeline);

async fn lists_filter_search_and_page(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            app.submit("contact", json!({"name": format!("Person {i}"), "email": format!("list{i}@example.com")}))
                .await,
        );
    }
    app.submit("contact", json!({"name": "Olga Smirnova", "phone": "+1 415 555 0199"})).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/leads?limit=3&cursor={c}"),
            None => "/api/v1/leads?limit=3".into(),
        };
        let page = app.get(&q).await;
        seen.extend(page["items"].as_array().expect("items").iter().map(|l| l["id"].as_str().unwrap_or("").to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "every lead exactly once across pages");
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 8);

    assert_eq!(app.leads("&q=olga").await.len(), 1, "by name, any case");
    assert_eq!(app.leads("&q=415555").await.len(), 1, "by phone digits");
    assert_eq!(app.leads("&q=%2B1%20415%20555%200199").await.len(), 1, "by the phone as typed");
    assert_eq!(app.leads("&q=list3%40example").await.len(), 1, "by email");
    assert_eq!(app.leads("&channel=webform").await.len(), 8);
    assert_eq!(app.leads("&channel=telegram").await.len(), 0);

    app.patch(&format!("/api/v1/leads/{}", ids[0]), json!({"next_action_at": "2001-01-01T00:00:00Z"})).await;
    app.patch(&format!("/api/v1/leads/{}", ids[1]), json!({"next_action_at": "2999-01-01T00:00:00Z"})).await;
    let overdue = app.leads("&overdue=true").await;
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0]["id"], ids[0].as_str());

    // One person with two leads: each list entry carries the person's identities.
    app.patch(&format!("/api/v1/leads/{}", ids[2]), json!({"status": "won"})).await;
    app.submit("contact", json!({"email": "list2@example.com", "message": "again"})).await;
    let both = app.leads("&q=list2%40example").await;
    assert_eq!(both.len(), 2);
    assert!(both.iter().all(|l| l["contact"]["identities"][0]["value"] == "list2@example.com"), "{both:?}");

    for bad in
        ["/api/v1/leads?status=closed", "/api/v1/leads?limit=0", "/api/v1/leads?limit=abc", "/api/v1/leads?channel=fax"]
    {
        let (status, body) = app.get_as(ADMIN, bad).await;
        assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "bad_query"), "{bad}");
    }
}
both!(lists_filter_search_and_page);

async fn leads_created_through_the_api_take_the_same_path(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let body = json!({"name": "Api Person", "email": "api@example.com", "phone": "030 901820", "default_region": "DE",
                      "message": "from our CRM", "utm_source": "crm", "custom_fields": {"deal_size": 5000}});
    let (status, lead) = app.send_as(ADMIN, Method::POST, "/api/v1/leads", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{lead}");
    assert_eq!(lead["channel"], "api");
    assert_eq!(lead["custom_fields"]["deal_size"], 5000);
    assert!(lead["owner"]["id"].is_string());
    assert_eq!(lead["contact"]["identities"][1]["value"], "+4930901820");

    let keyed = |key: &'static str| {
        app.client
            .post(app.url("/api/v1/leads"))
            .bearer_auth(ADMIN)
            .header("idempotency-key", key)
            .json(&json!({"email": "k@example.com"}))
            .send()
    };
    assert_eq!(keyed("k1").await.expect("post").status(), StatusCode::CREATED);
    assert_eq!(keyed("k1").await.expect("post").status(), StatusCode::OK);

    for (body, status, code) in [
        (json!({"name": "Nobody"}), StatusCode::UNPROCESSABLE_ENTITY, "no_contact"),
        (json!({"email": "nope"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        (json!({"email": "a@b.co", "extra": 1}), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        (json!({"email": "a@b.co", "default_region": "XX"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
    ] {
        let (got, err) = app.send_as(ADMIN, Method::POST, "/api/v1/leads", &body).await;
        assert_eq!((got, error_code(&err)), (status, code), "{body}");
    }
    let r = app.client.post(app.url("/api/v1/leads")).bearer_auth(ADMIN).body("{}").send().await.expect("post");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = app
        .client
        .post(app.url("/api/v1/leads"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (status, _) = app
        .send_as("anna-token-for-tests-0123456789", Method::POST, "/api/v1/leads", &json!({"email": "rep@example.com"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 2);
}
both!(leads_created_through_the_api_take_the_same_path);

#[tokio::test]
async fn unknown_routes_methods_and_the_openapi_document() {
    let app = TestApp::spawn(Db::Sqlite, "").await;
    let r = app.client.get(app.url("/api/v1/nothing")).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(&r.json::<Value>().await.expect("json")), "not_found");
    let r = app.client.delete(app.url("/api/v1/leads")).send().await.expect("delete");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&r.json::<Value>().await.expect("json")), "method_not_allowed");

    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.expect("get").json().await.expect("json");
    for path in [
        "/api/v1/forms/{form_id}",
        "/api/v1/leads",
        "/api/v1/leads/{id}",
        "/api/v1/leads/{id}/notes",
        "/api/v1/contacts",
        "/api/v1/contacts/{id}/merge",
        "/api/v1/reps",
        "/api/v1/reps/{id}",
        "/api/v1/stats/summary",
        "/healthz",
        "/readyz",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    assert!(doc["components"]["schemas"]["LeadView"].is_object());
    assert_eq!(app.client.get(app.url("/healthz")).send().await.expect("get").status(), StatusCode::OK);
    assert_eq!(app.client.get(app.url("/readyz")).send().await.expect("get").status(), StatusCode::OK);
    let id = app.submit("contact", json!({"email": "m@example.com"})).await;
    assert!(!id.is_empty());
    let metrics = app.client.get(app.url("/metrics")).send().await.expect("get").text().await.expect("text");
    assert!(metrics.contains("leadrouter_inquiries_total"), "{metrics}");
}

async fn the_summary_counts_what_happened(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let a = app.submit("contact", json!({"email": "s1@example.com", "utm_source": "google"})).await;
    let b = app.submit("contact", json!({"email": "s2@example.com", "utm_source": "google"})).await;
    app.submit("contact", json!({"email": "s3@example.com"})).await;
    app.patch(&format!("/api/v1/leads/{a}"), json!({"status": "won"})).await;
    app.patch(&format!("/api/v1/leads/{b}"), json!({"status": "lost", "lost_reason": "too expensive"})).await;
    let s = app.get("/api/v1/stats/summary").await;
    assert_eq!(s["leads"]["total"], 3);
    assert_eq!(s["leads"]["by_channel"]["webform"], 3);
    assert_eq!(s["leads"]["by_source"]["google"], 2);
    assert_eq!(s["leads"]["by_source"]["form:contact"], 1);
    assert_eq!(s["funnel"]["won"], 1);
    assert_eq!(s["funnel"]["new"], 3, "every lead reached new");
    assert_eq!(s["status_now"]["new"], 1);
    assert_eq!(s["lost_reasons"]["too expensive"], 1);
    assert_eq!(s["unassigned"], 0);
    let won: i64 = s["reps"].as_array().expect("reps").iter().filter_map(|r| r["won"].as_i64()).sum();
    assert_eq!(won, 1);
    let (status, _) = app.get_as(ADMIN, "/api/v1/stats/summary?from=2030-01-01&to=2029-01-01").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
both!(the_summary_counts_what_happened);

async fn history_tasks_and_handing_a_lead_over(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let id = app.submit("contact", json!({"email": "plan@example.com", "name": "Pavel"})).await;
    let path = format!("/api/v1/leads/{id}");
    let owner = app.lead(&id).await["owner"]["id"].as_str().expect("owner").to_owned();
    let token = format!("{owner}-token-for-tests-0123456789");

    // Every status change is kept: who, when, from, to.
    let (status, _) = app
        .send_as(
            &token,
            Method::PATCH,
            &path,
            &json!({"status": "qualification", "next_action_at": "2030-01-02T09:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.patch(&path, json!({"status": "proposal_sent"})).await;
    let lead = app.lead(&id).await;
    let changes: Vec<(&str, &str, &str)> = lead["status_changes"]
        .as_array()
        .expect("status_changes")
        .iter()
        .map(|c| (c["from"].as_str().unwrap_or(""), c["to"].as_str().unwrap_or(""), c["actor"].as_str().unwrap_or("")))
        .collect();
    let by_owner = format!("rep:{owner}");
    assert_eq!(changes, [("new", "qualification", by_owner.as_str()), ("qualification", "proposal_sent", "admin")]);

    // Tasks: the owner adds and completes them; another rep does not even see the lead's.
    let (status, task) = app
        .send_as(
            &token,
            Method::POST,
            &format!("{path}/tasks"),
            &json!({"title": " Send the contract ", "due_at": "2030-01-03T10:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(
        (&task["title"], &task["due_at"], &task["done_at"]),
        (&json!("Send the contract"), &json!("2030-01-03T10:00:00Z"), &Value::Null)
    );
    let task_path = format!("{path}/tasks/{}", task["id"].as_str().expect("id"));
    let other = if owner == "anna" { "ben-token-for-tests-0123456789" } else { "anna-token-for-tests-0123456789" };
    let (status, _) = app.send_as(other, Method::PATCH, &task_path, &json!({"done": true})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, done) = app.send_as(&token, Method::PATCH, &task_path, &json!({"done": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(done["done_at"].is_string());
    for bad in [json!({"title": ""}), json!({"title": "x", "due_at": "soon"}), json!({"title": "x", "owner": "ben"})] {
        let (status, _) = app.send_as(&token, Method::POST, &format!("{path}/tasks"), &bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let (status, _) = app.send_as(&token, Method::PATCH, &format!("{path}/tasks/nope"), &json!({"done": true})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.lead(&id).await["tasks"].as_array().map(Vec::len), Some(1));

    // Handing over with a reason: the assignment's event keeps it, and the rep it leaves hears.
    let next = if owner == "anna" { "ben" } else { "anna" };
    let (status, lead) = app.patch(&path, json!({"owner": next, "reassign_note": "Ben speaks Polish"})).await;
    assert_eq!((status, lead["owner"]["id"].as_str()), (StatusCode::OK, Some(next)));
    let events: Vec<String> = sqlx::query_scalar("SELECT data FROM events WHERE lead_id = $1 ORDER BY at, type")
        .bind(&id)
        .fetch_all(&app.store().reader_pool())
        .await
        .expect("events");
    let events: Vec<Value> = events.iter().map(|e| serde_json::from_str(e).expect("json")).collect();
    let assigned = events.iter().rfind(|e| e["type"] == "lead.assigned").expect("assigned");
    assert_eq!(
        (&assigned["data"]["reason"], &assigned["data"]["note"]),
        (&json!("manual"), &json!("Ben speaks Polish"))
    );
    let left = events.iter().find(|e| e["type"] == "lead.reassigned_away").expect("the previous owner's event");
    assert_eq!(left["data"]["rep"], owner.as_str());
    assert!(
        left["data"]["alert"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Pavel was handed over to") && t.ends_with(": Ben speaks Polish")),
        "{left}"
    );
    let (status, _) = app.patch(&path, json!({"reassign_note": "no owner given"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
both!(history_tasks_and_handing_a_lead_over);
