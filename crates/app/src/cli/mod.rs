//! The `updown` command line: the seed's verbs plus operations, each a thin
//! call into a use-case. `--json` prints machine-readable output on stdout
//! and errors as JSON on stderr, with a non-zero exit either way.

mod output;

use std::io::IsTerminal;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use updown_domain::admission::PlayerLimits;
use updown_domain::ids::{BetId, RoundCode};
use updown_domain::round::{Outcome, Price, Side};
use updown_domain::Micros;

use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::services::{App, SettleOptions, SettleRequest};

pub use output::{instant, usdc, RoundOut, TvlOut, VerifyOut};
use output::{BetOut, PriceOut, UserOut, WithdrawalOut};

const AMOUNT_HELP: &str = "integer micro-USDC (1500000) or USDC with the suffix (1.5USDC)";

#[derive(Parser, Debug)]
#[command(
    name = "updown",
    version,
    about = "Daily Up/Down parimutuel betting on the NASDAQ close, with a double-entry USDC ledger."
)]
#[command(
    after_help = "Configuration comes from the environment and .env (see the README). \
DATABASE_URL unset means sqlite://./data/updown.db."
)]
pub struct Cli {
    /// Print machine-readable JSON on stdout (errors as JSON on stderr).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply database migrations.
    Migrate,
    /// Create user1@example.com..userN@example.com, each funded.
    Seed {
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        users: u32,
        /// Starting balance of each user.
        #[arg(long, default_value = "1000USDC", value_parser = parse_amount, help = format!("Starting balance: {AMOUNT_HELP}"))]
        balance: Micros,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Credit funds to a user directly (bypasses the chain; one credit per --tx).
    Deposit {
        #[arg(long)]
        user: String,
        #[arg(long, value_parser = parse_amount, help = AMOUNT_HELP)]
        amount: Micros,
        /// Chain transaction hash; a hash is credited once (default: a new one).
        #[arg(long)]
        tx: Option<String>,
        #[arg(long, default_value_t = 0)]
        log_index: i64,
    },
    /// Place a bet; prints the bet id.
    Bet {
        #[arg(long)]
        user: String,
        #[arg(long, value_parser = parse_side)]
        side: Side,
        #[arg(long, value_parser = parse_amount, help = AMOUNT_HELP)]
        amount: Micros,
        /// Round code YYYYMMDD (default: the round taking bets now).
        #[arg(long, value_parser = parse_code)]
        round: Option<RoundCode>,
    },
    /// Cancel a bet for a full refund (until CANCEL_CUTOFF_MIN before lock).
    CancelBet {
        #[arg(long)]
        id: i64,
    },
    /// Queue a withdrawal: the amount moves to pending at once.
    Withdraw {
        #[arg(long)]
        user: String,
        #[arg(long, value_parser = parse_amount, help = AMOUNT_HELP)]
        amount: Micros,
        /// Destination Ethereum address (EIP-55 checked when mixed case).
        #[arg(long)]
        to: String,
    },
    /// Open a round (default: the one that should take bets now).
    OpenRound {
        #[arg(long, value_parser = parse_code)]
        code: Option<RoundCode>,
        /// Who is acting (default: cli:$USER); kept in the audit log.
        #[arg(long)]
        actor: Option<String>,
    },
    /// Stop a round taking bets (before its lock instant too, e.g. an outage).
    LockRound {
        #[arg(long, value_parser = parse_code)]
        code: RoundCode,
        /// Why (kept in the audit log with who).
        #[arg(long)]
        reason: Option<String>,
        /// Who is acting (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Settle a round from the oracle (AUTO) or by hand (UP, DOWN, VOID).
    SettleRound {
        #[arg(long, value_parser = parse_code)]
        code: RoundCode,
        /// AUTO, UP, DOWN or VOID.
        #[arg(long)]
        result: String,
        /// Why (required for a manual result; kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
        /// Who is acting (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Official closes.
    #[command(subcommand)]
    Price(PriceCommand),
    /// A user's available balance.
    Balance {
        #[arg(long)]
        user: String,
    },
    /// Set a user's own limits (omitted ones are cleared).
    Limits(LimitsArgs),
    /// Inspect one round.
    #[command(subcommand)]
    Round(RoundCommand),
    /// Recent rounds, newest first.
    Rounds {
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=1000))]
        limit: i64,
    },
    /// Total value locked and its parts.
    Tvl,
    /// NASDAQ sessions and their close (New York time) between two dates.
    Calendar {
        #[arg(long)]
        from: NaiveDate,
        #[arg(long)]
        to: NaiveDate,
    },
    /// Check every ledger invariant; exits non-zero if one fails.
    Verify,
    /// Operators' manual actions, newest first: who, what, why.
    Audit {
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
    },
    /// Tell the whole story on a fresh temporary database.
    Demo,
    /// Measure speed on a fresh database (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Where a benchmark runs: a fresh database of this backend.
#[derive(Args, Debug)]
pub struct BenchTarget {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: crate::bench::BenchBackend,
    /// PostgreSQL to use (a fresh schema is created in it).
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
    )]
    url: String,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Concurrent bets through the service layer; optionally pgbench -N beside it.
    Bets {
        #[command(flatten)]
        target: BenchTarget,
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        users: u32,
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
        concurrency: u64,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Also run `pgbench -N -c CONCURRENCY -j 2` on the same PostgreSQL and report the ratio.
        #[arg(long)]
        pgbench: bool,
    },
    /// Settle one round of many bets from the oracle; time and peak memory.
    Settle {
        #[command(flatten)]
        target: BenchTarget,
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        users: u32,
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        bets: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user.
    Create {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PriceCommand {
    /// Record an official close (ORACLE=manual takes closes only from here).
    Set {
        #[arg(long)]
        date: NaiveDate,
        #[arg(long, value_parser = parse_price)]
        close: Price,
        #[arg(long)]
        actor: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RoundCommand {
    /// Status, pools, result, fee, dust and evidence of a round.
    Show {
        #[arg(long, value_parser = parse_code)]
        code: RoundCode,
    },
}

#[derive(Args, Debug)]
pub struct LimitsArgs {
    #[arg(long)]
    user: String,
    /// Maximum total stake per round.
    #[arg(long, value_parser = parse_amount)]
    per_round: Option<Micros>,
    /// Maximum total stake per New York day.
    #[arg(long, value_parser = parse_amount)]
    per_day: Option<Micros>,
    /// Refuse this user's bets until this date (New York midnight).
    #[arg(long)]
    exclude_until: Option<NaiveDate>,
}

fn parse_amount(text: &str) -> Result<Micros, String> {
    Micros::parse_cli(text).map_err(|e| e.to_string())
}

fn parse_side(text: &str) -> Result<Side, String> {
    text.parse()
        .map_err(|e: updown_domain::round::ParseEnumError| e.to_string())
}

fn parse_code(text: &str) -> Result<RoundCode, String> {
    RoundCode::parse(text).map_err(|e| e.to_string())
}

fn parse_price(text: &str) -> Result<Price, String> {
    Price::parse(text).map_err(|e| e.to_string())
}

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
    crate::telemetry::init_for_cli();
    announce_clock(&config);
    match run(cli.command, config, cli.json).await {
        Ok(code) => code,
        Err(error) => {
            if let AppError::Internal(inner) = &error {
                tracing::error!(error = format!("{inner:#}"), "command failed");
            }
            let detail = match &error {
                AppError::Internal(inner) => format!("{inner:#}"),
                _ => String::new(),
            };
            print_error(cli.json, error.code(), &error.to_string(), &detail);
            1
        }
    }
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
    if let Command::Calendar { from, to } = command {
        return print_calendar(&config, from, to, &out).map(|()| 0);
    }
    let app = App::from_config(config).await.map_err(AppError::Internal)?;
    match command {
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
            let deposit = app.deposit(user.id, amount, &tx, log_index).await?;
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
            let bet = app.place_bet(user.id, side, amount, round).await?;
            out.print(&BetOut::from(&bet), || bet.id.to_string());
        }
        Command::CancelBet { id } => {
            let bet = app.cancel_bet(BetId(id), None).await?;
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
            let withdrawal = app.withdraw(user.id, amount, &to).await?;
            out.print(&WithdrawalOut::from(&withdrawal), || {
                format!(
                    "withdrawal {} queued: {} to {}",
                    withdrawal.id,
                    usdc(amount.get()),
                    withdrawal.address
                )
            });
        }
        Command::OpenRound { code, actor } => {
            let (round, created) = app.open_round(code).await?;
            if created {
                let actor = actor.unwrap_or_else(default_actor);
                app.audit(
                    &actor,
                    "open_round",
                    format!("round {}", round.terms.code),
                    None,
                )
                .await?;
            }
            let view = RoundOut::new(&round, app.store.pools(round.id).await?);
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
            let was_open = app.round(code).await?.status == updown_domain::round::RoundStatus::Open;
            let round = app.lock_round(code).await?;
            if was_open {
                let actor = actor.unwrap_or_else(default_actor);
                app.audit(&actor, "lock_round", format!("round {code}"), reason)
                    .await?;
            }
            let view = RoundOut::new(&round, app.store.pools(round.id).await?);
            out.print(&view, || view.human());
        }
        Command::SettleRound {
            code,
            result,
            reason,
            actor,
        } => {
            let request = settle_request(&result, reason, actor)?;
            let round = settle_with_progress(&app, code, request, json).await?;
            let view = RoundOut::new(&round, app.store.pools(round.id).await?);
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
            let view = serde_json::json!({
                "user": user.email.as_str(),
                "max_stake_per_round": user.limits.max_stake_per_round.map(Micros::get),
                "max_stake_per_day": user.limits.max_stake_per_day.map(Micros::get),
                "excluded_until": user.limits.excluded_until.map(instant),
            });
            out.print(&view, || format!("limits of {}: {view}", user.email));
        }
        Command::Round(RoundCommand::Show { code }) => {
            let round = app.round(code).await?;
            let view = RoundOut::new(&round, app.store.pools(round.id).await?);
            out.print(&view, || view.human());
        }
        Command::Rounds { limit } => {
            let rounds = app.rounds(limit).await?;
            let mut views = Vec::with_capacity(rounds.len());
            for round in &rounds {
                views.push(RoundOut::new(round, app.store.pools(round.id).await?));
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
            let entries = app.store.audit_log(limit).await?;
            let views: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| serde_json::json!({ "at": instant(e.at), "actor": e.actor, "action": e.action, "subject": e.subject, "reason": e.reason }))
                .collect();
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
        Command::Demo | Command::Calendar { .. } | Command::Bench(_) => {
            unreachable!("handled above")
        }
    }
    Ok(0)
}

fn settle_request(
    result: &str,
    reason: Option<String>,
    actor: Option<String>,
) -> AppResult<SettleRequest> {
    if result.eq_ignore_ascii_case("AUTO") {
        return Ok(SettleRequest::Auto);
    }
    let outcome: Outcome = result.parse().map_err(|_| {
        AppError::Invalid(format!(
            "--result {result:?} must be AUTO, UP, DOWN or VOID"
        ))
    })?;
    Ok(SettleRequest::Manual {
        outcome,
        actor: actor.unwrap_or_else(default_actor),
        reason: reason
            .ok_or_else(|| AppError::Invalid("a manual result needs --reason \"why\"".into()))?,
    })
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
