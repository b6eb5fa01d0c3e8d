//! Values written as text in the configuration and parsed when it is read, so that a bad one
//! is reported with its key (see `load`) and nothing parses them again later.

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer};

use crate::domain::working_hours::WorkingHours;
use crate::domain::{EmailAddress, Region};

/// A duration written as `"30s"`, `"15m"`, `"2h"`, `"3d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period(pub std::time::Duration);

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map(Period).map_err(|e| {
            serde::de::Error::custom(format!("`{s}` is not a duration like \"30s\", \"15m\", \"2h\" ({e})"))
        })
    }
}

impl Period {
    pub fn from_secs(s: u64) -> Self {
        Period(std::time::Duration::from_secs(s))
    }
    pub fn as_millis_i64(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A parsed value with the text it was written as (what the database keeps of a rep's
/// schedule, say).
#[derive(Debug, Clone)]
pub struct Written<T> {
    pub text: String,
    pub value: T,
}

/// How a value is read from its text, and what a bad one is told.
pub trait FromText: Sized {
    fn from_text(text: &str) -> Result<Self, String>;
}

impl<'de, T: FromText> Deserialize<'de> for Written<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let value = T::from_text(&text).map_err(serde::de::Error::custom)?;
        Ok(Written { text, value })
    }
}

impl<T: PartialEq> PartialEq for Written<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T> fmt::Display for Written<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Settings may name these directly (`default_region = "US"`, `from = "leads@…"`).
macro_rules! deserialize_from_text {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                <$t>::from_text(&text).map_err(serde::de::Error::custom)
            }
        }
    )*};
}
deserialize_from_text!(Region, EmailAddress);

impl FromText for TimeZone {
    fn from_text(text: &str) -> Result<Self, String> {
        TimeZone::get(text.trim())
            .map_err(|_| format!("unknown timezone `{text}` (use an IANA name like Europe/Berlin)"))
    }
}

impl FromText for WorkingHours {
    fn from_text(text: &str) -> Result<Self, String> {
        WorkingHours::parse(text).map_err(|e| e.to_string())
    }
}

impl FromText for Region {
    fn from_text(text: &str) -> Result<Self, String> {
        Region::parse(text).map_err(|_| format!("unknown region `{text}` (an ISO 3166 code like US or DE)"))
    }
}

impl FromText for EmailAddress {
    fn from_text(text: &str) -> Result<Self, String> {
        EmailAddress::parse(text).map_err(|_| format!("`{text}` is not an email address"))
    }
}

impl FromText for Timestamp {
    fn from_text(text: &str) -> Result<Self, String> {
        parse_instant(text).ok_or_else(|| format!("`{text}` is not a date (2026-12-01) or an RFC 3339 time"))
    }
}

impl FromText for jiff::civil::Time {
    fn from_text(text: &str) -> Result<Self, String> {
        crate::domain::followup::parse_clock(text).ok_or_else(|| format!("`{text}` is not a time of day like 08:00"))
    }
}

/// `2026-12-01` (midnight UTC) or a full RFC 3339 timestamp.
pub fn parse_instant(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    s.parse::<Timestamp>().ok().or_else(|| {
        s.parse::<jiff::civil::Date>().ok().and_then(|d| d.to_zoned(TimeZone::UTC).ok()).map(|z| z.timestamp())
    })
}

/// An address to listen on, `127.0.0.1:8080`.
pub fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<std::net::SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.trim().parse().map_err(|_| serde::de::Error::custom(format!("`{text}` is not an address like 127.0.0.1:8080")))
}

/// A time of day that may be switched off with `""`.
pub fn optional_clock<'de, D: Deserializer<'de>>(d: D) -> Result<Option<jiff::civil::Time>, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    jiff::civil::Time::from_text(&text).map(Some).map_err(serde::de::Error::custom)
}
