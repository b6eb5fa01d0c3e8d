//! The rooms of ARCHITECTURE.md, checked against the code: what each top-level module of the
//! library may import from the crate, and that SQL text and sqlx live in `src/store/` alone.
//! A new import across the plan fails here with the file and the line; change the plan (and
//! ARCHITECTURE.md) on purpose, never by accident.

use std::path::{Path, PathBuf};

/// Each room and the rooms it may import (besides itself). A room not listed here fails the
/// test until it is placed.
const ROOMS: &[(&str, &[&str])] = &[
    // The bottom: plain data, rules and helpers that know nothing of the crate.
    ("domain", &[]),
    ("base", &[]),
    ("settings", &["domain"]),
    ("telemetry", &["settings"]),
    // The only owner of SQL.
    ("store", &["base", "domain"]),
    // Decoders and renderers: what a channel delivers, what a card shows.
    ("channels", &["base", "domain", "settings"]),
    ("cards", &["base", "domain", "settings"]),
    // Senders: they read what they send through their own port, never the store.
    ("notify", &["base", "cards", "domain", "settings"]),
    // The application.
    ("events", &["base", "domain", "settings", "store"]),
    ("core", &["settings", "store"]),
    ("assignment", &["base", "core", "domain", "events", "settings", "store"]),
    ("intake", &["assignment", "base", "core", "domain", "events", "settings", "store"]),
    ("pipeline", &["assignment", "base", "core", "domain", "events", "settings", "store"]),
    ("jobs", &["assignment", "base", "core", "domain", "events", "pipeline", "settings", "store"]),
    ("outbox", &["base", "domain", "notify", "settings", "store"]),
    // Surfaces people and channels act through.
    (
        "console",
        &["assignment", "base", "cards", "channels", "core", "domain", "events", "pipeline", "settings", "store"],
    ),
    ("inbox", &["base", "channels", "console", "core", "domain", "intake", "pipeline", "store"]),
    ("replay", &["base", "channels", "core", "domain", "inbox", "intake", "settings", "store"]),
    (
        "http",
        &[
            "assignment",
            "base",
            "cards",
            "channels",
            "core",
            "domain",
            "events",
            "inbox",
            "intake",
            "notify",
            "pipeline",
            "settings",
            "store",
            "telemetry",
        ],
    ),
    // The wiring: builds every part and runs them.
    (
        "app",
        &[
            "base",
            "channels",
            "core",
            "http",
            "inbox",
            "intake",
            "jobs",
            "notify",
            "outbox",
            "settings",
            "store",
            "telemetry",
        ],
    ),
];

/// Files of the binary (`main.rs`, the benchmark) use the library from outside: no rooms,
/// but no SQL either.
const BINARY: &[&str] = &["main", "bench"];

#[test]
fn every_room_imports_only_what_the_plan_allows_and_sql_stays_in_the_store() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "found only {} files under {}", files.len(), src.display());
    let mut problems = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap_or(file).to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(file).unwrap_or_default();
        problems.extend(check_file(&rel, &text));
    }
    assert!(problems.is_empty(), "the code crosses the plan in ARCHITECTURE.md:\n  {}", problems.join("\n  "));
}

#[test]
fn the_checker_catches_each_kind_of_crossing() {
    // An import the room may not make, plain, grouped, and climbing out with `super`.
    let found = check_file("channels/email/mod.rs", "use crate::store::Store;\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("channels/email/mod.rs:1") && found[0].contains("`store`"), "{found:?}");
    let found = check_file("notify/telegram.rs", "use crate::{cards::telegram, pipeline::Actor};\n");
    assert!(found.len() == 1 && found[0].contains("`pipeline`"), "{found:?}");
    let found = check_file("channels/telegram/parse.rs", "fn f() { super::super::super::intake::x(); }\n");
    assert!(found.len() == 1 && found[0].contains("`intake`"), "{found:?}");
    let found = check_file("domain/plan.rs", "use crate::base::new_id;\n");
    assert!(found.len() == 1 && found[0].contains("`base`"), "{found:?}");
    // SQL in a string, and sqlx, outside the store; in the store they are its business.
    let found = check_file("http/leads.rs", "const Q: &str = \"SELECT id FROM leads WHERE x = $1\";\n");
    assert!(found.len() == 1 && found[0].contains("SQL"), "{found:?}");
    let found = check_file("bench/mod.rs", "async fn f(p: &sqlx::SqlitePool) {}\n");
    assert!(found.len() == 1 && found[0].contains("sqlx"), "{found:?}");
    assert!(check_file("store/leads.rs", "fn f() { sqlx::query(\"DELETE FROM leads\"); }\n").is_empty());
    // A room nobody placed.
    let found = check_file("widgets.rs", "fn f() {}\n");
    assert!(found.len() == 1 && found[0].contains("not in the plan"), "{found:?}");
    // Words in comments and prose are not imports, nor SQL.
    let quiet = "//! Channels know neither crate::store nor intake.\n/* crate::pipeline */\n\
                 fn f() -> &'static str { \"Select a lead from the list\" }\n";
    assert!(check_file("channels/mod.rs", quiet).is_empty(), "{:?}", check_file("channels/mod.rs", quiet));
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The problems in one file, `rel` being its path under `src/`.
fn check_file(rel: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let room = rel.split('/').next().unwrap_or_default().trim_end_matches(".rs");
    let in_binary = BINARY.contains(&room);
    let in_store = room == "store";
    let allowed = ROOMS.iter().find(|(r, _)| *r == room).map(|(_, a)| *a);
    if rel == "lib.rs" {
        return problems;
    }
    if allowed.is_none() && !in_binary {
        problems.push(format!("{rel}: room `{room}` is not in the plan (tests/api/architecture.rs, ARCHITECTURE.md)"));
        return problems;
    }
    let depth = module_depth(rel);
    let parsed = Parsed::of(text);
    for (line_no, line) in parsed.code.lines().enumerate() {
        let at = format!("{rel}:{}", line_no + 1);
        if let Some(allowed) = allowed {
            for target in rooms_named(line, depth) {
                if target != room && !allowed.contains(&target.as_str()) {
                    problems.push(format!("{at}: `{room}` may not import `{target}`"));
                }
            }
        }
        if !in_store && line.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == "sqlx") {
            problems.push(format!("{at}: sqlx outside src/store/"));
        }
    }
    if !in_store {
        for (line_no, literal) in &parsed.strings {
            if looks_like_sql(literal) {
                problems.push(format!("{rel}:{line_no}: SQL outside src/store/: {:?}", truncate(literal)));
            }
        }
    }
    problems
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// How deep the file's module is under the crate root: `http/mod.rs` is 1, `http/app/lead.rs` 3.
fn module_depth(rel: &str) -> usize {
    let parts: Vec<&str> = rel.split('/').collect();
    match parts.last() {
        Some(&"mod.rs") => parts.len() - 1,
        _ => parts.len(),
    }
}

/// The top-level modules a line of code reaches: `crate::x`, `crate::{x::…, y}`, and
/// `super::` chains that climb to the crate root.
fn rooms_named(line: &str, depth: usize) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let preceded = rest[..i].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
        rest = &rest[i + "crate::".len()..];
        if preceded {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or_default();
            found.extend(top_level_names(inner));
        } else {
            found.extend(first_segment(rest));
        }
    }
    let mut rest = line;
    while let Some(i) = rest.find("super::") {
        let preceded = rest[..i].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        let mut chain = &rest[i..];
        let mut ups = 0;
        while let Some(next) = chain.strip_prefix("super::") {
            ups += 1;
            chain = next;
        }
        rest = chain;
        if !preceded && ups >= depth {
            // At the root: what follows is a room.
            found.extend(first_segment(chain));
        }
    }
    found
}

fn first_segment(path: &str) -> Option<String> {
    let name: String = path.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

/// `a::b, c, d::{e, f}` → `a`, `c`, `d`.
fn top_level_names(group: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut level = 0;
    let mut start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => level += 1,
            '}' => level -= 1,
            ',' if level == 0 => start = true,
            c if start && (c.is_alphanumeric() || c == '_') => {
                names.extend(first_segment(&group[i..]));
                start = false;
            }
            _ => {}
        }
    }
    names
}

/// SQL as this code base writes it: upper-case keywords.
fn looks_like_sql(s: &str) -> bool {
    let has = |w: &str| s.contains(w);
    (has("SELECT ") && has(" FROM "))
        || has("INSERT INTO ")
        || (has("UPDATE ") && has(" SET "))
        || has("DELETE FROM ")
        || has("CREATE TABLE")
        || has("CREATE INDEX")
        || has("ALTER TABLE")
        || has("PRAGMA ")
}

/// A file split into its code (comments removed, string contents blanked) and its string
/// literals with the line each starts on.
struct Parsed {
    code: String,
    strings: Vec<(usize, String)>,
}

impl Parsed {
    fn of(text: &str) -> Parsed {
        let chars: Vec<char> = text.chars().collect();
        let mut code = String::with_capacity(text.len());
        let mut strings = Vec::new();
        let mut line = 1;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if c == '/' && next == Some('/') {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            if c == '/' && next == Some('*') {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    if chars[i] == '\n' {
                        line += 1;
                        code.push('\n');
                    }
                    i += 1;
                }
                i += 2;
                continue;
            }
            // Raw strings: r"…", r#"…"#, br"…".
            if c == 'r' && matches!(next, Some('"') | Some('#')) && !ident_before(&chars, i) {
                let mut j = i + 1;
                let mut hashes = 0;
                while chars.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if chars.get(j) == Some(&'"') {
                    let start_line = line;
                    let (literal, end) = read_string(&chars, j, Some(hashes), &mut line, &mut code);
                    strings.push((start_line, literal));
                    code.push_str("\"\"");
                    i = end;
                    continue;
                }
            }
            if c == '"' {
                let start_line = line;
                let (literal, end) = read_string(&chars, i, None, &mut line, &mut code);
                strings.push((start_line, literal));
                code.push_str("\"\"");
                i = end;
                continue;
            }
            // Character literals ('"', '\'', '\n'); a lifetime ('a) is left alone.
            if c == '\'' {
                if next == Some('\\') {
                    // Past the escaped character, to the closing quote.
                    let mut j = i + 3;
                    while j < chars.len() && chars[j] != '\'' {
                        j += 1;
                    }
                    code.push_str("' '");
                    i = j + 1;
                    continue;
                }
                if chars.get(i + 2) == Some(&'\'') {
                    code.push_str("' '");
                    i += 3;
                    continue;
                }
            }
            if c == '\n' {
                line += 1;
            }
            code.push(c);
            i += 1;
        }
        Parsed { code, strings }
    }
}

/// The string literal whose opening quote is at `open` (`raw`: a raw string's number of `#`;
/// raw strings have no escapes): its text and the index just past it. A newline inside is
/// kept in `code`, so that line numbers stay true.
fn read_string(
    chars: &[char],
    open: usize,
    raw: Option<usize>,
    line: &mut usize,
    code: &mut String,
) -> (String, usize) {
    let mut literal = String::new();
    let mut j = open + 1;
    while let Some(&d) = chars.get(j) {
        match raw {
            Some(hashes) if d == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) => {
                return (literal, j + 1 + hashes);
            }
            None if d == '"' => return (literal, j + 1),
            None if d == '\\' => {
                // A line continuation joins lines; other escapes are kept as the next char.
                match chars.get(j + 1) {
                    Some('\n') => {
                        *line += 1;
                        code.push('\n');
                    }
                    Some(&e) => literal.push(e),
                    None => {}
                }
                j += 2;
                continue;
            }
            _ => {}
        }
        if d == '\n' {
            *line += 1;
            code.push('\n');
        }
        literal.push(d);
        j += 1;
    }
    (literal, j)
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && chars.get(i - 1).is_some_and(|c| c.is_alphanumeric() || *c == '_')
}
