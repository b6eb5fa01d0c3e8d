//! The real binary over real HTTP: no-config start, check-config, crash safety, several
//! instances on one PostgreSQL, replay.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{BASE_CONFIG, Db, TestDb, postgres_admin_url};

const BIN: &str = env!("CARGO_BIN_EXE_leadrouter");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

pub(crate) struct Service {
    child: Child,
    pub base: String,
}

impl Service {
    /// Starts `leadrouter serve` with `config` (TOML) against `db`, and waits until it answers.
    pub(crate) async fn start(db: &TestDb, config: &str) -> Service {
        Self::start_limited(db, config, None).await
    }

    /// `start`, with the process allowed at most `file_limit` open files (soft and hard).
    pub(crate) async fn start_limited(db: &TestDb, config: &str, file_limit: Option<u64>) -> Service {
        let port = free_port();
        let path = db.dir().join(format!("leadrouter-{port}.toml"));
        std::fs::write(&path, config).expect("write config");
        let mut command = match file_limit {
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), BIN]);
                c
            }
            None => Command::new(BIN),
        };
        let child = command
            .args(["--config", path.to_str().expect("path"), "serve"])
            .env("LEADROUTER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("LEADROUTER__DATABASE__URL", &db.url)
            .env("LEADROUTER__LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn leadrouter");
        let service = Service { child, base: format!("http://127.0.0.1:{port}") };
        service.wait_ready().await;
        service
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("leadrouter did not become ready at {}", self.base);
    }

    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().expect("wait")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn admin_get(base: &str, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth("admin-token-for-tests-0123456789")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.expect("json")
}

#[test]
fn check_config_prints_every_problem_and_fails() {
    let dir = std::env::temp_dir().join(format!("leadrouter-cc-{}", leadrouter::base::new_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        r#"
        [[reps]]
        id = "anna"
        name = "Anna"
        teams = ["ghost"]
        timezone = "Nowhere/City"
        [[teams]]
        id = "sales"
        [[forms]]
        id = "tf"
        provider = "typeform"
        "#,
    )
    .expect("write");
    let out = Command::new(BIN).args(["--config", bad.to_str().expect("path"), "check-config"]).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    for needle in
        ["team `ghost`", "unknown timezone `Nowhere/City`", "team `sales` has no members", "form `tf`", "4 problem(s)"]
    {
        assert!(stdout.contains(needle), "{needle:?} missing from:\n{stdout}");
    }
    let good = dir.join("good.toml");
    std::fs::write(&good, BASE_CONFIG).expect("write");
    let out = Command::new(BIN).args(["--config", good.to_str().expect("path"), "check-config"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // The environment overrides the file, and is checked like it.
    let out = Command::new(BIN)
        .args(["--config", good.to_str().expect("path"), "check-config"])
        .env("LEADROUTER__SERVER__LISTEN", "not-an-address")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("server.listen: `not-an-address` is not an address"));
    let missing = Command::new(BIN).args(["--config", "/nonexistent.toml", "check-config"]).output().expect("run");
    assert!(!missing.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn serve_runs_with_no_config_and_stops_cleanly_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("leadrouter-noconf-{}", leadrouter::base::new_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = free_port();
    let child = Command::new(BIN)
        .arg("serve")
        .current_dir(&dir)
        .env("LEADROUTER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut service = Service { child, base: format!("http://127.0.0.1:{port}") };
    service.wait_ready().await;
    assert!(dir.join("data/leadrouter.db").exists(), "SQLite at data/leadrouter.db by default");
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/forms/contact", service.base))
        .json(&json!({"email": "first@example.com"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::ACCEPTED, "with no [[forms]] any form id is open");
    let status = service.terminate();
    assert!(status.success(), "SIGTERM is a clean exit: {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Posts forms from `clients` tasks until stopped; returns what got a 2xx: (email, lead id).
async fn burst(base: String, clients: usize, stop: tokio_util::sync::CancellationToken) -> Vec<(String, String)> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (base, stop, acked) = (base.clone(), stop.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0;
            while !stop.is_cancelled() {
                let email = format!("crash{c}-{i}@example.com");
                i += 1;
                let sent = client
                    .post(format!("{base}/api/v1/forms/contact"))
                    .json(&json!({"email": email, "message": "burst"}))
                    .send()
                    .await;
                let Ok(r) = sent else { continue };
                if r.status().is_success()
                    && let Ok(body) = r.json::<Value>().await
                    && let Some(id) = body["id"].as_str()
                {
                    acked.lock().expect("lock").push((email, id.to_owned()));
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }

    acked.lock().expect("lock").clone()
}

async fn kill_dash_nine_loses_no_acknowledged_submission(db: Db) {
    let db = TestDb::new(db).await;
    let mut service = Service::start(&db, BASE_CONFIG).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn(burst(service.base.clone(), 8, stop.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    service.kill9();
    stop.cancel();
    let acked = load.await.expect("burst");
    assert!(acked.len() > 20, "the burst got going ({} acknowledged)", acked.len());

    let service = Service::start(&db, BASE_CONFIG).await;
    let client = reqwest::Client::new();
    for (email, id) in &acked {
        let r = client
            .get(format!("{}/api/v1/leads/{id}", service.base))
            .bearer_auth("admin-token-for-tests-0123456789")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::OK, "acknowledged lead {id} ({email}) lost");
        let lead: Value = r.json().await.expect("json");
        assert_eq!(lead["contact"]["identities"][0]["value"], email.as_str());
        assert!(lead["owner"]["id"].is_string(), "committed with its owner");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_on_sqlite() {
    kill_dash_nine_loses_no_acknowledged_submission(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_on_postgres() {
    if postgres_admin_url().await.is_some() {
        kill_dash_nine_loses_no_acknowledged_submission(Db::Postgres).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_agree() {
    if postgres_admin_url().await.is_none() {
        return;
    }
    let db = TestDb::new(Db::Postgres).await;
    let one = Service::start(&db, BASE_CONFIG).await;
    let two = Service::start(&db, BASE_CONFIG).await;
    let client = reqwest::Client::new();
    let posts = (0..100).map(|i| {
        let base = if i % 2 == 0 { &one.base } else { &two.base };
        let person = i % 10;
        let body = json!({"email": format!("twin{person}@example.com"), "phone": format!("+1 415 555 02{person:02}"), "message": format!("m{i}")});
        let request = client.post(format!("{base}/api/v1/forms/contact")).json(&body).send();
        async move { request.await.expect("post").status() }
    });
    let statuses = futures_util::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::ACCEPTED), "{statuses:?}");
    let leads = admin_get(&one.base, "/api/v1/leads?limit=200").await;
    assert_eq!(leads["items"].as_array().map(Vec::len), Some(10));
    let contacts = admin_get(&two.base, "/api/v1/contacts?limit=200").await;
    assert_eq!(contacts["items"].as_array().map(Vec::len), Some(10));

    // Fairness across processes: 30 more distinct people, alternating instances.
    let posts = (0..30).map(|i| {
        let base = if i % 2 == 0 { &one.base } else { &two.base };
        let request = client
            .post(format!("{base}/api/v1/forms/contact"))
            .json(&json!({"email": format!("rr{i}@example.com")}))
            .send();
        async move { request.await.expect("post").status() }
    });
    futures_util::future::join_all(posts).await;
    let leads = admin_get(&two.base, "/api/v1/leads?limit=200").await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for lead in leads["items"].as_array().expect("items") {
        *counts.entry(lead["owner"]["id"].as_str().unwrap_or("none").to_owned()).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    assert_eq!(total, 40);
    assert!(counts.values().all(|n| *n == 13 || *n == 14), "40 leads over 3 reps: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_processes_failed_items_again() {
    let db = TestDb::new(Db::Sqlite).await;
    let config_path = db.dir().join("replay.toml");
    std::fs::write(&config_path, BASE_CONFIG).expect("config");
    {
        let mut settings = leadrouter::settings::Settings::from_toml(BASE_CONFIG).expect("config");
        settings.database.url = db.url.clone();
        let store = leadrouter::app::prepare_store(&settings).await.expect("store");
        let meta = leadrouter::domain::InboundMeta {
            form_id: Some("contact".into()),
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        let body =
            br#"{"name": "Replayed", "email": "replay@example.com", "message": "stored while the database was sick"}"#;
        store
            .record_failed_inbound("webform", "contact:key:replay-1", &meta, body, "simulated outage", 0)
            .await
            .expect("record");
        store.close().await;
    }
    let out = Command::new(BIN)
        .args(["--config", config_path.to_str().expect("path"), "replay", "--failed"])
        .env("LEADROUTER__DATABASE__URL", &db.url)
        .env("LEADROUTER__LOG__LEVEL", "warn")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 replayed, 0 failed"), "{stdout}");

    let service = Service::start(&db, BASE_CONFIG).await;
    let leads = admin_get(&service.base, "/api/v1/leads?q=replay%40example.com").await;
    assert_eq!(leads["items"][0]["contact"]["name"], "Replayed");
    let again = Command::new(BIN)
        .args(["--config", config_path.to_str().expect("path"), "replay", "--failed"])
        .env("LEADROUTER__DATABASE__URL", &db.url)
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 replayed, 0 failed"), "nothing left to replay");
}

/// `kill -9` right when the service confirms a batch to Telegram: after a restart every
/// update is there exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_while_confirming_telegram_updates() {
    let bot = crate::telegram_fake::FakeBot::start().await;
    let db = TestDb::new(Db::Sqlite).await;
    let config = format!("{BASE_CONFIG}\n{}", bot.config("polling"));
    let mut pushed = Vec::new();
    for i in 0..40i64 {
        let mut update = crate::telegram_fake::fixture("private_text");
        update["message"]["from"]["id"] = json!(7_000_000 + i);
        update["message"]["chat"]["id"] = json!(7_000_000 + i);
        update["message"]["message_id"] = json!(1 + i);
        // Forty different people: no shared email or phone entities to merge them.
        update["message"]["text"] = json!(format!("Hello from prospect {i}"));
        update["message"]["entities"] = json!([]);
        pushed.push(bot.push(update));
    }
    let mut service = Service::start(&db, &config).await;
    // The moment a getUpdates call carries an offset, part of the batch is committed and
    // being confirmed: kill the service right there.
    for _ in 0..400 {
        if bot.calls("getupdates").iter().any(|c| c["offset"].as_i64().is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    service.kill9();
    let service = Service::start(&db, &config).await;
    let client = reqwest::Client::new();
    let mut interactions = 0;
    for _ in 0..100 {
        let leads: Value = client
            .get(format!("{}/api/v1/leads?channel=telegram&limit=200", service.base))
            .bearer_auth("admin-token-for-tests-0123456789")
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        interactions = leads["items"].as_array().map(Vec::len).unwrap_or(0);
        if interactions == pushed.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(interactions, pushed.len(), "every update is a lead after the restart");
    let settings = {
        let mut s = leadrouter::settings::Settings::from_toml(BASE_CONFIG).expect("config");
        s.database.url = db.url.clone();
        s
    };
    let store = leadrouter::store::Store::connect(&settings.database.url, 2).await.expect("store");
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM interactions").fetch_one(&store.reader_pool()).await.expect("count");
    assert_eq!(count as usize, pushed.len(), "and none twice");
    store.close().await;
    drop(service);
}
