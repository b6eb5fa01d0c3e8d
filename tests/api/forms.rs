//! Website forms: formats, dedup, idempotency, bad input.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both;
use crate::support::{ADMIN, Db, TestApp, error_code};

async fn a_form_post_becomes_an_owned_lead_with_its_conversation(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let r = app
        .post_form(
            "contact",
            &json!({"name": "Ivan Petrov", "email": "Ivan.Petrov@Example.com", "phone": "+7 912 345-67-89",
                    "message": "We need 20 seats", "utm_source": "google", "utm_campaign": "spring"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().expect("location").to_owned();
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "accepted");
    let id = body["id"].as_str().expect("id");
    assert_eq!(location, format!("/api/v1/leads/{id}"));

    let lead = app.lead(id).await;
    assert_eq!(lead["status"], "new");
    assert_eq!(lead["channel"], "webform");
    assert_eq!(lead["source"]["form"], "contact");
    assert_eq!(lead["source"]["utm_source"], "google");
    assert_eq!(lead["source"]["utm_campaign"], "spring");
    assert_eq!(lead["contact"]["name"], "Ivan Petrov");
    assert_eq!(
        lead["contact"]["identities"],
        json!([{"kind": "email", "value": "ivan.petrov@example.com"}, {"kind": "phone", "value": "+79123456789"}])
    );
    assert_eq!(lead["interactions"][0]["text"], "We need 20 seats");
    assert_eq!(lead["interactions"][0]["direction"], "inbound");
    let owner = lead["owner"]["id"].as_str().expect("an owner");
    assert!(["anna", "ben", "chen"].contains(&owner));
    assert_eq!(lead["assignments"][0]["rep_id"], owner);
    assert_eq!(lead["assignments"][0]["reason"], "round_robin");
    assert!(lead["assigned_at"].as_str().is_some_and(|t| t.ends_with('Z')), "RFC 3339 UTC: {}", lead["assigned_at"]);
}
both!(a_form_post_becomes_an_owned_lead_with_its_conversation);

async fn the_same_person_in_other_formats_and_spellings_is_one_contact(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let first =
        app.submit("contact", json!({"name": "Ivan", "email": "IVAN.PETROV@example.com", "message": "hi"})).await;
    // Same email in another case, sent urlencoded.
    let r = app
        .client
        .post(app.url("/api/v1/forms/contact"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=ivan.petrov%40example.com&message=second+message")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let second: Value = r.json().await.expect("json");
    assert_eq!(second["id"], first.as_str(), "joins the open lead");

    // A phone in two spellings (international, and national for the form's US region).
    let a = app.submit("contact", json!({"name": "Mary", "phone": "+1 (415) 555-0132", "message": "call me"})).await;
    let b = app.submit("contact", json!({"phone": "415.555.0132", "message": "still waiting"})).await;
    assert_eq!(a, b);

    let lead = app.lead(&first).await;
    let texts: Vec<&str> =
        lead["interactions"].as_array().expect("timeline").iter().filter_map(|i| i["text"].as_str()).collect();
    assert_eq!(texts, ["hi", "second message"]);
    assert_eq!(app.count("SELECT COUNT(*) FROM contacts").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 2);
}
both!(the_same_person_in_other_formats_and_spellings_is_one_contact);

async fn an_inquiry_linking_two_contacts_merges_them_into_the_oldest(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let by_email = app.submit("contact", json!({"name": "Ivan", "email": "ivan@example.com", "message": "one"})).await;
    let by_phone = app.submit("contact", json!({"phone": "+14155550132", "message": "two"})).await;
    assert_ne!(by_email, by_phone);
    let older = app.lead(&by_email).await["contact"]["id"].as_str().expect("contact").to_owned();

    let both = app
        .submit("contact", json!({"email": "ivan@example.com", "phone": "(415) 555-0132", "message": "three"}))
        .await;
    assert_eq!(both, by_email, "the message joins the oldest contact's open lead");
    // Both contacts have owners and a form is anyone's to post: the merge waits for review.
    assert_eq!(app.count("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL").await, 2);
    let reviews = app.get("/api/v1/merge-reviews").await;
    let review = reviews["items"][0]["id"].as_str().expect("a pending review").to_owned();
    let (status, body) =
        app.send_as(ADMIN, reqwest::Method::POST, &format!("/api/v1/merge-reviews/{review}/confirm"), &json!({})).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("merged")), "{body}");

    let lead = app.lead(&by_email).await;
    assert_eq!(lead["contact"]["id"], older.as_str());
    assert_eq!(lead["contact"]["identities"].as_array().map(Vec::len), Some(2));
    let texts: Vec<&str> =
        lead["interactions"].as_array().expect("timeline").iter().filter_map(|i| i["text"].as_str()).collect();
    assert_eq!(texts, ["one", "two", "three"], "the folded lead's messages moved over");

    let folded = app.lead(&by_phone).await;
    assert_eq!(folded["merged_into"], by_email.as_str(), "recorded as what it is: merged");
    assert_eq!(folded["status"], "new", "not lost");
    assert!(folded["lost_reason"].is_null() && folded["closed_at"].is_string());
    assert_eq!(app.count("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM contact_merges").await, 1);
    // The folded lead's owner got their capacity back.
    let reps = app.get("/api/v1/reps").await;
    let open: i64 = reps["items"].as_array().expect("reps").iter().filter_map(|r| r["open_leads"].as_i64()).sum();
    assert_eq!(open, 1);
}
both!(an_inquiry_linking_two_contacts_merges_them_into_the_oldest);

async fn redelivery_is_a_no_op(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let post = |key: &'static str| {
        app.client
            .post(app.url("/api/v1/forms/contact"))
            .header("idempotency-key", key)
            .json(&json!({"email": "x@example.com", "message": "once"}))
            .send()
    };
    let first: Value = post("abc-1").await.expect("post").json().await.expect("json");
    let again: Value = post("abc-1").await.expect("post").json().await.expect("json");
    assert_eq!(first["duplicate"], false);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], first["id"]);

    // Without any key, the same body twice inside the window is one submission too.
    let body = json!({"email": "double@example.com", "message": "double click"});
    let a: Value = app.post_form("contact", &body).await.json().await.expect("json");
    let b: Value = app.post_form("contact", &body).await.json().await.expect("json");
    assert_eq!((a["duplicate"].clone(), b["duplicate"].clone()), (json!(false), json!(true)));
    assert_eq!(app.count("SELECT COUNT(*) FROM interactions").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM inbound_items").await, 2);
}
both!(redelivery_is_a_no_op);

async fn bad_input_gets_a_clear_error_and_changes_nothing(db: Db) {
    let app = TestApp::spawn(
        db,
        r#"
        [[forms]]
        id = "signed"
        secret = "s3cret"
        "#,
    )
    .await;
    let form = |path: &str| app.client.post(app.url(path));
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str, &str)> = vec![
        (form("/api/v1/forms/nope").json(&json!({"email": "a@b.co"})), StatusCode::NOT_FOUND, "not_found", "form"),
        (
            form("/api/v1/forms/contact").json(&json!({"name": "No Contact", "message": "hi"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_contact",
            "no email and no phone",
        ),
        (
            form("/api/v1/forms/contact").json(&json!({"email": "not-an-email", "phone": "12"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_contact",
            "`12` is not a valid phone number",
        ),
        (
            form("/api/v1/forms/contact").header("content-type", "application/json").body("{\"email\": "),
            StatusCode::BAD_REQUEST,
            "malformed_body",
            "JSON",
        ),
        (
            form("/api/v1/forms/contact").header("content-type", "application/json").body("[1,2]"),
            StatusCode::BAD_REQUEST,
            "malformed_body",
            "object",
        ),
        (
            form("/api/v1/forms/contact").header("content-type", "text/plain").body("email=a@b.co"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "text/plain",
        ),
        (
            form("/api/v1/forms/contact").header("content-type", "multipart/form-data; boundary=xyz").body("garbage"),
            StatusCode::BAD_REQUEST,
            "malformed_body",
            "multipart",
        ),
        (
            form("/api/v1/forms/signed").json(&json!({"email": "a@b.co"})),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "secret",
        ),
        (
            form("/api/v1/forms/signed").header("x-leadrouter-secret", "wrong").json(&json!({"email": "a@b.co"})),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "does not match",
        ),
        (
            form("/api/v1/forms/contact").header("idempotency-key", "").json(&json!({"email": "a@b.co"})),
            StatusCode::BAD_REQUEST,
            "bad_header",
            "Idempotency-Key",
        ),
    ];
    for (request, status, code, needle) in cases {
        let r = request.send().await.expect("request");
        assert_eq!(r.status(), status);
        let body: Value = r.json().await.expect("JSON error body");
        assert_eq!(error_code(&body), code, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{message:?} should mention {needle:?}");
    }
    for count in [
        "SELECT COUNT(*) FROM leads",
        "SELECT COUNT(*) FROM contacts",
        "SELECT COUNT(*) FROM inbound_items",
        "SELECT COUNT(*) FROM events",
    ] {
        assert_eq!(app.count(count).await, 0, "{count}");
    }
    // The right secret gets in.
    let r = form("/api/v1/forms/signed")
        .header("x-leadrouter-secret", "s3cret")
        .json(&json!({"email": "a@b.co"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}
both!(bad_input_gets_a_clear_error_and_changes_nothing);

async fn bots_get_a_success_and_no_lead(db: Db) {
    let app = TestApp::spawn(db, "[[forms]]\nid = \"trap\"\nhoneypot = \"website\"\n").await;
    let r =
        app.post_form("trap", &json!({"email": "bot@spam.example.com", "website": "http://spam.example.com"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "accepted");
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 0);
    // A person leaves it empty.
    app.submit("trap", json!({"email": "human@example.com", "website": ""})).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 1);
}
both!(bots_get_a_success_and_no_lead);

#[tokio::test]
async fn browser_posts_are_redirected_and_cors_follows_allowed_origins() {
    let app = TestApp::spawn(
        Db::Sqlite,
        r#"
        [[forms]]
        id = "site"
        redirect_to = "https://example.com/thanks"
        allowed_origins = ["https://example.com"]
        "#,
    )
    .await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let r = client
        .post(app.url("/api/v1/forms/site"))
        .header("accept", "text/html,application/xhtml+xml")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=Ana&email=ana%40example.com")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "https://example.com/thanks");
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 1);

    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/forms/site"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok = preflight("https://example.com").await.expect("preflight");
    assert_eq!(
        ok.headers().get("access-control-allow-origin").map(|v| v.as_bytes()),
        Some(&b"https://example.com"[..])
    );
    let other = preflight("https://evil.example.net").await.expect("preflight");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn each_client_ip_is_rate_limited_with_a_json_429() {
    let app = TestApp::spawn(Db::Sqlite, "[server]\nform_rate_per_second = 1\nform_rate_burst = 3\n").await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let r = app.post_form("contact", &json!({"email": format!("r{i}@example.com")})).await;
        statuses.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key("retry-after"));
            let body: Value = r.json().await.expect("json");
            assert_eq!(error_code(&body), "rate_limited");
        }
    }
    assert_eq!(&statuses[..3], &[StatusCode::ACCEPTED; 3]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 3);
    let _ = ADMIN;
}
