//! What a rep is to the rules: how they want to hear about their leads.

use std::str::FromStr;

/// How a rep wants to hear about their leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NotifyVia {
    /// Telegram when the rep has a chat id, email otherwise.
    #[default]
    Auto,
    Email,
    Telegram,
}

impl NotifyVia {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyVia::Auto => "auto",
            NotifyVia::Email => "email",
            NotifyVia::Telegram => "telegram",
        }
    }
}

impl FromStr for NotifyVia {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [NotifyVia::Auto, NotifyVia::Email, NotifyVia::Telegram]
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| format!("unknown notify setting `{s}` (expected auto, email or telegram)"))
    }
}
