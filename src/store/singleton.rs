//! Work that must run on exactly one instance at a time (a mailbox reader, a bot's poller):
//! on PostgreSQL a session advisory lock, released when its connection closes, so a dead
//! instance's work is taken over. SQLite serves one instance: the lock is always granted.

use sha2::{Digest, Sha256};
use sqlx::Any;
use sqlx::pool::PoolConnection;

use super::{Backend, Result, Store};

/// Held while the work runs; dropping it closes the connection, which releases the lock.
pub struct SingletonGuard {
    conn: Option<PoolConnection<Any>>,
}

impl Drop for SingletonGuard {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            // Back in the pool the lock would stay held by whoever got the connection next.
            conn.close_on_drop();
        }
    }
}

/// A stable 64-bit key for a lock name.
fn lock_key(name: &str) -> i64 {
    let digest = Sha256::digest(format!("leadrouter:{name}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

impl Store {
    /// Takes the lock named `name` if no other instance holds it.
    pub async fn try_singleton(&self, name: &str) -> Result<Option<SingletonGuard>> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(SingletonGuard { conn: None }));
        }
        let mut conn = self.write.acquire().await?;
        let got: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(lock_key(name)).fetch_one(&mut *conn).await?;
        Ok(got.then_some(SingletonGuard { conn: Some(conn) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("imap:sales"), lock_key("imap:sales"));
        assert_ne!(lock_key("imap:sales"), lock_key("imap:support"));
    }
}
