//! Row types the store hands out, and a small builder for queries whose shape depends on
//! filters. (`QueryBuilder` writes `?` placeholders under `Any`, which PostgreSQL rejects.)

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Arguments, AssertSqlSafe, Encode, Row, Type};

use super::{Result, StoreError};
pub use crate::domain::records::{AssignmentRow, IdentityRow, InteractionRow, LeadRow, OwnerRef};

/// SQL text plus its arguments, numbered `$1, $2, …` on both backends.
#[derive(Default)]
pub(crate) struct Sql {
    text: String,
    args: AnyArguments,
    n: usize,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Sql { text: text.to_owned(), ..Default::default() }
    }
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }
    /// Appends the next placeholder and binds `value` to it.
    pub fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any> + Send + 'static,
    {
        self.n += 1;
        self.text.push('$');
        self.text.push_str(&self.n.to_string());
        // Encoding into `AnyArguments` only fails for types `Any` cannot carry, which the
        // bounds above already exclude.
        let _ = self.args.add(value);
        self
    }
    pub fn build(self) -> sqlx::query::Query<'static, Any, AnyArguments> {
        sqlx::query_with(AssertSqlSafe(self.text), self.args)
    }
}

/// Column access with the column named in the error.
pub(crate) trait Col {
    fn col<T>(&self, name: &str) -> Result<T>
    where
        T: for<'r> sqlx::Decode<'r, Any> + Type<Any>;

    /// A text column as the domain type it names (a status, a channel, …).
    fn col_as<T>(&self, name: &str) -> Result<T>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let text: String = self.col(name)?;
        text.parse().map_err(|e: T::Err| StoreError::Corrupt(format!("column {name}: {e}")))
    }
}

impl Col for AnyRow {
    fn col<T>(&self, name: &str) -> Result<T>
    where
        T: for<'r> sqlx::Decode<'r, Any> + Type<Any>,
    {
        self.try_get::<T, _>(name).map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
    }
}

pub(crate) const LEAD_SELECT: &str = "SELECT l.id, l.contact_id, c.name AS contact_name, l.channel, l.source_form, \
     l.source_mailbox, l.source_bot, l.utm_source, l.utm_medium, l.utm_campaign, l.utm_term, l.utm_content, \
     l.referrer, l.language, l.country, l.status, l.lost_reason, l.lost_note, l.team_id, l.owner_id, r.name AS owner_name, \
     l.assigned_at, l.accepted_at, l.first_response_at, l.next_action_at, l.next_action_note, \
     l.last_activity_at, l.custom_fields, l.closed_at, l.merged_into, l.created_at, l.updated_at \
     FROM leads l JOIN contacts c ON c.id = l.contact_id LEFT JOIN reps r ON r.id = l.owner_id";

impl LeadRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        let owner_id: Option<String> = row.col("owner_id")?;
        let owner_name: Option<String> = row.col("owner_name")?;
        Ok(LeadRow {
            id: row.col("id")?,
            contact_id: row.col("contact_id")?,
            contact_name: row.col("contact_name")?,
            channel: row.col_as("channel")?,
            source_form: row.col("source_form")?,
            source_mailbox: row.col("source_mailbox")?,
            source_bot: row.col("source_bot")?,
            utm_source: row.col("utm_source")?,
            utm_medium: row.col("utm_medium")?,
            utm_campaign: row.col("utm_campaign")?,
            utm_term: row.col("utm_term")?,
            utm_content: row.col("utm_content")?,
            referrer: row.col("referrer")?,
            language: row.col("language")?,
            country: row.col("country")?,
            status: row.col_as("status")?,
            lost_reason: row.col("lost_reason")?,
            lost_note: row.col("lost_note")?,
            team_id: row.col("team_id")?,
            owner: owner_id.map(|id| OwnerRef { name: owner_name.unwrap_or_else(|| id.clone()), id }),
            assigned_at: row.col("assigned_at")?,
            accepted_at: row.col("accepted_at")?,
            first_response_at: row.col("first_response_at")?,
            next_action_at: row.col("next_action_at")?,
            next_action_note: row.col("next_action_note")?,
            last_activity_at: row.col("last_activity_at")?,
            custom_fields: row.col("custom_fields")?,
            closed_at: row.col("closed_at")?,
            merged_into: row.col("merged_into")?,
            created_at: row.col("created_at")?,
            updated_at: row.col("updated_at")?,
        })
    }
}

impl InteractionRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(InteractionRow {
            id: row.col("id")?,
            channel: row.col("channel")?,
            direction: row.col("direction")?,
            kind: row.col("kind")?,
            author_id: row.col("author_id")?,
            external_id: row.col("external_id")?,
            subject: row.col("subject")?,
            text: row.col("text")?,
            attachments: row.col("attachments")?,
            at: row.col("at")?,
        })
    }
}
