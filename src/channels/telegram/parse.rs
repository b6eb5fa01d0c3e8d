//! Turns one raw Telegram Bot API `Update` (as received by webhook or long polling) into a [`TelegramEvent`].
//!
//! Pure: no I/O, no clock. Deserialization is done with teloxide's typed Bot API structures; anything teloxide cannot
//! read but that still looks like an update becomes [`TelegramEvent::Ignored`] with reason `"unsupported"`.

use serde::Deserialize;
use serde_json::{Map, Value};
use teloxide::types::{
    ChatMemberKind, ChatMemberUpdated, FileMeta, MediaKind, Message, MessageEntity, MessageEntityKind,
    MessageEntityRef, MessageKind, PhotoSize, Sticker, Update, UpdateKind, User,
};

use crate::domain::Attachment;

/// The sender of a message or callback, as Telegram describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TgUser {
    pub id: i64,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub language: Option<String>,
}

impl TgUser {
    /// "First Last" (trimmed; first name alone when no last name)
    pub fn full_name(&self) -> String {
        let first = self.first_name.trim();
        match self.last_name.as_deref().map(str::trim) {
            Some(last) if !last.is_empty() => format!("{first} {last}").trim().to_owned(),
            _ => first.to_owned(),
        }
    }

    fn from_teloxide(user: &User) -> Option<Self> {
        Some(TgUser {
            id: i64::try_from(user.id.0).ok()?,
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            username: user.username.clone(),
            language: user.language_code.clone(),
        })
    }
}

/// A message a person wrote to the bot in a private chat.
#[derive(Debug, Clone, PartialEq)]
pub struct ProspectMessage {
    pub chat_id: i64,
    pub message_id: i32,
    pub from: TgUser,
    /// The text, or the caption of a media message ("" when neither).
    pub text: String,
    /// `/start <payload>` (also `/start@botname payload`): Some(payload), Some("") for a bare /start; None otherwise.
    pub start_payload: Option<String>,
    /// Any other bot command at the start of the text: (command without '/' and without @bot, rest trimmed), e.g.
    /// ("lead", "01ab"). The command name is lower-cased (ASCII).
    pub command: Option<(String, String)>,
    /// A contact the sender shared that is their own (`contact.user_id == from.id`): the phone exactly as sent
    /// (Telegram usually omits '+').
    pub shared_phone: Option<String>,
    /// Emails and phone numbers Telegram marked in the text/caption entities (`email`, `phone_number`), cut with
    /// UTF-16 offsets (emoji and Cyrillic before them must not shift the cut). In order of appearance.
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    /// Photos (largest size only), documents, voice, video notes, videos, audio (and animations, stickers): name
    /// (file_name when given), content_type (mime_type when given; "image/jpeg" for photos; "audio/ogg" for voice;
    /// "video/mp4" for video notes), size (file_size), reference = "tg:<file_id>".
    pub attachments: Vec<Attachment>,
    /// The message this one replies to, if any.
    pub reply_to_message_id: Option<i32>,
    /// Unix seconds (`date`, or `edit_date` for edits).
    pub date: i64,
}

/// What one update means for lead intake.
#[derive(Debug, Clone, PartialEq)]
pub enum TelegramEvent {
    /// Someone wrote to the bot in a private chat.
    Message(Box<ProspectMessage>),
    /// Someone edited an earlier private message.
    Edited(Box<ProspectMessage>),
    /// The user blocked the bot (`my_chat_member` in a private chat with new status `kicked`).
    Blocked { user_id: i64 },
    /// A button pressed on one of our messages.
    Callback { id: String, from: TgUser, chat_id: Option<i64>, message_id: Option<i32>, data: String },
    /// Not a conversation with a person: groups, supergroups, channels, messages from bots, service messages (a
    /// private message with neither text, caption, media nor contact), unblocks, and update kinds we do not handle.
    /// `reason` is a short snake_case word for the record: "group", "channel", "bot", "service", "member_update",
    /// "unsupported".
    Ignored { reason: &'static str },
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not a Telegram update: {0}")]
    Malformed(String),
}

const GROUP: TelegramEvent = TelegramEvent::Ignored { reason: "group" };
const CHANNEL: TelegramEvent = TelegramEvent::Ignored { reason: "channel" };
const MEMBER_UPDATE: TelegramEvent = TelegramEvent::Ignored { reason: "member_update" };
const UNSUPPORTED: TelegramEvent = TelegramEvent::Ignored { reason: "unsupported" };

/// Parses one raw update. Returns the update_id with the event; `Err` only when the JSON is not an update at all (no
/// integer `update_id`, or teloxide cannot read it AND it has no recognisable kind). Unknown update kinds are
/// `Ignored { reason: "unsupported" }`, never errors.
pub fn parse_update(raw: &Value) -> Result<(i64, TelegramEvent), ParseError> {
    let Some(object) = raw.as_object() else {
        return Err(ParseError::Malformed("expected a JSON object".to_owned()));
    };
    let Some(update_id) = object.get("update_id").and_then(Value::as_i64) else {
        return Err(ParseError::Malformed("no integer update_id".to_owned()));
    };
    let Some((key, payload)) = HANDLED_KINDS.iter().find_map(|key| object.get_key_value(*key)) else {
        // Every Bot API update kind is an object next to `update_id`; without one this is not an update.
        return if object.iter().any(|(key, value)| key != "update_id" && value.is_object()) {
            Ok((update_id, UNSUPPORTED))
        } else {
            Err(ParseError::Malformed("no update kind".to_owned()))
        };
    };
    // Only the kind we handle goes to teloxide, with a dummy id: teloxide keeps update ids as u32 (ours was read
    // above, so any integer works), reads only the first kind key it meets, and some of its readers of kinds we do not
    // handle panic on unexpected input (`message_reaction` / `poll_answer` with neither user nor chat).
    let mut payload = payload.clone();
    fill_optional_mime_types(&mut payload, 0);
    let update = Value::Object(Map::from_iter([("update_id".to_owned(), Value::from(0)), (key.clone(), payload)]));
    // Deserialize from `&Value`, not `serde_json::from_value(Value)`: teloxide-core 0.13's `UpdateKind` reader takes
    // its key as a borrowed `&str`, which an owned `Value` cannot lend, and then yields `UpdateKind::Error` for every
    // update. A borrowed `&Value` lends its strings.
    match Update::deserialize(&update) {
        Ok(update) if !matches!(update.kind, UpdateKind::Error(_)) => Ok((update_id, event_of(update.kind))),
        // A shape teloxide does not expect (a newer Bot API, a missing required field): the caller records it.
        _ => Ok((update_id, UNSUPPORTED)),
    }
}

/// The update kinds [`parse_update`] reads with teloxide; every other kind is `Ignored { reason: "unsupported" }`.
const HANDLED_KINDS: [&str; 7] = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "my_chat_member",
    "chat_member",
    "callback_query",
];

/// The Bot API marks `mime_type` optional on voice, audio, video and animation, but teloxide-core 0.13 requires the
/// key (it defaults only the document's); an explicit `null` reads as `None`. Walks nested messages (replies, pinned
/// messages, callback messages) too; `depth` bounds the walk.
fn fill_optional_mime_types(value: &mut Value, depth: usize) {
    if depth > 64 {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if let ("voice" | "audio" | "video" | "animation", Value::Object(file)) = (key.as_str(), &mut *child)
                    && !file.contains_key("mime_type")
                {
                    file.insert("mime_type".to_owned(), Value::Null);
                }
                fill_optional_mime_types(child, depth + 1);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| fill_optional_mime_types(item, depth + 1)),
        _ => {}
    }
}

/// A deep-link payload like `src-google_spring2026` → (Some("google"), Some("spring2026")); `src-facebook` →
/// (Some("facebook"), None); anything else → (None, None). Payloads are limited by Telegram to [A-Za-z0-9_-], up to
/// 64 chars.
pub fn deep_link_source(payload: &str) -> (Option<String>, Option<String>) {
    let payload = payload.trim();
    let valid = payload.len() <= 64 && payload.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let Some(rest) = payload.strip_prefix("src-").filter(|_| valid) else {
        return (None, None);
    };
    let (source, campaign) = rest.split_once('_').unwrap_or((rest, ""));
    if source.is_empty() {
        return (None, None);
    }
    (Some(source.to_owned()), Some(campaign.to_owned()).filter(|c| !c.is_empty()))
}

fn event_of(kind: UpdateKind) -> TelegramEvent {
    match kind {
        UpdateKind::Message(message) => message_event(&message, false)
            .map_or_else(|reason| TelegramEvent::Ignored { reason }, |m| TelegramEvent::Message(Box::new(m))),
        UpdateKind::EditedMessage(message) => message_event(&message, true)
            .map_or_else(|reason| TelegramEvent::Ignored { reason }, |m| TelegramEvent::Edited(Box::new(m))),
        UpdateKind::ChannelPost(_) | UpdateKind::EditedChannelPost(_) => CHANNEL,
        UpdateKind::MyChatMember(update) => my_chat_member_event(&update),
        UpdateKind::ChatMember(_) => MEMBER_UPDATE,
        UpdateKind::CallbackQuery(query) => {
            let Some(from) = TgUser::from_teloxide(&query.from) else { return UNSUPPORTED };
            TelegramEvent::Callback {
                id: query.id.0,
                from,
                chat_id: query.message.as_ref().map(|m| m.chat().id.0),
                message_id: query.message.as_ref().map(|m| m.id().0),
                data: query.data.unwrap_or_default(),
            }
        }
        // Business messages, reactions, inline mode, payments, polls, boosts, join requests, …
        _ => UNSUPPORTED,
    }
}

fn my_chat_member_event(update: &ChatMemberUpdated) -> TelegramEvent {
    if update.chat.is_group() || update.chat.is_supergroup() {
        return GROUP;
    }
    if update.chat.is_channel() {
        return CHANNEL;
    }
    if matches!(update.new_chat_member.kind, ChatMemberKind::Banned(_)) {
        return match i64::try_from(update.from.id.0) {
            Ok(user_id) => TelegramEvent::Blocked { user_id },
            Err(_) => UNSUPPORTED,
        };
    }
    MEMBER_UPDATE
}

/// The prospect message in `message`, or the `Ignored` reason why there is none.
fn message_event(message: &Message, edited: bool) -> Result<ProspectMessage, &'static str> {
    if message.chat.is_group() || message.chat.is_supergroup() {
        return Err("group");
    }
    if message.chat.is_channel() {
        return Err("channel");
    }
    if !message.chat.is_private() {
        return Err("unsupported");
    }
    let Some(user) = message.from.as_ref() else { return Err("unsupported") };
    if user.is_bot {
        return Err("bot");
    }
    let MessageKind::Common(common) = &message.kind else { return Err("service") };
    match &common.media_kind {
        MediaKind::Migration(_) => return Err("service"),
        MediaKind::Text(text) if text.text.is_empty() => return Err("service"),
        _ => {}
    }
    let from = TgUser::from_teloxide(user).ok_or("unsupported")?;

    let text = message.text().or_else(|| message.caption()).unwrap_or_default();
    let (start_payload, command) = match parse_command(text) {
        Some((name, rest)) if name == "start" => (Some(rest), None),
        other => (None, other),
    };
    let shared_phone = message
        .contact()
        .filter(|contact| contact.user_id.is_some_and(|id| id == user.id))
        .map(|contact| contact.phone_number.clone());

    let entities = message.entities().or_else(|| message.caption_entities()).unwrap_or_default();
    let (emails, phones) = marked_entities(text, entities);

    let date = if edited { message.edit_date().unwrap_or(&message.date) } else { &message.date }.timestamp();

    Ok(ProspectMessage {
        chat_id: message.chat.id.0,
        message_id: message.id.0,
        from,
        text: text.to_owned(),
        start_payload,
        command,
        shared_phone,
        emails,
        phones,
        attachments: attachments(&common.media_kind),
        reply_to_message_id: message.reply_to_message().map(|reply| reply.id.0),
        date,
    })
}

/// A bot command at the start of `text`: `/name[@bot] rest` → (name lower-cased, rest trimmed). Command names are
/// what Telegram allows: 1–32 of [A-Za-z0-9_].
fn parse_command(text: &str) -> Option<(String, String)> {
    let after_slash = text.trim_start().strip_prefix('/')?;
    let (token, rest) = after_slash.split_once(char::is_whitespace).unwrap_or((after_slash, ""));
    let name = token.split_once('@').map_or(token, |(name, _bot)| name);
    let valid = !name.is_empty() && name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then(|| (name.to_ascii_lowercase(), rest.trim().to_owned()))
}

/// The texts of the `email` and `phone_number` entities of `text`, in order, with UTF-16 offsets converted by
/// teloxide's [`MessageEntityRef::parse`] (what `Message::parse_entities` / `parse_caption_entities` use). Entities
/// whose offsets are not on UTF-16 character boundaries of `text` are dropped first: teloxide asserts on those.
fn marked_entities(text: &str, entities: &[MessageEntity]) -> (Vec<String>, Vec<String>) {
    // UTF-16 offsets at which a character starts, plus the end of the text; ascending.
    let boundaries: Vec<usize> = std::iter::once(0)
        .chain(text.chars().scan(0usize, |at, c| {
            *at += c.len_utf16();
            Some(*at)
        }))
        .collect();
    let on_boundary = |offset: usize| boundaries.binary_search(&offset).is_ok();
    let wanted: Vec<MessageEntity> = entities
        .iter()
        .filter(|e| matches!(e.kind, MessageEntityKind::Email | MessageEntityKind::PhoneNumber))
        .filter(|e| e.length > 0 && on_boundary(e.offset) && e.offset.checked_add(e.length).is_some_and(on_boundary))
        .cloned()
        .collect();
    let (mut emails, mut phones) = (Vec::new(), Vec::new());
    for entity in MessageEntityRef::parse(text, &wanted) {
        // `get`, not `entity.text()`: no slicing panic even if a conversion were ever off.
        let Some(cut) = text.get(entity.range()) else { continue };
        match entity.kind() {
            MessageEntityKind::Email => emails.push(cut.to_owned()),
            MessageEntityKind::PhoneNumber => phones.push(cut.to_owned()),
            _ => {}
        }
    }
    (emails, phones)
}

/// The files of a message. Telegram sends at most one file kind per message; a photo comes in several sizes, of which
/// only the largest is kept. The content type is the `mime_type` Telegram gave, else the format Telegram always uses
/// for that kind (JPEG photos, OGG/Opus voice, MP4 video notes, WebP/TGS/WebM stickers), else none.
fn attachments(media: &MediaKind) -> Vec<Attachment> {
    let attachment = match media {
        MediaKind::Photo(photo) => largest(&photo.photo).map(|size| file(&size.file, None, Some("image/jpeg".into()))),
        MediaKind::Document(doc) => {
            let d = &doc.document;
            Some(file(&d.file, d.file_name.as_deref(), d.mime_type.as_ref().map(ToString::to_string)))
        }
        MediaKind::Voice(voice) => {
            let v = &voice.voice;
            let content_type = v.mime_type.as_ref().map_or_else(|| "audio/ogg".to_owned(), ToString::to_string);
            Some(file(&v.file, None, Some(content_type)))
        }
        MediaKind::VideoNote(note) => Some(file(&note.video_note.file, None, Some("video/mp4".into()))),
        MediaKind::Video(video) => {
            let v = &video.video;
            Some(file(&v.file, v.file_name.as_deref(), v.mime_type.as_ref().map(ToString::to_string)))
        }
        MediaKind::Audio(audio) => {
            let a = &audio.audio;
            Some(file(&a.file, a.file_name.as_deref(), a.mime_type.as_ref().map(ToString::to_string)))
        }
        MediaKind::Animation(animation) => {
            let a = &animation.animation;
            Some(file(&a.file, a.file_name.as_deref(), a.mime_type.as_ref().map(ToString::to_string)))
        }
        MediaKind::Sticker(sticker) => {
            let s = &sticker.sticker;
            Some(file(&s.file, None, Some(sticker_type(s).into())))
        }
        _ => None,
    };
    attachment.into_iter().collect()
}

fn largest(sizes: &[PhotoSize]) -> Option<&PhotoSize> {
    sizes.iter().max_by_key(|size| (u64::from(size.width) * u64::from(size.height), known_size(size.file.size)))
}

fn sticker_type(sticker: &Sticker) -> &'static str {
    if sticker.flags.is_video {
        "video/webm"
    } else if sticker.flags.is_animated {
        "application/x-tgsticker"
    } else {
        "image/webp"
    }
}

/// teloxide stands `u32::MAX` in for a missing `file_size`.
fn known_size(size: u32) -> Option<u64> {
    (size != u32::MAX).then_some(u64::from(size))
}

fn file(meta: &FileMeta, name: Option<&str>, content_type: Option<String>) -> Attachment {
    Attachment {
        name: name.map(str::to_owned),
        content_type,
        size: known_size(meta.size),
        reference: Some(format!("tg:{}", meta.id.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    macro_rules! fixture {
        ($name:literal) => {
            serde_json::from_str::<Value>(include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/telegram/",
                $name,
                ".json"
            )))
            .expect(concat!("fixture ", $name, " is JSON"))
        };
    }

    fn all_fixtures() -> Vec<(&'static str, Value)> {
        vec![
            ("private_text", fixture!("private_text")),
            ("start_deeplink", fixture!("start_deeplink")),
            ("start_bare", fixture!("start_bare")),
            ("contact_own", fixture!("contact_own")),
            ("contact_other", fixture!("contact_other")),
            ("photo_caption", fixture!("photo_caption")),
            ("document", fixture!("document")),
            ("voice", fixture!("voice")),
            ("video_note", fixture!("video_note")),
            ("video", fixture!("video")),
            ("audio", fixture!("audio")),
            ("edited", fixture!("edited")),
            ("group_message", fixture!("group_message")),
            ("supergroup_message", fixture!("supergroup_message")),
            ("channel_post", fixture!("channel_post")),
            ("bot_sender", fixture!("bot_sender")),
            ("blocked", fixture!("blocked")),
            ("unblocked", fixture!("unblocked")),
            ("callback", fixture!("callback")),
            ("reply", fixture!("reply")),
            ("command", fixture!("command")),
            ("unknown_kind", fixture!("unknown_kind")),
            ("malformed", fixture!("malformed")),
        ]
    }

    fn ivan() -> TgUser {
        TgUser {
            id: 123456789,
            first_name: "Иван".into(),
            last_name: Some("Петров".into()),
            username: Some("ivan_petrov".into()),
            language: Some("ru".into()),
        }
    }

    fn maria() -> TgUser {
        TgUser {
            id: 987654321,
            first_name: "Maria".into(),
            last_name: None,
            username: Some("maria_k".into()),
            language: Some("en".into()),
        }
    }

    /// A message from Ivan with every optional field empty; tests override what the fixture carries.
    fn base(message_id: i32, text: &str) -> ProspectMessage {
        ProspectMessage {
            chat_id: 123456789,
            message_id,
            from: ivan(),
            text: text.into(),
            start_payload: None,
            command: None,
            shared_phone: None,
            emails: vec![],
            phones: vec![],
            attachments: vec![],
            reply_to_message_id: None,
            date: 1774000000,
        }
    }

    fn parse(raw: &Value) -> (i64, TelegramEvent) {
        parse_update(raw).expect("an update")
    }

    fn message(raw: &Value) -> ProspectMessage {
        match parse(raw).1 {
            TelegramEvent::Message(m) => *m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn ignored(raw: &Value) -> &'static str {
        match parse(raw).1 {
            TelegramEvent::Ignored { reason } => reason,
            other => panic!("expected Ignored, got {other:?}"),
        }
    }

    fn utf16_offset(text: &str, sub: &str) -> usize {
        let at = text.find(sub).expect("substring present");
        text[..at].encode_utf16().count()
    }

    /// A private text message from Ivan with the given entities.
    fn private_text(text: &str, entities: Value) -> Value {
        json!({
            "update_id": 1,
            "message": {
                "message_id": 9, "date": 1774000000, "text": text, "entities": entities,
                "from": {"id": 123456789, "is_bot": false, "first_name": "Иван"},
                "chat": {"id": 123456789, "first_name": "Иван", "type": "private"}
            }
        })
    }

    #[test]
    fn private_text_with_entities_after_cyrillic_and_emoji() {
        let raw = fixture!("private_text");
        assert_eq!(parse(&raw).0, 870001001);
        let text = "Здравствуйте! 👋🏻 Интересует доставка 🚚📦 в Казань. Почта: ivan.petrov@example.com, телефон +7 (912) \
                    345-67-89 😊";
        let expected = ProspectMessage {
            emails: vec!["ivan.petrov@example.com".into()],
            phones: vec!["+7 (912) 345-67-89".into()],
            ..base(101, text)
        };
        assert_eq!(message(&raw), expected);
        // The fixture's offsets really are UTF-16 ones, different from char and byte offsets.
        let email_offset = raw["message"]["entities"][1]["offset"].as_u64().expect("offset");
        assert_eq!(email_offset as usize, utf16_offset(text, "ivan.petrov@example.com"));
        let chars_before = text[..text.find("ivan").expect("email")].chars().count();
        assert_ne!(email_offset as usize, chars_before);
    }

    #[test]
    fn start_with_deep_link_payload() {
        let raw = fixture!("start_deeplink");
        assert_eq!(parse(&raw).0, 870001002);
        let expected = ProspectMessage {
            start_payload: Some("src-google_spring2026".into()),
            ..base(102, "/start src-google_spring2026")
        };
        assert_eq!(message(&raw), expected);
        assert_eq!(deep_link_source("src-google_spring2026"), (Some("google".into()), Some("spring2026".into())));
    }

    #[test]
    fn bare_start() {
        let raw = fixture!("start_bare");
        assert_eq!(parse(&raw).0, 870001003);
        let expected = ProspectMessage {
            chat_id: 987654321,
            from: maria(),
            start_payload: Some(String::new()),
            ..base(103, "/start")
        };
        assert_eq!(message(&raw), expected);
    }

    #[test]
    fn start_addressed_to_the_bot_and_other_command_shapes() {
        type Case<'a> = (&'a str, Option<&'a str>, Option<(&'a str, &'a str)>);
        let cases: [Case; 10] = [
            ("/start@acme_leads_bot src-facebook", Some("src-facebook"), None),
            ("/start@acme_leads_bot", Some(""), None),
            ("/start   src-x  ", Some("src-x"), None),
            ("/lead@acme_leads_bot 01ab", None, Some(("lead", "01ab"))),
            ("/Lead   01ab  note ", None, Some(("lead", "01ab  note"))),
            ("/help", None, Some(("help", ""))),
            ("/ hello", None, None),
            ("/path/to/file", None, None),
            ("hello /start", None, None),
            ("//start", None, None),
        ];
        for (text, start, command) in cases {
            let m = message(&private_text(text, json!([])));
            assert_eq!(m.start_payload.as_deref(), start, "{text}");
            assert_eq!(m.command, command.map(|(c, r)| (c.to_owned(), r.to_owned())), "{text}");
            assert_eq!(m.text, text);
        }
    }

    #[test]
    fn contact_of_the_sender_is_their_phone() {
        let raw = fixture!("contact_own");
        assert_eq!(parse(&raw).0, 870001004);
        let expected = ProspectMessage { shared_phone: Some("79123456789".into()), ..base(104, "") };
        assert_eq!(message(&raw), expected);
    }

    #[test]
    fn contact_of_someone_else_is_not_their_phone() {
        let raw = fixture!("contact_other");
        assert_eq!(parse(&raw).0, 870001005);
        assert_eq!(message(&raw), base(105, ""));
    }

    #[test]
    fn photo_keeps_largest_size_and_caption_entities() {
        let raw = fixture!("photo_caption");
        assert_eq!(parse(&raw).0, 870001006);
        let expected = ProspectMessage {
            chat_id: 987654321,
            from: maria(),
            emails: vec!["maria.k@example.org".into()],
            attachments: vec![Attachment {
                name: None,
                content_type: Some("image/jpeg".into()),
                size: Some(187201),
                reference: Some("tg:AgACAgIAAxkBAAIBZ2abc_large".into()),
            }],
            ..base(106, "Вот фото объекта 🏠 — смета на maria.k@example.org")
        };
        assert_eq!(message(&raw), expected);
    }

    #[test]
    fn photo_sizes_in_any_order_keep_the_largest() {
        let mut raw = fixture!("photo_caption");
        let sizes = raw["message"]["photo"].as_array_mut().expect("photo sizes");
        sizes.reverse();
        sizes.rotate_left(1);
        let attachment = message(&raw).attachments.pop().expect("photo");
        assert_eq!(attachment.reference.as_deref(), Some("tg:AgACAgIAAxkBAAIBZ2abc_large"));
    }

    #[test]
    fn pdf_document() {
        let raw = fixture!("document");
        assert_eq!(parse(&raw).0, 870001007);
        let expected = ProspectMessage {
            attachments: vec![Attachment {
                name: Some("ТЗ_проект.pdf".into()),
                content_type: Some("application/pdf".into()),
                size: Some(245760),
                reference: Some("tg:BQACAgIAAxkBAAIBaGdoc_pdf".into()),
            }],
            ..base(107, "")
        };
        assert_eq!(message(&raw), expected);
    }

    #[test]
    fn document_without_name_type_or_size() {
        let mut raw = fixture!("document");
        let document = raw["message"]["document"].as_object_mut().expect("document");
        document.remove("file_name");
        document.remove("mime_type");
        document.remove("file_size");
        let expected = Attachment {
            name: None,
            content_type: None,
            size: None,
            reference: Some("tg:BQACAgIAAxkBAAIBaGdoc_pdf".into()),
        };
        assert_eq!(message(&raw).attachments, vec![expected]);
    }

    #[test]
    fn voice_note() {
        let raw = fixture!("voice");
        assert_eq!(parse(&raw).0, 870001008);
        let voice = Attachment {
            name: None,
            content_type: Some("audio/ogg".into()),
            size: Some(23456),
            reference: Some("tg:AwACAgIAAxkBAAIBaWvoice".into()),
        };
        assert_eq!(message(&raw), ProspectMessage { attachments: vec![voice.clone()], ..base(108, "") });

        // Without a mime_type it is still Telegram's OGG/Opus.
        let mut raw = raw;
        raw["message"]["voice"].as_object_mut().expect("voice").remove("mime_type");
        assert_eq!(message(&raw).attachments, vec![voice]);
    }

    #[test]
    fn video_note() {
        let raw = fixture!("video_note");
        assert_eq!(parse(&raw).0, 870001009);
        let expected = ProspectMessage {
            attachments: vec![Attachment {
                name: None,
                content_type: Some("video/mp4".into()),
                size: Some(512345),
                reference: Some("tg:DQACAgIAAxkBAAIBavideonote".into()),
            }],
            ..base(109, "")
        };
        assert_eq!(message(&raw), expected);
    }

    #[test]
    fn video_with_caption() {
        let raw = fixture!("video");
        assert_eq!(parse(&raw).0, 870001010);
        let expected = ProspectMessage {
            attachments: vec![Attachment {
                name: Some("объект.mp4".into()),
                content_type: Some("video/mp4".into()),
                size: Some(8123456),
                reference: Some("tg:BAACAgIAAxkBAAIBa2video".into()),
            }],
            ..base(110, "Видео с объекта")
        };
        assert_eq!(message(&raw), expected);
    }

    #[test]
    fn audio_file() {
        let raw = fixture!("audio");
        assert_eq!(parse(&raw).0, 870001011);
        let expected = ProspectMessage {
            attachments: vec![Attachment {
                name: Some("call-recording.mp3".into()),
                content_type: Some("audio/mpeg".into()),
                size: Some(2960000),
                reference: Some("tg:CQACAgIAAxkBAAIBbGaudio".into()),
            }],
            ..base(111, "")
        };
        assert_eq!(message(&raw), expected);
    }

    #[test]
    fn edited_message_uses_edit_date() {
        let raw = fixture!("edited");
        let (update_id, event) = parse(&raw);
        assert_eq!(update_id, 870001012);
        let expected = ProspectMessage {
            phones: vec!["+7 912 000-11-22".into()],
            date: 1774000420,
            ..base(101, "Исправление: звоните лучше +7 912 000-11-22 📞")
        };
        assert_eq!(event, TelegramEvent::Edited(Box::new(expected)));
    }

    #[test]
    fn groups_channels_and_bots_are_ignored() {
        for (raw, update_id, reason) in [
            (fixture!("group_message"), 870001013, "group"),
            (fixture!("supergroup_message"), 870001014, "group"),
            (fixture!("channel_post"), 870001015, "channel"),
            (fixture!("bot_sender"), 870001016, "bot"),
        ] {
            assert_eq!(parse(&raw), (update_id, TelegramEvent::Ignored { reason }));
        }
    }

    #[test]
    fn edits_outside_private_chats_are_ignored() {
        let mut group = fixture!("group_message");
        let mut message = group["message"].take();
        message["edit_date"] = json!(1774000500);
        group = json!({"update_id": 5, "edited_message": message.clone()});
        assert_eq!(ignored(&group), "group");
        let mut post = fixture!("channel_post");
        let mut channel_message = post["channel_post"].take();
        channel_message["edit_date"] = json!(1774000500);
        post = json!({"update_id": 6, "edited_channel_post": channel_message});
        assert_eq!(ignored(&post), "channel");
    }

    #[test]
    fn blocked_and_unblocked() {
        assert_eq!(parse(&fixture!("blocked")), (870001017, TelegramEvent::Blocked { user_id: 123456789 }));
        assert_eq!(parse(&fixture!("unblocked")), (870001018, TelegramEvent::Ignored { reason: "member_update" }));
    }

    #[test]
    fn bot_removed_from_a_group_is_a_group_event() {
        let mut raw = fixture!("blocked");
        raw["my_chat_member"]["chat"] = json!({"id": -4001234567_i64, "title": "Acme", "type": "group"});
        raw["my_chat_member"]["new_chat_member"] =
            json!({"user": raw["my_chat_member"]["new_chat_member"]["user"].clone(), "status": "left"});
        assert_eq!(ignored(&raw), "group");
        let chat_member = json!({"update_id": 7, "chat_member": raw["my_chat_member"].clone()});
        assert_eq!(ignored(&chat_member), "member_update");
    }

    #[test]
    fn callback_button() {
        let expected = TelegramEvent::Callback {
            id: "4382910553870162815".into(),
            from: ivan(),
            chat_id: Some(123456789),
            message_id: Some(120),
            data: "call:yes".into(),
        };
        assert_eq!(parse(&fixture!("callback")), (870001019, expected));
    }

    #[test]
    fn callback_on_an_inline_message_has_no_chat() {
        let mut raw = fixture!("callback");
        let query = raw["callback_query"].as_object_mut().expect("query");
        query.remove("message");
        query.remove("data");
        query.insert("inline_message_id".into(), json!("AQAAAK0xAAA"));
        let expected = TelegramEvent::Callback {
            id: "4382910553870162815".into(),
            from: ivan(),
            chat_id: None,
            message_id: None,
            data: String::new(),
        };
        assert_eq!(parse(&raw).1, expected);
    }

    #[test]
    fn reply_to_a_bot_message() {
        let raw = fixture!("reply");
        assert_eq!(parse(&raw).0, 870001020);
        let expected =
            ProspectMessage { reply_to_message_id: Some(120), ..base(121, "Да, после 18:00 удобно") };
        assert_eq!(message(&raw), expected);
    }

    #[test]
    fn other_bot_command() {
        let raw = fixture!("command");
        assert_eq!(parse(&raw).0, 870001021);
        let expected = ProspectMessage {
            chat_id: 987654321,
            from: maria(),
            command: Some(("lead".into(), "01abcd".into())),
            ..base(122, "/lead 01abcd")
        };
        assert_eq!(message(&raw), expected);
    }

    #[test]
    fn update_kinds_we_do_not_handle_are_unsupported() {
        assert_eq!(parse(&fixture!("unknown_kind")), (870001022, TelegramEvent::Ignored { reason: "unsupported" }));
        // A kind no Bot API version has (yet).
        let future = json!({"update_id": 870001023, "guest_message": {"message_id": 1, "text": "hi"}});
        assert_eq!(parse(&future), (870001023, TelegramEvent::Ignored { reason: "unsupported" }));
        // A business-account message: not a conversation with our bot.
        let mut business = fixture!("private_text");
        let mut inner = business["message"].take();
        inner["business_connection_id"] = json!("AbCdEf123");
        business = json!({"update_id": 870001024, "business_message": inner});
        assert_eq!(ignored(&business), "unsupported");
    }

    #[test]
    fn kinds_teloxide_panics_on_are_not_handed_to_it() {
        // teloxide-core 0.13 unwraps the actor of these; we never read them.
        let reaction = json!({"update_id": 10, "message_reaction": {
            "chat": {"id": 123456789, "first_name": "Иван", "type": "private"},
            "message_id": 120, "date": 1774000300, "old_reaction": [], "new_reaction": []}});
        assert_eq!(ignored(&reaction), "unsupported");
        let poll_answer = json!({"update_id": 11, "poll_answer": {"poll_id": "1", "option_ids": [0]}});
        assert_eq!(ignored(&poll_answer), "unsupported");
    }

    #[test]
    fn media_without_mime_type_still_parse() {
        let mut video = fixture!("video");
        video["message"]["video"].as_object_mut().expect("video").remove("mime_type");
        assert_eq!(message(&video).attachments[0].content_type, None);
        let mut audio = fixture!("audio");
        audio["message"]["audio"].as_object_mut().expect("audio").remove("mime_type");
        assert_eq!(message(&audio).attachments[0].content_type, None);
        // Also inside the message replied to.
        let mut reply = fixture!("reply");
        reply["message"]["reply_to_message"]["voice"] =
            json!({"duration": 3, "file_id": "AwACvoice2", "file_unique_id": "AgADv2", "file_size": 999});
        assert_eq!(message(&reply).reply_to_message_id, Some(120));
    }

    #[test]
    fn handled_kind_that_is_not_an_object_is_unsupported() {
        assert_eq!(
            parse(&json!({"update_id": 12, "message": null})),
            (12, TelegramEvent::Ignored { reason: "unsupported" })
        );
    }

    #[test]
    fn known_kind_in_a_shape_teloxide_cannot_read_is_unsupported() {
        let mut raw = fixture!("private_text");
        raw["message"]["chat"] = json!("private");
        assert_eq!(parse(&raw), (870001001, TelegramEvent::Ignored { reason: "unsupported" }));
    }

    #[test]
    fn update_ids_beyond_u32_still_parse() {
        let mut raw = fixture!("private_text");
        raw["update_id"] = json!(9_000_000_000_i64);
        assert_eq!(parse(&raw).0, 9_000_000_000);
        assert!(matches!(parse(&raw).1, TelegramEvent::Message(_)));
    }

    #[test]
    fn not_an_update_is_an_error() {
        assert!(matches!(parse_update(&fixture!("malformed")), Err(ParseError::Malformed(_))));
        for raw in [
            json!(null),
            json!([]),
            json!("update"),
            json!({"update_id": 1}),
            json!({"update_id": "1", "message": {}}),
            json!({"update_id": 1.5, "message": {}}),
            json!({"update_id": 1, "ok": true}),
        ] {
            assert!(parse_update(&raw).is_err(), "{raw}");
        }
        let message = parse_update(&json!({"foo": 1})).expect_err("not an update").to_string();
        assert!(message.starts_with("not a Telegram update: "), "{message}");
    }

    #[test]
    fn service_messages_are_ignored() {
        let pinned = json!({
            "update_id": 2,
            "message": {
                "message_id": 130, "date": 1774000000,
                "from": {"id": 123456789, "is_bot": false, "first_name": "Иван"},
                "chat": {"id": 123456789, "first_name": "Иван", "type": "private"},
                "pinned_message": {
                    "message_id": 120, "date": 1774000000, "text": "hi",
                    "from": {"id": 7012345678_i64, "is_bot": true, "first_name": "Acme Leads"},
                    "chat": {"id": 123456789, "first_name": "Иван", "type": "private"}
                }
            }
        });
        assert_eq!(ignored(&pinned), "service");
        let write_access = json!({
            "update_id": 3,
            "message": {
                "message_id": 131, "date": 1774000000,
                "from": {"id": 123456789, "is_bot": false, "first_name": "Иван"},
                "chat": {"id": 123456789, "first_name": "Иван", "type": "private"},
                "write_access_allowed": {"from_request": true}
            }
        });
        assert_eq!(ignored(&write_access), "service");
    }

    #[test]
    fn utf16_offsets_are_honoured() {
        // Astral emoji (2 UTF-16 units, 4 bytes), a ZWJ sequence, Cyrillic (1 unit, 2 bytes), CJK (1 unit, 3 bytes).
        let text = "👨‍👩‍👧 Семья 家族 🇷🇺: a@b.co и 8 800 555-35-35, ещё 🙂 x@y.org";
        let entities = json!([
            {"type": "email", "offset": utf16_offset(text, "a@b.co"), "length": 6},
            {"type": "phone_number", "offset": utf16_offset(text, "8 800"), "length": "8 800 555-35-35".len()},
            {"type": "email", "offset": utf16_offset(text, "x@y.org"), "length": 7},
        ]);
        let m = message(&private_text(text, entities));
        assert_eq!(m.emails, vec!["a@b.co".to_owned(), "x@y.org".to_owned()]);
        assert_eq!(m.phones, vec!["8 800 555-35-35".to_owned()]);
    }

    #[test]
    fn bad_entity_offsets_are_dropped_not_panicked_on() {
        let text = "🙂 mail: a@b.co";
        let good = utf16_offset(text, "a@b.co");
        let entities = json!([
            {"type": "email", "offset": 1, "length": 3},                     // inside the emoji's surrogate pair
            {"type": "email", "offset": 0, "length": 1},                     // ends inside the surrogate pair
            {"type": "email", "offset": good, "length": 60},                 // past the end
            {"type": "phone_number", "offset": 500, "length": 2},            // starts past the end
            {"type": "phone_number", "offset": 3, "length": 0},              // empty
            {"type": "email", "offset": 3, "length": u64::MAX},              // overflows
            {"type": "email", "offset": good, "length": 6},                  // the real one
        ]);
        let m = message(&private_text(text, entities));
        assert_eq!(m.emails, vec!["a@b.co".to_owned()]);
        assert!(m.phones.is_empty());
    }

    #[test]
    fn deep_link_sources() {
        let cases: [(&str, Option<&str>, Option<&str>); 14] = [
            ("src-google_spring2026", Some("google"), Some("spring2026")),
            ("src-facebook", Some("facebook"), None),
            ("src-facebook_", Some("facebook"), None),
            ("src-google_spring_2026", Some("google"), Some("spring_2026")),
            ("src-google-ads_q2", Some("google-ads"), Some("q2")),
            ("src-", None, None),
            ("src-_spring", None, None),
            ("src", None, None),
            ("google_spring2026", None, None),
            ("", None, None),
            ("SRC-google", None, None),
            ("src-goo gle", None, None),
            ("src-гугл", None, None),
            ("src-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", None, None),
        ];
        for (payload, source, campaign) in cases {
            let expected = (source.map(str::to_owned), campaign.map(str::to_owned));
            assert_eq!(deep_link_source(payload), expected, "{payload}");
        }
        let longest = format!("src-{}", "a".repeat(60));
        assert_eq!(deep_link_source(&longest), (Some("a".repeat(60)), None));
    }

    #[test]
    fn full_names() {
        let mut user = ivan();
        assert_eq!(user.full_name(), "Иван Петров");
        user.last_name = None;
        assert_eq!(user.full_name(), "Иван");
        user.last_name = Some("  ".into());
        user.first_name = " Иван ".into();
        assert_eq!(user.full_name(), "Иван");
        user.last_name = Some(" Петров ".into());
        assert_eq!(user.full_name(), "Иван Петров");
    }

    /// Every JSON path in `value`, as (object key | array index) steps.
    fn paths(value: &Value, prefix: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    prefix.push(PathStep::Key(key.clone()));
                    out.push(prefix.clone());
                    paths(child, prefix, out);
                    prefix.pop();
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    prefix.push(PathStep::Index(index));
                    out.push(prefix.clone());
                    paths(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {}
        }
    }

    #[derive(Clone, Debug)]
    enum PathStep {
        Key(String),
        Index(usize),
    }

    fn parent_mut<'v>(root: &'v mut Value, path: &[PathStep]) -> Option<&'v mut Value> {
        let (_, parents) = path.split_last()?;
        parents.iter().try_fold(root, |node, step| match step {
            PathStep::Key(key) => node.get_mut(key.as_str()),
            PathStep::Index(index) => node.get_mut(*index),
        })
    }

    #[test]
    fn never_panics_on_mutated_fixtures() {
        let replacements = [
            json!(null),
            json!(""),
            json!("x"),
            json!(-1),
            json!(0),
            json!(u64::MAX),
            json!(1.5),
            json!([]),
            json!({}),
        ];
        let mut runs = 0;
        for (name, original) in all_fixtures() {
            let mut all = Vec::new();
            paths(&original, &mut Vec::new(), &mut all);
            for path in &all {
                // Remove the key / element.
                let mut removed = original.clone();
                if let Some(parent) = parent_mut(&mut removed, path) {
                    match (parent, path.last()) {
                        (Value::Object(map), Some(PathStep::Key(key))) => {
                            map.remove(key);
                        }
                        (Value::Array(items), Some(PathStep::Index(index))) if *index < items.len() => {
                            items.remove(*index);
                        }
                        _ => {}
                    }
                }
                let _ = parse_update(&removed);
                runs += 1;
                // Replace it with values of the wrong type or range.
                for replacement in &replacements {
                    let mut replaced = original.clone();
                    if let Some(parent) = parent_mut(&mut replaced, path) {
                        match (parent, path.last()) {
                            (Value::Object(map), Some(PathStep::Key(key))) => {
                                map.insert(key.clone(), replacement.clone());
                            }
                            (Value::Array(items), Some(PathStep::Index(index))) if *index < items.len() => {
                                items[*index] = replacement.clone();
                            }
                            _ => {}
                        }
                    }
                    let _ = parse_update(&replaced);
                    runs += 1;
                }
            }
            assert!(!all.is_empty() || name == "malformed", "{name} has paths");
        }
        assert!(runs > 1000, "{runs}");
    }

    proptest::proptest! {
        /// Any text with any entity offsets: the entities that fit are cut, the rest dropped, no panic.
        #[test]
        fn arbitrary_entities_never_panic(text in "\\PC{0,40}", spans in proptest::collection::vec((0u64..80, 0u64..80), 0..6)) {
            let entities: Vec<Value> = spans
                .iter()
                .enumerate()
                .map(|(i, (offset, length))| {
                    let kind = if i % 2 == 0 { "email" } else { "phone_number" };
                    json!({"type": kind, "offset": offset, "length": length})
                })
                .collect();
            let (_, event) = parse(&private_text(&text, json!(entities)));
            if let TelegramEvent::Message(m) = event {
                for cut in m.emails.iter().chain(&m.phones) {
                    proptest::prop_assert!(text.contains(cut.as_str()));
                }
            }
        }
    }

    #[test]
    fn every_fixture_is_an_update_except_malformed() {
        for (name, raw) in all_fixtures() {
            assert_eq!(parse_update(&raw).is_ok(), name != "malformed", "{name}");
        }
    }
}
