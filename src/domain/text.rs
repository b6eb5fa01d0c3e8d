//! Text as it may be stored. PostgreSQL's text cannot hold a NUL character (SQLite's can):
//! so that both backends keep the same thing, NULs are dropped from everything that arrives.
//! Nobody types one; a NUL is noise or an attack.

use std::borrow::Cow;

/// `s` without NUL characters.
pub fn without_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') { Cow::Owned(s.replace('\0', "")) } else { Cow::Borrowed(s) }
}

/// Drops NULs in place.
pub fn strip_nul(s: &mut String) {
    if s.contains('\0') {
        s.retain(|c| c != '\0');
    }
}

pub fn strip_nul_opt(s: &mut Option<String>) {
    if let Some(s) = s {
        strip_nul(s);
    }
}

/// Drops NULs from every string (keys included) of a JSON value.
pub fn strip_nul_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => strip_nul(s),
        Value::Array(items) => items.iter_mut().for_each(strip_nul_json),
        Value::Object(map) => strip_nul_map(map),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

pub fn strip_nul_map(map: &mut serde_json::Map<String, serde_json::Value>) {
    if map.keys().any(|k| k.contains('\0')) {
        *map = std::mem::take(map).into_iter().map(|(k, v)| (without_nul(&k).into_owned(), v)).collect();
    }
    map.values_mut().for_each(strip_nul_json);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nuls_go_everywhere_they_hide() {
        assert_eq!(without_nul("nul\0byte"), "nulbyte");
        assert!(matches!(without_nul("clean"), Cow::Borrowed(_)));
        let mut v = serde_json::json!({"a\u{0}b": ["x\u{0}", {"k": "\u{0}v"}], "n": 1});
        strip_nul_json(&mut v);
        assert_eq!(v, serde_json::json!({"ab": ["x", {"k": "v"}], "n": 1}));
    }
}
