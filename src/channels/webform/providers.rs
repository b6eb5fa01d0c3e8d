//! Form providers' payloads mapped onto one lead submission.
//!
//! Every provider is reduced to a list of [`Entry`]s (a label, the names a mapping or a guess may
//! match, a value, and what the provider itself says the field is); one shared [`Assembly`] then
//! decides what each entry is, in a fixed order of trust: the form's explicit mapping, the
//! provider's declared field type, the field's name, and last the shape of its value.

use std::collections::BTreeMap;

use serde_json::Value;

use super::parse::{FormBody, eq_ignore_case};
use crate::domain::{EmailAddress, LeadField, PhoneE164};
use crate::settings::FormProvider;

const NAME_MAX_CHARS: usize = 200;
const MESSAGE_MAX_CHARS: usize = 20_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Utm {
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub term: Option<String>,
    pub content: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Submission {
    pub name: Option<String>,
    /// Every value that was identified as an email / phone (raw, not normalised: the caller normalises).
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub message: Option<String>,
    pub company: Option<String>,
    pub utm: Utm,
    /// Page the form was on (from a field such as `page_url`, `pageurl`, `url`, `referer`, or the provider's own field).
    pub page_url: Option<String>,
    /// The provider's own submission id (idempotency key): Tilda `tranid`, Typeform `form_response.token` (else
    /// `event_id`), Jotform `submissionID`, Webflow `payload.id` (v1: `_id`); generic forms and Elementor have none.
    pub submission_id: Option<String>,
    pub language: Option<String>,
    /// Fields not used above, kept as custom fields on the lead (label → value), in form order. Provider noise is
    /// left out: Tilda `formid`/`formname`/`COOKIES`/`tranid`, Webflow's envelope, Jotform's non-answer fields,
    /// Elementor's form id/name and meta (IP, user agent), and everywhere the `secret` field and captcha tokens.
    pub extra: Vec<(String, String)>,
    /// Tilda's `test=test` ping sent when a webhook is connected: answer 200, no lead.
    pub test_ping: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MapError {
    #[error("{0}")]
    Malformed(String),
}

pub fn map_submission(
    provider: FormProvider,
    body: &FormBody,
    mapping: &BTreeMap<LeadField, String>,
) -> Result<Submission, MapError> {
    let form = match provider {
        FormProvider::Generic => ProviderForm::from_fields(body.fields.iter(), None),
        FormProvider::Tilda if is_tilda_ping(body) => {
            return Ok(Submission { test_ping: true, ..Submission::default() });
        }
        FormProvider::Tilda => tilda_form(body),
        FormProvider::Webflow => webflow_form(body),
        FormProvider::Typeform => typeform_form(body)?,
        FormProvider::Jotform => jotform_form(body)?,
        FormProvider::Elementor => elementor_form(body),
    };
    Ok(Assembly::new(mapping).run(form))
}

// ---------------------------------------------------------------------------------------------
// What a field can be
// ---------------------------------------------------------------------------------------------

/// A submission slot a field can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Name,
    FirstName,
    LastName,
    Email,
    Phone,
    Message,
    Company,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmTerm,
    UtmContent,
    PageUrl,
    Language,
}

impl From<LeadField> for Target {
    fn from(field: LeadField) -> Target {
        match field {
            LeadField::Name => Target::Name,
            LeadField::FirstName => Target::FirstName,
            LeadField::LastName => Target::LastName,
            LeadField::Email => Target::Email,
            LeadField::Phone => Target::Phone,
            LeadField::Message => Target::Message,
            LeadField::Company => Target::Company,
            LeadField::UtmSource => Target::UtmSource,
            LeadField::UtmMedium => Target::UtmMedium,
            LeadField::UtmCampaign => Target::UtmCampaign,
            LeadField::UtmTerm => Target::UtmTerm,
            LeadField::UtmContent => Target::UtmContent,
            LeadField::PageUrl => Target::PageUrl,
        }
    }
}

impl Target {
    /// Mapping any part of a person's name settles the whole name, so a mapped `first_name`
    /// also stops a guessed `name` from competing with it.
    fn group(self) -> Target {
        match self {
            Target::FirstName | Target::LastName => Target::Name,
            other => other,
        }
    }
}

/// Field names per target, in the languages our users' forms are written in. Compared after
/// [`normalized`], so `E-Mail`, `e_mail` and `email` are one entry.
const WORDS: &[(Target, &[&str])] = &[
    (
        Target::Name,
        &[
            "name",
            "your-name",
            "fullname",
            "full_name",
            "fio",
            "фио",
            "имя",
            "ім'я",
            "nombre",
            "nom",
            "contact_name",
            "client_name",
            "customer_name",
        ],
    ),
    (Target::FirstName, &["first_name", "firstname", "fname", "given_name", "vorname", "prénom", "prenom"]),
    (
        Target::LastName,
        &["last_name", "lastname", "lname", "surname", "family_name", "nachname", "фамилия", "apellido", "apellidos"],
    ),
    (
        Target::Email,
        &[
            "email",
            "e-mail",
            "mail",
            "your-email",
            "email_address",
            "почта",
            "электронная почта",
            "correo",
            "correo electrónico",
            "courriel",
        ],
    ),
    (
        Target::Phone,
        &[
            "phone",
            "tel",
            "telephone",
            "téléphone",
            "mobile",
            "mobile_phone",
            "cell",
            "cellphone",
            "phone_number",
            "your-phone",
            "your-tel",
            "whatsapp",
            "телефон",
            "тел",
            "номер телефона",
            "teléfono",
            "telefono",
            "telefon",
            "celular",
            "handy",
        ],
    ),
    (
        Target::Message,
        &[
            "message",
            "your-message",
            "comment",
            "comments",
            "text",
            "textarea",
            "msg",
            "question",
            "details",
            "enquiry",
            "inquiry",
            "сообщение",
            "комментарий",
            "вопрос",
            "mensaje",
            "nachricht",
        ],
    ),
    (
        Target::Company,
        &["company", "company_name", "organization", "organisation", "компания", "организация", "empresa", "firma"],
    ),
    (Target::UtmSource, &["utm_source"]),
    (Target::UtmMedium, &["utm_medium"]),
    (Target::UtmCampaign, &["utm_campaign"]),
    (Target::UtmTerm, &["utm_term"]),
    (Target::UtmContent, &["utm_content"]),
    (Target::PageUrl, &["page_url", "pageurl", "page", "url", "referer", "referrer"]),
    (Target::Language, &["lang", "language", "locale"]),
];

/// Lower-cased, without `-`, `_` and spaces, typographic apostrophes unified (`Ім’я` = `ім'я`).
fn normalized(word: &str) -> impl Iterator<Item = char> + '_ {
    word.chars()
        .flat_map(char::to_lowercase)
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .map(|c| if matches!(c, '’' | 'ʼ' | '`') { '\'' } else { c })
}

fn same_word(a: &str, b: &str) -> bool {
    normalized(a).eq(normalized(b))
}

fn guess_word(word: &str) -> Option<Target> {
    WORDS.iter().find(|(_, words)| words.iter().any(|w| same_word(w, word))).map(|(target, _)| *target)
}

/// Guesses a target from a field name, looking at the last segment of a dotted path.
///
/// Container-style paths are read through their parent: `email.value` and `phones.0` are about
/// their parent, `fullName.first` is a first name, `company.name` is a company.
fn guess_by_name(name: &str) -> Option<Target> {
    let mut segments = name.rsplit('.');
    let last = segments.next()?;
    let parent = segments.next().and_then(guess_word);
    let last_word: String = normalized(last).collect();
    let by_parent = match (last_word.as_str(), parent) {
        ("first" | "given", Some(Target::Name)) => Some(Target::FirstName),
        ("last" | "family", Some(Target::Name)) => Some(Target::LastName),
        ("name", Some(Target::Company)) => Some(Target::Company),
        ("value" | "full", parent) => parent,
        (index, parent) if !index.is_empty() && index.chars().all(|c| c.is_ascii_digit()) => parent,
        _ => None,
    };
    by_parent.or_else(|| guess_word(last))
}

/// Human labels (`What's your email address?`, `Company name`, `Ваш телефон`) rarely equal a
/// field name, but contain one. Checked in an order where the more specific word wins
/// (`Company name` is a company, not a name). Only contact fields: a label mentioning "page" or
/// "url" is a question about a website, not the page the form was on.
fn guess_by_label_words(label: &str) -> Option<Target> {
    if !label.contains(char::is_whitespace) {
        return None;
    }
    let words: Vec<&str> = label.split(|c: char| !(c.is_alphanumeric() || matches!(c, '\'' | '’' | 'ʼ'))).collect();
    let has = |target: Target| words.iter().any(|w| guess_word(w) == Some(target));
    let is_any = |options: &[&str]| words.iter().any(|w| options.iter().any(|o| same_word(o, w)));
    let priority = [Target::Email, Target::Phone, Target::Company, Target::FirstName, Target::LastName, Target::Name];
    match priority.into_iter().find(|&t| has(t)) {
        Some(Target::Name) if is_any(&["first", "given"]) => Some(Target::FirstName),
        Some(Target::Name) if is_any(&["last", "family"]) => Some(Target::LastName),
        Some(found) => Some(found),
        None => has(Target::Message).then_some(Target::Message),
    }
}

/// Long numbers under id-ish keys (`tranid`, `order_id`, timestamps, dates, postcodes) can read as
/// valid phone numbers; value-shape detection must not look at them.
fn is_id_like(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name).to_lowercase();
    last.ends_with("id")
        || ["timestamp", "ts", "date", "time", "zip", "postcode", "postal_code"].contains(&last.as_str())
}

fn looks_like_phone(value: &str) -> bool {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    digits >= 7 && !value.chars().any(char::is_alphabetic) && PhoneE164::parse(value, None).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Provider-neutral form
// ---------------------------------------------------------------------------------------------

/// What a provider says about a field, before any guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    /// Nothing known: guess by name, then by value shape.
    Unknown,
    /// The provider's field type settles it (Typeform `email` answer, Elementor `tel` field).
    Is(Target),
    /// A multi-line text field: a message unless its name says otherwise.
    LongText,
    /// A typed answer (number, date, choice…): guess by name only, its value is never a contact.
    Typed,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Shown as the custom field's name when the entry ends up in `extra`.
    label: String,
    /// Names the explicit mapping and name guessing match, most specific first.
    names: Vec<String>,
    value: String,
    declared: Declared,
}

impl Entry {
    /// `None` for blank values: an empty field is an unanswered one.
    fn new(label: &str, names: Vec<String>, value: &str, declared: Declared) -> Option<Entry> {
        let value = value.trim();
        (!value.is_empty()).then(|| Entry { label: label.to_owned(), names, value: value.to_owned(), declared })
    }

    fn plain(key: &str, value: &str) -> Option<Entry> {
        Entry::new(key, vec![key.to_owned()], value, Declared::Unknown)
    }
}

#[derive(Debug, Default)]
struct ProviderForm {
    entries: Vec<Entry>,
    submission_id: Option<String>,
}

impl ProviderForm {
    /// Flat fields as entries, minus anti-bot and secret noise no sales rep should see.
    fn from_fields<'a>(
        fields: impl Iterator<Item = &'a (String, String)>,
        submission_id: Option<&str>,
    ) -> ProviderForm {
        let entries = fields.filter(|(k, _)| !is_common_noise(k)).filter_map(|(k, v)| Entry::plain(k, v)).collect();
        ProviderForm { entries, submission_id: clean(submission_id) }
    }
}

/// Keys every provider drops: the shared secret (it must never be stored on a lead), captcha
/// tokens and Contact Form 7 plumbing.
fn is_common_noise(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "secret"
        || key.starts_with("_wpcf7")
        || ["g-recaptcha-response", "h-captcha-response", "cf-turnstile-response"].contains(&key.as_str())
}

fn clean(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------
// Providers
// ---------------------------------------------------------------------------------------------

/// Tilda fields that describe the form or the visitor's browser rather than the lead.
fn is_tilda_noise(key: &str) -> bool {
    ["formid", "formname", "cookies", "tranid"].iter().any(|n| key.eq_ignore_ascii_case(n))
}

/// Tilda checks a new webhook with `test=test`; it must get a 200 and create nothing.
fn is_tilda_ping(body: &FormBody) -> bool {
    body.get("test").is_some() && body.fields.iter().all(|(k, _)| k.eq_ignore_ascii_case("test") || is_tilda_noise(k))
}

fn tilda_form(body: &FormBody) -> ProviderForm {
    ProviderForm::from_fields(body.fields.iter().filter(|(k, _)| !is_tilda_noise(k)), body.get("tranid"))
}

/// Webflow v2 wraps the submission in `payload`; v1 sent it at the top level.
fn webflow_form(body: &FormBody) -> ProviderForm {
    let data_prefix =
        if body.fields.iter().any(|(k, _)| k.starts_with("payload.data.")) { "payload.data." } else { "data." };
    let mut entries: Vec<Entry> = body
        .fields
        .iter()
        .filter_map(|(key, value)| {
            let field = key.strip_prefix(data_prefix)?;
            Entry::new(field, vec![field.to_owned(), key.clone()], value, Declared::Unknown)
        })
        .collect();
    if entries.is_empty() {
        // Not Webflow's envelope after all (a hand-made post): read it like any form.
        return ProviderForm::from_fields(body.fields.iter(), None);
    }
    let page = body.get("payload.pageUrl");
    entries.extend(page.and_then(|url| Entry::new("pageUrl", vec![], url, Declared::Is(Target::PageUrl))));
    let id = body.get("payload.id").or_else(|| body.get("_id"));
    ProviderForm { entries, submission_id: clean(id) }
}

fn typeform_form(body: &FormBody) -> Result<ProviderForm, MapError> {
    let json =
        body.json.as_ref().ok_or_else(|| MapError::Malformed("Typeform sends JSON; this body was not".into()))?;
    let response = json
        .get("form_response")
        .filter(|r| r.is_object())
        .ok_or_else(|| MapError::Malformed("Typeform payload has no `form_response` object".into()))?;
    let questions = typeform_questions(response);
    let answers = response.get("answers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut entries: Vec<Entry> = answers.iter().filter_map(|a| typeform_answer(a, &questions)).collect();
    // Hidden fields carry UTM tags and whatever else the embed passed in (page URL, language).
    if let Some(hidden) = response.get("hidden").and_then(Value::as_object) {
        entries.extend(hidden.iter().filter_map(|(k, v)| Entry::plain(k, &scalar_text(v)?)));
    }
    // Quiz forms score answers; the score is what a rep sorts leads by.
    if let Some(score) = response.pointer("/calculated/score").filter(|s| s.as_f64().is_some_and(|n| n != 0.0)) {
        entries.extend(Entry::new("score", vec![], &score.to_string(), Declared::Typed));
    }
    let id = response.get("token").or_else(|| json.get("event_id")).and_then(Value::as_str);
    Ok(ProviderForm { entries, submission_id: clean(id) })
}

/// Question id → title, from the form definition Typeform includes in each webhook.
fn typeform_questions(response: &Value) -> BTreeMap<&str, &str> {
    let fields = response.pointer("/definition/fields").and_then(Value::as_array).map(Vec::as_slice);
    fields
        .unwrap_or_default()
        .iter()
        .filter_map(|f| Some((f.get("id")?.as_str()?, f.get("title")?.as_str()?)))
        .collect()
}

fn typeform_answer(answer: &Value, questions: &BTreeMap<&str, &str>) -> Option<Entry> {
    let kind = answer.get("type").and_then(Value::as_str).unwrap_or_default();
    let field = answer.get("field");
    let field_str = |name: &str| field.and_then(|f| f.get(name)).and_then(Value::as_str);
    let field_type = field_str("type").unwrap_or_default();
    let reference = field_str("ref");
    let title = field_str("id").and_then(|id| questions.get(id).copied());
    let declared = match (kind, field_type) {
        ("email", _) | (_, "email") => Declared::Is(Target::Email),
        ("phone_number", _) | (_, "phone_number") => Declared::Is(Target::Phone),
        (_, "long_text") => Declared::LongText,
        ("text", _) => Declared::Unknown,
        _ => Declared::Typed,
    };
    // Typeform generates refs like `4fbc1b5e-…` unless the author named them; a question's
    // title means more to a sales rep than a generated id.
    let readable_ref = reference.filter(|r| !looks_generated(r));
    let label = readable_ref.or(title).or(reference).or_else(|| field_str("id"))?;
    let names = [reference, title].into_iter().flatten().map(str::to_owned).collect();
    Entry::new(label, names, &typeform_value(answer, kind)?, declared)
}

/// The answer's value lives under a key named like its type (`"email": …`, `"number": 5`).
fn typeform_value(answer: &Value, kind: &str) -> Option<String> {
    match kind {
        "choice" => {
            let choice = answer.get("choice")?;
            choice.get("label").or_else(|| choice.get("other")).and_then(scalar_text)
        }
        "choices" => {
            let choices = answer.get("choices")?;
            let labels = choices.get("labels").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let other = choices.get("other");
            let texts: Vec<String> = labels.iter().chain(other).filter_map(scalar_text).collect();
            (!texts.is_empty()).then(|| texts.join(", "))
        }
        "payment" => answer.pointer("/payment/amount").and_then(scalar_text),
        _ => answer.get(kind).and_then(scalar_text),
    }
}

fn looks_generated(reference: &str) -> bool {
    reference.len() >= 20
        && reference.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && reference.chars().any(|c| c.is_ascii_digit())
}

/// JSON scalars as text; `None` for null, objects and arrays.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Jotform answers are the `q<N>_<name>` fields; everything else (`formID`, `ip`, `pretty`,
/// `slug`, `jsExecutionTracker`…) is Jotform's plumbing or a duplicate of the answers.
fn jotform_form(body: &FormBody) -> Result<ProviderForm, MapError> {
    let entries = match body.get("rawRequest") {
        Some(raw) => jotform_raw_entries(raw)?,
        // A form posted straight at us (no webhook envelope): same keys, bracket-flattened.
        None => body
            .fields
            .iter()
            .filter_map(|(key, value)| {
                let (_, name) = split_question_key(key)?;
                Entry::new(name, vec![name.to_owned(), key.clone()], value, Declared::Unknown)
            })
            .collect(),
    };
    Ok(ProviderForm { entries, submission_id: clean(body.get("submissionID")) })
}

fn jotform_raw_entries(raw: &str) -> Result<Vec<Entry>, MapError> {
    let request: Value = serde_json::from_str(raw)
        .map_err(|e| MapError::Malformed(format!("Jotform `rawRequest` is not valid JSON: {e}")))?;
    let Value::Object(answers) = request else {
        return Err(MapError::Malformed("Jotform `rawRequest` must be a JSON object".into()));
    };
    let mut numbered: Vec<(u32, Entry)> = answers
        .iter()
        .filter_map(|(key, value)| {
            let (number, name) = split_question_key(key)?;
            let entry = Entry::new(name, vec![name.to_owned(), key.clone()], &jotform_text(value)?, Declared::Unknown)?;
            Some((number, entry))
        })
        .collect();
    // JSON objects come back sorted by key (`q10_` before `q3_`); question numbers follow the
    // order the form was built in, which is what "first field wins" should see.
    numbered.sort_by_key(|(number, _)| *number);
    Ok(numbered.into_iter().map(|(_, entry)| entry).collect())
}

/// `q12_phoneNumber` → `(12, "phoneNumber")`; also accepts bracket-flattened `q3_fullName.first`.
fn split_question_key(key: &str) -> Option<(u32, &str)> {
    let (number, name) = key.strip_prefix('q')?.split_once('_')?;
    if name.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((number.parse().ok()?, name))
}

/// One Jotform answer as text. Compound widgets become what a person would write: a full name
/// `{first, last}` → "Ivan Petrov", a phone `{full}` or `{area, phone}` → one number, an address
/// → its lines joined, checkboxes → "a, b".
fn jotform_text(value: &Value) -> Option<String> {
    let joined = |parts: Vec<String>, separator: &str| (!parts.is_empty()).then(|| parts.join(separator));
    let pick = |object: &serde_json::Map<String, Value>, keys: &[&str]| -> Vec<String> {
        keys.iter().filter_map(|k| object.get(*k).and_then(scalar_text)).filter(|s| !s.trim().is_empty()).collect()
    };
    match value {
        Value::Array(items) => joined(items.iter().filter_map(jotform_text).collect(), ", "),
        Value::Object(object) if object.contains_key("full") => object.get("full").and_then(scalar_text),
        Value::Object(object) if object.contains_key("first") || object.contains_key("last") => {
            joined(pick(object, &["prefix", "first", "middle", "last", "suffix"]), " ")
        }
        Value::Object(object) if object.contains_key("area") || object.contains_key("phone") => {
            joined(pick(object, &["country", "area", "phone"]), " ")
        }
        Value::Object(object) if object.contains_key("addr_line1") || object.contains_key("city") => {
            joined(pick(object, &["addr_line1", "addr_line2", "city", "state", "postal", "country"]), ", ")
        }
        // Unknown widget: its values in key order (JSON objects come back sorted).
        Value::Object(object) => {
            joined(object.values().filter_map(scalar_text).filter(|s| !s.is_empty()).collect(), ", ")
        }
        scalar => scalar_text(scalar),
    }
}

/// Elementor field types that never hold an answer.
const ELEMENTOR_SKIPPED_TYPES: [&str; 6] = ["recaptcha", "recaptcha_v3", "honeypot", "html", "step", "submit"];

/// Elementor's "advanced data" webhook describes each field (`fields[<id>][type|title|value]`);
/// the plain mode sends `Label=value` pairs plus a few meta labels.
fn elementor_form(body: &FormBody) -> ProviderForm {
    let mut fields: Vec<ElementorField> = Vec::new();
    for (key, value) in &body.fields {
        let Some((id, attribute)) = key.strip_prefix("fields.").and_then(|k| k.rsplit_once('.')) else { continue };
        if !fields.iter().any(|f| f.id == id) {
            fields.push(ElementorField { id: id.to_owned(), ..ElementorField::default() });
        }
        if let Some(field) = fields.iter_mut().find(|f| f.id == id) {
            field.set(attribute, value);
        }
    }
    if fields.is_empty() {
        let simple = body.fields.iter().filter(|(k, _)| !is_elementor_simple_meta(k));
        return ProviderForm::from_fields(simple, None);
    }
    let mut entries: Vec<Entry> = fields.iter().filter_map(ElementorField::entry).collect();
    // Of the meta block only the page is kept: IP and user agent are personal data nobody asked for.
    let page = body.get("meta.page_url.value");
    entries.extend(page.and_then(|url| Entry::new("page_url", vec![], url, Declared::Is(Target::PageUrl))));
    ProviderForm { entries, submission_id: None }
}

/// Meta labels Elementor's plain mode appends to every post (privacy noise, or its own credit line).
fn is_elementor_simple_meta(key: &str) -> bool {
    ["User Agent", "Remote IP", "Powered by"].iter().any(|m| same_word(m, key))
}

#[derive(Debug, Default)]
struct ElementorField {
    id: String,
    kind: String,
    title: String,
    value: Option<String>,
    raw_value: Option<String>,
}

impl ElementorField {
    fn set(&mut self, attribute: &str, value: &str) {
        match attribute {
            "type" => self.kind = value.to_ascii_lowercase(),
            "title" => self.title = value.trim().to_owned(),
            "value" => self.value = Some(value.to_owned()),
            "raw_value" => self.raw_value = Some(value.to_owned()),
            _ => {}
        }
    }

    fn entry(&self) -> Option<Entry> {
        if ELEMENTOR_SKIPPED_TYPES.contains(&self.kind.as_str()) {
            return None;
        }
        let declared = match self.kind.as_str() {
            "email" => Declared::Is(Target::Email),
            "tel" => Declared::Is(Target::Phone),
            "textarea" => Declared::LongText,
            "" | "text" | "hidden" => Declared::Unknown,
            _ => Declared::Typed,
        };
        let value = self.value.as_deref().filter(|v| !v.trim().is_empty()).or(self.raw_value.as_deref())?;
        let label = if self.title.is_empty() { &self.id } else { &self.title };
        let names = [&self.id, &self.title].into_iter().filter(|n| !n.is_empty()).cloned().collect();
        Entry::new(label, names, value, declared)
    }
}

// ---------------------------------------------------------------------------------------------
// Assembly: entries → submission
// ---------------------------------------------------------------------------------------------

struct Assembly {
    /// Explicit mapping as (target, the form's field name).
    mapping: Vec<(Target, String)>,
    /// Single-valued slots taken so far, with the entry's label (for `extra` if it is displaced).
    slots: Vec<(Target, String, String)>,
    emails: Vec<String>,
    phones: Vec<String>,
    extra: Vec<(String, String)>,
}

impl Assembly {
    fn new(mapping: &BTreeMap<LeadField, String>) -> Self {
        let mapping =
            mapping.iter().map(|(lead_field, form_field)| (Target::from(*lead_field), form_field.clone())).collect();
        Assembly { mapping, slots: Vec::new(), emails: Vec::new(), phones: Vec::new(), extra: Vec::new() }
    }

    fn mapped_target(&self, entry: &Entry) -> Option<Target> {
        let matches = |form_field: &str| entry.names.iter().any(|n| eq_ignore_case(n.trim(), form_field.trim()));
        self.mapping.iter().find(|(_, form_field)| matches(form_field)).map(|(target, _)| *target)
    }

    fn run(mut self, form: ProviderForm) -> Submission {
        let mapped: Vec<Option<Target>> = form.entries.iter().map(|e| self.mapped_target(e)).collect();
        // A mapping wins outright for its target: once the mapped field has a value, guesses for
        // the same target are kept as custom fields instead. A mapped field that is missing from
        // this post does not silence guessing: losing the contact would be worse.
        let settled: Vec<Target> = mapped.iter().flatten().map(|t| t.group()).collect();
        // Mapped entries go first so they take the single-valued slots before any guess does.
        for (entry, target) in form.entries.iter().zip(&mapped) {
            if let Some(target) = target {
                self.put(*target, entry);
            }
        }
        for (entry, _) in form.entries.iter().zip(&mapped).filter(|(_, target)| target.is_none()) {
            match guess(entry).filter(|t| !settled.contains(&t.group())) {
                Some(target) => self.put(target, entry),
                None => self.extra.push((entry.label.clone(), entry.value.clone())),
            }
        }
        self.finish(form.submission_id)
    }

    fn put(&mut self, target: Target, entry: &Entry) {
        let list = match target {
            Target::Email => &mut self.emails,
            Target::Phone => &mut self.phones,
            single => {
                if self.slots.iter().any(|(t, _, _)| *t == single) {
                    self.extra.push((entry.label.clone(), entry.value.clone()));
                } else {
                    self.slots.push((single, entry.label.clone(), entry.value.clone()));
                }
                return;
            }
        };
        if !list.contains(&entry.value) {
            list.push(entry.value.clone());
        }
    }

    fn take(&mut self, target: Target) -> Option<(String, String)> {
        let index = self.slots.iter().position(|(t, _, _)| *t == target)?;
        let (_, label, value) = self.slots.remove(index);
        Some((label, value))
    }

    fn take_value(&mut self, target: Target) -> Option<String> {
        self.take(target).map(|(_, value)| value)
    }

    fn finish(mut self, submission_id: Option<String>) -> Submission {
        let name = self.full_name().map(|n| truncate_chars(n, NAME_MAX_CHARS));
        let message = self.take_value(Target::Message).map(|m| truncate_chars(m, MESSAGE_MAX_CHARS));
        let page_url = self.take_value(Target::PageUrl);
        let mut utm = Utm {
            source: self.take_value(Target::UtmSource),
            medium: self.take_value(Target::UtmMedium),
            campaign: self.take_value(Target::UtmCampaign),
            term: self.take_value(Target::UtmTerm),
            content: self.take_value(Target::UtmContent),
        };
        if let Some(url) = &page_url {
            fill_utm_from_url(&mut utm, url);
        }
        let company = self.take_value(Target::Company);
        let language = self.take_value(Target::Language);
        Submission {
            name,
            emails: self.emails,
            phones: self.phones,
            message,
            company,
            utm,
            page_url,
            submission_id,
            language,
            extra: self.extra,
            test_ping: false,
        }
    }

    /// A full-name field wins; otherwise first and last names are combined. Name parts that were
    /// not used stay visible as custom fields.
    fn full_name(&mut self) -> Option<String> {
        let full = self.take_value(Target::Name);
        let first = self.take(Target::FirstName);
        let last = self.take(Target::LastName);
        if full.is_some() {
            self.extra.extend(first.into_iter().chain(last));
            return full;
        }
        let parts: Vec<String> = first.into_iter().chain(last).map(|(_, value)| value).collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// What an unmapped entry is, by the provider's declaration, its names, then its value's shape.
///
/// Fuzzy label words and value shapes are only trusted for plain text fields: a long text titled
/// "Tell us about your company" is a message, and a choice "Contact me by email or phone?" is
/// neither an email nor a phone.
fn guess(entry: &Entry) -> Option<Target> {
    let by_name = || entry.names.iter().find_map(|n| guess_by_name(n));
    match entry.declared {
        Declared::Is(target) => Some(target),
        Declared::LongText => by_name().or(Some(Target::Message)),
        Declared::Typed => by_name(),
        Declared::Unknown => by_name()
            .or_else(|| entry.names.iter().find_map(|n| guess_by_label_words(n)))
            .or_else(|| guess_by_value(entry)),
    }
}

fn guess_by_value(entry: &Entry) -> Option<Target> {
    if entry.names.iter().any(|n| is_id_like(n)) {
        return None;
    }
    if EmailAddress::parse(&entry.value).is_ok() {
        Some(Target::Email)
    } else if looks_like_phone(&entry.value) {
        Some(Target::Phone)
    } else {
        None
    }
}

/// Ad links land on the page with their UTM tags; forms without hidden UTM fields still carry
/// them in the page URL. Only fills what the form did not send itself.
fn fill_utm_from_url(utm: &mut Utm, url: &str) {
    let Some((_, query)) = url.split_once('?') else { return };
    let query = query.split('#').next().unwrap_or_default();
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else { return };
    for (key, value) in pairs {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let slot = match key.to_ascii_lowercase().as_str() {
            "utm_source" => &mut utm.source,
            "utm_medium" => &mut utm.medium,
            "utm_campaign" => &mut utm.campaign,
            "utm_term" => &mut utm.term,
            "utm_content" => &mut utm.content,
            _ => continue,
        };
        slot.get_or_insert_with(|| value.to_owned());
    }
}

fn truncate_chars(mut text: String, max_chars: usize) -> String {
    if let Some((byte_index, _)) = text.char_indices().nth(max_chars) {
        text.truncate(byte_index);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::webform::parse::parse_body;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webform/", $name))
        };
    }

    const URLENCODED: &str = "application/x-www-form-urlencoded";

    async fn body(content_type: &str, bytes: &[u8]) -> FormBody {
        parse_body(Some(content_type), bytes::Bytes::copy_from_slice(bytes)).await.expect("fixture parses")
    }

    fn map(provider: FormProvider, body: &FormBody) -> Submission {
        map_submission(provider, body, &BTreeMap::new()).expect("maps")
    }

    fn mapping(pairs: &[(LeadField, &str)]) -> BTreeMap<LeadField, String> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    fn s(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|v| (*v).to_owned()).collect()
    }

    async fn generic(form: &str) -> Submission {
        map(FormProvider::Generic, &body(URLENCODED, form.as_bytes()).await)
    }

    #[test]
    fn every_mappable_field_is_named_in_the_config_as_written() {
        for field in LeadField::ALL {
            let name = serde_json::to_value(field).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            assert_eq!(serde_json::from_value::<LeadField>(name.clone().into()).ok(), Some(field), "{name}");
        }
        assert!(serde_json::from_value::<LeadField>("favourite_colour".into()).is_err());
    }

    #[tokio::test]
    async fn generic_nested_json() {
        let sub = map(FormProvider::Generic, &body("application/json", fixture!("generic.json")).await);
        assert_eq!(sub.name, s("María García"));
        assert_eq!(sub.emails, ["maria.garcia@example.es"]);
        assert_eq!(sub.phones, ["+34 612 345 678"], "request_id reads as a phone number but is an id");
        assert_eq!(sub.message, s("Hola, me gustaría recibir un presupuesto para 20 licencias."));
        assert_eq!(sub.company, s("Tecnologías Ibéricas S.L."));
        assert_eq!(
            sub.utm,
            Utm { source: s("google"), medium: s("cpc"), campaign: s("primavera_es"), term: None, content: None }
        );
        assert_eq!(sub.submission_id, None);
        assert_eq!(
            sub.extra,
            pairs(&[
                ("interests.0", "Licencias"),
                ("interests.1", "Soporte"),
                ("consent", "true"),
                ("budget", "2500.5"),
                ("request_id", "79161234567"),
            ])
        );
        assert!(!sub.test_ping);
    }

    #[tokio::test]
    async fn generic_urlencoded_with_cyrillic_names_and_utm_in_page_url() {
        let sub = map(FormProvider::Generic, &body(URLENCODED, fixture!("generic_urlencoded.txt")).await);
        assert_eq!(sub.name, s("Иван Петров"));
        assert_eq!(sub.phones, ["+7 (912) 345-67-89"]);
        assert_eq!(sub.emails, ["ivan.petrov@example.ru"]);
        assert_eq!(sub.message, s("Перезвоните после 18:00, пожалуйста"));
        assert_eq!(sub.company, None, "the empty Компания field is absent, not an empty company");
        assert_eq!(sub.language, s("ru"));
        assert!(sub.page_url.as_deref().is_some_and(|u| u.starts_with("https://okna-example.ru/kontakty/?")));
        assert_eq!(
            sub.utm,
            Utm { source: s("yandex"), medium: s("cpc"), campaign: s("okna_msk"), term: None, content: None }
        );
        assert_eq!(sub.extra, pairs(&[("services.0", "Доставка"), ("services.1", "Монтаж")]));
    }

    #[tokio::test]
    async fn generic_multipart() {
        let ct = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW";
        let sub = map(FormProvider::Generic, &body(ct, fixture!("generic_multipart.txt")).await);
        assert_eq!(sub.name, s("Ivan Petrov"));
        assert_eq!(sub.emails, ["ivan.petrov@example.com"]);
        assert_eq!(sub.phones, ["+1 (415) 555-0132"]);
        assert_eq!(sub.company, s("ООО «Ромашка»"), "fields.company.value is read through its parent");
        assert_eq!(sub.message, s("Hello,\r\nplease send pricing for 20 seats."));
        assert_eq!(sub.page_url, s("https://example.com/pricing"));
        assert_eq!(sub.utm, Utm::default());
        assert!(sub.extra.is_empty(), "{:?}", sub.extra);
    }

    #[tokio::test]
    async fn tilda_webhook() {
        let sub = map(FormProvider::Tilda, &body(URLENCODED, fixture!("tilda.txt")).await);
        assert!(!sub.test_ping);
        assert_eq!(sub.name, s("Иван Петров"));
        assert_eq!(sub.phones, ["+7 (912) 345-67-89"]);
        assert_eq!(sub.emails, ["ivan.petrov@example.ru"]);
        assert_eq!(sub.message, s("Хочу заказать дизайн лендинга, бюджет до 100 000 ₽"));
        assert_eq!(sub.submission_id, s("8888888:1234567890"));
        assert_eq!(
            sub.utm,
            Utm { source: s("yandex"), medium: s("cpc"), campaign: s("landing_design"), term: None, content: None }
        );
        assert_eq!(sub.extra, pairs(&[("Checkbox", "yes")]), "formid, formname, COOKIES and tranid are noise");
    }

    #[tokio::test]
    async fn tilda_ping_is_recognised_only_for_tilda() {
        let ping = body(URLENCODED, fixture!("tilda_test.txt")).await;
        let sub = map(FormProvider::Tilda, &ping);
        assert_eq!(sub, Submission { test_ping: true, ..Submission::default() });
        assert!(!map(FormProvider::Generic, &ping).test_ping);

        let json_ping = body("application/json", br#"{"test":"test","formid":"form1"}"#).await;
        assert!(map(FormProvider::Tilda, &json_ping).test_ping);

        let real = body(URLENCODED, b"test=test&Name=Ivan").await;
        let sub = map(FormProvider::Tilda, &real);
        assert!(!sub.test_ping, "a post with data is a lead even if it has a test field");
        assert_eq!(sub.name, s("Ivan"));
    }

    #[tokio::test]
    async fn webflow_v2_webhook() {
        let sub = map(FormProvider::Webflow, &body("application/json", fixture!("webflow.json")).await);
        assert_eq!(sub.name, s("Emma Schmidt"));
        assert_eq!(sub.emails, ["emma.schmidt@example.de"]);
        assert_eq!(sub.phones, ["+49 30 901820"]);
        assert_eq!(sub.company, s("Schmidt & Söhne GmbH"));
        assert_eq!(sub.message, s("Wir interessieren uns für eine Demo nächste Woche."));
        assert_eq!(sub.submission_id, s("6321a1b2c3d4e5f6a7b8c9d0"));
        assert_eq!(
            sub.page_url,
            s("https://www.schmidt-example.de/contact?utm_source=linkedin&utm_medium=social&utm_campaign=demo_q1")
        );
        assert_eq!(
            sub.utm,
            Utm { source: s("linkedin"), medium: s("social"), campaign: s("demo_q1"), term: None, content: None }
        );
        assert_eq!(sub.extra, pairs(&[("Newsletter", "true")]), "the envelope and schema are not lead data");
    }

    #[tokio::test]
    async fn webflow_v1_webhook() {
        let v1 = br#"{"name":"Contact Form","site":"62749158efef318abc8d5a0f",
            "data":{"Name":"Ivan Petrov","Email":"ivan@example.com"},
            "d":"2022-09-14T12:35:16.117Z","_id":"6321ca84df3949bfc6752327"}"#;
        let sub = map(FormProvider::Webflow, &body("application/json", v1).await);
        assert_eq!(sub.name, s("Ivan Petrov"), "the form's own name is not the lead's");
        assert_eq!(sub.emails, ["ivan@example.com"]);
        assert_eq!(sub.submission_id, s("6321ca84df3949bfc6752327"));
        assert!(sub.extra.is_empty(), "{:?}", sub.extra);
    }

    #[tokio::test]
    async fn typeform_webhook() {
        let sub = map(FormProvider::Typeform, &body("application/json", fixture!("typeform.json")).await);
        assert_eq!(sub.name, s("Laura Fernández"));
        assert_eq!(sub.emails, ["laura.fernandez@example.com"], "by answer type despite a generated ref");
        assert_eq!(sub.phones, ["+16505550147"]);
        assert_eq!(sub.company, s("Acme Logistics"), "by the question title `Company name`");
        assert_eq!(sub.message, s("We ship 2,000 parcels a day and need\na shared inbox for the sales team."));
        assert_eq!(sub.submission_id, s("a3a12ec67a1365927098a606107fac15"));
        assert_eq!(
            sub.utm,
            Utm { source: s("facebook"), medium: None, campaign: s("spring_webinar"), term: None, content: None }
        );
        assert_eq!(sub.language, s("en"));
        assert_eq!(
            sub.extra,
            pairs(&[
                ("team_size", "11-50"),
                ("channels", "Email, WhatsApp"),
                ("seats", "25"),
                ("gdpr", "true"),
                ("start_date", "2026-04-01"),
                ("website", "https://acme-logistics.example.com"),
            ])
        );
    }

    #[tokio::test]
    async fn typeform_mapping_by_ref_or_title_and_event_id_fallback() {
        let json = br#"{"event_id":"01HQ8Z6Y4K2W3V5T7R9P0N1M2B","form_response":{
            "definition":{"fields":[{"id":"a","title":"Who referred you?"},{"id":"b","title":"Your name"}]},
            "answers":[
              {"type":"text","text":"Olga Ivanova","field":{"id":"a","type":"short_text","ref":"referrer_name"}},
              {"type":"text","text":"Petr Sidorov","field":{"id":"b","type":"short_text","ref":"contact"}}]}}"#;
        let form = body("application/json", json).await;
        let guessed = map(FormProvider::Typeform, &form);
        assert_eq!(guessed.name, s("Petr Sidorov"), "title `Your name` names the lead");
        assert_eq!(guessed.submission_id, s("01HQ8Z6Y4K2W3V5T7R9P0N1M2B"), "no token: event_id");

        let by_title =
            map_submission(FormProvider::Typeform, &form, &mapping(&[(LeadField::Name, "who referred you?")]));
        let by_title = by_title.expect("maps");
        assert_eq!(by_title.name, s("Olga Ivanova"));
        assert_eq!(by_title.extra, pairs(&[("contact", "Petr Sidorov")]));

        let by_ref = map_submission(FormProvider::Typeform, &form, &mapping(&[(LeadField::Company, "REFERRER_NAME")]));
        assert_eq!(by_ref.expect("maps").company, s("Olga Ivanova"));
    }

    #[tokio::test]
    async fn typeform_needs_its_json_envelope() {
        let not_json = body(URLENCODED, b"email=a%40b.com").await;
        let err = map_submission(FormProvider::Typeform, &not_json, &BTreeMap::new());
        assert!(matches!(err, Err(MapError::Malformed(m)) if m.contains("JSON")));
        let no_response = body("application/json", br#"{"event_id":"x"}"#).await;
        let err = map_submission(FormProvider::Typeform, &no_response, &BTreeMap::new());
        assert!(matches!(err, Err(MapError::Malformed(m)) if m.contains("form_response")));
    }

    #[tokio::test]
    async fn jotform_webhook() {
        let ct = "multipart/form-data; boundary=------------------------d74496d66958873e";
        let sub = map(FormProvider::Jotform, &body(ct, fixture!("jotform_multipart.txt")).await);
        assert_eq!(sub.name, s("Ivan Petrov"));
        assert_eq!(sub.emails, ["ivan.petrov@example.ru"]);
        assert_eq!(sub.phones, ["+7 912 345-67-89"]);
        assert_eq!(sub.message, s("Нужна интеграция с 1С, когда можно созвониться?"));
        assert_eq!(sub.submission_id, s("5912345678901234567"));
        assert_eq!(
            sub.extra,
            pairs(&[("address", "ул. Тверская, 1, Москва, 125009, Russia"), ("services", "Интеграция, Поддержка")]),
            "only answers, in question order; Jotform's plumbing (ip, pretty, slug…) is dropped"
        );
    }

    #[tokio::test]
    async fn jotform_phone_parts_and_direct_posts() {
        let raw = r#"{"q3_name":{"first":"Ana","last":"López"},"q4_phone":{"area":"415","phone":"5550132"}}"#;
        let form = FormBody { fields: pairs(&[("submissionID", "1"), ("rawRequest", raw)]), ..FormBody::default() };
        let sub = map(FormProvider::Jotform, &form);
        assert_eq!(sub.name, s("Ana López"));
        assert_eq!(sub.phones, ["415 5550132"]);

        let direct =
            body(URLENCODED, b"formID=1&q3_fullName[first]=Ivan&q3_fullName[last]=Petrov&q4_email=i%40p.ru").await;
        let sub = map(FormProvider::Jotform, &direct);
        assert_eq!(sub.name, s("Ivan Petrov"));
        assert_eq!(sub.emails, ["i@p.ru"]);
        assert!(sub.extra.is_empty(), "{:?}", sub.extra);
    }

    #[test]
    fn jotform_bad_raw_request_is_an_error() {
        let form = |raw: &str| FormBody { fields: pairs(&[("rawRequest", raw)]), ..FormBody::default() };
        let err = map_submission(FormProvider::Jotform, &form("{\"q3_name\": "), &BTreeMap::new());
        assert!(matches!(err, Err(MapError::Malformed(m)) if m.contains("rawRequest") && m.contains("not valid JSON")));
        let err = map_submission(FormProvider::Jotform, &form("[1,2]"), &BTreeMap::new());
        assert!(matches!(err, Err(MapError::Malformed(m)) if m.contains("must be a JSON object")));
    }

    #[tokio::test]
    async fn elementor_advanced_webhook() {
        let sub = map(FormProvider::Elementor, &body(URLENCODED, fixture!("elementor.txt")).await);
        assert_eq!(sub.name, s("María García"));
        assert_eq!(sub.emails, ["maria.garcia@example.es"]);
        assert_eq!(sub.phones, ["612 345 678"], "declared `tel`, kept raw for the caller's region");
        assert_eq!(sub.message, s("Necesitamos una web nueva para la clínica."));
        assert_eq!(sub.submission_id, None);
        assert_eq!(
            sub.utm,
            Utm {
                source: s("google"),
                medium: s("cpc"),
                campaign: s("clinicas_madrid"),
                term: s("diseño web"),
                content: None
            }
        );
        assert!(sub.page_url.as_deref().is_some_and(|u| u.starts_with("https://clinica-example.es/contacto/")));
        assert_eq!(sub.extra, pairs(&[("Presupuesto", "5.000 – 10.000 €")]), "no IP, user agent or form id");
    }

    #[tokio::test]
    async fn elementor_mapping_by_field_id_and_simple_mode() {
        let advanced = body(URLENCODED, fixture!("elementor.txt")).await;
        let sub =
            map_submission(FormProvider::Elementor, &advanced, &mapping(&[(LeadField::Company, "FIELD_9A8B7C6")]));
        let sub = sub.expect("maps");
        assert_eq!(sub.company, s("5.000 – 10.000 €"));
        assert!(sub.extra.is_empty(), "{:?}", sub.extra);

        let simple = "Name=Ivan+Petrov&Email=ivan%40example.com&Message=Hi&Date=March+4%2C+2026\
                      &Page+URL=https%3A%2F%2Fexample.com%2Fcontact&User+Agent=Mozilla%2F5.0\
                      &Remote+IP=203.0.113.7&Powered+by=Elementor";
        let sub = map(FormProvider::Elementor, &body(URLENCODED, simple.as_bytes()).await);
        assert_eq!(sub.name, s("Ivan Petrov"));
        assert_eq!(sub.emails, ["ivan@example.com"]);
        assert_eq!(sub.message, s("Hi"));
        assert_eq!(sub.page_url, s("https://example.com/contact"));
        assert_eq!(sub.extra, pairs(&[("Date", "March 4, 2026")]));
    }

    #[tokio::test]
    async fn explicit_mapping_wins_over_guessing() {
        let form = body(
            URLENCODED,
            b"name=Website+Bot&email=noreply%40agency.com&contact_person=Ivan+Petrov&work_email=ivan%40corp.ru&tel=%2B79123456789",
        )
        .await;
        let rules = mapping(&[(LeadField::Name, "Contact_Person"), (LeadField::Email, "WORK_EMAIL")]);
        let sub = map_submission(FormProvider::Generic, &form, &rules).expect("maps");
        assert_eq!(sub.name, s("Ivan Petrov"));
        assert_eq!(sub.emails, ["ivan@corp.ru"], "a guessed email does not compete with the mapped one");
        assert_eq!(sub.phones, ["+79123456789"], "unmapped targets are still guessed");
        assert_eq!(sub.extra, pairs(&[("name", "Website Bot"), ("email", "noreply@agency.com")]));

        let without_mapped_field = body(URLENCODED, b"email=ivan%40example.com").await;
        let sub = map_submission(FormProvider::Generic, &without_mapped_field, &rules).expect("maps");
        assert_eq!(sub.emails, ["ivan@example.com"], "a mapped field absent from this post does not silence guessing");
    }

    #[tokio::test]
    async fn first_and_last_names_combine() {
        assert_eq!(generic("first_name=Ivan&last_name=Petrov").await.name, s("Ivan Petrov"));
        assert_eq!(generic("Nachname=M%C3%BCller&Vorname=Max").await.name, s("Max Müller"));
        assert_eq!(generic("surname=Garc%C3%ADa").await.name, s("García"));
        let both = generic("name=Ivan+Petrov&firstname=Ivan").await;
        assert_eq!(both.name, s("Ivan Petrov"), "a full name beats its parts");
        assert_eq!(both.extra, pairs(&[("firstname", "Ivan")]));
        let mapped = mapping(&[(LeadField::FirstName, "a"), (LeadField::LastName, "b")]);
        let form = body(URLENCODED, b"name=Bot&a=Ivan&b=Petrov").await;
        let sub = map_submission(FormProvider::Generic, &form, &mapped).expect("maps");
        assert_eq!(sub.name, s("Ivan Petrov"), "mapped name parts beat a guessed full name");
        assert_eq!(sub.extra, pairs(&[("name", "Bot")]));
    }

    #[tokio::test]
    async fn values_are_recognised_by_shape_in_odd_fields() {
        let sub =
            generic("field_17=Ivan.Petrov%40Example.com&contact_2=%2B7+912+345+67+89&note=call+%2B79123456789").await;
        assert_eq!(sub.emails, ["Ivan.Petrov@Example.com"], "raw value: the caller normalises");
        assert_eq!(sub.phones, ["+7 912 345 67 89"]);
        assert_eq!(sub.extra, pairs(&[("note", "call +79123456789")]), "text around a number is not a phone");
    }

    #[tokio::test]
    async fn id_like_numbers_are_not_phones() {
        let sub =
            generic("order_id=79123456789&formid=14155550132&ts=14155550132&leadId=79123456789&callback=79123456789")
                .await;
        assert_eq!(sub.phones, ["79123456789"], "only `callback` is a phone");
        assert_eq!(
            sub.extra,
            pairs(&[
                ("order_id", "79123456789"),
                ("formid", "14155550132"),
                ("ts", "14155550132"),
                ("leadId", "79123456789")
            ])
        );
    }

    #[tokio::test]
    async fn utm_from_page_url_only_fills_gaps() {
        let sub = generic(
            "utm_source=newsletter&referer=https%3A%2F%2Fexample.com%2F%3Futm_source%3Dgoogle%26utm_medium%3Demail%26utm_content%3D%2523x%23frag",
        )
        .await;
        assert_eq!(sub.page_url, s("https://example.com/?utm_source=google&utm_medium=email&utm_content=%23x#frag"));
        assert_eq!(sub.utm.source, s("newsletter"), "the form's own field wins");
        assert_eq!(sub.utm.medium, s("email"));
        assert_eq!(sub.utm.content, s("#x"));
        assert_eq!(sub.utm.campaign, None);
    }

    #[tokio::test]
    async fn empty_values_are_absent() {
        let sub = generic("name=+++&email=&phone=&message=%0A++Hi+there++%0A&company=").await;
        assert_eq!(sub.name, None);
        assert!(sub.emails.is_empty() && sub.phones.is_empty());
        assert_eq!(sub.message, s("Hi there"), "values are trimmed");
        assert_eq!(sub.company, None);
        assert!(sub.extra.is_empty(), "{:?}", sub.extra);
    }

    #[test]
    fn long_names_and_messages_are_truncated_on_char_boundaries() {
        let fields = pairs(&[("name", &"Я".repeat(300)), ("message", &"ü".repeat(25_000))]);
        let sub = map(FormProvider::Generic, &FormBody { fields, ..FormBody::default() });
        assert_eq!(sub.name.map(|n| n.chars().count()), Some(NAME_MAX_CHARS));
        assert_eq!(sub.message.map(|m| m.chars().count()), Some(MESSAGE_MAX_CHARS));
    }

    #[tokio::test]
    async fn secrets_and_captcha_tokens_are_not_kept() {
        let sub = generic(
            "email=a%40b.io&secret=s3cr3t&g-recaptcha-response=03AGdBq24&_wpcf7_unit_tag=wpcf7-f5-p2&budget=10k",
        )
        .await;
        assert_eq!(sub.extra, pairs(&[("budget", "10k")]));
    }

    #[test]
    fn duplicate_contacts_are_listed_once_and_second_singles_kept() {
        let fields = pairs(&[
            ("email", "a@b.io"),
            ("contact.email", "a@b.io"),
            ("email2", "c@d.io"),
            ("message", "first"),
            ("comment", "second"),
        ]);
        let sub = map(FormProvider::Generic, &FormBody { fields, ..FormBody::default() });
        assert_eq!(sub.emails, strings(&["a@b.io", "c@d.io"]));
        assert_eq!(sub.message, s("first"));
        assert_eq!(sub.extra, pairs(&[("comment", "second")]));
    }

    #[test]
    fn label_words() {
        assert_eq!(guess_by_label_words("What's your email address?"), Some(Target::Email));
        assert_eq!(guess_by_label_words("Name of your company"), Some(Target::Company));
        assert_eq!(guess_by_label_words("Your first name"), Some(Target::FirstName));
        assert_eq!(guess_by_label_words("Ваш телефон"), Some(Target::Phone));
        assert_eq!(guess_by_label_words("Your website URL"), None, "a website question is not the form's page");
        assert_eq!(guess_by_label_words("Email"), None, "single words are left to exact matching");
    }
}
