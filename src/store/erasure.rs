//! Erasing a person (GDPR): every column that can hold them is emptied or redacted, and on
//! SQLite the bytes go too (promise 10). Leads stay, without content, so the numbers managers
//! rely on do not change.
//!
//! Where a person can be: the contact (and the contacts merged into it), identities, the
//! leads' free text (custom fields, referrer, next action, lost note), the timeline
//! (messages, subjects, attachments, the channels' message ids, which for Telegram hold the
//! user id), tasks, raw inbound items (those of the leads, and any other whose body names one
//! of the person's addresses, such as a skipped auto-reply), events and outbox messages
//! (payloads, and targets such as `ack:<email>`), thread references and the merge records'
//! identities. SQLite zeroes freed space (`secure_delete`, set on every connection), and the
//! WAL, which still holds the old pages, is checkpointed and truncated after the commit.

use super::rows::{Col, Sql};
use super::{Backend, Result, Store, StoreError, Tx};

/// What stands in for erased text.
pub const ERASED: &str = "[erased]";

/// `($1, $2, …)`-style list of `values` appended to `q`.
fn push_list(q: &mut Sql, values: &[String]) {
    q.push("(");
    for (i, v) in values.iter().enumerate() {
        q.push(if i == 0 { "" } else { ", " }).bind(v.clone());
    }
    q.push(")");
}

impl Tx {
    /// Erases the contact and every contact merged into it. Not found: `NotFound`.
    pub async fn erase_contact(&mut self, contact_id: &str, now: i64) -> Result<()> {
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM contacts WHERE id = $1")
            .bind(contact_id.to_owned())
            .fetch_optional(&mut *self.tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound("contact"));
        }
        let contacts = self.merged_family(contact_id).await?;
        let mut q = Sql::new("SELECT kind, value FROM identities WHERE contact_id IN ");
        push_list(&mut q, &contacts);
        let identities: Vec<(String, String)> = q
            .build()
            .fetch_all(&mut *self.tx)
            .await?
            .iter()
            .map(|r| Ok((r.col("kind")?, r.col("value")?)))
            .collect::<Result<_>>()?;
        let mut q = Sql::new("SELECT id FROM leads WHERE contact_id IN ");
        push_list(&mut q, &contacts);
        let leads: Vec<String> =
            q.build().fetch_all(&mut *self.tx).await?.iter().map(|r| r.col("id")).collect::<Result<_>>()?;

        let in_contacts = |sql: &str| {
            let mut q = Sql::new(sql);
            push_list(&mut q, &contacts);
            q
        };
        let mut erase = vec![
            {
                let mut q = Sql::new("UPDATE contacts SET name = NULL, erased_at = ");
                q.bind(now).push(", updated_at = ").bind(now).push(" WHERE id IN ");
                push_list(&mut q, &contacts);
                q
            },
            in_contacts("DELETE FROM identities WHERE contact_id IN "),
        ];
        if !leads.is_empty() {
            let in_leads = |sql: &str| {
                let mut q = Sql::new(sql);
                push_list(&mut q, &leads);
                q
            };
            erase.extend([
                in_leads(
                    "UPDATE leads SET custom_fields = '{}', referrer = NULL, next_action_note = NULL, lost_note = NULL \
                     WHERE id IN ",
                ),
                {
                    let mut q = Sql::new("UPDATE interactions SET text = ");
                    q.bind(ERASED.to_owned());
                    q.push(", subject = NULL, attachments = '[]', external_id = NULL WHERE lead_id IN ");
                    push_list(&mut q, &leads);
                    q
                },
                {
                    let mut q = Sql::new("UPDATE tasks SET title = ");
                    q.bind(ERASED.to_owned()).push(" WHERE lead_id IN ");
                    push_list(&mut q, &leads);
                    q
                },
                in_leads("UPDATE events SET data = '{}' WHERE lead_id IN "),
                in_leads(
                    "UPDATE outbox SET payload = '{}', target = 'erased:' || id, \
                     status = CASE WHEN status = 'pending' THEN 'dead' ELSE status END WHERE lead_id IN ",
                ),
                in_leads("DELETE FROM thread_refs WHERE lead_id IN "),
            ]);
        }
        for q in erase {
            q.build().execute(&mut *self.tx).await?;
        }
        if !identities.is_empty() {
            let mut q = Sql::new("DELETE FROM merge_moves WHERE item = 'identity' AND (");
            for (i, (kind, value)) in identities.iter().enumerate() {
                q.push(if i == 0 { "(kind = " } else { " OR (kind = " }).bind(kind.clone());
                q.push(" AND value = ").bind(value.clone()).push(")");
            }
            q.push(")");
            q.build().execute(&mut *self.tx).await?;
        }
        self.erase_inbound_items(&leads, &identities).await
    }

    /// The contact and every contact merged into it, at any depth.
    async fn merged_family(&mut self, contact_id: &str) -> Result<Vec<String>> {
        let mut family = vec![contact_id.to_owned()];
        let mut frontier = family.clone();
        while !frontier.is_empty() {
            let mut q = Sql::new("SELECT id FROM contacts WHERE merged_into IN ");
            push_list(&mut q, &frontier);
            let found: Vec<String> =
                q.build().fetch_all(&mut *self.tx).await?.iter().map(|r| r.col("id")).collect::<Result<_>>()?;
            frontier = found.into_iter().filter(|id| !family.contains(id)).collect();
            family.extend(frontier.iter().cloned());
        }
        Ok(family)
    }

    /// Raw items of the leads, and any other whose body names one of the person's addresses
    /// or numbers, keep neither body nor meta; their keys become a hash, so nothing in them
    /// names the person. (A full scan of the raw items: erasure is rare.)
    async fn erase_inbound_items(&mut self, leads: &[String], identities: &[(String, String)]) -> Result<()> {
        let needles: Vec<String> = identities
            .iter()
            .filter(|(kind, value)| matches!(kind.as_str(), "email" | "phone") && value.len() >= 6)
            .map(|(_, value)| value.clone())
            .collect();
        if leads.is_empty() && needles.is_empty() {
            return Ok(());
        }
        let mut q = Sql::new("SELECT id, external_id FROM inbound_items WHERE 1 = 0");
        if !leads.is_empty() {
            q.push(" OR lead_id IN ");
            push_list(&mut q, leads);
        }
        for needle in &needles {
            match self.backend {
                Backend::Sqlite => q.push(" OR instr(payload, ").bind(needle.as_bytes().to_vec()).push(") > 0"),
                Backend::Postgres => q.push(" OR position(").bind(needle.as_bytes().to_vec()).push(" IN payload) > 0"),
            };
        }
        let items: Vec<(String, String)> = q
            .build()
            .fetch_all(&mut *self.tx)
            .await?
            .iter()
            .map(|r| Ok((r.col("id")?, r.col("external_id")?)))
            .collect::<Result<_>>()?;
        for (id, external_id) in items {
            sqlx::query(
                "UPDATE inbound_items SET payload = $1, meta = '{}', raw_kept = 0, reason = NULL, external_id = $2 \
                 WHERE id = $3",
            )
            .bind(Vec::<u8>::new())
            .bind(format!("erased:{}", super::payload_sha256(external_id.as_bytes())))
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }
}

impl Store {
    /// After an erasure commits: SQLite's WAL still holds the pages as they were, so it is
    /// copied into the database (whose freed space `secure_delete` zeroes) and truncated.
    /// Waits for readers of older snapshots (a few seconds at most, `busy_timeout`).
    pub async fn forget_old_pages(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(self.reader()).await?;
            let busy: i64 = row.col("busy")?;
            if busy != 0 {
                return Err(StoreError::Conflict(
                    "the erasure is committed, but the write-ahead log could not be emptied yet; it is on the next checkpoint".into(),
                ));
            }
        }
        Ok(())
    }
}
