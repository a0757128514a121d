//! The commands that work on the database through the use-cases: one
//! function per command, each a thin call into a service and a print.

use updown_domain::admission::PlayerLimits;
use updown_domain::ids::{BetId, RoundCode, WithdrawalId};
use updown_domain::round::{Price, Side};
use updown_domain::Micros;
use updown_store::{ChainRejection, WithdrawalChange, WithdrawalStatus};

use super::args::{
    AuditCommand, LedgerCommand, LimitsArgs, OperatorCommand, PriceCommand, RoundCommand,
    UserCommand, WithdrawalCommand,
};
use super::output::{progress_bar, Printer};
use super::text::{self, usdc};
use crate::error::{AppError, AppResult};
use crate::services::{App, SettleOptions, SettleRequest};
use crate::wire::{
    AuditOut, BetOut, LimitsOut, PriceOut, TvlOut, UserOut, VerifyOut, WithdrawalOut,
};

/// Runs one command; the process's exit code.
pub async fn run(command: LedgerCommand, app: &App, out: &Printer) -> AppResult<i32> {
    match command {
        LedgerCommand::Migrate => migrate(app, out),
        LedgerCommand::Seed { users, balance } => seed(app, users, balance, out).await,
        LedgerCommand::User(UserCommand::Create { email }) => create_user(app, &email, out).await,
        LedgerCommand::Deposit {
            user,
            amount,
            tx,
            log_index,
        } => deposit(app, &user, amount, tx, log_index, out).await,
        LedgerCommand::Bet {
            user,
            side,
            amount,
            round,
        } => bet(app, &user, side, amount, round, out).await,
        LedgerCommand::CancelBet { id } => cancel_bet(app, id, out).await,
        LedgerCommand::Withdraw { user, amount, to } => {
            withdraw(app, &user, amount, &to, out).await
        }
        LedgerCommand::Withdrawals(command) => withdrawals(app, command, out).await,
        LedgerCommand::OpenRound { code, actor } => open_round(app, code, actor, out).await,
        LedgerCommand::LockRound {
            code,
            reason,
            actor,
        } => lock_round(app, code, reason, actor, out).await,
        LedgerCommand::SettleRound {
            code,
            result,
            reason,
            actor,
        } => settle_round(app, code, &result, reason, actor, out).await,
        LedgerCommand::Price(PriceCommand::Set { date, close, actor }) => {
            set_price(app, date, close, actor, out).await
        }
        LedgerCommand::Balance { user } => balance(app, &user, out).await,
        LedgerCommand::Limits(args) => limits(app, args, out).await,
        LedgerCommand::Round(RoundCommand::Show { code }) => show_round(app, code, out).await,
        LedgerCommand::Rounds { limit } => rounds(app, limit, out).await,
        LedgerCommand::Tvl => tvl(app, out).await,
        LedgerCommand::Verify { full } => verify(app, full, out).await,
        LedgerCommand::Chain(command) => super::chain::run(command, app, out).await,
        LedgerCommand::Reconcile => super::chain::reconcile(app, out).await,
        LedgerCommand::Sweep {
            resolve: Some(id),
            reason,
            actor,
            ..
        } => {
            let by = actor.unwrap_or_else(default_actor);
            let failed = app
                .resolve_sweep(id, &by, reason.as_deref().unwrap_or_default())
                .await?;
            let view = serde_json::json!({
                "id": failed.id,
                "status": failed.status.as_str(),
                "reason": failed.reason,
            });
            out.print(&view, || {
                format!(
                    "sweep {} FAILED (nothing booked; its tokens stay at {} for a later sweep): {}",
                    failed.id,
                    failed.deposit_address,
                    failed.reason.clone().unwrap_or_default()
                )
            });
            Ok(0)
        }
        LedgerCommand::Sweep {
            dry_run, wait_secs, ..
        } => super::chain::sweep(app, dry_run, wait_secs, out).await,
        LedgerCommand::Operator(command) => operator(app, command, out).await,
        LedgerCommand::Audit { command, limit } => audit(app, command, limit, out).await,
        LedgerCommand::Scheduler { once: true } => scheduler_step(app, out).await,
        LedgerCommand::Scheduler { once: false } => {
            eprintln!(
                "scheduler: stepping every {:?} until Ctrl-C or SIGTERM",
                app.config.scheduler.tick
            );
            app.run_scheduler(crate::api::shutdown_signal()).await;
            Ok(0)
        }
    }
}

/// Who acts from the command line unless `--actor` says: `cli:$USER`.
pub(super) fn default_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    )
}

fn migrate(app: &App, out: &Printer) -> AppResult<i32> {
    // startup::app already migrated.
    let backend = format!("{:?}", app.backend()).to_lowercase();
    out.print(
        &serde_json::json!({ "migrated": true, "backend": backend }),
        || format!("migrations applied ({backend})"),
    );
    Ok(0)
}

async fn seed(app: &App, users: u32, balance: Micros, out: &Printer) -> AppResult<i32> {
    let bar = progress_bar(out.json, u64::from(users), "seeding");
    let (created, existing) = app
        .seed_users(users, balance, &|done| bar.set_position(done))
        .await?;
    bar.finish_and_clear();
    out.print(
        &serde_json::json!({ "created": created, "already_existed": existing, "balance_each": balance.get() }),
        || format!("seeded {created} users with {} each ({existing} already existed)", usdc(balance.get())),
    );
    Ok(0)
}

async fn create_user(app: &App, email: &str, out: &Printer) -> AppResult<i32> {
    let user = app.create_user(email).await?;
    out.print(&UserOut::from(&user), || {
        format!(
            "user {} created: {} (wallet index {})",
            user.id, user.email, user.sequence
        )
    });
    Ok(0)
}

async fn deposit(
    app: &App,
    email: &str,
    amount: Micros,
    tx: Option<String>,
    log_index: i64,
    out: &Printer,
) -> AppResult<i32> {
    let user = app.user_by_email(email).await?;
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
        &serde_json::json!({ "deposit_id": deposit.id, "user": user.email.as_str(), "amount": amount.get(), "tx": deposit.chain_tx_hash, "log_index": log_index, "balance": balance.get() }),
        || format!("deposited {} to {} (tx {}); balance {}", usdc(amount.get()), user.email, deposit.chain_tx_hash, usdc(balance.get())),
    );
    Ok(0)
}

async fn bet(
    app: &App,
    email: &str,
    side: Side,
    amount: Micros,
    round: Option<RoundCode>,
    out: &Printer,
) -> AppResult<i32> {
    let user = app.user_by_email(email).await?;
    let bet = app.place_bet(user.id, side, amount, round, None).await?;
    out.print(&BetOut::from(&bet), || bet.id.to_string());
    Ok(0)
}

async fn cancel_bet(app: &App, id: i64, out: &Printer) -> AppResult<i32> {
    let bet = app.cancel_bet(BetId(id), None, None).await?;
    out.print(&BetOut::from(&bet), || {
        format!(
            "bet {} cancelled; {} refunded",
            bet.id,
            usdc(bet.stake.get())
        )
    });
    Ok(0)
}

async fn withdraw(
    app: &App,
    email: &str,
    amount: Micros,
    to: &str,
    out: &Printer,
) -> AppResult<i32> {
    let user = app.user_by_email(email).await?;
    let withdrawal = app.withdraw(user.id, amount, to, None).await?;
    out.print(&WithdrawalOut::from(&withdrawal), || {
        format!(
            "withdrawal {} queued: {} to {}",
            withdrawal.id,
            usdc(amount.get()),
            withdrawal.address
        )
    });
    Ok(0)
}

/// `updown withdrawals list|approve|confirm|fail|resolve-nonce`.
async fn withdrawals(app: &App, command: WithdrawalCommand, out: &Printer) -> AppResult<i32> {
    let (id, change, actor) = match command {
        WithdrawalCommand::List { status, limit } => {
            return list_withdrawals(app, status, limit, out).await
        }
        WithdrawalCommand::ResolveNonce { id, reason, actor } => {
            let actor = actor.unwrap_or_else(default_actor);
            let failed = app.resolve_nonce(WithdrawalId(id), &actor, &reason).await?;
            let view = WithdrawalOut::from(&failed);
            out.print(&view, || {
                format!(
                    "withdrawal {} is {}: {}",
                    view.id,
                    view.status,
                    failed.failure_reason.as_deref().unwrap_or("")
                )
            });
            return Ok(0);
        }
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
    };
    let actor = actor.unwrap_or_else(default_actor);
    let withdrawal = app
        .change_withdrawal(WithdrawalId(id), change, &actor, None)
        .await?;
    let view = WithdrawalOut::from(&withdrawal);
    out.print(&view, || {
        format!("withdrawal {} is {}", view.id, view.status)
    });
    Ok(0)
}

async fn list_withdrawals(
    app: &App,
    status: Option<String>,
    limit: i64,
    out: &Printer,
) -> AppResult<i32> {
    let status = status
        .map(|s| {
            WithdrawalStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
                AppError::Invalid(format!(
                    "--status must be QUEUED, SUBMITTING, SUBMITTED, CONFIRMED or FAILED, not {s:?}"
                ))
            })
        })
        .transpose()?;
    let hot = match &app.sender {
        Some(sender) => Some(sender.balances().await?),
        None => None,
    };
    let head = hot.as_ref().map(|h| h.head);
    let views = app
        .withdrawals_for_operators(status, None, limit, head)
        .await?;
    out.print(&views, || {
        let mut text = text::lines(&views, "no withdrawals", text::withdrawal_admin_line);
        if let Some(hot) = &hot {
            text.push_str(&format!("\n{}", text::hot_wallet(hot)));
        }
        text
    });
    Ok(0)
}

async fn open_round(
    app: &App,
    code: Option<RoundCode>,
    actor: Option<String>,
    out: &Printer,
) -> AppResult<i32> {
    let actor = actor.unwrap_or_else(default_actor);
    let (round, created) = app.operator_open_round(code, &actor, None).await?;
    let view = app.round_view(&round).await?;
    out.print(&view, || {
        format!(
            "{}{}",
            if created { "opened " } else { "already open: " },
            text::round(&view)
        )
    });
    Ok(0)
}

async fn lock_round(
    app: &App,
    code: RoundCode,
    reason: Option<String>,
    actor: Option<String>,
    out: &Printer,
) -> AppResult<i32> {
    let actor = actor.unwrap_or_else(default_actor);
    let round = app.operator_lock_round(code, &actor, reason).await?;
    let view = app.round_view(&round).await?;
    out.print(&view, || text::round(&view));
    Ok(0)
}

async fn settle_round(
    app: &App,
    code: RoundCode,
    result: &str,
    reason: Option<String>,
    actor: Option<String>,
    out: &Printer,
) -> AppResult<i32> {
    let request =
        SettleRequest::from_operator(result, actor.unwrap_or_else(default_actor), reason)?;
    let bar = progress_bar(out.json, 0, "paying");
    let report = |paid: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(paid);
    };
    let options = SettleOptions {
        on_progress: Some(&report),
        fail_after_chunks: None,
    };
    let settled = app.settle_round_with(code, request, options).await;
    bar.finish_and_clear();
    let view = app.round_view(&settled?).await?;
    out.print(&view, || text::round(&view));
    Ok(0)
}

async fn set_price(
    app: &App,
    date: chrono::NaiveDate,
    close: Price,
    actor: Option<String>,
    out: &Printer,
) -> AppResult<i32> {
    let record = app
        .set_price(date, close, &actor.unwrap_or_else(default_actor))
        .await?;
    out.print(&PriceOut::from(&record), || {
        format!("close of {date} recorded: {close} ({})", record.source)
    });
    Ok(0)
}

async fn balance(app: &App, email: &str, out: &Printer) -> AppResult<i32> {
    let user = app.user_by_email(email).await?;
    let balance = app.balance(user.id).await?;
    out.print(
        &serde_json::json!({ "user": user.email.as_str(), "available": balance.get() }),
        || format!("{}: {} available", user.email, usdc(balance.get())),
    );
    Ok(0)
}

async fn limits(app: &App, args: LimitsArgs, out: &Printer) -> AppResult<i32> {
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
    let actor = args.actor.unwrap_or_else(default_actor);
    let user = app
        .set_limits_for(user.id, limits, &actor, args.reason)
        .await?;
    let mut view = serde_json::json!(LimitsOut::at(&user.limit_settings(), app.clock.now()));
    view["user"] = user.email.as_str().into();
    out.print(&view, || format!("limits of {}: {view}", user.email));
    Ok(0)
}

async fn show_round(app: &App, code: RoundCode, out: &Printer) -> AppResult<i32> {
    let round = app.round(code).await?;
    let view = app.round_view_with_proof(&round).await?;
    out.print(&view, || text::round(&view));
    Ok(0)
}

async fn rounds(app: &App, limit: i64, out: &Printer) -> AppResult<i32> {
    let rounds = app.rounds(limit).await?;
    let mut views = Vec::with_capacity(rounds.len());
    for round in &rounds {
        views.push(app.round_view(round).await?);
    }
    out.print(&views, || {
        text::lines(&views, "no rounds yet", text::round_line)
    });
    Ok(0)
}

async fn tvl(app: &App, out: &Printer) -> AppResult<i32> {
    let tvl = TvlOut::from(app.tvl().await?);
    out.print(&tvl, || text::tvl(&tvl));
    Ok(0)
}

/// Exit code 1 when an invariant fails.
async fn verify(app: &App, full: bool, out: &Printer) -> AppResult<i32> {
    let report = if full {
        VerifyOut::from(&app.verify().await?)
    } else {
        VerifyOut::incremental(&app.verify_incremental().await?)
    };
    out.print(&report, || text::verify(&report));
    Ok(if report.ok { 0 } else { 1 })
}

async fn audit(
    app: &App,
    command: Option<AuditCommand>,
    limit: i64,
    out: &Printer,
) -> AppResult<i32> {
    if let Some(command) = command {
        let chain = app.audit_chain().await?;
        let view = serde_json::json!({
            "rows": chain.rows,
            "head_id": chain.head_id,
            "head_hash": chain.head_hash,
            "ok": chain.broken.is_none(),
            "broken_at": chain.broken.as_ref().map(|(id, _)| id),
            "why": chain.broken.as_ref().map(|(_, why)| why),
        });
        out.print(&view, || match (&command, &chain.broken) {
            (_, Some((id, why))) => format!("audit chain BROKEN at row {id}: {why}"),
            (AuditCommand::Verify, None) => format!(
                "audit chain ok: {} rows, head row {} hash {}",
                chain.rows, chain.head_id, chain.head_hash
            ),
            (AuditCommand::Head, None) => format!("{} {}", chain.head_id, chain.head_hash),
        });
        return Ok(if chain.broken.is_none() { 0 } else { 1 });
    }
    let entries = app.audit_log(None, limit).await?;
    let views: Vec<AuditOut> = entries.iter().map(AuditOut::from).collect();
    out.print(&views, || {
        text::lines(&views, "no manual actions recorded", text::audit_line)
    });
    Ok(0)
}

async fn scheduler_step(app: &App, out: &Printer) -> AppResult<i32> {
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
    Ok(0)
}

async fn operator(app: &App, command: OperatorCommand, out: &Printer) -> AppResult<i32> {
    let by = |actor: Option<String>| actor.unwrap_or_else(default_actor);
    let describe = |o: &updown_store::Operator| {
        serde_json::to_value(crate::wire::OperatorOut::from(o)).unwrap_or_default()
    };
    let line = |o: &updown_store::Operator| {
        format!(
            "{:>4}  {:<32} {:<10} {}{}",
            o.id,
            o.email.as_str(),
            o.role.as_str(),
            o.disabled_at
                .map(|at| format!("disabled {}", crate::wire::instant(at)))
                .unwrap_or_else(|| "enabled".into()),
            if o.totp_secret.is_some() {
                ", two-factor"
            } else {
                ""
            }
        )
    };
    match command {
        OperatorCommand::Add { email, role, actor } => {
            let (added, password) = app.add_operator(&email, role, &by(actor)).await?;
            let mut view = describe(&added);
            view["password"] = password.clone().into();
            out.print(&view, || {
                format!(
                    "{}\npassword (shown once; give it to them privately): {password}",
                    line(&added)
                )
            });
        }
        OperatorCommand::List => {
            let all = app.operators().await?;
            let views: Vec<serde_json::Value> = all.iter().map(describe).collect();
            out.print(&views, || {
                if all.is_empty() {
                    "no operators (ADMIN_TOKEN is the only way in)".into()
                } else {
                    all.iter().map(line).collect::<Vec<_>>().join("\n")
                }
            });
        }
        OperatorCommand::SetRole {
            email,
            role,
            reason,
            actor,
        } => {
            let changed = app
                .set_operator_role(&email, role, &by(actor), &reason)
                .await?;
            out.print(&describe(&changed), || line(&changed));
        }
        OperatorCommand::Disable {
            email,
            reason,
            actor,
        } => {
            let disabled = app.disable_operator(&email, &by(actor), &reason).await?;
            out.print(&describe(&disabled), || {
                format!("{} (its tokens are revoked)", line(&disabled))
            });
        }
        OperatorCommand::ResetPassword { email, actor } => {
            let (operator, password) = app.reset_operator_password(&email, &by(actor)).await?;
            let mut view = describe(&operator);
            view["password"] = password.clone().into();
            out.print(&view, || {
                format!("{}\nnew password (shown once): {password}", line(&operator))
            });
        }
        OperatorCommand::ResetTotp {
            email,
            reason,
            actor,
        } => {
            let cleared = app.reset_operator_totp(&email, &by(actor), &reason).await?;
            out.print(&describe(&cleared), || {
                format!(
                    "{}
two-factor removed; sessions ended",
                    line(&cleared)
                )
            });
        }
        OperatorCommand::Token { email, name, actor } => {
            let (id, token) = app.new_operator_token(&email, &name, &by(actor)).await?;
            let view =
                serde_json::json!({ "id": id, "email": email, "name": name, "token": token });
            out.print(&view, || {
                format!("token {id} for {email} ({name}), shown once:\n{token}")
            });
        }
    }
    Ok(0)
}
