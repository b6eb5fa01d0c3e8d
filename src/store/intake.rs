//! The storage steps of intake, all inside one `Tx`: contacts and identities, the open lead,
//! routing state, assignments, interactions, events and outbox rows.

use jiff::tz::TimeZone;

use crate::domain::dedup::Match;
use crate::domain::routing::{Candidate, Schedule};
use crate::domain::working_hours::WorkingHours;
use crate::domain::{Identity, Inquiry};

use super::rows::{Col, Sql};
use super::{Result, StoreError, Tx, from_ms, new_id};

/// A new lead's columns, taken from the inquiry that opens it.
pub struct LeadDraft<'a> {
    pub id: &'a str,
    pub contact_id: &'a str,
    pub inquiry: &'a Inquiry,
    pub team_id: Option<&'a str>,
    pub now: i64,
}

/// An event on a lead and the outbox messages it fans out to.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub lead_id: Option<String>,
    pub event_type: &'static str,
    pub actor: Option<String>,
    pub data: serde_json::Value,
    pub at: i64,
    /// `(kind, target)` of each outbox message to write, e.g. `("webhook", url)`.
    pub deliveries: Vec<(&'static str, String)>,
}

/// The team a lead is routed in and the sequence number this routing took.
#[derive(Debug, Clone)]
pub struct RouteTarget {
    pub team_id: String,
    pub seq: i64,
}

/// An open lead as intake needs it.
#[derive(Debug, Clone)]
pub struct OpenLead {
    pub id: String,
    pub owner_id: Option<String>,
}

const CANDIDATE_COLUMNS: &str = "r.id, r.active, r.out_of_office_until, r.capacity, r.open_leads, r.weight, \
     r.timezone, r.working_hours";

fn candidate_from_row(row: &sqlx::any::AnyRow, with_state: bool) -> Result<Candidate> {
    let timezone: Option<String> = row.col("timezone")?;
    let hours: Option<String> = row.col("working_hours")?;
    // Both were validated when the rep was written; a value that no longer parses (say a
    // time zone renamed in a tz database update) means "no schedule", not "never eligible".
    let schedule = match hours.as_deref().map(WorkingHours::parse) {
        Some(Ok(hours)) => Some(Schedule {
            hours,
            tz: timezone.as_deref().and_then(|t| TimeZone::get(t).ok()).unwrap_or(TimeZone::UTC),
        }),
        _ => None,
    };
    let active: i64 = row.col("active")?;
    let capacity: Option<i64> = row.col("capacity")?;
    let open_leads: i64 = row.col("open_leads")?;
    let weight: i64 = row.col("weight")?;
    Ok(Candidate {
        rep_id: row.col("id")?,
        active: active != 0,
        out_of_office_until: row.col::<Option<i64>>("out_of_office_until")?.map(from_ms),
        capacity: capacity.map(|c| u32::try_from(c).unwrap_or(0)),
        open_leads: u32::try_from(open_leads).unwrap_or(u32::MAX),
        weight: u32::try_from(weight).unwrap_or(1),
        schedule,
        last_assigned_seq: if with_state { row.col("last_assigned_seq")? } else { 0 },
        wrr_current: if with_state { row.col("wrr_current")? } else { 0 },
    })
}

impl Tx {
    /// Contacts that own any of `identities`.
    pub async fn contacts_matching(&mut self, identities: &[Identity]) -> Result<Vec<Match>> {
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Sql::new(
            "SELECT DISTINCT c.id, c.created_at FROM identities i JOIN contacts c ON c.id = i.contact_id WHERE ",
        );
        for (n, identity) in identities.iter().enumerate() {
            q.push(if n == 0 { "(i.kind = " } else { " OR (i.kind = " });
            q.bind(identity.kind().as_str().to_owned()).push(" AND i.value = ").bind(identity.value().to_owned());
            q.push(")");
        }
        let rows = q.build().fetch_all(&mut *self.tx).await?;
        rows.iter().map(|r| Ok(Match { contact_id: r.col("id")?, created_at_ms: r.col("created_at")? })).collect()
    }

    pub async fn create_contact(&mut self, name: Option<&str>, now: i64) -> Result<String> {
        let id = new_id();
        sqlx::query("INSERT INTO contacts (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)")
            .bind(&id)
            .bind(name.map(str::to_owned))
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(id)
    }

    /// Locks the contact for this transaction (PostgreSQL), so two inquiries from one person
    /// cannot both open a lead, and fills in a name the contact did not have yet.
    pub async fn lock_contact(&mut self, contact_id: &str, name: Option<&str>, now: i64) -> Result<()> {
        let mut q = Sql::new("SELECT name FROM contacts WHERE id = ");
        q.bind(contact_id.to_owned()).push(self.backend.for_update());
        let row = q.build().fetch_optional(&mut *self.tx).await?.ok_or(StoreError::NotFound("contact"))?;
        let current: Option<String> = row.col("name")?;
        if current.is_none() && name.is_some() {
            sqlx::query("UPDATE contacts SET name = $1, updated_at = $2 WHERE id = $3")
                .bind(name.map(str::to_owned))
                .bind(now)
                .bind(contact_id)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Gives the contact every identity it does not have yet. An identity that another
    /// transaction just gave to someone else makes this whole unit of work retry.
    pub async fn attach_identities(&mut self, contact_id: &str, identities: &[Identity], now: i64) -> Result<()> {
        for identity in identities {
            let owner: Option<String> = sqlx::query_scalar(
                "INSERT INTO identities (kind, value, contact_id, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (kind, value) DO UPDATE SET kind = identities.kind RETURNING contact_id",
            )
            .bind(identity.kind().as_str())
            .bind(identity.value().to_owned())
            .bind(contact_id)
            .bind(now)
            .fetch_optional(&mut *self.tx)
            .await?;
            if owner.as_deref() != Some(contact_id) {
                return Err(StoreError::Retry);
            }
        }
        Ok(())
    }

    pub async fn open_lead(&mut self, contact_id: &str) -> Result<Option<OpenLead>> {
        let row = sqlx::query("SELECT id, owner_id FROM leads WHERE contact_id = $1 AND closed_at IS NULL")
            .bind(contact_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| Ok(OpenLead { id: r.col("id")?, owner_id: r.col("owner_id")? })).transpose()
    }

    /// The owner of the contact's most recent lead, for sticky routing.
    pub async fn previous_owner(&mut self, contact_id: &str) -> Result<Option<String>> {
        let owner: Option<Option<String>> = sqlx::query_scalar(
            "SELECT owner_id FROM leads WHERE contact_id = $1 AND owner_id IS NOT NULL \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(contact_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(owner.flatten())
    }

    pub async fn insert_lead(&mut self, d: &LeadDraft<'_>) -> Result<()> {
        let i = d.inquiry;
        let s = &i.source;
        let custom = serde_json::Value::Object(i.custom_fields.clone()).to_string();
        sqlx::query(
            "INSERT INTO leads (id, contact_id, channel, source_form, source_mailbox, source_bot, utm_source, \
             utm_medium, utm_campaign, utm_term, utm_content, referrer, language, country, status, team_id, \
             last_activity_at, custom_fields, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'new', $15, $16, $17, $16, $16)",
        )
        .bind(d.id)
        .bind(d.contact_id)
        .bind(i.channel.as_str())
        .bind(s.form.clone())
        .bind(s.mailbox.clone())
        .bind(s.bot.clone())
        .bind(s.utm_source.clone())
        .bind(s.utm_medium.clone())
        .bind(s.utm_campaign.clone())
        .bind(s.utm_term.clone())
        .bind(s.utm_content.clone())
        .bind(s.referrer.clone())
        .bind(i.language.clone())
        .bind(i.country.clone())
        .bind(d.team_id.map(str::to_owned))
        .bind(d.now)
        .bind(custom)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Adds one message or note to a lead's timeline and marks the lead active.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_interaction(
        &mut self,
        lead_id: &str,
        channel: &str,
        direction: &str,
        kind: &str,
        author_id: Option<&str>,
        external_id: Option<&str>,
        subject: Option<&str>,
        text: &str,
        attachments_json: &str,
        at: i64,
    ) -> Result<String> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO interactions (id, lead_id, channel, direction, kind, author_id, external_id, subject, text, \
             attachments, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(lead_id)
        .bind(channel)
        .bind(direction)
        .bind(kind)
        .bind(author_id.map(str::to_owned))
        .bind(external_id.map(str::to_owned))
        .bind(subject.map(str::to_owned))
        .bind(text.to_owned())
        .bind(attachments_json.to_owned())
        .bind(at)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("UPDATE leads SET last_activity_at = $1, updated_at = $1 WHERE id = $2")
            .bind(at)
            .bind(lead_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(id)
    }

    /// Takes the team's routing lock (the row stays locked until commit on PostgreSQL) and
    /// returns the next assignment sequence number.
    pub async fn lock_team(&mut self, team_id: &str) -> Result<RouteTarget> {
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO team_state (team_id, seq) VALUES ($1, 1) \
             ON CONFLICT (team_id) DO UPDATE SET seq = team_state.seq + 1 RETURNING seq",
        )
        .bind(team_id)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(RouteTarget { team_id: team_id.to_owned(), seq })
    }

    /// The team's members in a stable order, with their routing state.
    pub async fn team_candidates(&mut self, team_id: &str) -> Result<Vec<Candidate>> {
        let mut q = Sql::new("SELECT ");
        q.push(CANDIDATE_COLUMNS)
            .push(", m.last_assigned_seq, m.wrr_current FROM team_members m JOIN reps r ON r.id = m.rep_id WHERE m.team_id = ")
            .bind(team_id.to_owned())
            .push(" ORDER BY r.id");
        let rows = q.build().fetch_all(&mut *self.tx).await?;
        rows.iter().map(|r| candidate_from_row(r, true)).collect()
    }

    /// One rep as a routing candidate (sticky owner, manual assignment).
    pub async fn rep_candidate(&mut self, rep_id: &str) -> Result<Option<Candidate>> {
        let mut q = Sql::new("SELECT ");
        q.push(CANDIDATE_COLUMNS).push(" FROM reps r WHERE r.id = ").bind(rep_id.to_owned());
        let row = q.build().fetch_optional(&mut *self.tx).await?;
        row.map(|r| candidate_from_row(&r, false)).transpose()
    }

    /// Makes `rep_id` the owner: workload, routing state, lead, assignment history; returns the
    /// rep's name. Fails with `Retry` if the rep filled up meanwhile (another team's routing on
    /// another instance).
    #[allow(clippy::too_many_arguments)]
    pub async fn assign(
        &mut self,
        lead_id: &str,
        previous_owner: Option<&str>,
        rep_id: &str,
        route: Option<&RouteTarget>,
        reason: &str,
        wrr_updates: &[(String, i64)],
        enforce_capacity: bool,
        now: i64,
    ) -> Result<String> {
        let cap_check = if enforce_capacity { " AND (capacity IS NULL OR open_leads < capacity)" } else { "" };
        let mut q = Sql::new("UPDATE reps SET open_leads = open_leads + 1 WHERE id = ");
        q.bind(rep_id.to_owned()).push(cap_check).push(" RETURNING name");
        let Some(row) = q.build().fetch_optional(&mut *self.tx).await? else {
            return Err(StoreError::Retry);
        };
        let rep_name: String = row.col("name")?;
        if let Some(prev) = previous_owner {
            release_rep(self, prev).await?;
        }
        if let Some(route) = route {
            sqlx::query("UPDATE team_members SET last_assigned_seq = $1 WHERE team_id = $2 AND rep_id = $3")
                .bind(route.seq)
                .bind(&route.team_id)
                .bind(rep_id)
                .execute(&mut *self.tx)
                .await?;
            for (rep, current) in wrr_updates {
                sqlx::query("UPDATE team_members SET wrr_current = $1 WHERE team_id = $2 AND rep_id = $3")
                    .bind(*current)
                    .bind(&route.team_id)
                    .bind(rep)
                    .execute(&mut *self.tx)
                    .await?;
            }
        }
        sqlx::query(
            "UPDATE leads SET owner_id = $1, assigned_at = $2, accepted_at = NULL, updated_at = $2, \
             team_id = COALESCE($3, team_id) WHERE id = $4",
        )
        .bind(rep_id)
        .bind(now)
        .bind(route.map(|r| r.team_id.clone()))
        .bind(lead_id)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "INSERT INTO assignments (id, lead_id, rep_id, team_id, reason, at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id())
        .bind(lead_id)
        .bind(rep_id)
        .bind(route.map(|r| r.team_id.clone()))
        .bind(reason.to_owned())
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(rep_name)
    }

    /// Writes an event and its outbox messages: both commit with the change that caused them.
    pub async fn record_event(&mut self, e: &NewEvent) -> Result<()> {
        let data = e.data.to_string();
        sqlx::query("INSERT INTO events (id, lead_id, type, actor, data, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&e.id)
            .bind(e.lead_id.clone())
            .bind(e.event_type)
            .bind(e.actor.clone())
            .bind(data.clone())
            .bind(e.at)
            .execute(&mut *self.tx)
            .await?;
        for (kind, target) in &e.deliveries {
            sqlx::query(
                "INSERT INTO outbox (id, kind, target, event_id, event_type, lead_id, payload, status, next_attempt_at, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8) \
                 ON CONFLICT (kind, target, event_id) DO NOTHING",
            )
            .bind(new_id())
            .bind(*kind)
            .bind(target.clone())
            .bind(&e.id)
            .bind(e.event_type)
            .bind(e.lead_id.clone())
            .bind(data.clone())
            .bind(e.at)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// Open leads waiting for an owner, oldest first.
    pub async fn unassigned_leads(&mut self, limit: i64) -> Result<Vec<(String, Option<String>, String)>> {
        let rows = sqlx::query(
            "SELECT id, team_id, contact_id FROM leads WHERE owner_id IS NULL AND closed_at IS NULL \
             ORDER BY created_at LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(|r| Ok((r.col("id")?, r.col("team_id")?, r.col("contact_id")?))).collect()
    }
}

/// One open lead fewer for `rep_id`.
pub(super) async fn release_rep(tx: &mut Tx, rep_id: &str) -> Result<()> {
    sqlx::query("UPDATE reps SET open_leads = open_leads - 1 WHERE id = $1 AND open_leads > 0")
        .bind(rep_id)
        .execute(&mut *tx.tx)
        .await?;
    Ok(())
}
