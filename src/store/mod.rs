//! Storage: the only module that writes SQL. One `Store` serves SQLite and PostgreSQL through
//! sqlx's `Any` driver with runtime queries: every column is text, an integer or a blob
//! (timestamps are epoch milliseconds), so one SQL text runs on both. Where the dialects
//! differ (row locks), `Backend` says so.

mod baseline;
mod batch;
mod contacts;
mod erasure;
mod followup;
mod history;
mod inbound;
mod intake;
mod leads;
mod mailboxes;
mod merges;
mod outbox;
mod reps;
mod rows;
mod sessions;
mod singleton;
mod stats;
mod telegram;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, ConnectOptions, Executor, SqlSafeStr, Transaction};

pub use baseline::bare_insert_rate;

pub use contacts::{ContactDetail, ContactSummary, MergeOutcome};
pub use history::{StatusChangeRow, TaskPatch, TaskRow};
pub use inbound::{InboundItem, InboundRecord, RAW_EXCERPT_BYTES, payload_sha256};
pub use intake::{Assignment, IntakeRequest, IntakeRules, NewEvent, NewInteraction, TeamRef};
pub use leads::{LeadFilter, StatusChange};
pub use merges::{MergeReviewRow, MergeRow, Undone};
pub use outbox::{OutboxMessage, OutboxRow};
pub use reps::{RepPatch, RepRecord, RepSeed};
pub use rows::{AssignmentRow, IdentityRow, InteractionRow, LeadRow, OwnerRef};
pub use sessions::SessionRow;
pub use singleton::SingletonGuard;
pub use stats::{Bucket, ExportRow, Percentiles, RepStats, SeriesPoint, Summary, SummaryQuery};
pub use telegram::TelegramContact;
// The store's own modules use these as `super::…`; everyone else takes them from `base`.
use crate::base::{from_ms, ms, new_id, token_hash};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A concurrent writer got there first (unique key, deadlock, lock timeout): run the whole
    /// unit of work again.
    #[error("concurrent update, retry")]
    Retry,
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// No connection became free in time: the database is down, unreachable or swamped.
    #[error("no database connection became available in time (is the database reachable?)")]
    PoolTimedOut,
    #[error(transparent)]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            // PostgreSQL: unique_violation, serialization_failure, deadlock_detected,
            // lock_not_available. SQLite: BUSY, LOCKED, CONSTRAINT_UNIQUE, CONSTRAINT_PRIMARYKEY.
            if matches!(db.code().as_deref(), Some("23505" | "40001" | "40P01" | "55P03" | "5" | "6" | "2067" | "1555"))
            {
                return StoreError::Retry;
            }
        }
        if let sqlx::Error::PoolTimedOut = e {
            return StoreError::PoolTimedOut;
        }
        StoreError::Database(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl crate::base::retry::Conflict for StoreError {
    fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Retry)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `FOR UPDATE` where rows can be locked; SQLite's single writer already serialises.
    fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

/// A connected store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    /// Writes. On SQLite a single connection: writers queue in the pool (FIFO, no busy
    /// sleeping) instead of fighting over the file lock.
    write: AnyPool,
    /// Reads. WAL lets them run beside the writer.
    read: AnyPool,
    backend: Backend,
    /// SQLite: the task that runs units of work in groups (see `writer`).
    writer: Option<tokio::sync::mpsc::Sender<writer::Job>>,
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, "team sequence from members", include_str!("../../migrations/sqlite/0002_team_sequence_from_members.sql")),
    (3, "email", include_str!("../../migrations/sqlite/0003_email.sql")),
    (4, "email notifications", include_str!("../../migrations/sqlite/0004_email_notifications.sql")),
    (5, "telegram reps", include_str!("../../migrations/sqlite/0005_telegram_reps.sql")),
    (6, "follow up", include_str!("../../migrations/sqlite/0006_follow_up.sql")),
    (7, "sessions", include_str!("../../migrations/sqlite/0007_sessions.sql")),
    (8, "security", include_str!("../../migrations/sqlite/0008_security.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/postgres/0001_init.sql")),
    (2, "team sequence from members", include_str!("../../migrations/postgres/0002_team_sequence_from_members.sql")),
    (3, "email", include_str!("../../migrations/postgres/0003_email.sql")),
    (4, "email notifications", include_str!("../../migrations/postgres/0004_email_notifications.sql")),
    (5, "telegram reps", include_str!("../../migrations/postgres/0005_telegram_reps.sql")),
    (6, "follow up", include_str!("../../migrations/postgres/0006_follow_up.sql")),
    (7, "sessions", include_str!("../../migrations/postgres/0007_sessions.sql")),
    (8, "security", include_str!("../../migrations/postgres/0008_security.sql")),
];

impl Store {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        match backend {
            Backend::Sqlite => {
                let url = sqlite_url(url)?;
                let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
                probe(&options, Some(SQLITE_PRAGMAS)).await?;
                let pool = |n: u32, checkpoint: &'static str| {
                    AnyPoolOptions::new()
                        .max_connections(n)
                        .min_connections(1)
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                conn.execute(SQLITE_PRAGMAS).await?;
                                conn.execute(checkpoint).await?;
                                Ok(())
                            })
                        })
                        .connect_with(options.clone())
                };
                // The writer never checkpoints: copying the WAL back into the database (and its
                // fsync) would stall every write behind it. A background task does it instead.
                let write = pool(1, "PRAGMA wal_autocheckpoint = 0").await?;
                let read = pool(max_connections.max(2), "PRAGMA wal_autocheckpoint = 1000").await?;
                tokio::spawn(checkpoint_wal(read.clone()));
                let (tx, rx) = tokio::sync::mpsc::channel(1024);
                tokio::spawn(writer::run_sqlite_writer(write.clone(), rx));
                Ok(Store { write, read, backend, writer: Some(tx) })
            }
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
                probe(&options, None).await?;
                let pool = AnyPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await?;
                Ok(Store { write: pool.clone(), read: pool, backend, writer: None })
            }
        }
    }

    /// Whether this store is SQLite (one instance, one writer) rather than PostgreSQL.
    pub fn is_sqlite(&self) -> bool {
        self.backend == Backend::Sqlite
    }

    /// Runs a unit of work; its `finish` reports the result.
    async fn perform(&self, unit: Box<dyn writer::UnitOfWork>) {
        match &self.writer {
            Some(writer) => {
                if let Err(refused) = writer.send(unit).await {
                    refused.0.finish(Err(StoreError::Database(sqlx::Error::PoolClosed)));
                }
            }
            None => writer::perform_alone(&self.write, self.backend, unit).await,
        }
    }

    pub async fn migrate(&self) -> Result<()> {
        let list = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations = list
            .iter()
            .map(|(v, d, sql)| Migration::new(*v, (*d).into(), MigrationType::Simple, sql.into_sql_str(), false))
            .collect();
        Migrator::with_migrations(migrations).run(&self.write).await?;
        Ok(())
    }

    /// Readiness: can we run a query right now?
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Starts a write transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`): a
    /// deferred transaction that later writes fails at once with SQLITE_BUSY.
    pub async fn begin(&self) -> Result<Tx> {
        let tx = match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write.begin().await?,
        };
        Ok(Tx { tx, backend: self.backend })
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// The read pool, for tools and tests that inspect the database directly.
    pub fn reader_pool(&self) -> AnyPool {
        self.read.clone()
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Every SQLite connection's settings. synchronous=NORMAL in WAL: a committed transaction
/// survives a process crash (kill -9); only power loss can drop the last ones.
/// secure_delete: freed space is zeroed, so an erased person's bytes do not linger in the
/// file's free pages (erasure then checkpoints the WAL away too).
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA secure_delete = ON; \
     PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;";

/// One connection made by hand before the pools exist: a pool retries a failing connection
/// until its acquire timeout and then reports only that it timed out, while this says at
/// once why (refused, unknown host, wrong password, read-only file, not a database).
async fn probe(options: &AnyConnectOptions, setup: Option<&'static str>) -> Result<()> {
    use sqlx::Connection;
    let attempt = async {
        let mut conn = sqlx::AnyConnection::connect_with(options).await?;
        if let Some(setup) = setup {
            conn.execute(setup).await?;
        }
        // (On SQLite the setup has read the file's header: a file that is not a database, or
        // one we may not write, has failed by now.)
        conn.execute("SELECT 1").await?;
        conn.close().await
    };
    match tokio::time::timeout(Duration::from_secs(15), attempt).await {
        Ok(result) => result.map_err(StoreError::Database),
        Err(_) => Err(StoreError::PoolTimedOut),
    }
}

/// Moves committed pages from the WAL into the database file, beside the writer (`PASSIVE`
/// never blocks it). Ends when the pool closes.
async fn checkpoint_wal(pool: AnyPool) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            break;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            tracing::debug!(error = %e, "WAL checkpoint skipped");
        }
    }
}

/// Makes sure the SQLite file's directory exists and the file is created on first use.
fn sqlite_url(url: &str) -> Result<String> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path != ":memory:"
        && !path.is_empty()
        && let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Conflict(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mode = if query.contains("mode=") { String::new() } else { "mode=rwc".into() };
    let sep = if query.is_empty() || mode.is_empty() { "" } else { "&" };
    Ok(format!("sqlite://{path}?{query}{sep}{mode}"))
}

/// One unit of work. Dropped without `commit`, it rolls back.
pub struct Tx {
    tx: Transaction<'static, Any>,
    backend: Backend,
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        assert_eq!(sqlite_url("sqlite::memory:").expect("url"), "sqlite://:memory:?mode=rwc");
        assert_eq!(sqlite_url("sqlite://x.db?mode=ro").expect("url"), "sqlite://x.db?mode=ro");
    }
}
