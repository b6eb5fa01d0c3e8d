//! Which contact an inquiry belongs to, given the contacts its identities matched.

/// A contact found through one of the inquiry's identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub contact_id: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Nobody known: a new contact.
    New,
    /// Exactly one person: that contact (it gains any identities it lacks).
    Existing(String),
    /// The inquiry links several contacts: they are one person. Merge into the oldest
    /// (ties broken by id, so every instance decides the same way).
    Merge { into: String, from: Vec<String> },
}

pub fn resolve(matches: &[Match]) -> Resolution {
    let mut sorted: Vec<&Match> = matches.iter().collect();
    sorted.sort_by(|a, b| (a.created_at_ms, &a.contact_id).cmp(&(b.created_at_ms, &b.contact_id)));
    sorted.dedup_by(|a, b| a.contact_id == b.contact_id);
    match sorted.as_slice() {
        [] => Resolution::New,
        [only] => Resolution::Existing(only.contact_id.clone()),
        [oldest, rest @ ..] => Resolution::Merge {
            into: oldest.contact_id.clone(),
            from: rest.iter().map(|m| m.contact_id.clone()).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, at: i64) -> Match {
        Match { contact_id: id.into(), created_at_ms: at }
    }

    #[test]
    fn no_match_is_a_new_contact() {
        assert_eq!(resolve(&[]), Resolution::New);
    }

    #[test]
    fn the_same_contact_twice_is_one_contact() {
        assert_eq!(resolve(&[m("a", 5), m("a", 5)]), Resolution::Existing("a".into()));
    }

    #[test]
    fn several_contacts_merge_into_the_oldest() {
        let r = resolve(&[m("young", 30), m("old", 10), m("mid", 20), m("mid", 20)]);
        assert_eq!(r, Resolution::Merge { into: "old".into(), from: vec!["mid".into(), "young".into()] });
    }
}
