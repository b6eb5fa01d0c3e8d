//! Reps and team memberships. Reps come from the config file and from the API: a config rep
//! is (re)applied only when its entry in the file changes, so changes made through the API
//! (out of office, capacity, active) survive restarts until someone edits that rep's entry.

use super::rows::{Col, Sql};
use super::{Result, Store, StoreError, Tx, token_hash};
use crate::domain::NotifyVia;

/// A rep as written by the config or the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepSeed {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub telegram_chat_id: Option<i64>,
    /// sha256 of the API token, hex. Tokens themselves are never stored.
    pub api_token_hash: Option<String>,
    pub capacity: Option<u32>,
    pub weight: u32,
    pub languages: Vec<String>,
    pub timezone: Option<String>,
    pub working_hours: Option<String>,
    pub active: bool,
    pub out_of_office_until: Option<i64>,
    pub teams: Vec<String>,
    pub notify: NotifyVia,
}

#[derive(Debug, Clone, Default)]
pub struct RepPatch {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub telegram_chat_id: Option<Option<i64>>,
    pub capacity: Option<Option<u32>>,
    pub weight: Option<u32>,
    pub active: Option<bool>,
    pub out_of_office_until: Option<Option<i64>>,
    pub timezone: Option<Option<String>>,
    pub working_hours: Option<Option<String>>,
    pub teams: Option<Vec<String>>,
    pub notify: Option<NotifyVia>,
}

pub use crate::domain::records::RepRecord;

fn seed_hash(seed: &RepSeed) -> String {
    token_hash(&serde_json::to_string(seed).unwrap_or_default())
}

const REP_COLUMNS: &str = "id, name, email, telegram_chat_id, capacity, weight, languages, timezone, working_hours, \
     active, out_of_office_until, open_leads, notify";

impl Tx {
    /// Applies the config's reps and memberships. Returns the ids of reps that changed.
    pub async fn sync_config_reps(&mut self, seeds: &[RepSeed], now: i64) -> Result<Vec<String>> {
        let mut changed = Vec::new();
        for seed in seeds {
            let hash = seed_hash(seed);
            let stored: Option<Option<String>> = sqlx::query_scalar("SELECT config_hash FROM reps WHERE id = $1")
                .bind(seed.id.clone())
                .fetch_optional(&mut *self.tx)
                .await?;
            if stored.as_ref().and_then(|h| h.as_deref()) == Some(hash.as_str()) {
                continue;
            }
            self.write_rep(seed, stored.is_some(), now).await?;
            sqlx::query("UPDATE reps SET config_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(seed.id.clone())
                .execute(&mut *self.tx)
                .await?;
            sqlx::query("DELETE FROM team_members WHERE rep_id = $1 AND source = 'config'")
                .bind(seed.id.clone())
                .execute(&mut *self.tx)
                .await?;
            for team in &seed.teams {
                self.add_member(team, &seed.id, "config").await?;
            }
            changed.push(seed.id.clone());
        }
        // A rep deleted from the file stops getting leads but keeps their history.
        let mut q = Sql::new("UPDATE reps SET active = 0, config_hash = NULL, updated_at = ");
        q.bind(now).push(" WHERE config_hash IS NOT NULL");
        for seed in seeds {
            q.push(" AND id <> ").bind(seed.id.clone());
        }
        q.build().execute(&mut *self.tx).await?;
        self.end_sessions_of_inactive_reps().await?;
        Ok(changed)
    }

    /// Signs out every rep who is not active (removed from the config, or switched off).
    /// Their sessions are refused anyway (see `session`); this removes the rows too.
    async fn end_sessions_of_inactive_reps(&mut self) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE actor IN (SELECT 'rep:' || id FROM reps WHERE active = 0)")
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn add_member(&mut self, team: &str, rep: &str, source: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO team_members (team_id, rep_id, source) VALUES ($1, $2, $3) ON CONFLICT (team_id, rep_id) DO NOTHING",
        )
        .bind(team.to_owned())
        .bind(rep.to_owned())
        .bind(source.to_owned())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn write_rep(&mut self, s: &RepSeed, exists: bool, now: i64) -> Result<()> {
        let sql = if exists {
            "UPDATE reps SET name = $2, email = $3, telegram_chat_id = $4, api_token_hash = $5, capacity = $6, \
             weight = $7, languages = $8, timezone = $9, working_hours = $10, active = $11, out_of_office_until = $12, \
             updated_at = $13, notify = $14 WHERE id = $1"
        } else {
            "INSERT INTO reps (id, name, email, telegram_chat_id, api_token_hash, capacity, weight, languages, timezone, \
             working_hours, active, out_of_office_until, created_at, updated_at, notify) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14)"
        };
        sqlx::query(sql)
            .bind(s.id.clone())
            .bind(s.name.clone())
            .bind(s.email.clone())
            .bind(s.telegram_chat_id)
            .bind(s.api_token_hash.clone())
            .bind(s.capacity.map(i64::from))
            .bind(i64::from(s.weight))
            .bind(serde_json::to_string(&s.languages).unwrap_or_else(|_| "[]".into()))
            .bind(s.timezone.clone())
            .bind(s.working_hours.clone())
            .bind(i64::from(s.active))
            .bind(s.out_of_office_until)
            .bind(now)
            .bind(s.notify.as_str())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Creates a rep through the API. A taken id is a conflict.
    pub async fn create_rep(&mut self, seed: &RepSeed, now: i64) -> Result<()> {
        let taken: Option<String> = sqlx::query_scalar("SELECT id FROM reps WHERE id = $1")
            .bind(seed.id.clone())
            .fetch_optional(&mut *self.tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("a rep with id `{}` already exists", seed.id)));
        }
        self.write_rep(seed, false, now).await?;
        for team in &seed.teams {
            self.add_member(team, &seed.id, "api").await?;
        }
        Ok(())
    }

    pub async fn patch_rep(&mut self, id: &str, p: &RepPatch, now: i64) -> Result<()> {
        let mut q = Sql::new("UPDATE reps SET updated_at = ");
        q.bind(now);
        if let Some(v) = &p.name {
            q.push(", name = ").bind(v.clone());
        }
        if let Some(v) = &p.email {
            q.push(", email = ").bind(v.clone());
        }
        if let Some(v) = p.telegram_chat_id {
            q.push(", telegram_chat_id = ").bind(v);
        }
        if let Some(v) = p.capacity {
            q.push(", capacity = ").bind(v.map(i64::from));
        }
        if let Some(v) = p.weight {
            q.push(", weight = ").bind(i64::from(v));
        }
        if let Some(v) = p.active {
            q.push(", active = ").bind(i64::from(v));
        }
        if let Some(v) = p.out_of_office_until {
            q.push(", out_of_office_until = ").bind(v);
        }
        if let Some(v) = &p.timezone {
            q.push(", timezone = ").bind(v.clone());
        }
        if let Some(v) = &p.working_hours {
            q.push(", working_hours = ").bind(v.clone());
        }
        if let Some(v) = p.notify {
            q.push(", notify = ").bind(v.as_str().to_owned());
        }
        q.push(" WHERE id = ").bind(id.to_owned());
        if q.build().execute(&mut *self.tx).await?.rows_affected() == 0 {
            return Err(StoreError::NotFound("rep"));
        }
        if let Some(teams) = &p.teams {
            sqlx::query("DELETE FROM team_members WHERE rep_id = $1").bind(id).execute(&mut *self.tx).await?;
            for team in teams {
                self.add_member(team, id, "api").await?;
            }
        }
        if p.active == Some(false) {
            self.end_sessions_of_inactive_reps().await?;
        }
        Ok(())
    }
}

/// A value to find reps by.
enum RepKey {
    Text(String),
    Int(i64),
}

impl From<String> for RepKey {
    fn from(v: String) -> Self {
        RepKey::Text(v)
    }
}

impl From<i64> for RepKey {
    fn from(v: i64) -> Self {
        RepKey::Int(v)
    }
}

impl Store {
    pub async fn reps(&self) -> Result<Vec<RepRecord>> {
        self.reps_where(None).await
    }

    pub async fn rep(&self, id: &str) -> Result<Option<RepRecord>> {
        Ok(self.reps_where(Some(("id", id.to_owned().into()))).await?.pop())
    }

    /// The rep whose Telegram chat is `chat_id` (a linked rep's private chat is their user id),
    /// with everything about them.
    pub async fn rep_in_telegram(&self, chat_id: i64) -> Result<Option<RepRecord>> {
        Ok(self.reps_where(Some(("telegram_chat_id", chat_id.into()))).await?.pop())
    }

    /// Every rep, or those whose `column` equals the value, with their teams.
    async fn reps_where(&self, filter: Option<(&'static str, RepKey)>) -> Result<Vec<RepRecord>> {
        let mut q = Sql::new("SELECT ");
        q.push(REP_COLUMNS).push(" FROM reps");
        let mut m = Sql::new("SELECT team_id, rep_id FROM team_members");
        if let Some((column, value)) = &filter {
            q.push(&format!(" WHERE {column} = "));
            m.push(&format!(" WHERE rep_id IN (SELECT id FROM reps WHERE {column} = "));
            match value {
                RepKey::Text(v) => {
                    q.bind(v.clone());
                    m.bind(v.clone());
                }
                RepKey::Int(v) => {
                    q.bind(*v);
                    m.bind(*v);
                }
            }
            m.push(")");
        }
        q.push(" ORDER BY id");
        m.push(" ORDER BY team_id");
        let rows = q.build().fetch_all(self.reader()).await?;
        let members = m
            .build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| Ok((r.col::<String>("team_id")?, r.col::<String>("rep_id")?)))
            .collect::<Result<Vec<_>>>()?;
        rows.iter()
            .map(|r| {
                let id: String = r.col("id")?;
                let teams = members.iter().filter(|(_, rep)| *rep == id).map(|(t, _)| t.clone()).collect();
                let languages: String = r.col("languages")?;
                let active: i64 = r.col("active")?;
                Ok(RepRecord {
                    name: r.col("name")?,
                    email: r.col("email")?,
                    telegram_chat_id: r.col("telegram_chat_id")?,
                    capacity: r.col("capacity")?,
                    weight: r.col("weight")?,
                    languages: serde_json::from_str(&languages).unwrap_or_default(),
                    timezone: r.col("timezone")?,
                    working_hours: r.col("working_hours")?,
                    active: active != 0,
                    out_of_office_until: r.col("out_of_office_until")?,
                    open_leads: r.col("open_leads")?,
                    notify: r.col_as("notify")?,
                    teams,
                    id,
                })
            })
            .collect()
    }

    /// The rep whose Telegram chat is `chat_id`.
    pub async fn rep_by_telegram(&self, chat_id: i64) -> Result<Option<String>> {
        let id = sqlx::query_scalar("SELECT id FROM reps WHERE telegram_chat_id = $1")
            .bind(chat_id)
            .fetch_optional(self.reader())
            .await?;
        Ok(id)
    }

    /// The rep whose API token hashes to `hash`, if active: a rep made inactive or removed
    /// from the config is refused at once, on the API and in every dashboard session.
    pub async fn rep_by_token_hash(&self, hash: &str) -> Result<Option<String>> {
        let id = sqlx::query_scalar("SELECT id FROM reps WHERE api_token_hash = $1 AND active = 1")
            .bind(hash.to_owned())
            .fetch_optional(self.reader())
            .await?;
        Ok(id)
    }
}
