//! `Inquiry`: what every channel adapter produces, the only input of intake.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;

use super::Identity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Telegram,
    Email,
    Webform,
    Api,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Telegram, Channel::Email, Channel::Webform, Channel::Api];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Telegram => "telegram",
            Channel::Email => "email",
            Channel::Webform => "webform",
            Channel::Api => "api",
        }
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown channel `{s}` (expected telegram, email, webform or api)"))
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field of the inquiry a form's explicit mapping may fill (`fields = { name = "your-name" }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadField {
    Name,
    FirstName,
    LastName,
    Email,
    Phone,
    Message,
    Company,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmTerm,
    UtmContent,
    PageUrl,
}

impl LeadField {
    pub const ALL: [LeadField; 13] = [
        LeadField::Name,
        LeadField::FirstName,
        LeadField::LastName,
        LeadField::Email,
        LeadField::Phone,
        LeadField::Message,
        LeadField::Company,
        LeadField::UtmSource,
        LeadField::UtmMedium,
        LeadField::UtmCampaign,
        LeadField::UtmTerm,
        LeadField::UtmContent,
        LeadField::PageUrl,
    ];
}

/// Where a lead came from: the channel's own detail plus marketing attribution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    pub form: Option<String>,
    pub mailbox: Option<String>,
    pub bot: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    /// The page a form was posted from, a Telegram deep-link payload, and the like.
    pub referrer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub size: Option<u64>,
    /// Channel-specific handle (Telegram file id, sha256 of an email part, …).
    pub reference: Option<String>,
}

/// One inbound message; becomes an interaction on the lead's timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub subject: Option<String>,
    pub text: String,
    pub attachments: Vec<Attachment>,
    /// The message's own id in its channel when it differs from the inquiry's idempotency key
    /// (a Telegram message is `chat:message`, its update is the key): edits find it by this.
    pub external_id: Option<String>,
}

/// Builds an `Inquiry` (see `Inquiry::builder`).
#[derive(Debug, Clone)]
pub struct InquiryBuilder(Inquiry);

impl InquiryBuilder {
    pub fn source(mut self, source: Source) -> Self {
        self.0.source = source;
        self
    }
    /// The person's name as given: trimmed, at most 200 characters, none when blank.
    pub fn name(mut self, name: Option<&str>) -> Self {
        self.0.contact_name = name.map(str::trim).filter(|n| !n.is_empty()).map(|n| n.chars().take(200).collect());
        self
    }
    pub fn identities(mut self, identities: impl IntoIterator<Item = Identity>) -> Self {
        self.0.identities.extend(identities);
        self
    }
    pub fn language(mut self, language: Option<String>) -> Self {
        self.0.language = language;
        self
    }
    pub fn message(mut self, message: Message) -> Self {
        self.0.message = message;
        self
    }
    pub fn custom_fields(mut self, fields: serde_json::Map<String, serde_json::Value>) -> Self {
        self.0.custom_fields = fields;
        self
    }
    /// External ids of the messages this one answers.
    pub fn thread(mut self, thread: Vec<String>) -> Self {
        self.0.thread = thread;
        self
    }
    pub fn build(mut self) -> Inquiry {
        self.0.normalise_identities();
        self.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inquiry {
    pub channel: Channel,
    /// Idempotency key within the channel: a redelivered item with the same key is a no-op.
    pub external_id: String,
    pub source: Source,
    pub contact_name: Option<String>,
    /// Normalised, deduplicated, sorted (sorting gives every transaction the same lock order).
    pub identities: Vec<Identity>,
    pub language: Option<String>,
    pub country: Option<String>,
    pub message: Message,
    /// Fields the channel could not map to anything above, kept on the lead.
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    /// External ids of earlier messages this one answers (email `In-Reply-To`/`References`):
    /// a reply joins the lead of the message it answers.
    pub thread: Vec<String>,
    pub received_at: Timestamp,
}

impl Inquiry {
    /// The one way to make an inquiry: its channel, its idempotency key and when it arrived,
    /// then what the channel read; `build` normalises it.
    pub fn builder(channel: Channel, external_id: impl Into<String>, received_at: Timestamp) -> InquiryBuilder {
        InquiryBuilder(Inquiry {
            channel,
            external_id: external_id.into(),
            source: Source::default(),
            contact_name: None,
            identities: Vec::new(),
            language: None,
            country: None,
            message: Message::default(),
            custom_fields: serde_json::Map::new(),
            thread: Vec::new(),
            received_at,
        })
    }

    /// Sorts and deduplicates identities (one order for every transaction's locks).
    fn normalise_identities(&mut self) {
        self.identities.sort();
        self.identities.dedup();
    }

    /// The inquiry with NUL characters dropped from all its text (see `text`), so that it is
    /// stored the same on both backends. Identities are already normalised and hold none.
    pub fn without_nul(mut self) -> Self {
        use super::text::{strip_nul, strip_nul_map, strip_nul_opt};
        strip_nul(&mut self.external_id);
        let s = &mut self.source;
        for field in [
            &mut s.form,
            &mut s.mailbox,
            &mut s.bot,
            &mut s.utm_source,
            &mut s.utm_medium,
            &mut s.utm_campaign,
            &mut s.utm_term,
            &mut s.utm_content,
            &mut s.referrer,
        ] {
            strip_nul_opt(field);
        }
        strip_nul_opt(&mut self.contact_name);
        strip_nul_opt(&mut self.language);
        strip_nul_opt(&mut self.country);
        strip_nul_opt(&mut self.message.subject);
        strip_nul(&mut self.message.text);
        strip_nul_opt(&mut self.message.external_id);
        for a in &mut self.message.attachments {
            strip_nul_opt(&mut a.name);
            strip_nul_opt(&mut a.content_type);
            strip_nul_opt(&mut a.reference);
        }
        strip_nul_map(&mut self.custom_fields);
        self.thread.iter_mut().for_each(strip_nul);
        self
    }
}
