//! The application: storage, HTTP, outbox and scheduler, with one shutdown.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::base::{ms, token_hash};
use crate::channels::email::MailboxReader;
use crate::channels::status::ChannelStatus;
use crate::channels::telegram::{TelegramChannel, TelegramError};
use crate::core::Core;
use crate::http::{AppState, ConnectionLimits, router, serve};
use crate::inbox::Inbox;
use crate::intake::Intake;
use crate::jobs::Jobs;
use crate::notify::Notifiers;
use crate::outbox::OutboxWorker;
use crate::settings::{Settings, TelegramMode};
use crate::store::{RepSeed, Store};

pub struct App {
    listener: TcpListener,
    intake: Intake,
    settings: Arc<Settings>,
    inbox: Inbox,
    telegram: Option<Arc<TelegramChannel<Inbox>>>,
}

/// Connects, migrates and applies the config's reps: everything `serve` and `migrate` share.
pub async fn prepare_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database.url, settings.database.max_connections)
        .await
        .with_context(|| format!("connecting to {}", redact(&settings.database.url)))?;
    store.migrate().await.context("running migrations")?;
    let seeds = rep_seeds(settings);
    let mut tx = store.begin().await?;
    let changed = tx.sync_config_reps(&seeds, ms(jiff::Timestamp::now())).await?;
    tx.commit().await?;
    if !changed.is_empty() {
        tracing::info!(reps = ?changed, "reps applied from the config");
    }
    Ok(store)
}

fn rep_seeds(settings: &Settings) -> Vec<RepSeed> {
    use secrecy::ExposeSecret;
    settings
        .reps
        .iter()
        .map(|r| RepSeed {
            id: r.id.clone(),
            name: r.name.clone(),
            email: r.email.as_ref().map(|e| e.as_str().to_owned()),
            telegram_chat_id: r.telegram_chat_id,
            api_token_hash: r.api_token.as_ref().map(|t| token_hash(t.expose_secret())),
            capacity: r.capacity,
            weight: r.weight,
            languages: r.languages.clone(),
            timezone: r.timezone.as_ref().map(|t| t.text.clone()),
            working_hours: r.working_hours.as_ref().map(|h| h.text.clone()),
            active: r.active,
            notify: r.notify,
            out_of_office_until: r.out_of_office_until.as_ref().map(|t| ms(t.value)),
            teams: settings
                .teams
                .iter()
                .filter(|t| settings.team_members(&t.id).contains(&r.id))
                .map(|t| t.id.clone())
                .collect(),
        })
        .collect()
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

impl App {
    /// Validates the settings, prepares storage and binds the listener (port 0 picks a free
    /// port: tests read it back with `port()`).
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let problems = settings.problems();
        if !problems.is_empty() {
            anyhow::bail!("invalid configuration:\n  {}", problems.join("\n  "));
        }
        let store = prepare_store(&settings).await?;
        let listener = TcpListener::bind(&settings.server.listen)
            .await
            .with_context(|| format!("binding {}", settings.server.listen))?;
        if settings.forms.is_empty() {
            tracing::warn!(
                "no [[forms]] configured: every form id is accepted with the generic provider and no secret"
            );
        }
        if settings.auth.admin_tokens.is_empty() {
            tracing::warn!("no auth.admin_tokens configured: the admin API is closed");
        }
        let settings = Arc::new(settings);
        let intake = Intake::new(Core::new(store, settings.clone()));
        let inbox = Inbox::new(intake.clone());
        let telegram = if settings.telegram.enabled {
            Some(Arc::new(start_telegram(&settings, inbox.clone()).await?))
        } else {
            None
        };
        Ok(App { listener, intake, inbox, settings, telegram })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn intake(&self) -> &Intake {
        &self.intake
    }

    /// Runs until `shutdown` resolves, then lets in-flight requests finish (up to the grace
    /// period) and stops the workers between units of work.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let status = ChannelStatus::default();
        let state = AppState::new(
            self.intake.clone(),
            crate::telemetry::metrics_handle(),
            status.clone(),
            self.telegram.clone(),
        );
        if let Some(telegram) = self.telegram.clone().filter(|_| self.settings.telegram.mode == TelegramMode::Polling) {
            let (status, cancel) = (status.clone(), cancel.child_token());
            tasks.spawn(async move { telegram.run_polling(status, cancel).await });
        }
        for mailbox in &self.settings.imap {
            let reader = MailboxReader::new(&self.settings, mailbox.clone(), self.inbox.clone(), status.clone());
            tasks.spawn(reader.run(cancel.child_token()));
        }

        let worker = OutboxWorker {
            store: self.intake.core.store.clone(),
            notifiers: Notifiers::new(&self.settings, self.intake.core.store.clone())?,
            settings: self.settings.outbox.clone(),
            wakeup: self.intake.core.outbox_wakeup(),
        };
        tasks.spawn(worker.run(cancel.child_token()));
        let limiter_state = state.clone();
        tasks.spawn(crate::jobs::run(
            Jobs::new(self.intake.core.clone()),
            self.settings.scheduler.unassigned_interval.0,
            move || limiter_state.prune_rate_limits(),
            cancel.child_token(),
        ));

        let addr = self.listener.local_addr()?;
        let limits = connection_limits(&self.settings);
        tracing::info!(%addr, database = %redact(&self.settings.database.url),
            max_connections = limits.max_connections, "leadrouter listening");
        let server = serve(self.listener, router(state), limits, cancel.child_token());
        let mut server = tokio::spawn(server);

        tokio::select! {
            _ = shutdown => tracing::info!("shutting down"),
            result = &mut server => {
                cancel.cancel();
                result.context("HTTP server task")?;
                anyhow::bail!("the HTTP server stopped");
            }
        }
        cancel.cancel();
        let grace = self.settings.server.shutdown_grace.0;
        let drained = tokio::time::timeout(grace, async {
            let _ = (&mut server).await;
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(?grace, "shutdown grace period over; stopping what is left");
            server.abort();
            tasks.abort_all();
        }
        self.intake.core.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Descriptors kept back from client connections: the database pools, the outbox's and the
/// channels' outgoing connections, the files we open.
fn descriptor_reserve(settings: &Settings) -> u64 {
    // An SQLite connection holds the database, its WAL and its shared-memory file.
    4 * u64::from(settings.database.max_connections) + 128 + 8 * settings.imap.len() as u64
}

/// The connection caps, with the total fitted to the file limit (raised to its hard limit
/// first: the default soft limit of 1,024 is a leftover of `select`).
fn connection_limits(settings: &Settings) -> ConnectionLimits {
    let file_limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; assuming 1024");
            1024
        }
    };
    let budget = crate::http::connection_budget(file_limit, descriptor_reserve(settings));
    let s = &settings.server;
    let max_connections = match s.max_connections {
        Some(n) if n > budget => {
            tracing::warn!(
                configured = n,
                budget,
                file_limit,
                "server.max_connections is more than the open-file limit leaves room for; using the budget"
            );
            budget
        }
        Some(n) => n,
        None => budget.min(65_536),
    };
    ConnectionLimits {
        header_read_timeout: s.header_read_timeout.0,
        idle_timeout: s.idle_timeout.0,
        max_connections,
        max_connections_per_client: s.max_connections_per_client,
    }
}

/// Checks the bot token (a refused token is a start-up error; an unreachable Telegram is
/// not: the poller retries) and, in webhook mode, registers the webhook.
async fn start_telegram(settings: &Settings, inbox: Inbox) -> anyhow::Result<TelegramChannel<Inbox>> {
    let channel = TelegramChannel::new(&settings.telegram, &settings.server.public_url, inbox)
        .context("building the Telegram client")?;
    match channel.check_token().await {
        Ok(username) => tracing::info!(bot = %username, "Telegram bot ready"),
        Err(TelegramError::Unauthorized) => {
            anyhow::bail!("telegram.token was refused by the Bot API (401 Unauthorized)")
        }
        Err(e) => tracing::warn!(error = %e, "Telegram is not reachable yet; retrying in the background"),
    }
    if settings.telegram.mode == TelegramMode::Webhook
        && let Err(e) = channel.set_webhook().await
    {
        tracing::warn!(error = %e, "setWebhook failed; Telegram keeps the webhook it had");
    }
    Ok(channel)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
