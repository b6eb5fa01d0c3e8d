//! Dashboard sessions: who signed in, with which token, until when. Rows are keyed by the
//! sha256 of the session id (hex); the id itself only ever lives in the browser's cookie.
//! A session also keeps the sha256 of the API token it was made with: it is honoured only
//! while that token still is (rotated, revoked or deactivated, the session ends with it).

use super::rows::Col;
use super::{Result, Store};

/// A live session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// `admin` or `rep:<id>`.
    pub actor: String,
    /// sha256 (hex) of the token that signed in.
    pub token_hash: String,
}

impl Store {
    /// Records a session for `actor` made with the token hashing to `token_hash`, and forgets
    /// expired ones.
    pub async fn create_session(&self, id_hash: &str, session: &SessionRow, now: i64, expires_at: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now).execute(&mut *tx.tx).await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, actor, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash.to_owned())
        .bind(session.actor.clone())
        .bind(session.token_hash.clone())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await
    }

    /// A live session.
    pub async fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRow>> {
        let row = sqlx::query("SELECT actor, token_hash FROM sessions WHERE id_hash = $1 AND expires_at > $2")
            .bind(id_hash.to_owned())
            .bind(now)
            .fetch_optional(self.reader())
            .await?;
        row.map(|r| Ok(SessionRow { actor: r.col("actor")?, token_hash: r.col("token_hash")? })).transpose()
    }

    /// Ends a session (signing out, or a session whose token is no longer valid). Unknown ids
    /// are fine.
    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash.to_owned()).execute(&mut *tx.tx).await?;
        tx.commit().await
    }
}
