//! `leadrouter bench --telegram-updates N`: Telegram updates through the webhook against a
//! Bot API stand-in on 127.0.0.1. Measures how fast updates are committed (webhook answers)
//! with many senders, and, one prospect at a time, how long from an update to the owner's
//! card arriving at the Bot API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Connection, Placement, percentile, start_service};
use leadrouter::base::new_id;

/// Reps with Telegram: enough chats that one card a second per chat is never the limit.
const REPS: i64 = 20;

/// When each prospect's card reached the Bot API, by the prospect's first name.
type Cards = Arc<Mutex<HashMap<String, Instant>>>;

/// What the Bot API stand-in shares between requests.
#[derive(Clone)]
struct BotApi {
    cards: Cards,
    next_message_id: Arc<std::sync::atomic::AtomicI64>,
}

/// Answers every method; notes when each lead card was sent.
async fn bot_method(
    axum::extract::State(api): axum::extract::State<BotApi>,
    axum::extract::Path((_, method)): axum::extract::Path<(String, String)>,
    body: String,
) -> axum::Json<Value> {
    let params: Value = serde_json::from_str(&body).unwrap_or_default();
    let result = match method.to_ascii_lowercase().as_str() {
        "getme" => json!({"id": 1, "is_bot": true, "first_name": "Bench", "username": "bench_bot"}),
        "sendmessage" => {
            let text = params["text"].as_str().unwrap_or_default();
            if let Some(who) = text.strip_prefix("🆕 New lead: ").and_then(|t| t.split('\n').next())
                && let Ok(mut cards) = api.cards.lock()
            {
                cards.entry(who.to_owned()).or_insert_with(Instant::now);
            }
            let id = api.next_message_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            json!({"message_id": id, "date": 0, "chat": {"id": params["chat_id"], "type": "private"}})
        }
        _ => json!(true),
    };
    axum::Json(json!({"ok": true, "result": result}))
}

async fn bot_api(cards: Cards) -> anyhow::Result<String> {
    let state = BotApi { cards, next_message_id: Arc::new(std::sync::atomic::AtomicI64::new(1)) };
    let api = axum::Router::new().route("/{token}/{method}", axum::routing::post(bot_method)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, api).await });
    Ok(url)
}

fn config(api_url: &str) -> String {
    let mut config = format!(
        "[log]\nlevel = \"warn\"\n[outbox]\npoll_interval = \"1s\"\n[routing]\ndefault_team = \"sales\"\n\
         [[teams]]\nid = \"sales\"\nafter_hours = true\n\
         [telegram]\nenabled = true\ntoken = \"1:bench\"\nmode = \"webhook\"\napi_url = \"{api_url}\"\n\
         webhook_secret = \"bench-secret\"\n"
    );
    for r in 0..REPS {
        config.push_str(&format!(
            "[[reps]]\nid = \"rep{r}\"\nname = \"Rep {r}\"\nteams = [\"sales\"]\ntelegram_chat_id = {}\n",
            9000 + r
        ));
    }
    config
}

/// A private message from prospect `n` (first name `P<run>-<n>`), as Telegram posts it.
/// Update and user ids start from the run's start time, so a second run against the same
/// database (`--database-url`) meets new people, not redelivered updates.
fn update(run: &str, n: usize) -> String {
    static FIRST: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    // Within 32 bits, as Telegram's own update ids are.
    let first = *FIRST.get_or_init(|| 1_000_000 + jiff::Timestamp::now().as_second() % 1_000_000 * 1000);
    let user = first + n as i64;
    json!({"update_id": user, "message": {
        "message_id": 1, "date": 1_764_000_000, "text": "Hello! Do you deliver to Kazan?",
        "from": {"id": user, "is_bot": false, "first_name": format!("P{run}-{n}"), "language_code": "en"},
        "chat": {"id": user, "type": "private", "first_name": format!("P{run}-{n}")}}})
    .to_string()
}

const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token: bench-secret\r\n";

pub(super) async fn run(
    updates: usize,
    samples: usize,
    concurrency: usize,
    dir: &std::path::Path,
    url: &str,
    placement: Placement,
) -> anyhow::Result<()> {
    let cards: Cards = Arc::default();
    let api = bot_api(cards.clone()).await?;
    let (service, addr) = start_service(dir, url, &config(&api), placement).await?;
    println!("leadrouter bench: Telegram webhook, {updates} updates from as many people, {concurrency} connections");

    // Many prospects at once: how fast updates are committed and answered 200.
    let run = new_id();
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (addr, run, next) = (addr.clone(), run.clone(), next.clone());
        tasks.spawn(async move {
            let mut conn = Connection::open(&addr).await?;
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= updates {
                    return anyhow::Ok(latencies);
                }
                let sent = Instant::now();
                let (status, body) = conn.post("/telegram/webhook", SECRET_HEADER, &update(&run, n)).await?;
                anyhow::ensure!(status == "200", "status {status}: {}", String::from_utf8_lossy(&body));
                latencies.push(sent.elapsed());
            }
        });
    }
    let mut latencies = Vec::with_capacity(updates);
    while let Some(part) = tasks.join_next().await {
        latencies.extend(part??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    println!(
        "webhook updates committed: {:.0} updates/s (p50 {:.2?} p99 {:.2?} to the 200)",
        updates as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99)
    );

    // The cards for that burst leave at the sender's global limit (Telegram allows ~30
    // messages a second per bot); let them drain so the next part measures an idle service.
    let deadline = Instant::now() + Duration::from_secs(updates as u64 / 20 + 30);
    while cards.lock().map(|c| c.len()).unwrap_or_default() < updates {
        anyhow::ensure!(Instant::now() < deadline, "the burst's cards did not all arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "owner cards for the burst delivered: {:.1} cards/s overall (the bot's global send limit)",
        updates as f64 / started.elapsed().as_secs_f64()
    );

    // One prospect at a time, spaced so that no rep's chat reaches Telegram's one message a
    // second: update posted → the owner's card at the Bot API.
    let run = new_id();
    let mut conn = Connection::open(&addr).await?;
    let mut to_card = Vec::with_capacity(samples);
    for n in 0..samples {
        let sent = Instant::now();
        let (status, _) = conn.post("/telegram/webhook", SECRET_HEADER, &update(&run, updates + n)).await?;
        anyhow::ensure!(status == "200", "status {status}");
        let who = format!("P{run}-{}", updates + n);
        let deadline = sent + Duration::from_secs(10);
        loop {
            if let Some(at) = cards.lock().ok().and_then(|c| c.get(&who).copied()) {
                to_card.push(at - sent);
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "no card for {who} within 10 s");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    drop(service);
    to_card.sort_unstable();
    println!(
        "Telegram update → owner's card at the Bot API, idle ({samples} one at a time): p50 {:.2?} p95 {:.2?} p99 {:.2?} max {:.2?}",
        percentile(&to_card, 0.50),
        percentile(&to_card, 0.95),
        percentile(&to_card, 0.99),
        to_card.last().copied().unwrap_or_default()
    );
    Ok(())
}
