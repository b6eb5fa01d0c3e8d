//! Reading one raw email (RFC 5322 bytes) into what the intake needs: is it a person writing to
//! us, and if so who, about what, with which files, phone numbers and thread references.
//!
//! Pure: no I/O, no clock, no configuration beyond [`MailboxContext`]. Never panics on any input.

use std::borrow::Cow;
use std::collections::HashSet;

use mail_parser::{Addr, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use crate::domain::{Attachment, EmailAddress, PhoneE164, Region};

/// What the mailbox knows that the message does not.
pub struct MailboxContext<'a> {
    /// Addresses that are us (the mailbox itself, our notification sender): mail from them is never a lead.
    pub own_addresses: &'a [String],
    /// Region for national phone numbers found in bodies.
    pub default_region: Option<crate::domain::Region>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    AutoReply,
    Bounce,
    Bulk,
    OwnMessage,
    NoSender,
}

impl SkipReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            SkipReason::AutoReply => "auto_reply",
            SkipReason::Bounce => "bounce",
            SkipReason::Bulk => "bulk",
            SkipReason::OwnMessage => "own_message",
            SkipReason::NoSender => "no_sender",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A person wrote: make it a lead (or a message on their open lead).
    Inquiry(Box<ParsedMail>),
    /// Not a lead. `undeliverable` lists the addresses a bounce reports as failed (lower-cased).
    Skip { reason: SkipReason, message_id: String, undeliverable: Vec<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedMail {
    /// `Message-ID` without angle brackets; when absent, `sha256:<hex of the raw bytes>`.
    pub message_id: String,
    /// The person: From, or Reply-To when From is a no-reply/form-relay address (see `relayed`). Raw (the caller normalises).
    pub sender_email: String,
    pub sender_name: Option<String>,
    /// True when the contact came from Reply-To because From was a relay (noreply@, no-reply@, donotreply@, mailer@,
    /// forms@, wordpress@, notifications@ …, or From's domain differs and Reply-To is present with
    /// `Auto-Submitted: auto-generated`).
    pub relayed: bool,
    pub subject: Option<String>,
    /// The new part of the message: quoted text, "On … wrote:" lines (en, de "Am … schrieb", fr "Le … a écrit",
    /// es "El … escribió", ru "… написал(а):"), Outlook "-----Original Message-----" / "From: … Sent: …" blocks and
    /// the signature after "-- " removed. Trimmed.
    pub text: String,
    /// The whole text body as received (HTML converted to text), for the record.
    pub full_text: String,
    /// Files: name, content type, size in bytes, reference = "sha256:<hex>". Inline images referenced by the HTML
    /// (cid:) are not attachments unless they have a filename and Content-Disposition: attachment.
    pub attachments: Vec<crate::domain::Attachment>,
    /// Phone numbers found in the body and signature, normalised to E.164 with
    /// `PhoneE164::parse(candidate, default_region)`; deduplicated, in order. Quoted earlier messages are not
    /// scanned: they carry our own numbers.
    pub phones: Vec<String>,
    /// Message ids (without brackets) from In-Reply-To and References, In-Reply-To first, deduplicated.
    pub thread_ids: Vec<String>,
    /// `Date` in Unix milliseconds; None when missing or unparseable (the caller then uses INTERNALDATE).
    pub date_ms: Option<i64>,
    /// From Content-Language or Accept-Language (first tag), if any.
    pub language: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MailError {
    #[error("not a parseable email message: {0}")]
    Unparseable(String),
}

/// Reads one raw message. `Err` only when the bytes are not an email at all; everything that is an
/// email but not a person writing to us is `Ok(Verdict::Skip { .. })`.
pub fn parse(raw: &[u8], ctx: &MailboxContext<'_>) -> Result<Verdict, MailError> {
    // The parser and everything below are meant never to panic; this is the belt to those braces,
    // so that one hostile message can never stop a mailbox from being drained.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse_inner(raw, ctx)))
        .unwrap_or_else(|_| Err(MailError::Unparseable("the MIME parser gave up on this message".into())))
}

fn parse_inner(raw: &[u8], ctx: &MailboxContext<'_>) -> Result<Verdict, MailError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(MailError::Unparseable("empty message".into()));
    }
    let message =
        MessageParser::default().parse(raw).ok_or_else(|| MailError::Unparseable("no header section".into()))?;
    let Some(root) = message.parts.first() else {
        return Err(MailError::Unparseable("no MIME structure".into()));
    };
    if root.headers.is_empty() {
        return Err(MailError::Unparseable("no header fields".into()));
    }
    let headers = RawHeaders { raw, part: root };

    let message_id = message
        .message_id()
        .map(strip_angles)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sha256:{}", sha256_hex(raw)));
    let skip = |reason: SkipReason, undeliverable: Vec<String>| {
        Ok(Verdict::Skip { reason, message_id: message_id.clone(), undeliverable })
    };

    let from = first_addr(message.from());
    let reply_to = first_addr(message.reply_to());

    // 1. Our own mail (notifications, replies sent from the shared inbox, copies in Sent).
    let own = |address: &str| ctx.own_addresses.iter().any(|o| same_address(o, address));
    let sender_header = first_addr(message.sender());
    if from.iter().chain(sender_header.iter()).any(|a| own(&a.address)) {
        return skip(SkipReason::OwnMessage, Vec::new());
    }

    // 2. Bounces.
    if is_bounce(&message, &headers, from.as_ref()) {
        return skip(SkipReason::Bounce, undeliverable_recipients(&message, &headers));
    }

    // 3. Auto-replies.
    if is_auto_reply(&headers, message.subject()) {
        return skip(SkipReason::AutoReply, Vec::new());
    }

    // 4. Bulk and list mail.
    if is_bulk(&headers, ctx.own_addresses) {
        return skip(SkipReason::Bulk, Vec::new());
    }

    // 5. Who is the person?
    let reply_to = reply_to.filter(|r| !own(&r.address));
    let Some((person, relayed)) = choose_sender(from, reply_to, &headers) else {
        return skip(SkipReason::NoSender, Vec::new());
    };

    let body = Body::of(&message);
    let text = new_part(&body.for_reply, false);
    let phones = find_phones(&new_part(&body.for_reply, true), ctx.default_region);

    Ok(Verdict::Inquiry(Box::new(ParsedMail {
        message_id,
        sender_email: person.address,
        sender_name: person.name,
        relayed,
        subject: message.subject().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned),
        text,
        full_text: body.full,
        attachments: attachments(&message, raw),
        phones,
        thread_ids: thread_ids(&message),
        date_ms: message.date().filter(|d| d.is_valid()).and_then(|d| d.to_timestamp().checked_mul(1000)),
        language: language(&message, &headers),
    })))
}

// ---------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------

/// Header values as they were written (unfolded, not decoded), for the fields mail-parser does not
/// model (`Auto-Submitted`, `Precedence`, `X-Autoreply`, …).
struct RawHeaders<'m, 'x> {
    raw: &'m [u8],
    part: &'m MessagePart<'x>,
}

impl RawHeaders<'_, '_> {
    fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = String> + 's {
        self.part.headers.iter().filter(move |h| h.name.as_str().eq_ignore_ascii_case(name)).map(|h| {
            let value = self.raw.get(h.offset_start as usize..h.offset_end as usize).unwrap_or_default();
            unfold(&String::from_utf8_lossy(value))
        })
    }
    fn get(&self, name: &str) -> Option<String> {
        self.all(name).next()
    }
    fn has(&self, name: &str) -> bool {
        self.all(name).next().is_some()
    }
    /// First token of the value, lower-cased, without parameters or comments: `auto-replied; x=y` → `auto-replied`.
    fn keyword(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| v.split([';', '(', ' ', '\t', ',']).next().unwrap_or_default().trim().to_ascii_lowercase())
    }
}

fn unfold(value: &str) -> String {
    value.split(['\r', '\n']).map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

struct Person {
    address: String,
    name: Option<String>,
}

/// The first entry of an address header that carries something address-like.
fn first_addr(address: Option<&mail_parser::Address<'_>>) -> Option<Person> {
    let addr: &Addr<'_> = address?.iter().find(|a| a.address.as_deref().is_some_and(|s| s.contains('@')))?;
    let address = addr.address.as_deref()?.trim().to_owned();
    let name = addr
        .name
        .as_deref()
        .map(|n| n.trim().trim_matches('"').trim())
        .filter(|n| !n.is_empty() && !same_address(n, &address))
        .map(str::to_owned);
    Some(Person { address, name })
}

fn same_address(a: &str, b: &str) -> bool {
    strip_angles(a.trim()).eq_ignore_ascii_case(strip_angles(b.trim()))
}

fn strip_angles(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(s).trim()
}

fn local_part(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(local, _)| local)
}

fn domain_part(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, domain)| domain)
}

fn usable(address: &str) -> bool {
    EmailAddress::parse(address).is_ok()
}

/// Local parts of addresses that send on someone else's behalf and are never read by a person.
const RELAY_LOCAL_PARTS: &[&str] = &[
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "do_not_reply",
    "mailer",
    "forms",
    "form",
    "webform",
    "webforms",
    "wordpress",
    "notifications",
    "notification",
    "notify",
    "notifier",
    "automailer",
];

fn is_relay_address(address: &str) -> bool {
    let local = local_part(address).to_ascii_lowercase();
    let local = local.split('+').next().unwrap_or_default();
    RELAY_LOCAL_PARTS.contains(&local)
        || ["noreply", "no-reply", "no_reply", "donotreply", "do-not-reply"].iter().any(|p| local.starts_with(p))
}

/// The person behind the message, and whether they were found through a relay's Reply-To.
fn choose_sender(
    from: Option<Person>,
    reply_to: Option<Person>,
    headers: &RawHeaders<'_, '_>,
) -> Option<(Person, bool)> {
    let reply_to = reply_to.filter(|r| usable(&r.address) && !is_relay_address(&r.address));
    match from {
        Some(from) if usable(&from.address) => {
            let Some(reply_to) = reply_to else {
                // A relay with no one to answer to names nobody: every form submission would
                // otherwise collapse onto one `noreply@` lead.
                return (!is_relay_address(&from.address)).then_some((from, false));
            };
            let auto_generated = headers.keyword("Auto-Submitted").as_deref() == Some("auto-generated");
            let other_domain = !domain_part(&from.address).eq_ignore_ascii_case(domain_part(&reply_to.address));
            if is_relay_address(&from.address) || (auto_generated && other_domain) {
                Some((reply_to, true))
            } else {
                Some((from, false))
            }
        }
        // From missing or not an address: the Reply-To is all there is.
        _ => reply_to.map(|r| (r, false)),
    }
}

// ---------------------------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------------------------

fn is_bounce(message: &Message<'_>, headers: &RawHeaders<'_, '_>, from: Option<&Person>) -> bool {
    let report = message.parts.first().and_then(|root| root.content_type()).is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct.attribute("report-type").is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    });
    if report {
        return true;
    }
    let from_local = from.map(|f| local_part(&f.address).to_ascii_lowercase());
    if from_local.as_deref() == Some("mailer-daemon") {
        return true;
    }
    let null_return_path = headers.all("Return-Path").any(|v| strip_angles(&v).is_empty());
    null_return_path && (delivery_status_parts(message).next().is_some() || from_local.as_deref() == Some("postmaster"))
}

fn delivery_status_parts<'m>(message: &'m Message<'_>) -> impl Iterator<Item = &'m MessagePart<'m>> + 'm {
    message.parts.iter().filter(|p| {
        p.is_content_type("message", "delivery-status") || p.is_content_type("message", "global-delivery-status")
    })
}

/// Failed recipients named by the delivery-status parts (RFC 3464), or by `X-Failed-Recipients`.
fn undeliverable_recipients(message: &Message<'_>, headers: &RawHeaders<'_, '_>) -> Vec<String> {
    let mut out = Vec::new();
    for part in delivery_status_parts(message) {
        let text = String::from_utf8_lossy(part.contents());
        // Blocks are separated by blank lines: the first is per-message, the rest per-recipient.
        for block in text.replace("\r\n", "\n").split("\n\n") {
            let mut original = None;
            let mut fin = None;
            let mut failed = true;
            for line in unfold_block(block) {
                let Some((name, value)) = line.split_once(':') else { continue };
                let name = name.trim().to_ascii_lowercase();
                match name.as_str() {
                    "original-recipient" => original = recipient_address(value),
                    "final-recipient" => fin = recipient_address(value),
                    "action" => failed = value.trim().eq_ignore_ascii_case("failed"),
                    _ => {}
                }
            }
            if failed {
                for address in [original, fin].into_iter().flatten() {
                    push_unique(&mut out, address);
                }
            }
        }
    }
    for value in headers.all("X-Failed-Recipients") {
        for address in value.split(',') {
            let address = strip_angles(address).to_lowercase();
            if address.contains('@') {
                push_unique(&mut out, address);
            }
        }
    }
    out
}

/// Lines of a header-like block with continuation lines joined.
fn unfold_block(block: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in block.lines() {
        match lines.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => lines.push(line.trim().to_owned()),
        }
    }
    lines
}

/// `rfc822; Ivan@Example.com` → `ivan@example.com`.
fn recipient_address(value: &str) -> Option<String> {
    let address = value.split_once(';').map_or(value, |(_, a)| a);
    let address = strip_angles(address).to_lowercase();
    (address.contains('@') && !address.contains(char::is_whitespace)).then_some(address)
}

fn push_unique(out: &mut Vec<String>, value: String) {
    if !out.contains(&value) {
        out.push(value);
    }
}

/// Subjects Exchange and friends give their automatic replies.
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "automatic reply",
    "auto reply",
    "autoreply",
    "auto-reply",
    "out of office",
    "out of the office",
    "automatische antwort",
    "abwesenheitsnotiz",
    "réponse automatique",
    "respuesta automática",
    "автоматический ответ",
    "автоответ",
];

fn is_auto_reply(headers: &RawHeaders<'_, '_>, subject: Option<&str>) -> bool {
    // `auto-generated` alone is what form relays set, so it is not enough.
    if matches!(headers.keyword("Auto-Submitted").as_deref(), Some("auto-replied" | "auto-notified")) {
        return true;
    }
    if headers.keyword("X-Autoreply").is_some_and(|v| !matches!(v.as_str(), "no" | "false" | "0"))
        || headers.has("X-Autorespond")
    {
        return true;
    }
    if headers.keyword("Precedence").as_deref() == Some("auto_reply") {
        return true;
    }
    let suppress_all =
        headers.all("X-Auto-Response-Suppress").any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("all")));
    let auto_subject = subject.is_some_and(|s| {
        let s = s.trim().to_lowercase();
        AUTO_REPLY_SUBJECTS.iter().any(|p| s.starts_with(p))
    });
    suppress_all && auto_subject
}

fn is_bulk(headers: &RawHeaders<'_, '_>, own_addresses: &[String]) -> bool {
    let precedence = headers.keyword("Precedence");
    if matches!(precedence.as_deref(), Some("bulk" | "junk")) {
        return true;
    }
    // A shared inbox that is itself a group (Google Groups: `List-Id: <sales.example.com>`) puts
    // list headers on every message it passes on; those say nothing about the sender.
    let own_list = headers.all("List-Id").any(|id| {
        let id =
            id.rsplit_once('<').map_or(id.as_str(), |(_, id)| id).trim_end_matches('>').trim().to_ascii_lowercase();
        own_addresses.iter().any(|own| own.trim().to_ascii_lowercase().replacen('@', ".", 1) == id)
    });
    !own_list && (precedence.as_deref() == Some("list") || headers.has("List-Id") || headers.has("List-Unsubscribe"))
}

// ---------------------------------------------------------------------------------------------
// Body
// ---------------------------------------------------------------------------------------------

struct Body {
    /// Every body part as text, for the record.
    full: String,
    /// The same, but with HTML `<blockquote>`s left out, to cut the new part from.
    for_reply: String,
}

impl Body {
    fn of(message: &Message<'_>) -> Self {
        // mail-parser lists in `text_body` the text/plain alternative when there is one and the
        // HTML one only when there is not, which is the preference we want.
        let body = Self::from_parts(message, &message.text_body);
        if body.full.is_empty() {
            // Some clients send an empty text/plain alternative next to the real HTML one.
            return Self::from_parts(message, &message.html_body);
        }
        body
    }

    fn from_parts(message: &Message<'_>, ids: &[u32]) -> Self {
        let mut full = Vec::new();
        let mut for_reply = Vec::new();
        for part in ids.iter().filter_map(|&id| message.parts.get(id as usize)) {
            match &part.body {
                PartType::Text(text) => {
                    let text = text.replace("\r\n", "\n");
                    full.push(text.clone());
                    for_reply.push(text);
                }
                PartType::Html(html) => {
                    let text = html_to_text(html);
                    full.push(text.clone());
                    for_reply.push(text);
                }
                _ => {}
            }
        }
        Body { full: join_parts(full), for_reply: join_parts(for_reply) }
    }
}

fn join_parts(parts: Vec<String>) -> String {
    parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect::<Vec<_>>().join("\n\n")
}

/// HTML to readable text (html2text: blocks, lists and table rows on lines of their own; head,
/// styles, scripts and images dropped). `<blockquote>`s come out as `> ` lines, which the
/// new-part cut removes like any quoted text.
fn html_to_text(html: &str) -> String {
    let text = html2text::config::plain_no_decorate()
        .no_table_borders()
        .no_link_wrapping()
        .string_from_read(html.as_bytes(), 10_000)
        .unwrap_or_else(|_| mail_parser::decoders::html::html_to_text(html));
    tidy_lines(&text)
}

/// Collapses spaces, trims lines and allows at most one blank line in a row.
fn tidy_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.replace('\u{a0}', " ").lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(&line);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The new part of a reply
// ---------------------------------------------------------------------------------------------

/// The text above the quoted conversation, without `>` lines; with or without the signature.
fn new_part(text: &str, keep_signature: bool) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<&str> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if is_reply_header(&lines, i) || is_outlook_header(&lines, i) {
            break;
        }
        if line.trim_end() == "--" {
            if keep_signature {
                continue;
            }
            break;
        }
        if line.trim_start().starts_with('>') {
            continue;
        }
        out.push(line.trim_end());
    }
    tidy_blank_lines(&out)
}

fn tidy_blank_lines(lines: &[&str]) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in lines {
        if line.trim().is_empty() {
            blank = true;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank { "\n\n" } else { "\n" });
        }
        blank = false;
        out.push_str(line);
    }
    out.trim().to_owned()
}

/// "On Tue, 3 Mar 2026 at 10:15, Anna <anna@example.com> wrote:" and its translations, also when
/// the client wrapped it over two lines.
fn is_reply_header(lines: &[&str], i: usize) -> bool {
    let Some(line) = lines.get(i).map(|l| l.trim()) else { return false };
    if line.is_empty() || line.starts_with('>') {
        return false;
    }
    if attribution(line) {
        return true;
    }
    // Any "…, Name <address> …:" right above a quote (Gmail in Russian, Yandex, Mail.ru, Italian, Dutch …).
    if line.ends_with(':')
        && line.contains('@')
        && line.contains(|c: char| c.is_ascii_digit())
        && line.chars().count() <= 300
        && lines.iter().skip(i + 1).map(|l| l.trim()).find(|l| !l.is_empty()).is_some_and(|n| n.starts_with('>'))
    {
        return true;
    }
    match lines.get(i + 1).map(|l| l.trim()) {
        Some(next) if !next.is_empty() && !next.starts_with('>') => attribution(&format!("{line} {next}")),
        _ => false,
    }
}

fn attribution(line: &str) -> bool {
    if line.chars().count() > 300 || !line.ends_with(':') || !line.contains(|c: char| c.is_ascii_digit() || c == '@') {
        return false;
    }
    let lower = line.to_lowercase();
    (lower.starts_with("on ") && lower.ends_with("wrote:"))
        || (lower.starts_with("am ") && lower.contains("schrieb"))
        || (lower.starts_with("le ") && lower.contains("a écrit"))
        || (lower.starts_with("el ") && lower.contains("escribió"))
        || ["написал(а):", "написал:", "написала:", "пишет:"].iter().any(|verb| lower.ends_with(verb))
}

const ORIGINAL_MESSAGE: &[&str] = &[
    "original message",
    "ursprüngliche nachricht",
    "original-nachricht",
    "message d'origine",
    "mensaje original",
    "исходное сообщение",
];
const FROM_LABELS: &[&str] = &["from:", "von:", "de:", "de :", "от:", "from :"];
const SENT_LABELS: &[&str] = &["sent:", "gesendet:", "envoyé :", "envoyé:", "enviado:", "отправлено:", "sent :"];

/// Outlook's quoting: "-----Original Message-----", or a "From: … Sent: …" header block, optionally
/// under a line of underscores.
fn is_outlook_header(lines: &[&str], i: usize) -> bool {
    let Some(line) = lines.get(i).map(|l| l.trim().trim_matches('*').trim().to_lowercase()) else { return false };
    if line.starts_with("---") && ORIGINAL_MESSAGE.iter().any(|m| line.contains(m)) {
        return true;
    }
    if line.len() >= 10 && line.chars().all(|c| c == '_') {
        let next = lines.iter().skip(i + 1).map(|l| l.trim()).find(|l| !l.is_empty()).unwrap_or_default();
        let next = next.trim_matches('*').trim().to_lowercase();
        return FROM_LABELS.iter().any(|l| next.starts_with(l));
    }
    if !FROM_LABELS.iter().any(|l| line.starts_with(l)) {
        return false;
    }
    lines.iter().skip(i + 1).take(4).any(|next| {
        let next = next.trim().trim_matches('*').trim().to_lowercase();
        SENT_LABELS.iter().any(|l| next.starts_with(l))
    })
}

// ---------------------------------------------------------------------------------------------
// Phones
// ---------------------------------------------------------------------------------------------

/// Words that say "a phone number follows" (a label word starting with one counts: `Tel.:`, `Telefon`, `mobil`).
const PHONE_CUES: &[&str] = &[
    "tel",
    "phone",
    "mob",
    "cell",
    "call",
    "whatsapp",
    "viber",
    "handy",
    "tél",
    "portable",
    "móvil",
    "т.",
    "тел",
    "моб",
    "звоните",
    "電話",
    "手机",
    "携帯",
];
/// Words that say "a number you should not call back" follows.
const NON_PHONE_CUES: &[&str] = &[
    "fax",
    "факс",
    "order",
    "invoice",
    "iban",
    "account",
    "customer",
    "ticket",
    "kundennummer",
    "rechnung",
    "bestellung",
    "auftrag",
    "заказ",
    "счет",
    "счёт",
    "инн",
    "огрн",
    "кпп",
    "бик",
];

/// A person has a few numbers; past this the body is a price list or a log, not a signature.
const MAX_PHONES: usize = 10;

/// Phone numbers in `text`, E.164, deduplicated, in order of appearance.
///
/// A candidate is a run of digits and `+ ( ) - . / space` with 7–15 digits that is not glued to
/// letters or to a longer digit run and does not look like a date. It must parse as a valid
/// number, and unless a cue such as "tel" or "тел" precedes it on its line it must also look
/// written as a phone (a leading `+`, or grouped with separators) rather than a bare digit run,
/// which is far more often an order or customer number.
fn find_phones(text: &str, region: Option<Region>) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let begins = c == '+' || c == '(' || c.is_ascii_digit();
        let glued = i > 0 && chars[i - 1].1.is_alphanumeric();
        if !begins {
            i += 1;
            continue;
        }
        if glued {
            // Skip the rest of the word so `DE89 3704…` or `A1234567` never starts a candidate mid-token.
            while i < chars.len() && chars[i].1.is_alphanumeric() {
                i += 1;
            }
            continue;
        }
        let mut j = i;
        let mut separators_in_a_row = 0;
        while j < chars.len() {
            let c = chars[j].1;
            if c.is_ascii_digit() {
                separators_in_a_row = 0;
            } else if matches!(c, '+' | '(' | ')' | '-' | '.' | '/' | ' ' | '\u{a0}') {
                separators_in_a_row += 1;
                if separators_in_a_row > 3 {
                    break;
                }
            } else {
                break;
            }
            j += 1;
        }
        let end = chars.get(j).map_or(text.len(), |&(at, _)| at);
        let candidate = text[start..end].trim_end_matches(|c: char| !c.is_ascii_digit() && c != ')');
        i = j.max(i + 1);
        // `1234567abc` is a code, not a number followed by a word.
        if text[start + candidate.len()..].chars().next().is_some_and(char::is_alphanumeric) {
            continue;
        }
        if let Some(phone) = phone_candidate(candidate, &text[..start], region) {
            push_unique(&mut out, phone);
            if out.len() >= MAX_PHONES {
                break;
            }
        }
    }
    out
}

fn phone_candidate(candidate: &str, before: &str, region: Option<Region>) -> Option<String> {
    let digits = candidate.chars().filter(char::is_ascii_digit).count();
    if !(7..=15).contains(&digits) || looks_like_date(candidate) {
        return None;
    }
    // Look back a bounded distance, so a long line of candidates stays linear.
    let tail = before.char_indices().rev().nth(48).map_or(0, |(at, _)| at);
    let line_before = before[tail..].rsplit('\n').next().unwrap_or_default().to_lowercase();
    // Only the last few words before the number count as its label.
    let label: String = {
        let words: Vec<&str> = line_before.split_whitespace().collect();
        words[words.len().saturating_sub(3)..].join(" ")
    };
    let has_cue = |cues: &[&str]| {
        label.split_whitespace().any(|word| {
            let word = word.trim_start_matches(|c: char| !c.is_alphanumeric());
            cues.iter().any(|cue| word.starts_with(cue))
        })
    };
    if has_cue(NON_PHONE_CUES) {
        return None;
    }
    let cued = has_cue(PHONE_CUES);
    let formatted = candidate.starts_with('+') || candidate.contains([' ', '-', '(', '.', '/', '\u{a0}']);
    if !cued && !formatted {
        return None;
    }
    let candidate = candidate.replace('\u{a0}', " ");
    PhoneE164::parse(&candidate, region).ok().map(|p| p.as_str().to_owned())
}

/// True when the candidate holds a date: `2026-03-04`, `04.03.2026`, `4/3/2026` (groups of 4-2-2 or
/// 2-2-4 digits with the same `-`, `.` or `/` between them), which phone numbers do not look like.
fn looks_like_date(candidate: &str) -> bool {
    // Digit groups, each with the character that follows it.
    let mut groups: Vec<(usize, Option<char>)> = Vec::new();
    let mut len = 0;
    for c in candidate.chars() {
        if c.is_ascii_digit() {
            len += 1;
        } else if len > 0 {
            groups.push((len, Some(c)));
            len = 0;
        }
    }
    if len > 0 {
        groups.push((len, None));
    }
    groups.windows(3).any(|w| {
        let (a, sep_a) = w[0];
        let (b, sep_b) = w[1];
        let c = w[2].0;
        let short = |n: usize| (1..=2).contains(&n);
        sep_a == sep_b
            && matches!(sep_a, Some('-' | '.' | '/'))
            && ((a == 4 && short(b) && short(c)) || (short(a) && short(b) && c == 4))
    })
}

// ---------------------------------------------------------------------------------------------
// Attachments, threads, language
// ---------------------------------------------------------------------------------------------

fn attachments(message: &Message<'_>, raw: &[u8]) -> Vec<Attachment> {
    let referenced_cids: HashSet<String> = message
        .parts
        .iter()
        .filter_map(|p| match &p.body {
            PartType::Html(h) => Some(h),
            _ => None,
        })
        .flat_map(|html| cids_in(html))
        .collect();
    let mut out = Vec::new();
    for part in message.attachments.iter().filter_map(|&id| message.parts.get(id as usize)) {
        let bytes: &[u8] = match &part.body {
            PartType::Binary(b) | PartType::InlineBinary(b) => b,
            PartType::Text(t) | PartType::Html(t) => t.as_bytes(),
            // A nested message keeps a copy of its parent's bytes; take its own slice.
            PartType::Message(_) => raw.get(part.offset_body as usize..part.offset_end as usize).unwrap_or_default(),
            PartType::Multipart(_) => continue,
        };
        let name = part.attachment_name().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
        let disposition_attachment = part.content_disposition().is_some_and(|d| d.is_attachment());
        let referenced =
            part.content_id().map(strip_angles).is_some_and(|id| referenced_cids.contains(&id.to_ascii_lowercase()));
        if referenced && !(name.is_some() && disposition_attachment) {
            continue;
        }
        let content_type = part.content_type().map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        });
        let content_type =
            content_type.or_else(|| matches!(part.body, PartType::Message(_)).then(|| "message/rfc822".into()));
        out.push(Attachment {
            name,
            content_type,
            size: Some(bytes.len() as u64),
            reference: Some(format!("sha256:{}", sha256_hex(bytes))),
        });
    }
    out
}

/// The `cid:` references of an HTML body, lower-cased.
fn cids_in(html: &str) -> Vec<String> {
    html.to_ascii_lowercase()
        .split("cid:")
        .skip(1)
        .map(|rest| rest.split(['"', '\'', ')', '>', ' ', '\t', '\r', '\n']).next().unwrap_or_default().to_owned())
        .filter(|id| !id.is_empty())
        .collect()
}

fn thread_ids(message: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for value in [message.in_reply_to(), message.references()] {
        let ids: Vec<&str> = match value {
            HeaderValue::Text(id) => vec![id.as_ref()],
            HeaderValue::TextList(ids) => ids.iter().map(|s| s.as_ref()).collect(),
            _ => Vec::new(),
        };
        for id in ids {
            let id = strip_angles(id);
            if !id.is_empty() && !id.contains(char::is_whitespace) {
                push_unique(&mut out, id.to_owned());
            }
        }
    }
    out
}

fn language(message: &Message<'_>, headers: &RawHeaders<'_, '_>) -> Option<String> {
    let content_language = match message.header(HeaderName::ContentLanguage) {
        Some(HeaderValue::Text(t)) => Some(Cow::Borrowed(t.as_ref())),
        Some(HeaderValue::TextList(list)) => list.first().map(|t| Cow::Borrowed(t.as_ref())),
        _ => None,
    };
    let text_part_language = || {
        message.text_body.first().and_then(|&id| message.parts.get(id as usize)).and_then(|p| {
            match p.content_language() {
                HeaderValue::Text(t) => Some(Cow::Owned(t.to_string())),
                HeaderValue::TextList(list) => list.first().map(|t| Cow::Owned(t.to_string())),
                _ => None,
            }
        })
    };
    let candidates =
        content_language.into_iter().chain(text_part_language()).chain(headers.get("Accept-Language").map(Cow::Owned));
    for candidate in candidates {
        let tag = candidate.split([',', ';']).next().unwrap_or_default().trim();
        let valid = !tag.is_empty()
            && tag.len() <= 35
            && tag != "*"
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && tag.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if valid {
            return Some(tag.to_owned());
        }
    }
    None
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/email/", $name, ".eml")).as_slice()
        };
    }

    const FIXTURES: &[(&str, &[u8])] = &[
        ("plain", fixture!("plain")),
        ("html_only", fixture!("html_only")),
        ("windows1251", fixture!("windows1251")),
        ("koi8r", fixture!("koi8r")),
        ("iso2022jp", fixture!("iso2022jp")),
        ("reply", fixture!("reply")),
        ("reply_outlook", fixture!("reply_outlook")),
        ("autoreply", fixture!("autoreply")),
        ("out_of_office", fixture!("out_of_office")),
        ("bounce", fixture!("bounce")),
        ("list", fixture!("list")),
        ("relay", fixture!("relay")),
        ("attachments", fixture!("attachments")),
        ("no_message_id", fixture!("no_message_id")),
        ("bad_date", fixture!("bad_date")),
        ("own", fixture!("own")),
    ];

    fn own() -> Vec<String> {
        vec!["sales@kestrel-systems.com".to_owned(), "notifications@kestrel-systems.com".to_owned()]
    }

    fn verdict(raw: &[u8], region: Option<&str>) -> Verdict {
        let own = own();
        let ctx =
            MailboxContext { own_addresses: &own, default_region: region.map(|r| Region::parse(r).expect("region")) };
        parse(raw, &ctx).expect("parseable")
    }

    fn inquiry(raw: &[u8], region: Option<&str>) -> ParsedMail {
        match verdict(raw, region) {
            Verdict::Inquiry(mail) => *mail,
            other => panic!("expected an inquiry, got {other:?}"),
        }
    }

    fn skip(raw: &[u8]) -> (SkipReason, String, Vec<String>) {
        match verdict(raw, Some("US")) {
            Verdict::Skip { reason, message_id, undeliverable } => (reason, message_id, undeliverable),
            other => panic!("expected a skip, got {other:?}"),
        }
    }

    /// A message from header lines and a body, with CRLF line endings.
    fn mail(headers: &[&str], body: &str) -> Vec<u8> {
        format!("{}\r\n\r\n{}", headers.join("\r\n"), body.replace('\n', "\r\n")).into_bytes()
    }

    fn sha(bytes: &[u8]) -> String {
        format!("sha256:{}", sha256_hex(bytes))
    }

    // --- Fixtures ------------------------------------------------------------------------------

    #[test]
    fn plain_inquiry_keeps_signature_phones_but_not_order_numbers_dates_or_fax() {
        let m = inquiry(fixture!("plain"), Some("US"));
        assert_eq!(m.message_id, "CAF3k9xQ2mPq7RvN0aTz@mail.brightline-logistics.com");
        assert_eq!(m.sender_email, "daniel.okafor@brightline-logistics.com");
        assert_eq!(m.sender_name.as_deref(), Some("Daniel Okafor"));
        assert!(!m.relayed);
        assert_eq!(m.subject.as_deref(), Some("Quote for 40 handheld barcode scanners"));
        assert!(m.text.starts_with("Hello,\n\nWe are expanding our warehouse"), "{:?}", m.text);
        assert!(m.text.ends_with("Best regards,\nDaniel"), "signature must be cut: {:?}", m.text);
        assert!(!m.text.contains("Operations Manager"));
        assert!(m.full_text.contains("-- \nDaniel Okafor\nOperations Manager"), "{:?}", m.full_text);
        assert!(!m.full_text.contains('\r'));
        // Tel and Mobile (national, read in US); not the fax, PO 4500123456, order 20260304117,
        // the date 2026-04-15 or the postcode 43207.
        assert_eq!(m.phones, vec!["+16145550148", "+16145550199"]);
        assert!(m.thread_ids.is_empty());
        assert!(m.attachments.is_empty());
        assert_eq!(m.date_ms, Some(1_772_547_267_000)); // 2026-03-03T14:14:27Z
        assert_eq!(m.language.as_deref(), Some("en-US"));
    }

    #[test]
    fn html_only_mail_becomes_readable_text_without_styles_scripts_or_pixels() {
        let m = inquiry(fixture!("html_only"), None);
        assert_eq!(m.sender_email, "sofia.marchetti@ortofresco.it");
        assert_eq!(m.subject.as_deref(), Some("Richiesta di preventivo sensori"));
        let expected = "Buongiorno,\n\n\
            siamo una cooperativa agricola di Cremona e vorremmo un preventivo per i seguenti articoli:\n\n\
            Articolo Quantità\n\
            Sensore di umidità SH-40 120\n\
            Gateway LoRa GW-8 6\n\
            Consegna a Cremona entro aprile.\n\
            Telefono: +39 02 8734 1120\n\n\
            Cordiali saluti,\nSofia Marchetti\nOrtofresco Soc. Coop.";
        assert_eq!(m.full_text, expected);
        assert_eq!(m.text, expected);
        for leaked in ["font-family", "color", "tracker", "document.title", "track.mailer-example.com", "<", "&nbsp;"] {
            assert!(!m.full_text.contains(leaked), "{leaked:?} leaked into {:?}", m.full_text);
        }
        assert!(!m.full_text.contains("Richiesta di preventivo"), "the <title> is not body text");
        assert_eq!(m.phones, vec!["+390287341120"]);
    }

    #[test]
    fn windows_1251_body_and_encoded_headers_are_decoded() {
        let m = inquiry(fixture!("windows1251"), Some("RU"));
        assert_eq!(m.sender_email, "ivan.petrov@stroymontazh.ru");
        assert_eq!(m.sender_name.as_deref(), Some("Иван Петров"));
        assert_eq!(m.subject.as_deref(), Some("Запрос коммерческого предложения"));
        assert!(m.text.starts_with("Здравствуйте!\n\nНаша компания «СтройМонтаж»"), "{:?}", m.text);
        assert!(m.text.ends_with("С уважением,\nИван Петров"), "{:?}", m.text);
        assert!(!m.text.contains("инженер по закупкам"), "signature is cut from text");
        assert!(m.full_text.contains("Тел.: 8 (912) 345-67-89"));
        // The national number in the signature, not the 19-digit tender number.
        assert_eq!(m.phones, vec!["+79123456789"]);
        assert_eq!(m.date_ms, Some(1_772_696_403_000));
    }

    #[test]
    fn koi8_r_body_and_encoded_headers_are_decoded() {
        let m = inquiry(fixture!("koi8r"), Some("RU"));
        assert_eq!(m.sender_name.as_deref(), Some("Ольга Смирнова"));
        assert_eq!(m.subject.as_deref(), Some("Дистрибьютор в Новосибирске"));
        assert!(m.text.contains("Нужны 4 терминала учёта рабочего времени."), "{:?}", m.text);
        assert_eq!(m.phones, vec!["+79132045518"]);
    }

    #[test]
    fn iso_2022_jp_body_and_encoded_headers_are_decoded() {
        let m = inquiry(fixture!("iso2022jp"), Some("JP"));
        assert_eq!(m.sender_email, "t.yamada@sakura-denki.co.jp");
        assert_eq!(m.sender_name.as_deref(), Some("山田 太郎"));
        assert_eq!(m.subject.as_deref(), Some("お見積もりのお願い"));
        assert!(m.text.contains("貴社の入退室管理システムについて、見積もりをお願いいたします。"), "{:?}", m.text);
        assert!(!m.text.contains('\u{fffd}'), "no replacement characters: {:?}", m.text);
        assert_eq!(m.phones, vec!["+81312345678"]);
    }

    #[test]
    fn reply_keeps_only_the_new_part_and_collects_thread_ids() {
        let m = inquiry(fixture!("reply"), Some("US"));
        assert_eq!(
            m.text,
            "Thanks Maria, the price works for us. Could you ship the first 20 units\nby March 20 and the rest in April?\n\nDaniel"
        );
        assert!(m.full_text.contains("> Please find our quote"), "full text keeps the quote");
        assert_eq!(
            m.thread_ids,
            vec!["quote-7731.1741103520@kestrel-systems.com", "CAF3k9xQ2mPq7RvN0aTz@mail.brightline-logistics.com"]
        );
        assert!(m.phones.is_empty(), "our own number in the quote is not the prospect's: {:?}", m.phones);
        assert_eq!(m.subject.as_deref(), Some("Re: Quote for 40 handheld barcode scanners"));
    }

    #[test]
    fn outlook_reply_is_cut_at_original_message_and_keeps_its_signature_phones() {
        let m = inquiry(fixture!("reply_outlook"), Some("DE"));
        assert_eq!(m.sender_email, "k.bergmann@bergmann-haustechnik.de");
        assert_eq!(m.sender_name.as_deref(), Some("Bergmann, Klaus"));
        assert_eq!(m.subject.as_deref(), Some("AW: AW: Anfrage Zutrittskontrolle für 3 Standorte"));
        assert_eq!(
            m.text,
            "Hallo Frau Weber,\n\n\
             vielen Dank für das Angebot. Wir hätten noch zwei Rückfragen zur Montage\n\
             und würden das gern kurz telefonisch klären – am besten erreichen Sie mich\n\
             mobil unter 0171 2345678.\n\n\
             Mit freundlichen Grüßen\nKlaus Bergmann\n\n\
             Bergmann Haustechnik GmbH\nTel.: +49 (0) 89 4521 3370"
        );
        assert!(m.full_text.contains("-----Original Message-----\nFrom: Lena Weber"));
        // Ours (+49 30 5557 1200) sits in the quoted part and is not taken.
        assert_eq!(m.phones, vec!["+491712345678", "+498945213370"]);
        assert_eq!(
            m.thread_ids,
            vec![
                "kestrel.offer.20260302161200.5521@kestrel-systems.com",
                "AM9PR07MB7204A9F3B1@AM9PR07MB7204.eurprd07.prod.outlook.com"
            ]
        );
        assert_eq!(m.language.as_deref(), Some("de-DE"));
        assert_eq!(m.date_ms, Some(1_772_525_144_000));
    }

    #[test]
    fn auto_replied_is_an_auto_reply_even_with_a_null_return_path() {
        let (reason, id, undeliverable) = skip(fixture!("autoreply"));
        assert_eq!(reason, SkipReason::AutoReply);
        assert_eq!(id, "autoreply-7f3e0c@hoffmann-druck.de");
        assert!(undeliverable.is_empty());
    }

    #[test]
    fn x_autoreply_is_an_auto_reply_before_it_is_bulk() {
        let (reason, id, _) = skip(fixture!("out_of_office"));
        assert_eq!(reason, SkipReason::AutoReply, "Precedence: bulk is also set, but auto-reply is checked first");
        assert_eq!(id, "ooo.1741093212.tbecker@lakeside-dental.com");
    }

    #[test]
    fn bounce_lists_failed_recipients_lower_cased_and_not_delayed_ones() {
        let (reason, id, undeliverable) = skip(fixture!("bounce"));
        assert_eq!(reason, SkipReason::Bounce);
        assert_eq!(id, "20260303150209.7A1C23F2B1@mx.kestrel-systems.com");
        assert_eq!(undeliverable, vec!["j.doe@example-corp.com", "pavel.sokolov@old-domain.ru"]);
    }

    #[test]
    fn mailing_list_is_bulk() {
        let (reason, id, _) = skip(fixture!("list"));
        assert_eq!(reason, SkipReason::Bulk);
        assert_eq!(id, "nl.2026-10.a81f@securitytech-weekly.com");
    }

    #[test]
    fn form_relay_names_the_prospect_from_reply_to() {
        let m = inquiry(fixture!("relay"), Some("US"));
        assert_eq!(m.sender_email, "maria.gonzalez@solar-andino.cl");
        assert_eq!(m.sender_name.as_deref(), Some("María González"), "the relay's own name is not the person's");
        assert!(m.relayed);
        assert_eq!(m.subject.as_deref(), Some("New submission: Contact us"));
        assert!(m.text.contains("Company: Solar Andino SpA\nPhone: +56 2 2345 6789\nMessage:\nHola, we are building"));
        assert!(!m.text.contains("Sent by FormRelay"), "the relay's footer after `--` is a signature: {:?}", m.text);
        assert!(m.full_text.ends_with("Submission 2026-03-07 18:22:41 UTC, ID 88417."));
        assert_eq!(m.phones, vec!["+56223456789"], "not the submission timestamp or id");
    }

    #[test]
    fn attachments_are_hashed_and_referenced_inline_images_left_out() {
        let m = inquiry(fixture!("attachments"), None);
        assert!(m.text.starts_with("Hello,\n\nAs discussed"), "the text/plain alternative wins: {:?}", m.text);
        assert_eq!(m.phones, vec!["+902125554122"]);
        assert_eq!(m.attachments.len(), 2, "{:?}", m.attachments);
        let pdf = &m.attachments[0];
        assert_eq!(pdf.name.as_deref(), Some("floor-plan-building-B.pdf"));
        assert_eq!(pdf.content_type.as_deref(), Some("application/pdf"));
        assert_eq!(pdf.size, Some(355));
        assert_eq!(
            pdf.reference.as_deref(),
            Some("sha256:133b514ea87f6d35310a94fb236068e8fa2d20f41403eb9e63a0cea77954efbb")
        );
        let photo = &m.attachments[1];
        assert_eq!(photo.name.as_deref(), Some("giriş-kapısı.png"), "RFC 2231 filename decoded");
        assert_eq!(photo.content_type.as_deref(), Some("image/png"));
        assert_eq!(photo.size, Some(124));
        assert!(photo.reference.as_deref().is_some_and(|r| r.starts_with("sha256:74e009e3c2216d14")));
        assert!(m.attachments.iter().all(|a| a.name.as_deref() != Some("logo.png")), "cid: logo is not a file");
    }

    #[test]
    fn missing_message_id_is_the_hash_of_the_raw_bytes() {
        let raw = fixture!("no_message_id");
        let m = inquiry(raw, None);
        assert_eq!(m.message_id, "sha256:cf331562ef170c5bcc1771f94d6e6eff25ea6782f163ac670b3acddc57a566ce");
        assert_eq!(m.message_id, sha(raw));
        assert_eq!(m.sender_email, "linh.tran@mekong-foods.vn");
        assert_eq!(
            m.text,
            "Dear Kestrel team,\n\nCould you send me your current price list for door controllers?\n\nThank you,\nLinh Tran"
        );
    }

    #[test]
    fn unparseable_date_is_none() {
        let m = inquiry(fixture!("bad_date"), None);
        assert_eq!(m.date_ms, None);
        assert_eq!(m.message_id, "b7e1d2c9-3f4a-4e5b-9c6d-7a8b9c0d1e2f@haddad-properties.ae");
        assert_eq!(m.phones, vec!["+971501234567"]);
    }

    #[test]
    fn own_message_is_skipped_whatever_the_case_of_the_address() {
        let (reason, id, _) = skip(fixture!("own"));
        assert_eq!(reason, SkipReason::OwnMessage);
        assert_eq!(id, "quote-7731.1741103520@kestrel-systems.com");
    }

    // --- Classification rules -------------------------------------------------------------------

    const PERSON: &str = "From: Ana Ruiz <ana.ruiz@ferreteria-ruiz.es>";
    const TO: &str = "To: sales@kestrel-systems.com";

    #[test]
    fn own_message_wins_over_every_other_reason() {
        let raw =
            mail(&["From: sales@kestrel-systems.com", TO, "Precedence: bulk", "Auto-Submitted: auto-replied"], "x");
        assert_eq!(skip(&raw).0, SkipReason::OwnMessage);
        let raw = mail(&["From: Kestrel <notifications@kestrel-systems.com>", "Sender: x@y.com", TO], "x");
        assert_eq!(skip(&raw).0, SkipReason::OwnMessage);
    }

    #[test]
    fn bounces_are_recognised_by_sender_and_null_return_path() {
        let raw = mail(
            &[
                "From: MAILER-DAEMON@mail.example.net",
                TO,
                "Subject: failure notice",
                "X-Failed-Recipients: Bob@Example.org",
            ],
            "Sorry, I couldn't deliver your message.",
        );
        assert_eq!(skip(&raw), (SkipReason::Bounce, sha(&raw), vec!["bob@example.org".to_owned()]));
        let raw = mail(&["Return-Path: <>", "From: postmaster@mail.example.net", TO], "Undeliverable.");
        assert_eq!(skip(&raw).0, SkipReason::Bounce);
        // A null Return-Path with a delivery-status part, even without multipart/report.
        let raw = mail(
            &[
                "Return-Path: <>",
                "From: Mail System <mx@mail.example.net>",
                TO,
                "Content-Type: multipart/mixed; boundary=b",
            ],
            "--b\nContent-Type: text/plain\n\nFailed.\n--b\nContent-Type: message/delivery-status\n\n\
             Reporting-MTA: dns; mail.example.net\n\nOriginal-Recipient: rfc822; <Old@Example.org>\n\
             Final-Recipient: rfc822; new@example.org\nAction: failed\n--b--\n",
        );
        assert_eq!(
            skip(&raw),
            (SkipReason::Bounce, sha(&raw), vec!["old@example.org".to_owned(), "new@example.org".to_owned()])
        );
        // A null Return-Path alone, from someone who is not a mail system, is a person writing.
        let raw = mail(&["Return-Path: <>", PERSON, TO], "Hola, ¿tienen lectores de tarjetas?");
        assert_eq!(inquiry(&raw, None).sender_email, "ana.ruiz@ferreteria-ruiz.es");
    }

    #[test]
    fn auto_reply_headers() {
        for header in ["X-Autorespond: yes", "Precedence: auto_reply", "Auto-Submitted: auto-replied (vacation)"] {
            let raw = mail(&[PERSON, TO, header, "Subject: Re: your offer"], "Away.");
            assert_eq!(skip(&raw).0, SkipReason::AutoReply, "{header}");
        }
        let raw = mail(&[PERSON, TO, "X-Autoreply: no", "Subject: Re: your offer"], "Not away.");
        assert!(matches!(verdict(&raw, None), Verdict::Inquiry(_)), "X-Autoreply: no");
    }

    #[test]
    fn exchange_suppress_all_needs_an_automatic_reply_subject() {
        let ooo = mail(&[PERSON, TO, "X-Auto-Response-Suppress: All", "Subject: Automatic reply: Quote"], "Away.");
        assert_eq!(skip(&ooo).0, SkipReason::AutoReply);
        let ooo = mail(&[PERSON, TO, "X-Auto-Response-Suppress: All", "Subject: Out of Office: Quote"], "Away.");
        assert_eq!(skip(&ooo).0, SkipReason::AutoReply);
        let person = mail(&[PERSON, TO, "X-Auto-Response-Suppress: All", "Subject: Quote"], "We'd like 12 readers.");
        assert!(matches!(verdict(&person, None), Verdict::Inquiry(_)));
        let person = mail(&[PERSON, TO, "Subject: Automatic reply: Quote"], "Subject alone is not enough.");
        assert!(matches!(verdict(&person, None), Verdict::Inquiry(_)));
    }

    #[test]
    fn auto_generated_alone_is_not_an_auto_reply() {
        let raw = mail(&[PERSON, TO, "Auto-Submitted: auto-generated", "Subject: Quote"], "Please quote 10 readers.");
        let m = inquiry(&raw, None);
        assert_eq!(m.sender_email, "ana.ruiz@ferreteria-ruiz.es");
        assert!(!m.relayed);
    }

    #[test]
    fn our_own_group_list_headers_are_not_bulk() {
        let group = [
            PERSON,
            "To: sales@kestrel-systems.com",
            "List-Id: <sales.kestrel-systems.com>",
            "Precedence: list",
            "List-Unsubscribe: <mailto:googlegroups-manage+1234+unsubscribe@googlegroups.com>",
        ];
        assert_eq!(inquiry(&mail(&group, "Hola."), None).sender_email, "ana.ruiz@ferreteria-ruiz.es");
        let mut newsletter = group.to_vec();
        newsletter[2] = "List-Id: Ferretería news <news.ferreteria-ruiz.es>";
        assert_eq!(skip(&mail(&newsletter, "News.")).0, SkipReason::Bulk);
        let mut bulk_through_group = group.to_vec();
        bulk_through_group[3] = "Precedence: bulk";
        assert_eq!(skip(&mail(&bulk_through_group, "News.")).0, SkipReason::Bulk);
    }

    #[test]
    fn bulk_headers() {
        for header in [
            "Precedence: junk",
            "Precedence: bulk",
            "List-Id: <news.example.com>",
            "List-Unsubscribe: <mailto:u@example.com>",
        ] {
            let raw = mail(&[PERSON, TO, header], "News.");
            assert_eq!(skip(&raw).0, SkipReason::Bulk, "{header}");
        }
    }

    #[test]
    fn relay_by_domain_needs_auto_generated_and_a_foreign_reply_to() {
        let headers = ["From: Website <web@kestrel-partner.com>", "Reply-To: Chen Wei <chen.wei@hk-automation.hk>", TO];
        let m = inquiry(&mail(&headers, "Form content."), None);
        assert!(!m.relayed, "without Auto-Submitted the From is a person");
        assert_eq!(m.sender_email, "web@kestrel-partner.com");
        let mut headers = headers.to_vec();
        headers.push("Auto-Submitted: auto-generated");
        let m = inquiry(&mail(&headers, "Form content."), None);
        assert!(m.relayed);
        assert_eq!(m.sender_email, "chen.wei@hk-automation.hk");
        assert_eq!(m.sender_name.as_deref(), Some("Chen Wei"));
    }

    #[test]
    fn relay_local_parts() {
        for from in [
            "no-reply@forms.io",
            "donotreply@crm.example.com",
            "WordPress <wordpress@shop.example.com>",
            "notifications+42@app.example.com",
            "mailer@typeform.example",
        ] {
            let raw = mail(&[&format!("From: {from}"), "Reply-To: ana.ruiz@ferreteria-ruiz.es", TO], "Form.");
            let m = inquiry(&raw, None);
            assert!(m.relayed, "{from}");
            assert_eq!(m.sender_email, "ana.ruiz@ferreteria-ruiz.es", "{from}");
        }
        assert!(!is_relay_address("norah@example.com"));
        assert!(!is_relay_address("formosa.trading@example.com"));
    }

    #[test]
    fn no_sender_when_there_is_no_one_to_answer() {
        let raw = mail(&[TO, "Subject: hello", "Message-ID: <x1@example.com>"], "Who am I?");
        assert_eq!(skip(&raw), (SkipReason::NoSender, "x1@example.com".to_owned(), vec![]));
        let raw = mail(&["From: undisclosed-recipients:;", TO], "Group without members.");
        assert_eq!(skip(&raw).0, SkipReason::NoSender);
        // A relay with no Reply-To names nobody (every submission would land on one noreply@ lead).
        let raw = mail(&["From: noreply@forms.example.com", TO], "Name: ?");
        assert_eq!(skip(&raw).0, SkipReason::NoSender);
        // Nor does one whose Reply-To is another relay.
        let raw = mail(&["From: noreply@forms.example.com", "Reply-To: no-reply@forms.example.com", TO], "x");
        assert_eq!(skip(&raw).0, SkipReason::NoSender);
        // A Reply-To pointing back at us is not the person either.
        let raw = mail(&["From: noreply@forms.example.com", "Reply-To: sales@kestrel-systems.com", TO], "x");
        assert_eq!(skip(&raw).0, SkipReason::NoSender);
    }

    #[test]
    fn reply_to_stands_in_for_a_missing_from() {
        let raw = mail(&["Reply-To: Ana Ruiz <ana.ruiz@ferreteria-ruiz.es>", TO], "Hola.");
        let m = inquiry(&raw, None);
        assert_eq!(m.sender_email, "ana.ruiz@ferreteria-ruiz.es");
        assert!(!m.relayed);
    }

    #[test]
    fn language_falls_back_to_accept_language() {
        let raw = mail(&[PERSON, TO, "Accept-Language: es-ES, en-US;q=0.8"], "Hola.");
        assert_eq!(inquiry(&raw, None).language.as_deref(), Some("es-ES"));
        let raw = mail(&[PERSON, TO], "Hola.");
        assert_eq!(inquiry(&raw, None).language, None);
    }

    #[test]
    fn text_is_preferred_over_html_and_html_quotes_are_dropped_from_text() {
        let raw = mail(
            &[PERSON, TO, "Content-Type: multipart/alternative; boundary=alt"],
            "--alt\nContent-Type: text/plain; charset=utf-8\n\nPlain version.\n--alt\n\
             Content-Type: text/html; charset=utf-8\n\n<p>HTML version.</p>\n--alt--\n",
        );
        assert_eq!(inquiry(&raw, None).full_text, "Plain version.");
        let raw = mail(
            &[PERSON, TO, "Content-Type: text/html; charset=utf-8"],
            "<div dir=\"ltr\">Yes, 12 readers please.<div>Ana</div></div><br><div class=\"gmail_quote\">\
             <div class=\"gmail_attr\">On Mon, 9 Mar 2026 at 10:00, Kestrel Sales &lt;sales@kestrel-systems.com&gt; wrote:</div>\
             <blockquote class=\"gmail_quote\"><div>How many readers? Call +1 312 555 0177</div></blockquote></div>",
        );
        let m = inquiry(&raw, Some("US"));
        assert_eq!(m.text, "Yes, 12 readers please.\nAna");
        assert!(m.full_text.contains("How many readers?"));
        assert!(m.phones.is_empty(), "{:?}", m.phones);
    }

    #[test]
    fn an_empty_text_alternative_falls_back_to_the_html() {
        let raw = mail(
            &[PERSON, TO, "Content-Type: multipart/alternative; boundary=alt"],
            "--alt\nContent-Type: text/plain; charset=utf-8\n\n\n--alt\n\
             Content-Type: text/html; charset=utf-8\n\n<p>Necesitamos 12 lectores.</p>\n--alt--\n",
        );
        let m = inquiry(&raw, None);
        assert_eq!(m.full_text, "Necesitamos 12 lectores.");
        assert_eq!(m.text, "Necesitamos 12 lectores.");
    }

    #[test]
    fn inline_image_with_a_filename_and_attachment_disposition_is_a_file() {
        let raw = mail(
            &[PERSON, TO, "Content-Type: multipart/related; boundary=rel"],
            "--rel\nContent-Type: text/html\n\n<p>See <img src=\"cid:plan@x\"> and <img src=\"cid:pixel@x\"></p>\n--rel\n\
             Content-Type: image/png\nContent-ID: <plan@x>\nContent-Disposition: attachment; filename=\"plan.png\"\n\
             Content-Transfer-Encoding: base64\n\naGVsbG8=\n--rel\nContent-Type: image/gif\nContent-ID: <pixel@x>\n\
             Content-Transfer-Encoding: base64\n\nR0lGODlh\n--rel--\n",
        );
        let m = inquiry(&raw, None);
        assert_eq!(
            m.attachments,
            vec![Attachment {
                name: Some("plan.png".into()),
                content_type: Some("image/png".into()),
                size: Some(5),
                reference: Some(sha(b"hello")),
            }]
        );
    }

    #[test]
    fn garbage_is_unparseable_not_a_panic() {
        let ctx = MailboxContext { own_addresses: &[], default_region: None };
        assert!(matches!(parse(b"", &ctx), Err(MailError::Unparseable(_))));
        assert!(matches!(parse(b" \r\n\r\n", &ctx), Err(MailError::Unparseable(_))));
        assert_eq!(SkipReason::NoSender.as_str(), "no_sender");
        assert_eq!(
            [SkipReason::AutoReply, SkipReason::Bounce, SkipReason::Bulk, SkipReason::OwnMessage].map(|r| r.as_str()),
            ["auto_reply", "bounce", "bulk", "own_message"]
        );
    }

    /// Every prefix of every fixture, and copies with bytes overwritten by hostile values, go
    /// through the parser itself (not the `catch_unwind` guard) without a panic.
    #[test]
    fn truncated_and_garbled_fixtures_never_panic() {
        let own = own();
        let ctx = MailboxContext { own_addresses: &own, default_region: Region::parse("DE").ok() };
        let mut runs = 0;
        for (name, raw) in FIXTURES {
            for end in 0..=raw.len() {
                check_no_panic(name, &raw[..end], &ctx);
                runs += 1;
            }
            for (k, evil) in [0u8, 0xff, b'<', b'\n', b'=', b'-', 0x1b, 0xc3].iter().enumerate() {
                let mut garbled = raw.to_vec();
                for i in (k..garbled.len()).step_by(13) {
                    garbled[i] = *evil;
                }
                check_no_panic(name, &garbled, &ctx);
                let mut reversed = raw.to_vec();
                reversed.reverse();
                check_no_panic(name, &reversed, &ctx);
                runs += 2;
            }
        }
        assert!(runs > 10_000);
    }

    fn check_no_panic(name: &str, raw: &[u8], ctx: &MailboxContext<'_>) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse_inner(raw, ctx)));
        match result {
            Err(_) => panic!("{name}: panicked on {} bytes: {:?}", raw.len(), String::from_utf8_lossy(raw)),
            Ok(Ok(Verdict::Inquiry(m))) => assert!(!m.message_id.is_empty() && !m.sender_email.is_empty(), "{name}"),
            Ok(Ok(Verdict::Skip { message_id, .. })) => assert!(!message_id.is_empty(), "{name}"),
            Ok(Err(MailError::Unparseable(why))) => assert!(!why.is_empty()),
        }
    }

    /// Hostile shapes that would be quadratic in a naive scanner finish quickly.
    #[test]
    fn large_pathological_bodies_stay_linear() {
        let started = std::time::Instant::now();
        let one_line = "x 1234567 ".repeat(30_000);
        let raw = mail(&[PERSON, TO], &one_line);
        assert!(inquiry(&raw, Some("DE")).phones.len() <= MAX_PHONES);
        let styles = "<style>p{}</style>".repeat(20_000) + &"<head><body>".repeat(10_000);
        let raw = mail(&[PERSON, TO, "Content-Type: text/html"], &styles);
        assert_eq!(inquiry(&raw, None).full_text, "");
        let cids = "<img src=\"cid:a\">".repeat(20_000);
        let parts: String = (0..300)
            .map(|i| format!("--b\nContent-Type: image/gif\nContent-ID: <p{i}@x>\nContent-Transfer-Encoding: base64\n\nR0lGODlh\n"))
            .collect();
        let body = format!("--b\nContent-Type: text/html\n\n{cids}\n{parts}--b--\n");
        let raw = mail(&[PERSON, TO, "Content-Type: multipart/related; boundary=b"], &body);
        assert_eq!(inquiry(&raw, None).attachments.len(), 300, "none of them is referenced by the HTML");
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
    }

    // --- The new part of a reply ---------------------------------------------------------------

    #[test]
    fn attribution_lines_in_five_languages_end_the_new_part() {
        for header in [
            "On Mon, 9 Mar 2026 at 10:00, Kestrel Sales <sales@kestrel-systems.com> wrote:",
            "Am 09.03.2026 um 10:00 schrieb Kestrel Sales <sales@kestrel-systems.com>:",
            "Le lun. 9 mars 2026 à 10:00, Kestrel Sales <sales@kestrel-systems.com> a écrit :",
            "El lun, 9 mar 2026 a las 10:00, Kestrel Sales (<sales@kestrel-systems.com>) escribió:",
            "9 марта 2026 г., в 10:00, Kestrel Sales <sales@kestrel-systems.com> написал(а):",
            "09.03.2026 10:00, Мария Лопес пишет:",
        ] {
            let text = format!("Yes, please send it.\n\n{header}\nHow many doors do you have?\n\nMaria");
            assert_eq!(new_part(&text, false), "Yes, please send it.", "{header}");
        }
        let text = "On Monday we spoke about the price, and my boss wrote:\nOK for us.";
        assert_eq!(new_part(text, false), text, "no date or address: an ordinary sentence");
        let text = "Я уже написал вам 2 раза:\nнужны 4 терминала.";
        assert_eq!(new_part(text, false), text, "a Russian sentence with 'написал' is not an attribution");
        // Gmail in Russian, Yandex, Mail.ru: no verb, but an address right above the quote.
        for header in [
            "пн, 9 мар. 2026 г. в 10:00, Kestrel Sales <sales@kestrel-systems.com>:",
            "09.03.2026, 10:00, \"Kestrel Sales\" <sales@kestrel-systems.com>:",
            "Il giorno lun 9 mar 2026 alle ore 10:00 Kestrel Sales <sales@kestrel-systems.com> ha scritto:",
        ] {
            let text = format!("Да, присылайте.\n\n{header}\n> Сколько дверей?");
            assert_eq!(new_part(&text, false), "Да, присылайте.", "{header}");
        }
    }

    #[test]
    fn outlook_blocks_end_the_new_part() {
        for block in [
            "-----Original Message-----\nFrom: Maria Lopez\nSent: Monday, March 9, 2026 10:00 AM",
            "-----Ursprüngliche Nachricht-----\nVon: Maria Lopez",
            "________________________________\nFrom: Maria Lopez <maria.lopez@kestrel-systems.com>\nSent: Monday, March 9, 2026 10:00\nTo: Ana",
            "Von: Maria Lopez <maria.lopez@kestrel-systems.com>\nGesendet: Montag, 9. März 2026 10:00\nAn: Ana",
            "*From:* Maria Lopez\n*Sent:* Monday, March 9, 2026 10:00 AM",
            "От: Мария Лопес\nОтправлено: 9 марта 2026 г. 10:00",
        ] {
            let text = format!("Yes, please send it.\n\nAna\n{block}\nSubject: Quote\n\nHow many doors?");
            assert_eq!(new_part(&text, false), "Yes, please send it.\n\nAna", "{block}");
        }
        let text = "From: the warehouse team\nWe need 4 readers.";
        assert_eq!(new_part(text, false), text, "a From: line without Sent: is the person's text");
    }

    #[test]
    fn quoted_lines_and_signature_are_removed() {
        let text = "> earlier\nMy answer.\n> more\nSecond answer.\n-- \nAna Ruiz\nTel. 912 345 678";
        assert_eq!(new_part(text, false), "My answer.\nSecond answer.");
        assert_eq!(new_part(text, true), "My answer.\nSecond answer.\nAna Ruiz\nTel. 912 345 678");
    }

    // --- Phones ----------------------------------------------------------------------------------

    fn phones(text: &str, region: &str) -> Vec<String> {
        find_phones(text, Region::parse(region).ok())
    }

    #[test]
    fn phones_in_many_spellings() {
        assert_eq!(phones("Tel.: +49 (0) 89 4521 3370", "DE"), vec!["+498945213370"]);
        assert_eq!(phones("Telefon 030/12345678", "DE"), vec!["+493012345678"]);
        assert_eq!(phones("тел 89123456789", "RU"), vec!["+79123456789"], "a cue admits a bare run");
        assert_eq!(phones("т. +7 (912) 345-67-89, +7 912 345 67 89", "RU"), vec!["+79123456789"], "deduplicated");
        assert_eq!(phones("call (415) 555-0132 or 415.555.0133", "US"), vec!["+14155550132", "+14155550133"]);
        assert_eq!(phones("Mobile:\u{a0}+44\u{a0}7911\u{a0}123456", "US"), vec!["+447911123456"]);
    }

    #[test]
    fn not_phones() {
        for text in [
            "Delivery on 2026-03-04 10:15",
            "Lieferung am 04.03.2026",
            "Due 04/03/2026",
            "IBAN: DE89 3704 0044 0532 0130 00",
            "Order #4500123456",
            "PO 4500123456",
            "10115 Berlin",
            "Invoice 2026-0042-1234",
            "Fax: +49 30 1234567",
            "Ticket A12345678",
            "tracking 1Z999AA10123456784",
            "Total 1 234 567.89 EUR",
            "between 12:30 and 14:45",
        ] {
            assert_eq!(phones(text, "DE"), Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn bare_runs_need_a_cue() {
        assert_eq!(phones("Kundennummer 4500123456", "DE"), Vec::<String>::new());
        assert_eq!(phones("Hotel 4500123456", "DE"), Vec::<String>::new(), "`hotel` is not `tel`");
        assert_eq!(phones("Ref 4500123456", "DE"), Vec::<String>::new());
        assert_eq!(phones("Handy 01712345678", "DE"), vec!["+491712345678"]);
    }

    // --- HTML ------------------------------------------------------------------------------------

    #[test]
    fn html_conversion_keeps_structure_and_drops_what_is_not_text() {
        let html = "<html><head><title>T</title><style>p{color:red}</style></head><body>\
                    <!-- comment --><div>One</div><div>Two &amp; three</div>\
                    <ul><li>first</li><li>second</li></ul><p>a &lt; b</p>\
                    <script>if (a<b) document.write('<div>x</div>')</script>\
                    <img src=\"https://t.example.com/o.gif\" width=1 height=1>\
                    <table><tr><td>Name</td><td>Ana</td></tr><tr><td>Phone</td><td>+34 912 345 678</td></tr></table>\
                    <blockquote>quoted</blockquote></body></html>";
        let text = html_to_text(html);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        assert!(lines.contains(&"One") && lines.contains(&"Two & three"), "blocks on their own lines: {text:?}");
        assert!(lines.iter().any(|l| l.contains("first")) && lines.iter().any(|l| l.contains("second")));
        assert!(lines.contains(&"a < b"));
        assert!(lines.iter().any(|l| l.contains("Name") && l.contains("Ana")), "a table row stays one line: {text:?}");
        for hidden in ["color:red", "document.write", "o.gif", "comment", "<"] {
            assert!(!text.contains(hidden) || hidden == "<" && text.contains("a < b"), "{hidden:?} leaked: {text:?}");
        }
        assert!(lines.iter().any(|l| l.starts_with('>') && l.contains("quoted")), "quotes are marked: {text:?}");
        assert!(!new_part(&text, true).contains("quoted"), "and cut from the new part");
    }
}
