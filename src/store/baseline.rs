//! The benchmark's yardstick (`leadrouter bench`): the rows of one form lead written by the
//! plainest possible loop, on sqlx's native SQLite driver, one transaction per lead. Intake's
//! rate is reported beside it, so that a figure says how much of the database's own speed the
//! whole path keeps.

use std::time::Instant;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Result, Store, new_id};

/// The rows one form lead writes, inserted by a plain loop on the native SQLite driver, one
/// transaction per lead: leads per second.
pub async fn bare_insert_rate(url: &str, n: usize) -> Result<f64> {
    let store = Store::connect(url, 2).await?;
    store.migrate().await?;
    store.close().await;
    let options = url
        .parse::<SqliteConnectOptions>()?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
    sqlx::query("INSERT INTO reps (id, name, created_at, updated_at) VALUES ('anna', 'Anna', 0, 0)")
        .execute(&pool)
        .await?;
    let started = Instant::now();
    for i in 0..n {
        let (item, contact, lead) = (new_id(), new_id(), new_id());
        let now = i as i64;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO inbound_items (id, channel, external_id, meta, payload, status, lead_id, received_at) VALUES ($1, 'webform', $2, '{}', $3, 'processed', $4, $5)")
            .bind(&item).bind(&item).bind(b"{}".to_vec()).bind(&lead).bind(now).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO contacts (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)")
            .bind(&contact)
            .bind(format!("Prospect {i}"))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO identities (kind, value, contact_id, created_at) VALUES ('email', $1, $2, $3)")
            .bind(format!("p{i}@example.com"))
            .bind(&contact)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO leads (id, contact_id, channel, status, owner_id, utm_source, last_activity_at, created_at, updated_at) VALUES ($1, $2, 'webform', 'new', 'anna', 'google', $3, $3, $3)")
            .bind(&lead).bind(&contact).bind(now).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO interactions (id, lead_id, channel, direction, text, at) VALUES ($1, $2, 'webform', 'inbound', 'Hello', $3)")
            .bind(new_id()).bind(&lead).bind(now).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO assignments (id, lead_id, rep_id, reason, at) VALUES ($1, $2, 'anna', 'round_robin', $3)",
        )
        .bind(new_id())
        .bind(&lead)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for t in ["lead.created", "lead.assigned"] {
            sqlx::query("INSERT INTO events (id, lead_id, type, data, at) VALUES ($1, $2, $3, '{}', $4)")
                .bind(new_id())
                .bind(&lead)
                .bind(t)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    Ok(rate)
}
