//! Working hours such as `"Mon-Fri 09:00-18:00"` or `"Mon-Thu 08:00-17:00; Fri 08:00-13:00"`,
//! evaluated in a rep's own time zone.

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("working hours `{input}`: {reason} (expected e.g. \"Mon-Fri 09:00-18:00; Sat 10:00-14:00\")")]
pub struct WorkingHoursError {
    input: String,
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    /// Bit i set = the segment starts on weekday i (Monday = 0).
    days: u8,
    start_min: u16,
    end_min: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingHours {
    segments: Vec<Segment>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(s: &str) -> Option<u8> {
    let lower = s.to_ascii_lowercase();
    DAYS.iter().position(|d| lower.starts_with(d) && lower.len() <= 9).map(|i| i as u8)
}

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

impl WorkingHours {
    pub fn parse(input: &str) -> Result<Self, WorkingHoursError> {
        let err = |reason: &str| WorkingHoursError { input: input.to_owned(), reason: reason.to_owned() };
        let mut segments = Vec::new();
        for part in input.split([';', ',']).map(str::trim).filter(|p| !p.is_empty()) {
            let (days, hours) = part.split_once(char::is_whitespace).ok_or_else(|| err("missing hours"))?;
            let days = match days.trim().to_ascii_lowercase().as_str() {
                "daily" | "every" => 0x7f,
                d => match d.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (day_index(a), day_index(b));
                        let (Some(a), Some(b)) = (a, b) else { return Err(err("unknown day")) };
                        // `Fri-Mon` wraps over the weekend.
                        let mut mask = 0u8;
                        let mut i = a;
                        loop {
                            mask |= 1 << i;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                        mask
                    }
                    None => 1 << day_index(d).ok_or_else(|| err("unknown day"))?,
                },
            };
            let (start, end) = hours.trim().split_once('-').ok_or_else(|| err("hours need a start and an end"))?;
            let start_min = minutes(start.trim()).ok_or_else(|| err("bad time, use HH:MM"))?;
            let end_min = minutes(end.trim()).ok_or_else(|| err("bad time, use HH:MM"))?;
            if start_min == end_min {
                return Err(err("a segment cannot start and end at the same time"));
            }
            segments.push(Segment { days, start_min, end_min });
        }
        if segments.is_empty() {
            return Err(err("no segments"));
        }
        Ok(WorkingHours { segments })
    }

    /// Whether `now` falls inside these hours in `tz`. A segment whose end is before its start
    /// runs overnight into the next day.
    pub fn contains(&self, now: Timestamp, tz: &TimeZone) -> bool {
        let local = now.to_zoned(tz.clone());
        let day = local.weekday().to_monday_zero_offset() as u8;
        let yesterday = (day + 6) % 7;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        self.segments.iter().any(|s| {
            let today = s.days & (1 << day) != 0;
            if s.start_min < s.end_min {
                today && (s.start_min..s.end_min).contains(&minute)
            } else {
                (today && minute >= s.start_min) || (s.days & (1 << yesterday) != 0 && minute < s.end_min)
            }
        })
    }
}

/// Monday-first day names, for messages.
pub fn weekday_name(day: Weekday) -> &'static str {
    DAYS[day.to_monday_zero_offset() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn office_hours_in_the_reps_time_zone() {
        let wh = WorkingHours::parse("Mon-Fri 09:00-18:00").expect("valid");
        let berlin = TimeZone::get("Europe/Berlin").expect("tz");
        // 2026-11-23 is a Monday; Berlin is UTC+1 in November.
        assert!(wh.contains(at("2026-11-23T08:00:00Z"), &berlin)); // 09:00 local
        assert!(!wh.contains(at("2026-11-23T07:59:00Z"), &berlin));
        assert!(!wh.contains(at("2026-11-23T17:00:00Z"), &berlin)); // 18:00 local, end exclusive
        assert!(!wh.contains(at("2026-11-22T10:00:00Z"), &berlin)); // Sunday
    }

    #[test]
    fn several_segments_and_overnight_shifts() {
        let wh = WorkingHours::parse("Mon-Thu 08:00-17:00; Fri 22:00-06:00").expect("valid");
        let utc = TimeZone::UTC;
        assert!(wh.contains(at("2026-11-27T23:00:00Z"), &utc)); // Friday night
        assert!(wh.contains(at("2026-11-28T05:59:00Z"), &utc)); // Saturday early, from Friday's shift
        assert!(!wh.contains(at("2026-11-28T06:00:00Z"), &utc));
        assert!(!wh.contains(at("2026-11-27T10:00:00Z"), &utc)); // Friday daytime
    }

    #[test]
    fn bad_hours_are_rejected_with_the_input_named() {
        for bad in ["", "Mon-Fri", "Funday 09:00-10:00", "Mon 25:00-26:00", "Mon 09:00-09:00", "Mon 9-5"] {
            let e = WorkingHours::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("working hours"), "{e}");
        }
    }
}
