//! `leadrouter bench --stats-leads N`: how long the managers' numbers take over a database
//! holding N leads (90 days of them, every status, three reps). Sequential requests to the
//! running service: summary by day, by week, for one team, and the CSV export.

use std::time::{Duration, Instant};

use super::{Connection, Placement, percentile, start_service};
use leadrouter::base::ms;
use leadrouter::settings::Settings;

const DAY_MS: i64 = 86_400_000;
const DAYS: i64 = 90;
const AUTH: &str = "Authorization: Bearer bench-admin-token-0123456789abcdef\r\n";

fn config() -> String {
    format!("[auth]\nadmin_tokens = [\"bench-admin-token-0123456789abcdef\"]\n{}", super::BENCH_CONFIG)
}

pub(super) async fn run(
    leads: usize,
    samples: usize,
    dir: &std::path::Path,
    url: &str,
    placement: Placement,
) -> anyhow::Result<()> {
    let mut settings = Settings::from_toml(&config())?;
    settings.database.url = url.to_owned();
    let store = leadrouter::app::prepare_store(&settings).await?;
    let end = ms(jiff::Timestamp::now());
    let start = end - DAYS * DAY_MS;
    let n = i64::try_from(leads)?;
    let seeded = Instant::now();
    store.seed_leads(n, start, (DAYS * DAY_MS / n.max(1)).max(1)).await?;
    store.close().await;
    println!(
        "leadrouter bench: analytics over {leads} leads ({DAYS} days), {}; seeded in {:.1?}",
        super::backend_name(url),
        seeded.elapsed()
    );

    let (service, addr) = start_service(dir, url, &config(), placement).await?;
    let mut conn = Connection::open(&addr).await?;
    let range =
        format!("from={}&to={}", leadrouter::base::from_ms(start - DAY_MS), leadrouter::base::from_ms(end + DAY_MS));
    for (what, path, times) in [
        ("summary, by day", format!("/api/v1/stats/summary?{range}"), samples),
        ("summary, by week", format!("/api/v1/stats/summary?{range}&bucket=week"), samples),
        ("summary, team sales", format!("/api/v1/stats/summary?{range}&team=sales"), samples),
        ("CSV export of every lead", format!("/api/v1/stats/leads.csv?{range}"), samples.clamp(1, 5)),
    ] {
        let mut took = Vec::with_capacity(times);
        let mut bytes = 0;
        for _ in 0..times {
            let sent = Instant::now();
            let (status, body) = conn.get(&path, AUTH).await?;
            anyhow::ensure!(status == "200", "{path}: status {status}: {}", String::from_utf8_lossy(&body));
            took.push(sent.elapsed());
            bytes = body.len();
        }
        took.sort_unstable();
        println!(
            "{what}: p50 {:.1?} p99 {:.1?} max {:.1?} ({times} requests, {} KiB each)",
            percentile(&took, 0.50),
            percentile(&took, 0.99),
            took.last().copied().unwrap_or(Duration::ZERO),
            bytes / 1024
        );
    }
    drop(service);
    Ok(())
}
