mod bench;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use leadrouter::app::{App, prepare_store, shutdown_signal};
use leadrouter::core::Core;
use leadrouter::intake::Intake;
use leadrouter::settings::{DEFAULT_CONFIG_PATH, Settings};

/// Omnichannel lead intake and routing.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (TOML). Default: config/leadrouter.toml if it exists. Every key can be set
    /// as LEADROUTER__SECTION__KEY in the environment.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything: HTTP API, channels, outbox, scheduler.
    Serve,
    /// Create or update the database schema, apply the config's reps, and exit.
    Migrate,
    /// Print every problem in the configuration; exit non-zero if there is any.
    CheckConfig,
    /// Process failed inbound items again.
    Replay {
        /// An inbound item id.
        id: Option<String>,
        /// Every failed item.
        #[arg(long, conflicts_with = "id")]
        failed: bool,
    },
    /// Load generator: form intake over HTTP, and the bare insert rate for comparison.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(cli: &Cli) -> anyhow::Result<Settings> {
    Ok(Settings::load(cli.config.as_deref())?)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::CheckConfig => {
            let source = cli.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
            let problems = match Settings::check(cli.config.as_deref()) {
                Ok(problems) => problems,
                Err(e) => {
                    println!("{}: {e}", source.display());
                    return Ok(ExitCode::FAILURE);
                }
            };
            if problems.is_empty() {
                println!("{}: configuration is valid", source.display());
                return Ok(ExitCode::SUCCESS);
            }
            for p in &problems {
                println!("{}: {p}", source.display());
            }
            println!("{} problem(s)", problems.len());
            Ok(ExitCode::FAILURE)
        }
        Command::Serve => {
            let settings = load(&cli)?;
            leadrouter::telemetry::init_logging(&settings.log);
            let app = App::build(settings).await?;
            app.run_until_stopped(shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let settings = load(&cli)?;
            leadrouter::telemetry::init_logging(&settings.log);
            let store = prepare_store(&settings).await?;
            store.close().await;
            println!("database is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay { id, failed } => {
            let settings = load(&cli)?;
            leadrouter::telemetry::init_logging(&settings.log);
            let store = prepare_store(&settings).await?;
            let intake = Intake::new(Core::new(store.clone(), Arc::new(settings)));
            let ids = match (id, failed) {
                (Some(id), _) => vec![id.clone()],
                (None, true) => store.failed_inbound_ids(10_000).await.context("listing failed items")?,
                (None, false) => anyhow::bail!("give an inbound item id or --failed"),
            };
            let mut failures = 0;
            for id in &ids {
                match leadrouter::replay::replay(&intake, id).await {
                    Ok(lead) => println!("{id}: ok, lead {}", lead.as_deref().unwrap_or("-")),
                    Err(e) => {
                        failures += 1;
                        println!("{id}: {e}");
                    }
                }
            }
            store.close().await;
            println!("{} replayed, {failures} failed", ids.len() - failures);
            Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Bench(args) => {
            bench::run(args.clone()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
