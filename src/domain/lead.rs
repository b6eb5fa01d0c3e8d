//! Lead statuses and the rules for moving between them.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Qualification,
    ProposalSent,
    Negotiation,
    WaitingResponse,
    Won,
    Lost,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::New,
        Status::Qualification,
        Status::ProposalSent,
        Status::Negotiation,
        Status::WaitingResponse,
        Status::Won,
        Status::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Qualification => "qualification",
            Status::ProposalSent => "proposal_sent",
            Status::Negotiation => "negotiation",
            Status::WaitingResponse => "waiting_response",
            Status::Won => "won",
            Status::Lost => "lost",
        }
    }

    pub fn is_open(self) -> bool {
        !matches!(self, Status::Won | Status::Lost)
    }
}

impl Status {
    /// The status in words: `proposal sent`.
    pub fn words(self) -> String {
        self.as_str().replace('_', " ")
    }
}

impl FromStr for Status {
    type Err = LeadRuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| LeadRuleError::UnknownStatus(s.to_owned()))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeadRuleError {
    #[error(
        "unknown status `{0}` (expected new, qualification, proposal_sent, negotiation, waiting_response, won or lost)"
    )]
    UnknownStatus(String),
    #[error("status `lost` needs a `lost_reason`")]
    LostNeedsReason,
    #[error("`lost_reason` can only be set together with status `lost`")]
    ReasonWithoutLost,
    #[error("lost_reason is longer than 200 characters")]
    ReasonTooLong,
    #[error("lost_reason `{given}` is not one of the configured reasons: {allowed}")]
    UnknownReason { given: String, allowed: String },
    #[error("lost_reason `other` needs a `lost_note` that says why")]
    OtherNeedsNote,
    #[error("lost_note is longer than 2000 characters")]
    NoteTooLong,
    #[error(
        "status `{0}` needs a `next_action_at`: an open lead past `new` must carry its next step \
         (pipeline.require_next_action)"
    )]
    NextActionRequired(Status),
}

/// The outcome of a requested status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    pub lost_reason: Option<String>,
    pub lost_note: Option<String>,
}

impl Transition {
    pub fn closes(&self) -> bool {
        self.from.is_open() && !self.to.is_open()
    }
    pub fn reopens(&self) -> bool {
        !self.from.is_open() && self.to.is_open()
    }
    pub fn changes(&self) -> bool {
        self.from != self.to
    }
}

/// What a status change is checked against (from `[pipeline]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules<'a> {
    /// The reasons a lead may be lost for; empty = any text.
    pub lost_reasons: &'a [String],
    pub require_next_action: bool,
}

/// The reason that needs a note to say what it was.
pub const OTHER: &str = "other";

/// How reasons compare: "No budget", "no_budget" and " no  budget " are one reason.
pub fn reason_key(reason: &str) -> String {
    reason
        .split(|c: char| c.is_whitespace() || c == '_')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The listed reason that `given` names, spelled as listed.
pub fn listed_reason<'a>(listed: &'a [String], given: &str) -> Option<&'a str> {
    let key = reason_key(given);
    listed.iter().find(|r| reason_key(r) == key).map(String::as_str)
}

/// Validates a status change. `lost` always carries a reason (one of the configured ones, when
/// there is a list; `other` with a note), and only `lost` does; moving between any two statuses
/// is otherwise allowed (sales processes skip stages, and a closed lead may be reopened), so the
/// rule set stays what users can predict.
pub fn transition(
    from: Status,
    to: Status,
    lost_reason: Option<&str>,
    lost_note: Option<&str>,
    rules: Rules<'_>,
) -> Result<Transition, LeadRuleError> {
    let reason = lost_reason.map(str::trim).filter(|r| !r.is_empty());
    let note = lost_note.map(str::trim).filter(|n| !n.is_empty());
    let reason = match (to, reason) {
        (Status::Lost, None) => return Err(LeadRuleError::LostNeedsReason),
        (Status::Lost, Some(r)) if r.chars().count() > 200 => return Err(LeadRuleError::ReasonTooLong),
        (Status::Lost, Some(r)) if rules.lost_reasons.is_empty() => r.to_owned(),
        (Status::Lost, Some(r)) => match listed_reason(rules.lost_reasons, r) {
            Some(listed) => listed.to_owned(),
            None => {
                let allowed = rules.lost_reasons.join(", ");
                return Err(LeadRuleError::UnknownReason { given: r.to_owned(), allowed });
            }
        },
        (_, Some(_)) => return Err(LeadRuleError::ReasonWithoutLost),
        (_, None) => return Ok(Transition { from, to, lost_reason: None, lost_note: None }),
    };
    if note.is_some_and(|n| n.chars().count() > 2000) {
        return Err(LeadRuleError::NoteTooLong);
    }
    if reason_key(&reason) == OTHER && note.is_none() {
        return Err(LeadRuleError::OtherNeedsNote);
    }
    Ok(Transition { from, to, lost_reason: Some(reason), lost_note: note.map(str::to_owned) })
}

/// An open lead past `new` carries its next step, when the pipeline requires it.
pub fn check_next_action(status: Status, next_action_at: Option<i64>, rules: Rules<'_>) -> Result<(), LeadRuleError> {
    if rules.require_next_action && status.is_open() && status != Status::New && next_action_at.is_none() {
        return Err(LeadRuleError::NextActionRequired(status));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        assert!("closed".parse::<Status>().is_err());
    }

    #[test]
    fn only_won_and_lost_are_closed() {
        let open: Vec<_> = Status::ALL.into_iter().filter(|s| s.is_open()).collect();
        assert_eq!(open.len(), 5);
        assert!(!Status::Won.is_open() && !Status::Lost.is_open());
    }

    #[test]
    fn lost_needs_a_reason_and_only_lost_takes_one() {
        let free = Rules::default();
        assert_eq!(transition(Status::New, Status::Lost, None, None, free), Err(LeadRuleError::LostNeedsReason));
        assert_eq!(transition(Status::New, Status::Lost, Some("  "), None, free), Err(LeadRuleError::LostNeedsReason));
        assert_eq!(
            transition(Status::New, Status::Won, Some("cheap"), None, free),
            Err(LeadRuleError::ReasonWithoutLost)
        );
        let t = transition(Status::Negotiation, Status::Lost, Some(" too expensive "), None, free).expect("valid");
        assert_eq!(t.lost_reason.as_deref(), Some("too expensive"));
        assert!(t.closes());
    }

    #[test]
    fn a_reason_list_is_enforced_and_spelled_as_listed() {
        let listed = ["Too expensive".to_owned(), "no_response".to_owned(), "other".to_owned()];
        let rules = Rules { lost_reasons: &listed, require_next_action: false };
        let t = transition(Status::New, Status::Lost, Some("too  EXPENSIVE"), None, rules).expect("listed");
        assert_eq!(t.lost_reason.as_deref(), Some("Too expensive"));
        let t = transition(Status::New, Status::Lost, Some("no response"), None, rules).expect("listed");
        assert_eq!(t.lost_reason.as_deref(), Some("no_response"));
        let err = transition(Status::New, Status::Lost, Some("cheap"), None, rules).expect_err("not listed");
        assert!(err.to_string().contains("Too expensive, no_response, other"), "{err}");
        assert_eq!(
            transition(Status::New, Status::Lost, Some("Other"), None, rules),
            Err(LeadRuleError::OtherNeedsNote)
        );
        let t = transition(Status::New, Status::Lost, Some("other"), Some(" moved abroad "), rules).expect("noted");
        assert_eq!((t.lost_reason.as_deref(), t.lost_note.as_deref()), (Some("other"), Some("moved abroad")));
    }

    #[test]
    fn open_leads_past_new_carry_a_next_action_when_required() {
        let rules = Rules { lost_reasons: &[], require_next_action: true };
        assert_eq!(
            check_next_action(Status::Qualification, None, rules),
            Err(LeadRuleError::NextActionRequired(Status::Qualification))
        );
        assert!(check_next_action(Status::Qualification, Some(1), rules).is_ok());
        assert!(check_next_action(Status::New, None, rules).is_ok());
        assert!(check_next_action(Status::Won, None, rules).is_ok());
        assert!(check_next_action(Status::Lost, None, rules).is_ok());
        let off = Rules { require_next_action: false, ..rules };
        assert!(check_next_action(Status::Negotiation, None, off).is_ok());
    }

    #[test]
    fn reopening_a_closed_lead_is_a_transition() {
        let t = transition(Status::Lost, Status::Qualification, None, None, Rules::default()).expect("valid");
        assert!(t.reopens() && !t.closes());
    }

    proptest::proptest! {
        /// Reasons are typed by people and clients: any text is refused or becomes a listed
        /// reason, spelled as listed; nothing panics.
        #[test]
        fn any_reason_is_listed_or_refused(reason in "\\PC{0,40}|(?i)(TOO[ _]+expensive|other|no_response) *", note in proptest::option::of("\\PC{0,20}")) {
            let listed = ["too expensive".to_owned(), "no_response".to_owned(), "other".to_owned()];
            let rules = Rules { lost_reasons: &listed, require_next_action: true };
            if let Ok(t) = transition(Status::Negotiation, Status::Lost, Some(&reason), note.as_deref(), rules) {
                let stored = t.lost_reason.unwrap_or_default();
                proptest::prop_assert!(listed.contains(&stored));
                proptest::prop_assert!(stored != "other" || t.lost_note.is_some_and(|n| !n.trim().is_empty()));
            }
        }
    }
}
