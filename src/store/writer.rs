//! Units of work, and SQLite's single writer.
//!
//! A unit of work reads what it needs, decides, and writes (`UnitOfWork`). On PostgreSQL each
//! unit runs in its own transaction and is retried when a concurrent writer wins a race. On
//! SQLite one task owns writing: it takes the units that are waiting, runs them one after the
//! other in one transaction, and sends each unit's writes together with the next unit's reads
//! as one script. A unit then costs about one hand-off to sqlx's connection thread instead of
//! one per statement, and a group shares one commit. Nothing is acknowledged before that
//! commit; a unit that fails takes its group down to be retried one unit at a time, so it
//! fails alone.

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Executor};
use tokio::sync::mpsc;

use super::batch::{Batch, BatchRows, run_on};
use super::{Backend, Result, StoreError};
use crate::base::retry::{RACE_ATTEMPTS, race_pause};

/// Units waiting beyond this many go in the next group (bounds one transaction's size).
const MAX_GROUP: usize = 64;

pub(crate) trait UnitOfWork: Send + 'static {
    /// What `decide` needs to read first. Starts the unit over (after a lost race, too).
    fn reads(&mut self, backend: Backend) -> Batch;
    /// Given the rows of the last reads: the writes, and whether more reads follow.
    fn decide(&mut self, rows: BatchRows) -> Result<Step>;
    /// Called once, after commit (`Ok`) or with the error that ended the unit.
    fn finish(self: Box<Self>, result: Result<()>);
}

/// What a unit does after reading.
pub(crate) enum Step {
    /// Write this (possibly nothing) and end.
    Done(Batch),
    /// Write this, then read that and decide again. Lets a unit take a contended lock only
    /// for its last few statements (PostgreSQL routing).
    More { writes: Batch, reads: Batch },
}

pub(crate) type Job = Box<dyn UnitOfWork>;

/// Runs one unit in its own transaction, retrying lost races (PostgreSQL).
pub(crate) async fn perform_alone(pool: &AnyPool, backend: Backend, mut unit: Job) {
    let mut result = Err(StoreError::Retry);
    for attempt in 0..RACE_ATTEMPTS {
        result = attempt_alone(pool, backend, &mut unit).await;
        match result {
            Err(StoreError::Retry) => tokio::time::sleep(race_pause(attempt)).await,
            _ => break,
        }
    }
    unit.finish(result);
}

async fn attempt_alone(pool: &AnyPool, backend: Backend, unit: &mut Job) -> Result<()> {
    let mut tx = match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    };
    let mut rows = run_on(&mut tx, backend, unit.reads(backend)).await?;
    loop {
        match unit.decide(rows)? {
            Step::Done(writes) => {
                if !writes.is_empty() {
                    run_on(&mut tx, backend, writes).await?;
                }
                break;
            }
            Step::More { mut writes, reads } => {
                let at = writes.append(reads);
                rows = run_on(&mut tx, backend, writes).await?.split_off(at);
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The SQLite writer task: runs until every sender is gone. It keeps the write connection
/// while units keep coming (handing it back and forth through the pool costs a thread
/// hand-off per group), and gives it back when the queue runs dry or after `HOLD` so that the
/// other writers (API changes, outbox bookkeeping) are never starved.
pub(crate) async fn run_sqlite_writer(pool: AnyPool, mut rx: mpsc::Receiver<Job>) {
    const HOLD: std::time::Duration = std::time::Duration::from_millis(50);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                if let Some(unit) = next.take() {
                    unit.finish(Err(e.into()));
                }
                continue;
            }
        };
        let held_since = std::time::Instant::now();
        while let Some(first) = next.take() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(unit) => group.push(unit),
                    Err(_) => break,
                }
            }
            let healthy = run_and_finish(&mut conn, group).await;
            if healthy && held_since.elapsed() < HOLD {
                next = rx.try_recv().ok();
            }
        }
    }
}

/// Runs a group; if it fails, runs its units one by one so that a unit's failure is its own.
/// Returns false when the connection could not be rolled back and must not be used again.
async fn run_and_finish(conn: &mut PoolConnection<Any>, mut group: Vec<Job>) -> bool {
    let mut healthy = true;
    match run_group(conn, &mut group, &mut healthy).await {
        Ok(()) => group.into_iter().for_each(|u| u.finish(Ok(()))),
        Err(e) if group.len() == 1 => {
            if let Some(unit) = group.pop() {
                unit.finish(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, units = group.len(), "write group failed; retrying its units one by one");
            for unit in group {
                let mut alone = [unit];
                let result =
                    if healthy { run_group(conn, &mut alone, &mut healthy).await } else { Err(StoreError::Retry) };
                let [unit] = alone;
                unit.finish(result);
            }
        }
    }
    healthy
}

/// One transaction for the group: `BEGIN; reads₁`, then `writes₁; reads₂`, …, `writesₙ; COMMIT`.
async fn run_group(conn: &mut PoolConnection<Any>, units: &mut [Job], healthy: &mut bool) -> Result<()> {
    let result = async {
        let mut script = Batch::new();
        script.exec("BEGIN IMMEDIATE", Vec::new());
        let mut reads_at = script.append(units[0].reads(Backend::Sqlite));
        for i in 0..units.len() {
            let mut rows = run_on(conn, Backend::Sqlite, script).await?;
            script = loop {
                match units[i].decide(rows.split_off(reads_at))? {
                    Step::Done(writes) => break writes,
                    Step::More { mut writes, reads } => {
                        reads_at = writes.append(reads);
                        rows = run_on(conn, Backend::Sqlite, writes).await?;
                    }
                }
            };
            match units.get_mut(i + 1) {
                Some(next) => reads_at = script.append(next.reads(Backend::Sqlite)),
                None => {
                    script.exec("COMMIT", Vec::new());
                }
            }
        }
        run_on(conn, Backend::Sqlite, script).await?;
        Ok(())
    }
    .await;
    if result.is_err() {
        // Without a clean rollback the connection must not go back to the pool mid-transaction.
        if conn.execute("ROLLBACK").await.is_err() {
            conn.close_on_drop();
            *healthy = false;
        }
    }
    result
}
