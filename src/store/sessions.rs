//! Dashboard sessions: who signed in, until when. Rows are keyed by the sha256 of the session
//! id (hex); the id itself only ever lives in the browser's cookie.

use super::rows::Col;
use super::{Result, Store};

impl Store {
    /// Records a session for `actor` (`admin` or `rep:<id>`) and forgets expired ones.
    pub async fn create_session(&self, id_hash: &str, actor: &str, now: i64, expires_at: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now).execute(&mut *tx.tx).await?;
        sqlx::query("INSERT INTO sessions (id_hash, actor, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(id_hash.to_owned())
            .bind(actor.to_owned())
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await
    }

    /// The actor of a live session.
    pub async fn session_actor(&self, id_hash: &str, now: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT actor FROM sessions WHERE id_hash = $1 AND expires_at > $2")
            .bind(id_hash.to_owned())
            .bind(now)
            .fetch_optional(self.reader())
            .await?;
        row.map(|r| r.col("actor")).transpose()
    }

    /// Ends a session (signing out). Unknown ids are fine.
    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash.to_owned()).execute(&mut *tx.tx).await?;
        tx.commit().await
    }
}
