//! What reps are shown in Telegram: lead cards, lists and texts (`telegram`), and the bot's
//! answers as they wait in the outbox (`outgoing`). Shared by the rep console, which decides
//! what to say, and the notifier, which sends it; neither owns the other.

pub mod outgoing;
pub mod telegram;
