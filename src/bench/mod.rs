//! `leadrouter bench`: a load generator for form intake over real HTTP, and the bare insert
//! rate of the same rows for comparison; IMAP backlogs and Telegram updates on request.
//! Prints throughput and latency percentiles. It belongs to the binary, not the library: it
//! starts the service as a process of its own and drives it from outside, as any client does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use leadrouter::base::new_id;
use leadrouter::settings::Settings;
use leadrouter::store::Store;

mod stats;
mod telegram;

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
    /// Let the service and the load generator float over all cores instead of giving each
    /// its own (`taskset`, when there are at least two cores).
    #[arg(long)]
    pub no_pin: bool,
    /// Inquiries sent one at a time to measure inquiry → webhook notification latency when
    /// idle (0 skips it).
    #[arg(long, default_value_t = 200)]
    pub notify_samples: usize,
    /// Instead of form posts: put this many messages in a fresh folder of an IMAP mailbox and
    /// time the service ingesting the backlog (defaults fit tests/env/dovecot-up.sh).
    #[arg(long, default_value_t = 0)]
    pub imap_messages: usize,
    /// Instead of form posts: this many Telegram updates through the webhook (against a Bot
    /// API stand-in), then `telegram_samples` one at a time for update → rep card latency.
    #[arg(long, default_value_t = 0)]
    pub telegram_updates: usize,
    #[arg(long, default_value_t = 200)]
    pub telegram_samples: usize,
    /// Instead of form posts: seed this many leads and time the analytics summary and the CSV
    /// export over them, `stats_samples` requests each.
    #[arg(long, default_value_t = 0)]
    pub stats_leads: usize,
    #[arg(long, default_value_t = 50)]
    pub stats_samples: usize,
    #[arg(long, default_value = "127.0.0.1")]
    pub imap_host: String,
    #[arg(long, default_value_t = 10143)]
    pub imap_port: u16,
    #[arg(long, default_value = "leads@example.test")]
    pub imap_user: String,
    #[arg(long, default_value = "password")]
    pub imap_password: String,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("leadrouter-bench-{}", new_id()));
    std::fs::create_dir_all(&dir)?;
    let url = args.database_url.clone().unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.display()));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let placement = placement(&args, cores);
    if args.telegram_updates > 0 {
        placement.pin_self();
        let result =
            telegram::run(args.telegram_updates, args.telegram_samples, args.concurrency, &dir, &url, placement).await;
        let _ = std::fs::remove_dir_all(&dir);
        return result;
    }
    if args.stats_leads > 0 {
        placement.pin_self();
        let result = stats::run(args.stats_leads, args.stats_samples, &dir, &url, placement).await;
        let _ = std::fs::remove_dir_all(&dir);
        return result;
    }
    if args.imap_messages > 0 {
        let result = imap_backlog(&args, &dir, &url, placement).await;
        let _ = std::fs::remove_dir_all(&dir);
        return result;
    }
    println!(
        "leadrouter bench: {} form posts, {} clients, {cores} cores ({}), {}",
        args.requests,
        args.concurrency,
        placement.describe(),
        backend_name(&url)
    );
    placement.pin_self();

    let result = intake_over_http(&args, &dir, &url, placement).await;
    if !args.no_baseline {
        let baseline_url = format!("sqlite://{}/baseline.db", dir.display());
        match (&result, leadrouter::store::bare_insert_rate(&baseline_url, args.requests).await) {
            (Ok(rate), Ok(bare)) => {
                println!("bare sqlx insert loop (same rows, one transaction per lead): {bare:.0} leads/s");
                println!("intake over HTTP / bare inserts: {:.0} %", rate / bare * 100.0);
            }
            (_, Err(e)) => println!("bare insert baseline failed: {e:#}"),
            _ => {}
        }
    }
    if args.notify_samples > 0 && result.is_ok() {
        let latency_url = match &args.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}/notify.db", dir.display()),
        };
        if let Err(e) = notification_latency(&dir, &latency_url, args.notify_samples, placement).await {
            println!("notification latency run failed: {e:#}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|_| ())
}

/// Fills a fresh folder with `args.imap_messages` messages (four sessions appending in
/// parallel), starts the service reading it, and times the backlog from start to the last
/// message committed.
async fn imap_backlog(args: &BenchArgs, dir: &std::path::Path, url: &str, placement: Placement) -> anyhow::Result<()> {
    use leadrouter::channels::email::imap;
    use leadrouter::settings::{ImapSettings, ImapTls};
    let n = args.imap_messages;
    let folder = format!("bench{}", new_id());
    let settings = ImapSettings {
        backfill_all: true,
        ..ImapSettings::new(
            "bench",
            &args.imap_host,
            args.imap_port,
            ImapTls::None,
            &args.imap_user,
            &args.imap_password,
            &folder,
        )
    };
    let mut session = imap::connect(&settings).await.context("connecting to the IMAP server")?;
    session.create(&folder).await?;
    let started = Instant::now();
    let run_id = new_id();
    let mut appends = tokio::task::JoinSet::new();
    for part in 0..4 {
        let (settings, folder, run_id) = (settings.clone(), folder.clone(), run_id.clone());
        appends.spawn(async move {
            let mut session = imap::connect(&settings).await?;
            for i in (part..n).step_by(4) {
                let mail = format!(
                    "From: Prospect {i} <p{i}.{run_id}@example.com>\r\nTo: sales@example.test\r\n\
                     Subject: Inquiry {i}\r\nMessage-ID: <{run_id}.{i}@example.com>\r\n\
                     Date: Wed, 04 Mar 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
                     Hello, please call me back at +1 415 555 {:04}.\r\n\r\n-- \r\nProspect {i}\r\n",
                    i % 10_000
                );
                session.append(&folder, None, None, mail.as_bytes()).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = appends.join_next().await {
        done??;
    }
    println!("imap backlog: appended {n} messages in {:.1?}", started.elapsed());

    let config = format!(
        "{BENCH_CONFIG}\n[[imap]]\nid = \"bench\"\nhost = \"{}\"\nport = {}\ntls = \"none\"\nusername = \"{}\"\npassword = \"{}\"\nfolder = \"{folder}\"\nbackfill_all = true\n",
        args.imap_host, args.imap_port, args.imap_user, args.imap_password
    );
    let started = Instant::now();
    let (service, _addr) = start_service(dir, url, &config, placement).await?;
    let store = Store::connect(url, 2).await?;
    let mut seen = 0;
    while seen < n {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = store.inbound_count("email").await.map(|c| usize::try_from(c).unwrap_or(0)).unwrap_or(0);
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "only {seen} of {n} ingested after 10 minutes");
    }
    let elapsed = started.elapsed();
    drop(service);
    store.close().await;
    let _ = session.delete(&folder).await;
    println!(
        "imap backlog: {n} messages ingested in {elapsed:.2?} from service start: {:.0} messages/s ({})",
        n as f64 / elapsed.as_secs_f64(),
        backend_name(url)
    );
    Ok(())
}

/// Sends `samples` inquiries one at a time to an otherwise idle service and times each from
/// the request to the arrival of its `lead.assigned` webhook at a local receiver.
async fn notification_latency(
    dir: &std::path::Path,
    url: &str,
    samples: usize,
    placement: Placement,
) -> anyhow::Result<()> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = arrivals.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let seen = seen.clone();
            async move {
                let event: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if let Some(id) = event["data"]["lead"]["id"].as_str()
                    && let Ok(mut seen) = seen.lock()
                {
                    seen.entry(id.to_owned()).or_insert_with(Instant::now);
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let config = format!("{BENCH_CONFIG}\n[[notify.webhooks]]\nurl = \"{hook}\"\nevents = [\"lead.assigned\"]\n");
    let (service, addr) = start_service(dir, url, &config, placement).await?;
    let mut conn = Connection::open(&addr).await?;
    let run_id = new_id();
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let sent = Instant::now();
        let lead = conn.post_form(&format!("notify-{run_id}-{i}")).await?;
        let deadline = sent + Duration::from_secs(5);
        loop {
            let arrived = arrivals.lock().ok().and_then(|a| a.get(&lead).copied());
            if let Some(at) = arrived {
                latencies.push(at - sent);
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "no webhook for lead {lead} within 5 s");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(service);
    latencies.sort_unstable();
    println!(
        "inquiry → webhook notification, idle ({samples} one at a time): p50 {:.2?} p95 {:.2?} p99 {:.2?} max {:.2?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or_default()
}

/// Where the service and the load generator run. On VMs where waking a thread on another
/// core is expensive (Firecracker: ~60 µs), giving each its own core measures the service
/// rather than the hypervisor; `--no-pin` shows the other case.
#[derive(Clone, Copy)]
enum Placement {
    Float,
    /// Load generator on the first core, service on the last.
    Split {
        service_core: usize,
    },
}

fn placement(args: &BenchArgs, cores: usize) -> Placement {
    let taskset = std::process::Command::new("taskset").arg("--version").output().is_ok_and(|o| o.status.success());
    if args.no_pin || cores < 2 || !taskset { Placement::Float } else { Placement::Split { service_core: cores - 1 } }
}

impl Placement {
    fn describe(self) -> String {
        match self {
            Placement::Float => "service and load generator share all cores".into(),
            Placement::Split { service_core } => format!("service on core {service_core}, load generator on core 0"),
        }
    }

    /// Pins every thread of this process (the load generator) to core 0.
    fn pin_self(self) {
        if let Placement::Split { .. } = self {
            let _ = std::process::Command::new("taskset")
                .args(["-a", "-cp", "0", &std::process::id().to_string()])
                .stdout(std::process::Stdio::null())
                .status();
        }
    }

    fn command(self) -> anyhow::Result<std::process::Command> {
        let exe = std::env::current_exe()?;
        Ok(match self {
            Placement::Float => std::process::Command::new(exe),
            Placement::Split { service_core } => {
                let mut c = std::process::Command::new("taskset");
                c.arg("-c").arg(service_core.to_string()).arg(exe);
                c
            }
        })
    }
}

fn backend_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") { "SQLite" } else { "PostgreSQL" }
}

/// The service under test: three reps, round-robin, no rate limit.
const BENCH_CONFIG: &str = r#"
[server]
form_rate_per_second = 1000000000
form_rate_burst = 1000000000
[log]
level = "warn"
[routing]
default_team = "sales"
[[teams]]
id = "sales"
after_hours = true
[[reps]]
id = "anna"
name = "Anna"
teams = ["sales"]
[[reps]]
id = "ben"
name = "Ben"
teams = ["sales"]
[[reps]]
id = "chen"
name = "Chen"
teams = ["sales"]
"#;

/// The service as its own process (`leadrouter serve`), as it runs in production: the load
/// generator's work does not run on the service's threads.
struct Service(std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

async fn start_service(
    dir: &std::path::Path,
    url: &str,
    config_text: &str,
    placement: Placement,
) -> anyhow::Result<(Service, String)> {
    let config = dir.join(format!("bench-{}.toml", new_id()));
    std::fs::write(&config, config_text)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = placement
        .command()?
        .args(["--config", &config.to_string_lossy(), "serve"])
        .env("LEADROUTER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("LEADROUTER__DATABASE__URL", url)
        .spawn()
        .context("starting leadrouter serve")?;
    let service = Service(child);
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return Ok((service, addr));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the service did not start listening on {addr}")
}

/// Returns leads per second.
async fn intake_over_http(
    args: &BenchArgs,
    dir: &std::path::Path,
    url: &str,
    placement: Placement,
) -> anyhow::Result<f64> {
    if args.existing_contacts > 0 {
        let mut settings = Settings::from_toml(BENCH_CONFIG)?;
        settings.database.url = url.to_owned();
        let store = leadrouter::app::prepare_store(&settings).await?;
        let started = Instant::now();
        store.seed_contacts(i64::try_from(args.existing_contacts)?).await?;
        store.close().await;
        println!("seeded {} existing contacts in {:.1?}", args.existing_contacts, started.elapsed());
    }
    let (service, addr) = start_service(dir, url, BENCH_CONFIG, placement).await?;
    let run_id = new_id();

    // Warm-up: connections, statement caches.
    let mut warm = Connection::open(&addr).await?;
    for i in 0..200.min(args.requests) {
        warm.post_form(&format!("warmup-{run_id}-{i}")).await?;
    }
    drop(warm);

    // The clients run on one thread of their own (as wrk does): no hand-offs between threads
    // on the client side, which on small VMs cost more than the requests.
    let (total, concurrency, load_addr) = (args.requests, args.concurrency, addr.clone());
    let started = Instant::now();
    let (latencies, errors) = std::thread::spawn(move || -> anyhow::Result<(Vec<Duration>, usize)> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(rt.block_on(load(load_addr, run_id, total, concurrency)))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the load generator panicked"))??;
    let mut latencies = latencies;
    let elapsed = started.elapsed();
    drop(service);

    latencies.sort_unstable();
    let pct = |p: f64| percentile(&latencies, p);
    let rate = args.requests as f64 / elapsed.as_secs_f64();
    println!(
        "form intake over HTTP: {rate:.0} leads/s ({} in {:.2?}), errors {}, latency p50 {:.2?} p95 {:.2?} p99 {:.2?} max {:.2?}",
        args.requests,
        elapsed,
        errors,
        pct(0.50),
        pct(0.95),
        pct(0.99),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(rate)
}

/// `concurrency` clients posting `total` forms between them; returns latencies and errors.
async fn load(addr: String, run_id: String, total: usize, concurrency: usize) -> (Vec<Duration>, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (addr, next, errors, run_id) = (addr.clone(), next.clone(), errors.clone(), run_id.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut conn = match Connection::open(&addr).await {
                Ok(c) => c,
                Err(_) => return latencies,
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                if conn.post_form(&format!("{run_id}-{i}")).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    match Connection::open(&addr).await {
                        Ok(c) => conn = c,
                        Err(_) => break,
                    }
                }
                latencies.push(t.elapsed());
            }
            latencies
        });
    }
    let mut latencies = Vec::with_capacity(total);
    while let Some(part) = tasks.join_next().await {
        latencies.extend(part.unwrap_or_default());
    }
    (latencies, errors.load(Ordering::Relaxed))
}

/// A bare keep-alive HTTP/1.1 client: the load generator should spend the machine's cores on
/// the service, not on itself (like wrk, unlike a full client library).
struct Connection {
    stream: tokio::io::BufStream<tokio::net::TcpStream>,
    host: String,
}

impl Connection {
    async fn open(addr: &str) -> anyhow::Result<Connection> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream: tokio::io::BufStream::new(stream), host: addr.to_owned() })
    }

    /// Posts a new prospect's form, expects 202 and returns the lead id.
    async fn post_form(&mut self, who: &str) -> anyhow::Result<String> {
        let body = serde_json::json!({
            "name": format!("Prospect {who}"),
            "email": format!("p{who}@example.com"),
            "message": "Hello, we would like a quote for 20 seats.",
            "utm_source": "google",
        })
        .to_string();
        let (status, response) = self.post("/api/v1/forms/contact", "", &body).await?;
        anyhow::ensure!(status == "202", "status {status}: {}", String::from_utf8_lossy(&response));
        let body: serde_json::Value = serde_json::from_slice(&response)?;
        Ok(body["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Posts JSON with extra header lines (each ending in CRLF); returns status and body.
    async fn post(&mut self, path: &str, headers: &str, body: &str) -> anyhow::Result<(String, Vec<u8>)> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.exchange(&request).await
    }

    async fn get(&mut self, path: &str, headers: &str) -> anyhow::Result<(String, Vec<u8>)> {
        self.exchange(&format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{headers}\r\n", self.host)).await
    }

    /// Sends a request and reads the response (status and a Content-Length body).
    async fn exchange(&mut self, request: &str) -> anyhow::Result<(String, Vec<u8>)> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(request.as_bytes()).await?;
        self.stream.flush().await?;
        let mut status_line = String::new();
        self.stream.read_line(&mut status_line).await?;
        let status = status_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await? == 0 {
                anyhow::bail!("connection closed");
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        let mut response = vec![0; length];
        self.stream.read_exact(&mut response).await?;
        Ok((status, response))
    }
}
