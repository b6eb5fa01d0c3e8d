//! Raw web-form bodies (JSON, urlencoded, multipart) turned into flat, ordered fields.
//!
//! Nothing here knows about providers: it only decodes bytes. Every provider module works on the
//! same flat `(key, value)` list, so nested JSON and PHP-style bracket keys are flattened to one
//! dotted spelling (`fields[email][value]` and `{"fields":{"email":{"value":…}}}` both become
//! `fields.email.value`).

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::domain::Attachment;

/// A real form has a few dozen fields; the cap bounds the work a hostile post can cause.
const MAX_FIELDS: usize = 500;
/// Deeper JSON than this is not a form, and recursing on it is how stacks get blown.
const MAX_DEPTH: usize = 32;

const JSON: &str = "JSON";
const URLENCODED: &str = "urlencoded";
const MULTIPART: &str = "multipart";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("unsupported content type `{0}`: send JSON, application/x-www-form-urlencoded or multipart/form-data")]
    UnsupportedType(String),
    #[error("malformed {kind} body: {detail}")]
    Malformed { kind: &'static str, detail: String },
}

/// A parsed form body. `fields` is flat and in document order: nested JSON objects and bracket keys are
/// flattened to dotted paths (`contact.name`, `fields.email.value`, `items.0`), urlencoded/multipart bracket
/// keys like `fields[name][value]` also become `fields.name.value`. Arrays of scalars become `key.0`, `key.1` …
/// JSON scalars become strings (numbers/bools printed, null skipped). `json` keeps the original JSON document
/// when the body was JSON (providers like Typeform need its structure).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FormBody {
    pub fields: Vec<(String, String)>,
    pub files: Vec<Attachment>,
    pub json: Option<serde_json::Value>,
}

impl FormBody {
    /// First value of a field, by exact key, then by case-insensitive key.
    pub fn get(&self, key: &str) -> Option<&str> {
        let exact = self.fields.iter().find(|(k, _)| k == key);
        exact.or_else(|| self.fields.iter().find(|(k, _)| eq_ignore_case(k, key))).map(|(_, v)| v.as_str())
    }
}

/// Unicode-aware case-insensitive comparison without allocating (form keys are often Cyrillic).
pub(crate) fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

pub async fn parse_body(content_type: Option<&str>, body: Bytes) -> Result<FormBody, BodyError> {
    let declared = content_type.map(ContentType::parse).filter(|ct| !ct.media.is_empty());
    let Some(ct) = declared else {
        // Hand-rolled senders (curl, Zapier-like tools) often omit the header; a JSON object
        // is unmistakable, anything else is most likely a plain form post.
        return if strip_bom(&body).trim_ascii_start().starts_with(b"{") {
            parse_json(&body, None)
        } else {
            parse_urlencoded(&body, None)
        };
    };
    match ct.media.as_str() {
        "application/json" => parse_json(&body, ct.charset.as_deref()),
        media if media.contains('/') && media.ends_with("+json") => parse_json(&body, ct.charset.as_deref()),
        "application/x-www-form-urlencoded" => parse_urlencoded(&body, ct.charset.as_deref()),
        "multipart/form-data" => parse_multipart(body, &ct).await,
        _ => Err(BodyError::UnsupportedType(ct.media)),
    }
}

/// The parts of a `Content-Type` header this module cares about.
#[derive(Debug, Default)]
struct ContentType {
    /// Lower-cased `type/subtype`, parameters stripped.
    media: String,
    boundary: Option<String>,
    charset: Option<String>,
}

impl ContentType {
    fn parse(header: &str) -> Self {
        let mut parts = header.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let mut ct = ContentType { media, ..ContentType::default() };
        for (name, value) in parts.filter_map(|p| p.split_once('=')) {
            let value = value.trim().trim_matches('"').to_owned();
            match name.trim().to_ascii_lowercase().as_str() {
                "boundary" => ct.boundary = Some(value),
                "charset" => ct.charset = Some(value),
                _ => {}
            }
        }
        ct
    }
}

fn malformed(kind: &'static str, detail: impl Into<String>) -> BodyError {
    BodyError::Malformed { kind, detail: detail.into() }
}

fn too_many_fields(kind: &'static str) -> BodyError {
    malformed(kind, format!("too many fields (at most {MAX_FIELDS})"))
}

fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

/// JSON and urlencoded bodies are read as UTF-8 only: JSON is UTF-8 by definition (RFC 8259), and
/// a urlencoded body in a legacy charset would need its own percent-decoder to be read correctly.
fn require_utf8_charset(kind: &'static str, charset: Option<&str>) -> Result<(), BodyError> {
    match charset.map(str::to_ascii_lowercase).as_deref() {
        None | Some("utf-8" | "utf8" | "us-ascii" | "ascii") => Ok(()),
        Some(other) => Err(malformed(kind, format!("charset `{other}` is not supported: send UTF-8"))),
    }
}

fn parse_json(body: &[u8], charset: Option<&str>) -> Result<FormBody, BodyError> {
    require_utf8_charset(JSON, charset)?;
    let body = strip_bom(body);
    let json: Value = serde_json::from_slice(body).map_err(|e| malformed(JSON, e.to_string()))?;
    if !json.is_object() {
        return Err(malformed(JSON, format!("the top level must be an object, not {}", json_kind(&json))));
    }
    let fields = flatten_json_slice(body).map_err(|detail| malformed(JSON, detail))?;
    Ok(FormBody { fields, files: Vec::new(), json: Some(json) })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Flattens a JSON document into dotted `(path, value)` pairs in document order.
///
/// This reads the text rather than a `serde_json::Value` because `Value` sorts object keys, and
/// "first field wins" decisions downstream must follow the order the form sent.
fn flatten_json_slice(text: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    Flatten { out: &mut out, path: String::new(), depth: 0 }
        .deserialize(&mut deserializer)
        .map_err(|e| e.to_string())?;
    deserializer.end().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Serde seed that writes every scalar under its dotted path straight into `out`.
struct Flatten<'a> {
    out: &'a mut Vec<(String, String)>,
    path: String,
    depth: usize,
}

impl Flatten<'_> {
    fn child(&mut self, segment: &str) -> Flatten<'_> {
        let path = if self.path.is_empty() { segment.to_owned() } else { format!("{}.{segment}", self.path) };
        Flatten { out: self.out, path, depth: self.depth + 1 }
    }

    fn enter<E: de::Error>(&self) -> Result<(), E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn leaf<E: de::Error>(self, value: String) -> Result<(), E> {
        if self.out.len() >= MAX_FIELDS {
            return Err(E::custom(format!("too many fields (at most {MAX_FIELDS})")));
        }
        self.out.push((self.path, value));
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.leaf(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.leaf(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.leaf(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.leaf(v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.leaf(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.leaf(v)
    }

    /// `null` means "no answer", so it produces no field at all.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.enter()?;
        while let Some(key) = map.next_key::<String>()? {
            map.next_value_seed(self.child(&key))?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.enter()?;
        let mut index = 0usize;
        while seq.next_element_seed(self.child(&index.to_string()))?.is_some() {
            index += 1;
        }
        Ok(())
    }
}

fn parse_urlencoded(body: &[u8], charset: Option<&str>) -> Result<FormBody, BodyError> {
    require_utf8_charset(URLENCODED, charset)?;
    let text = std::str::from_utf8(body).map_err(|e| malformed(URLENCODED, format!("body is not valid UTF-8: {e}")))?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(text).map_err(|e| malformed(URLENCODED, e.to_string()))?;
    // serde_urlencoded decodes percent-escapes lossily: `%C8%E2%E0%ED` (windows-1251 "Иван")
    // silently becomes U+FFFD. A replacement character the sender did not write means the
    // escaped bytes were not UTF-8, and storing mojibake as a lead's name helps nobody.
    let lossy = pairs.iter().any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'));
    if lossy && !sender_wrote_replacement_char(text) {
        return Err(malformed(URLENCODED, "percent-encoded bytes are not valid UTF-8"));
    }
    if pairs.len() > MAX_FIELDS {
        return Err(too_many_fields(URLENCODED));
    }
    let mut keys = BracketKeys::default();
    let fields = pairs.into_iter().map(|(k, v)| (keys.flatten(&k), v)).collect();
    Ok(FormBody { fields, files: Vec::new(), json: None })
}

fn sender_wrote_replacement_char(text: &str) -> bool {
    text.contains('\u{FFFD}') || text.to_ascii_uppercase().contains("%EF%BF%BD")
}

/// Rewrites PHP-style bracket keys (`fields[name][value]`, `items[]`) to dotted paths.
#[derive(Default)]
struct BracketKeys {
    /// Next index for each `key[]` prefix, so repeated `tags[]` become `tags.0`, `tags.1`.
    next_index: HashMap<String, usize>,
}

impl BracketKeys {
    fn flatten(&mut self, key: &str) -> String {
        self.try_flatten(key).unwrap_or_else(|| key.to_owned())
    }

    /// `None` when the key is not a well-formed `base[a][b]…`, in which case it is kept verbatim.
    fn try_flatten(&mut self, key: &str) -> Option<String> {
        let open = key.find('[').filter(|&i| i > 0)?;
        let (base, mut rest) = key.split_at(open);
        let mut path = base.to_owned();
        while !rest.is_empty() {
            let (segment, tail) = rest.strip_prefix('[')?.split_once(']')?;
            let segment = if segment.is_empty() { self.next_index_for(&path) } else { segment.to_owned() };
            path.push('.');
            path.push_str(&segment);
            rest = tail;
        }
        Some(path)
    }

    fn next_index_for(&mut self, prefix: &str) -> String {
        let next = self.next_index.entry(prefix.to_owned()).or_insert(0);
        let index = next.to_string();
        *next += 1;
        index
    }
}

async fn parse_multipart(body: Bytes, ct: &ContentType) -> Result<FormBody, BodyError> {
    let boundary =
        ct.boundary.clone().ok_or_else(|| malformed(MULTIPART, "the Content-Type has no boundary parameter"))?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut form = FormBody::default();
    let mut keys = BracketKeys::default();
    let mut parts = 0usize;
    while let Some(field) = multipart.next_field().await.map_err(|e| malformed(MULTIPART, e.to_string()))? {
        parts += 1;
        if parts > MAX_FIELDS {
            return Err(too_many_fields(MULTIPART));
        }
        // A part without a name cannot be addressed by any mapping; skip it rather than fail the lead.
        let Some(name) = field.name().map(str::to_owned) else { continue };
        if let Some(file_name) = field.file_name().map(str::to_owned) {
            if let Some(file) = read_file_part(field, file_name).await? {
                form.files.push(file);
            }
            continue;
        }
        let text = read_text_part(field, ct.charset.as_deref())
            .await
            .map_err(|detail| malformed(MULTIPART, format!("part `{name}`: {detail}")))?;
        form.fields.push((keys.flatten(&name), text));
    }
    Ok(form)
}

/// Records an uploaded file's metadata; its contents are not kept (storage is the caller's business).
async fn read_file_part(field: multer::Field<'_>, file_name: String) -> Result<Option<Attachment>, BodyError> {
    let content_type = field.content_type().map(ToString::to_string);
    let data = field.bytes().await.map_err(|e| malformed(MULTIPART, e.to_string()))?;
    // Browsers send an empty, nameless part for a file input the visitor left empty.
    if file_name.is_empty() && data.is_empty() {
        return Ok(None);
    }
    let name = Some(file_name).filter(|n| !n.is_empty());
    Ok(Some(Attachment { name, content_type, size: u64::try_from(data.len()).ok(), reference: None }))
}

/// Decodes a text part: its own `charset`, else the request's, else UTF-8 (what browsers send).
async fn read_text_part(field: multer::Field<'_>, request_charset: Option<&str>) -> Result<String, String> {
    let part_charset =
        field.headers().get("content-type").and_then(|v| v.to_str().ok()).and_then(|v| ContentType::parse(v).charset);
    let charset = part_charset.or_else(|| request_charset.map(str::to_owned)).map(|c| c.to_ascii_lowercase());
    match charset.as_deref() {
        None | Some("utf-8" | "utf8" | "us-ascii" | "ascii") => {
            let data = field.bytes().await.map_err(|e| e.to_string())?;
            String::from_utf8(data.to_vec()).map_err(|_| "text is not valid UTF-8".to_owned())
        }
        // multer decodes these through encoding_rs (already in the tree). Only single-byte
        // charsets are allowed: they cannot be "invalid", so its lossy decoding loses nothing,
        // and an unknown label would otherwise be read silently as UTF-8.
        Some(label) if LEGACY_CHARSETS.contains(&label) => {
            field.text_with_charset(label).await.map_err(|e| e.to_string())
        }
        Some(other) => Err(format!("charset `{other}` is not supported: send UTF-8")),
    }
}

/// Single-byte charsets still seen from old Russian/European sites.
const LEGACY_CHARSETS: [&str; 12] = [
    "windows-1251",
    "cp1251",
    "x-cp1251",
    "windows-1252",
    "cp1252",
    "iso-8859-1",
    "latin1",
    "iso-8859-15",
    "iso-8859-5",
    "koi8-r",
    "koi8-u",
    "windows-1250",
];

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webform/", $name))
        };
    }

    const MULTIPART_BOUNDARY: &str = "----WebKitFormBoundary7MA4YWxkTrZu0gW";

    async fn parse(content_type: Option<&str>, body: &[u8]) -> Result<FormBody, BodyError> {
        parse_body(content_type, Bytes::copy_from_slice(body)).await
    }

    fn keys(form: &FormBody) -> Vec<&str> {
        form.fields.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn assert_malformed(result: Result<FormBody, BodyError>, want_kind: &str, detail_part: &str) {
        match result {
            Err(BodyError::Malformed { kind, detail }) => {
                assert_eq!(kind, want_kind);
                assert!(detail.contains(detail_part), "detail {detail:?} should mention {detail_part:?}");
            }
            other => panic!("expected a malformed {want_kind} body, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn nested_json_is_flattened_in_document_order() {
        let form = parse(Some("application/json"), fixture!("generic.json")).await.expect("valid JSON");
        assert_eq!(
            keys(&form),
            [
                "contact.name",
                "contact.email",
                "contact.company",
                "phone",
                "message",
                "utm_source",
                "utm_medium",
                "utm_campaign",
                "interests.0",
                "interests.1",
                "consent",
                "budget",
                "request_id",
            ]
        );
        assert_eq!(form.get("contact.name"), Some("María García"));
        assert_eq!(form.get("interests.1"), Some("Soporte"));
        assert_eq!(form.get("consent"), Some("true"));
        assert_eq!(form.get("budget"), Some("2500.5"));
        assert_eq!(form.get("referrer"), None, "null values produce no field");
        assert!(form.json.as_ref().is_some_and(|j| j["contact"]["email"] == "maria.garcia@example.es"));
    }

    #[tokio::test]
    async fn get_falls_back_to_case_insensitive_keys() {
        let form = parse(None, "Имя=Иван&EMAIL=a%40b.ru&email=exact%40b.ru".as_bytes()).await.expect("valid");
        assert_eq!(form.get("email"), Some("exact@b.ru"), "exact key first");
        assert_eq!(form.get("Email"), Some("a@b.ru"), "then the first case-insensitive match");
        assert_eq!(form.get("ИМЯ"), Some("Иван"), "Cyrillic keys fold too");
    }

    #[tokio::test]
    async fn media_type_is_matched_case_insensitively_with_parameters() {
        let form =
            parse(Some("Application/JSON; charset=UTF-8"), br#"{"name":"Ivan"}"#).await.expect("JSON with charset");
        assert_eq!(form.get("name"), Some("Ivan"));
        let form = parse(Some("application/vnd.api+json"), br#"{"name":"Ivan"}"#).await.expect("+json");
        assert_eq!(form.get("name"), Some("Ivan"));
    }

    #[tokio::test]
    async fn missing_content_type_is_sniffed() {
        let json = parse(None, b"  \n{\"email\":\"ivan@example.com\"}").await.expect("sniffed JSON");
        assert!(json.json.is_some());
        assert_eq!(json.get("email"), Some("ivan@example.com"));
        let form = parse(Some("  "), b"email=ivan%40example.com").await.expect("sniffed urlencoded");
        assert!(form.json.is_none());
        assert_eq!(form.get("email"), Some("ivan@example.com"));
    }

    #[tokio::test]
    async fn urlencoded_bracket_keys_and_cyrillic_are_decoded() {
        let form = parse(Some("application/x-www-form-urlencoded"), fixture!("generic_urlencoded.txt"))
            .await
            .expect("valid urlencoded");
        assert_eq!(form.get("Имя"), Some("Иван Петров"));
        assert_eq!(form.get("Телефон"), Some("+7 (912) 345-67-89"));
        assert_eq!(form.get("contact.email"), Some("ivan.petrov@example.ru"));
        assert_eq!(form.get("services.0"), Some("Доставка"));
        assert_eq!(form.get("services.1"), Some("Монтаж"));
        assert_eq!(form.get("comment"), Some("Перезвоните после 18:00, пожалуйста"));
    }

    #[tokio::test]
    async fn malformed_bracket_keys_are_kept_verbatim() {
        let form = parse(None, b"a[b=1&[x]=2&c[d]e=3").await.expect("valid");
        assert_eq!(keys(&form), ["a[b", "[x]", "c[d]e"]);
    }

    #[tokio::test]
    async fn urlencoded_that_is_not_utf8_is_rejected() {
        assert_malformed(
            parse(Some("application/x-www-form-urlencoded"), b"name=\xC8\xE2\xE0\xED").await,
            URLENCODED,
            "UTF-8",
        );
        assert_malformed(
            parse(Some("application/x-www-form-urlencoded"), b"name=%C8%E2%E0%ED").await,
            URLENCODED,
            "not valid UTF-8",
        );
        assert_malformed(
            parse(Some("application/x-www-form-urlencoded; charset=windows-1251"), b"name=x").await,
            URLENCODED,
            "windows-1251",
        );
    }

    #[tokio::test]
    async fn multipart_text_parts_become_fields_and_files_are_metadata_only() {
        let ct = format!("multipart/form-data; boundary={MULTIPART_BOUNDARY}");
        let form = parse(Some(&ct), fixture!("generic_multipart.txt")).await.expect("valid multipart");
        assert_eq!(keys(&form), ["name", "email", "phone", "fields.company.value", "message", "page_url"]);
        assert_eq!(form.get("name"), Some("Ivan Petrov"));
        assert_eq!(form.get("fields.company.value"), Some("ООО «Ромашка»"));
        assert_eq!(
            form.files,
            [Attachment {
                name: Some("brief.txt".into()),
                content_type: Some("text/plain".into()),
                size: Some(42),
                reference: None,
            }]
        );
        assert!(form.fields.iter().all(|(_, v)| !v.contains("Brief")), "file contents stay out of fields");
    }

    fn multipart_body(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (headers, data) in parts {
            body.extend_from_slice(format!("--XyZ\r\n{headers}\r\n\r\n").as_bytes());
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        body
    }

    #[tokio::test]
    async fn multipart_charsets() {
        let ct = "multipart/form-data; boundary=XyZ";
        let cp1251 = multipart_body(&[(
            "Content-Disposition: form-data; name=\"name\"\r\nContent-Type: text/plain; charset=windows-1251",
            b"\xC8\xE2\xE0\xED",
        )]);
        assert_eq!(parse(Some(ct), &cp1251).await.expect("cp1251").get("name"), Some("Иван"));

        let cyrillic_name = multipart_body(&[("Content-Disposition: form-data; name=\"Имя\"", "Иван".as_bytes())]);
        assert_eq!(parse(Some(ct), &cyrillic_name).await.expect("utf-8").get("Имя"), Some("Иван"));

        let latin1 = multipart_body(&[("Content-Disposition: form-data; name=\"name\"", b"Mar\xEDa")]);
        let request_latin1 = "multipart/form-data; boundary=XyZ; charset=ISO-8859-1";
        assert_eq!(parse(Some(request_latin1), &latin1).await.expect("latin1").get("name"), Some("María"));
        assert_malformed(parse(Some(ct), &latin1).await, MULTIPART, "part `name`: text is not valid UTF-8");

        let unknown = multipart_body(&[(
            "Content-Disposition: form-data; name=\"name\"\r\nContent-Type: text/plain; charset=shift_jis",
            b"x",
        )]);
        assert_malformed(parse(Some(ct), &unknown).await, MULTIPART, "shift_jis");
    }

    #[tokio::test]
    async fn multipart_skips_empty_file_inputs() {
        let ct = "multipart/form-data; boundary=XyZ";
        let body = multipart_body(&[
            ("Content-Disposition: form-data; name=\"email\"", b"ivan@example.com"),
            (
                "Content-Disposition: form-data; name=\"cv\"; filename=\"\"\r\nContent-Type: application/octet-stream",
                b"",
            ),
        ]);
        let form = parse(Some(ct), &body).await.expect("valid");
        assert_eq!(keys(&form), ["email"]);
        assert!(form.files.is_empty());
    }

    #[tokio::test]
    async fn bad_multipart_is_malformed() {
        assert_malformed(parse(Some("multipart/form-data"), b"whatever").await, MULTIPART, "boundary");
        let truncated = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue";
        assert_malformed(parse(Some("multipart/form-data; boundary=XyZ"), truncated).await, MULTIPART, "incomplete");
    }

    #[tokio::test]
    async fn malformed_json_is_rejected() {
        let ct = Some("application/json");
        assert_malformed(parse(ct, br#"{"name": "Ivan""#).await, JSON, "EOF");
        assert_malformed(parse(ct, br#"[{"name": "Ivan"}]"#).await, JSON, "top level must be an object, not an array");
        assert_malformed(parse(ct, b"\"Ivan\"").await, JSON, "not a string");
        assert_malformed(parse(ct, br#"{"a":1} trailing"#).await, JSON, "trailing");
    }

    #[tokio::test]
    async fn json_nesting_is_limited() {
        let nested = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let ok = parse(Some("application/json"), nested(MAX_DEPTH).as_bytes()).await.expect("at the limit");
        assert_eq!(ok.fields.len(), 1);
        assert_eq!(ok.fields[0].0.split('.').count(), MAX_DEPTH);
        assert_malformed(parse(Some("application/json"), nested(MAX_DEPTH + 1).as_bytes()).await, JSON, "deeper");
    }

    #[tokio::test]
    async fn too_many_fields_are_rejected_in_every_format() {
        let pairs: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("f{i}=x")).collect();
        assert_malformed(parse(None, pairs.join("&").as_bytes()).await, URLENCODED, "too many fields");

        let members: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("\"f{i}\":\"x\"")).collect();
        let json = format!("{{{}}}", members.join(","));
        assert_malformed(parse(Some("application/json"), json.as_bytes()).await, JSON, "too many fields");

        let part = ("Content-Disposition: form-data; name=\"f\"", b"x".as_slice());
        let body = multipart_body(&vec![part; MAX_FIELDS + 1]);
        assert_malformed(parse(Some("multipart/form-data; boundary=XyZ"), &body).await, MULTIPART, "too many fields");

        // Exactly at the limit is fine.
        let at_limit = (0..MAX_FIELDS).map(|i| format!("f{i}=x")).collect::<Vec<_>>().join("&");
        assert_eq!(parse(None, at_limit.as_bytes()).await.expect("at limit").fields.len(), MAX_FIELDS);
    }

    #[tokio::test]
    async fn unsupported_types_are_named() {
        assert_eq!(
            parse(Some("text/plain; charset=utf-8"), b"name=Ivan").await,
            Err(BodyError::UnsupportedType("text/plain".into()))
        );
        assert_eq!(
            parse(Some("Application/XML"), b"<a/>").await,
            Err(BodyError::UnsupportedType("application/xml".into()))
        );
    }
}
