//! A fake Telegram Bot API on 127.0.0.1: `getUpdates` with Telegram's offset rule (an update
//! is confirmed once a later call asks with a higher offset), every other method recorded and
//! answered the way Telegram would.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const TOKEN: &str = "123456:TEST-token";

#[derive(Default)]
struct Inner {
    pending: Vec<Value>,
    next_update_id: i64,
    next_message_id: i64,
    calls: Vec<(String, Value)>,
    /// `getUpdates` calls in flight, and the most there ever were at once.
    polling: usize,
    max_polling: usize,
}

#[derive(Clone)]
pub struct FakeBot {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
}

type Answer = (StatusCode, axum::Json<Value>);

fn ok(result: Value) -> Answer {
    (StatusCode::OK, axum::Json(json!({"ok": true, "result": result})))
}

fn params(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .or_else(|_| {
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
                .map(|p| json!(p.into_iter().collect::<std::collections::HashMap<_, _>>()))
        })
        .unwrap_or(Value::Null)
}

async fn method(
    State(bot): State<FakeBot>,
    Path((token, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Answer {
    if token != format!("bot{TOKEN}") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        );
    }
    let params = params(&body);
    // teloxide names methods `SendMessage`; Telegram matches case-insensitively.
    let name = name.to_ascii_lowercase();
    if name == "getupdates" {
        return get_updates(&bot, params).await;
    }
    let mut inner = bot.inner.lock().expect("lock");
    inner.calls.push((name.clone(), params.clone()));
    match name.as_str() {
        "getme" => ok(json!({"id": 777, "is_bot": true, "first_name": "Kestrel", "username": "kestrel_bot"})),
        "sendmessage" | "editmessagetext" => {
            inner.next_message_id += 1;
            let chat_id = params["chat_id"]
                .as_i64()
                .or_else(|| params["chat_id"].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0);
            ok(json!({"message_id": 1000 + inner.next_message_id, "date": 1_764_000_000,
                      "chat": {"id": chat_id, "type": "private", "first_name": "X"},
                      "from": {"id": 777, "is_bot": true, "first_name": "Kestrel", "username": "kestrel_bot"},
                      "text": params["text"]}))
        }
        _ => ok(json!(true)),
    }
}

/// Counts a `getUpdates` call as in flight until it ends, also when the client hangs up.
struct InFlight(Arc<Mutex<Inner>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.0.lock() {
            inner.polling -= 1;
        }
    }
}

async fn get_updates(bot: &FakeBot, params: Value) -> Answer {
    {
        let mut inner = bot.inner.lock().expect("lock");
        inner.calls.push(("getupdates".into(), params.clone()));
        inner.polling += 1;
        inner.max_polling = inner.max_polling.max(inner.polling);
    }
    let _in_flight = InFlight(bot.inner.clone());
    let offset = params["offset"].as_i64().unwrap_or(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(params["timeout"].as_u64().unwrap_or(0).min(2));
    let ready = loop {
        let ready = {
            let mut inner = bot.inner.lock().expect("lock");
            // Asking with a higher offset confirms everything below it.
            inner.pending.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            inner.pending.clone()
        };
        if !ready.is_empty() || tokio::time::Instant::now() >= deadline {
            break ready;
        }
        let _ = tokio::time::timeout_at(deadline, bot.arrived.notified()).await;
    };
    ok(json!(ready))
}

impl FakeBot {
    pub async fn start() -> FakeBot {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let bot = FakeBot { url, inner: Arc::default(), arrived: Arc::default() };
        bot.inner.lock().expect("lock").next_update_id = 500_000;
        let app = axum::Router::new()
            .route("/{token}/{method}", axum::routing::post(method).get(method))
            .with_state(bot.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        bot
    }

    /// Queues an update (its `update_id` becomes the next one in sequence).
    pub fn push(&self, mut update: Value) -> i64 {
        let mut inner = self.inner.lock().expect("lock");
        inner.next_update_id += 1;
        let id = inner.next_update_id;
        update["update_id"] = json!(id);
        inner.pending.push(update);
        drop(inner);
        self.arrived.notify_waiters();
        id
    }

    /// Updates not confirmed yet.
    pub fn unconfirmed(&self) -> usize {
        self.inner.lock().map(|i| i.pending.len()).unwrap_or(0)
    }

    /// The most `getUpdates` calls that were ever in flight at once.
    pub fn max_concurrent_polls(&self) -> usize {
        self.inner.lock().map(|i| i.max_polling).unwrap_or(0)
    }

    /// Calls of `method` (lower-case name), oldest first.
    pub fn calls(&self, method: &str) -> Vec<Value> {
        self.inner
            .lock()
            .map(|i| i.calls.iter().filter(|(m, _)| m == method).map(|(_, p)| p.clone()).collect())
            .unwrap_or_default()
    }

    /// The `[telegram]` section that points the service here.
    pub fn config(&self, mode: &str) -> String {
        format!(
            "[telegram]\nenabled = true\ntoken = \"{TOKEN}\"\nmode = \"{mode}\"\napi_url = \"{}\"\nwebhook_secret = \"hook-secret\"\npoll_timeout = \"1s\"\n",
            self.url
        )
    }
}

/// A fixture update (tests/fixtures/telegram/NAME.json).
pub fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/tests/fixtures/telegram/{name}.json", env!("CARGO_MANIFEST_DIR")))
        .expect("fixture");
    serde_json::from_str(&text).expect("fixture json")
}
