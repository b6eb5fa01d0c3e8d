//! Mailbox cursors and what the email channel records besides leads.

use super::batch::Batch;
use super::rows::Col;
use super::{Result, Store};
use crate::domain::Cursor;

/// The statement that moves a mailbox's cursor to `uid` (never backwards within one
/// UIDVALIDITY): written in the same transaction as the message it stands for.
pub(super) fn push_cursor(b: &mut Batch, mailbox: &str, cursor: Cursor, now: i64) {
    b.exec(
        "INSERT INTO mailbox_cursors (mailbox_id, uidvalidity, last_uid, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (mailbox_id) DO UPDATE SET \
         last_uid = CASE WHEN mailbox_cursors.uidvalidity = $2 AND mailbox_cursors.last_uid > $3 \
                    THEN mailbox_cursors.last_uid ELSE $3 END, \
         uidvalidity = $2, updated_at = $4",
        vec![mailbox.into(), i64::from(cursor.uidvalidity).into(), i64::from(cursor.last_uid).into(), now.into()],
    );
}

impl Store {
    pub async fn mailbox_cursor(&self, mailbox: &str) -> Result<Option<Cursor>> {
        let row = sqlx::query("SELECT uidvalidity, last_uid FROM mailbox_cursors WHERE mailbox_id = $1")
            .bind(mailbox)
            .fetch_optional(self.reader())
            .await?;
        row.map(|r| {
            let (v, u): (i64, i64) = (r.col("uidvalidity")?, r.col("last_uid")?);
            Ok(Cursor { uidvalidity: u32::try_from(v).unwrap_or(0), last_uid: u32::try_from(u).unwrap_or(0) })
        })
        .transpose()
    }

    /// Starts a mailbox over (first start, or the folder's UIDVALIDITY changed).
    pub async fn reset_cursor(&self, mailbox: &str, cursor: Cursor, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO mailbox_cursors (mailbox_id, uidvalidity, last_uid, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (mailbox_id) DO UPDATE SET uidvalidity = $2, last_uid = $3, updated_at = $4",
        )
        .bind(mailbox)
        .bind(i64::from(cursor.uidvalidity))
        .bind(i64::from(cursor.last_uid))
        .bind(now)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await
    }
}
