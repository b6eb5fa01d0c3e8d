//! Follow-up discipline through the real binary with durations of seconds: sla moves and the
//! manager's escalation, next-action rules and reminders, stale leads, auto-lost, the daily
//! digest (once, across restarts), and reminders sent once by two instances on PostgreSQL.
//! Reps and the manager hear in Telegram, through the fake Bot API.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::binary::Service;
use crate::both;
use crate::support::{BASE_SETUP, Db, TestDb, eventually, postgres_admin_url};
use crate::telegram_fake::FakeBot;

const ANNA: i64 = 5001;
const BEN: i64 = 5002;
const MARIA: i64 = 5009;

/// Anna and Ben in `sales`, managed by Maria (not a member); everyone hears in Telegram.
/// `team` and `pipeline` add keys to those sections.
fn config(bot: &FakeBot, team: &str, pipeline: &str) -> String {
    format!(
        r#"{BASE_SETUP}
[scheduler]
unassigned_interval = "200ms"

[pipeline]
{pipeline}

[[teams]]
id = "sales"
after_hours = true
manager = "maria"
{team}

[[reps]]
id = "anna"
name = "Anna"
telegram_chat_id = {ANNA}
teams = ["sales"]

[[reps]]
id = "ben"
name = "Ben"
telegram_chat_id = {BEN}
teams = ["sales"]

[[reps]]
id = "maria"
name = "Maria"
telegram_chat_id = {MARIA}

{}"#,
        bot.config("polling")
    )
}

/// Admin calls against a running binary.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(service: &Service) -> Api {
        Api { base: service.base.clone(), client: reqwest::Client::new() }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req =
            self.client.request(method, format!("{}{path}", self.base)).bearer_auth("admin-token-for-tests-0123456789");
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn lead(&self, id: &str) -> Value {
        self.send(reqwest::Method::GET, &format!("/api/v1/leads/{id}"), None).await.1
    }

    async fn patch(&self, id: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PATCH, &format!("/api/v1/leads/{id}"), Some(body)).await
    }

    async fn submit(&self, email: &str, message: &str) -> String {
        let r = self
            .client
            .post(format!("{}/api/v1/forms/contact", self.base))
            .json(&json!({"email": email, "name": email.split('@').next(), "message": message}))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        // The 202 names the inbound item; the lead is found by the contact's address.
        let leads = self.send(reqwest::Method::GET, &format!("/api/v1/leads?q={email}"), None).await.1;
        leads["items"][0]["id"].as_str().expect("lead for the submission").to_owned()
    }
}

/// Texts the bot sent to `chat`, oldest first.
fn texts(bot: &FakeBot, chat: i64) -> Vec<String> {
    bot.calls("sendmessage")
        .iter()
        .filter(|c| c["chat_id"] == chat)
        .filter_map(|c| c["text"].as_str().map(str::to_owned))
        .collect()
}

fn count(bot: &FakeBot, chat: i64, prefix: &str) -> usize {
    texts(bot, chat).iter().filter(|t| t.starts_with(prefix)).count()
}

fn rfc3339_in(secs: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs)).to_string()
}

fn chat_of(owner: &str) -> i64 {
    if owner == "anna" { ANNA } else { BEN }
}

async fn sla_moves_a_lead_once_then_alerts_the_manager(db: Db) {
    let bot = FakeBot::start().await;
    let db = TestDb::new(db).await;
    let service = Service::start(&db, &config(&bot, "sla = \"2s\"\nmax_reassignments = 1", "")).await;
    let api = Api::new(&service);
    let id = api.submit("ivan@example.com", "Need 40 chairs").await;
    let first = api.lead(&id).await["owner"]["id"].as_str().expect("owner").to_owned();

    // Nobody takes it on: after the sla it moves to the other rep, and both hear of it.
    eventually(10, || async { api.lead(&id).await["owner"]["id"] != first.as_str() }).await;
    let second = api.lead(&id).await["owner"]["id"].as_str().expect("owner").to_owned();
    eventually(5, || async { count(&bot, chat_of(&first), "↪️ ivan was not taken on in time") == 1 }).await;
    eventually(5, || async { count(&bot, chat_of(&second), "👤 Lead for you: ivan") == 1 }).await;

    // After max_reassignments moves it stays put and the manager is alerted, once.
    eventually(10, || async { count(&bot, MARIA, "🚨 ivan went to 2 reps in turn") == 1 }).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let lead = api.lead(&id).await;
    assert_eq!(lead["owner"]["id"], second.as_str(), "no ping-pong after the escalation");
    let sla_moves =
        lead["assignments"].as_array().expect("assignments").iter().filter(|a| a["reason"] == "sla").count();
    assert_eq!(sla_moves, 1);
    assert_eq!(count(&bot, MARIA, "🚨"), 1, "{:?}", texts(&bot, MARIA));
}
both!(sla_moves_a_lead_once_then_alerts_the_manager);

async fn next_actions_are_required_reminded_once_and_flagged_overdue(db: Db) {
    let bot = FakeBot::start().await;
    let db = TestDb::new(db).await;
    let service = Service::start(&db, &config(&bot, "", "")).await;
    let api = Api::new(&service);
    let id = api.submit("olga@example.com", "Quote for a kitchen").await;
    let owner = api.lead(&id).await["owner"]["id"].as_str().expect("owner").to_owned();

    let (status, err) = api.patch(&id, json!({"status": "qualification"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(err["error"]["message"].as_str().is_some_and(|m| m.contains("needs a `next_action_at`")), "{err}");
    assert_eq!(api.lead(&id).await["status"], "new", "a refused change changes nothing");

    let (status, lead) = api
        .patch(
            &id,
            json!({"status": "qualification", "next_action_at": rfc3339_in(2), "next_action_note": "call back"}),
        )
        .await;
    assert_eq!((status, &lead["overdue"]), (StatusCode::OK, &json!(false)), "{lead}");
    let (status, _) = api.patch(&id, json!({"next_action_at": null})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "the next step cannot be dropped past new");

    let reminder = "⏰ Next step for olga was due";
    eventually(10, || async { count(&bot, chat_of(&owner), reminder) == 1 }).await;
    let text = texts(&bot, chat_of(&owner)).into_iter().find(|t| t.starts_with(reminder)).expect("reminder");
    assert!(text.contains(": call back") && text.contains("/lead_"), "{text}");
    assert_eq!(api.lead(&id).await["overdue"], true);
    let (_, overdue) = api.send(reqwest::Method::GET, "/api/v1/leads?overdue=true", None).await;
    let ids: Vec<&str> = overdue["items"].as_array().expect("items").iter().filter_map(|l| l["id"].as_str()).collect();
    assert_eq!(ids, [id.as_str()]);

    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(count(&bot, chat_of(&owner), reminder), 1, "reminded once per due date");
    // A new date is a new reminder.
    api.patch(&id, json!({"next_action_at": rfc3339_in(1)})).await;
    eventually(10, || async { count(&bot, chat_of(&owner), reminder) == 2 }).await;
}
both!(next_actions_are_required_reminded_once_and_flagged_overdue);

async fn quiet_leads_alert_the_owner_and_the_manager(db: Db) {
    let bot = FakeBot::start().await;
    let db = TestDb::new(db).await;
    let service = Service::start(&db, &config(&bot, "", "stale_after = \"2s\"")).await;
    let api = Api::new(&service);
    let id = api.submit("petr@example.com", "Do you ship to Minsk?").await;
    let owner = api.lead(&id).await["owner"]["id"].as_str().expect("owner").to_owned();

    let alert = "💤 No activity on petr for";
    eventually(10, || async { count(&bot, chat_of(&owner), alert) == 1 && count(&bot, MARIA, alert) == 1 }).await;
    let text = texts(&bot, MARIA).into_iter().find(|t| t.starts_with(alert)).expect("alert");
    assert!(
        text.contains("status new") && text.contains(if owner == "anna" { "owner Anna" } else { "owner Ben" }),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(count(&bot, MARIA, alert), 1, "once per quiet spell");

    // Activity re-arms it: quiet again for the period, alerted again.
    let (status, _) = api
        .send(reqwest::Method::POST, &format!("/api/v1/leads/{id}/notes"), Some(json!({"text": "emailed the rates"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    eventually(10, || async { count(&bot, MARIA, alert) == 2 }).await;
}
both!(quiet_leads_alert_the_owner_and_the_manager);

async fn unanswered_leads_close_as_no_response(db: Db) {
    let bot = FakeBot::start().await;
    let db = TestDb::new(db).await;
    let pipeline = "auto_lost_after = \"2s\"\nauto_lost_attempts = 2";
    let service = Service::start(&db, &config(&bot, "", pipeline)).await;
    let api = Api::new(&service);
    let later = "2030-01-02T09:00:00Z";
    let waiting = api.submit("wait@example.com", "Send me the offer").await;
    let called = api.submit("called@example.com", "Call me").await;
    let answered = api.submit("answered@example.com", "Call me too").await;
    api.patch(&waiting, json!({"status": "waiting_response", "next_action_at": later})).await;
    for id in [&called, &answered] {
        api.patch(id, json!({"status": "qualification", "next_action_at": later})).await;
        for _ in 0..2 {
            let note = json!({"text": "no answer", "kind": "call"});
            let (status, _) = api.send(reqwest::Method::POST, &format!("/api/v1/leads/{id}/notes"), Some(note)).await;
            assert_eq!(status, StatusCode::CREATED);
        }
    }
    // The prospect writes back after the calls: not unanswered any more.
    api.submit("answered@example.com", "Sorry, missed your calls").await;

    for id in [&waiting, &called] {
        eventually(10, || async { api.lead(id).await["status"] == "lost" }).await;
        let lead = api.lead(id).await;
        assert_eq!(lead["lost_reason"], "no_response", "{lead}");
        let last = lead["status_changes"].as_array().and_then(|c| c.last()).cloned().unwrap_or_default();
        assert_eq!((&last["to"], &last["actor"]), (&json!("lost"), &json!("scheduler")), "{lead}");
    }
    assert!(api.lead(&called).await["lost_note"].as_str().is_some_and(|n| n.contains("2 messages in a row")));
    assert!(api.lead(&waiting).await["lost_note"].as_str().is_some_and(|n| n.contains("waiting for a response")));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(api.lead(&answered).await["status"], "qualification", "a prospect who wrote back is not closed");

    // Closing freed the owners' capacity.
    let (_, reps) = api.send(reqwest::Method::GET, "/api/v1/reps", None).await;
    let open: i64 = reps["items"].as_array().expect("reps").iter().filter_map(|r| r["open_leads"].as_i64()).sum();
    assert_eq!(open, 1, "{reps}");
}
both!(unanswered_leads_close_as_no_response);

/// The digest goes out once per manager and local day, whatever restarts happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_digest_goes_out_once_a_day() {
    let bot = FakeBot::start().await;
    let db = TestDb::new(Db::Sqlite).await;
    let off = config(&bot, "", "digest_at = \"\"");
    let on = config(&bot, "", "digest_at = \"00:00\"");
    let mut service = Service::start(&db, &off).await;
    let api = Api::new(&service);
    let overdue = api.submit("late@example.com", "Hello").await;
    api.submit("fresh@example.com", "Hello").await;
    api.patch(&overdue, json!({"status": "qualification", "next_action_at": rfc3339_in(-3600)})).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(count(&bot, MARIA, "📊"), 0, "digest_at = \"\" sends none");
    service.kill9();

    let mut service = Service::start(&db, &on).await;
    eventually(10, || async { count(&bot, MARIA, "📊") == 1 }).await;
    let digest = texts(&bot, MARIA).into_iter().find(|t| t.starts_with("📊")).expect("digest");
    assert!(digest.starts_with("📊 sales — yesterday: 0 new, 0 won, 0 lost."), "{digest}");
    assert!(digest.contains("Now: 0 unassigned, 1 overdue, 0 stale."), "{digest}");
    assert!(texts(&bot, ANNA).iter().chain(&texts(&bot, BEN)).all(|t| !t.starts_with("📊")), "managers only");
    service.kill9();

    let service = Service::start(&db, &on).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count(&bot, MARIA, "📊"), 1, "not again after a restart");
    drop(service);
}

/// Two instances on one PostgreSQL run the same jobs: each due lead is reminded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_remind_each_due_lead_once() {
    if postgres_admin_url().await.is_none() {
        return;
    }
    let bot = FakeBot::start().await;
    let db = TestDb::new(Db::Postgres).await;
    let config = config(&bot, "", "");
    let one = Service::start(&db, &config).await;
    let two = Service::start(&db, &config).await;
    let api = Api::new(&one);
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(api.submit(&format!("due{i}@example.com"), "Hello").await);
    }
    let due = rfc3339_in(2);
    for id in &ids {
        let (status, body) = api.patch(id, json!({"status": "qualification", "next_action_at": due})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let reminders = || {
        texts(&bot, ANNA).into_iter().chain(texts(&bot, BEN)).filter(|t| t.starts_with("⏰ Next step for due")).count()
    };
    eventually(15, || async { reminders() >= ids.len() }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(reminders(), ids.len(), "each once, though both instances ran the job");
    drop((one, two));
}

/// Reminders falling due one after another while the service is killed (`kill -9`): after
/// the restart every due lead has been reminded, none twice.
async fn kill_dash_nine_while_reminding_loses_and_doubles_nothing(db: Db) {
    let bot = FakeBot::start().await;
    let db = TestDb::new(db).await;
    let config = config(&bot, "", "");
    let mut service = Service::start(&db, &config).await;
    let api = Api::new(&service);
    let n = 30;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(api.submit(&format!("crash{i}@example.com"), "Hello").await);
    }
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
    for (i, id) in (0i64..).zip(&ids) {
        // Due 100 ms apart, so the scheduler's ticks take a few at a time.
        let due = (start + jiff::SignedDuration::from_millis(100 * i)).to_string();
        let (status, body) = api.patch(id, json!({"status": "qualification", "next_action_at": due})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let store = leadrouter::store::Store::connect(&db.url, 2).await.expect("store");
    let pool = store.reader_pool();
    let reminded = || async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE type = 'lead.next_action_due'")
            .fetch_one(&pool)
            .await
            .expect("count");
        n
    };
    eventually(15, || async { reminded().await >= 5 }).await;
    service.kill9();
    let at_kill = reminded().await;
    let service = Service::start(&db, &config).await;
    eventually(15, || async { reminded().await == n }).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let twice: Vec<String> = sqlx::query_scalar(
        "SELECT lead_id FROM events WHERE type = 'lead.next_action_due' GROUP BY lead_id HAVING COUNT(*) > 1",
    )
    .fetch_all(&pool)
    .await
    .expect("duplicates");
    assert!(twice.is_empty(), "reminded twice: {twice:?}");
    assert_eq!(reminded().await, n);
    assert!(at_kill < n, "the kill came while reminders were still falling due ({at_kill} of {n})");
    store.close().await;
    drop(service);
}
both!(kill_dash_nine_while_reminding_loses_and_doubles_nothing);
