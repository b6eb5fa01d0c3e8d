//! Routing: which team a lead belongs to and which rep of that team owns it.
//!
//! Every decision here is a pure function of the candidates' state as read inside the intake
//! transaction; the caller writes the returned state changes back in the same transaction, so
//! round-robin stays fair across processes.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::Channel;
use super::working_hours::WorkingHours;

/// An ordered routing rule: every condition that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub team: String,
    pub channel: Option<Channel>,
    pub form: Option<String>,
    pub mailbox: Option<String>,
    pub utm_source: Option<String>,
    pub language: Option<String>,
    pub country: Option<String>,
}

/// What routing rules can look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    pub channel: Option<Channel>,
    pub form: Option<&'a str>,
    pub mailbox: Option<&'a str>,
    pub utm_source: Option<&'a str>,
    pub language: Option<&'a str>,
    pub country: Option<&'a str>,
}

fn same(want: &Option<String>, got: Option<&str>) -> bool {
    match want {
        None => true,
        Some(w) => got.is_some_and(|g| g.eq_ignore_ascii_case(w)),
    }
}

/// `en` matches `en-GB`: a rule names a language, a client reports a locale.
fn same_language(want: &Option<String>, got: Option<&str>) -> bool {
    match want {
        None => true,
        Some(w) => got.is_some_and(|g| {
            let primary = g.split(['-', '_']).next().unwrap_or(g);
            g.eq_ignore_ascii_case(w) || primary.eq_ignore_ascii_case(w)
        }),
    }
}

impl Rule {
    pub fn matches(&self, f: &Facts<'_>) -> bool {
        self.channel.is_none_or(|c| f.channel == Some(c))
            && same(&self.form, f.form)
            && same(&self.mailbox, f.mailbox)
            && same(&self.utm_source, f.utm_source)
            && same_language(&self.language, f.language)
            && same(&self.country, f.country)
    }
}

/// The first matching rule's team, else the default team.
pub fn pick_team<'r>(rules: &'r [Rule], default_team: Option<&'r str>, facts: &Facts<'_>) -> Option<&'r str> {
    rules.iter().find(|r| r.matches(facts)).map(|r| r.team.as_str()).or(default_team)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    RoundRobin,
    WeightedRoundRobin,
    LeastLoaded,
    /// Announced to the team; the first rep to take it owns it (see the Telegram channel).
    Claim,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::WeightedRoundRobin => "weighted_round_robin",
            Strategy::LeastLoaded => "least_loaded",
            Strategy::Claim => "claim",
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Strategy::RoundRobin, Strategy::WeightedRoundRobin, Strategy::LeastLoaded, Strategy::Claim]
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown strategy `{s}`"))
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rep's schedule: when they work and where.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub hours: WorkingHours,
    pub tz: TimeZone,
}

/// A team member as routing sees them, read inside the intake transaction.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub rep_id: String,
    pub name: String,
    pub active: bool,
    pub out_of_office_until: Option<Timestamp>,
    /// Maximum open leads; `None` = unlimited.
    pub capacity: Option<u32>,
    pub open_leads: u32,
    pub weight: u32,
    pub schedule: Option<Schedule>,
    /// The team's assignment sequence number when this member last got a lead (0 = never).
    pub last_assigned_seq: i64,
    /// Smooth weighted round-robin state.
    pub wrr_current: i64,
}

impl Candidate {
    /// An always-eligible rep with no history: the starting point of tests.
    #[cfg(test)]
    pub fn available(id: &str) -> Candidate {
        Candidate {
            rep_id: id.into(),
            name: id.to_uppercase(),
            active: true,
            out_of_office_until: None,
            capacity: None,
            open_leads: 0,
            weight: 1,
            schedule: None,
            last_assigned_seq: 0,
            wrr_current: 0,
        }
    }

    pub fn has_capacity(&self) -> bool {
        self.capacity.is_none_or(|cap| self.open_leads < cap)
    }

    pub fn is_eligible(&self, now: Timestamp, allow_after_hours: bool) -> bool {
        self.active
            && self.out_of_office_until.is_none_or(|until| until <= now)
            && self.has_capacity()
            && (allow_after_hours || self.schedule.as_ref().is_none_or(|s| s.hours.contains(now, &s.tz)))
    }
}

/// A routing decision and the state it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub rep_id: String,
    pub reason: &'static str,
    /// New `wrr_current` values for weighted round-robin (empty for other strategies).
    pub wrr_updates: Vec<(String, i64)>,
}

/// Picks the owner among `candidates` (in the team's stable order). `None` when nobody is
/// eligible or the strategy waits for a claim.
pub fn choose(strategy: Strategy, candidates: &[Candidate], now: Timestamp, allow_after_hours: bool) -> Option<Choice> {
    let eligible: Vec<&Candidate> = candidates.iter().filter(|c| c.is_eligible(now, allow_after_hours)).collect();
    // `min_by_key` keeps the first of equals: ties go to the earlier member.
    let simple = |rep: &Candidate, reason| Choice { rep_id: rep.rep_id.clone(), reason, wrr_updates: Vec::new() };
    match strategy {
        Strategy::Claim => None,
        Strategy::RoundRobin => eligible.iter().min_by_key(|c| c.last_assigned_seq).map(|c| simple(c, "round_robin")),
        Strategy::LeastLoaded => {
            eligible.iter().min_by_key(|c| (c.open_leads, c.last_assigned_seq)).map(|c| simple(c, "least_loaded"))
        }
        Strategy::WeightedRoundRobin => {
            // nginx's smooth weighted round-robin: everyone gains their weight, the richest
            // wins and pays the total. Over any window each rep gets their share to within one.
            let total: i64 = eligible.iter().map(|c| i64::from(c.weight.max(1))).sum();
            let raised: Vec<(&Candidate, i64)> =
                eligible.iter().map(|c| (*c, c.wrr_current + i64::from(c.weight.max(1)))).collect();
            let mut best: Option<(&Candidate, i64)> = None;
            for &(c, cw) in &raised {
                if best.is_none_or(|(_, b)| cw > b) {
                    best = Some((c, cw));
                }
            }
            let (winner, _) = best?;
            let wrr_updates = raised
                .iter()
                .map(|(c, cw)| (c.rep_id.clone(), if c.rep_id == winner.rep_id { cw - total } else { *cw }))
                .collect();
            Some(Choice { rep_id: winner.rep_id.clone(), reason: "weighted_round_robin", wrr_updates })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Strategy;
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn rep(id: &str) -> Candidate {
        Candidate::available(id)
    }

    fn now() -> Timestamp {
        "2026-11-23T10:00:00Z".parse().expect("ts")
    }

    /// Runs `k` assignments, writing state back the way intake does.
    fn simulate(strategy: Strategy, reps: &mut [Candidate], k: usize) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for seq in 1..=k as i64 {
            let Some(choice) = choose(strategy, reps, now(), false) else { break };
            for (id, cw) in &choice.wrr_updates {
                if let Some(r) = reps.iter_mut().find(|r| &r.rep_id == id) {
                    r.wrr_current = *cw;
                }
            }
            let r = reps.iter_mut().find(|r| r.rep_id == choice.rep_id).expect("chosen rep exists");
            r.last_assigned_seq = seq;
            r.open_leads += 1;
            *counts.entry(choice.rep_id).or_default() += 1;
        }
        counts
    }

    #[test]
    fn rules_match_in_order_then_default() {
        let rules = vec![
            Rule {
                team: "enterprise".into(),
                channel: Some(Channel::Webform),
                form: Some("enterprise".into()),
                ..Default::default()
            },
            Rule { team: "ru".into(), language: Some("ru".into()), ..Default::default() },
        ];
        let facts = |form, language| Facts { channel: Some(Channel::Webform), form, language, ..Default::default() };
        assert_eq!(pick_team(&rules, Some("sales"), &facts(Some("enterprise"), Some("ru"))), Some("enterprise"));
        assert_eq!(pick_team(&rules, Some("sales"), &facts(Some("contact"), Some("ru-RU"))), Some("ru"));
        assert_eq!(pick_team(&rules, Some("sales"), &facts(Some("contact"), Some("en"))), Some("sales"));
        assert_eq!(pick_team(&rules, None, &facts(None, None)), None);
    }

    #[test]
    fn thirty_leads_over_three_reps_is_ten_each() {
        let mut reps = vec![rep("anna"), rep("ben"), rep("chen")];
        let counts = simulate(Strategy::RoundRobin, &mut reps, 30);
        assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![10, 10, 10]);
    }

    #[test]
    fn ineligible_reps_are_skipped() {
        let later: Timestamp = "2026-12-01T00:00:00Z".parse().expect("ts");
        let mut away = rep("away");
        away.out_of_office_until = Some(later);
        let mut off = rep("off");
        off.active = false;
        let mut full = rep("full");
        full.capacity = Some(0);
        let mut night = rep("night");
        night.schedule =
            Some(Schedule { hours: WorkingHours::parse("Mon-Sun 20:00-23:00").expect("wh"), tz: TimeZone::UTC });
        let reps = vec![away, off, full, night.clone(), rep("ok")];
        assert_eq!(choose(Strategy::RoundRobin, &reps, now(), false).map(|c| c.rep_id), Some("ok".into()));
        assert!(choose(Strategy::RoundRobin, &reps[..4], now(), false).is_none());
        assert_eq!(
            choose(Strategy::RoundRobin, &[night], now(), true).map(|c| c.rep_id),
            Some("night".into()),
            "teams that allow after-hours ignore working hours"
        );
    }

    #[test]
    fn least_loaded_picks_the_rep_with_fewest_open_leads() {
        let mut a = rep("a");
        a.open_leads = 5;
        let mut b = rep("b");
        b.open_leads = 2;
        assert_eq!(choose(Strategy::LeastLoaded, &[a, b], now(), false).map(|c| c.rep_id), Some("b".into()));
    }

    #[test]
    fn claim_waits_for_a_rep() {
        assert!(choose(Strategy::Claim, &[rep("a")], now(), false).is_none());
    }

    proptest! {
        #[test]
        fn round_robin_is_fair_for_any_team_size(n in 1usize..8, k in 0usize..200) {
            let mut reps: Vec<_> = (0..n).map(|i| rep(&format!("r{i}"))).collect();
            let counts = simulate(Strategy::RoundRobin, &mut reps, k);
            for r in &reps {
                let got = counts.get(&r.rep_id).copied().unwrap_or(0);
                prop_assert!(got == k / n || got == k.div_ceil(n), "{} got {got} of {k} over {n}", r.rep_id);
            }
        }

        #[test]
        fn weighted_round_robin_gives_each_their_share(weights in proptest::collection::vec(1u32..6, 1..6), rounds in 1usize..20) {
            let mut reps: Vec<_> = weights.iter().enumerate().map(|(i, w)| {
                let mut r = rep(&format!("r{i}"));
                r.weight = *w;
                r
            }).collect();
            let total: u32 = weights.iter().sum();
            let k = total as usize * rounds;
            let counts = simulate(Strategy::WeightedRoundRobin, &mut reps, k);
            for (i, w) in weights.iter().enumerate() {
                prop_assert_eq!(counts.get(&format!("r{i}")).copied().unwrap_or(0), *w as usize * rounds);
            }
        }

        #[test]
        fn no_strategy_ever_exceeds_capacity(caps in proptest::collection::vec(0u32..5, 1..6), k in 0usize..40, s in 0usize..3) {
            let strategy = [Strategy::RoundRobin, Strategy::WeightedRoundRobin, Strategy::LeastLoaded][s];
            let mut reps: Vec<_> = caps.iter().enumerate().map(|(i, c)| {
                let mut r = rep(&format!("r{i}"));
                r.capacity = Some(*c);
                r
            }).collect();
            let counts = simulate(strategy, &mut reps, k);
            let assigned: usize = counts.values().sum();
            let room: usize = caps.iter().map(|c| *c as usize).sum();
            prop_assert_eq!(assigned, k.min(room), "everyone with room gets leads until full");
            for r in &reps {
                prop_assert!(r.capacity.is_none_or(|c| r.open_leads <= c));
            }
        }
    }
}
