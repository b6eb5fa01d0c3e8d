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
    /// The owner of the contact's latest lead that has one: the contact is someone's.
    pub contact_owner: Option<String>,
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

impl TeamContext {
    /// A member's name as events show it (their id, should the team not list them).
    pub fn name_of(&self, rep_id: &str) -> String {
        let member = self.candidates.iter().find(|c| c.rep_id == rep_id);
        member.map_or_else(|| rep_id.to_owned(), |c| c.name.clone())
    }
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
    /// Younger open leads of merged contacts, folded into `fold_into`.
    pub folded: Vec<OpenLead>,
    /// The open lead the folded ones go into (with their messages).
    pub fold_into: Option<OpenLead>,
    /// Contacts the inquiry links to this one that are someone else's too: merging them is
    /// held for review (`MergePolicy::HoldOwned`) instead of done.
    pub held: Vec<String>,
    pub lead: LeadStep,
}

/// Whether the inquiry may merge contacts that both have owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergePolicy {
    /// The identities are vouched for (an admin's API call): merge what they link.
    Merge,
    /// Anyone could have typed them (a form, an email, a chat message): a merge between
    /// contacts that both have owners waits for an admin or those owners. Without it, one
    /// anonymous post with A's email and B's phone would fold B's lead into A's.
    HoldOwned,
}

/// Decides the plan. `new_id` makes ids for what is created.
pub fn plan(
    identities: &[Identity],
    has_name: bool,
    ctx: &Context,
    sticky_owner: bool,
    policy: MergePolicy,
    now: Timestamp,
    mut new_id: impl FnMut() -> String,
) -> Plan {
    let matches: Vec<Match> = ctx
        .known
        .iter()
        .map(|k| Match { contact_id: k.contact_id.clone(), created_at_ms: k.contact_created_at })
        .collect();
    let named = |id: &str| ctx.known.iter().any(|k| k.contact_id == id && k.contact_has_name);
    let (resolution, held) = match dedup::resolve(&matches) {
        Resolution::Merge { into, from } if policy == MergePolicy::HoldOwned => hold_owned(into, from, ctx),
        other => (other, Vec::new()),
    };
    let contact = match resolution {
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

    // The held contacts' leads are theirs alone until the review says otherwise.
    let open: Vec<OpenLead> = ctx.open_leads.iter().filter(|l| !held.contains(&l.contact_id)).cloned().collect();
    let (kept, folded) = fold_open_leads(&open);
    let fold_into = kept.clone().filter(|_| !folded.is_empty());
    // A reply belongs to the conversation it answers, whoever sends it.
    let lead = match ctx.thread_lead.clone().or(kept) {
        Some(kept) => LeadStep::Join { lead_id: kept.id, owner_id: kept.owner_id },
        None => {
            let team = ctx.team.as_ref();
            // With a merge held, the latest owner may be the other contact's: route afresh.
            let previous = ctx.previous_owner.as_ref().filter(|_| held.is_empty());
            let owner = team.and_then(|t| choose_owner(t, previous, sticky_owner, now));
            LeadStep::Open { lead_id: new_id(), team: team.map(|t| (t.id.clone(), t.seq + 1)), owner }
        }
    };
    Plan { contact, new_identities, folded, fold_into, held, lead }
}

/// Splits a merge that anonymous input asks for: contacts nobody owns merge now; of the owned
/// ones, the first (the merge target if it is owned, else the oldest owned) merges, and every
/// other one is held for review.
fn hold_owned(into: String, from: Vec<String>, ctx: &Context) -> (Resolution, Vec<String>) {
    let owned = |id: &str| ctx.known.iter().any(|k| k.contact_id == id && k.contact_owner.is_some());
    let owned_ids: Vec<&String> = std::iter::once(&into).chain(&from).filter(|c| owned(c)).collect();
    if owned_ids.len() < 2 {
        return (Resolution::Merge { into, from }, Vec::new());
    }
    let held: Vec<String> = owned_ids.into_iter().skip(1).cloned().collect();
    let now: Vec<String> = from.into_iter().filter(|c| !held.contains(c)).collect();
    let resolution = if now.is_empty() { Resolution::Existing(into) } else { Resolution::Merge { into, from: now } };
    (resolution, held)
}

/// One person keeps one open lead: the oldest. The others fold into it.
pub fn fold_open_leads(open: &[OpenLead]) -> (Option<OpenLead>, Vec<OpenLead>) {
    let mut sorted: Vec<&OpenLead> = open.iter().collect();
    sorted.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let folded = sorted.iter().skip(1).map(|l| (*l).clone()).collect();
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
            contact_owner: None,
        }
    }

    fn owned(value: &str, contact: &str, at: i64, owner: &str) -> KnownIdentity {
        KnownIdentity { contact_owner: Some(owner.into()), ..known(value, contact, at) }
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

    /// A plan for a new message (not a reply), routing on, owned contacts held for review.
    fn held_plan(identities: &[Identity], ctx: &Context) -> Plan {
        plan(identities, false, ctx, true, MergePolicy::HoldOwned, Timestamp::UNIX_EPOCH, ids())
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
        let p = plan(&[email("a@b.co")], true, &ctx, true, MergePolicy::HoldOwned, Timestamp::UNIX_EPOCH, ids());
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
        let p = plan(
            &[email("a@b.co"), email("second@b.co")],
            true,
            &ctx,
            true,
            MergePolicy::HoldOwned,
            Timestamp::UNIX_EPOCH,
            ids(),
        );
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
        let p = held_plan(&[email("a@b.co"), email("x@y.co")], &ctx);
        assert_eq!(p.contact, ContactStep::Merge { into: "old".into(), from: vec!["young".into()], fill_name: false });
        assert!(p.new_identities.is_empty(), "the merged contact's identity moves over with the merge");
        assert_eq!(p.folded.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["l-young"]);
        assert_eq!(p.fold_into.map(|l| l.id), Some("l-old".into()));
        assert_eq!(p.lead, LeadStep::Join { lead_id: "l-old".into(), owner_id: None });
    }

    #[test]
    fn a_reply_joins_the_lead_of_the_message_it_answers() {
        let thread =
            OpenLead { id: "l-thread".into(), contact_id: "someone-else".into(), owner_id: None, created_at: 1 };
        let ctx = Context { thread_lead: Some(thread), team: Some(team(&["anna"])), ..Default::default() };
        let p = held_plan(&[email("colleague@b.co")], &ctx);
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
        let p = held_plan(&[email("a@b.co")], &ctx);
        let LeadStep::Open { owner: Some(owner), .. } = p.lead else { panic!("an owner") };
        assert_eq!((owner.rep_id.as_str(), owner.reason), ("chen", "sticky_owner"));

        let mut away = rep("chen");
        away.active = false;
        let ctx = Context { previous_owner: Some(away), ..ctx };
        let p = held_plan(&[email("a@b.co")], &ctx);
        let LeadStep::Open { owner: Some(owner), .. } = p.lead else { panic!("an owner") };
        assert_eq!(owner.reason, "round_robin", "an ineligible previous owner is skipped");
    }

    fn open_lead(id: &str, contact: &str, owner: &str, at: i64) -> OpenLead {
        OpenLead { id: id.into(), contact_id: contact.into(), owner_id: Some(owner.into()), created_at: at }
    }

    #[test]
    fn anonymous_input_linking_two_owned_contacts_holds_the_merge() {
        // A's email and B's phone in one form post; both are someone's.
        let ctx = Context {
            known: vec![owned("a@b.co", "contact-a", 1, "anna"), owned("b@b.co", "contact-b", 5, "ben")],
            open_leads: vec![open_lead("lead-a", "contact-a", "anna", 2), open_lead("lead-b", "contact-b", "ben", 6)],
            previous_owner: Some(rep("ben")),
            ..Default::default()
        };
        let inquiry = [email("a@b.co"), email("b@b.co")];
        let p = held_plan(&inquiry, &ctx);
        assert_eq!(p.contact, ContactStep::Use { id: "contact-a".into(), fill_name: false });
        assert_eq!(p.held, vec!["contact-b".to_string()]);
        assert!(p.folded.is_empty(), "B's lead is left alone");
        assert_eq!(p.lead, LeadStep::Join { lead_id: "lead-a".into(), owner_id: Some("anna".into()) });
        assert!(p.new_identities.is_empty(), "B's address stays B's");

        // The same from an admin's API call merges.
        let p = plan(&inquiry, false, &ctx, true, MergePolicy::Merge, Timestamp::UNIX_EPOCH, ids());
        assert!(matches!(p.contact, ContactStep::Merge { .. }) && p.held.is_empty());
        assert_eq!(p.folded.len(), 1);
    }

    #[test]
    fn contacts_nobody_owns_still_merge_and_a_new_lead_is_routed_afresh() {
        let ctx = Context {
            known: vec![
                owned("a@b.co", "contact-a", 1, "anna"),
                known("c@b.co", "contact-c", 3),
                owned("b@b.co", "contact-b", 5, "ben"),
            ],
            previous_owner: Some(rep("ben")),
            team: Some(team(&["chen"])),
            ..Default::default()
        };
        let inquiry = [email("a@b.co"), email("b@b.co"), email("c@b.co")];
        let p = held_plan(&inquiry, &ctx);
        assert_eq!(
            p.contact,
            ContactStep::Merge { into: "contact-a".into(), from: vec!["contact-c".into()], fill_name: false }
        );
        assert_eq!(p.held, vec!["contact-b".to_string()]);
        let LeadStep::Open { owner: Some(owner), .. } = p.lead else { panic!("a new lead with an owner") };
        assert_eq!(owner.rep_id, "chen", "not Ben's by stickiness: his contact is the held one");

        // One owned contact and strangers: nothing to hold.
        let ctx = Context {
            known: vec![owned("a@b.co", "contact-a", 1, "anna"), known("c@b.co", "contact-c", 3)],
            ..Default::default()
        };
        let p = held_plan(&[email("a@b.co"), email("c@b.co")], &ctx);
        assert!(p.held.is_empty() && matches!(p.contact, ContactStep::Merge { .. }));
    }
}
