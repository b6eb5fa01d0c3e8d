//! The Telegram channel against a fake Bot API: prospects' updates become leads, nothing is
//! confirmed before it is committed, and only one instance polls a bot.

use reqwest::StatusCode;
use serde_json::json;

use crate::both;
use crate::support::{Db, TestApp, eventually, identity_values};
use crate::telegram_fake::{FakeBot, fixture};

async fn prospects_messages_become_one_lead_with_everything_they_sent(db: Db) {
    let bot = FakeBot::start().await;
    let app = TestApp::spawn(db, &bot.config("polling")).await;

    bot.push(fixture("start_deeplink"));
    eventually(10, || async { app.items("telegram").await.len() == 1 }).await;
    let leads = app.leads("&channel=telegram").await;
    assert_eq!(leads.len(), 1);
    let lead = &leads[0];
    assert_eq!(lead["source"]["utm_source"], "google");
    assert_eq!(lead["source"]["utm_campaign"], "spring2026");
    assert_eq!(lead["source"]["bot"], "kestrel_bot");
    assert_eq!(lead["custom_fields"]["start_payload"], "src-google_spring2026");
    assert_eq!(lead["contact"]["name"], "Иван Петров");
    assert_eq!(identity_values(lead), ["123456789"]);
    // /start is answered with the welcome and a share-my-phone button.
    eventually(5, || async { !bot.calls("sendmessage").is_empty() }).await;
    let welcome = &bot.calls("sendmessage")[0];
    assert_eq!(welcome["chat_id"], 123456789);
    assert_eq!(welcome["reply_markup"]["keyboard"][0][0]["request_contact"], true);

    for name in ["private_text", "contact_own", "photo_caption"] {
        bot.push(fixture(name));
    }
    eventually(10, || async { app.items("telegram").await.len() == 4 }).await;
    let lead = app.lead(lead["id"].as_str().expect("id")).await;
    let ids = identity_values(&lead);
    assert!(ids.contains(&"ivan.petrov@example.com".to_owned()), "the email entity, cut with UTF-16 offsets: {ids:?}");
    assert!(ids.contains(&"+79123456789".to_owned()), "the phone entity and the shared contact: {ids:?}");
    let timeline = lead["interactions"].as_array().expect("timeline");
    assert_eq!(timeline.len(), 3, "follow-ups join the open lead");
    // Someone else's photo with a caption: a lead of its own, the photo kept as an attachment.
    let leads = app.leads("&channel=telegram").await;
    let photo =
        leads.iter().find(|l| identity_values(l).contains(&"987654321".to_owned())).expect("the photo sender's lead");
    let photo_ids = identity_values(photo);
    assert!(photo_ids.contains(&"maria.k@example.org".to_owned()), "an email after an emoji: {photo_ids:?}");
    let photo = app.lead(photo["id"].as_str().expect("id")).await;
    let files = photo["interactions"][0]["attachments"].as_array().cloned().unwrap_or_default();
    assert!(files.iter().any(|f| f["reference"].as_str().is_some_and(|r| r.starts_with("tg:"))), "{photo}");
    assert!(photo["interactions"][0]["text"].as_str().is_some_and(|t| t.contains("фото")), "the caption is the text");

    // An edit changes the message on the timeline instead of adding one.
    bot.push(fixture("edited"));
    eventually(10, || async { app.items("telegram").await.len() == 5 }).await;
    let edited = fixture("edited");
    let new_text = edited["edited_message"]["text"].as_str().expect("text").to_owned();
    let lead = app.lead(lead["id"].as_str().expect("id")).await;
    assert!(
        lead["interactions"].as_array().expect("timeline").iter().any(|i| i["text"] == new_text.as_str()),
        "{lead}"
    );
    assert_eq!(lead["interactions"].as_array().map(Vec::len), Some(3));

    // Groups, channels and bots are never leads; a user who blocks the bot is unreachable.
    for name in ["group_message", "supergroup_message", "channel_post", "bot_sender", "blocked"] {
        bot.push(fixture(name));
    }
    eventually(10, || async { app.items("telegram").await.len() == 10 }).await;
    let reasons: Vec<Option<String>> =
        app.items("telegram").await.into_iter().filter(|(_, s, _)| s == "skipped").map(|(_, _, r)| r).collect();
    for reason in ["group", "channel", "bot"] {
        assert!(reasons.iter().any(|r| r.as_deref() == Some(reason)), "{reason} missing from {reasons:?}");
    }
    assert_eq!(app.leads("&channel=telegram").await.len(), 2);
    let lead = app.lead(lead["id"].as_str().expect("id")).await;
    let telegram =
        lead["contact"]["identities"].as_array().expect("ids").iter().find(|i| i["kind"] == "telegram").cloned();
    assert!(telegram.is_some_and(|t| t["undeliverable_since"].is_string()), "blocked: {lead}");

    // Everything committed was confirmed to Telegram (asked for with a higher offset).
    eventually(5, || async { bot.unconfirmed() == 0 }).await;
}
both!(prospects_messages_become_one_lead_with_everything_they_sent);

async fn the_webhook_checks_the_secret_and_answers_after_commit(db: Db) {
    let bot = FakeBot::start().await;
    let mut app = TestApp::spawn(db, &bot.config("webhook")).await;
    let set = bot.calls("setwebhook");
    assert_eq!(set.len(), 1, "setWebhook on start");
    assert!(set[0]["url"].as_str().is_some_and(|u| u.ends_with("/telegram/webhook")));
    assert_eq!(set[0]["secret_token"], "hook-secret");

    let post = |secret: Option<&'static str>, body: Vec<u8>| {
        let mut r = app.client.post(app.url("/telegram/webhook")).header("content-type", "application/json").body(body);
        if let Some(s) = secret {
            r = r.header("x-telegram-bot-api-secret-token", s);
        }
        r.send()
    };
    let update = serde_json::to_vec(&fixture("private_text")).expect("json");
    assert_eq!(post(None, update.clone()).await.expect("post").status(), StatusCode::UNAUTHORIZED);
    assert_eq!(post(Some("wrong"), update.clone()).await.expect("post").status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.count("SELECT COUNT(*) FROM inbound_items").await, 0, "refused before anything is stored");

    assert_eq!(post(Some("hook-secret"), update.clone()).await.expect("post").status(), StatusCode::OK);
    assert_eq!(app.leads("&channel=telegram").await.len(), 1, "committed before the 200");
    assert_eq!(post(Some("hook-secret"), update).await.expect("post").status(), StatusCode::OK);
    assert_eq!(app.count("SELECT COUNT(*) FROM interactions").await, 1, "a redelivered update is a no-op");

    // An update nobody can read is kept as a failed item, never dropped.
    assert_eq!(post(Some("hook-secret"), b"{\"foo\": 1}".to_vec()).await.expect("post").status(), StatusCode::OK);
    assert_eq!(app.count("SELECT COUNT(*) FROM inbound_items WHERE status = 'failed'").await, 1);
    // Stopping leaves the webhook registered: updates wait at Telegram for the next start.
    app.stop().await;
    assert!(bot.calls("deletewebhook").is_empty());
}
both!(the_webhook_checks_the_secret_and_answers_after_commit);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_a_start_up_error() {
    let bot = FakeBot::start().await;
    let config =
        format!("{}\n{}", crate::support::BASE_CONFIG, bot.config("polling").replace("123456:TEST-token", "999:wrong"));
    let db = crate::support::TestDb::new(Db::Sqlite).await;
    let mut settings = leadrouter::settings::Settings::from_toml(&config).expect("config");
    settings.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    settings.database.url = db.url.clone();
    let err = leadrouter::app::App::build(settings).await.err().expect("refused");
    assert!(err.to_string().contains("telegram.token was refused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_poll_one_bot_at_once() {
    if crate::support::postgres_admin_url().await.is_none() {
        return;
    }
    let bot = FakeBot::start().await;
    let db = crate::support::TestDb::new(Db::Postgres).await;
    let config = format!("{}\n{}", crate::support::BASE_CONFIG, bot.config("polling"));
    let mut first = TestApp::spawn_shared(&db, &config).await;
    let second = TestApp::spawn_shared(&db, &config).await;
    for i in 0..10 {
        let mut update = fixture("private_text");
        update["message"]["message_id"] = json!(200 + i);
        bot.push(update);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    eventually(10, || async { second.items("telegram").await.len() == 10 }).await;
    assert_eq!(bot.max_concurrent_polls(), 1, "one getUpdates consumer per token");
    first.stop().await;
    let mut update = fixture("private_text");
    update["message"]["message_id"] = json!(300);
    bot.push(update);
    eventually(20, || async { second.items("telegram").await.len() == 11 }).await;
    assert_eq!(bot.max_concurrent_polls(), 1);
}

async fn a_failed_update_is_replayed_through_the_channel(db: Db) {
    let bot = FakeBot::start().await;
    let app = TestApp::spawn(db, &bot.config("webhook")).await;
    // As if the database had failed while the update was handled.
    let raw = serde_json::to_vec(&fixture("private_text")).expect("json");
    let meta = leadrouter::domain::InboundMeta::default();
    let id = app
        .store()
        .record_failed_inbound("telegram", "update:870001001", &meta, &raw, "database is locked", 0)
        .await
        .expect("recorded");
    let outcome = leadrouter::replay::replay(&app.intake, &id).await.expect("replayed");
    let leads = app.leads("&channel=telegram").await;
    assert_eq!(leads.len(), 1);
    assert_eq!(outcome.as_deref(), leads[0]["id"].as_str());
    assert_eq!(app.items("telegram").await, [("update:870001001".to_owned(), "processed".to_owned(), None)]);
    let again = leadrouter::replay::replay(&app.intake, &id).await.expect_err("not failed any more");
    assert!(again.to_string().contains("not failed"), "{again}");
}
both!(a_failed_update_is_replayed_through_the_channel);
