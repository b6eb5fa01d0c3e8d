//! Where an outbox message goes: which notifier sends it and to whom. Stored as two columns,
//! `kind` (the notifier) and `target` (the receiver within it), which `(kind, target,
//! event_id)` keeps unique; this is the one place that writes and reads them.

use super::NotifyVia;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The event, signed, to a configured webhook URL.
    Webhook { url: String },
    /// Tells a rep about their lead. A rep gets one of these per way they could hear (email,
    /// Telegram); the notifier decides at sending time which one they do hear by.
    Rep { via: NotifyVia, rep: String },
    /// The event's ready-made alert (a reminder, an escalation, a digest) to a rep.
    Alert { via: NotifyVia, rep: String },
    /// The acknowledgement to a prospect who wrote to one of our mailboxes.
    Acknowledgement { mailbox: String, address: String },
    /// The team chat's post about a lead: posted when it is new, edited as it changes.
    TeamPost { team: String },
    /// The bot's welcome to a prospect who pressed Start.
    Welcome { chat: i64 },
    /// Something the bot does in answer to a rep (its payload says what). Messages with the
    /// same `sequence` go out in order.
    BotAction { sequence: String },
    /// A row this build cannot read (written by a newer one, or edited by hand): kept, and
    /// reported as undeliverable rather than guessed at.
    Unrecognised { kind: String, target: String },
}

/// A rep's Telegram messages, team posts and the bot's answers go through Telegram; the rest
/// through email or webhooks.
const WEBHOOK: &str = "webhook";
const EMAIL: &str = "email";
const TELEGRAM: &str = "telegram";

impl Delivery {
    /// The notifier, as stored in `outbox.kind`.
    pub fn kind(&self) -> &str {
        match self {
            Delivery::Webhook { .. } => WEBHOOK,
            Delivery::Rep { via, .. } | Delivery::Alert { via, .. } => via_kind(*via),
            Delivery::Acknowledgement { .. } => EMAIL,
            Delivery::TeamPost { .. } | Delivery::Welcome { .. } | Delivery::BotAction { .. } => TELEGRAM,
            Delivery::Unrecognised { kind, .. } => kind,
        }
    }

    /// The receiver, as stored in `outbox.target`: `rep:<rep id>`, `alert:<rep id>`,
    /// `ack:<mailbox id>:<address>`, `team:<team id>`, `welcome:<chat>`, the webhook's URL.
    pub fn target(&self) -> String {
        match self {
            Delivery::Webhook { url } => url.clone(),
            Delivery::Rep { rep, .. } => format!("rep:{rep}"),
            Delivery::Alert { rep, .. } => format!("alert:{rep}"),
            Delivery::Acknowledgement { mailbox, address } => format!("ack:{mailbox}:{address}"),
            Delivery::TeamPost { team } => format!("team:{team}"),
            Delivery::Welcome { chat } => format!("welcome:{chat}"),
            Delivery::BotAction { sequence } => sequence.clone(),
            Delivery::Unrecognised { target, .. } => target.clone(),
        }
    }

    /// Reads the two columns back.
    pub fn from_columns(kind: &str, target: &str) -> Delivery {
        let via = match kind {
            EMAIL => Some(NotifyVia::Email),
            TELEGRAM => Some(NotifyVia::Telegram),
            _ => None,
        };
        let unrecognised = || Delivery::Unrecognised { kind: kind.to_owned(), target: target.to_owned() };
        let (prefix, rest) = target.split_once(':').unwrap_or(("", target));
        match (kind, prefix, via) {
            (WEBHOOK, _, _) => Delivery::Webhook { url: target.to_owned() },
            (_, "rep", Some(via)) => Delivery::Rep { via, rep: rest.to_owned() },
            (_, "alert", Some(via)) => Delivery::Alert { via, rep: rest.to_owned() },
            (EMAIL, "ack", _) => match rest.split_once(':') {
                Some((mailbox, address)) => {
                    Delivery::Acknowledgement { mailbox: mailbox.to_owned(), address: address.to_owned() }
                }
                None => unrecognised(),
            },
            (TELEGRAM, "team", _) => Delivery::TeamPost { team: rest.to_owned() },
            (TELEGRAM, "welcome", _) => match rest.parse() {
                Ok(chat) => Delivery::Welcome { chat },
                Err(_) => unrecognised(),
            },
            (TELEGRAM, "chat" | "edit" | "answer" | "prospect", _) => {
                Delivery::BotAction { sequence: target.to_owned() }
            }
            _ => unrecognised(),
        }
    }
}

fn via_kind(via: NotifyVia) -> &'static str {
    match via {
        NotifyVia::Telegram => TELEGRAM,
        NotifyVia::Email | NotifyVia::Auto => EMAIL,
    }
}

/// One Telegram message (a chat and a message in it). Its key is the same on the timeline (an
/// interaction's `external_id`) and in the index of our messages by lead, so a reply to either
/// finds its lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelegramMessage {
    pub chat: i64,
    pub message: i64,
}

impl TelegramMessage {
    pub fn new(chat: i64, message: impl Into<i64>) -> Self {
        TelegramMessage { chat, message: message.into() }
    }

    /// `msg:<chat>:<message>`.
    pub fn key(&self) -> String {
        format!("msg:{}:{}", self.chat, self.message)
    }

    pub fn from_key(key: &str) -> Option<Self> {
        let (chat, message) = key.strip_prefix("msg:")?.split_once(':')?;
        Some(TelegramMessage { chat: chat.parse().ok()?, message: message.parse().ok()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_delivery_reads_back_as_written() {
        let all = [
            Delivery::Webhook { url: "http://127.0.0.1:9/hook?a=b:c".into() },
            Delivery::Rep { via: NotifyVia::Email, rep: "ana".into() },
            Delivery::Rep { via: NotifyVia::Telegram, rep: "ana".into() },
            Delivery::Alert { via: NotifyVia::Telegram, rep: "ben".into() },
            Delivery::Acknowledgement { mailbox: "sales".into(), address: "a:b@example.com".into() },
            Delivery::TeamPost { team: "emea".into() },
            Delivery::Welcome { chat: -1001 },
            Delivery::BotAction { sequence: "edit:42:7".into() },
            Delivery::BotAction { sequence: "answer:q1".into() },
        ];
        for d in all {
            assert_eq!(Delivery::from_columns(d.kind(), &d.target()), d, "{d:?}");
        }
    }

    #[test]
    fn unknown_rows_stay_unrecognised() {
        for (kind, target) in
            [("sms", "rep:ana"), ("email", "team:emea"), ("telegram", "welcome:x"), ("email", "ack:x")]
        {
            let d = Delivery::from_columns(kind, target);
            assert_eq!(d, Delivery::Unrecognised { kind: kind.into(), target: target.into() });
            assert_eq!((d.kind(), d.target().as_str()), (kind, target));
        }
    }

    #[test]
    fn telegram_message_keys_round_trip() {
        let m = TelegramMessage::new(-100123, 77);
        assert_eq!(m.key(), "msg:-100123:77");
        assert_eq!(TelegramMessage::from_key(&m.key()), Some(m));
        assert_eq!(TelegramMessage::from_key("tg:1:2"), None);
        assert_eq!(TelegramMessage::from_key("msg:1:x"), None);
    }
}
