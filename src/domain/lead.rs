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
}

/// The outcome of a requested status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    pub lost_reason: Option<String>,
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

/// Validates a status change. `lost` always carries a reason, and only `lost` does; moving
/// between any two statuses is otherwise allowed (sales processes skip stages, and a closed lead
/// may be reopened), so the rule set stays what users can predict.
pub fn transition(from: Status, to: Status, lost_reason: Option<&str>) -> Result<Transition, LeadRuleError> {
    let reason = lost_reason.map(str::trim).filter(|r| !r.is_empty());
    match (to, reason) {
        (Status::Lost, None) => Err(LeadRuleError::LostNeedsReason),
        (Status::Lost, Some(r)) if r.chars().count() > 200 => Err(LeadRuleError::ReasonTooLong),
        (Status::Lost, Some(r)) => Ok(Transition { from, to, lost_reason: Some(r.to_owned()) }),
        (_, Some(_)) => Err(LeadRuleError::ReasonWithoutLost),
        (_, None) => Ok(Transition { from, to, lost_reason: None }),
    }
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
        assert_eq!(transition(Status::New, Status::Lost, None), Err(LeadRuleError::LostNeedsReason));
        assert_eq!(transition(Status::New, Status::Lost, Some("  ")), Err(LeadRuleError::LostNeedsReason));
        assert_eq!(transition(Status::New, Status::Won, Some("cheap")), Err(LeadRuleError::ReasonWithoutLost));
        let t = transition(Status::Negotiation, Status::Lost, Some(" too expensive ")).expect("valid");
        assert_eq!(t.lost_reason.as_deref(), Some("too expensive"));
        assert!(t.closes());
    }

    #[test]
    fn reopening_a_closed_lead_is_a_transition() {
        let t = transition(Status::Lost, Status::Qualification, None).expect("valid");
        assert!(t.reopens() && !t.closes());
    }
}
