//! The storage side of intake: read everything a decision needs in one round trip, then write
//! the decided plan in one round trip. The same statement builders serve the slower paths
//! (draining the waiting queue, manual changes), so each piece of SQL exists once.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::oneshot;

use crate::domain::plan::{ContactStep, Context, KnownIdentity, LeadStep, OpenLead, Owner, Plan, TeamContext};
use crate::domain::routing::{Candidate, Schedule, Strategy};
use crate::domain::working_hours::WorkingHours;
use crate::domain::{Bookkeeping, Identity, InboundMeta, Inquiry, Outcome};

use super::batch::{Arg, Batch, BatchRows};
use super::inbound::{push_bookkeeping, raw_parts};
use super::rows::{Col, LEAD_SELECT, LeadRow, Sql};
use super::writer::{Step, UnitOfWork};
use super::{Backend, Result, Store, StoreError, Tx, from_ms, ms, new_id};

/// An event on a lead and the outbox messages it fans out to.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub lead_id: Option<String>,
    pub event_type: crate::domain::EventType,
    pub actor: Option<String>,
    pub data: serde_json::Value,
    pub at: i64,
    /// The outbox messages to write.
    pub deliveries: Vec<crate::domain::Delivery>,
    /// Domain of the Message-IDs of our emails: each email delivery's id is recorded so a
    /// reply to it joins the lead.
    pub email_domain: Option<String>,
}

/// An inbound item seen before.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeenItem {
    lead_id: Option<String>,
    /// sha256 of the body it arrived with (items from before bodies were hashed: none).
    payload_sha256: Option<String>,
    /// A failed item is processed again (that is how replay works).
    failed: bool,
}

/// The team an inquiry is routed in, as configured.
#[derive(Debug, Clone)]
pub struct TeamRef {
    pub id: String,
    pub strategy: Strategy,
    pub after_hours: bool,
}

/// What `intake_writes` writes besides the plan.
struct IntakeWrite<'a> {
    inquiry: &'a Inquiry,
    plan: &'a Plan,
    meta_json: &'a str,
    payload: &'a [u8],
    payload_sha256: &'a str,
    events: &'a [NewEvent],
    now: i64,
}

const CANDIDATE_COLUMNS: &str = "r.id, r.name, r.active, r.out_of_office_until, r.capacity, r.open_leads, r.weight, \
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
        name: row.col("name")?,
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

/// `(kind = $a AND value = $b) OR …` for the identities, with their arguments.
fn identity_filter(alias: &str, identities: &[Identity]) -> (String, Vec<Arg>) {
    let mut sql = String::new();
    let mut args = Vec::new();
    for (n, identity) in identities.iter().enumerate() {
        if n > 0 {
            sql.push_str(" OR ");
        }
        sql.push_str(&format!("({alias}.kind = ${} AND {alias}.value = ${})", args.len() + 1, args.len() + 2));
        args.push(Arg::from(identity.kind().as_str()));
        args.push(Arg::from(identity.value()));
    }
    (sql, args)
}

/// The query for a team's routing state. On PostgreSQL the team's member rows are locked
/// first (routing in one team is serialised), so the state read after the lock is fresh.
fn team_queries(b: &mut Batch, backend: Backend, team: &str) -> usize {
    if backend == Backend::Postgres {
        b.query("SELECT rep_id FROM team_members WHERE team_id = $1 ORDER BY rep_id FOR UPDATE", vec![Arg::from(team)]);
    }
    b.query(
        format!(
            "SELECT {CANDIDATE_COLUMNS}, m.last_assigned_seq, m.wrr_current FROM team_members m \
             JOIN reps r ON r.id = m.rep_id WHERE m.team_id = $1"
        ),
        vec![Arg::from(team)],
    )
}

/// The team's candidates in a stable order (ties in routing go to the same rep on every
/// instance), and its assignment sequence: the highest any member got.
fn team_context(team: &TeamRef, member_rows: &[sqlx::any::AnyRow]) -> Result<TeamContext> {
    let mut candidates = member_rows.iter().map(|r| candidate_from_row(r, true)).collect::<Result<Vec<_>>>()?;
    candidates.sort_by(|a, b| a.rep_id.cmp(&b.rep_id));
    let seq = candidates.iter().map(|c| c.last_assigned_seq).max().unwrap_or(0);
    Ok(TeamContext { id: team.id.clone(), strategy: team.strategy, after_hours: team.after_hours, seq, candidates })
}

/// Statements: one message on a lead's timeline, and (`touch_lead`) the lead marked active.
#[allow(clippy::too_many_arguments)]
pub(super) fn push_interaction(
    b: &mut Batch,
    id: &str,
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
    touch_lead: bool,
) {
    b.exec(
        "INSERT INTO interactions (id, lead_id, channel, direction, kind, author_id, external_id, subject, text, \
         attachments, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        vec![
            id.into(),
            lead_id.into(),
            channel.into(),
            direction.into(),
            kind.into(),
            author_id.into(),
            external_id.into(),
            subject.into(),
            text.into(),
            attachments_json.into(),
            at.into(),
        ],
    );
    if touch_lead {
        b.exec(
            "UPDATE leads SET last_activity_at = $1, updated_at = $1 WHERE id = $2",
            vec![at.into(), lead_id.into()],
        );
    }
}

/// Statements: events and their outbox messages, committed with the change that caused them
/// (one multi-row insert each).
pub(super) fn push_events(b: &mut Batch, events: &[NewEvent]) {
    if events.is_empty() {
        return;
    }
    let mut sql = String::from("INSERT INTO events (id, lead_id, type, actor, data, at) VALUES ");
    let mut args: Vec<Arg> = Vec::new();
    let mut outbox_sql = String::from(
        "INSERT INTO outbox (id, kind, target, event_id, event_type, lead_id, payload, status, next_attempt_at, created_at) VALUES ",
    );
    let mut outbox_args: Vec<Arg> = Vec::new();
    for (n, e) in events.iter().enumerate() {
        let data = e.data.to_string();
        sql.push_str(&format!("{}({})", if n > 0 { ", " } else { "" }, placeholders(args.len(), 6)));
        args.extend([
            e.id.as_str().into(),
            e.lead_id.clone().into(),
            e.event_type.as_str().into(),
            e.actor.clone().into(),
            data.as_str().into(),
            e.at.into(),
        ]);
        for delivery in &e.deliveries {
            let outbox_id = new_id();
            if let ("email", Some(domain), Some(lead)) = (delivery.kind(), &e.email_domain, &e.lead_id) {
                b.exec(
                    "INSERT INTO thread_refs (message_id, lead_id) VALUES ($1, $2) ON CONFLICT (message_id) DO NOTHING",
                    vec![format!("{outbox_id}@{domain}").into(), lead.into()],
                );
            }
            let k = outbox_args.len();
            let sep = if k > 0 { ", " } else { "" };
            outbox_sql.push_str(&format!("{sep}({}, 'pending', ${}, ${})", placeholders(k, 7), k + 8, k + 8));
            outbox_args.extend([
                outbox_id.into(),
                delivery.kind().into(),
                delivery.target().into(),
                e.id.as_str().into(),
                e.event_type.as_str().into(),
                e.lead_id.clone().into(),
                data.as_str().into(),
                e.at.into(),
            ]);
        }
    }
    b.exec(sql, args);
    if !outbox_args.is_empty() {
        outbox_sql.push_str(" ON CONFLICT (kind, target, event_id) DO NOTHING");
        b.exec(outbox_sql, outbox_args);
    }
}

/// `$k+1, …, $k+width`: the placeholders of one row of a multi-row `VALUES`.
fn placeholders(k: usize, width: usize) -> String {
    (1..=width).map(|i| format!("${}", k + i)).collect::<Vec<_>>().join(", ")
}

/// Who becomes a lead's owner, and how they were chosen.
#[derive(Debug, Clone, Copy)]
pub struct Assignment<'a> {
    pub lead_id: &'a str,
    /// The owner it is taken from (their open-lead count goes down).
    pub previous_owner: Option<&'a str>,
    pub rep_id: &'a str,
    /// The team that routed it and its assignment sequence number, when routing chose.
    pub route: Option<(&'a str, i64)>,
    pub reason: &'a str,
    /// Weighted round-robin counters to store with it.
    pub wrr_updates: &'a [(String, i64)],
    /// Refuse (and retry) rather than fill the rep past their capacity.
    pub enforce_capacity: bool,
}

/// Statements: the rep owns the lead (`update_lead: false` when the lead row is written
/// with its owner already). The capacity guard makes a concurrent filler on another instance
/// (PostgreSQL) retry instead of overfilling the rep.
pub(super) fn push_assignment(b: &mut Batch, a: &Assignment<'_>, update_lead: bool, now: i64) {
    let Assignment { lead_id, previous_owner, rep_id, route, reason, wrr_updates, enforce_capacity } = *a;
    let sql = if enforce_capacity {
        "UPDATE reps SET open_leads = open_leads + 1 WHERE id = $1 AND (capacity IS NULL OR open_leads < capacity)"
    } else {
        "UPDATE reps SET open_leads = open_leads + 1 WHERE id = $1"
    };
    b.exec_expect(sql, vec![rep_id.into()], 1);
    if let Some(prev) = previous_owner {
        push_release(b, prev);
    }
    if let Some((team, seq)) = route {
        b.exec(
            "UPDATE team_members SET last_assigned_seq = $1 WHERE team_id = $2 AND rep_id = $3",
            vec![seq.into(), team.into(), rep_id.into()],
        );
        for (rep, current) in wrr_updates {
            b.exec(
                "UPDATE team_members SET wrr_current = $1 WHERE team_id = $2 AND rep_id = $3",
                vec![(*current).into(), team.into(), rep.into()],
            );
        }
    }
    if update_lead {
        b.exec(
            "UPDATE leads SET owner_id = $1, assigned_at = $2, accepted_at = NULL, updated_at = $2, \
             team_id = COALESCE($3, team_id) WHERE id = $4",
            vec![rep_id.into(), now.into(), route.map(|(t, _)| t.to_owned()).into(), lead_id.into()],
        );
    }
    b.exec(
        "INSERT INTO assignments (id, lead_id, rep_id, team_id, reason, at) VALUES ($1, $2, $3, $4, $5, $6)",
        vec![
            new_id().into(),
            lead_id.into(),
            rep_id.into(),
            route.map(|(t, _)| t.to_owned()).into(),
            reason.into(),
            now.into(),
        ],
    );
}

/// A message or note added to a lead after intake (by a rep, through the API or Telegram).
pub struct NewInteraction<'a> {
    pub lead_id: &'a str,
    pub channel: &'a str,
    /// `inbound`, `outbound` or `internal` (a note).
    pub direction: &'a str,
    pub kind: &'a str,
    pub author_id: Option<&'a str>,
    /// The channel's id of the message (a Telegram message), if it has one.
    pub external_id: Option<&'a str>,
    pub text: &'a str,
    pub attachments_json: &'a str,
    pub at: i64,
}

/// Statement: one open lead fewer for `rep_id`.
pub(super) fn push_release(b: &mut Batch, rep_id: &str) {
    b.exec("UPDATE reps SET open_leads = open_leads - 1 WHERE id = $1 AND open_leads > 0", vec![rep_id.into()]);
}

/// Statements: `from` contacts become part of `into`, recorded so an admin can undo it (see
/// `merges`): each merge notes the identities and leads it moved, and the open leads folded
/// into `fold_into` (with the messages that moved) under the merge that caused the fold. A
/// folded lead keeps its status: it is closed as merged into the kept one, not lost.
#[allow(clippy::too_many_arguments)]
pub(super) fn push_merge(
    b: &mut Batch,
    into: &str,
    from: &[String],
    fold_into: Option<&OpenLead>,
    folded: &[OpenLead],
    reason: &str,
    actor: Option<&str>,
    now: i64,
) -> Vec<String> {
    let merge_ids: Vec<String> = from.iter().map(|_| new_id()).collect();
    let merge_of = |contact: &str| from.iter().position(|c| c == contact).map(|i| merge_ids[i].as_str());
    if let Some(keep) = fold_into {
        for dup in folded {
            // The merge that brought the folded lead (or, for `into`'s own lead, the kept one) in.
            let cause = if dup.contact_id == into { keep.contact_id.as_str() } else { dup.contact_id.as_str() };
            let merge_id = merge_of(cause).or(merge_ids.first().map(String::as_str)).unwrap_or_default();
            b.exec(
                "INSERT INTO merge_moves (merge_id, item, kind, value) VALUES ($1, 'fold', $2, $3)",
                vec![merge_id.into(), keep.id.as_str().into(), dup.id.as_str().into()],
            );
            b.exec(
                "INSERT INTO merge_moves (merge_id, item, kind, value) \
                 SELECT $1, 'message', lead_id, id FROM interactions WHERE lead_id = $2",
                vec![merge_id.into(), dup.id.as_str().into()],
            );
            b.exec(
                "UPDATE interactions SET lead_id = $1 WHERE lead_id = $2",
                vec![keep.id.as_str().into(), dup.id.as_str().into()],
            );
            b.exec(
                "UPDATE leads SET merged_into = $1, closed_at = $2, updated_at = $2 WHERE id = $3",
                vec![keep.id.as_str().into(), now.into(), dup.id.as_str().into()],
            );
            if let Some(owner) = &dup.owner_id {
                push_release(b, owner);
            }
        }
    }
    for (other, merge_id) in from.iter().zip(&merge_ids) {
        b.exec(
            "INSERT INTO merge_moves (merge_id, item, kind, value) \
             SELECT $1, 'identity', kind, value FROM identities WHERE contact_id = $2",
            vec![merge_id.into(), other.into()],
        );
        b.exec(
            "INSERT INTO merge_moves (merge_id, item, kind, value) SELECT $1, 'lead', NULL, id FROM leads WHERE contact_id = $2",
            vec![merge_id.into(), other.into()],
        );
        b.exec("UPDATE identities SET contact_id = $1 WHERE contact_id = $2", vec![into.into(), other.into()]);
        b.exec("UPDATE leads SET contact_id = $1 WHERE contact_id = $2", vec![into.into(), other.into()]);
        b.exec(
            "UPDATE contacts SET name = COALESCE(name, (SELECT name FROM contacts WHERE id = $2)), updated_at = $3 WHERE id = $1",
            vec![into.into(), other.into(), now.into()],
        );
        b.exec(
            "UPDATE contacts SET merged_into = $1, updated_at = $2 WHERE id = $3",
            vec![into.into(), now.into(), other.into()],
        );
        b.exec(
            "INSERT INTO contact_merges (id, into_id, from_id, reason, actor, at) VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                merge_id.into(),
                into.into(),
                other.into(),
                reason.into(),
                actor.map(str::to_owned).into(),
                now.into(),
            ],
        );
    }
    merge_ids
}

/// Statements: merges of `into` with `held` wait for review (one pending review per pair).
pub(super) fn push_held_merges(b: &mut Batch, into: &str, held: &[String], lead_id: &str, channel: &str, now: i64) {
    for other in held {
        b.exec(
            "INSERT INTO merge_reviews (id, into_id, from_id, lead_id, channel, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6) \
             ON CONFLICT (into_id, from_id) WHERE status = 'pending' DO NOTHING",
            vec![new_id().into(), into.into(), other.into(), lead_id.into(), channel.into(), now.into()],
        );
    }
}

fn push_identities(b: &mut Batch, contact_id: &str, identities: &[Identity], now: i64) {
    if identities.is_empty() {
        return;
    }
    let mut sql = String::from("INSERT INTO identities (kind, value, contact_id, created_at) VALUES ");
    let mut args = Vec::new();
    for (n, identity) in identities.iter().enumerate() {
        sql.push_str(&format!("{}({})", if n > 0 { ", " } else { "" }, placeholders(args.len(), 4)));
        args.extend([identity.kind().as_str().into(), identity.value().into(), contact_id.into(), now.into()]);
    }
    // Another writer giving one of them to someone else (PostgreSQL) makes this retry.
    sql.push_str(" ON CONFLICT (kind, value) DO NOTHING");
    b.exec_expect(sql, args, identities.len() as u64);
}

/// Where each part of the intake context is in the read batch.
#[derive(Debug, Clone, Copy)]
struct ContextQueries {
    seen: usize,
    known: Option<(usize, usize, usize)>,
    thread: Option<usize>,
    team: Option<usize>,
}

/// The reads intake decides on: whether the item was seen, who owns its identities, their
/// open leads and previous owner, and the team's routing state. On PostgreSQL the matched
/// contacts and the team are locked until commit.
fn context_reads(
    backend: Backend,
    channel: &str,
    external_id: &str,
    identities: &[Identity],
    thread: &[String],
    team: Option<&str>,
) -> (Batch, ContextQueries) {
    let mut b = Batch::new();
    let seen = b.query(
        "SELECT status, lead_id, payload_sha256 FROM inbound_items WHERE channel = $1 AND external_id = $2",
        vec![channel.into(), external_id.into()],
    );
    let known = (!identities.is_empty()).then(|| {
        let (filter, args) = identity_filter("i", identities);
        let lock = if backend == Backend::Postgres { " ORDER BY c.id FOR UPDATE OF c" } else { "" };
        let known = b.query(
            format!(
                "SELECT i.kind, i.value, c.id AS contact_id, c.created_at, c.name, \
                 (SELECT o.owner_id FROM leads o WHERE o.contact_id = c.id AND o.owner_id IS NOT NULL \
                  ORDER BY o.created_at DESC LIMIT 1) AS owner_id \
                 FROM identities i JOIN contacts c ON c.id = i.contact_id WHERE {filter}{lock}"
            ),
            args.clone(),
        );
        let open = b.query(
            format!(
                "SELECT l.id, l.contact_id, l.owner_id, l.created_at FROM leads l WHERE l.closed_at IS NULL \
                 AND l.contact_id IN (SELECT i.contact_id FROM identities i WHERE {filter})"
            ),
            args.clone(),
        );
        let previous = b.query(
            format!(
                "SELECT {CANDIDATE_COLUMNS} FROM reps r WHERE r.id = (SELECT l.owner_id FROM leads l \
                 WHERE l.owner_id IS NOT NULL AND l.contact_id IN (SELECT i.contact_id FROM identities i WHERE {filter}) \
                 ORDER BY l.created_at DESC LIMIT 1)"
            ),
            args,
        );
        (known, open, previous)
    });
    let thread = (!thread.is_empty()).then(|| {
        let list = (1..=thread.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
        // An earlier inbound message, or one of our own emails about the lead.
        b.query(
            format!(
                "SELECT l.id, l.contact_id, l.owner_id, l.created_at FROM leads l WHERE l.closed_at IS NULL AND l.id IN \
                 (SELECT lead_id FROM interactions WHERE external_id IN ({list}) \
                  UNION SELECT lead_id FROM thread_refs WHERE message_id IN ({list})) \
                 ORDER BY l.last_activity_at DESC LIMIT 1"
            ),
            thread.iter().map(Arg::from).collect(),
        )
    });
    let team = team.map(|t| team_queries(&mut b, backend, t));
    (b, ContextQueries { seen, known, thread, team })
}

/// The reads of a team's routing state on their own (PostgreSQL's second round: the team's
/// lock is taken as late as possible and held for a few statements only).
fn team_reads(backend: Backend, team: &str) -> (Batch, usize) {
    let mut b = Batch::new();
    let members = team_queries(&mut b, backend, team);
    (b, members)
}

fn parse_team(rows: &BatchRows, members: usize, team: &TeamRef) -> Result<TeamContext> {
    team_context(team, rows.of(members))
}

/// The writes that give a just-opened lead its owner (if one was found), with the events.
fn assignment_writes(lead_id: &str, owner: Option<(&Owner, (&str, i64))>, events: &[NewEvent], now: i64) -> Batch {
    let mut b = Batch::new();
    if let Some((o, route)) = owner {
        let a = Assignment {
            lead_id,
            previous_owner: None,
            rep_id: &o.rep_id,
            route: Some(route),
            reason: o.reason,
            wrr_updates: &o.wrr_updates,
            enforce_capacity: true,
        };
        push_assignment(&mut b, &a, true, now);
    }
    push_events(&mut b, events);
    b
}

/// Reads the rows of `context_reads`.
fn parse_context(rows: &BatchRows, q: ContextQueries, team: Option<&TeamRef>) -> Result<(Option<SeenItem>, Context)> {
    let seen = match rows.of(q.seen).first() {
        Some(r) => {
            let status: String = r.col("status")?;
            Some(SeenItem {
                lead_id: r.col("lead_id")?,
                payload_sha256: r.col("payload_sha256")?,
                failed: status == "failed",
            })
        }
        None => None,
    };
    let mut ctx = Context::default();
    if let Some((known, open, previous)) = q.known {
        for r in rows.of(known) {
            let kind: String = r.col("kind")?;
            let name: Option<String> = r.col("name")?;
            ctx.known.push(KnownIdentity {
                kind: kind.parse().map_err(|e: crate::domain::IdentityError| StoreError::Corrupt(e.to_string()))?,
                value: r.col("value")?,
                contact_id: r.col("contact_id")?,
                contact_created_at: r.col("created_at")?,
                contact_has_name: name.is_some(),
                contact_owner: r.col("owner_id")?,
            });
        }
        for r in rows.of(open) {
            ctx.open_leads.push(OpenLead {
                id: r.col("id")?,
                contact_id: r.col("contact_id")?,
                owner_id: r.col("owner_id")?,
                created_at: r.col("created_at")?,
            });
        }
        ctx.previous_owner = rows.of(previous).first().map(|r| candidate_from_row(r, false)).transpose()?;
    }
    if let Some(i) = q.thread {
        ctx.thread_lead = rows
            .of(i)
            .first()
            .map(|r| {
                Ok::<_, StoreError>(OpenLead {
                    id: r.col("id")?,
                    contact_id: r.col("contact_id")?,
                    owner_id: r.col("owner_id")?,
                    created_at: r.col("created_at")?,
                })
            })
            .transpose()?;
    }
    if let (Some(team), Some(members)) = (team, q.team) {
        ctx.team = Some(team_context(team, rows.of(members))?);
    }
    Ok((seen, ctx))
}

/// The writes of an intake plan.
fn intake_writes(w: &IntakeWrite<'_>) -> Batch {
    let (i, plan, now) = (w.inquiry, w.plan, w.now);
    let lead_id = match &plan.lead {
        LeadStep::Join { lead_id, .. } | LeadStep::Open { lead_id, .. } => lead_id.as_str(),
    };
    let mut b = Batch::new();
    // Claims the idempotency key; a failed item's key is claimed again (replay). What is kept
    // of the body is bounded (`raw_parts`).
    let (kept, size, sha) = raw_parts(w.payload, false, w.payload_sha256);
    b.exec_expect(
        "INSERT INTO inbound_items (id, channel, external_id, meta, payload, payload_size, payload_sha256, raw_kept, \
         status, lead_id, received_at, processed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 'processed', $8, $9, $9) \
         ON CONFLICT (channel, external_id) DO UPDATE SET status = 'processed', lead_id = $8, reason = NULL, \
         processed_at = $9, payload = $5, raw_kept = 1 WHERE inbound_items.status = 'failed'",
        vec![
            new_id().into(),
            i.channel.as_str().into(),
            i.external_id.as_str().into(),
            w.meta_json.into(),
            kept.into(),
            size.into(),
            sha.into(),
            lead_id.into(),
            now.into(),
        ],
        1,
    );
    let contact_id = plan.contact.id();
    let fill_name = match &plan.contact {
        ContactStep::Create { id } => {
            b.exec(
                "INSERT INTO contacts (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)",
                vec![id.into(), i.contact_name.clone().into(), now.into()],
            );
            false
        }
        ContactStep::Use { fill_name, .. } => *fill_name,
        ContactStep::Merge { into, from, fill_name } => {
            push_merge(&mut b, into, from, plan.fold_into.as_ref(), &plan.folded, "shared identity", None, now);
            *fill_name
        }
    };
    push_held_merges(&mut b, contact_id, &plan.held, lead_id, i.channel.as_str(), now);
    if fill_name {
        b.exec(
            "UPDATE contacts SET name = COALESCE(name, $1), updated_at = $2 WHERE id = $3",
            vec![i.contact_name.clone().into(), now.into(), contact_id.into()],
        );
    }
    push_identities(&mut b, contact_id, &plan.new_identities, now);

    if let LeadStep::Open { team, owner, .. } = &plan.lead {
        let s = &i.source;
        b.exec(
            "INSERT INTO leads (id, contact_id, channel, source_form, source_mailbox, source_bot, utm_source, \
             utm_medium, utm_campaign, utm_term, utm_content, referrer, language, country, status, team_id, \
             owner_id, assigned_at, last_activity_at, custom_fields, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'new', $15, $16, $17, $18, $19, $18, $18)",
            vec![
                lead_id.into(),
                contact_id.into(),
                i.channel.as_str().into(),
                s.form.clone().into(),
                s.mailbox.clone().into(),
                s.bot.clone().into(),
                s.utm_source.clone().into(),
                s.utm_medium.clone().into(),
                s.utm_campaign.clone().into(),
                s.utm_term.clone().into(),
                s.utm_content.clone().into(),
                s.referrer.clone().into(),
                i.language.clone().into(),
                i.country.clone().into(),
                team.as_ref().map(|(t, _)| t.clone()).into(),
                owner.as_ref().map(|o| o.rep_id.clone()).into(),
                owner.as_ref().map(|_| now).into(),
                now.into(),
                serde_json::Value::Object(i.custom_fields.clone()).to_string().into(),
            ],
        );
        if let Some(o) = owner {
            let route = team.as_ref().map(|(t, seq)| (t.as_str(), *seq));
            let a = Assignment {
                lead_id,
                previous_owner: None,
                rep_id: &o.rep_id,
                route,
                reason: o.reason,
                wrr_updates: &o.wrr_updates,
                enforce_capacity: true,
            };
            push_assignment(&mut b, &a, false, now);
        }
    }
    let attachments = serde_json::to_string(&i.message.attachments).unwrap_or_else(|_| "[]".into());
    push_interaction(
        &mut b,
        &new_id(),
        lead_id,
        i.channel.as_str(),
        "inbound",
        "message",
        None,
        Some(i.message.external_id.as_deref().unwrap_or(&i.external_id)),
        i.message.subject.as_deref(),
        &i.message.text,
        &attachments,
        now,
        matches!(plan.lead, LeadStep::Join { .. }),
    );
    push_events(&mut b, w.events);
    b
}

impl Tx {
    /// The team's routing state, locked until commit on PostgreSQL.
    pub async fn team_context(&mut self, team: &TeamRef) -> Result<TeamContext> {
        let mut b = Batch::new();
        let members = team_queries(&mut b, self.backend, &team.id);
        let rows = self.run(b).await?;
        team_context(team, rows.of(members))
    }

    /// One rep as a routing candidate (manual assignment).
    pub async fn rep_candidate(&mut self, rep_id: &str) -> Result<Option<Candidate>> {
        let mut b = Batch::new();
        let q = b.query(format!("SELECT {CANDIDATE_COLUMNS} FROM reps r WHERE r.id = $1"), vec![rep_id.into()]);
        let rows = self.run(b).await?;
        rows.of(q).first().map(|r| candidate_from_row(r, false)).transpose()
    }

    /// Makes the rep the owner (see `push_assignment`), with the events to record.
    pub async fn assign(&mut self, a: &Assignment<'_>, events: &[NewEvent], now: i64) -> Result<()> {
        let mut b = Batch::new();
        push_assignment(&mut b, a, true, now);
        push_events(&mut b, events);
        self.run(b).await?;
        Ok(())
    }

    /// Adds one message or note to a lead's timeline, with its events.
    pub async fn add_interaction(&mut self, i: &NewInteraction<'_>, events: &[NewEvent]) -> Result<String> {
        let id = new_id();
        let mut b = Batch::new();
        push_interaction(
            &mut b,
            &id,
            i.lead_id,
            i.channel,
            i.direction,
            i.kind,
            i.author_id,
            i.external_id,
            None,
            i.text,
            i.attachments_json,
            i.at,
            true,
        );
        push_events(&mut b, events);
        self.run(b).await?;
        Ok(id)
    }

    /// Writes events and their outbox messages.
    pub async fn record_events(&mut self, events: &[NewEvent]) -> Result<()> {
        let mut b = Batch::new();
        push_events(&mut b, events);
        if !b.is_empty() {
            self.run(b).await?;
        }
        Ok(())
    }

    /// Open leads of `team_id` assigned before `assigned_before` that their owner has not
    /// taken on and the manager was not yet told about, longest waiting first, each with how
    /// many times the sla has moved it already.
    pub async fn unaccepted_leads(
        &mut self,
        team_id: &str,
        assigned_before: i64,
        limit: i64,
    ) -> Result<Vec<(LeadRow, i64)>> {
        let mut q = Sql::new(LEAD_SELECT);
        q.push(" WHERE l.team_id = ").bind(team_id.to_owned());
        q.push(
            " AND l.accepted_at IS NULL AND l.closed_at IS NULL AND l.owner_id IS NOT NULL \
             AND l.first_response_at IS NULL AND l.escalated_at IS NULL AND l.assigned_at < ",
        );
        q.bind(assigned_before).push(" ORDER BY l.assigned_at LIMIT ").bind(limit);
        let leads =
            q.build().fetch_all(&mut *self.tx).await?.iter().map(LeadRow::from_row).collect::<Result<Vec<_>>>()?;
        if leads.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Sql::new("SELECT lead_id, COUNT(*) AS n FROM assignments WHERE reason = 'sla' AND lead_id IN (");
        for (i, lead) in leads.iter().enumerate() {
            q.push(if i == 0 { "" } else { ", " }).bind(lead.id.clone());
        }
        q.push(") GROUP BY lead_id");
        let moves: std::collections::HashMap<String, i64> = q
            .build()
            .fetch_all(&mut *self.tx)
            .await?
            .iter()
            .map(|r| Ok((r.col("lead_id")?, r.col("n")?)))
            .collect::<Result<_>>()?;
        Ok(leads
            .into_iter()
            .map(|lead| {
                let n = moves.get(&lead.id).copied().unwrap_or(0);
                (lead, n)
            })
            .collect())
    }

    /// Open leads without an owner, oldest first: `(id, team, created_at)`.
    pub async fn unassigned_leads(&mut self, limit: i64) -> Result<Vec<(String, Option<String>, i64)>> {
        let rows = sqlx::query(
            "SELECT id, team_id, created_at FROM leads WHERE owner_id IS NULL AND closed_at IS NULL \
             ORDER BY created_at LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(|r| Ok((r.col("id")?, r.col("team_id")?, r.col("created_at")?))).collect()
    }
}

/// An inquiry to commit, and what came with it.
pub struct IntakeRequest {
    /// Normalised, NULs dropped (`Inquiry::without_nul`).
    pub inquiry: Inquiry,
    pub meta: InboundMeta,
    pub payload: Vec<u8>,
    pub payload_sha256: String,
    /// The sender chose the key (`Idempotency-Key`): another body under it is
    /// `Outcome::KeyReused`, not a retry.
    pub sender_key: bool,
    /// The team the routing rules chose, if any.
    pub team: Option<TeamRef>,
    /// What the channel learned with the item, written with it whatever the outcome.
    pub also: Vec<Bookkeeping>,
}

/// The application's part of intake: pure decisions over what the database holds, called
/// inside the store's unit of work.
pub trait IntakeRules: Send + Sync + 'static {
    /// The plan (contact, lead, and the owner when the team's state is in `ctx`).
    fn plan(&self, inquiry: &Inquiry, ctx: &Context, now: Timestamp) -> Plan;
    /// The owner of a new lead once the team's state is read (PostgreSQL reads it last).
    fn owner(&self, team: &TeamContext, previous: Option<&Candidate>, now: Timestamp) -> Option<Owner>;
    /// The events the plan produces.
    fn events(&self, inquiry: &Inquiry, plan: &Plan, ctx: &Context, now: i64) -> Vec<NewEvent>;
}

impl Store {
    /// Commits one inquiry as one unit of work and says what became of it. How it commits is
    /// the store's business: on SQLite grouped with the inquiries that arrive at the same
    /// moment; on PostgreSQL alone, with the owner chosen in a second round so the team's
    /// lock is held for a few statements only.
    pub async fn intake(&self, request: IntakeRequest, rules: Arc<dyn IntakeRules>) -> Result<Outcome> {
        let (reply, outcome) = oneshot::channel();
        let meta_json = serde_json::to_string(&request.meta).unwrap_or_else(|_| "{}".into());
        let unit = IntakeUnit { request, rules, meta_json, phase: Phase::Start, outcome: None, reply: Some(reply) };
        self.perform(Box::new(unit)).await;
        match outcome.await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Corrupt("the writer dropped the inquiry".into())),
        }
    }
}

/// One inquiry as a unit of work: read the person's and the team's state, decide (the
/// application's `IntakeRules` over the domain's plan), write.
struct IntakeUnit {
    request: IntakeRequest,
    rules: Arc<dyn IntakeRules>,
    meta_json: String,
    phase: Phase,
    outcome: Option<Outcome>,
    reply: Option<oneshot::Sender<Result<Outcome>>>,
}

enum Phase {
    Start,
    Context { queries: ContextQueries, backend: Backend },
    Routing { members: usize, plan: Box<Plan>, ctx: Box<Context>, now: Timestamp },
}

impl IntakeUnit {
    fn write(&self, plan: &Plan, events: &[NewEvent], now: i64) -> Batch {
        let r = &self.request;
        let mut b = intake_writes(&IntakeWrite {
            inquiry: &r.inquiry,
            plan,
            meta_json: &self.meta_json,
            payload: &r.payload,
            payload_sha256: &r.payload_sha256,
            events,
            now,
        });
        push_bookkeeping(&mut b, &r.also, now);
        b
    }

    fn decide_context(&mut self, rows: &BatchRows, queries: ContextQueries, backend: Backend) -> Result<Step> {
        let team = self.request.team.as_ref().filter(|_| backend == Backend::Sqlite);
        let (seen, ctx) = parse_context(rows, queries, team)?;
        let now = Timestamp::now();
        if let Some(seen) = seen.filter(|s| !s.failed) {
            let other_body = seen.payload_sha256.as_ref().is_some_and(|h| *h != self.request.payload_sha256);
            self.outcome = Some(if self.request.sender_key && other_body {
                Outcome::KeyReused
            } else {
                Outcome::Duplicate { lead_id: seen.lead_id }
            });
            let mut also = Batch::new();
            push_bookkeeping(&mut also, &self.request.also, ms(now));
            return Ok(Step::Done(also));
        }
        let mut plan = self.rules.plan(&self.request.inquiry, &ctx, now);
        let contact_id = plan.contact.id().to_owned();
        // PostgreSQL: the lead is written now, its owner chosen in a second round.
        if let (LeadStep::Open { lead_id, team, .. }, Some(route)) = (&mut plan.lead, &self.request.team)
            && backend == Backend::Postgres
        {
            *team = Some((route.id.clone(), 0));
            self.outcome = Some(Outcome::Created { lead_id: lead_id.clone(), contact_id, owner: None });
            let writes = self.write(&plan, &[], ms(now));
            let (reads, members) = team_reads(backend, &route.id);
            self.phase = Phase::Routing { members, plan: Box::new(plan), ctx: Box::new(ctx), now };
            return Ok(Step::More { writes, reads });
        }
        let events = self.rules.events(&self.request.inquiry, &plan, &ctx, ms(now));
        let writes = self.write(&plan, &events, ms(now));
        self.outcome = Some(match plan.lead {
            LeadStep::Join { lead_id, .. } => Outcome::Joined { lead_id, contact_id },
            LeadStep::Open { lead_id, owner, .. } => {
                Outcome::Created { lead_id, contact_id, owner: owner.map(|o| o.rep_id) }
            }
        });
        Ok(Step::Done(writes))
    }

    /// PostgreSQL's second round: the team is locked and read; choose and record the owner.
    fn decide_owner(
        &mut self,
        rows: &BatchRows,
        members: usize,
        mut plan: Plan,
        mut ctx: Context,
        now: Timestamp,
    ) -> Result<Step> {
        let route = self.request.team.as_ref().ok_or_else(|| StoreError::Corrupt("team vanished".into()))?;
        let team = parse_team(rows, members, route)?;
        let owner = self.rules.owner(&team, ctx.previous_owner.as_ref(), now);
        let seq = team.seq + 1;
        let LeadStep::Open { lead_id, .. } = &plan.lead else {
            return Err(StoreError::Corrupt("routing a lead that is not new".into()));
        };
        let lead_id = lead_id.clone();
        plan.lead =
            LeadStep::Open { lead_id: lead_id.clone(), team: Some((team.id.clone(), seq)), owner: owner.clone() };
        ctx.team = Some(team);
        let events = self.rules.events(&self.request.inquiry, &plan, &ctx, ms(now));
        let writes =
            assignment_writes(&lead_id, owner.as_ref().map(|o| (o, (route.id.as_str(), seq))), &events, ms(now));
        if let Some(Outcome::Created { owner: slot, .. }) = &mut self.outcome {
            *slot = owner.map(|o| o.rep_id);
        }
        Ok(Step::Done(writes))
    }
}

impl UnitOfWork for IntakeUnit {
    fn reads(&mut self, backend: Backend) -> Batch {
        // SQLite has one writer: the team's state is read up front, no lock needed.
        let team = match backend {
            Backend::Sqlite => self.request.team.as_ref().map(|t| t.id.as_str()),
            Backend::Postgres => None,
        };
        let i = &self.request.inquiry;
        let (batch, queries) =
            context_reads(backend, i.channel.as_str(), &i.external_id, &i.identities, &i.thread, team);
        self.phase = Phase::Context { queries, backend };
        batch
    }

    fn decide(&mut self, rows: BatchRows) -> Result<Step> {
        match std::mem::replace(&mut self.phase, Phase::Start) {
            Phase::Start => Err(StoreError::Corrupt("decide before reads".into())),
            Phase::Context { queries, backend } => self.decide_context(&rows, queries, backend),
            Phase::Routing { members, plan, ctx, now } => self.decide_owner(&rows, members, *plan, *ctx, now),
        }
    }

    fn finish(mut self: Box<Self>, result: Result<()>) {
        let result = result.and_then(|()| self.outcome.take().ok_or_else(|| StoreError::Corrupt("no outcome".into())));
        if let Some(reply) = self.reply.take() {
            // The caller may have gone (client disconnected); the work is committed regardless.
            let _ = reply.send(result);
        }
    }
}
