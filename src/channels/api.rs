//! The API channel: `POST /api/v1/leads` (an admin creating a lead by hand or from another
//! system). Its decoder checks and normalises what was sent, as every channel's does.

use jiff::Timestamp;

use crate::domain::identity::TelegramUserId;
use crate::domain::{Channel, EmailAddress, Identity, Inquiry, Message, PhoneE164, Region, Source};

/// What the API was sent, as fields.
#[derive(Debug, Clone, Default)]
pub struct ApiLead<'a> {
    pub key: &'a str,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub telegram_id: Option<i64>,
    /// How national phone numbers are read (`US`).
    pub default_region: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub message: Option<&'a str>,
    pub utm_source: Option<&'a str>,
    pub utm_medium: Option<&'a str>,
    pub utm_campaign: Option<&'a str>,
    pub language: Option<&'a str>,
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
}

/// Why the API's lead was refused: the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiLeadError {
    #[error("{0}")]
    Invalid(String),
    #[error("a lead needs an email, a phone or a telegram_id")]
    NoContact,
}

/// A value that was sent and is not blank.
fn given(v: Option<&str>) -> Option<&str> {
    v.filter(|v| !v.trim().is_empty())
}

pub fn inquiry(lead: &ApiLead<'_>, received_at: Timestamp) -> Result<Inquiry, ApiLeadError> {
    let invalid = |m: String| ApiLeadError::Invalid(m);
    let region = lead.default_region.map(Region::parse).transpose().map_err(|e| invalid(e.to_string()))?;
    let mut identities: Vec<Identity> = Vec::new();
    if let Some(e) = given(lead.email) {
        let email =
            EmailAddress::parse(e).map_err(|_| invalid(format!("`email`: `{e}` is not a valid email address")))?;
        identities.push(email.into());
    }
    if let Some(p) = given(lead.phone) {
        let phone =
            PhoneE164::parse(p, region).map_err(|_| invalid(format!("`phone`: `{p}` is not a valid phone number")))?;
        identities.push(phone.into());
    }
    if let Some(t) = lead.telegram_id {
        identities.push(TelegramUserId::new(t).map_err(|e| invalid(e.to_string()))?.into());
    }
    if identities.is_empty() {
        return Err(ApiLeadError::NoContact);
    }
    if lead.key.len() > 200 {
        return Err(invalid("idempotency key is longer than 200 characters".into()));
    }
    let owned = |v: Option<&str>| v.map(str::to_owned);
    Ok(Inquiry::builder(Channel::Api, lead.key, received_at)
        .source(Source {
            utm_source: owned(lead.utm_source),
            utm_medium: owned(lead.utm_medium),
            utm_campaign: owned(lead.utm_campaign),
            ..Default::default()
        })
        .name(lead.name)
        .identities(identities)
        .language(owned(lead.language))
        .message(Message {
            subject: owned(lead.subject),
            text: lead.message.unwrap_or_default().to_owned(),
            ..Default::default()
        })
        .custom_fields(lead.custom_fields.clone())
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_api_sends_is_checked_and_normalised() {
        let lead = ApiLead {
            key: "crm-1",
            name: Some("  Ada  "),
            email: Some("Ada@Example.com"),
            phone: Some("(415) 555-0123"),
            default_region: Some("US"),
            ..Default::default()
        };
        let i = inquiry(&lead, Timestamp::UNIX_EPOCH).expect("valid");
        assert_eq!(i.contact_name.as_deref(), Some("Ada"));
        let values: Vec<&str> = i.identities.iter().map(Identity::value).collect();
        assert_eq!(values, ["ada@example.com", "+14155550123"]);
        let bad = ApiLead { email: Some("not-an-address"), ..lead.clone() };
        assert!(
            matches!(inquiry(&bad, Timestamp::UNIX_EPOCH), Err(ApiLeadError::Invalid(m)) if m.starts_with("`email`"))
        );
        let nobody = ApiLead { key: "k", ..Default::default() };
        assert_eq!(inquiry(&nobody, Timestamp::UNIX_EPOCH), Err(ApiLeadError::NoContact));
    }
}
