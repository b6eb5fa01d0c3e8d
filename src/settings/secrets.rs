//! Secrets that would let anyone in: the example file's placeholders (public, so known to
//! everyone), API tokens short enough to guess, one token used for two people.

use secrecy::{ExposeSecret, SecretString};

use super::{MIN_TOKEN_CHARS, Settings};

/// The values `config/leadrouter.example.toml` ships with, and the usual ways of writing
/// "put yours here".
const PLACEHOLDERS: [&str; 6] = [
    "change-me-to-a-long-random-string",
    "anna-personal-token",
    "typeform-signing-secret",
    "webhook-signing-secret",
    "…",
    "...",
];
const PLACEHOLDER_WORDS: [&str; 5] = ["change-me", "changeme", "replace-me", "your-token", "your-secret"];

pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim().to_lowercase();
    v.is_empty() || PLACEHOLDERS.contains(&v.as_str()) || PLACEHOLDER_WORDS.iter().any(|w| v.contains(w))
}

pub(super) fn problems(s: &Settings) -> Vec<String> {
    let mut p = Vec::new();
    let weak_ok = s.auth.allow_weak_tokens;
    let mut tokens: Vec<(String, &SecretString)> = Vec::new();
    for (i, t) in s.auth.admin_tokens.iter().enumerate() {
        tokens.push((format!("auth.admin_tokens[{i}]"), t));
    }
    for r in &s.reps {
        if let Some(t) = &r.api_token {
            tokens.push((format!("rep `{}`: api_token", r.id), t));
        }
    }
    for (n, (key, token)) in tokens.iter().enumerate() {
        let value = token.expose_secret();
        if is_placeholder(value) {
            p.push(format!("{key} is a placeholder: put a random token of your own (say, `openssl rand -hex 24`)"));
        } else if value.chars().count() < MIN_TOKEN_CHARS && !weak_ok {
            p.push(format!(
                "{key} has {} characters; a token needs at least {MIN_TOKEN_CHARS} (auth.allow_weak_tokens = true allows shorter ones for a local trial)",
                value.chars().count()
            ));
        }
        if let Some((other, _)) = tokens[..n].iter().find(|(_, t)| t.expose_secret() == value) {
            p.push(format!("{key} is the same token as {other}: every person needs their own"));
        }
    }
    let mut others: Vec<(String, &SecretString)> = Vec::new();
    for f in &s.forms {
        others.extend(f.secret.iter().map(|v| (format!("form `{}`: secret", f.id), v)));
    }
    others.extend(s.telegram.token.iter().map(|v| ("telegram.token".to_owned(), v)));
    others.extend(s.telegram.webhook_secret.iter().map(|v| ("telegram.webhook_secret".to_owned(), v)));
    for m in &s.imap {
        others.extend(m.password.iter().map(|v| (format!("imap `{}`: password", m.id), v)));
    }
    if let Some(e) = &s.notify.email {
        others.extend(e.password.iter().map(|v| ("notify.email.password".to_owned(), v)));
    }
    for (i, w) in s.notify.webhooks.iter().enumerate() {
        others.extend(w.secret.iter().map(|v| (format!("notify.webhooks[{i}].secret"), v)));
    }
    for (key, value) in others {
        if is_placeholder(value.expose_secret()) {
            p.push(format!("{key} is a placeholder: put the real secret (or set it from the environment)"));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_recognised_whatever_their_case() {
        for v in ["change-me-to-a-long-random-string", "  CHANGE-ME please ", "…", "", "webhook-signing-secret"] {
            assert!(is_placeholder(v), "{v:?}");
        }
        for v in ["f3c1c5e0b9b84c6f9d1d2f2a7e4b8c90", "hunter2-but-longer-than-24-chars"] {
            assert!(!is_placeholder(v), "{v:?}");
        }
    }

    #[test]
    fn weak_shared_and_placeholder_tokens_are_problems() {
        let s = Settings::from_toml(
            r#"
            [auth]
            admin_tokens = ["change-me-to-a-long-random-string", "a", "a-perfectly-fine-admin-token-0001"]
            [[reps]]
            id = "anna"
            name = "Anna"
            api_token = "a-perfectly-fine-admin-token-0001"
            [[notify.webhooks]]
            url = "http://127.0.0.1:9/hook"
            secret = "…"
            "#,
        )
        .expect("parses");
        let all = problems(&s).join("\n");
        for needle in [
            "auth.admin_tokens[0] is a placeholder",
            "auth.admin_tokens[1] has 1 characters; a token needs at least 24",
            "rep `anna`: api_token is the same token as auth.admin_tokens[2]",
            "notify.webhooks[0].secret is a placeholder",
        ] {
            assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
        }
        let mut trial = s.clone();
        trial.auth.allow_weak_tokens = true;
        let all = problems(&trial).join("\n");
        assert!(
            !all.contains("characters") && all.contains("placeholder"),
            "the flag allows short, never placeholders"
        );
    }
}
