//! A mapped form submission becomes an `Inquiry`.

use jiff::Timestamp;

use super::providers::Submission;
use crate::domain::{Channel, EmailAddress, Identity, Inquiry, Message, PhoneE164, Source};
use crate::settings::FormSettings;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormaliseError {
    /// Nothing to reach the person by: such a lead is useless to a rep.
    #[error("{0}")]
    NoContact(String),
}

/// Builds the inquiry. Values that do not parse as an email or phone are kept on the lead as
/// custom fields: a prospect who mistyped one of two fields is still a prospect.
pub fn to_inquiry(
    form: &FormSettings,
    sub: &Submission,
    referer: Option<&str>,
    external_id: String,
    received_at: Timestamp,
) -> Result<Inquiry, NormaliseError> {
    let region = form.default_region;
    let mut identities: Vec<Identity> = Vec::new();
    let mut rejected: Vec<(String, String)> = Vec::new();
    for raw in &sub.emails {
        match EmailAddress::parse(raw) {
            Ok(e) => identities.push(e.into()),
            Err(_) => rejected.push(("unparsed_email".into(), raw.clone())),
        }
    }
    for raw in &sub.phones {
        match PhoneE164::parse(raw, region) {
            Ok(p) => identities.push(p.into()),
            Err(_) => rejected.push(("unparsed_phone".into(), raw.clone())),
        }
    }
    if identities.is_empty() {
        let detail = match rejected.as_slice() {
            [] => "the submission has no email and no phone: a lead needs at least one of them".to_owned(),
            bad => format!(
                "no usable email or phone: {}",
                bad.iter()
                    .map(|(k, v)| format!(
                        "`{v}` is not a valid {}",
                        if k == "unparsed_email" { "email address" } else { "phone number" }
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(NormaliseError::NoContact(detail));
    }

    let page = sub.page_url.clone().or_else(|| referer.map(str::to_owned));
    let from_page = page.as_deref().map(utm_from_url).unwrap_or_default();
    let pick = |field: &Option<String>, key: &str| {
        field.clone().or_else(|| from_page.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
    };
    let source = Source {
        form: Some(form.id.clone()),
        utm_source: pick(&sub.utm.source, "utm_source"),
        utm_medium: pick(&sub.utm.medium, "utm_medium"),
        utm_campaign: pick(&sub.utm.campaign, "utm_campaign"),
        utm_term: pick(&sub.utm.term, "utm_term"),
        utm_content: pick(&sub.utm.content, "utm_content"),
        referrer: page.map(|p| p.chars().take(2000).collect()),
        ..Default::default()
    };

    let mut custom = serde_json::Map::new();
    if let Some(company) = &sub.company {
        custom.insert("company".into(), company.clone().into());
    }
    for (k, v) in sub.extra.iter().chain(rejected.iter()).take(100) {
        custom
            .entry(k.chars().take(100).collect::<String>())
            .or_insert_with(|| v.chars().take(2000).collect::<String>().into());
    }

    Ok(Inquiry::builder(Channel::Webform, external_id, received_at)
        .source(source)
        .name(sub.name.as_deref())
        .identities(identities)
        .language(sub.language.clone())
        .message(Message { text: sub.message.clone().unwrap_or_default(), ..Default::default() })
        .custom_fields(custom)
        .build())
}

/// `utm_*` parameters of a page URL's query string.
fn utm_from_url(url: &str) -> Vec<(String, String)> {
    let Some((_, query)) = url.split_once('?') else { return Vec::new() };
    let query = query.split('#').next().unwrap_or(query);
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, v)| k.starts_with("utm_") && !v.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> FormSettings {
        FormSettings { default_region: crate::domain::Region::parse("DE").ok(), ..FormSettings::open("contact") }
    }

    fn now() -> Timestamp {
        Timestamp::UNIX_EPOCH
    }

    #[test]
    fn national_phones_use_the_forms_region_and_bad_values_are_kept() {
        let sub =
            Submission { phones: vec!["030 901820".into()], emails: vec!["not-an-email".into()], ..Default::default() };
        let inq = to_inquiry(&form(), &sub, None, "k".into(), now()).expect("valid");
        assert_eq!(inq.identities.len(), 1);
        assert_eq!(inq.identities[0].value(), "+4930901820");
        assert_eq!(inq.custom_fields.get("unparsed_email").and_then(|v| v.as_str()), Some("not-an-email"));
    }

    #[test]
    fn no_email_and_no_phone_is_refused_with_the_reason() {
        let e = to_inquiry(&form(), &Submission::default(), None, "k".into(), now()).expect_err("no contact");
        assert!(e.to_string().contains("no email and no phone"), "{e}");
        let bad = Submission { phones: vec!["12".into()], ..Default::default() };
        let e = to_inquiry(&form(), &bad, None, "k".into(), now()).expect_err("no contact");
        assert!(e.to_string().contains("`12` is not a valid phone number"), "{e}");
    }

    #[test]
    fn utm_comes_from_fields_then_from_the_page_url() {
        let mut sub = Submission { emails: vec!["a@b.de".into()], ..Default::default() };
        sub.utm.source = Some("newsletter".into());
        let inq = to_inquiry(
            &form(),
            &sub,
            Some("https://x.de/p?utm_source=google&utm_campaign=spring#top"),
            "k".into(),
            now(),
        )
        .expect("valid");
        assert_eq!(inq.source.utm_source.as_deref(), Some("newsletter"));
        assert_eq!(inq.source.utm_campaign.as_deref(), Some("spring"));
        assert_eq!(inq.source.form.as_deref(), Some("contact"));
    }
}
