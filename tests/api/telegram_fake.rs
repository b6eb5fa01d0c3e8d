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
    /// When each call arrived, in the order of `calls`.
    times: Vec<std::time::Instant>,
    /// Chats whose user blocked the bot: sending there is 403.
    blocked: Vec<i64>,
    /// The next this many calls (other than `getUpdates`) get 429 with `retry_after` 1.
    flood: usize,
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
    let chat_id =
        params["chat_id"].as_i64().or_else(|| params["chat_id"].as_str().and_then(|s| s.parse().ok())).unwrap_or(0);
    if name != "getme" && inner.flood > 0 {
        inner.flood -= 1;
        inner.calls.push((format!("{name}:429"), params.clone()));
        inner.times.push(std::time::Instant::now());
        return (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1",
                              "parameters": {"retry_after": 1}})),
        );
    }
    inner.calls.push((name.clone(), params.clone()));
    inner.times.push(std::time::Instant::now());
    let sends = matches!(name.as_str(), "sendmessage" | "copymessage");
    if sends && inner.blocked.contains(&chat_id) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(
                json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
            ),
        );
    }
    match name.as_str() {
        "getme" => ok(json!({"id": 777, "is_bot": true, "first_name": "Kestrel", "username": "kestrel_bot"})),
        "sendmessage" | "editmessagetext" | "editmessagereplymarkup" => {
            let message_id = match params["message_id"].as_i64() {
                Some(id) => id,
                None => {
                    inner.next_message_id += 1;
                    1000 + inner.next_message_id
                }
            };
            if let Some((_, p)) = inner.calls.last_mut() {
                p["_message_id"] = json!(message_id);
            }
            let kind = if chat_id < 0 { "supergroup" } else { "private" };
            ok(json!({"message_id": message_id, "date": 1_764_000_000,
                      "chat": {"id": chat_id, "type": kind, "first_name": "X", "title": "Sales"},
                      "from": {"id": 777, "is_bot": true, "first_name": "Kestrel", "username": "kestrel_bot"},
                      "text": params["text"]}))
        }
        "copymessage" => {
            inner.next_message_id += 1;
            let message_id = 1000 + inner.next_message_id;
            if let Some((_, p)) = inner.calls.last_mut() {
                p["_message_id"] = json!(message_id);
            }
            ok(json!({"message_id": message_id}))
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
        inner.times.push(std::time::Instant::now());
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

    /// Calls of `method` with when they arrived.
    pub fn timed_calls(&self, method: &str) -> Vec<(std::time::Instant, Value)> {
        self.inner
            .lock()
            .map(|i| {
                i.calls
                    .iter()
                    .zip(&i.times)
                    .filter(|((m, _), _)| m == method)
                    .map(|((_, p), t)| (*t, p.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// From now on, the user of private chat `chat` has blocked the bot.
    pub fn block(&self, chat: i64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.blocked.push(chat);
        }
    }

    /// The next `n` method calls are refused with 429 `retry_after` 1.
    pub fn flood(&self, n: usize) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.flood = n;
        }
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

static PRESSES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// Someone pressing a button under message `message_id` in chat `chat`.
pub fn press(user: (i64, &str), chat: i64, message_id: i64, data: &str) -> Value {
    let kind = if chat < 0 { "supergroup" } else { "private" };
    json!({"callback_query": {
        "id": format!("cb-{}", PRESSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
        "from": {"id": user.0, "is_bot": false, "first_name": user.1},
        "chat_instance": "-5",
        "data": data,
        "message": {"message_id": message_id, "date": 1_764_000_000, "text": "card",
                    "chat": {"id": chat, "type": kind, "title": "Sales", "first_name": user.1},
                    "from": {"id": 777, "is_bot": true, "first_name": "Kestrel", "username": "kestrel_bot"}}
    }})
}

/// A text message from `user` in their private chat with the bot, optionally replying to one
/// of the bot's messages.
pub fn says(user: (i64, &str), message_id: i64, text: &str, reply_to: Option<i64>) -> Value {
    let mut message = json!({"message_id": message_id, "date": 1_764_000_000, "text": text,
        "from": {"id": user.0, "is_bot": false, "first_name": user.1, "language_code": "en"},
        "chat": {"id": user.0, "type": "private", "first_name": user.1}});
    if text.starts_with('/') {
        let end = text.find(' ').unwrap_or(text.len());
        message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": end}]);
    }
    if let Some(replied) = reply_to {
        message["reply_to_message"] = json!({"message_id": replied, "date": 1_764_000_000, "text": "card",
            "from": {"id": 777, "is_bot": true, "first_name": "Kestrel", "username": "kestrel_bot"},
            "chat": {"id": user.0, "type": "private", "first_name": user.1}});
    }
    json!({"message": message})
}
