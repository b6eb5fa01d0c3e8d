//! Contacts: merging duplicates, reading, erasing personal data.

use std::collections::HashMap;

use super::batch::Batch;
use super::intake::push_merge;
use super::rows::{Col, IdentityRow, Sql};
use super::{Result, Store, StoreError, Tx};
use crate::domain::plan::{OpenLead, fold_open_leads};

#[derive(Debug, Clone, Default)]
pub struct MergeOutcome {
    /// Open leads of merged contacts folded into the surviving open lead.
    pub folded_leads: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ContactSummary {
    pub id: String,
    pub name: Option<String>,
    pub identities: Vec<IdentityRow>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct ContactDetail {
    pub contact: ContactSummary,
    pub merged_into: Option<String>,
    /// `(lead id, status, created_at)`, newest first.
    pub leads: Vec<(String, String, i64)>,
}

impl Tx {
    /// Merges `from` into `into` (manual merge): identities and leads move over, and if both
    /// sides have an open lead the younger one folds into the older (its messages move, it
    /// closes as a duplicate), keeping "one open lead per person".
    pub async fn merge_contacts(
        &mut self,
        into: &str,
        from: &[String],
        reason: &str,
        actor: Option<&str>,
        now: i64,
    ) -> Result<MergeOutcome> {
        let mut all: Vec<&str> = from.iter().map(String::as_str).chain(std::iter::once(into)).collect();
        all.sort_unstable();
        let mut b = Batch::new();
        let mut locks = Vec::new();
        for id in &all {
            // Same lock order in every transaction: no deadlocks between merges.
            locks.push(b.query(
                format!("SELECT id FROM contacts WHERE merged_into IS NULL AND id = $1{}", self.backend.for_update()),
                vec![(*id).into()],
            ));
        }
        let mut filter = String::new();
        let mut args = Vec::new();
        for (n, id) in all.iter().enumerate() {
            filter.push_str(&format!("{}${}", if n > 0 { ", " } else { "" }, n + 1));
            args.push((*id).into());
        }
        let open = b.query(
            format!("SELECT id, contact_id, owner_id, created_at FROM leads WHERE closed_at IS NULL AND contact_id IN ({filter})"),
            args,
        );
        let rows = self.run(b).await?;
        if locks.iter().any(|q| rows.of(*q).is_empty()) {
            return Err(StoreError::Conflict("one of the contacts no longer exists or was merged".into()));
        }
        let open_leads = rows
            .of(open)
            .iter()
            .map(|r| {
                Ok(OpenLead {
                    id: r.col("id")?,
                    contact_id: r.col("contact_id")?,
                    owner_id: r.col("owner_id")?,
                    created_at: r.col("created_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (keep, folded) = fold_open_leads(&open_leads);
        let mut b = Batch::new();
        push_merge(&mut b, into, from, keep.as_ref(), &folded, reason, actor, now);
        self.run(b).await?;
        Ok(MergeOutcome { folded_leads: folded.into_iter().map(|l| l.id).collect() })
    }
}

impl Store {
    /// Inserts `n` synthetic contacts with one email each (`seed<i>@example.org`), in one
    /// transaction: the "intake with a million contacts" benchmark starts from them.
    pub async fn seed_contacts(&self, n: i64) -> Result<()> {
        const SEQ: &str = "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $1)";
        let mut tx = self.begin().await?;
        for sql in [
            format!(
                "INSERT INTO contacts (id, name, created_at, updated_at) {SEQ} SELECT 'seed-' || n, 'Seeded', 0, 0 FROM seq"
            ),
            format!(
                "INSERT INTO identities (kind, value, contact_id, created_at) {SEQ} \
                 SELECT 'email', 'seed' || n || '@example.org', 'seed-' || n, 0 FROM seq"
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(n).execute(&mut *tx.tx).await?;
        }
        tx.commit().await
    }

    pub async fn contact(&self, id: &str) -> Result<Option<ContactDetail>> {
        let row = sqlx::query("SELECT id, name, merged_into, created_at, updated_at FROM contacts WHERE id = $1")
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let identities = self.identities_of(&[id.to_owned()]).await?.into_iter().map(|(_, i)| i).collect();
        let leads =
            sqlx::query("SELECT id, status, created_at FROM leads WHERE contact_id = $1 ORDER BY created_at DESC")
                .bind(id)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| Ok((r.col("id")?, r.col("status")?, r.col("created_at")?)))
                .collect::<Result<_>>()?;
        Ok(Some(ContactDetail {
            contact: ContactSummary {
                id: row.col("id")?,
                name: row.col("name")?,
                identities,
                created_at: row.col("created_at")?,
                updated_at: row.col("updated_at")?,
            },
            merged_into: row.col("merged_into")?,
            leads,
        }))
    }

    /// Live contacts matching `q` (name or any identity, substring, case-insensitive), newest
    /// first, `limit` per page after `cursor` (a contact id).
    pub async fn contacts(&self, q: Option<&str>, limit: i64, cursor: Option<&str>) -> Result<Vec<ContactSummary>> {
        let mut sql =
            Sql::new("SELECT c.id, c.name, c.created_at, c.updated_at FROM contacts c WHERE c.merged_into IS NULL");
        if let Some(cursor) = cursor {
            sql.push(" AND c.id < ").bind(cursor.to_owned());
        }
        if let Some(q) = q {
            push_contact_search(&mut sql, "c.id", "c.name", q);
        }
        sql.push(" ORDER BY c.id DESC LIMIT ").bind(limit);
        let rows = sql.build().fetch_all(self.reader()).await?;
        let ids: Vec<String> = rows.iter().map(|r| r.col("id")).collect::<Result<_>>()?;
        let mut identities = self.identities_by_contact(&ids).await?;
        rows.iter()
            .map(|r| {
                let id: String = r.col("id")?;
                let mine = identities.remove(&id).unwrap_or_default();
                Ok(ContactSummary {
                    id,
                    name: r.col("name")?,
                    identities: mine,
                    created_at: r.col("created_at")?,
                    updated_at: r.col("updated_at")?,
                })
            })
            .collect()
    }

    /// Identities of several contacts in one query, by contact.
    pub async fn identities_by_contact(&self, contact_ids: &[String]) -> Result<HashMap<String, Vec<IdentityRow>>> {
        let mut by_contact: HashMap<String, Vec<IdentityRow>> = HashMap::new();
        for (contact, identity) in self.identities_of(contact_ids).await? {
            by_contact.entry(contact).or_default().push(identity);
        }
        Ok(by_contact)
    }

    /// Identities of several contacts in one query, as `(contact id, identity)`.
    pub async fn identities_of(&self, contact_ids: &[String]) -> Result<Vec<(String, IdentityRow)>> {
        if contact_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Sql::new("SELECT contact_id, kind, value, undeliverable_at FROM identities WHERE contact_id IN (");
        for (n, id) in contact_ids.iter().enumerate() {
            if n > 0 {
                q.push(", ");
            }
            q.bind(id.clone());
        }
        q.push(") ORDER BY kind, value");
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                let identity = IdentityRow {
                    kind: r.col("kind")?,
                    value: r.col("value")?,
                    undeliverable_at: r.col("undeliverable_at")?,
                };
                Ok((r.col("contact_id")?, identity))
            })
            .collect()
    }
}

/// Adds `AND (name matches OR an identity matches)` for a free-text search. What was typed
/// is matched literally (`%` and `_` are not wildcards). Phone numbers are searched in the
/// digits people type, so `+7 912` finds `+7912…`.
pub(super) fn push_contact_search(sql: &mut Sql, id_col: &str, name_col: &str, q: &str) {
    let needle = format!("%{}%", like_literal(&q.trim().to_lowercase()));
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    sql.push(" AND (lower(").push(name_col).push(") LIKE ").bind(needle.clone()).push(LIKE_ESCAPE);
    sql.push(" OR ").push(id_col).push(" IN (SELECT contact_id FROM identities WHERE lower(value) LIKE ").bind(needle);
    sql.push(LIKE_ESCAPE);
    if digits.len() >= 4 && digits.len() == q.chars().filter(|c| c.is_alphanumeric()).count() {
        sql.push(" OR (kind = 'phone' AND value LIKE ").bind(format!("%{digits}%")).push(")");
    }
    sql.push("))");
}

/// The escape character `like_literal` uses, declared for both backends.
const LIKE_ESCAPE: &str = " ESCAPE '\\'";

/// `text` as a LIKE pattern that matches only itself.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_matched_literally() {
        assert_eq!(like_literal("50%_off\\x"), "50\\%\\_off\\\\x");
        assert_eq!(like_literal("anna"), "anna");
    }
}
