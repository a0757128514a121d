//! The `updown` command line: the seed's verbs plus operations, each a thin
//! call into a use-case. `--json` prints machine-readable output on stdout
//! and errors as JSON on stderr, with a non-zero exit either way.

mod args;

use std::io::IsTerminal;

use chrono::NaiveDate;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use updown_domain::admission::PlayerLimits;
use updown_domain::ids::{BetId, RoundCode};
use updown_domain::Micros;
use updown_store::{ChainRejection, WithdrawalChange};

use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::services::{App, SettleOptions, SettleRequest};

pub use crate::wire::{instant, usdc, RoundOut, TvlOut, VerifyOut};
use crate::wire::{AuditOut, BetOut, LimitsOut, PriceOut, UserOut, WithdrawalOut};
pub use args::{
    BenchCommand, BenchTarget, Cli, Command, LimitsArgs, PriceCommand, RoundCommand, UserCommand,
    WithdrawalCommand,
};

fn default_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    )
}

/// Prints a value as JSON or as text.
struct Printer {
    json: bool,
}

impl Printer {
    fn print<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            emit(&serde_json::to_string_pretty(value).expect("serialisable output"));
        } else {
            emit(&human());
        }
    }
}

/// Writes a line to stdout. A closed pipe (`updown verify | head -2`) is
/// not an error worth a panic: the reader has what it wanted.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}

/// Parses the arguments and runs the command; returns the exit code.
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
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            print_error(cli.json, "invalid_config", &error.to_string(), "");
            return 2;
        }
    };
    if matches!(cli.command, Command::Serve) {
        crate::telemetry::init_for_service();
    } else {
        crate::telemetry::init_for_cli();
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

fn print_error(json: bool, code: &str, message: &str, detail: &str) {
    if json {
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        eprintln!("{body}");
    } else if detail.is_empty() || detail == message {
        eprintln!("error: {message}");
    } else {
        eprintln!("error: {message}\n{detail}");
    }
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

async fn run(command: Command, config: Config, json: bool) -> AppResult<i32> {
    let out = Printer { json };
    if let Command::Demo = command {
        return crate::demo::run(config, json).await.map(|()| 0);
    }
    if let Command::Bench(bench) = command {
        let result = match bench {
            BenchCommand::Bets {
                target,
                users,
                concurrency,
                seconds,
                pgbench,
            } => {
                let args = crate::bench::BetsArgs {
                    backend: target.backend,
                    url: target.url,
                    users,
                    concurrency: concurrency as usize,
                    seconds,
                    pgbench,
                };
                crate::bench::bets(config, args).await?
            }
            BenchCommand::Http {
                target,
                users,
                connections,
                seconds,
                pgbench,
                idempotency_keys,
            } => {
                let args = crate::bench_http::HttpArgs {
                    backend: target.backend,
                    url: target.url,
                    users,
                    connections,
                    seconds,
                    pgbench,
                    idempotency_keys,
                };
                crate::bench_http::http(config, args).await?
            }
            BenchCommand::Settle {
                target,
                users,
                bets,
            } => {
                let args = crate::bench::SettleArgs {
                    backend: target.backend,
                    url: target.url,
                    users,
                    bets,
                };
                crate::bench::settle(config, args).await?
            }
        };
        emit(&serde_json::to_string_pretty(&result).expect("serialisable"));
        return Ok(0);
    }
    if let Command::Openapi = command {
        let document = crate::api::openapi()
            .to_pretty_json()
            .map_err(|e| AppError::Internal(e.into()))?;
        emit(&document);
        return Ok(0);
    }
    if let Command::Calendar { from, to } = command {
        return print_calendar(&config, from, to, &out).map(|()| 0);
    }
    if let Command::Serve = command {
        return serve(config).await.map(|()| 0);
    }
    let app = App::from_config(config).await.map_err(AppError::Internal)?;
    match command {
        Command::Serve => unreachable!("handled above"),
        Command::Migrate => {
            // App::from_config already migrated.
            let backend = format!("{:?}", app.store.backend()).to_lowercase();
            out.print(
                &serde_json::json!({ "migrated": true, "backend": backend }),
                || format!("migrations applied ({backend})"),
            );
        }
        Command::Seed { users, balance } => seed(&app, users, balance, &out).await?,
        Command::User(UserCommand::Create { email }) => {
            let user = app.create_user(&email).await?;
            out.print(&UserOut::from(&user), || {
                format!(
                    "user {} created: {} (wallet index {})",
                    user.id, user.email, user.sequence
                )
            });
        }
        Command::Deposit {
            user,
            amount,
            tx,
            log_index,
        } => {
            let user = app.user_by_email(&user).await?;
            let tx = tx.unwrap_or_else(|| {
                format!(
                    "cli-{}-{}",
                    app.clock.now().timestamp_micros(),
                    std::process::id()
                )
            });
            let deposit = app.deposit(user.id, amount, &tx, log_index, None).await?;
            let balance = app.balance(user.id).await?;
            out.print(
                &serde_json::json!({ "deposit_id": deposit.id, "user": user.email.as_str(), "amount": amount.get(), "tx": tx, "log_index": log_index, "balance": balance.get() }),
                || format!("deposited {} to {} (tx {tx}); balance {}", usdc(amount.get()), user.email, usdc(balance.get())),
            );
        }
        Command::Bet {
            user,
            side,
            amount,
            round,
        } => {
            let user = app.user_by_email(&user).await?;
            let bet = app.place_bet(user.id, side, amount, round, None).await?;
            out.print(&BetOut::from(&bet), || bet.id.to_string());
        }
        Command::CancelBet { id } => {
            let bet = app.cancel_bet(BetId(id), None, None).await?;
            out.print(&BetOut::from(&bet), || {
                format!(
                    "bet {} cancelled; {} refunded",
                    bet.id,
                    usdc(bet.stake.get())
                )
            });
        }
        Command::Withdraw { user, amount, to } => {
            let user = app.user_by_email(&user).await?;
            let withdrawal = app.withdraw(user.id, amount, &to, None).await?;
            out.print(&WithdrawalOut::from(&withdrawal), || {
                format!(
                    "withdrawal {} queued: {} to {}",
                    withdrawal.id,
                    usdc(amount.get()),
                    withdrawal.address
                )
            });
        }
        Command::Withdrawals(WithdrawalCommand::List { status, limit }) => {
            let status = status
                .map(|s| {
                    updown_store::WithdrawalStatus::parse(&s.to_ascii_uppercase()).ok_or_else(
                        || {
                            AppError::Invalid(format!(
                            "--status must be QUEUED, SUBMITTING, SUBMITTED, CONFIRMED or FAILED, not {s:?}"
                        ))
                        },
                    )
                })
                .transpose()?;
            let withdrawals = app.store.withdrawals(None, status, None, limit).await?;
            let views: Vec<WithdrawalOut> = withdrawals.iter().map(WithdrawalOut::from).collect();
            out.print(&views, || {
                if views.is_empty() {
                    return "no withdrawals".into();
                }
                views
                    .iter()
                    .map(|w| {
                        format!(
                            "{:>6}  {:<9}  {}  to {}",
                            w.id,
                            w.status,
                            usdc(w.amount),
                            w.address
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Withdrawals(step) => {
            let (id, change, actor) = match step {
                WithdrawalCommand::Approve { id, actor } => (
                    id,
                    WithdrawalChange::Submit {
                        chain_tx_hash: None,
                    },
                    actor,
                ),
                WithdrawalCommand::Confirm { id, tx, actor } => (
                    id,
                    WithdrawalChange::Confirm {
                        chain_tx_hash: Some(tx),
                    },
                    actor,
                ),
                WithdrawalCommand::Fail {
                    id,
                    reason,
                    tx,
                    actor,
                } => (
                    id,
                    WithdrawalChange::Fail {
                        reason,
                        rejection: tx.map(|tx_hash| ChainRejection::Operator { tx_hash }),
                    },
                    actor,
                ),
                WithdrawalCommand::List { .. } => unreachable!("handled above"),
            };
            let actor = actor.unwrap_or_else(default_actor);
            let withdrawal = app
                .change_withdrawal(updown_domain::ids::WithdrawalId(id), change, &actor, None)
                .await?;
            let view = WithdrawalOut::from(&withdrawal);
            out.print(&view, || {
                format!("withdrawal {} is {}", view.id, view.status)
            });
        }
        Command::OpenRound { code, actor } => {
            let actor = actor.unwrap_or_else(default_actor);
            let (round, created) = app.operator_open_round(code, &actor, None).await?;
            let view = app.round_view(&round).await?;
            out.print(&view, || {
                format!(
                    "{}{}",
                    if created { "opened " } else { "already open: " },
                    view.human()
                )
            });
        }
        Command::LockRound {
            code,
            reason,
            actor,
        } => {
            let actor = actor.unwrap_or_else(default_actor);
            let round = app.operator_lock_round(code, &actor, reason).await?;
            let view = app.round_view(&round).await?;
            out.print(&view, || view.human());
        }
        Command::SettleRound {
            code,
            result,
            reason,
            actor,
        } => {
            let request =
                SettleRequest::from_operator(&result, actor.unwrap_or_else(default_actor), reason)?;
            let round = settle_with_progress(&app, code, request, json).await?;
            let view = app.round_view(&round).await?;
            out.print(&view, || view.human());
        }
        Command::Price(PriceCommand::Set { date, close, actor }) => {
            let record = app
                .set_price(date, close, &actor.unwrap_or_else(default_actor))
                .await?;
            out.print(&PriceOut::from(&record), || {
                format!("close of {date} recorded: {close} ({})", record.source)
            });
        }
        Command::Balance { user } => {
            let user = app.user_by_email(&user).await?;
            let balance = app.balance(user.id).await?;
            out.print(
                &serde_json::json!({ "user": user.email.as_str(), "available": balance.get() }),
                || format!("{}: {} available", user.email, usdc(balance.get())),
            );
        }
        Command::Limits(args) => {
            let user = app.user_by_email(&args.user).await?;
            let excluded_until = args
                .exclude_until
                .map(crate::services::new_york_midnight)
                .transpose()?;
            let limits = PlayerLimits {
                max_stake_per_round: args.per_round,
                max_stake_per_day: args.per_day,
                excluded_until,
            };
            let user = app.set_limits(user.id, limits).await?;
            let mut view =
                serde_json::json!(LimitsOut::at(&user.limit_settings(), app.clock.now()));
            view["user"] = user.email.as_str().into();
            out.print(&view, || format!("limits of {}: {view}", user.email));
        }
        Command::Round(RoundCommand::Show { code }) => {
            let round = app.round(code).await?;
            let view = app.round_view(&round).await?;
            out.print(&view, || view.human());
        }
        Command::Rounds { limit } => {
            let rounds = app.rounds(limit).await?;
            let mut views = Vec::with_capacity(rounds.len());
            for round in &rounds {
                views.push(app.round_view(round).await?);
            }
            out.print(&views, || {
                if views.is_empty() {
                    return "no rounds yet".into();
                }
                views
                    .iter()
                    .map(|v| {
                        format!(
                            "{}  {:8} {:5}  UP {:>22}  DOWN {:>22}",
                            v.code,
                            v.status,
                            v.result.unwrap_or("-"),
                            usdc(v.pool_up),
                            usdc(v.pool_down)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Tvl => {
            let tvl = TvlOut::from(app.tvl().await?);
            out.print(&tvl, || tvl.human());
        }
        Command::Verify => {
            let report = VerifyOut::from(&app.verify().await?);
            out.print(&report, || report.human());
            if !report.ok {
                return Ok(1);
            }
        }
        Command::Audit { limit } => {
            let entries = app.store.audit_log(None, limit).await?;
            let views: Vec<AuditOut> = entries.iter().map(AuditOut::from).collect();
            out.print(&views, || {
                if entries.is_empty() {
                    return "no manual actions recorded".into();
                }
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{}  {:<16} {:<14} {}{}",
                            instant(e.at),
                            e.actor,
                            e.action,
                            e.subject,
                            e.reason
                                .as_ref()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Scheduler { once: true } => {
            let rounds = app.scheduler_step().await?;
            let withdrawals = app.withdrawal_step().await?;
            let both = serde_json::json!({ "rounds": rounds, "withdrawals": withdrawals });
            out.print(&both, || {
                if rounds.is_idle() && withdrawals.is_idle() {
                    "nothing to do".into()
                } else {
                    format!("rounds: {rounds:?}\nwithdrawals: {withdrawals:?}")
                }
            });
        }
        Command::Scheduler { once: false } => {
            eprintln!(
                "scheduler: stepping every {:?} until Ctrl-C or SIGTERM",
                app.config.scheduler_tick
            );
            app.run_scheduler(crate::api::shutdown_signal()).await;
        }
        Command::Demo | Command::Calendar { .. } | Command::Bench(_) | Command::Openapi => {
            unreachable!("handled above")
        }
    }
    // What this command did reaches the other instances before it exits.
    app.events.flush(EVENTS_FLUSH).await;
    Ok(0)
}

/// Longest a command waits at exit for its events to reach Redis.
const EVENTS_FLUSH: std::time::Duration = std::time::Duration::from_secs(3);

/// `updown serve`: the admin token, migrations, the listener, the API.
async fn serve(mut config: Config) -> AppResult<()> {
    if config.admin_token.is_none() {
        if config.production {
            return Err(AppError::Invalid(
                "UPDOWN_ENV=production needs ADMIN_TOKEN (at least 16 characters)".into(),
            ));
        }
        let token = crate::services::random_hex()?;
        eprintln!("ADMIN_TOKEN is not set: for this run only, the admin token is {token}");
        config.admin_token = Some(crate::config::Secret::new(token));
    }
    crate::metrics::handle();
    let app = App::from_config(config).await.map_err(AppError::Internal)?;
    // Refused in production without WALLET_XPUB; warns in development.
    app.deposit_wallet()?;
    let address = app.config.bind_addr;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| AppError::Invalid(format!("cannot listen on {address} (BIND_ADDR): {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| AppError::Internal(e.into()))?;
    eprintln!(
        "updown listening on http://{bound} (database: {:?})",
        app.store.backend()
    );
    let (stop_scheduler, scheduler_stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = app.config.scheduler.then(|| {
        let app = app.clone();
        tokio::spawn(async move {
            app.run_scheduler(async move {
                let _ = scheduler_stopped.await;
            })
            .await
        })
    });
    let served = crate::api::serve(app.clone(), listener, crate::api::shutdown_signal()).await;
    let _ = stop_scheduler.send(());
    if let Some(scheduler) = scheduler {
        let _ = scheduler.await;
    }
    app.events.flush(EVENTS_FLUSH).await;
    served.map_err(|e| AppError::Internal(e.into()))
}

async fn settle_with_progress(
    app: &App,
    code: RoundCode,
    request: SettleRequest,
    json: bool,
) -> AppResult<updown_store::Round> {
    let bar = progress_bar(json, 0, "paying");
    let report = |paid: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(paid);
    };
    let options = SettleOptions {
        on_progress: Some(&report),
        fail_after_chunks: None,
    };
    let result = app.settle_round_with(code, request, options).await;
    bar.finish_and_clear();
    result
}

/// A progress bar on a terminal; hidden under --json or when piped.
pub fn progress_bar(json: bool, length: u64, message: &'static str) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

async fn seed(app: &App, users: u32, balance: Micros, out: &Printer) -> AppResult<()> {
    let bar = progress_bar(out.json, u64::from(users), "seeding");
    let (created, existing) = app
        .seed_users(users, balance, &|done| bar.set_position(done))
        .await?;
    bar.finish_and_clear();
    out.print(
        &serde_json::json!({ "created": created, "already_existed": existing, "balance_each": balance.get() }),
        || format!("seeded {created} users with {} each ({existing} already existed)", usdc(balance.get())),
    );
    Ok(())
}

fn print_calendar(config: &Config, from: NaiveDate, to: NaiveDate, out: &Printer) -> AppResult<()> {
    if to < from {
        return Err(AppError::Invalid(format!(
            "--to {to} is before --from {from}"
        )));
    }
    let sessions = config
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
    Ok(())
}
