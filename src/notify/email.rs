//! Email notifications over SMTP (lettre): reps hear about their leads (assignment, new
//! messages) when they do not use Telegram or chose email; prospects who wrote to a mailbox
//! that acknowledges get one acknowledgement per window. Every message carries a Message-ID
//! that `thread_refs` ties to its lead, so replies come back to the right lead.

use std::sync::Arc;

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use super::{Directory, LeadFile, NotifyError};
use crate::base::ms;
use crate::domain::EventType;
use crate::domain::event::EventBody;
use crate::domain::records::OutboxMessage;
use crate::settings::{EmailNotifySettings, NotifyVia, Settings, SmtpTls};

/// RFC 3834: marks our acknowledgements as automatic, so that well-behaved responders do
/// not answer them (and we never answer theirs).
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-replied".into())
    }
}

pub struct EmailNotifier<D> {
    transport: Option<Smtp>,
    settings: Arc<Settings>,
    directory: D,
}

/// The configured relay and who our mail is from.
struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Of our Message-IDs: `<outbox id@domain>`, which `thread_refs` ties to the lead.
    domain: String,
}

/// One message about to be written: the relay, its event and its Message-ID.
struct Draft<'a> {
    smtp: &'a Smtp,
    event: EventBody,
    message_id: String,
}

fn transport(e: &EmailNotifySettings) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let builder = match e.tls {
        SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&e.host)?,
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&e.host)?,
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&e.host).tls(Tls::None),
    };
    let mut builder = builder.port(e.port).timeout(Some(std::time::Duration::from_secs(15)));
    if let (Some(user), Some(password)) = (&e.username, &e.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_owned()));
    }
    Ok(builder.build())
}

impl<D: Directory> EmailNotifier<D> {
    pub fn new(settings: Arc<Settings>, directory: D) -> anyhow::Result<Self> {
        let transport = match &settings.notify.email {
            Some(e) => {
                let from: Mailbox = e
                    .from
                    .as_str()
                    .parse()
                    .map_err(|err| anyhow::anyhow!("notify.email.from `{}`: {err}", e.from.as_str()))?;
                let domain = from.email.domain().to_owned();
                Some(Smtp { transport: transport(e)?, from, domain })
            }
            None => None,
        };
        Ok(EmailNotifier { transport, settings, directory })
    }

    fn draft(&self, m: &OutboxMessage) -> Result<Draft<'_>, NotifyError> {
        let Some(smtp) = &self.transport else {
            return Err(NotifyError::Permanent("no [notify.email] is configured any more".into()));
        };
        let event = m.body();
        // The id `thread_refs` holds for this message, so a reply to it joins the lead.
        let message_id = format!("<{}@{}>", m.id, smtp.domain);
        Ok(Draft { smtp, event, message_id })
    }

    async fn post(&self, smtp: &Smtp, email: Message) -> Result<(), NotifyError> {
        smtp.transport.send(email).await.map(|_| ()).map_err(|e| {
            if e.is_permanent() { NotifyError::Permanent(e.to_string()) } else { NotifyError::Retryable(e.to_string()) }
        })
    }

    /// The rep who should get an email, or `Skipped` when they hear another way.
    async fn email_recipient(&self, rep_id: &str) -> Result<Mailbox, NotifyError> {
        let rep = self
            .directory
            .rep(rep_id)
            .await
            .map_err(NotifyError::Lookup)?
            .ok_or_else(|| NotifyError::Skipped("the rep no longer exists".into()))?;
        let Some(address) = rep.email.as_deref().filter(|_| super::hears_by(&rep, &self.settings) == NotifyVia::Email)
        else {
            return Err(NotifyError::Skipped("the rep hears about leads in Telegram, or has no email".into()));
        };
        format!("{} <{address}>", rep.name.replace(['<', '>', '"'], ""))
            .parse()
            .map_err(|e| NotifyError::Permanent(format!("rep email `{address}`: {e}")))
    }

    /// A reminder, escalation, stale-lead alert or digest: the event's `data.alert` as it is.
    pub async fn alert_email(&self, rep_id: &str, m: &OutboxMessage) -> Result<(), NotifyError> {
        let Draft { smtp, event, message_id } = self.draft(m)?;
        let to = self.email_recipient(rep_id).await?;
        let Some(alert) = &event.data.alert else {
            return Err(NotifyError::Permanent("the event carries no alert".into()));
        };
        let (subject, text) = (&alert.subject, &alert.text);
        let mut body = format!("{text}\n");
        if let Some(lead) = event.lead_id() {
            body.push_str(&format!("\nOpen the lead: {}\n", self.lead_link(lead)));
        }
        self.post(smtp, note_to_rep(&smtp.from, to, subject, message_id, body)?).await
    }

    /// Where a rep opens the lead: its card in the dashboard (signing in leads back to it).
    fn lead_link(&self, lead_id: &str) -> String {
        format!("{}/app/leads/{lead_id}", self.settings.server.public_url.trim_end_matches('/'))
    }

    /// The rep's notification, or `Skipped` when the rep hears about leads another way.
    pub async fn rep_email(&self, rep_id: &str, m: &OutboxMessage) -> Result<(), NotifyError> {
        let Draft { smtp, event, message_id } = self.draft(m)?;
        let to = self.email_recipient(rep_id).await?;
        let lead_id = event.lead_id().unwrap_or_default();
        let LeadFile { lead, identities, interactions } = self
            .directory
            .lead(lead_id)
            .await
            .map_err(NotifyError::Lookup)?
            .ok_or_else(|| NotifyError::Skipped("the lead no longer exists".into()))?;
        let who = lead
            .contact_name
            .clone()
            .or_else(|| identities.first().map(|i| i.value.clone()))
            .unwrap_or_else(|| "someone".into());
        let last = interactions.iter().rev().find(|i| i.direction == "inbound");
        let subject = match m.event() {
            Some(EventType::LeadMessage) => format!("New message from {who}"),
            _ => format!("New lead for you: {who}"),
        };
        let mut body = format!("{who}\n");
        for i in &identities {
            body.push_str(&format!("{}: {}\n", i.kind, i.value));
        }
        let source = [
            lead.source_form.as_ref().map(|f| format!("form {f}")),
            lead.source_mailbox.as_ref().map(|m| format!("mailbox {m}")),
            lead.utm_source.as_ref().map(|u| format!("utm {u}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
        body.push_str(&format!(
            "Channel: {}{}\nStatus: {}\n\n",
            lead.channel,
            if source.is_empty() { String::new() } else { format!(" ({})", source.join(", ")) },
            lead.status
        ));
        if let Some(i) = last {
            if let Some(subject) = &i.subject {
                body.push_str(&format!("Subject: {subject}\n"));
            }
            body.push_str(&i.text);
            body.push_str("\n\n");
        }
        body.push_str(&format!("Open the lead: {}\n", self.lead_link(&lead.id)));
        self.post(smtp, note_to_rep(&smtp.from, to, subject, message_id, body)?).await
    }

    /// The acknowledgement to a prospect; `Skipped` when that address already got one within
    /// the mailbox's window (no mail loops with other robots, no spamming a chatty prospect).
    pub async fn acknowledgement(&self, m: &OutboxMessage, mailbox_id: &str, address: &str) -> Result<(), NotifyError> {
        let Draft { smtp, event, message_id } = self.draft(m)?;
        let mailbox = self
            .settings
            .imap
            .iter()
            .find(|i| i.id == mailbox_id)
            .ok_or_else(|| NotifyError::Skipped(format!("mailbox {mailbox_id} is no longer configured")))?;
        let since = ms(jiff::Timestamp::now()) - mailbox.acknowledge_window.as_millis_i64();
        if self.directory.acknowledged_since(address, since, &m.id).await.map_err(NotifyError::Lookup)? {
            return Err(NotifyError::Skipped(format!("{address} was acknowledged within the window")));
        }
        let name = event.data.lead.as_ref().and_then(|l| l.contact.as_ref()?.name.as_deref()).unwrap_or("there");
        let message = event.data.message.as_ref();
        let subject = message.and_then(|m| m.subject.as_deref()).unwrap_or("your message");
        let fill = |t: &str| t.replace("{name}", name).replace("{subject}", subject);
        let to: Mailbox = address.parse().map_err(|e| NotifyError::Permanent(format!("`{address}`: {e}")))?;
        let mut builder = Message::builder()
            .from(smtp.from.clone())
            .to(to)
            .subject(fill(&mailbox.acknowledge_subject))
            .message_id(Some(message_id))
            .header(AutoSubmitted);
        if let Some(original) = message.and_then(|m| m.external_id.as_deref()).filter(|id| !id.starts_with("sha256:")) {
            builder = builder.in_reply_to(format!("<{original}>")).references(format!("<{original}>"));
        }
        let email = builder.body(fill(&mailbox.acknowledge_text)).map_err(|e| NotifyError::Permanent(e.to_string()))?;
        self.post(smtp, email).await
    }
}

/// A plain-text email to a rep.
fn note_to_rep(
    from: &Mailbox,
    to: Mailbox,
    subject: impl Into<String>,
    message_id: String,
    body: String,
) -> Result<Message, NotifyError> {
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(message_id))
        .body(body)
        .map_err(|e| NotifyError::Permanent(e.to_string()))
}
