//! Follow-up decisions the scheduler acts on: when a digest is due, and what each alert says.
//! Plain data in, decisions out; the scheduler does the reading and writing.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// "08:00" → 08:00. Hours 0–23, minutes 0–59.
pub fn parse_clock(text: &str) -> Option<Time> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    Time::new(h, m, 0, 0).ok()
}

/// A message for a rep or manager: the email's subject, and the text (Telegram or email body).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    pub subject: String,
    pub text: String,
}

fn at_utc(ms: i64) -> String {
    Timestamp::from_millisecond(ms).map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

/// "3d 4h", "5h 10m", "40s": how long, roughly.
pub fn rough_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

pub fn reminder(who: &str, note: Option<&str>, due_at: i64) -> Alert {
    let what = note.map(|n| format!(": {n}")).unwrap_or_default();
    Alert {
        subject: format!("Next step due: {who}"),
        text: format!("⏰ Next step for {who} was due {}{what}", at_utc(due_at)),
    }
}

pub fn stale(who: &str, status: &str, owner: Option<&str>, quiet_ms: i64) -> Alert {
    let owner = owner.map(|o| format!(", owner {o}")).unwrap_or_else(|| ", no owner".into());
    Alert {
        subject: format!("Lead gone quiet: {who}"),
        text: format!(
            "💤 No activity on {who} for {} (status {}{owner})",
            rough_duration(quiet_ms),
            status.replace('_', " ")
        ),
    }
}

pub fn escalated(who: &str, owner: &str, moves: i64) -> Alert {
    Alert {
        subject: format!("Nobody took on {who}"),
        text: format!(
            "🚨 {who} went to {moves} reps in turn and none took it on; it stays with {owner} until someone \
             reassigns it"
        ),
    }
}

pub fn moved_away(who: &str, to: &str) -> Alert {
    Alert {
        subject: format!("{who} moved to {to}"),
        text: format!("↪️ {who} was not taken on in time and went to {to}"),
    }
}

pub fn handed_over(who: &str, to: &str, note: Option<&str>) -> Alert {
    let why = note.map(|n| format!(": {n}")).unwrap_or_default();
    Alert { subject: format!("{who} moved to {to}"), text: format!("↪️ {who} was handed over to {to}{why}") }
}

pub fn merge_held(who: &str, others: usize) -> Alert {
    let what = if others == 1 { "another contact".to_owned() } else { format!("{others} other contacts") };
    Alert {
        subject: format!("Possible duplicate: {who}"),
        text: format!(
            "🔗 {who} wrote with details that also belong to {what} owned by someone. They were not merged: \
             confirm or reject the merge (GET /api/v1/merge-reviews)."
        ),
    }
}

pub fn auto_lost(who: &str, why: &str) -> Alert {
    Alert {
        subject: format!("Closed as no response: {who}"),
        text: format!("📭 {who} was closed as lost (no_response): {why}"),
    }
}

/// The digest's numbers for a manager's teams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DigestCounts {
    pub new: i64,
    pub unassigned: i64,
    pub overdue: i64,
    pub stale: i64,
    pub won: i64,
    pub lost: i64,
}

pub fn digest(day: &str, teams: &[String], c: &DigestCounts) -> Alert {
    Alert {
        subject: format!("Leads digest for {day}"),
        text: format!(
            "📊 {} — yesterday: {} new, {} won, {} lost. Now: {} unassigned, {} overdue, {} stale.",
            teams.join(", "),
            c.new,
            c.won,
            c.lost,
            c.unassigned,
            c.overdue,
            c.stale
        ),
    }
}

/// A digest to send: for local date `day`, covering the previous local day `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestDue {
    pub day: String,
    pub from: i64,
    pub to: i64,
}

/// The digest due at `now` for someone in `tz` who gets it at `at` local time: once it is
/// past `at` on a local date (a service that was down at that time catches up later that day).
pub fn digest_due(now: Timestamp, tz: &TimeZone, at: Time) -> Option<DigestDue> {
    let local = now.to_zoned(tz.clone());
    if local.time() < at {
        return None;
    }
    let today = local.date();
    let start = today.to_zoned(tz.clone()).ok()?;
    let yesterday = today.checked_sub(1.day()).ok()?.to_zoned(tz.clone()).ok()?;
    Some(DigestDue {
        day: today.to_string(),
        from: yesterday.timestamp().as_millisecond(),
        to: start.timestamp().as_millisecond(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_times_parse_and_nonsense_does_not() {
        assert_eq!(parse_clock("08:00"), Some(Time::constant(8, 0, 0, 0)));
        assert_eq!(parse_clock(" 23:59 "), Some(Time::constant(23, 59, 0, 0)));
        for bad in ["24:00", "8", "08:60", "-1:00", "", "ab:cd"] {
            assert_eq!(parse_clock(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_digest_is_due_after_its_local_time_and_covers_the_local_yesterday() {
        let berlin = TimeZone::get("Europe/Berlin").expect("tz");
        let at = Time::constant(8, 0, 0, 0);
        // 06:59 UTC is 07:59 in Berlin in winter: not yet.
        let early: Timestamp = "2026-11-23T06:59:00Z".parse().expect("ts");
        assert_eq!(digest_due(early, &berlin, at), None);
        let due = digest_due("2026-11-23T07:00:00Z".parse().expect("ts"), &berlin, at).expect("due");
        assert_eq!(due.day, "2026-11-23");
        let from: Timestamp = "2026-11-21T23:00:00Z".parse().expect("ts");
        let to: Timestamp = "2026-11-22T23:00:00Z".parse().expect("ts");
        assert_eq!((due.from, due.to), (from.as_millisecond(), to.as_millisecond()));
    }

    #[test]
    fn a_day_with_a_clock_change_is_as_long_as_it_is() {
        // 2026-10-25 had 25 hours in Berlin.
        let berlin = TimeZone::get("Europe/Berlin").expect("tz");
        let due = digest_due("2026-10-26T09:00:00Z".parse().expect("ts"), &berlin, Time::constant(8, 0, 0, 0));
        let due = due.expect("due");
        assert_eq!(due.to - due.from, 25 * 3600 * 1000);
    }

    #[test]
    fn alerts_say_who_and_what() {
        let r = reminder("Ivan", Some("call back"), 1_764_000_000_000);
        assert!(r.text.contains("Ivan") && r.text.contains("call back") && r.text.contains("2025-11-24"), "{r:?}");
        let s = stale("Ivan", "proposal_sent", Some("Anna"), 3 * 86_400_000 + 7_200_000);
        assert!(s.text.contains("3d 2h") && s.text.contains("proposal sent") && s.text.contains("Anna"), "{s:?}");
        assert_eq!(rough_duration(90_000), "1m");
        assert_eq!(rough_duration(2_000), "2s");
        let d = digest(
            "2026-11-23",
            &["sales".into()],
            &DigestCounts { new: 4, won: 1, lost: 2, unassigned: 3, overdue: 5, stale: 6 },
        );
        assert!(
            d.text.contains("4 new, 1 won, 2 lost") && d.text.contains("3 unassigned, 5 overdue, 6 stale"),
            "{d:?}"
        );
    }
}
