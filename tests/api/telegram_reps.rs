//! The rep side of the bot against the fake Bot API: cards with buttons, taking a lead,
//! answering the prospect by replying, commands, linking a rep, and the claim flow in a team
//! chat.

use serde_json::{Value, json};

use crate::both;
use crate::support::{Db, TestApp, eventually};
use crate::telegram_fake::{FakeBot, fixture, press, says};

const ANNA: (i64, &str) = (5001, "Anna");
const BEN: (i64, &str) = (5002, "Ben");
const IVAN: i64 = 123456789;
const GROUP: i64 = -100500;

/// Two reps with Telegram in team `sales`; `team` adds keys to the team. (The people of a
/// test app: `TestApp::spawn_people`.)
fn config(bot: &FakeBot, team: &str) -> String {
    format!(
        r#"
[scheduler]
unassigned_interval = "300ms"

[[teams]]
id = "sales"
after_hours = true
{team}

[[reps]]
id = "anna"
name = "Anna"
telegram_chat_id = 5001
teams = ["sales"]

[[reps]]
id = "ben"
name = "Ben"
telegram_chat_id = 5002
teams = ["sales"]

[[teams]]
id = "support"

[[reps]]
id = "dora"
name = "Dora"
teams = ["support"]

{}
"#,
        bot.config("polling")
    )
}

/// The newest call of `method` that `matches`, waiting for it.
/// Waits for a Bot API call. Generous: the sender paces each chat at about one message a
/// second (as Telegram requires), so a busy chat's later messages wait their turn.
async fn call(bot: &FakeBot, method: &str, matches: impl Fn(&Value) -> bool) -> Value {
    let found = || bot.calls(method).into_iter().rev().find(|c| matches(c));
    eventually(20, || async { found().is_some() }).await;
    found().unwrap_or_default()
}

async fn calls_now(bot: &FakeBot, method: &str, n: usize) -> Vec<Value> {
    eventually(20, || async { bot.calls(method).len() >= n }).await;
    bot.calls(method)
}

fn buttons(call: &Value) -> Vec<String> {
    call["reply_markup"]["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["callback_data"].as_str().map(str::to_owned))
        .collect()
}

fn text(call: &Value) -> &str {
    call["text"].as_str().unwrap_or_default()
}

fn message_id(call: &Value) -> i64 {
    call["_message_id"].as_i64().expect("the fake numbered the message")
}

/// Ivan writes; returns his lead's id and who owns it.
async fn ivan_writes(app: &TestApp, bot: &FakeBot) -> (String, (i64, &'static str), (i64, &'static str)) {
    bot.push(fixture("private_text"));
    eventually(10, || async { app.leads("&channel=telegram").await.len() == 1 }).await;
    let lead = app.leads("&channel=telegram").await.remove(0);
    let owner = if lead["owner"]["id"] == "anna" { ANNA } else { BEN };
    let other = if owner == ANNA { BEN } else { ANNA };
    (lead["id"].as_str().expect("id").to_owned(), owner, other)
}

async fn reps_take_leads_and_answer_prospects_by_replying(db: Db) {
    let bot = FakeBot::start().await;
    let app = TestApp::spawn_people(db, &config(&bot, "strategy = \"round_robin\"")).await;
    let (id, owner, other) = ivan_writes(&app, &bot).await;

    // The owner's card: who, how to reach them, what they wrote, and the buttons.
    let card = call(&bot, "sendmessage", |c| c["chat_id"] == owner.0).await;
    assert!(text(&card).starts_with("🆕 New lead: Иван Петров"), "{}", text(&card));
    assert!(text(&card).contains("ivan.petrov@example.com") && text(&card).contains("доставка"), "{}", text(&card));
    assert_eq!(buttons(&card), [format!("take:{id}"), format!("open:{id}"), format!("lost:{id}")]);
    assert!(bot.calls("sendmessage").iter().all(|c| c["chat_id"] != other.0), "only the owner hears");
    let card_id = message_id(&card);

    // Someone else's press is refused with an alert; the owner's takes the lead on.
    bot.push(press(other, other.0, card_id, &format!("take:{id}")));
    let refused = calls_now(&bot, "answercallbackquery", 1).await.remove(0);
    assert_eq!(refused["show_alert"], true);
    assert!(text(&refused).contains(&format!("{} has this lead now", owner.1)), "{refused}");
    bot.push(press(owner, owner.0, card_id, &format!("take:{id}")));
    let taken = calls_now(&bot, "answercallbackquery", 2).await.remove(1);
    assert_eq!(text(&taken), "It's yours.");
    let lead = app.lead(&id).await;
    assert!(lead["accepted_at"].is_string(), "{lead}");
    assert_eq!(lead["owner"]["id"], owner.1.to_lowercase());
    let edited = call(&bot, "editmessagetext", |c| c["message_id"] == card_id).await;
    assert_eq!(buttons(&edited), [format!("open:{id}"), format!("lost:{id}")], "Take is gone once taken");
    bot.push(press(owner, owner.0, card_id, &format!("take:{id}")));
    let again = calls_now(&bot, "answercallbackquery", 3).await.remove(2);
    assert_eq!(text(&again), "It's already yours.");

    // A reply to the card goes to Ivan through the bot and onto the timeline.
    bot.push(says(owner, 77, "Добрый день, Иван! Когда удобно созвониться?", Some(card_id)));
    let copy = call(&bot, "copymessage", |_| true).await;
    assert_eq!(
        (copy["chat_id"].as_i64(), copy["from_chat_id"].as_i64(), copy["message_id"].as_i64()),
        (Some(IVAN), Some(owner.0), Some(77))
    );
    call(&bot, "setmessagereaction", |c| c["message_id"] == 77).await;
    let lead = app.lead(&id).await;
    assert!(lead["first_response_at"].is_string(), "{lead}");
    let last = lead["interactions"].as_array().and_then(|t| t.last().cloned()).expect("timeline");
    assert_eq!((last["direction"].as_str(), last["channel"].as_str()), (Some("outbound"), Some("telegram")));
    assert!(text(&last).starts_with("Добрый день"));

    // Ivan answers: the owner hears, and can reply to that card too.
    let mut answer = fixture("private_text");
    answer["message"]["message_id"] = json!(150);
    answer["message"]["text"] = json!("Давайте завтра в 10");
    answer["message"].as_object_mut().expect("message").remove("entities");
    bot.push(answer);
    let news = call(&bot, "sendmessage", |c| text(c).starts_with("💬 New message")).await;
    assert_eq!(news["chat_id"], owner.0);
    assert!(text(&news).contains("Давайте завтра в 10"));
    bot.push(says(owner, 78, "Договорились", Some(message_id(&news))));
    eventually(20, || async { bot.calls("copymessage").len() == 2 }).await;

    // Handed over to the other rep: they hear, and the old card no longer reaches Ivan.
    let (status, _) = app.patch(&format!("/api/v1/leads/{id}"), json!({"owner": other.1.to_lowercase()})).await;
    assert_eq!(status, 200);
    let handed = call(&bot, "sendmessage", |c| c["chat_id"] == other.0).await;
    assert!(text(&handed).starts_with("👤 Lead for you"), "{handed}");
    bot.push(says(owner, 79, "Иван, ещё вопрос", Some(card_id)));
    let refusal = call(&bot, "sendmessage", |c| c["chat_id"] == owner.0 && text(c).contains("not sent")).await;
    assert!(text(&refusal).starts_with(&format!("This lead is {}'s.", other.1)), "{refusal}");
    assert_eq!(bot.calls("copymessage").len(), 2);
    let outbound = app.lead(&id).await["interactions"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|i| i["direction"] == "outbound")
        .count();
    assert_eq!(outbound, 2);
}
both!(reps_take_leads_and_answer_prospects_by_replying);

async fn reps_work_their_leads_with_commands_and_buttons(db: Db) {
    let bot = FakeBot::start().await;
    let app = TestApp::spawn_people(db, &config(&bot, "strategy = \"round_robin\"")).await;
    let (id, owner, _) = ivan_writes(&app, &bot).await;
    let short = &id[id.len() - 8..];
    let bot_ref = &bot;
    let said = |n: usize| async move { calls_now(bot_ref, "sendmessage", n).await.pop().unwrap_or_default() };
    let card = call(&bot, "sendmessage", |c| c["chat_id"] == owner.0).await;
    let before = bot.calls("sendmessage").len();

    bot.push(says(owner, 10, "/leads", None));
    let list = said(before + 1).await;
    assert!(text(&list).contains("Иван Петров") && text(&list).contains(&format!("/lead_{short}")), "{list}");
    bot.push(says(owner, 11, &format!("/lead_{short}"), None));
    let detail = said(before + 2).await;
    assert!(text(&detail).starts_with("📄 Lead: Иван Петров") && text(&detail).contains("→ Здравствуйте"), "{detail}");
    bot.push(says(owner, 12, &format!("/status {short} negotiation"), None));
    let refused = said(before + 3).await;
    assert!(
        text(&refused).starts_with(&format!("negotiation needs a next step first: /next {short} <when>")),
        "{refused}"
    );
    assert_eq!(app.lead(&id).await["status"], "new", "an open lead past new carries its next step");
    bot.push(says(owner, 13, &format!("/next {short} 2d send the price list"), None));
    let next = said(before + 4).await;
    assert!(
        text(&next).starts_with("Иван Петров: next step on ") && text(&next).ends_with(": send the price list."),
        "{next}"
    );
    assert_eq!(app.lead(&id).await["next_action_note"], "send the price list");
    bot.push(says(owner, 14, &format!("/status {short} negotiation"), None));
    let done = said(before + 5).await;
    assert_eq!(text(&done), "Иван Петров: negotiation.");
    assert_eq!(app.lead(&id).await["status"], "negotiation");
    bot.push(says(owner, 15, &format!("/status {short} flying"), None));
    assert!(text(&said(before + 6).await).contains("unknown status `flying`"));
    bot.push(says(owner, 16, "/status 00000000 won", None));
    assert!(text(&said(before + 7).await).contains("no lead 00000000"));
    bot.push(says(owner, 17, &format!("/next {short} someday"), None));
    assert!(text(&said(before + 8).await).starts_with("`someday` is not a time"));
    assert_eq!(app.lead(&id).await["status"], "negotiation", "refused commands change nothing");

    // Lost…: the reasons replace the buttons; one of them closes the lead.
    let card_id = message_id(&card);
    bot.push(press(owner, owner.0, card_id, &format!("lost:{id}")));
    let reasons = call(&bot, "editmessagereplymarkup", |c| c["message_id"] == card_id).await;
    assert_eq!(buttons(&reasons)[0], format!("lr:{id}:0"));
    assert_eq!(buttons(&reasons).last().cloned(), Some(format!("back:{id}")));
    bot.push(press(owner, owner.0, card_id, &format!("lr:{id}:0")));
    eventually(10, || async { app.lead(&id).await["status"] == "lost" }).await;
    assert_eq!(app.lead(&id).await["lost_reason"], "too expensive", "pipeline.lost_reasons, first one");
    let answers = calls_now(&bot, "answercallbackquery", 2).await;
    assert_eq!(text(&answers[1]), "Marked lost: too expensive.");
    let closed = call(&bot, "editmessagetext", |c| c["message_id"] == card_id).await;
    assert!(text(&closed).contains("lost (too expensive)") && buttons(&closed).is_empty(), "{closed}");
    // The old buttons are stale now, and say so.
    bot.push(press(owner, owner.0, card_id, &format!("take:{id}")));
    let stale = calls_now(&bot, "answercallbackquery", 3).await.remove(2);
    assert!(text(&stale).contains("closed (lost)"), "{stale}");
    // Someone who is not a rep cannot use buttons at all.
    bot.push(press((IVAN, "Иван"), IVAN, card_id, &format!("open:{id}")));
    let stranger = calls_now(&bot, "answercallbackquery", 4).await.remove(3);
    assert!(text(&stranger).contains("Only linked reps"), "{stranger}");
    let refused = app.count("SELECT COUNT(*) FROM inbound_items WHERE reason = 'refused'").await;
    assert_eq!(refused, 6, "refusals are recorded with the update");
}
both!(reps_work_their_leads_with_commands_and_buttons);

async fn a_one_time_link_connects_a_reps_telegram(db: Db) {
    let bot = FakeBot::start().await;
    let app = TestApp::spawn_people(db, &config(&bot, "strategy = \"round_robin\"")).await;
    let (status, link) = app
        .send_as(
            "admin-token-for-tests-0123456789",
            reqwest::Method::POST,
            "/api/v1/reps/dora/telegram-link",
            &json!({}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let url = link["url"].as_str().expect("url");
    let code = url.strip_prefix("https://t.me/kestrel_bot?start=").expect("a deep link to our bot");
    assert!(code.starts_with("link-") && code.len() <= 64, "{code}");
    let (missing, _) = app
        .send_as(
            "admin-token-for-tests-0123456789",
            reqwest::Method::POST,
            "/api/v1/reps/nobody/telegram-link",
            &json!({}),
        )
        .await;
    assert_eq!(missing, 404);
    let (forbidden, _) = app
        .send_as(
            "anna-token-for-tests-0123456789",
            reqwest::Method::POST,
            "/api/v1/reps/anna/telegram-link",
            &json!({}),
        )
        .await;
    assert_eq!(forbidden, 401);

    bot.push(says((7007, "Dora"), 1, &format!("/start {code}"), None));
    let hello = call(&bot, "sendmessage", |c| c["chat_id"] == 7007).await;
    assert!(text(&hello).starts_with("You are linked as Dora"), "{hello}");
    let reps = app.get("/api/v1/reps").await;
    let dora = reps["items"].as_array().expect("items").iter().find(|r| r["id"] == "dora").cloned().expect("dora");
    assert_eq!(dora["telegram_chat_id"], 7007);
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 0, "a rep linking is not a lead");

    // Used once: the same link from someone else links nobody.
    bot.push(says((8008, "Mallory"), 1, &format!("/start {code}"), None));
    let no = call(&bot, "sendmessage", |c| c["chat_id"] == 8008).await;
    assert!(text(&no).contains("unknown, used or expired"), "{no}");
    assert_eq!(app.count("SELECT COUNT(*) FROM reps WHERE telegram_chat_id = 8008").await, 0);
    // Dora now talks to the bot as a rep, not as a prospect.
    bot.push(says((7007, "Dora"), 2, "/leads", None));
    let list = call(&bot, "sendmessage", |c| c["chat_id"] == 7007 && text(c).contains("no open leads")).await;
    assert!(!text(&list).is_empty());
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 0);
}
both!(a_one_time_link_connects_a_reps_telegram);

async fn the_first_rep_to_press_take_in_the_team_chat_gets_the_lead(db: Db) {
    let bot = FakeBot::start().await;
    let team = format!("strategy = \"claim\"\nnotify_chat_id = {GROUP}\nsla = \"2s\"");
    let app = TestApp::spawn_people(db, &config(&bot, &team)).await;
    bot.push(fixture("private_text"));
    let post = call(&bot, "sendmessage", |c| c["chat_id"] == GROUP).await;
    let lead = app.leads("&channel=telegram").await.remove(0);
    let id = lead["id"].as_str().expect("id").to_owned();
    assert!(lead["owner"].is_null(), "a claim lead waits for a taker");
    assert_eq!(buttons(&post), [format!("take:{id}")]);
    assert!(text(&post).contains("nobody has it yet"));

    // Ben and Anna press at once; exactly one of them gets it.
    bot.push(press(BEN, GROUP, message_id(&post), &format!("take:{id}")));
    bot.push(press(ANNA, GROUP, message_id(&post), &format!("take:{id}")));
    let answers = calls_now(&bot, "answercallbackquery", 2).await;
    let winner = app.lead(&id).await["owner"]["name"].as_str().expect("owner").to_owned();
    let won: Vec<&Value> = answers.iter().filter(|a| text(a) == "It's yours.").collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    assert!(answers.iter().any(|a| text(a).contains(&format!("{winner} has this lead now"))), "{answers:?}");
    let lead = app.lead(&id).await;
    assert_eq!(lead["assignments"][0]["reason"], "claim");
    assert!(lead["accepted_at"].is_string());
    // The post says who took it; the taker gets the lead in private.
    let edited = call(&bot, "editmessagetext", |c| c["chat_id"] == GROUP).await;
    assert!(text(&edited).contains(&format!("taken by {winner}")) && buttons(&edited).is_empty(), "{edited}");
    let winner_chat = if winner == "Anna" { ANNA.0 } else { BEN.0 };
    let private = call(&bot, "sendmessage", |c| c["chat_id"] == winner_chat).await;
    assert!(text(&private).starts_with("👤 Lead for you"), "{private}");

    // Nobody takes the next one: after the team's sla it goes round-robin.
    let mut maria = fixture("photo_caption");
    maria["message"]["message_id"] = json!(300);
    bot.push(maria);
    eventually(10, || async { app.leads("&channel=telegram").await.len() == 2 }).await;
    let second = app.leads("&channel=telegram").await.remove(0);
    let second_id = second["id"].as_str().expect("id").to_owned();
    assert!(second["owner"].is_null());
    eventually(10, || async { app.lead(&second_id).await["owner"].is_object() }).await;
    let second = app.lead(&second_id).await;
    assert_eq!(second["assignments"][0]["reason"], "claim_timeout");
    let at = |v: &Value| v.as_str().expect("time").parse::<jiff::Timestamp>().expect("RFC 3339").as_millisecond();
    let waited = at(&second["assignments"][0]["at"]) - at(&second["created_at"]);
    assert!(waited >= 2000, "not before the sla: {waited} ms");
    let owner = second["owner"]["name"].as_str().expect("owner").to_owned();
    call(&bot, "editmessagetext", |c| c["chat_id"] == GROUP && text(c).contains(&format!("owner {owner}"))).await;
}
both!(the_first_rep_to_press_take_in_the_team_chat_gets_the_lead);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_waits_out_flood_control_and_a_blocked_prospect_is_visible() {
    let bot = FakeBot::start().await;
    let app = TestApp::spawn_people(Db::Sqlite, &config(&bot, "strategy = \"round_robin\"")).await;
    let (id, owner, _) = ivan_writes(&app, &bot).await;
    let card = call(&bot, "sendmessage", |c| c["chat_id"] == owner.0).await;

    // Telegram says "retry after 1": the message goes out again no sooner.
    bot.flood(1);
    bot.push(says(owner, 20, "/leads", None));
    let list = call(&bot, "sendmessage", |c| text(c).starts_with("Your open leads")).await;
    let floods = bot.timed_calls("sendmessage:429");
    assert_eq!(floods.len(), 1);
    let refused_at = floods[0].0;
    let sent_at = bot.timed_calls("sendmessage").into_iter().find(|(_, c)| c == &list).expect("sent").0;
    assert!(sent_at - refused_at >= std::time::Duration::from_millis(950), "{:?}", sent_at - refused_at);

    // Ivan blocks the bot: the reply fails for good, is listed as dead, and the rep is told.
    bot.block(IVAN);
    bot.push(says(owner, 21, "Иван, вы здесь?", Some(message_id(&card))));
    let notice = call(&bot, "sendmessage", |c| c["chat_id"] == owner.0 && text(c).contains("Not delivered")).await;
    assert_eq!(notice["reply_parameters"]["message_id"], 21);
    let dead = app.get("/api/v1/outbox?status=dead").await;
    let dead = dead["items"].as_array().expect("items");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["target"], format!("prospect:{IVAN}"));
    assert_eq!(dead[0]["lead_id"], id);
    let identities = app.lead(&id).await["contact"]["identities"].clone();
    let telegram = identities.as_array().expect("ids").iter().find(|i| i["kind"] == "telegram").cloned().expect("tg");
    assert!(telegram["undeliverable_since"].is_string(), "{telegram}");
    // Further replies are refused at once instead of failing later.
    bot.push(says(owner, 22, "Алло?", Some(message_id(&card))));
    call(&bot, "sendmessage", |c| c["chat_id"] == owner.0 && text(c).contains("blocked the bot")).await;
    assert_eq!(bot.calls("copymessage").len(), 1);
}

async fn a_lead_nobody_takes_on_within_the_sla_moves_to_the_next_rep(db: Db) {
    let bot = FakeBot::start().await;
    let app = TestApp::spawn_people(db, &config(&bot, "strategy = \"round_robin\"\nsla = \"1s\"")).await;
    let (id, first, second) = ivan_writes(&app, &bot).await;
    let card = call(&bot, "sendmessage", |c| c["chat_id"] == first.0).await;

    eventually(10, || async { app.lead(&id).await["owner"]["name"] == second.1 }).await;
    let lead = app.lead(&id).await;
    let last = lead["assignments"].as_array().and_then(|a| a.last().cloned()).expect("assignments");
    assert_eq!(last["reason"], "sla");
    let handed = call(&bot, "sendmessage", |c| c["chat_id"] == second.0).await;
    assert!(text(&handed).starts_with("👤 Lead for you"), "{handed}");
    // The first rep's card is stale now.
    bot.push(press(first, first.0, message_id(&card), &format!("take:{id}")));
    let stale = calls_now(&bot, "answercallbackquery", 1).await.remove(0);
    assert!(text(&stale).contains(&format!("{} has this lead now", second.1)), "{stale}");

    // Taken on in time, it stays.
    bot.push(press(second, second.0, message_id(&handed), &format!("take:{id}")));
    calls_now(&bot, "answercallbackquery", 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let lead = app.lead(&id).await;
    assert_eq!(lead["owner"]["name"], second.1);
    assert_eq!(lead["assignments"].as_array().map(Vec::len), Some(2));
}
both!(a_lead_nobody_takes_on_within_the_sla_moves_to_the_next_rep);

/// Telegram delivers a webhook update again when it did not get our 200: the press is
/// answered once and changes the lead once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_button_press_is_answered_once() {
    let bot = FakeBot::start().await;
    let app = TestApp::spawn_people(
        Db::Sqlite,
        &config(&bot, "strategy = \"round_robin\"").replace("\"polling\"", "\"webhook\""),
    )
    .await;
    let post = |update: Value| {
        app.client
            .post(app.url("/telegram/webhook"))
            .header("x-telegram-bot-api-secret-token", "hook-secret")
            .json(&update)
            .send()
    };
    let mut update = fixture("private_text");
    update["update_id"] = json!(1);
    assert_eq!(post(update).await.expect("post").status(), 200);
    let lead = app.leads("&channel=telegram").await.remove(0);
    let id = lead["id"].as_str().expect("id").to_owned();
    let owner = if lead["owner"]["id"] == "anna" { ANNA } else { BEN };
    let card = call(&bot, "sendmessage", |c| c["chat_id"] == owner.0).await;
    let mut take = press(owner, owner.0, message_id(&card), &format!("take:{id}"));
    take["update_id"] = json!(2);
    for _ in 0..3 {
        assert_eq!(post(take.clone()).await.expect("post").status(), 200);
    }
    calls_now(&bot, "answercallbackquery", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(bot.calls("answercallbackquery").len(), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox WHERE event_type = 'telegram.answer'").await, 1);
    assert!(app.lead(&id).await["accepted_at"].is_string());
}

async fn a_deactivated_rep_cannot_act_from_telegram(db: Db) {
    let bot = FakeBot::start().await;
    let app = TestApp::spawn_people(db, &config(&bot, "strategy = \"round_robin\"")).await;
    let (id, owner, _) = ivan_writes(&app, &bot).await;
    let card = call(&bot, "sendmessage", |c| c["chat_id"] == owner.0).await;
    let rep = owner.1.to_lowercase();
    let (status, _) = app.patch(&format!("/api/v1/reps/{rep}"), json!({"active": false})).await;
    assert_eq!(status, 200);

    // A button: refused with an alert, the lead untouched.
    bot.push(press(owner, owner.0, message_id(&card), &format!("take:{id}")));
    let refused = calls_now(&bot, "answercallbackquery", 1).await.remove(0);
    assert_eq!(refused["show_alert"], true);
    assert!(text(&refused).contains("switched off"), "{refused}");
    assert!(app.lead(&id).await["accepted_at"].is_null());
    // A command or a reply to the card: refused, nothing reaches Ivan.
    bot.push(says(owner, 90, "/leads", None));
    call(&bot, "sendmessage", |c| c["chat_id"] == owner.0 && text(c).contains("switched off")).await;
    bot.push(says(owner, 91, "Hello Ivan", Some(message_id(&card))));
    eventually(20, || async {
        bot.calls("sendmessage").iter().filter(|c| c["chat_id"] == owner.0 && text(c).contains("switched off")).count()
            == 2
    })
    .await;
    assert!(bot.calls("copymessage").is_empty(), "nothing was relayed");
    assert_eq!(app.leads("&channel=telegram").await.len(), 1, "the rep did not become a lead either");
}
both!(a_deactivated_rep_cannot_act_from_telegram);
