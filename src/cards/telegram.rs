//! What reps see in Telegram: lead cards, their inline buttons, lists and help. Pure: the
//! notifier renders at sending time from what is stored, so a card shows the lead as it is
//! then. Plain text (no parse mode): nothing a prospect typed can break the markup.

use serde::{Deserialize, Serialize};

use crate::domain::records::{IdentityRow, InteractionRow, LeadRow};
use crate::domain::{Channel, EventType, Status};

/// Telegram's limit on a message's text, in UTF-16 units; we count chars and stay well below.
const MAX_TEXT: usize = 3800;
/// How much of one message a card quotes.
const QUOTE: usize = 700;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub text: String,
    pub data: String,
}

pub type Keyboard = Vec<Vec<Button>>;

/// Which card, for whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// To the owner (or the rep who may take it): what happened, with their buttons.
    Rep,
    /// In a team's group chat: the announcement, with Take while nobody owns the lead.
    Team,
    /// "Open" and `/lead`: everything, with the recent conversation.
    Detail,
}

/// What a button does. Encoded in `callback_data` (at most 64 bytes; lead ids are 32).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Take(String),
    Open(String),
    /// Shows the lost reasons.
    Lost(String),
    /// Marks the lead lost with reason number `n` of `telegram.lost_reasons`.
    LostReason(String, usize),
    /// Back from the reasons to the card.
    Back(String),
}

impl Action {
    pub fn encode(&self) -> String {
        match self {
            Action::Take(id) => format!("take:{id}"),
            Action::Open(id) => format!("open:{id}"),
            Action::Lost(id) => format!("lost:{id}"),
            Action::LostReason(id, n) => format!("lr:{id}:{n}"),
            Action::Back(id) => format!("back:{id}"),
        }
    }

    pub fn decode(data: &str) -> Option<Action> {
        let (verb, rest) = data.split_once(':')?;
        let id = |s: &str| Some(s.to_owned()).filter(|s| is_lead_id(s));
        Some(match verb {
            "take" => Action::Take(id(rest)?),
            "open" => Action::Open(id(rest)?),
            "lost" => Action::Lost(id(rest)?),
            "back" => Action::Back(id(rest)?),
            "lr" => {
                let (lead, n) = rest.split_once(':')?;
                // Only the form `encode` writes: digits, no leading zero.
                let canonical = n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'));
                Action::LostReason(id(lead)?, n.parse().ok().filter(|_| canonical)?)
            }
            _ => return None,
        })
    }

    pub fn lead_id(&self) -> &str {
        match self {
            Action::Take(id) | Action::Open(id) | Action::Lost(id) | Action::LostReason(id, _) | Action::Back(id) => id,
        }
    }
}

fn is_lead_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The short form of a lead id reps type: its last 8 characters (random in a UUIDv7).
pub fn short_id(id: &str) -> &str {
    &id[id.len().saturating_sub(8)..]
}

/// A lead id or its short form as a rep typed it (`/lead_1a2b3c4d`, `/lead 1a2b3c4d`).
pub fn typed_lead_id(text: &str) -> Option<&str> {
    let t = text.trim().trim_start_matches('#');
    (t.len() >= 6 && is_lead_id(t)).then_some(t)
}

fn button(text: &str, action: Action) -> Button {
    Button { text: text.to_owned(), data: action.encode() }
}

/// Everything a card is made of.
pub struct LeadFacts<'a> {
    pub lead: &'a LeadRow,
    pub identities: &'a [IdentityRow],
    pub interactions: &'a [InteractionRow],
}

/// A card's headline, from what happened: the event type that caused it and, for an
/// assignment, its reason (routing a new lead, or handing over one that already existed).
pub fn headline(event_type: Option<EventType>, reason: Option<&str>, view: View) -> &'static str {
    const HANDED_OVER: [&str; 5] = ["manual", "claim", "taken", "claim_timeout", "sla"];
    match (view, event_type) {
        (View::Detail, _) => "📄 Lead",
        (_, Some(EventType::LeadMessage)) => "💬 New message",
        (View::Rep, Some(EventType::LeadAssigned)) if reason.is_some_and(|r| HANDED_OVER.contains(&r)) => {
            "👤 Lead for you"
        }
        _ => "🆕 New lead",
    }
}

pub fn card(facts: &LeadFacts<'_>, view: View, headline: &str, viewer: Option<&str>) -> (String, Keyboard) {
    let lead = facts.lead;
    let who = display_name(facts);
    let mut text = format!("{headline}: {who}\n");
    let contacts: Vec<String> = facts.identities.iter().map(identity_label).collect();
    if !contacts.is_empty() {
        text.push_str(&contacts.join(" · "));
        text.push('\n');
    }
    text.push_str(&format!("Source: {}\n", source_label(lead)));
    text.push_str(&format!("Status: {}", status_label(lead)));
    match (&lead.owner, view) {
        (Some(owner), View::Team) if lead.accepted_at.is_some() => {
            text.push_str(&format!(" · ✋ taken by {}", owner.name))
        }
        (Some(owner), _) => text.push_str(&format!(" · owner {}", owner.name)),
        (None, _) if lead.closed_at.is_none() => text.push_str(" · nobody has it yet"),
        (None, _) => {}
    }
    text.push('\n');
    if let Some(note) = &lead.next_action_note {
        text.push_str(&format!("Next: {note}\n"));
    }
    let inbound: Vec<&InteractionRow> = facts.interactions.iter().filter(|i| i.kind != "note").collect();
    match view {
        View::Detail => {
            let recent = inbound.iter().rev().take(6).rev();
            for i in recent {
                let arrow = if i.direction == "inbound" { "→" } else { "←" };
                text.push_str(&format!("\n{arrow} {}", quote(i)));
            }
            text.push('\n');
        }
        _ => {
            if let Some(last) = inbound.iter().rev().find(|i| i.direction == "inbound") {
                text.push_str(&format!("\n{}\n", quote(last)));
            }
        }
    }
    text.push_str(&format!("\n/lead_{}", short_id(&lead.id)));
    if view == View::Rep && lead.channel == Channel::Telegram && lead.closed_at.is_none() {
        text.push_str(" · reply to this message to answer them");
    }
    (truncate(&text, MAX_TEXT), buttons(lead, view, viewer))
}

fn buttons(lead: &LeadRow, view: View, viewer: Option<&str>) -> Keyboard {
    let id = &lead.id;
    if lead.closed_at.is_some() {
        return Vec::new();
    }
    let owned_by_viewer = lead.owner.as_ref().is_some_and(|o| Some(o.id.as_str()) == viewer);
    match view {
        View::Team => match lead.owner {
            None => vec![vec![button("✋ Take", Action::Take(id.clone()))]],
            Some(_) => Vec::new(),
        },
        View::Rep | View::Detail => {
            let mut row = Vec::new();
            if lead.owner.is_none() || (owned_by_viewer && lead.accepted_at.is_none()) {
                row.push(button("✋ Take", Action::Take(id.clone())));
            }
            if view == View::Rep {
                row.push(button("📄 Open", Action::Open(id.clone())));
            }
            if owned_by_viewer {
                row.push(button("❌ Lost…", Action::Lost(id.clone())));
            }
            if row.is_empty() { Vec::new() } else { vec![row] }
        }
    }
}

/// "no_response" → "No response": reasons are written for analytics, buttons for people.
fn reason_label(reason: &str) -> String {
    let spaced = reason.replace('_', " ");
    let mut chars = spaced.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The keyboard after "Lost…": one reason a row, and the way back.
pub fn lost_reasons(lead_id: &str, reasons: &[String]) -> Keyboard {
    let mut rows: Keyboard = reasons
        .iter()
        .enumerate()
        .map(|(n, r)| vec![button(&reason_label(r), Action::LostReason(lead_id.to_owned(), n))])
        .collect();
    rows.push(vec![button("↩ Back", Action::Back(lead_id.to_owned()))]);
    rows
}

/// `/leads`: the rep's open leads, newest first.
pub fn lead_list(leads: &[LeadRow]) -> String {
    if leads.is_empty() {
        return "You have no open leads.".into();
    }
    let mut text = format!("Your open leads ({}):\n", leads.len());
    for lead in leads {
        let who = lead.contact_name.clone().unwrap_or_else(|| "someone".into());
        let fresh = if lead.accepted_at.is_none() { " · not taken yet" } else { "" };
        text.push_str(&format!("\n• {who} — {}{fresh}\n  /lead_{}", status_label(lead), short_id(&lead.id)));
    }
    truncate(&text, MAX_TEXT)
}

/// A rep's "when": in `2h` / `3d` (from `now`), on a date, or at an RFC 3339 time.
pub fn parse_when(text: &str, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    if let Ok(d) = humantime::parse_duration(text) {
        let d = jiff::SignedDuration::try_from(d).ok()?;
        return now.checked_add(d).ok();
    }
    crate::settings::parse_instant(text)
}

/// "on 2026-12-01 10:00 UTC: call back".
pub fn when(at: i64, note: Option<&str>) -> String {
    let at = crate::base::from_ms(at).strftime("%Y-%m-%d %H:%M UTC");
    match note {
        Some(n) => format!("on {at}: {n}"),
        None => format!("on {at}"),
    }
}

pub fn help(rep_name: &str) -> String {
    format!(
        "You are linked as {rep_name}. New leads and their messages arrive here.\n\n\
         Reply to a lead's message to answer the prospect through the bot.\n\
         /leads — your open leads\n\
         /lead <id> — one lead with its conversation\n\
         /status <id> <status> [reason] — new, qualification, proposal_sent, negotiation, \
         waiting_response, won, lost (with a reason)\n\
         /next <id> <when> [what] — the next step: in 2h or 3d, or on 2026-12-01"
    )
}

fn display_name(facts: &LeadFacts<'_>) -> String {
    facts
        .lead
        .contact_name
        .clone()
        .or_else(|| facts.identities.first().map(|i| i.value.clone()))
        .unwrap_or_else(|| "someone".into())
}

fn identity_label(i: &IdentityRow) -> String {
    let gone = if i.undeliverable_at.is_some() { " (unreachable)" } else { "" };
    match i.kind.as_str() {
        "telegram" => format!("Telegram {}{gone}", i.value),
        _ => format!("{}{gone}", i.value),
    }
}

fn source_label(lead: &LeadRow) -> String {
    let mut parts = vec![lead.channel.as_str().to_owned()];
    parts.extend(lead.source_form.iter().map(|f| format!("form {f}")));
    parts.extend(lead.source_mailbox.iter().map(|m| format!("mailbox {m}")));
    let utm: Vec<&str> =
        [&lead.utm_source, &lead.utm_medium, &lead.utm_campaign].into_iter().flatten().map(String::as_str).collect();
    if !utm.is_empty() {
        parts.push(utm.join(" / "));
    }
    parts.join(", ")
}

fn status_label(lead: &LeadRow) -> String {
    match &lead.lost_reason {
        Some(reason) if lead.status == Status::Lost => format!("lost ({reason})"),
        _ => lead.status.words(),
    }
}

fn quote(i: &InteractionRow) -> String {
    let files = serde_json::from_str::<Vec<serde_json::Value>>(&i.attachments).map(|a| a.len()).unwrap_or(0);
    let mut text = truncate(i.text.trim(), QUOTE);
    if files > 0 {
        text.push_str(&format!(" [📎 {files}]"));
    }
    if text.is_empty() { "(no text)".into() } else { text }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::records::OwnerRef;

    const ID: &str = "019a1b2c3d4e7f00a1b2c3d4e5f60718";

    fn lead() -> LeadRow {
        LeadRow {
            id: ID.into(),
            contact_id: "c1".into(),
            contact_name: Some("Иван Петров".into()),
            channel: Channel::Telegram,
            source_form: None,
            source_mailbox: None,
            source_bot: Some("kestrel_bot".into()),
            utm_source: Some("google".into()),
            utm_medium: None,
            utm_campaign: Some("spring".into()),
            utm_term: None,
            utm_content: None,
            referrer: None,
            language: Some("ru".into()),
            country: None,
            status: Status::New,
            lost_reason: None,
            lost_note: None,
            team_id: Some("sales".into()),
            owner: None,
            assigned_at: None,
            accepted_at: None,
            first_response_at: None,
            next_action_at: None,
            next_action_note: None,
            last_activity_at: 0,
            custom_fields: "{}".into(),
            closed_at: None,
            merged_into: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn message(direction: &str, text: &str) -> InteractionRow {
        InteractionRow {
            id: "i".into(),
            channel: "telegram".into(),
            direction: direction.into(),
            kind: "message".into(),
            author_id: None,
            external_id: None,
            subject: None,
            text: text.into(),
            attachments: "[]".into(),
            at: 0,
        }
    }

    fn anna() -> Option<OwnerRef> {
        Some(OwnerRef { id: "anna".into(), name: "Anna".into() })
    }

    fn datas(k: &Keyboard) -> Vec<String> {
        k.iter().flatten().map(|b| b.data.clone()).collect()
    }

    #[test]
    fn actions_round_trip_and_fit_in_callback_data() {
        for a in [
            Action::Take(ID.into()),
            Action::Open(ID.into()),
            Action::Lost(ID.into()),
            Action::LostReason(ID.into(), 11),
            Action::Back(ID.into()),
        ] {
            assert!(a.encode().len() <= 64, "{}", a.encode());
            assert_eq!(Action::decode(&a.encode()), Some(a.clone()));
        }
        for bad in ["", "take", "take:", "take:../x", "lr:abc", "lr:abc:x", "grab:abc", "take:a b"] {
            assert_eq!(Action::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn team_card_offers_take_until_someone_owns_the_lead() {
        let ids = [IdentityRow { kind: "telegram".into(), value: "123".into(), undeliverable_at: None }];
        let talk = [message("inbound", "Нужна доставка")];
        let mut l = lead();
        let (text, keys) =
            card(&LeadFacts { lead: &l, identities: &ids, interactions: &talk }, View::Team, "🆕 New lead", None);
        assert!(
            text.starts_with("🆕 New lead: Иван Петров\nTelegram 123\nSource: telegram, google / spring"),
            "{text}"
        );
        assert!(text.contains("Нужна доставка") && text.contains("nobody has it yet"), "{text}");
        assert_eq!(datas(&keys), [format!("take:{ID}")]);
        l.owner = anna();
        l.accepted_at = Some(1);
        let (text, keys) =
            card(&LeadFacts { lead: &l, identities: &ids, interactions: &talk }, View::Team, "🆕 New lead", None);
        assert!(text.contains("taken by Anna"), "{text}");
        assert!(keys.is_empty());
    }

    #[test]
    fn rep_card_buttons_follow_ownership_and_acceptance() {
        let mut l = lead();
        l.owner = anna();
        let facts = |l: &LeadRow| {
            card(&LeadFacts { lead: l, identities: &[], interactions: &[] }, View::Rep, "x", Some("anna")).1
        };
        assert_eq!(datas(&facts(&l)), [format!("take:{ID}"), format!("open:{ID}"), format!("lost:{ID}")]);
        l.accepted_at = Some(5);
        assert_eq!(datas(&facts(&l)), [format!("open:{ID}"), format!("lost:{ID}")]);
        l.status = Status::Won;
        l.closed_at = Some(9);
        assert!(facts(&l).is_empty(), "a closed lead has no buttons");
    }

    #[test]
    fn detail_quotes_the_recent_conversation_both_ways() {
        let talk = [message("inbound", "Hi"), message("outbound", "Hello, Ivan"), message("inbound", "Price?")];
        let (text, _) =
            card(&LeadFacts { lead: &lead(), identities: &[], interactions: &talk }, View::Detail, "📄 Lead", None);
        assert!(text.contains("→ Hi\n← Hello, Ivan\n→ Price?"), "{text}");
        assert!(text.contains(&format!("/lead_{}", short_id(ID))));
    }

    #[test]
    fn long_messages_are_cut_to_fit() {
        let long = "я".repeat(10_000);
        let talk = [message("inbound", &long)];
        let (text, _) = card(&LeadFacts { lead: &lead(), identities: &[], interactions: &talk }, View::Rep, "x", None);
        assert!(text.chars().count() < 1200, "{}", text.chars().count());
        assert!(lead_list(&vec![lead(); 500]).chars().count() <= MAX_TEXT + 1);
    }

    proptest::proptest! {
        /// Callback data comes from Telegram clients: anything decodes or is refused, and what
        /// decodes encodes back to the same data.
        #[test]
        fn any_callback_data_is_decoded_or_refused(
            data in "\\PC{0,70}|(take|open|lost|back|lr):[a-z0-9]{0,34}(:[+0-9]{0,3})?"
        ) {
            if let Some(action) = Action::decode(&data) {
                proptest::prop_assert_eq!(action.encode(), data.clone());
            }
            let _ = typed_lead_id(&data);
        }

        /// `/next <when>` is typed by people: anything is a time or refused, without panicking,
        /// and a duration never lands before now.
        #[test]
        fn any_when_is_a_time_or_refused(when in "\\PC{0,30}|[0-9]{1,12}(s|m|h|d|w|y)|20[0-9]{2}-[0-9]{2}-[0-9]{2}") {
            let now = jiff::Timestamp::now();
            if let Some(at) = parse_when(&when, now)
                && humantime::parse_duration(&when).is_ok()
            {
                proptest::prop_assert!(at >= now);
            }
        }
    }

    #[test]
    fn when_reads_durations_dates_and_times() {
        let now: jiff::Timestamp = "2026-11-22T10:00:00Z".parse().expect("ts");
        assert_eq!(parse_when("2h", now), Some("2026-11-22T12:00:00Z".parse().expect("ts")));
        assert_eq!(parse_when("3d", now), Some("2026-11-25T10:00:00Z".parse().expect("ts")));
        assert_eq!(parse_when("2026-12-01", now), Some("2026-12-01T00:00:00Z".parse().expect("ts")));
        assert_eq!(parse_when("2026-12-01T09:30:00Z", now), Some("2026-12-01T09:30:00Z".parse().expect("ts")));
        for bad in ["someday", "", "-2h", "99999999999999y"] {
            assert_eq!(parse_when(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn typed_ids() {
        assert_eq!(typed_lead_id(" 5f60718 "), Some("5f60718"));
        assert_eq!(typed_lead_id("#e5f60718"), Some("e5f60718"));
        assert_eq!(typed_lead_id("abc"), None);
        assert_eq!(typed_lead_id("e5f6%0718"), None);
        assert_eq!(short_id(ID), "e5f60718");
    }
}
