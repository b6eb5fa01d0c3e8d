//! Typed configuration: `config/leadrouter.toml` (optional), then `LEADROUTER__SECTION__KEY`
//! environment overrides. `Settings::problems` lists every problem at once for `check-config`.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

use jiff::tz::TimeZone;

pub use crate::domain::NotifyVia;
use crate::domain::routing::{Rule, Strategy};
use crate::domain::working_hours::WorkingHours;
use crate::domain::{Channel, EmailAddress, EventType, LeadField, Region};

mod load;
mod secrets;
mod values;

pub use values::{Period, Written, parse_instant};

pub const DEFAULT_CONFIG_PATH: &str = "config/leadrouter.toml";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub reps: Vec<RepSettings>,
    pub teams: Vec<TeamSettings>,
    pub routing: RoutingSettings,
    pub forms: Vec<FormSettings>,
    pub telegram: TelegramSettings,
    pub imap: Vec<ImapSettings>,
    pub notify: NotifySettings,
    pub outbox: OutboxSettings,
    pub scheduler: SchedulerSettings,
    pub pipeline: PipelineSettings,
    pub inbound: InboundSettings,
    pub log: LogSettings,
}

/// What is kept of the raw items channels receive.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundSettings {
    /// Processed and skipped items keep an excerpt of their body (the first
    /// `store::RAW_EXCERPT_BYTES`) this long; then only its size and sha256 stay. Failed items
    /// keep their whole body until they are replayed. Unset: excerpts are kept for good.
    pub raw_retention: Option<Period>,
}

impl Default for InboundSettings {
    fn default() -> Self {
        InboundSettings { raw_retention: Some(Period::from_secs(30 * 24 * 3600)) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    #[serde(deserialize_with = "values::socket_addr")]
    pub listen: SocketAddr,
    pub public_url: String,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Form posts per second per client IP, and the burst allowed above it.
    pub form_rate_per_second: u32,
    pub form_rate_burst: u32,
    /// Take the client IP from `X-Forwarded-For` (only behind a proxy you trust).
    pub trust_forwarded_for: bool,
    pub request_timeout: Period,
    /// How long in-flight work may take to finish after SIGTERM.
    pub shutdown_grace: Period,
    /// Two submissions with the same body and no submission id within this window are one.
    pub dedup_window: Period,
    /// A request's headers must be complete this soon after its first byte.
    pub header_read_timeout: Period,
    /// A connection with no request in progress and no bytes moving is closed after this
    /// long (a silent new connection, or an idle keep-alive one).
    pub idle_timeout: Period,
    /// Open connections in total. Unset: as many as the process's file limit allows after
    /// keeping descriptors back for the database, the outbox and the channels.
    pub max_connections: Option<usize>,
    /// Open connections from one client address.
    pub max_connections_per_client: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://localhost:8080".into(),
            max_body_bytes: 1024 * 1024,
            form_rate_per_second: 10,
            form_rate_burst: 50,
            trust_forwarded_for: false,
            request_timeout: Period::from_secs(30),
            shutdown_grace: Period::from_secs(10),
            dedup_window: Period::from_secs(600),
            header_read_timeout: Period::from_secs(10),
            idle_timeout: Period::from_secs(60),
            max_connections: None,
            max_connections_per_client: 256,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings { url: "sqlite://data/leadrouter.db".into(), max_connections: 16 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub admin_tokens: Vec<SecretString>,
    /// Failed authentications (API tokens, dashboard sign-in, webhook secrets) one client may
    /// make per `failure_window` before it is answered 429 until the window ends.
    pub failure_limit: u32,
    pub failure_window: Period,
    /// Accept admin and rep tokens shorter than `MIN_TOKEN_CHARS` (local trials only).
    pub allow_weak_tokens: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            admin_tokens: Vec::new(),
            failure_limit: 20,
            failure_window: Period::from_secs(60),
            allow_weak_tokens: false,
        }
    }
}

/// The shortest admin or rep API token accepted (unless `auth.allow_weak_tokens`).
pub const MIN_TOKEN_CHARS: usize = 24;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepSettings {
    pub id: String,
    pub name: String,
    pub email: Option<EmailAddress>,
    pub telegram_chat_id: Option<i64>,
    pub api_token: Option<SecretString>,
    pub capacity: Option<u32>,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default)]
    pub languages: Vec<String>,
    pub timezone: Option<Written<TimeZone>>,
    pub working_hours: Option<Written<WorkingHours>>,
    #[serde(default = "yes")]
    pub active: bool,
    pub out_of_office_until: Option<Written<jiff::Timestamp>>,
    /// `auto` (Telegram if `telegram_chat_id`, else email), `email` or `telegram`.
    #[serde(default)]
    pub notify: NotifyVia,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSettings {
    pub id: String,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub members: Vec<String>,
    /// Time a rep has to accept a lead before it is reassigned.
    pub sla: Option<Period>,
    /// Telegram group where new leads are announced.
    pub notify_chat_id: Option<i64>,
    /// Route to reps outside their working hours too.
    #[serde(default)]
    pub after_hours: bool,
    /// The rep (by id) who hears about escalations and stale leads, and gets the daily digest.
    /// A manager need not be a member.
    pub manager: Option<String>,
    /// How many times the sla moves a lead on before it stays put and the manager is alerted.
    #[serde(default = "three")]
    pub max_reassignments: u32,
}

fn three() -> u32 {
    3
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingSettings {
    pub default_team: Option<String>,
    pub sticky_owner: bool,
    pub rules: Vec<RuleSettings>,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings { default_team: None, sticky_owner: true, rules: Vec::new() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    pub team: String,
    #[serde(default, rename = "match")]
    pub conditions: RuleMatch,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RuleMatch {
    pub channel: Option<Channel>,
    pub form: Option<String>,
    pub mailbox: Option<String>,
    pub utm_source: Option<String>,
    pub language: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FormProvider {
    #[default]
    Generic,
    Tilda,
    Webflow,
    Typeform,
    Jotform,
    Elementor,
}

impl FormProvider {
    /// Providers that sign their requests: a secret is required to check them.
    pub fn signs(self) -> bool {
        matches!(self, FormProvider::Webflow | FormProvider::Typeform)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormSettings {
    pub id: String,
    #[serde(default)]
    pub provider: FormProvider,
    /// Shared secret (`X-Leadrouter-Secret` header or `secret` field), or the signing key of
    /// providers that sign.
    pub secret: Option<SecretString>,
    /// Name of a field real people leave empty; filled in, the post is a bot's.
    pub honeypot: Option<String>,
    /// Browser form posts are answered with a 303 here.
    pub redirect_to: Option<String>,
    pub default_region: Option<Region>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Explicit mapping: lead field (`name`, `email`, `phone`, `message`, `company`, …) → the
    /// form's field name. Wins over the provider's guesses.
    #[serde(default)]
    pub fields: BTreeMap<LeadField, String>,
}

impl FormSettings {
    /// A form with the generic provider, no secret and no extras.
    pub fn open(id: &str) -> Self {
        FormSettings {
            id: id.to_owned(),
            provider: FormProvider::Generic,
            secret: None,
            honeypot: None,
            redirect_to: None,
            default_region: None,
            allowed_origins: Vec::new(),
            fields: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TelegramMode {
    #[default]
    Polling,
    Webhook,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramSettings {
    pub enabled: bool,
    pub token: Option<SecretString>,
    pub mode: TelegramMode,
    /// Where the Bot API is (tests point it at a fake on 127.0.0.1).
    pub api_url: String,
    /// Checked against `X-Telegram-Bot-Api-Secret-Token` in webhook mode.
    pub webhook_secret: Option<SecretString>,
    /// How long one `getUpdates` long poll waits.
    pub poll_timeout: Period,
    /// The answer to `/start`.
    pub welcome: String,
    /// With `/start`, a reply keyboard button that shares the prospect's phone number
    /// (`request_contact`); empty = no button.
    pub share_phone_button: String,
    /// The reasons a rep picks from after pressing "Lost…" on a lead. Empty (the default) =
    /// `pipeline.lost_reasons` except `other`, which needs a note.
    pub lost_reasons: Vec<String>,
    /// How long a rep's link (`POST /api/v1/reps/{id}/telegram-link`) can be used.
    pub link_ttl: Period,
}

impl Default for TelegramSettings {
    fn default() -> Self {
        TelegramSettings {
            enabled: false,
            token: None,
            mode: TelegramMode::Polling,
            api_url: "https://api.telegram.org".into(),
            webhook_secret: None,
            poll_timeout: Period::from_secs(30),
            welcome: "Hello! Tell us what you need, and a member of our team will answer you here.".into(),
            share_phone_button: "Share my phone number".into(),
            lost_reasons: Vec::new(),
            link_ttl: Period::from_secs(24 * 3600),
        }
    }
}

impl Settings {
    /// The reasons offered behind a rep's "Lost…" button in Telegram.
    pub fn telegram_lost_reasons(&self) -> Vec<String> {
        if !self.telegram.lost_reasons.is_empty() {
            return self.telegram.lost_reasons.clone();
        }
        self.pipeline.lost_reasons.iter().filter(|r| r.as_str() != OTHER_REASON).cloned().collect()
    }
}

impl TelegramSettings {
    /// `<api_url>/bot<token>`: the base of every Bot API method.
    pub fn bot_base(&self) -> String {
        use secrecy::ExposeSecret;
        let token = self.token.as_ref().map(|t| t.expose_secret().to_owned()).unwrap_or_default();
        format!("{}/bot{token}", self.api_url.trim_end_matches('/'))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImapTls {
    #[default]
    Implicit,
    Starttls,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSettings {
    pub id: String,
    pub host: String,
    #[serde(default = "imap_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: ImapTls,
    pub username: String,
    pub password: Option<SecretString>,
    /// The address people write to (`sales@example.com`) when it differs from `username`:
    /// mail from it is ours, never a lead.
    pub address: Option<String>,
    #[serde(default = "inbox")]
    pub folder: String,
    pub processed_folder: Option<String>,
    #[serde(default = "yes")]
    pub idle: bool,
    /// Without IDLE (or with `idle = false`), how often the folder is checked.
    #[serde(default = "poll_every")]
    pub poll_interval: Period,
    pub default_region: Option<Region>,
    /// How far back the first start imports (`"7d"`); `"0s"` imports nothing old, and
    /// `backfill_all = true` imports the whole folder.
    #[serde(default = "week")]
    pub backfill: Period,
    #[serde(default)]
    pub backfill_all: bool,
    /// `tls = "none"` is refused for anything but a loopback host unless this is set.
    #[serde(default)]
    pub allow_insecure: bool,
    /// PEM file with extra trusted CA certificates (a company CA, a test server).
    pub ca_file: Option<PathBuf>,
    /// Time limit of each IMAP command.
    #[serde(default = "command_timeout")]
    pub command_timeout: Period,
    /// Answer a new inquiry with an acknowledgement (needs `[notify.email]`). Never sent to
    /// auto-replies, bounces or lists, and at most once per address per `acknowledge_window`.
    #[serde(default)]
    pub acknowledge: bool,
    /// `{name}` and `{subject}` are filled in.
    #[serde(default = "ack_subject")]
    pub acknowledge_subject: String,
    #[serde(default = "ack_text")]
    pub acknowledge_text: String,
    #[serde(default = "day")]
    pub acknowledge_window: Period,
}

fn ack_subject() -> String {
    "Re: {subject}".into()
}
fn ack_text() -> String {
    "Hello {name},\n\nthank you for your message. It has reached our sales team, and the person who \
     takes care of it will get back to you shortly.\n"
        .into()
}
fn day() -> Period {
    Period::from_secs(24 * 3600)
}

fn poll_every() -> Period {
    Period::from_secs(60)
}
fn week() -> Period {
    Period::from_secs(7 * 24 * 3600)
}
fn command_timeout() -> Period {
    Period::from_secs(30)
}

impl ImapSettings {
    /// A mailbox with every optional key at its default.
    pub fn new(id: &str, host: &str, port: u16, tls: ImapTls, username: &str, password: &str, folder: &str) -> Self {
        ImapSettings {
            id: id.into(),
            host: host.into(),
            port,
            tls,
            username: username.into(),
            password: Some(password.to_owned().into()),
            address: None,
            folder: folder.into(),
            processed_folder: None,
            idle: true,
            poll_interval: poll_every(),
            default_region: None,
            backfill: week(),
            backfill_all: false,
            allow_insecure: false,
            ca_file: None,
            command_timeout: command_timeout(),
            acknowledge: false,
            acknowledge_subject: ack_subject(),
            acknowledge_text: ack_text(),
            acknowledge_window: day(),
        }
    }

    /// The mailbox's own addresses, lower-cased: mail from them is never a lead.
    pub fn own_addresses(&self) -> Vec<String> {
        let mut own: Vec<String> = self
            .address
            .iter()
            .chain(Some(&self.username))
            .filter(|a| a.contains('@'))
            .map(|a| a.trim().to_lowercase())
            .collect();
        own.dedup();
        own
    }
}

fn imap_port() -> u16 {
    993
}
fn inbox() -> String {
    "INBOX".into()
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    pub email: Option<EmailNotifySettings>,
    pub webhooks: Vec<WebhookSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailNotifySettings {
    pub host: String,
    #[serde(default = "smtp_port")]
    pub port: u16,
    /// `starttls` (587), `implicit` (465), or `none` (loopback relays only).
    #[serde(default)]
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub from: EmailAddress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    #[default]
    Starttls,
    Implicit,
    None,
}

fn smtp_port() -> u16 {
    587
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    /// HMAC-SHA256 key for the `X-Leadrouter-Signature` header.
    pub secret: Option<SecretString>,
    /// Empty = every event.
    #[serde(default)]
    pub events: Vec<EventType>,
}

impl WebhookSettings {
    pub fn wants(&self, event_type: EventType) -> bool {
        self.events.is_empty() || self.events.contains(&event_type)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// Attempts before a message is marked dead.
    pub max_attempts: u32,
    pub base_backoff: Period,
    pub max_backoff: Period,
    pub poll_interval: Period,
    /// A claimed message not finished within this time is retried (its worker died).
    pub lease: Period,
    pub request_timeout: Period,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            max_attempts: 10,
            base_backoff: Period::from_secs(2),
            max_backoff: Period::from_secs(3600),
            poll_interval: Period(std::time::Duration::from_millis(500)),
            lease: Period::from_secs(60),
            request_timeout: Period::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// How often waiting leads are offered to reps who became eligible by the clock (working
    /// hours starting, out-of-office ending). Other changes drain the queue at once.
    pub unassigned_interval: Period,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings { unassigned_interval: Period::from_secs(15) }
    }
}

/// Follow-up discipline: what a lead must carry, and when the scheduler speaks up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// The reasons a lead can be lost for; `other` needs a `lost_note`. Empty = any text.
    pub lost_reasons: Vec<String>,
    /// An open lead past `new` must carry `next_action_at`.
    pub require_next_action: bool,
    /// No activity for this long: the owner and the team's manager are alerted.
    pub stale_after: Option<Period>,
    /// Close leads `waiting_response` for this long as lost with `no_response`. Off by default.
    pub auto_lost_after: Option<Period>,
    /// Close leads after this many outbound messages in a row without an answer. Off by default.
    pub auto_lost_attempts: Option<u32>,
    /// When managers get the daily digest, in their own time zone ("08:00"); `""` = never.
    #[serde(deserialize_with = "values::optional_clock")]
    pub digest_at: Option<jiff::civil::Time>,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            lost_reasons: ["too expensive", "no budget", "chose a competitor", "not a fit", NO_RESPONSE, OTHER_REASON]
                .map(String::from)
                .to_vec(),
            require_next_action: true,
            stale_after: Some(Period::from_secs(7 * 24 * 3600)),
            auto_lost_after: None,
            auto_lost_attempts: None,
            digest_at: Some(jiff::civil::Time::constant(8, 0, 0, 0)),
        }
    }
}

impl PipelineSettings {
    /// The listed reason `given` names (case, `_` and spaces aside).
    pub fn lost_reason(&self, given: &str) -> Option<&str> {
        crate::domain::lead::listed_reason(&self.lost_reasons, given)
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.lost_reasons {
            if r.trim().is_empty() || r.chars().count() > 200 {
                p.push("pipeline.lost_reasons: a reason must be 1 to 200 characters".into());
            } else if !seen.insert(crate::domain::lead::reason_key(r)) {
                p.push(format!("pipeline.lost_reasons: `{r}` is listed twice"));
            }
        }
        if self.auto_lost_attempts == Some(0) {
            p.push("pipeline.auto_lost_attempts must be at least 1 (leave it out to switch it off)".into());
        }
        p
    }
}

/// The reason the scheduler closes unanswered leads with.
pub const NO_RESPONSE: &str = "no_response";
/// The reason that needs a note.
pub const OTHER_REASON: &str = "other";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `leadrouter=debug,info`.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { format: LogFormat::Text, level: "info".into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    /// Values that could not be read, one problem each.
    #[error("{}", .0.join("\n"))]
    Unreadable(Vec<String>),
}

impl Settings {
    /// Reads the file (the default path may be absent) and the environment. A value of the
    /// wrong type does not hide the ones after it: the error lists them all.
    pub fn load(explicit: Option<&Path>) -> Result<Settings, SettingsError> {
        Self::checked(load::extract_all(&Self::figment(explicit)?))
    }

    /// What `check-config` reports: every value that could not be read, then the problems of
    /// the settings read from the rest. Empty: valid.
    pub fn check(explicit: Option<&Path>) -> Result<Vec<String>, SettingsError> {
        Ok(every_problem(&Self::figment(explicit)?))
    }

    /// Settings from TOML text alone (no file, no environment): for tests and tools.
    pub fn from_toml(text: &str) -> Result<Settings, SettingsError> {
        Self::checked(load::extract_all(&Figment::new().merge(Toml::string(text))))
    }

    /// Settings from several TOML texts, each over the ones before: its values replace theirs,
    /// its arrays (`[[reps]]`, `[[forms]]`, …) add to theirs. For tests and tools that start
    /// from a base configuration.
    pub fn from_toml_layers(layers: &[&str]) -> Result<Settings, SettingsError> {
        let figment = layers.iter().fold(Figment::new(), |f, layer| f.admerge(Toml::string(layer)));
        Self::checked(load::extract_all(&figment))
    }

    fn checked((settings, problems): (Option<Settings>, Vec<String>)) -> Result<Settings, SettingsError> {
        match settings {
            Some(settings) if problems.is_empty() => Ok(settings),
            _ => Err(SettingsError::Unreadable(problems)),
        }
    }

    fn figment(explicit: Option<&Path>) -> Result<Figment, SettingsError> {
        let path = match explicit {
            Some(p) if !p.exists() => return Err(SettingsError::Missing(p.to_owned())),
            Some(p) => p.to_owned(),
            None => PathBuf::from(DEFAULT_CONFIG_PATH),
        };
        Ok(Figment::new().merge(Toml::file(path)).merge(Env::prefixed("LEADROUTER__").split("__")))
    }

    /// Every problem in a loaded configuration, in reading order. Empty = valid.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.server.max_body_bytes == 0 || self.server.form_rate_per_second == 0 || self.server.form_rate_burst == 0
        {
            p.push("server.max_body_bytes, form_rate_per_second and form_rate_burst must be positive".into());
        }
        let url = &self.database.url;
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            p.push(format!("database.url must start with sqlite: or postgres:// (got `{url}`)"));
        }
        if self.database.max_connections == 0 {
            p.push("database.max_connections must be at least 1".into());
        }

        p.extend(secrets::problems(self));
        let team_ids = duplicates("teams", self.teams.iter().map(|t| t.id.as_str()), &mut p);
        let rep_ids = duplicates("reps", self.reps.iter().map(|r| r.id.as_str()), &mut p);
        for rep in &self.reps {
            let who = format!("rep `{}`", rep.id);
            if rep.id.trim().is_empty() || rep.name.trim().is_empty() {
                p.push(format!("{who}: id and name must not be empty"));
            }
            for team in rep.teams.iter().filter(|t| !team_ids.contains(t.as_str())) {
                p.push(format!("{who} is in team `{team}`, which is not defined in [[teams]]"));
            }
            if rep.weight == 0 {
                p.push(format!("{who}: weight must be at least 1"));
            }
        }
        for team in &self.teams {
            for m in team.members.iter().filter(|m| !rep_ids.contains(m.as_str())) {
                p.push(format!("team `{}` lists member `{m}`, who is not defined in [[reps]]", team.id));
            }
            if self.team_members(&team.id).is_empty() {
                p.push(format!("team `{}` has no members", team.id));
            }
            if let Some(m) = team.manager.as_ref().filter(|m| !rep_ids.contains(m.as_str())) {
                p.push(format!("team `{}`: manager `{m}` is not defined in [[reps]]", team.id));
            }
            if team.strategy == Strategy::Claim && team.notify_chat_id.is_none() {
                p.push(format!(
                    "team `{}` uses strategy `claim` but has no notify_chat_id to announce leads in",
                    team.id
                ));
            }
        }
        p.extend(self.pipeline.problems());
        for reason in self.telegram.lost_reasons.iter() {
            if !self.pipeline.lost_reasons.is_empty() && self.pipeline.lost_reason(reason).is_none() {
                p.push(format!("telegram.lost_reasons: `{reason}` is not one of pipeline.lost_reasons"));
            }
        }
        if let Some(t) = &self.routing.default_team
            && !team_ids.contains(t.as_str())
        {
            p.push(format!("routing.default_team `{t}` is not defined in [[teams]]"));
        }
        for (i, rule) in self.routing.rules.iter().enumerate() {
            if !team_ids.contains(rule.team.as_str()) {
                p.push(format!("routing.rules[{i}] routes to team `{}`, which is not defined", rule.team));
            }
        }
        duplicates("forms", self.forms.iter().map(|f| f.id.as_str()), &mut p);
        for form in &self.forms {
            if !valid_form_id(&form.id) {
                p.push(format!(
                    "form `{}`: an id is 1–64 letters, digits, `-` or `_` (it is the last part of the form's URL)",
                    form.id
                ));
            }
            if form.provider.signs() && form.secret.is_none() {
                p.push(format!(
                    "form `{}`: provider {:?} signs its requests, so a secret is required",
                    form.id, form.provider
                ));
            }
        }
        if self.telegram.enabled && self.telegram.token.is_none() {
            p.push("telegram.enabled is true but telegram.token is missing".into());
        }
        if self.telegram.enabled
            && self.telegram.mode == TelegramMode::Webhook
            && self.telegram.webhook_secret.is_none()
        {
            p.push("telegram.mode = \"webhook\" needs telegram.webhook_secret".into());
        }
        let reasons = &self.telegram.lost_reasons;
        if reasons.len() > 20 || reasons.iter().any(|r| r.trim().is_empty() || r.chars().count() > 64) {
            p.push("telegram.lost_reasons: at most 20 reasons of 1–64 characters each".into());
        }
        duplicates("imap", self.imap.iter().map(|m| m.id.as_str()), &mut p);
        for m in &self.imap {
            let loopback = matches!(m.host.as_str(), "localhost" | "127.0.0.1" | "::1");
            if m.tls == ImapTls::None && !loopback && !m.allow_insecure {
                p.push(format!(
                    "imap `{}`: tls = \"none\" would send the password in clear to {}; use implicit or starttls, or set allow_insecure = true",
                    m.id, m.host
                ));
            }
            if m.password.is_none() {
                p.push(format!("imap `{}`: password is missing", m.id));
            }
            if let Some(ca) = &m.ca_file
                && !ca.exists()
            {
                p.push(format!("imap `{}`: ca_file {} does not exist", m.id, ca.display()));
            }
        }
        if let Some(e) = &self.notify.email
            && e.tls == SmtpTls::None
            && !matches!(e.host.as_str(), "localhost" | "127.0.0.1" | "::1")
        {
            p.push(format!("notify.email: tls = \"none\" is only allowed for a relay on this machine, not {}", e.host));
        }
        for m in self.imap.iter().filter(|m| m.acknowledge && self.notify.email.is_none()) {
            p.push(format!("imap `{}`: acknowledge = true needs [notify.email] to send with", m.id));
        }
        for (i, w) in self.notify.webhooks.iter().enumerate() {
            if reqwest::Url::parse(&w.url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true) {
                p.push(format!("notify.webhooks[{i}]: `{}` is not an http(s) URL", w.url));
            }
        }
        if self.outbox.max_attempts == 0 {
            p.push("outbox.max_attempts must be at least 1".into());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            p.push(format!("log.level `{}`: {e}", self.log.level));
        }
        p
    }

    /// Members of a team: its `members` plus every rep that names the team.
    pub fn team_members(&self, team: &str) -> Vec<String> {
        let mut m: Vec<String> = self
            .teams
            .iter()
            .filter(|t| t.id == team)
            .flat_map(|t| t.members.iter().cloned())
            .chain(self.reps.iter().filter(|r| r.teams.iter().any(|t| t == team)).map(|r| r.id.clone()))
            .collect();
        m.sort();
        m.dedup();
        m
    }

    pub fn team(&self, id: &str) -> Option<&TeamSettings> {
        self.teams.iter().find(|t| t.id == id)
    }

    /// The address our notification emails come from.
    pub fn notify_from(&self) -> Option<&str> {
        self.notify.email.as_ref().map(|e| e.from.as_str())
    }

    pub fn form(&self, id: &str) -> Option<&FormSettings> {
        self.forms.iter().find(|f| f.id == id)
    }

    /// Routing rules in domain form.
    pub fn rules(&self) -> Vec<Rule> {
        self.routing
            .rules
            .iter()
            .map(|r| Rule {
                team: r.team.clone(),
                channel: r.conditions.channel,
                form: r.conditions.form.clone(),
                mailbox: r.conditions.mailbox.clone(),
                utm_source: r.conditions.utm_source.clone(),
                language: r.conditions.language.clone(),
                country: r.conditions.country.clone(),
            })
            .collect()
    }
}

fn duplicates<'a>(what: &str, ids: impl Iterator<Item = &'a str>, problems: &mut Vec<String>) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            problems.push(format!("{what}: id `{id}` is defined twice"));
        }
    }
    seen
}

fn every_problem(figment: &Figment) -> Vec<String> {
    let (settings, mut problems) = load::extract_all(figment);
    problems.extend(settings.map(|s| s.problems()).unwrap_or_default());
    problems
}

/// Form ids are one URL path segment: `/api/v1/forms/{id}`.
pub fn valid_form_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(s: &str) -> Settings {
        Figment::new().merge(Toml::string(s)).extract().expect("parses")
    }

    #[test]
    fn no_config_at_all_is_valid() {
        let s = Settings::default();
        assert!(s.problems().is_empty(), "{:?}", s.problems());
        assert_eq!(s.database.url, "sqlite://data/leadrouter.db");
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
    }

    fn all_problems(toml: &str) -> Vec<String> {
        every_problem(&Figment::new().merge(Toml::string(toml)))
    }

    #[test]
    fn every_problem_is_listed() {
        let problems = all_problems(
            r#"
            [[reps]]
            id = "anna"
            name = "Anna"
            teams = ["ghost"]
            timezone = "Mars/Olympus"
            working_hours = "Mon-Fri 9-5"
            [[reps]]
            id = "anna"
            name = "Anna again"
            [[teams]]
            id = "sales"
            members = ["zoe"]
            [[teams]]
            id = "empty"
            [[forms]]
            id = "wf"
            provider = "webflow"
            default_region = "XX"
            fields = { favourite_colour = "colour" }
            "#,
        )
        .join("\n");
        for needle in [
            "reps: id `anna` is defined twice",
            "team `ghost`, which is not defined",
            "unknown timezone `Mars/Olympus`",
            "working hours `Mon-Fri 9-5`",
            "member `zoe`, who is not defined",
            "team `empty` has no members",
            "forms[0].default_region: unknown region `XX`",
            "forms[0].fields.favourite_colour: `favourite_colour` is not one of name, first_name",
            "a secret is required",
        ] {
            assert!(problems.contains(needle), "missing {needle:?} in:\n{problems}");
        }
    }

    #[test]
    fn the_documented_example_config_is_valid_once_its_placeholders_are_filled() {
        let example = include_str!("../../config/leadrouter.example.toml");
        let s = Settings::from_toml(example).expect("parses");
        let problems = s.problems();
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert!(problems.iter().all(|p| p.contains("placeholder")), "only its placeholders are refused: {problems:?}");
        let mut filled = example.to_owned();
        for (n, placeholder) in [
            "change-me-to-a-long-random-string",
            "anna-personal-token",
            "typeform-signing-secret",
            "webhook-signing-secret",
            "…",
        ]
        .iter()
        .enumerate()
        {
            filled =
                filled.replace(&format!("\"{placeholder}\""), &format!("\"filled-in-secret-{n}-0123456789abcdef\""));
        }
        let s = Settings::from_toml(&filled).expect("parses");
        assert!(s.problems().is_empty(), "{:?}", s.problems());
        assert_eq!(s.team_members("sales"), vec!["anna".to_string(), "ben".to_string()]);
    }

    #[test]
    fn durations_read_like_people_write_them() {
        let s = from_toml("[[teams]]\nid = \"sales\"\nsla = \"15m\"\n");
        assert_eq!(s.teams[0].sla, Some(Period::from_secs(900)));
        let bad = Figment::new().merge(Toml::string("[[teams]]\nid = \"s\"\nsla = \"soon\"\n")).extract::<Settings>();
        assert!(bad.is_err());
    }

    #[test]
    fn team_members_come_from_both_sides() {
        let s = from_toml(
            "[[reps]]\nid = \"anna\"\nname = \"A\"\nteams = [\"sales\"]\n[[reps]]\nid = \"ben\"\nname = \"B\"\n[[teams]]\nid = \"sales\"\nmembers = [\"ben\"]\n",
        );
        assert_eq!(s.team_members("sales"), vec!["anna".to_string(), "ben".to_string()]);
    }
}
