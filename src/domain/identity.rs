//! Identities: the normalised keys by which one person is recognised across channels.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("not a valid email address")]
    Email,
    #[error("not a valid phone number")]
    Phone,
    #[error("not a valid Telegram user id")]
    Telegram,
    #[error("unknown identity kind `{0}`")]
    Kind(String),
    #[error("unknown region `{0}` (expected an ISO 3166 code such as US or DE)")]
    Region(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentityKind {
    Email,
    Phone,
    Telegram,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Email => "email",
            IdentityKind::Phone => "phone",
            IdentityKind::Telegram => "telegram",
        }
    }
}

impl FromStr for IdentityKind {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "email" => Ok(IdentityKind::Email),
            "phone" => Ok(IdentityKind::Phone),
            "telegram" => Ok(IdentityKind::Telegram),
            other => Err(IdentityError::Kind(other.to_owned())),
        }
    }
}

impl fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A normalised identity. Only constructible through the parsers below, so a value in the
/// database is always in canonical form and the unique index on `(kind, value)` means "same person".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    kind: IdentityKind,
    value: String,
}

impl Identity {
    pub fn kind(&self) -> IdentityKind {
        self.kind
    }
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Parses a stored or user-given `(kind, value)` pair, normalising it on the way.
    pub fn parse(kind: &str, value: &str, region: Option<Region>) -> Result<Self, IdentityError> {
        match kind.parse::<IdentityKind>()? {
            IdentityKind::Email => EmailAddress::parse(value).map(Identity::from),
            IdentityKind::Phone => PhoneE164::parse(value, region).map(Identity::from),
            IdentityKind::Telegram => TelegramUserId::parse(value).map(Identity::from),
        }
    }
}

/// An email address, trimmed and lower-cased. Lower-casing the local part is a policy choice:
/// mailbox providers treat it case-insensitively in practice, and a lead split in two because a
/// prospect typed `Ivan@` once and `ivan@` once is the bug users actually report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        let trimmed = raw.trim();
        let trimmed = trimmed.strip_prefix("mailto:").unwrap_or(trimmed).trim_matches(|c| c == '<' || c == '>');
        let lower = trimmed.to_lowercase();
        if lower.len() > 254 || !email_address::EmailAddress::is_valid(&lower) {
            return Err(IdentityError::Email);
        }
        // `email_address` accepts display-name forms such as `Ivan <a@b>`; an identity is the bare
        // address only, and a domain needs a dot to be deliverable on the public internet.
        let Some((local, domain)) = lower.rsplit_once('@') else {
            return Err(IdentityError::Email);
        };
        if local.is_empty()
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || lower.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
        {
            return Err(IdentityError::Email);
        }
        Ok(EmailAddress(lower))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<EmailAddress> for Identity {
    fn from(e: EmailAddress) -> Self {
        Identity { kind: IdentityKind::Email, value: e.0 }
    }
}

/// An ISO 3166 region used to read national phone numbers (`"US"`, `"DE"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(phonenumber::country::Id);

impl Region {
    pub fn parse(code: &str) -> Result<Self, IdentityError> {
        code.trim()
            .to_ascii_uppercase()
            .parse::<phonenumber::country::Id>()
            .map(Region)
            .map_err(|_| IdentityError::Region(code.to_owned()))
    }
}

/// A phone number in E.164 (`+14155550123`), parsed with libphonenumber's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneE164(String);

impl PhoneE164 {
    /// Reads a number as people type it. National numbers are read in `region`; a string of bare
    /// digits that is not a valid national number there (`380445550142`, or Telegram's
    /// `79123456789`) is read as international, because that is the only reading that makes it
    /// a real number.
    pub fn parse(raw: &str, region: Option<Region>) -> Result<Self, IdentityError> {
        let trimmed = raw.trim();
        let trimmed = trimmed.strip_prefix("tel:").unwrap_or(trimmed).trim();
        let digits = trimmed.chars().filter(char::is_ascii_digit).count();
        if !(5..=17).contains(&digits) || trimmed.len() > 40 {
            return Err(IdentityError::Phone);
        }
        let international = trimmed.starts_with('+');
        if !international && let Some(found) = Self::parse_in(trimmed, region.map(|r| r.0)) {
            return Ok(found);
        }
        let bare_digits = trimmed.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.' | '+'));
        if international || bare_digits {
            let plus = format!("+{}", trimmed.trim_start_matches('+'));
            if let Some(found) = Self::parse_in(&plus, None) {
                return Ok(found);
            }
        }
        Err(IdentityError::Phone)
    }

    fn parse_in(text: &str, region: Option<phonenumber::country::Id>) -> Option<Self> {
        let number = phonenumber::parse(region, text).ok()?;
        if !phonenumber::is_valid(&number) {
            return None;
        }
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        Some(PhoneE164(e164))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<PhoneE164> for Identity {
    fn from(p: PhoneE164) -> Self {
        Identity { kind: IdentityKind::Phone, value: p.0 }
    }
}

/// A Telegram user id: a positive integer (chat ids of groups are negative and never people).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramUserId(i64);

impl TelegramUserId {
    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        match raw.trim().parse::<i64>() {
            Ok(id) if id > 0 => Ok(TelegramUserId(id)),
            _ => Err(IdentityError::Telegram),
        }
    }
    pub fn new(id: i64) -> Result<Self, IdentityError> {
        if id > 0 { Ok(TelegramUserId(id)) } else { Err(IdentityError::Telegram) }
    }
}

impl From<TelegramUserId> for Identity {
    fn from(t: TelegramUserId) -> Self {
        Identity { kind: IdentityKind::Telegram, value: t.0.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::prop_assert_eq;

    fn phone(raw: &str, region: Option<&str>) -> Option<String> {
        let region = region.map(|r| Region::parse(r).expect("region"));
        PhoneE164::parse(raw, region).ok().map(|p| p.0)
    }

    #[test]
    fn email_is_trimmed_and_lower_cased() {
        let e = EmailAddress::parse("  Ivan.Petrov@Example.COM ").expect("valid");
        assert_eq!(e.as_str(), "ivan.petrov@example.com");
        assert_eq!(EmailAddress::parse("mailto:A@B.io").expect("valid").as_str(), "a@b.io");
    }

    #[test]
    fn email_rejects_garbage() {
        for bad in ["", "ivan", "ivan@", "@example.com", "a b@c.de", "Ivan <ivan@example.com>", "x@localhost"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn phones_in_many_spellings_meet_in_e164() {
        let want = Some("+79123456789".to_owned());
        assert_eq!(phone("+7 (912) 345-67-89", None), want);
        assert_eq!(phone("8 912 345 67 89", Some("RU")), want);
        assert_eq!(phone("79123456789", None), want, "Telegram sends numbers without +");
        assert_eq!(phone("tel:+79123456789", Some("US")), want);
        assert_eq!(phone("(415) 555-0132", Some("US")), Some("+14155550132".to_owned()));
    }

    #[test]
    fn bare_international_digits_are_read_as_international() {
        assert_eq!(phone("380445550142", Some("US")), Some("+380445550142".to_owned()));
        assert_eq!(phone("380445550142", None), Some("+380445550142".to_owned()));
    }

    #[test]
    fn phones_reject_garbage() {
        for bad in ["", "123", "call me", "+1 555", "0000000000000000000000"] {
            assert_eq!(phone(bad, Some("US")), None, "{bad:?} should be rejected");
        }
    }

    #[test]
    fn region_codes_are_checked() {
        assert!(Region::parse("de").is_ok());
        assert_eq!(Region::parse("XX"), Err(IdentityError::Region("XX".into())));
    }

    proptest::proptest! {
        /// Normalising a normalised value changes nothing, and case never splits a person.
        #[test]
        fn email_normalisation_is_idempotent_and_case_blind(local in "[a-zA-Z0-9._%+-]{1,20}", domain in "[a-zA-Z0-9-]{1,15}", tld in "[a-zA-Z]{2,6}") {
            let raw = format!(" {local}@{domain}.{tld} ");
            if let Ok(e) = EmailAddress::parse(&raw) {
                prop_assert_eq!(EmailAddress::parse(e.as_str()).map(|x| x.0), Ok(e.0.clone()));
                prop_assert_eq!(EmailAddress::parse(&raw.to_uppercase()).map(|x| x.0), Ok(e.0.clone()));
            }
        }

        /// Any valid number, however it is spaced and punctuated, meets its E.164 form.
        #[test]
        fn phone_spellings_meet_in_e164(digits in "[2-9][0-9]{2}[2-9][0-9]{6}", sep in "[ .-]?") {
            let us = Region::parse("US").expect("region");
            let spelled = format!("({}){sep}{}{sep}{}", &digits[..3], &digits[3..6], &digits[6..]);
            if let Ok(p) = PhoneE164::parse(&digits, Some(us)) {
                prop_assert_eq!(PhoneE164::parse(&spelled, Some(us)).map(|x| x.0), Ok(p.0.clone()));
                prop_assert_eq!(PhoneE164::parse(p.as_str(), None).map(|x| x.0), Ok(p.0.clone()));
            }
        }

        /// Garbage in gives an error, never a panic.
        #[test]
        fn parsers_never_panic(raw in ".{0,60}") {
            let _ = EmailAddress::parse(&raw);
            let _ = PhoneE164::parse(&raw, Region::parse("DE").ok());
            let _ = TelegramUserId::parse(&raw);
        }
    }

    #[test]
    fn telegram_ids_are_positive() {
        assert!(TelegramUserId::parse("12345").is_ok());
        assert!(TelegramUserId::parse("-100123").is_err());
        assert!(TelegramUserId::parse("abc").is_err());
    }
}
