//! The intake decision as one pure function: given what the database knows about an
//! inquiry's person and team (read in one round trip), decide the contact, the lead and the
//! owner. The store then writes the plan in one round trip.

use jiff::Timestamp;

use super::dedup::{self, Match, Resolution};
use super::routing::{self, Candidate, Strategy};
use super::{Identity, IdentityKind};

/// A contact that owns one of the inquiry's identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownIdentity {
    pub kind: IdentityKind,
    pub value: String,
    pub contact_id: String,
    pub contact_created_at: i64,
    pub contact_has_name: bool,
}

/// An open lead of one of the matched contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenLead {
    pub id: String,
    pub contact_id: String,
    pub owner_id: Option<String>,
    pub created_at: i64,
}

/// The routing state of the inquiry's team.
#[derive(Debug, Clone)]
pub struct TeamContext {
    pub id: String,
    pub strategy: Strategy,
    pub after_hours: bool,
    /// The team's assignment sequence before this inquiry.
    pub seq: i64,
    /// Members in a stable order.
    pub candidates: Vec<Candidate>,
}

/// Everything intake reads before deciding.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub known: Vec<KnownIdentity>,
    pub open_leads: Vec<OpenLead>,
    /// The owner of the person's most recent lead, as a routing candidate (sticky owner).
    pub previous_owner: Option<Candidate>,
    pub team: Option<TeamContext>,
    /// The open lead of a message this inquiry answers (email threading).
    pub thread_lead: Option<OpenLead>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactStep {
    Create {
        id: String,
    },
    Use {
        id: String,
        fill_name: bool,
    },
    /// `from` contacts are one person with `into`.
    Merge {
        into: String,
        from: Vec<String>,
        fill_name: bool,
    },
}

impl ContactStep {
    pub fn id(&self) -> &str {
        match self {
            ContactStep::Create { id } | ContactStep::Use { id, .. } | ContactStep::Merge { into: id, .. } => id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub rep_id: String,
    pub reason: &'static str,
    pub wrr_updates: Vec<(String, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadStep {
    /// The message joins the person's open lead.
    Join { lead_id: String, owner_id: Option<String> },
    /// A new lead, with an owner when one is eligible.
    Open { lead_id: String, team: Option<(String, i64)>, owner: Option<Owner> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub contact: ContactStep,
    /// Identities the contact does not have yet.
    pub new_identities: Vec<Identity>,
    /// Younger open leads of merged contacts, folded into the kept one: `(lead, owner)`.
    pub folded: Vec<(String, Option<String>)>,
    pub lead: LeadStep,
}

/// Decides the plan. `new_id` makes ids for what is created.
pub fn plan(
    identities: &[Identity],
    has_name: bool,
    ctx: &Context,
    sticky_owner: bool,
    now: Timestamp,
    mut new_id: impl FnMut() -> String,
) -> Plan {
    let matches: Vec<Match> = ctx
        .known
        .iter()
        .map(|k| Match { contact_id: k.contact_id.clone(), created_at_ms: k.contact_created_at })
        .collect();
    let named = |id: &str| ctx.known.iter().any(|k| k.contact_id == id && k.contact_has_name);
    let contact = match dedup::resolve(&matches) {
        Resolution::New => ContactStep::Create { id: new_id() },
        Resolution::Existing(id) => ContactStep::Use { fill_name: has_name && !named(&id), id },
        Resolution::Merge { into, from } => ContactStep::Merge { fill_name: has_name && !named(&into), into, from },
    };
    // Identities of merged contacts move over with the merge; only unknown ones are new.
    let new_identities = identities
        .iter()
        .filter(|i| !ctx.known.iter().any(|k| k.kind == i.kind() && k.value == i.value()))
        .cloned()
        .collect();

    let (kept, folded) = fold_open_leads(&ctx.open_leads);
    // A reply belongs to the conversation it answers, whoever sends it.
    let lead = match ctx.thread_lead.clone().or(kept) {
        Some(kept) => LeadStep::Join { lead_id: kept.id, owner_id: kept.owner_id },
        None => {
            let team = ctx.team.as_ref();
            let owner = team.and_then(|t| choose_owner(t, ctx.previous_owner.as_ref(), sticky_owner, now));
            LeadStep::Open { lead_id: new_id(), team: team.map(|t| (t.id.clone(), t.seq + 1)), owner }
        }
    };
    Plan { contact, new_identities, folded, lead }
}

/// One person keeps one open lead: the oldest. The others fold into it, as `(lead, owner)`.
pub fn fold_open_leads(open: &[OpenLead]) -> (Option<OpenLead>, Vec<(String, Option<String>)>) {
    let mut sorted: Vec<&OpenLead> = open.iter().collect();
    sorted.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let folded = sorted.iter().skip(1).map(|l| (l.id.clone(), l.owner_id.clone())).collect();
    (sorted.first().map(|l| (*l).clone()), folded)
}

/// The owner for a new lead in `team`: the previous owner if sticky and eligible, else the
/// team's strategy.
pub fn choose_owner(team: &TeamContext, previous: Option<&Candidate>, sticky: bool, now: Timestamp) -> Option<Owner> {
    if sticky && let Some(prev) = previous.filter(|p| p.is_eligible(now, team.after_hours)) {
        return Some(Owner { rep_id: prev.rep_id.clone(), reason: "sticky_owner", wrr_updates: Vec::new() });
    }
    routing::choose(team.strategy, &team.candidates, now, team.after_hours).map(|c| Owner {
        rep_id: c.rep_id,
        reason: c.reason,
        wrr_updates: c.wrr_updates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EmailAddress;

    fn email(s: &str) -> Identity {
        EmailAddress::parse(s).expect("email").into()
    }

    fn known(value: &str, contact: &str, at: i64) -> KnownIdentity {
        KnownIdentity {
            kind: IdentityKind::Email,
            value: value.into(),
            contact_id: contact.into(),
            contact_created_at: at,
            contact_has_name: false,
        }
    }

    fn rep(id: &str) -> Candidate {
        Candidate::available(id)
    }

    fn team(reps: &[&str]) -> TeamContext {
        TeamContext {
            id: "sales".into(),
            strategy: Strategy::RoundRobin,
            after_hours: true,
            seq: 7,
            candidates: reps.iter().map(|r| rep(r)).collect(),
        }
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("new{n}")
        }
    }

    #[test]
    fn a_stranger_gets_a_contact_a_lead_and_an_owner() {
        let ctx = Context { team: Some(team(&["anna", "ben"])), ..Default::default() };
        let p = plan(&[email("a@b.co")], true, &ctx, true, Timestamp::UNIX_EPOCH, ids());
        assert_eq!(p.contact, ContactStep::Create { id: "new1".into() });
        assert_eq!(p.new_identities.len(), 1);
        match p.lead {
            LeadStep::Open { lead_id, team, owner } => {
                assert_eq!(lead_id, "new2");
                assert_eq!(team, Some(("sales".into(), 8)));
                assert_eq!(owner.map(|o| o.rep_id), Some("anna".into()));
            }
            other => panic!("expected a new lead, got {other:?}"),
        }
    }

    #[test]
    fn a_known_person_with_an_open_lead_joins_it_and_gains_new_identities() {
        let ctx = Context {
            known: vec![known("a@b.co", "c1", 1)],
            open_leads: vec![OpenLead {
                id: "l1".into(),
                contact_id: "c1".into(),
                owner_id: Some("ben".into()),
                created_at: 1,
            }],
            ..Default::default()
        };
        let p = plan(&[email("a@b.co"), email("second@b.co")], true, &ctx, true, Timestamp::UNIX_EPOCH, ids());
        assert_eq!(p.contact, ContactStep::Use { id: "c1".into(), fill_name: true });
        assert_eq!(p.new_identities, vec![email("second@b.co")]);
        assert_eq!(p.lead, LeadStep::Join { lead_id: "l1".into(), owner_id: Some("ben".into()) });
    }

    #[test]
    fn linking_two_people_merges_them_and_folds_the_younger_open_lead() {
        let ctx = Context {
            known: vec![known("a@b.co", "old", 1), known("x@y.co", "young", 5)],
            open_leads: vec![
                OpenLead {
                    id: "l-young".into(),
                    contact_id: "young".into(),
                    owner_id: Some("ben".into()),
                    created_at: 6,
                },
                OpenLead { id: "l-old".into(), contact_id: "old".into(), owner_id: None, created_at: 2 },
            ],
            ..Default::default()
        };
        let p = plan(&[email("a@b.co"), email("x@y.co")], false, &ctx, true, Timestamp::UNIX_EPOCH, ids());
        assert_eq!(p.contact, ContactStep::Merge { into: "old".into(), from: vec!["young".into()], fill_name: false });
        assert!(p.new_identities.is_empty(), "the merged contact's identity moves over with the merge");
        assert_eq!(p.folded, vec![("l-young".into(), Some("ben".into()))]);
        assert_eq!(p.lead, LeadStep::Join { lead_id: "l-old".into(), owner_id: None });
    }

    #[test]
    fn a_reply_joins_the_lead_of_the_message_it_answers() {
        let thread =
            OpenLead { id: "l-thread".into(), contact_id: "someone-else".into(), owner_id: None, created_at: 1 };
        let ctx = Context { thread_lead: Some(thread), team: Some(team(&["anna"])), ..Default::default() };
        let p = plan(&[email("colleague@b.co")], false, &ctx, true, Timestamp::UNIX_EPOCH, ids());
        assert_eq!(p.lead, LeadStep::Join { lead_id: "l-thread".into(), owner_id: None });
    }

    #[test]
    fn a_returning_person_goes_back_to_an_eligible_previous_owner() {
        let ctx = Context {
            known: vec![known("a@b.co", "c1", 1)],
            previous_owner: Some(rep("chen")),
            team: Some(team(&["anna", "ben"])),
            ..Default::default()
        };
        let p = plan(&[email("a@b.co")], false, &ctx, true, Timestamp::UNIX_EPOCH, ids());
        let LeadStep::Open { owner: Some(owner), .. } = p.lead else { panic!("an owner") };
        assert_eq!((owner.rep_id.as_str(), owner.reason), ("chen", "sticky_owner"));

        let mut away = rep("chen");
        away.active = false;
        let ctx = Context { previous_owner: Some(away), ..ctx };
        let p = plan(&[email("a@b.co")], false, &ctx, true, Timestamp::UNIX_EPOCH, ids());
        let LeadStep::Open { owner: Some(owner), .. } = p.lead else { panic!("an owner") };
        assert_eq!(owner.reason, "round_robin", "an ineligible previous owner is skipped");
    }
}
