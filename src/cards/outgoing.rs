//! What the bot says or does in answer to an update, as outbox rows written in the update's
//! own transaction: sent once the update is committed, retried until Telegram has it, and
//! never twice for one update (the row's key is the update's).

use serde::{Deserialize, Serialize};

use super::telegram::{Keyboard, View};
use crate::domain::{Bookkeeping, Delivery, Reply};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Outgoing {
    /// A plain message.
    Text { chat: i64, text: String },
    /// A lead card, rendered when it is sent.
    Card { chat: i64, lead: String, view: View },
    /// Re-renders a card we sent earlier (after a button changed the lead).
    EditCard { chat: i64, message: i32, lead: String, view: View },
    /// Swaps the buttons under a message (the lost reasons after "Lost…").
    EditButtons { chat: i64, message: i32, buttons: Keyboard },
    /// Every button press is answered, or the rep's client keeps spinning.
    Answer { callback: String, text: String, alert: bool },
    /// A rep's reply, copied to the prospect's chat.
    Relay { to: i64, from_chat: i64, message: i32, lead: String },
}

impl Outgoing {
    /// Its delivery: messages in one sequence go out in order.
    pub fn delivery(&self) -> Delivery {
        let sequence = match self {
            Outgoing::Text { chat, .. } | Outgoing::Card { chat, .. } => format!("chat:{chat}"),
            Outgoing::EditCard { chat, message, .. } | Outgoing::EditButtons { chat, message, .. } => {
                format!("edit:{chat}:{message}")
            }
            Outgoing::Answer { callback, .. } => format!("answer:{callback}"),
            Outgoing::Relay { to, .. } => format!("prospect:{to}"),
        };
        Delivery::BotAction { sequence }
    }

    fn event_type(&self) -> &'static str {
        match self {
            Outgoing::Text { .. } | Outgoing::Card { .. } => "telegram.reply",
            Outgoing::EditCard { .. } | Outgoing::EditButtons { .. } => "telegram.edit",
            Outgoing::Answer { .. } => "telegram.answer",
            Outgoing::Relay { .. } => "telegram.relay",
        }
    }

    fn lead(&self) -> Option<&str> {
        match self {
            Outgoing::Card { lead, .. } | Outgoing::EditCard { lead, .. } | Outgoing::Relay { lead, .. } => Some(lead),
            _ => None,
        }
    }
}

/// The outbox messages for what update `key` makes the bot do.
pub(crate) fn replies(key: &str, out: &[Outgoing]) -> Vec<Bookkeeping> {
    out.iter()
        .enumerate()
        .map(|(n, o)| {
            Bookkeeping::Reply(Reply {
                delivery: o.delivery(),
                key: format!("{key}#{n}"),
                label: o.event_type(),
                lead_id: o.lead().map(str::to_owned),
                payload: serde_json::to_value(o).unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let all = [
            Outgoing::Text { chat: 1, text: "hi".into() },
            Outgoing::Card { chat: 1, lead: "l".into(), view: View::Detail },
            Outgoing::EditCard { chat: -100, message: 7, lead: "l".into(), view: View::Team },
            Outgoing::EditButtons { chat: 1, message: 7, buttons: Vec::new() },
            Outgoing::Answer { callback: "q1".into(), text: "ok".into(), alert: true },
            Outgoing::Relay { to: 5, from_chat: 1, message: 9, lead: "l".into() },
        ];
        for o in all {
            let json = serde_json::to_value(&o).expect("json");
            assert_eq!(serde_json::from_value::<Outgoing>(json).expect("back"), o);
        }
    }
}
