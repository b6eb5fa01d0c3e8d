//! Test harness: a real app on a real database (a fresh SQLite file, or a fresh PostgreSQL
//! database), served over real HTTP on a free port.

use std::path::PathBuf;
use std::time::Duration;

use leadrouter::app::App;
use leadrouter::intake::Intake;
use leadrouter::settings::Settings;
use leadrouter::store::Store;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const ADMIN: &str = "admin-token-for-tests-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend: `both!(name)` needs `async fn name(db: Db)`.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::support::postgres_admin_url().await.is_some() {
                    super::$name($crate::support::Db::Postgres).await
                }
            }
        }
    };
}

/// The PostgreSQL admin URL, if a server is there. Under `CI=true` a missing server fails the
/// test instead of skipping it.
pub async fn postgres_admin_url() -> Option<String> {
    let url = std::env::var("LEADROUTER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    use sqlx::Connection;
    match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Some(url)
        }
        other => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("PostgreSQL is required under CI=true but {url} is unreachable: {other:?}");
            }
            eprintln!("skipping the PostgreSQL half: {url} is unreachable (run tests/env/postgres-up.sh)");
            None
        }
    }
}

/// A database of its own for one test, removed afterwards.
pub struct TestDb {
    pub url: String,
    dir: PathBuf,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(db: Db) -> TestDb {
        let id = leadrouter::base::new_id();
        let dir = std::env::temp_dir().join(format!("leadrouter-test-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        match db {
            Db::Sqlite => TestDb { url: format!("sqlite://{}/test.db", dir.display()), dir, pg: None },
            Db::Postgres => {
                let admin = postgres_admin_url().await.expect("PostgreSQL");
                let name = format!("lr_test_{id}");
                admin_exec(&admin, &format!("CREATE DATABASE {name}")).await;
                let url = match admin.rsplit_once('/') {
                    Some((base, _)) => format!("{base}/{name}"),
                    None => panic!("admin URL without a database: {admin}"),
                };
                TestDb { url, dir, pg: Some((admin, name)) }
            }
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

async fn admin_exec(admin: &str, sql: &str) {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(admin).await.expect("admin connection");
    conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await.expect(sql);
    let _ = conn.close().await;
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((admin, name)) = self.pg.take() {
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    rt.block_on(admin_exec(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")));
                }
            })
            .join();
        }
    }
}

/// What every test app runs with: the admin token, form rates no test reaches, an outbox that
/// retries within milliseconds, routing to `sales`, the `contact` form.
macro_rules! base_setup {
    () => {
        r#"
[auth]
admin_tokens = ["admin-token-for-tests-0123456789"]

[server]
form_rate_per_second = 100000
form_rate_burst = 100000

[outbox]
poll_interval = "50ms"
base_backoff = "50ms"
max_backoff = "200ms"

[routing]
default_team = "sales"

[[forms]]
id = "contact"
default_region = "US"
"#
    };
}

/// The people most tests need: team `sales` (round-robin, after hours too) with Anna, Ben and
/// Chen, each with an API token.
macro_rules! base_people {
    () => {
        r#"
[[teams]]
id = "sales"
strategy = "round_robin"
after_hours = true

[[reps]]
id = "anna"
name = "Anna"
api_token = "anna-token-for-tests-0123456789"
teams = ["sales"]

[[reps]]
id = "ben"
name = "Ben"
api_token = "ben-token-for-tests-0123456789"
teams = ["sales"]

[[reps]]
id = "chen"
name = "Chen"
api_token = "chen-token-for-tests-0123456789"
teams = ["sales"]
"#
    };
}

pub const BASE_SETUP: &str = base_setup!();
/// The whole base as one text (the binary reads one file).
pub const BASE_CONFIG: &str = concat!(base_setup!(), base_people!());

pub struct TestApp {
    pub addr: String,
    pub client: reqwest::Client,
    pub intake: Intake,
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Kept alive as long as the app: dropping it removes the database (`None` when the
    /// database belongs to the test, shared by several apps).
    db: Option<TestDb>,
}

impl TestApp {
    /// Starts the app with `BASE_CONFIG` and `extra` over it: its values replace the base's,
    /// its `[[…]]` entries add to the base's.
    pub async fn spawn(db: Db, extra: &str) -> TestApp {
        Self::spawn_settings(db, Settings::from_toml_layers(&[BASE_CONFIG, extra]).expect("test config")).await
    }

    /// Starts the app with the base setup but the test's own teams and reps (`people`, with
    /// anything else it changes).
    pub async fn spawn_people(db: Db, people: &str) -> TestApp {
        Self::spawn_settings(db, Settings::from_toml_layers(&[BASE_SETUP, people]).expect("test config")).await
    }

    /// Starts the app with exactly `config` (plus a test listener and database).
    pub async fn spawn_with(db: Db, config: &str) -> TestApp {
        Self::spawn_settings(db, Settings::from_toml(config).expect("test config parses")).await
    }

    async fn spawn_settings(db: Db, settings: Settings) -> TestApp {
        let db = TestDb::new(db).await;
        let mut app = Self::start(&db, settings).await;
        app.db = Some(db);
        app
    }

    pub async fn spawn_on(db: TestDb, config: &str) -> TestApp {
        let mut app = Self::spawn_shared(&db, config).await;
        app.db = Some(db);
        app
    }

    /// An app on a database the test owns (several instances on one PostgreSQL).
    pub async fn spawn_shared(db: &TestDb, config: &str) -> TestApp {
        Self::start(db, Settings::from_toml(config).expect("test config parses")).await
    }

    async fn start(db: &TestDb, mut settings: Settings) -> TestApp {
        settings.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        settings.database.url = db.url.clone();
        settings.database.max_connections = 8;
        let app = App::build(settings).await.expect("app builds");
        let addr = format!("http://127.0.0.1:{}", app.port());
        let intake = app.intake().clone();
        let stop = CancellationToken::new();
        let wait = stop.clone();
        let server = tokio::spawn(app.run_until_stopped(async move { wait.cancelled().await }));
        TestApp { addr, client: reqwest::Client::new(), intake, stop, server: Some(server), db: None }
    }

    /// Stops the app the way SIGTERM does and waits for it to finish.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Stops the app and hands back its database for a restart.
    pub async fn stop_keep_db(mut self) -> TestDb {
        self.stop().await;
        self.db.take().expect("the app owns its database")
    }

    pub fn store(&self) -> &Store {
        &self.intake.core.store
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    pub async fn post_form(&self, form: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(&format!("/api/v1/forms/{form}"))).json(body).send().await.expect("request")
    }

    /// Posts a form and returns the lead id it landed on.
    pub async fn submit(&self, form: &str, body: Value) -> String {
        let r = self.post_form(form, &body).await;
        let status = r.status();
        let json: Value = r.json().await.expect("json");
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        json["id"].as_str().expect("lead id").to_owned()
    }

    pub async fn get_as(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let r = self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.get_as(ADMIN, path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    pub async fn send_as(&self, token: &str, method: reqwest::Method, path: &str, body: &Value) -> (StatusCode, Value) {
        let r =
            self.client.request(method, self.url(path)).bearer_auth(token).json(body).send().await.expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send_as(ADMIN, reqwest::Method::PATCH, path, &body).await
    }

    pub async fn lead(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/leads/{id}")).await
    }

    /// All leads (first 200), newest first.
    pub async fn leads(&self, query: &str) -> Vec<Value> {
        let body = self.get(&format!("/api/v1/leads?limit=200{query}")).await;
        body["items"].as_array().expect("items").clone()
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool(self.store()).await).await.expect(sql)
    }
}

impl TestApp {
    /// A channel's inbound items as `(external_id, status, reason)`, in arrival order.
    pub async fn items(&self, channel: &str) -> Vec<(String, String, Option<String>)> {
        sqlx::query_as::<_, (String, String, Option<String>)>(
            "SELECT external_id, status, reason FROM inbound_items WHERE channel = $1 ORDER BY received_at, external_id",
        )
        .bind(channel.to_owned())
        .fetch_all(&self.store().reader_pool())
        .await
        .expect("items")
    }
}

/// The values of a lead's contact identities, as the API shows them.
pub fn identity_values(lead: &Value) -> Vec<String> {
    lead["contact"]["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter_map(|i| i["value"].as_str().map(str::to_owned))
        .collect()
}

/// A plain connection pool on the test's database, for counting rows behind the API's back.
pub async fn pool(store: &Store) -> sqlx::AnyPool {
    store.reader_pool()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Asserts the API error shape and returns the code.
pub fn error_code(body: &Value) -> &str {
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("not an API error: {body}"));
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {body}");
    code
}

/// Waits until `check` holds, for at most `secs`.
pub async fn eventually<F, Fut>(secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within {secs} s");
}
