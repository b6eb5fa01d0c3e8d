//! The web dashboard at `/app`: sign-in, sessions, CSRF, a rep's scope, the lead card's forms,
//! over plain HTTP on both backends; then the real thing in headless Chromium, with
//! screenshots saved under `<target>/test-artefacts/dashboard/`.

use std::path::PathBuf;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::both;
use crate::support::{ADMIN, Db, TestApp};
use crate::webdriver::{Browser, browser_binaries};

/// A browser-like client: no redirects followed, one session cookie.
pub(crate) struct Web<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    pub cookie: Option<String>,
}

pub(crate) struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub body: String,
}

impl<'a> Web<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Web { app, http, cookie: None }
    }

    async fn page(r: reqwest::RequestBuilder) -> Page {
        let r = r.send().await.expect("request");
        let header = |name| {
            r.headers().get(name).and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok()).map(str::to_owned)
        };
        let (location, set_cookie) = (header(LOCATION), header(SET_COOKIE));
        Page { status: r.status(), location, set_cookie, body: r.text().await.expect("body") }
    }

    pub(crate) async fn get(&self, path: &str) -> Page {
        let mut r = self.http.get(self.app.url(path));
        if let Some(c) = &self.cookie {
            r = r.header(COOKIE, format!("lr_session={c}"));
        }
        Self::page(r).await
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut r = self.http.post(self.app.url(path)).form(form);
        if let Some(c) = &self.cookie {
            r = r.header(COOKIE, format!("lr_session={c}"));
        }
        Self::page(r).await
    }

    /// Posts the sign-in form as a browser does: after opening it, with the token of the form
    /// and the `lr_login` cookie it set.
    pub(crate) async fn login_form(&mut self, form: &[(&str, &str)]) -> Page {
        let page = self.get("/app/login").await;
        let nonce = page.set_cookie.as_deref().and_then(|c| cookie_in(c, "lr_login")).expect("lr_login cookie");
        let csrf = field_in(&page.body, "login_csrf");
        let mut fields = form.to_vec();
        fields.push(("login_csrf", &csrf));
        let r = self.http.post(self.app.url("/app/login")).form(&fields).header(COOKIE, format!("lr_login={nonce}"));
        let page = Self::page(r).await;
        if let Some(value) = page.set_cookie.as_deref().and_then(|c| cookie_in(c, "lr_session")) {
            self.cookie = Some(value);
        }
        page
    }

    /// Signs in; returns the response to the sign-in post.
    pub(crate) async fn login(&mut self, token: &str) -> Page {
        self.login_form(&[("token", token)]).await
    }

    /// The CSRF token the forms of `path` carry.
    pub(crate) async fn csrf(&self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        csrf_in(&page.body)
    }
}

fn csrf_in(html: &str) -> String {
    field_in(html, "csrf")
}

/// The value of the hidden field `name` in a page.
pub(crate) fn field_in(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker).unwrap_or_else(|| panic!("a form with a {name} field")) + marker.len();
    html[start..].split('"').next().expect("field value").to_owned()
}

/// The value a `Set-Cookie` header gives `name`, if it is that cookie's header.
pub(crate) fn cookie_in(set_cookie: &str, name: &str) -> Option<String> {
    set_cookie.split(';').next()?.strip_prefix(&format!("{name}=")).map(str::to_owned)
}

async fn signing_in_and_out(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let mut web = Web::new(&app);

    let page = web.get("/app").await;
    assert_eq!((page.status, page.location.as_deref()), (StatusCode::SEE_OTHER, Some("/app/login")));
    let page = web.get("/app/leads/anything").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "every page needs a session");
    // A lead opened from a notification's link is where signing in leads back to.
    assert_eq!(page.location.as_deref(), Some("/app/login?next=%2Fapp%2Fleads%2Fanything"));
    let form = web.get("/app/login?next=%2Fapp%2Fleads%2Fanything").await;
    assert!(form.body.contains(r#"name="next" value="/app/leads/anything""#), "{}", form.body);
    let form = web.get("/app/login").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains(r#"<label for="token">"#) && form.body.contains(r#"name="token""#));

    let wrong = web.login("not-a-token").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.set_cookie.as_deref().and_then(|c| cookie_in(c, "lr_session")).is_none(), "no session cookie");
    assert!(wrong.body.contains(r#"role="alert""#) && wrong.body.contains("not valid"));
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0, "a wrong token changes nothing");

    for (next, back) in
        [("/app/leads/x1", "/app/leads/x1"), ("https://evil.example/", "/app"), ("//evil.example", "/app")]
    {
        let signed_in = web.login_form(&[("token", ADMIN), ("next", next)]).await;
        assert_eq!((signed_in.status, signed_in.location.as_deref()), (StatusCode::SEE_OTHER, Some(back)), "{next}");
    }
    sqlx::query("DELETE FROM sessions").execute(&app.store().reader_pool()).await.expect("sign the tries out");
    let ok = web.login(ADMIN).await;
    assert_eq!((ok.status, ok.location.as_deref()), (StatusCode::SEE_OTHER, Some("/app")));
    let cookie = ok.set_cookie.expect("cookie");
    for part in ["HttpOnly", "SameSite=Lax", "Path=/app"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(!cookie.contains("Secure"), "public_url is http here");
    let id = web.cookie.clone().expect("session id");
    assert_eq!(id.len(), 64);
    let stored: String = sqlx::query_scalar("SELECT id_hash FROM sessions")
        .fetch_one(&app.store().reader_pool())
        .await
        .expect("session row");
    assert_ne!(stored, id, "only a hash of the session id is stored");

    let inbox = web.get("/app").await;
    assert_eq!(inbox.status, StatusCode::OK);
    assert!(inbox.body.contains("<h1>Inbox</h1>") && inbox.body.contains(r#"aria-current="page""#));
    assert!(inbox.body.contains(r#"name="viewport""#) && inbox.body.contains(r#"class="skip""#));

    // Signing out needs the form's token too.
    let refused = web.post("/app/logout", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(web.get("/app").await.status, StatusCode::OK, "still signed in");
    let csrf = csrf_in(&inbox.body);
    let out = web.post("/app/logout", &[("csrf", &csrf)]).await;
    assert_eq!((out.status, out.location.as_deref()), (StatusCode::SEE_OTHER, Some("/app/login")));
    assert!(out.set_cookie.is_some_and(|c| c.contains("Max-Age=0")));
    assert_eq!(web.get("/app").await.status, StatusCode::SEE_OTHER, "the old cookie no longer works");
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);

    // A made-up cookie is no session either.
    web.cookie = Some("ab".repeat(32));
    assert_eq!(web.get("/app").await.status, StatusCode::SEE_OTHER);

    // Assets are served with a long cache lifetime.
    let css = app.client.get(app.url("/app/static/app.css")).send().await.expect("css");
    assert_eq!(css.status(), StatusCode::OK);
    assert!(css.headers()["cache-control"].to_str().expect("header").contains("immutable"));
}
both!(signing_in_and_out);

async fn a_rep_sees_only_their_own_leads(db: Db) {
    let app = TestApp::spawn(db, "").await;
    for i in 0..6 {
        app.submit("contact", json!({"name": format!("Person {i}"), "email": format!("p{i}@example.com")})).await;
    }
    let leads = app.leads("").await;
    let mut web = Web::new(&app);
    assert_eq!(web.login("anna-token-for-tests-0123456789").await.status, StatusCode::SEE_OTHER);
    let inbox = web.get("/app").await;
    assert_eq!(inbox.status, StatusCode::OK);
    for lead in &leads {
        let id = lead["id"].as_str().expect("id");
        let mine = lead["owner"]["id"] == "anna";
        assert_eq!(inbox.body.contains(&format!("/app/leads/{id}")), mine, "lead {id} owned by {}", lead["owner"]);
    }
    // Asking for someone else's leads still shows only her own.
    let filtered = web.get("/app?owner=ben").await;
    assert_eq!(filtered.status, StatusCode::OK);
    for lead in &leads {
        let id = lead["id"].as_str().expect("id");
        let mine = lead["owner"]["id"] == "anna";
        assert_eq!(filtered.body.contains(&format!("/app/leads/{id}")), mine, "owner=ben, lead {id}");
    }

    let bens = leads.iter().find(|l| l["owner"]["id"] == "ben").expect("a lead of ben's");
    let ben_id = bens["id"].as_str().expect("id");
    assert_eq!(web.get(&format!("/app/leads/{ben_id}")).await.status, StatusCode::NOT_FOUND);
    let csrf = csrf_in(&inbox.body);
    let moved = web.post(&format!("/app/leads/{ben_id}/status"), &[("csrf", &csrf), ("status", "won")]).await;
    assert_eq!(moved.status, StatusCode::NOT_FOUND);
    assert_eq!(app.lead(ben_id).await["status"], "new", "unchanged");

    let annas = leads.iter().find(|l| l["owner"]["id"] == "anna").expect("a lead of anna's");
    let anna_id = annas["id"].as_str().expect("id");
    let card = web.get(&format!("/app/leads/{anna_id}")).await;
    assert_eq!(card.status, StatusCode::OK);
    assert!(!card.body.contains("/reassign"), "no reassign form for a rep");
    let reassign = web.post(&format!("/app/leads/{anna_id}/reassign"), &[("csrf", &csrf), ("owner", "ben")]).await;
    assert_eq!(reassign.status, StatusCode::FORBIDDEN);
    assert_eq!(app.lead(anna_id).await["owner"]["id"], "anna");
    assert_eq!(web.get("/app/analytics").await.status, StatusCode::FORBIDDEN, "analytics is for admins");
    assert!(!inbox.body.contains(r#"href="/app/analytics""#));
    let reps = web.get("/app/reps").await;
    assert_eq!(reps.status, StatusCode::OK);
    assert!(!reps.body.contains("/active\""), "a rep only looks");
    let refused = web.post("/app/reps/ben/active", &[("csrf", &csrf), ("active", "false")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let board = web.get("/app/board").await;
    assert_eq!(board.status, StatusCode::OK);
    assert!(!board.body.contains(&format!("/app/leads/{ben_id}")));
}
both!(a_rep_sees_only_their_own_leads);

async fn lead_card_forms_change_the_lead(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let id =
        app.submit("contact", json!({"name": "Ivan Petrov", "email": "ivan@example.com", "message": "20 seats"})).await;
    let mut web = Web::new(&app);
    web.login(ADMIN).await;
    let card = format!("/app/leads/{id}");
    let csrf = web.csrf(&card).await;

    // Without (or with a wrong) CSRF token: 403, nothing changed.
    let next = [("status", "qualification"), ("next_action_at", "2030-01-02T09:30")];
    assert_eq!(web.post(&format!("{card}/status"), &next).await.status, StatusCode::FORBIDDEN);
    let mut forged = next.to_vec();
    forged.push(("csrf", "0000"));
    assert_eq!(web.post(&format!("{card}/status"), &forged).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.lead(&id).await["status"], "new");

    // Broken rules: the card again, with the pipeline's message, 422, nothing changed.
    for (form, needle) in [
        (vec![("status", "qualification")], "needs a `next_action_at`"),
        (vec![("status", "lost"), ("lost_reason", "price")], "not one of the configured reasons"),
        (vec![("status", "lost"), ("lost_reason", "other")], "needs a `lost_note`"),
        (vec![("status", "qualification"), ("next_action_at", "soon")], "must be a date and time"),
    ] {
        let mut form = form;
        form.push(("csrf", &csrf));
        let page = web.post(&format!("{card}/status"), &form).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{form:?}");
        assert!(page.body.contains(r#"role="alert""#) && page.body.contains(needle), "{form:?}: {}", page.body);
        assert!(page.body.contains("<h1>Ivan Petrov"), "the card is shown again");
    }
    assert_eq!(app.lead(&id).await["status"], "new");

    let mut ok = next.to_vec();
    ok.push(("csrf", &csrf));
    ok.push(("next_action_note", "call back"));
    let done = web.post(&format!("{card}/status"), &ok).await;
    assert_eq!(
        (done.status, done.location.as_deref()),
        (StatusCode::SEE_OTHER, Some(format!("{card}?saved=status").as_str()))
    );
    let lead = app.lead(&id).await;
    assert_eq!(
        (lead["status"].as_str(), lead["next_action_at"].as_str()),
        (Some("qualification"), Some("2030-01-02T09:30:00Z"))
    );
    assert_eq!(lead["next_action_note"], "call back");
    let shown = web.get(&format!("{card}?saved=status")).await;
    assert!(shown.body.contains(r#"data-status="qualification""#) && shown.body.contains("Status changed."));
    assert!(shown.body.contains("Status: New → Qualification"), "the change is on the timeline");

    let note =
        web.post(&format!("{card}/notes"), &[("csrf", &csrf), ("kind", "call"), ("text", "Called <b>him</b>")]).await;
    assert_eq!(note.status, StatusCode::SEE_OTHER);
    let lead = app.lead(&id).await;
    assert!(lead["interactions"].as_array().expect("timeline").iter().any(|i| i["text"] == "Called <b>him</b>"));
    assert!(lead["first_response_at"].is_string(), "a logged call is a response");
    let shown = web.get(&card).await;
    assert!(shown.body.contains("Called &lt;b&gt;him&lt;/b&gt;"), "text is escaped");

    let owner = lead["owner"]["id"].as_str().expect("owner").to_owned();
    let other = if owner == "ben" { "chen" } else { "ben" };
    let moved =
        web.post(&format!("{card}/reassign"), &[("csrf", &csrf), ("owner", other), ("reassign_note", "holiday")]).await;
    assert_eq!(moved.status, StatusCode::SEE_OTHER);
    assert_eq!(app.lead(&id).await["owner"]["id"], other);

    assert_eq!(
        web.post(&format!("{card}/tasks"), &[("csrf", &csrf), ("title", "Send the quote"), ("due_at", "")])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let task = app.lead(&id).await["tasks"][0].clone();
    assert_eq!(task["title"], "Send the quote");
    let task_id = task["id"].as_str().expect("task id");
    assert_eq!(
        web.post(&format!("{card}/tasks/{task_id}/done"), &[("csrf", &csrf)]).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(app.lead(&id).await["tasks"][0]["done_at"].is_string());

    let cleared = web.post(&format!("{card}/next-action"), &[("csrf", &csrf), ("clear", "1")]).await;
    assert_eq!(cleared.status, StatusCode::UNPROCESSABLE_ENTITY, "an open lead past new keeps a next action");
    assert!(cleared.body.contains("needs a `next_action_at`"));

    // Reps page: out of office and active through the rep patch.
    let ooo = web.post("/app/reps/chen/out-of-office", &[("csrf", &csrf), ("until", "2030-03-01")]).await;
    assert_eq!((ooo.status, ooo.location.as_deref()), (StatusCode::SEE_OTHER, Some("/app/reps")));
    let off = web.post("/app/reps/chen/active", &[("csrf", &csrf), ("active", "false")]).await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    let reps = app.get("/api/v1/reps").await;
    let chen = reps["items"].as_array().expect("reps").iter().find(|r| r["id"] == "chen").expect("chen").clone();
    assert_eq!(
        (chen["active"].as_bool(), chen["out_of_office_until"].as_str()),
        (Some(false), Some("2030-03-01T00:00:00Z"))
    );
    let back = web.post("/app/reps/chen/out-of-office", &[("csrf", &csrf), ("clear", "1")]).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    assert!(
        app.get("/api/v1/reps").await["items"]
            .as_array()
            .expect("reps")
            .iter()
            .any(|r| r["id"] == "chen" && r["out_of_office_until"].is_null())
    );
    let page = web.get("/app/reps").await;
    assert!(page.body.contains("Activate") && page.body.contains("Chen"));
}
both!(lead_card_forms_change_the_lead);

async fn pages_render_and_limits_hold(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let id = app
        .submit("contact", json!({"name": "Board Lead", "email": "board@example.com", "utm_source": "google"}))
        .await;
    let mut web = Web::new(&app);
    web.login(ADMIN).await;

    let board = web.get("/app/board").await;
    assert_eq!(board.status, StatusCode::OK);
    assert!(board.body.contains(r#"data-status="negotiation""#) && board.body.contains(&format!("/app/leads/{id}")));
    let found = web.get("/app?q=board%40example").await;
    assert!(found.body.contains(&format!("/app/leads/{id}")));
    let none = web.get("/app?q=nobody-at-all").await;
    assert!(none.body.contains("No leads match.") && !none.body.contains(&format!("/app/leads/{id}")));
    assert_eq!(web.get("/app?status=closed").await.status, StatusCode::BAD_REQUEST);

    let analytics = web.get("/app/analytics").await;
    assert_eq!(analytics.status, StatusCode::OK);
    assert!(analytics.body.contains("<svg") && analytics.body.contains(r#"role="img""#));
    assert!(analytics.body.contains(r#"id="chart-funnel""#) && analytics.body.contains(r#"id="chart-sources""#));
    let bad = web.get("/app/analytics?from=2030-01-02&to=2030-01-01").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains(r#"role="alert""#) && bad.body.contains("before"));

    let missing = web.get("/app/nowhere").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("<h1>Not Found</h1>"));

    // Body limits as for the API: refused before anything is read or changed.
    let csrf = web.csrf("/app").await;
    let big = "x".repeat(app.intake.core.settings.server.max_body_bytes + 1);
    let page = web.post(&format!("/app/leads/{id}/notes"), &[("csrf", &csrf), ("text", &big)]).await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(app.lead(&id).await["interactions"].as_array().expect("timeline").iter().all(|i| i["kind"] != "note"));
    let page = web.post("/app/login", &[("token", &big)]).await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
}
both!(pages_render_and_limits_hold);

async fn a_possible_duplicate_is_decided_from_the_lead_card(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let a = app.submit("contact", json!({"name": "Alice", "email": "alice@example.com"})).await;
    let b = app.submit("contact", json!({"name": "Bob", "phone": "+14155550111"})).await;
    app.submit("contact", json!({"email": "alice@example.com", "phone": "+14155550111"})).await;
    let owner_of = |lead: &Value| lead["owner"]["id"].as_str().map(str::to_owned);
    let (a_owner, b_owner) = (owner_of(&app.lead(&a).await), owner_of(&app.lead(&b).await));
    assert_eq!((a_owner.as_deref(), b_owner.as_deref()), (Some("anna"), Some("ben")));

    let mut anna = Web::new(&app);
    anna.login("anna-token-for-tests-0123456789").await;
    let card = anna.get(&format!("/app/leads/{a}")).await;
    assert!(card.body.contains("Possible duplicate"), "{}", card.body);
    let action = field_after(&card.body, "/reject");
    let csrf = csrf_in(&card.body);
    // Without the form's token: refused, nothing decided.
    assert_eq!(anna.post(&action, &[]).await.status, StatusCode::FORBIDDEN);
    let done = anna.post(&action, &[("csrf", &csrf)]).await;
    assert_eq!(done.location.as_deref(), Some(format!("/app/leads/{a}?saved=apart").as_str()));
    let card = anna.get(&format!("/app/leads/{a}?saved=apart")).await;
    assert!(!card.body.contains("Possible duplicate") && card.body.contains("Kept apart"), "{}", card.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM merge_reviews WHERE status = 'rejected'").await, 1);
}
both!(a_possible_duplicate_is_decided_from_the_lead_card);

/// The `action` of the first form in a page whose action ends with `suffix`.
fn field_after(html: &str, suffix: &str) -> String {
    html.split("action=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|a| a.ends_with(suffix))
        .unwrap_or_else(|| panic!("a form posting to …{suffix}"))
        .to_owned()
}

fn artefacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artefacts").join("dashboard");
    std::fs::create_dir_all(&dir).expect("artefacts dir");
    dir
}

/// The dashboard in real headless Chromium: sign in, find a lead, change its status, see a
/// chart, and look at it on a phone-sized screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let Some((chromium, chromedriver)) = browser_binaries() else { return };
    let app = TestApp::spawn(Db::Sqlite, "").await;
    let target = app
        .submit("contact", json!({"name": "María García", "email": "maria@example.es", "message": "20 licences", "utm_source": "google"}))
        .await;
    for (name, source) in [("Ivan Petrov", "newsletter"), ("Chen Wei", "google"), ("Olu Ade", "partner")] {
        let email = format!("{}@example.com", name.split(' ').next().unwrap_or("x").to_lowercase());
        app.submit("contact", json!({"name": name, "email": email, "utm_source": source})).await;
    }
    let dir = artefacts();
    let browser = Browser::start(&chromium, &chromedriver).await;

    // Sign in: /app sends us to the form.
    browser.goto(&app.url("/app")).await;
    let token = browser.find("#token").await;
    assert!(browser.url().await.ends_with("/app/login"));
    browser.type_into(&token, ADMIN).await;
    browser.screenshot(&dir.join("01-sign-in.png")).await;
    browser.click(&browser.find("form button[type=submit]").await).await;
    let h1 = browser.find("main h1").await;
    assert_eq!(browser.text(&h1).await, "Inbox");
    assert_eq!(browser.find_all("table.leads tbody tr").await.len(), 4);
    browser.screenshot(&dir.join("02-inbox.png")).await;

    // Keyboard: the first Tab lands on the skip link.
    browser.press("\u{E004}").await;
    let focused = browser.execute("return document.activeElement.className", json!([])).await;
    assert_eq!(focused, "skip");

    // Find the lead with the search box.
    let search = browser.find("#f-q").await;
    browser.type_into(&search, "maría\u{E007}").await; // Enter submits
    browser.find("table.leads").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while browser.find_all("table.leads tbody tr").await.len() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the search narrows the inbox to one lead");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.screenshot(&dir.join("03-search.png")).await;
    browser.click(&browser.find("table.leads tbody a").await).await;
    let h1 = browser.find("main h1").await;
    assert!(browser.text(&h1).await.contains("María García"));

    // Change its status, with a next action (datetime-local inputs are filled by script:
    // their keyboard entry depends on the browser's locale).
    browser.execute("document.getElementById('status').value = 'qualification'", json!([])).await;
    browser.execute("document.getElementById('status_next_action_at').value = '2030-01-02T09:30'", json!([])).await;
    let note = browser.find("#status_next_action_note").await;
    browser.type_into(&note, "Send the quote").await;
    browser.click(&browser.find("form[action$='/status'] button[type=submit]").await).await;
    let notice = browser.find("p.notice").await;
    assert_eq!(browser.text(&notice).await, "Status changed.");
    let status = browser.find("#lead-status").await;
    assert_eq!(browser.text(&status).await, "Qualification");
    browser.screenshot(&dir.join("04-lead-card.png")).await;
    let lead: Value = app.lead(&target).await;
    assert_eq!(lead["status"], "qualification");
    assert_eq!(lead["next_action_at"], "2030-01-02T09:30:00Z");

    // Someone posts María's email with the phone of another contact someone owns: the card
    // asks whether they are one person.
    let other =
        app.submit("contact", json!({"name": "M. García", "phone": "+34 612 345 678", "message": "call me"})).await;
    app.submit("contact", json!({"email": "maria@example.es", "phone": "+34612345678", "message": "same person?"}))
        .await;
    browser.goto(&app.url(&format!("/app/leads/{target}"))).await;
    let panel = browser.find("section.review h2").await;
    assert_eq!(browser.text(&panel).await, "Possible duplicate");
    let section = browser.find("section.review").await;
    assert!(browser.text(&section).await.contains("M. García"), "an admin sees who the other record is");
    browser.screenshot(&dir.join("04b-possible-duplicate.png")).await;

    // The analytics page draws its charts.
    browser.goto(&app.url("/app/analytics")).await;
    browser.find("#chart-funnel svg[role=img]").await;
    let charts = browser.find_all("figure.chart svg").await.len();
    assert!(charts >= 2, "{charts} charts");
    let bars = browser
        .execute("return document.querySelectorAll('#chart-sources svg[role=img] rect').length", json!([]))
        .await;
    assert!(bars.as_u64().is_some_and(|n| n >= 2), "source chart has bars: {bars}");
    browser.screenshot(&dir.join("05-analytics.png")).await;

    // The board.
    browser.goto(&app.url("/app/board")).await;
    browser.find(".column[data-status=qualification] .card").await;
    browser.screenshot(&dir.join("06-board.png")).await;

    // A phone: one column, nothing wider than the screen.
    browser.set_window_size(390, 844).await;
    for (path, shot) in [("/app", "07-phone-inbox.png"), (format!("/app/leads/{target}").as_str(), "08-phone-lead.png")]
    {
        browser.goto(&app.url(path)).await;
        browser.find("main h1").await;
        let fits =
            browser.execute("return document.documentElement.scrollWidth <= window.innerWidth + 1", json!([])).await;
        assert_eq!(fits, true, "{path} scrolls sideways on a phone");
        browser.screenshot(&dir.join(shot)).await;
    }
    browser.goto(&app.url("/app/analytics")).await;
    browser.find("#chart-funnel").await;
    browser.screenshot(&dir.join("09-phone-analytics.png")).await;

    // On the phone, the admin merges the two: the other record's lead says where it went.
    browser.goto(&app.url(&format!("/app/leads/{target}"))).await;
    browser.click(&browser.find("form[action$='/confirm'] button").await).await;
    let notice = browser.find("p.notice").await;
    assert!(browser.text(&notice).await.starts_with("Merged"));
    browser.goto(&app.url(&format!("/app/leads/{other}"))).await;
    let merged = browser.find("#merged").await;
    assert!(browser.text(&merged).await.contains("merged into"));
    assert!(browser.find_all("form[action$='/status']").await.is_empty(), "nothing to change on a merged lead");
    browser.screenshot(&dir.join("10-phone-merged-lead.png")).await;
    assert_eq!(app.lead(&other).await["merged_into"], target.as_str());
    browser.quit().await;
    eprintln!("dashboard screenshots: {}", dir.display());
}
