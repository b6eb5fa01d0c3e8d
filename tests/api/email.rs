//! The email channel against a real Dovecot (tests/env/dovecot-up.sh): each test gets a
//! folder of its own in leads@example.test and appends real .eml fixtures to it over IMAP.

use std::time::Duration;

use futures_util::TryStreamExt;
use leadrouter::channels::email::imap::{self, ImapSession};
use leadrouter::settings::{ImapSettings, ImapTls, Period as D};
use serde_json::Value;

use crate::both;
use crate::support::{Db, TestApp, eventually, identity_values};

pub struct Dovecot {
    pub port: u16,
    pub tls_port: u16,
    pub ca: String,
}

/// The test Dovecot, if it runs. Under `CI=true` a missing server fails the test.
pub async fn dovecot() -> Option<Dovecot> {
    let port = std::env::var("LEADROUTER_TEST_IMAP_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(10143);
    let tls_port = std::env::var("LEADROUTER_TEST_IMAPS_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(10993);
    let ca = std::env::var("LEADROUTER_TEST_IMAP_CA")
        .unwrap_or_else(|_| "/tmp/leadrouter-testenv/dovecot/ssl/cert.pem".into());
    if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
        return Some(Dovecot { port, tls_port, ca });
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("Dovecot is required under CI=true but 127.0.0.1:{port} is closed (tests/env/dovecot-up.sh)");
    }
    eprintln!("skipping: no Dovecot on 127.0.0.1:{port} (run tests/env/dovecot-up.sh)");
    None
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/email/{name}.eml", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

impl Dovecot {
    pub fn settings(&self, id: &str, folder: &str) -> ImapSettings {
        ImapSettings {
            address: Some("sales@kestrel-systems.com".into()),
            poll_interval: D::from_secs(1),
            default_region: leadrouter::domain::Region::parse("US").ok(),
            backfill_all: true,
            command_timeout: D::from_secs(10),
            ..ImapSettings::new(id, "127.0.0.1", self.port, ImapTls::None, "leads@example.test", "password", folder)
        }
    }

    /// A fresh folder of the test's own, and a session to fill it.
    pub async fn folder(&self) -> (String, ImapSession) {
        let folder = format!("t{}", leadrouter::base::new_id());
        let mut session = imap::connect(&self.settings("setup", "INBOX")).await.expect("connect");
        session.create(&folder).await.expect("create folder");
        (folder, session)
    }
}

pub fn mailbox_config(s: &ImapSettings) -> String {
    format!(
        "[[imap]]\nid = \"{}\"\nhost = \"{}\"\nport = {}\ntls = \"{}\"\nusername = \"{}\"\npassword = \"{}\"\naddress = \"sales@kestrel-systems.com\"\nfolder = \"{}\"\nidle = {}\npoll_interval = \"1s\"\nbackfill_all = {}\ndefault_region = \"US\"\n{}",
        s.id,
        s.host,
        s.port,
        match s.tls {
            ImapTls::None => "none",
            ImapTls::Starttls => "starttls",
            ImapTls::Implicit => "implicit",
        },
        s.username,
        secrecy::ExposeSecret::expose_secret(s.password.as_ref().expect("password")),
        s.folder,
        s.idle,
        s.backfill_all,
        s.ca_file.as_ref().map(|c| format!("ca_file = \"{}\"\n", c.display())).unwrap_or_default(),
    )
}

async fn append(session: &mut ImapSession, folder: &str, names: &[&str]) {
    for name in names {
        session.append(folder, None, None, fixture(name)).await.expect("append");
    }
}

async fn the_inbox_becomes_leads_and_the_rest_is_recorded_as_skipped(db: Db) {
    let Some(dovecot) = dovecot().await else { return };
    let (folder, mut setup) = dovecot.folder().await;
    append(&mut setup, &folder, &["plain", "html_only", "relay", "autoreply"]).await;
    // A message that is not an email at all: a failed item, and the ones after it go on.
    setup.append(&folder, None, None, b"\r\n\r\n").await.expect("append");
    append(&mut setup, &folder, &["bounce", "list", "own", "no_message_id", "bad_date"]).await;
    let app = TestApp::spawn(db, &mailbox_config(&dovecot.settings("sales", &folder))).await;
    // Someone the bounce below reports as unreachable is already a lead.
    let new_lead = serde_json::json!({"email": "j.doe@example-corp.com"});
    let (_, jdoe) = app.send_as(crate::support::ADMIN, reqwest::Method::POST, "/api/v1/leads", &new_lead).await;
    eventually(15, || async { app.items("email").await.len() == 10 }).await;

    let by_id = app.items("email").await;
    let status_of =
        |needle: &str| by_id.iter().find(|(id, _, _)| id.contains(needle)).map(|(_, s, r)| (s.clone(), r.clone()));
    assert_eq!(status_of("CAF3k9xQ2mPq7RvN0aTz"), Some(("processed".into(), None)));
    assert_eq!(status_of("autoreply-7f3e0c"), Some(("skipped".into(), Some("auto_reply".into()))));
    assert_eq!(status_of("mx.kestrel-systems.com"), Some(("skipped".into(), Some("bounce".into()))));
    assert_eq!(status_of("nl.2026-10.a81f"), Some(("skipped".into(), Some("bulk".into()))));
    assert_eq!(status_of("quote-7731"), Some(("skipped".into(), Some("own_message".into()))));
    assert!(
        by_id.iter().any(|(id, s, _)| id.starts_with("sha256:") && s == "processed"),
        "no Message-ID: a content hash key"
    );
    let failed = by_id.iter().find(|(id, s, _)| id.starts_with("uid:sales:") && s == "failed");
    assert!(failed.is_some_and(|(_, _, r)| r.as_deref().is_some_and(|r| r.contains("not a parseable"))), "{by_id:?}");
    let jdoe = app.lead(jdoe["id"].as_str().expect("id")).await;
    assert!(
        jdoe["contact"]["identities"][0]["undeliverable_since"].is_string(),
        "the bounce marks the address: {jdoe}"
    );

    let leads = app.leads("&channel=email").await;
    assert_eq!(leads.len(), 5, "plain, html-only, relay, no Message-ID, bad Date");
    assert!(leads.iter().all(|l| l["channel"] == "email" && l["source"]["mailbox"] == "sales"));
    let daniel = leads
        .iter()
        .find(|l| identity_values(l).contains(&"daniel.okafor@brightline-logistics.com".to_owned()))
        .expect("Daniel's lead");
    assert!(identity_values(daniel).iter().any(|v| v.starts_with('+')), "the phone in his signature: {daniel}");
    let relay = leads.iter().find(|l| identity_values(l).contains(&"maria.gonzalez@solar-andino.cl".to_owned()));
    assert!(relay.is_some(), "a form relay's Reply-To is the prospect");
    assert!(
        !leads.iter().any(|l| identity_values(l).iter().any(|v| v.contains("noreply@"))),
        "never the relay address"
    );
    let lead = app.lead(daniel["id"].as_str().expect("id")).await;
    assert_eq!(lead["interactions"][0]["subject"], "Quote for 40 handheld barcode scanners");
    assert!(lead["owner"]["id"].is_string());

    // Committed, then flagged \Seen on the server.
    setup.select(&folder).await.expect("select");
    let flags = setup.uid_fetch("1:*", "FLAGS").await.expect("fetch").try_collect::<Vec<_>>().await.expect("flags");
    assert_eq!(flags.len(), 10);
    assert!(flags.iter().all(|f| f.flags().any(|fl| matches!(fl, async_imap::types::Flag::Seen))));
}
both!(the_inbox_becomes_leads_and_the_rest_is_recorded_as_skipped);

async fn restarts_resume_where_they_stopped_and_idle_picks_up_new_mail(db: Db) {
    let Some(dovecot) = dovecot().await else { return };
    let (folder, mut setup) = dovecot.folder().await;
    append(&mut setup, &folder, &["plain", "html_only"]).await;
    let config = mailbox_config(&dovecot.settings("sales", &folder));
    let app = TestApp::spawn(db, &config).await;
    eventually(15, || async { app.items("email").await.len() == 2 }).await;
    let db = app.stop_keep_db().await;

    // While the service is down, more mail arrives, and one message is delivered again.
    append(&mut setup, &folder, &["relay", "plain"]).await;
    let app = TestApp::spawn_on(db, &format!("{}\n{config}", crate::support::BASE_CONFIG)).await;
    eventually(15, || async { app.items("email").await.len() == 3 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM interactions").await, 3, "nothing imported twice");

    // Mail that arrives while the reader waits in IDLE is a lead within seconds.
    let sent = std::time::Instant::now();
    append(&mut setup, &folder, &["bad_date"]).await;
    eventually(5, || async { app.items("email").await.len() == 4 }).await;
    // Dovecot itself reports new mail to IDLE about half a second after it arrives.
    assert!(sent.elapsed() < Duration::from_secs(2), "IDLE took {:?}", sent.elapsed());
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 4);
}
both!(restarts_resume_where_they_stopped_and_idle_picks_up_new_mail);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_show_in_readyz_and_tls_works() {
    let Some(dovecot) = dovecot().await else { return };
    let (folder, mut setup) = dovecot.folder().await;
    append(&mut setup, &folder, &["plain"]).await;
    let mut wrong = dovecot.settings("wrong", &folder);
    wrong.password = Some("not-the-password".to_owned().into());
    let mut tls = dovecot.settings("tls", &folder);
    tls.tls = ImapTls::Implicit;
    tls.port = dovecot.tls_port;
    tls.host = "localhost".into();
    tls.ca_file = Some(dovecot.ca.clone().into());
    let app = TestApp::spawn(Db::Sqlite, &format!("{}\n{}", mailbox_config(&wrong), mailbox_config(&tls))).await;
    eventually(15, || async {
        let ready = app.client.get(app.url("/readyz")).send().await.expect("get").json::<Value>().await.expect("json");
        ready["channels"]["imap:wrong"]["state"] == "auth_failed"
            && ready["channels"]["imap:tls"]["state"] == "connected"
    })
    .await;
    eventually(10, || async { app.count("SELECT COUNT(*) FROM leads").await == 1 }).await;
    let metrics = app.client.get(app.url("/metrics")).send().await.expect("get").text().await.expect("text");
    assert!(metrics.contains("leadrouter_channel_up{worker=\"imap:wrong\"} 0"), "{metrics}");
}

/// A reply from someone else, quoting a lead's message, lands on that lead.
async fn replies_join_the_lead_of_the_message_they_answer(db: Db) {
    let Some(dovecot) = dovecot().await else { return };
    let (folder, mut setup) = dovecot.folder().await;
    append(&mut setup, &folder, &["plain"]).await;
    let app = TestApp::spawn(db, &mailbox_config(&dovecot.settings("sales", &folder))).await;
    eventually(15, || async { app.items("email").await.len() == 1 }).await;
    let reply = "From: Grace Obi <grace.obi@brightline-logistics.com>\r\n\
                 To: sales@kestrel-systems.com\r\n\
                 Subject: Re: Quote for 40 handheld barcode scanners\r\n\
                 Message-ID: <grace-1@brightline-logistics.com>\r\n\
                 In-Reply-To: <CAF3k9xQ2mPq7RvN0aTz@mail.brightline-logistics.com>\r\n\
                 Date: Wed, 04 Mar 2026 11:00:00 +0000\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\r\n\
                 I take over from Daniel: we also need 10 chargers.\r\n";
    setup.append(&folder, None, None, reply.as_bytes()).await.expect("append");
    eventually(10, || async { app.items("email").await.len() == 2 }).await;
    let leads = app.leads("").await;
    assert_eq!(leads.len(), 1, "the colleague's reply joins Daniel's lead");
    let lead = app.lead(leads[0]["id"].as_str().expect("id")).await;
    let texts: Vec<&str> =
        lead["interactions"].as_array().expect("timeline").iter().filter_map(|i| i["text"].as_str()).collect();
    assert!(texts.last().is_some_and(|t| t.contains("10 chargers")), "{texts:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM contacts").await, 2, "Grace is a contact of her own");
}
both!(replies_join_the_lead_of_the_message_they_answer);

/// A TCP proxy in front of Dovecot whose connections the test can cut, as a server restart
/// or a network blip would.
struct Proxy {
    port: u16,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (cut, watch) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cut = watch.clone();
                // Only cuts from now on end this connection.
                cut.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }

    /// Drops every open connection.
    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_reconnects_and_survives_a_uidvalidity_change() {
    let Some(dovecot) = dovecot().await else { return };
    let (folder, mut setup) = dovecot.folder().await;
    append(&mut setup, &folder, &["plain", "html_only"]).await;
    let proxy = Proxy::start(dovecot.port).await;
    let mut settings = dovecot.settings("sales", &folder);
    settings.port = proxy.port;
    let app = TestApp::spawn(Db::Sqlite, &mailbox_config(&settings)).await;
    eventually(15, || async { app.items("email").await.len() == 2 }).await;

    // The connection drops (a server restart, a NAT timeout): the reader comes back.
    proxy.cut();
    append(&mut setup, &folder, &["relay"]).await;
    eventually(20, || async { app.items("email").await.len() == 3 }).await;

    // The folder is recreated: new UIDVALIDITY, the old messages again plus one new one.
    proxy.cut();
    setup.delete(&folder).await.expect("delete");
    setup.create(&folder).await.expect("create");
    append(&mut setup, &folder, &["plain", "html_only", "relay", "bad_date"]).await;
    proxy.cut();
    eventually(20, || async { app.items("email").await.len() == 4 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM interactions").await, 4, "rescanned, nothing imported twice");
    let ready = app.client.get(app.url("/readyz")).send().await.expect("get").json::<Value>().await.expect("json");
    assert_eq!(ready["channels"]["imap:sales"]["state"], "connected", "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_reads_a_mailbox_and_another_takes_over() {
    let Some(dovecot) = dovecot().await else { return };
    if crate::support::postgres_admin_url().await.is_none() {
        return;
    }
    let (folder, mut setup) = dovecot.folder().await;
    let db = crate::support::TestDb::new(Db::Postgres).await;
    let config = format!("{}\n{}", crate::support::BASE_CONFIG, mailbox_config(&dovecot.settings("sales", &folder)));
    let mut first = TestApp::spawn_shared(&db, &config).await;
    eventually(10, || async {
        let r = first.client.get(first.url("/readyz")).send().await.expect("get").json::<Value>().await.expect("json");
        r["channels"]["imap:sales"]["state"] == "connected"
    })
    .await;
    let second = TestApp::spawn_shared(&db, &config).await;
    eventually(10, || async {
        let r =
            second.client.get(second.url("/readyz")).send().await.expect("get").json::<Value>().await.expect("json");
        r["channels"]["imap:sales"]["state"] == "standby"
    })
    .await;

    first.stop().await;
    append(&mut setup, &folder, &["plain"]).await;
    eventually(20, || async { second.items("email").await.len() == 1 }).await;
    let r = second.client.get(second.url("/readyz")).send().await.expect("get").json::<Value>().await.expect("json");
    assert_eq!(r["channels"]["imap:sales"]["state"], "connected");
}

const REPS_WITH_EMAIL: &str = r#"
[server]
public_url = "https://leads.kestrel-systems.com"
[[teams]]
id = "sales"
after_hours = true
members = ["maria"]
[[reps]]
id = "maria"
name = "Maria Lopez"
email = "maria.lopez@kestrel-systems.com"
[[reps]]
id = "tom"
name = "Tom"
email = "tom@kestrel-systems.com"
telegram_chat_id = 4242
"#;

/// Reps are emailed about their leads, with a Message-ID a reply threads back through;
/// prospects get one acknowledgement per window, marked Auto-Submitted.
async fn reps_are_emailed_and_prospects_acknowledged(db: Db) {
    let Some(dovecot) = dovecot().await else { return };
    let sink = crate::smtp_sink::Sink::start().await;
    let (folder, mut setup) = dovecot.folder().await;
    let mailbox = format!(
        "{}acknowledge = true\nacknowledge_subject = \"Re: {{subject}}\"\n",
        mailbox_config(&dovecot.settings("sales", &folder))
    );
    let bot = crate::telegram_fake::FakeBot::start().await;
    let config = format!("{REPS_WITH_EMAIL}\n{}\n{mailbox}\n{}", sink.config(), bot.config("polling"));
    let app = TestApp::spawn_people(db, &config).await;

    append(&mut setup, &folder, &["plain"]).await;
    eventually(15, || async { sink.mails().len() >= 2 }).await;
    let mails = sink.mails();
    let to_rep = mails.iter().find(|m| m.rcpt == ["maria.lopez@kestrel-systems.com"]).expect("the owner is told");
    assert!(
        crate::smtp_sink::header(&to_rep.data, "Subject").is_some_and(|s| s.contains("Daniel Okafor")),
        "{}",
        to_rep.data
    );
    assert!(to_rep.data.contains("https://leads.kestrel-systems.com/app/leads/"));
    assert!(to_rep.data.contains("barcode"), "the message is in the notification");
    let ack = mails
        .iter()
        .find(|m| m.rcpt == ["daniel.okafor@brightline-logistics.com"])
        .expect("the prospect is acknowledged");
    assert_eq!(crate::smtp_sink::header(&ack.data, "Auto-Submitted"), Some("auto-replied"));
    assert!(crate::smtp_sink::header(&ack.data, "In-Reply-To").is_some_and(|v| v.contains("CAF3k9xQ2mPq7RvN0aTz")));

    // Daniel answers the acknowledgement: the reply joins his lead through our Message-ID,
    // his owner is told, and he is not acknowledged again.
    let ack_id =
        crate::smtp_sink::header(&ack.data, "Message-ID").expect("message id").trim_matches(['<', '>']).to_owned();
    let reply = format!(
        "From: Daniel Okafor <daniel.okafor@brightline-logistics.com>\r\nTo: sales@kestrel-systems.com\r\n\
         Subject: Re: Quote\r\nMessage-ID: <daniel-2@brightline-logistics.com>\r\nIn-Reply-To: <{ack_id}>\r\n\
         Date: Wed, 04 Mar 2026 12:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAlso 5 spare batteries.\r\n"
    );
    setup.append(&folder, None, None, reply.as_bytes()).await.expect("append");
    eventually(15, || async { sink.mails().len() >= 3 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = sink.mails();
    assert_eq!(
        mails.iter().filter(|m| m.rcpt == ["daniel.okafor@brightline-logistics.com"]).count(),
        1,
        "one acknowledgement per window"
    );
    assert!(mails.iter().any(|m| m.rcpt == ["maria.lopez@kestrel-systems.com"] && m.data.contains("New message from")));
    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 1);

    // A rep with Telegram hears there, not by email: the delivery is recorded as skipped.
    let lead = app.leads("").await[0]["id"].as_str().expect("id").to_owned();
    let (status, _) = app.patch(&format!("/api/v1/leads/{lead}"), serde_json::json!({"owner": "tom"})).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    eventually(10, || async {
        app.get("/api/v1/outbox?status=skipped").await["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|m| m["target"] == "rep:tom" && m["kind"] == "email"))
    })
    .await;
    eventually(10, || async { bot.calls("sendmessage").iter().any(|c| c["chat_id"] == 4242) }).await;
    assert!(!sink.mails().iter().any(|m| m.rcpt == ["tom@kestrel-systems.com"]));
}
both!(reps_are_emailed_and_prospects_acknowledged);

/// First start imports only the backfill window; handled mail can be moved to a folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_imports_the_backfill_window_and_moves_handled_mail() {
    let Some(dovecot) = dovecot().await else { return };
    let (folder, mut setup) = dovecot.folder().await;
    let done = format!("{folder}-done");
    setup.create(&done).await.expect("create");
    // Arrived long ago (INTERNALDATE), then recently.
    setup.append(&folder, None, Some("\"01-Jan-2020 10:00:00 +0000\""), fixture("html_only")).await.expect("append");
    append(&mut setup, &folder, &["plain"]).await;
    let mut settings = dovecot.settings("sales", &folder);
    settings.backfill_all = false;
    let config = format!("{}backfill = \"7d\"\nprocessed_folder = \"{done}\"\n", mailbox_config(&settings));
    let app = TestApp::spawn(Db::Sqlite, &config).await;
    eventually(15, || async { app.items("email").await.len() == 1 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.items("email").await.len(), 1, "the 2020 message is outside the window");
    assert!(app.items("email").await[0].0.contains("CAF3k9xQ2mPq7RvN0aTz"));
    let mut moved = 0;
    for _ in 0..50 {
        moved = setup.select(&done).await.map(|m| m.exists).unwrap_or(0);
        if moved == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(moved, 1, "the handled message is in the processed folder");
    let left = setup.select(&folder).await.expect("select").exists;
    assert_eq!(left, 1, "only the handled message moved");
}

/// UIDs have gaps where mail was deleted; a gap wider than a fetch batch must not hide the
/// mail after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_after_a_wide_uid_gap_is_found() {
    let Some(dovecot) = dovecot().await else { return };
    let (folder, mut setup) = dovecot.folder().await;
    let filler = b"From: a@b.example.com\r\nSubject: x\r\n\r\nx\r\n";
    for _ in 0..600 {
        setup.append(&folder, None, None, filler).await.expect("append");
    }
    setup.select(&folder).await.expect("select");
    let _ = setup.uid_store("1:*", "+FLAGS.SILENT (\\Deleted)").await.expect("store").try_collect::<Vec<_>>().await;
    let _ = setup.expunge().await.expect("expunge").try_collect::<Vec<_>>().await;
    append(&mut setup, &folder, &["plain"]).await;
    let app = TestApp::spawn(Db::Sqlite, &mailbox_config(&dovecot.settings("sales", &folder))).await;
    eventually(15, || async { app.items("email").await.len() == 1 }).await;
}
