//! Reading the configuration so that every problem is found in one pass. serde stops at the
//! first value of the wrong type; to go on, the loader sets that value aside and reads
//! again, until what is left reads cleanly. Each problem is named by its key as written in
//! the file (`teams[0].sla`), with the environment variable when the value came from one.

use figment::Figment;
use figment::error::Kind;
use figment::providers::Serialized;
use figment::value::{Dict, Value};

use super::Settings;

/// Enough for any real file; a bound in case a value keeps failing in the same place.
const MAX_ROUNDS: usize = 200;

/// Every problem reading the settings found, and the settings read from what was left (none
/// when nothing could be read at all).
pub(super) fn extract_all(figment: &Figment) -> (Option<Settings>, Vec<String>) {
    let first = match figment.extract::<Settings>() {
        Ok(settings) => return (Some(settings), Vec::new()),
        Err(e) => e,
    };
    // The merged values (file and environment), as a tree we can prune.
    let mut dict = match figment.extract::<Dict>() {
        Ok(dict) => dict,
        Err(_) => return (None, first.into_iter().map(|e| describe(figment, &e, &[])).collect()),
    };
    let mut problems = Vec::new();
    // Array elements set aside, by array path: later indices are reported as in the file.
    let mut removed: Vec<(Vec<String>, usize)> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let errors = match Figment::from(Serialized::defaults(&dict)).extract::<Settings>() {
            Ok(settings) => return (Some(settings), problems),
            Err(e) => e,
        };
        for e in errors {
            let path = original_path(&dict, &e.path, &removed);
            problems.push(describe(figment, &e, &path));
            if !set_aside(&mut dict, &e, &mut removed) {
                return (None, problems);
            }
        }
    }
    (None, problems)
}

/// Removes what made `e`. `false` when there is nothing left to remove.
fn set_aside(dict: &mut Dict, e: &figment::Error, removed: &mut Vec<(Vec<String>, usize)>) -> bool {
    let mut path = e.path.clone();
    if let Kind::UnknownField(name, _) = &e.kind
        && path.last() != Some(name)
    {
        path.push(name.clone());
    }
    if matches!(e.kind, Kind::MissingField(_)) {
        // The entry lacks a key it needs: the entry goes (its other keys were read already).
        if path.is_empty() {
            return false;
        }
    }
    let Some((last, parents)) = path.split_last() else { return false };
    if parents.is_empty() {
        return dict.remove(last).is_some();
    }
    let Some(parent) = walk(dict, parents) else { return false };
    match parent {
        Value::Dict(_, d) => d.remove(last).is_some(),
        Value::Array(_, items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                let original = to_original(parents, i, removed);
                removed.push((parents.to_vec(), original));
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// The value at `path` below the root dict, as a mutable container.
fn walk<'a>(dict: &'a mut Dict, path: &[String]) -> Option<&'a mut Value> {
    let (first, rest) = path.split_first()?;
    let mut at = dict.get_mut(first)?;
    for key in rest {
        at = match at {
            Value::Dict(_, d) => d.get_mut(key)?,
            Value::Array(_, items) => items.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Where the `i`th element left in `array` was in the file.
fn to_original(array: &[String], i: usize, removed: &[(Vec<String>, usize)]) -> usize {
    let mut gone: Vec<usize> = removed.iter().filter(|(p, _)| p == array).map(|(_, n)| *n).collect();
    gone.sort_unstable();
    let mut original = i;
    for n in gone {
        if n <= original {
            original += 1;
        }
    }
    original
}

/// The error's path as in the file: array indices counted as written.
fn original_path(dict: &Dict, path: &[String], removed: &[(Vec<String>, usize)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(path.len());
    let mut at: Option<&Value> = None;
    for (n, key) in path.iter().enumerate() {
        let next = match at {
            None => dict.get(key),
            Some(Value::Dict(_, d)) => d.get(key),
            Some(Value::Array(_, items)) => {
                let i = key.parse::<usize>().ok();
                let shown = i.map(|i| to_original(&path[..n], i, removed).to_string());
                out.push(shown.unwrap_or_else(|| key.clone()));
                at = i.and_then(|i| items.get(i));
                continue;
            }
            Some(_) => None,
        };
        out.push(key.clone());
        at = next;
    }
    out
}

/// `teams[0].sla` from `["teams", "0", "sla"]`.
fn key_name(path: &[String]) -> String {
    let mut name = String::new();
    for key in path {
        if key.parse::<usize>().is_ok() {
            name.push_str(&format!("[{key}]"));
        } else {
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(key);
        }
    }
    name
}

fn describe(figment: &Figment, e: &figment::Error, path: &[String]) -> String {
    let mut path = path.to_vec();
    let what = match &e.kind {
        Kind::UnknownField(name, expected) => {
            if path.last() == Some(name) {
                path.pop();
            }
            let known = if expected.is_empty() { String::new() } else { format!(" (known: {})", expected.join(", ")) };
            let within = if path.is_empty() { String::new() } else { format!(" in {}", key_name(&path)) };
            return with_source(figment, e, format!("unknown key `{name}`{within}{known}"));
        }
        Kind::MissingField(name) => {
            let within = if path.is_empty() { "the file".to_owned() } else { key_name(&path) };
            return with_source(figment, e, format!("{within}: `{name}` is missing"));
        }
        Kind::InvalidType(actual, expected) => format!("expected {expected}, found {actual}"),
        Kind::InvalidValue(actual, expected) => format!("expected {expected}, found {actual}"),
        Kind::UnknownVariant(given, expected) => format!("`{given}` is not one of {}", expected.join(", ")),
        other => other.to_string(),
    };
    if path.is_empty() {
        return with_source(figment, e, what);
    }
    with_source(figment, e, format!("{}: {what}", key_name(&path)))
}

/// Names the environment variable a value came from, where it did.
fn with_source(figment: &Figment, e: &figment::Error, text: String) -> String {
    let dotted = e.path.join(".");
    match figment.find_metadata(&dotted) {
        Some(m) if m.name.contains("environment") => format!("{text} (from the LEADROUTER__ environment)"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use figment::providers::{Format, Toml};

    use super::*;

    fn problems(toml: &str) -> Vec<String> {
        extract_all(&Figment::new().merge(Toml::string(toml))).1
    }

    #[test]
    fn every_type_error_is_listed_by_its_key() {
        let p = problems(
            r#"
            colour = "blue"
            [server]
            request_timeout = "-5m"
            [[reps]]
            id = "anna"
            name = "Anna"
            capacity = -3
            [[reps]]
            id = "ben"
            name = "Ben"
            weight = "heavy"
            [[teams]]
            id = "sales"
            sla = "soon"
            stratgy = "round_robin"
            "#,
        );
        let all = p.join("\n");
        for needle in [
            "unknown key `colour`",
            "server.request_timeout: ",
            "`-5m` is not a duration",
            "reps[0].capacity: ",
            "reps[1].weight: ",
            "teams[0].sla: ",
            "unknown key `stratgy` in teams[0]",
        ] {
            assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
        }
        assert!(!all.contains("default."), "no profile prefix:\n{all}");
        assert_eq!(p.len(), 6, "one line per problem:\n{all}");
    }

    #[test]
    fn an_entry_missing_a_key_goes_and_later_entries_keep_their_place() {
        let p = problems(
            r#"
            [[reps]]
            id = "anna"
            [[reps]]
            id = "ben"
            name = "Ben"
            capacity = "lots"
            "#,
        );
        let all = p.join("\n");
        assert!(all.contains("reps[0]: `name` is missing"), "{all}");
        assert!(all.contains("reps[1].capacity"), "the second entry is still the second:\n{all}");
    }

    #[test]
    fn a_clean_file_reads() {
        assert!(problems("[server]\nlisten = \"127.0.0.1:9000\"\n").is_empty());
    }
}
