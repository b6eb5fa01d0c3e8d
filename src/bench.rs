//! `leadrouter bench`: a load generator for form intake over real HTTP, and the bare insert
//! rate of the same rows for comparison. Prints throughput and latency percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::app::App;
use crate::settings::{RepSettings, Settings, TeamSettings};
use crate::store::{Store, new_id};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Form posts to send.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Contacts created before the run (intake must not slow down as they grow).
    #[arg(long, default_value_t = 0)]
    pub existing_contacts: usize,
    /// Database to run against (default: a fresh SQLite file in a temp dir).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Skip the bare insert comparison.
    #[arg(long)]
    pub no_baseline: bool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("leadrouter-bench-{}", new_id()));
    std::fs::create_dir_all(&dir)?;
    let url = args.database_url.clone().unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.display()));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "leadrouter bench: {} form posts, {} clients, {cores} cores, {}",
        args.requests,
        args.concurrency,
        backend_name(&url)
    );

    let result = intake_over_http(&args, &url).await;
    if !args.no_baseline {
        let baseline_url = format!("sqlite://{}/baseline.db", dir.display());
        match (&result, bare_inserts(&baseline_url, args.requests).await) {
            (Ok(rate), Ok(bare)) => {
                println!("bare sqlx insert loop (same rows, one transaction per lead): {bare:.0} leads/s");
                println!("intake over HTTP / bare inserts: {:.0} %", rate / bare * 100.0);
            }
            (_, Err(e)) => println!("bare insert baseline failed: {e:#}"),
            _ => {}
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|_| ())
}

fn backend_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") { "SQLite" } else { "PostgreSQL" }
}

fn bench_settings(url: &str) -> Settings {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".into();
    s.server.form_rate_per_second = u32::MAX / 2;
    s.server.form_rate_burst = u32::MAX / 2;
    s.database.url = url.to_owned();
    s.log.level = "warn".into();
    s.reps = ["anna", "ben", "chen"]
        .iter()
        .map(|id| RepSettings {
            id: (*id).into(),
            name: id.to_uppercase(),
            email: None,
            telegram_chat_id: None,
            api_token: None,
            capacity: None,
            weight: 1,
            teams: vec!["sales".into()],
            languages: Vec::new(),
            timezone: None,
            working_hours: None,
            active: true,
            out_of_office_until: None,
        })
        .collect();
    s.teams = vec![TeamSettings {
        id: "sales".into(),
        strategy: Default::default(),
        members: Vec::new(),
        sla: None,
        notify_chat_id: None,
        after_hours: true,
    }];
    s.routing.default_team = Some("sales".into());
    s
}

/// Returns leads per second.
async fn intake_over_http(args: &BenchArgs, url: &str) -> anyhow::Result<f64> {
    let app = App::build(bench_settings(url)).await.context("starting the service")?;
    let port = app.port();
    if args.existing_contacts > 0 {
        let started = Instant::now();
        seed_contacts(&app.intake().store, args.existing_contacts).await?;
        println!("seeded {} existing contacts in {:.1?}", args.existing_contacts, started.elapsed());
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped({
        let stop = stop.clone();
        async move { stop.cancelled().await }
    }));
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let endpoint = format!("http://127.0.0.1:{port}/api/v1/forms/contact");
    let run_id = new_id();

    // Warm-up: connections, statement caches.
    for i in 0..50.min(args.requests) {
        post(&client, &endpoint, &format!("warmup-{run_id}-{i}")).await?;
    }

    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, endpoint, next, errors, run_id) =
            (client.clone(), endpoint.clone(), next.clone(), errors.clone(), run_id.clone());
        let total = args.requests;
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                if post(&client, &endpoint, &format!("{run_id}-{i}")).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                latencies.push(t.elapsed());
            }
            latencies
        });
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(args.requests);
    while let Some(part) = tasks.join_next().await {
        latencies.extend(part?);
    }
    let elapsed = started.elapsed();
    stop.cancel();
    let _ = server.await;

    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let rate = args.requests as f64 / elapsed.as_secs_f64();
    println!(
        "form intake over HTTP: {rate:.0} leads/s ({} in {:.2?}), errors {}, latency p50 {:.2?} p95 {:.2?} p99 {:.2?} max {:.2?}",
        args.requests,
        elapsed,
        errors.load(Ordering::Relaxed),
        pct(0.50),
        pct(0.95),
        pct(0.99),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(rate)
}

async fn post(client: &reqwest::Client, endpoint: &str, who: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "name": format!("Prospect {who}"),
        "email": format!("p{who}@example.com"),
        "message": "Hello, we would like a quote for 20 seats.",
        "utm_source": "google",
    });
    let response = client.post(endpoint).json(&body).send().await?;
    anyhow::ensure!(response.status().as_u16() == 202, "status {}", response.status());
    Ok(())
}

/// Fills the contacts and identities tables in big transactions.
async fn seed_contacts(store: &Store, n: usize) -> anyhow::Result<()> {
    let now = crate::store::ms(jiff::Timestamp::now());
    let mut done = 0;
    while done < n {
        let mut tx = store.begin().await?;
        let chunk = (n - done).min(10_000);
        for i in done..done + chunk {
            let id = tx.create_contact(Some("Seeded"), now).await?;
            let email = crate::domain::EmailAddress::parse(&format!("seed{i}@example.org")).context("seed email")?;
            tx.attach_identities(&id, &[email.into()], now).await?;
        }
        tx.commit().await?;
        done += chunk;
    }
    Ok(())
}

/// The rows one form lead writes, inserted by a plain loop on the native SQLite driver.
async fn bare_inserts(url: &str, n: usize) -> anyhow::Result<f64> {
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
