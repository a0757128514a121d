//! The `updown` command line: the seed's verbs plus operations, each a thin
//! call into a use-case. `--json` prints machine-readable output on stdout
//! and errors as JSON on stderr, with a non-zero exit either way.
//!
//! # Layout
//! - `args`: every command, its arguments and `--help`.
//! - `ledger`: the commands that work on the database, one function each.
//! - `serve`: `updown serve`.
//! - `config`: `updown config [--explain]`.
//! - `backup`: `updown backup` and `updown restore`.
//! - `output`: printing, errors and progress bars, shared by all.
//! - `text`: how the wire types read for a person, without `--json`.
//! - `demo`, `bench`, `bench_http`: `updown demo` and `updown bench`.

mod args;
mod backup;
mod bench;
mod bench_chain;
mod bench_http;
mod bench_rush;
mod bench_sse;
mod chain;
mod config;
mod demo;
mod ledger;
mod output;
mod probe;
mod serve;
mod text;

use chrono::NaiveDate;
use clap::Parser;
use serde::Serialize;

use crate::config::{Config, Explanation, Reader, Sources};
use crate::error::{AppError, AppResult};
use crate::wire::instant;

pub use args::{
    BenchCommand, BenchTarget, Cli, Command, LedgerCommand, LimitsArgs, PriceCommand, RoundCommand,
    UserCommand, WithdrawalCommand,
};
use output::{emit, print_error, Printer};

/// Longest a command waits at exit for its events to reach Redis.
const EVENTS_FLUSH: std::time::Duration = std::time::Duration::from_secs(3);

pub async fn main() -> i32 {
    let json_requested = std::env::args().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if json_requested && error.use_stderr() => {
            print_error(
                true,
                "invalid_input",
                &error.kind().to_string(),
                &error.to_string(),
            );
            return 2;
        }
        Err(error) => error.exit(),
    };
    let mut reader = Reader::new(Sources::of_process());
    let config = match Config::from_reader(&mut reader) {
        Ok(config) => config,
        Err(error) => {
            if let Command::Config { explain: true } = cli.command {
                // Where the values up to the refused one came from.
                config::print(&Explanation::of(&reader), true, &Printer { json: cli.json });
            }
            print_error(cli.json, "invalid_config", &error.to_string(), "");
            return 2;
        }
    };
    // Logging waits for the configuration (see `telemetry::init`).
    if matches!(cli.command, Command::Serve) {
        crate::telemetry::init_for_service(&config.telemetry);
    } else {
        crate::telemetry::init_for_cli(&config.telemetry);
    }
    announce_clock(&config);
    let code = match run(cli.command, config, cli.json).await {
        Ok(code) => code,
        Err(error) => {
            if let AppError::Internal(inner) = &error {
                tracing::error!(error = format!("{inner:#}"), "command failed");
            }
            let detail = match &error {
                AppError::Internal(inner) => format!("{inner:#}"),
                _ => String::new(),
            };
            crate::telemetry::flush();
            print_error(cli.json, error.code(), &error.to_string(), &detail);
            1
        }
    };
    crate::telemetry::flush();
    code
}

fn announce_clock(config: &Config) {
    if let Some(clock) = config.clock {
        eprintln!(
            "*** SIMULATED CLOCK: time starts at {} and runs at {}x (CLOCK_START/CLOCK_SPEED). For demos and tests only. ***",
            instant(clock.start),
            clock.speed
        );
    }
}

/// One command; the process's exit code.
async fn run(command: Command, config: Config, json: bool) -> AppResult<i32> {
    let out = Printer { json };
    match command {
        Command::Serve => serve::run(config).await.map(|()| 0),
        Command::Openapi => openapi(),
        Command::Calendar { from, to } => calendar(&config, from, to, &out),
        Command::Config { explain } => {
            config::print(config.explanation(), explain, &out);
            Ok(0)
        }
        Command::Demo => demo::run(config, json).await.map(|()| 0),
        Command::Probe { url } => probe::run(&config, url, &out),
        Command::Backup { to } => backup::backup(&config, &to, &out).await,
        Command::Restore { from } => backup::restore(config, &from, &out).await,
        Command::Bench(command) => bench(command, config).await,
        Command::Ledger(command) => {
            let app = crate::startup::app(config)
                .await
                .map_err(AppError::Internal)?;
            let code = ledger::run(command, &app, &out).await?;
            // What this command did reaches the other instances before it exits.
            app.events.flush(EVENTS_FLUSH).await;
            Ok(code)
        }
    }
}

/// `updown bench ...`: runs one benchmark and prints its figures as JSON.
async fn bench(command: BenchCommand, config: Config) -> AppResult<i32> {
    let result = match command {
        BenchCommand::Bets {
            target,
            users,
            concurrency,
            seconds,
            pgbench,
        } => {
            let args = bench::BetsArgs {
                backend: target.backend,
                url: target.url,
                users,
                concurrency: concurrency as usize,
                seconds,
                pgbench,
            };
            bench::bets(config, args).await?
        }
        BenchCommand::Http {
            target,
            users,
            connections,
            seconds,
            pgbench,
            pairs,
            idempotency_keys,
        } => {
            let args = bench_http::HttpArgs {
                backend: target.backend,
                url: target.url,
                users,
                connections,
                seconds,
                pgbench,
                pairs,
                idempotency_keys,
            };
            bench_http::http(config, args).await?
        }
        BenchCommand::Chain {
            target,
            addresses,
            transfers,
            per_block,
            blocks,
            topic_addresses,
            topic_chunk,
        } => {
            let args = bench_chain::ChainArgs {
                backend: target.backend,
                url: target.url,
                addresses,
                transfers,
                per_block,
                blocks,
                topic_addresses,
                topic_chunk,
            };
            bench_chain::chain(config, args).await?
        }
        BenchCommand::Verify {
            target,
            users,
            bets,
            new_bets,
        } => {
            let args = bench::VerifyArgs {
                backend: target.backend,
                url: target.url,
                users,
                bets,
                new_bets,
            };
            bench::verify(config, args).await?
        }
        BenchCommand::Rush {
            target,
            players,
            speed,
        } => {
            let args = bench_rush::RushArgs {
                backend: target.backend,
                url: target.url,
                players,
                speed,
            };
            bench_rush::rush_bench(config, args).await?
        }
        BenchCommand::Sse {
            target,
            streams,
            rate,
            seconds,
            players,
            redis,
        } => {
            let args = bench_sse::SseArgs {
                backend: target.backend,
                url: target.url,
                streams,
                rate,
                seconds,
                players,
                redis,
            };
            bench_sse::sse(config, args).await?
        }
        BenchCommand::Settle {
            target,
            users,
            bets,
        } => {
            let args = bench::SettleArgs {
                backend: target.backend,
                url: target.url,
                users,
                bets,
            };
            bench::settle(config, args).await?
        }
    };
    emit(&serde_json::to_string_pretty(&result).expect("serialisable"));
    Ok(0)
}

/// `updown openapi`: the API's document.
fn openapi() -> AppResult<i32> {
    let document = crate::api::openapi()
        .to_pretty_json()
        .map_err(|e| AppError::Internal(e.into()))?;
    emit(&document);
    Ok(0)
}

/// `updown calendar`: the sessions between two dates and their close.
fn calendar(config: &Config, from: NaiveDate, to: NaiveDate, out: &Printer) -> AppResult<i32> {
    if to < from {
        return Err(AppError::Invalid(format!(
            "--to {to} is before --from {from}"
        )));
    }
    let sessions = config
        .rounds
        .calendar()
        .sessions(from, to)
        .map_err(|e| AppError::Invalid(e.to_string()))?;
    #[derive(Serialize)]
    struct SessionOut {
        date: String,
        close: String,
        early_close: bool,
    }
    let views: Vec<SessionOut> = sessions
        .iter()
        .map(|s| SessionOut {
            date: s.date.to_string(),
            close: s.close.format("%H:%M").to_string(),
            early_close: s.is_early_close(),
        })
        .collect();
    out.print(&views, || {
        let mut lines: Vec<String> = views
            .iter()
            .map(|s| {
                format!(
                    "{}  closes {} New York{}",
                    s.date,
                    s.close,
                    if s.early_close { "  (early close)" } else { "" }
                )
            })
            .collect();
        lines.push(format!("{} sessions", views.len()));
        lines.join("\n")
    });
    Ok(0)
}
