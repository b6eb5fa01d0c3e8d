//! A parsed email becomes an `Inquiry`.

use jiff::Timestamp;

use super::parse::ParsedMail;
use crate::domain::{Channel, EmailAddress, Identity, Inquiry, Message, PhoneE164, Source};

/// `None` when the sender's address is not an address (nothing to reach the person by).
pub fn to_inquiry(mailbox: &str, mail: &ParsedMail, internal_ms: Option<i64>) -> Option<Inquiry> {
    let sender = EmailAddress::parse(&mail.sender_email).ok()?;
    let mut identities: Vec<Identity> = vec![sender.into()];
    // The parser read them as E.164 already; parsing again only re-checks them.
    identities.extend(mail.phones.iter().filter_map(|p| PhoneE164::parse(p, None).ok()).map(Identity::from));
    let text = if mail.text.is_empty() { mail.full_text.clone() } else { mail.text.clone() };
    let received =
        mail.date_ms.or(internal_ms).and_then(|ms| Timestamp::from_millisecond(ms).ok()).unwrap_or_else(Timestamp::now);
    let mut custom = serde_json::Map::new();
    if mail.relayed {
        custom.insert("relayed".into(), true.into());
    }
    let inquiry = Inquiry::builder(Channel::Email, &mail.message_id, received)
        .source(Source { mailbox: Some(mailbox.to_owned()), ..Default::default() })
        .name(mail.sender_name.as_deref())
        .identities(identities)
        .language(mail.language.clone())
        .message(Message {
            subject: mail.subject.clone(),
            text,
            attachments: mail.attachments.clone(),
            external_id: None,
        })
        .custom_fields(custom)
        .thread(mail.thread_ids.clone())
        .build();
    Some(inquiry)
}
