//! How the wire types read for a person: the text commands print without
//! `--json`. The JSON contract is `crate::wire`'s; these forms are the
//! command line's own and may change with it.

use crate::wire::{AuditOut, RoundOut, TvlOut, VerifyOut, WithdrawalAdminOut, WithdrawalOut};

/// Micro-USDC shown to a person: "1.500000 USDC".
pub fn usdc(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}{}.{:06} USDC", abs / 1_000_000, abs % 1_000_000)
}

/// A list, one line per item; `empty` says there is none.
pub fn lines<T>(items: &[T], empty: &str, line: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        return empty.into();
    }
    items.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// A round: its instants, pools and digest, then what settled it.
pub fn round(view: &RoundOut) -> String {
    let mut text = format!(
        "round {} ({}) {}{}\n  opens {}  locks {}  settles from {}  voids {}\n  pools: UP {} ({} bets)  DOWN {} ({} bets)\n  terms digest {}",
        view.code,
        view.market,
        view.status,
        view.result.map(|r| format!(" result {r}")).unwrap_or_default(),
        view.open_at,
        view.lock_at,
        view.settle_at,
        view.void_at,
        usdc(view.pool_up),
        view.bets_up,
        usdc(view.pool_down),
        view.bets_down,
        view.terms_digest,
    );
    if let (Some(close), Some(previous)) = (&view.close, &view.previous_close) {
        text.push_str(&format!(
            "\n  close {} on {} ({}) vs previous {} on {} ({})",
            close.close, close.date, close.source, previous.close, previous.date, previous.source
        ));
        for price in [close, previous] {
            for answer in price.sources.iter().flatten() {
                text.push_str(&format!(
                    "\n    {} {}: {} at {}{}",
                    price.date,
                    answer.source,
                    answer
                        .close
                        .as_deref()
                        .or(answer.error.as_deref())
                        .unwrap_or("no close yet"),
                    answer.answered_at,
                    if answer.agreed { " (agreed)" } else { "" }
                ));
            }
        }
    }
    if let (Some(result), Some(at)) = (view.published_result, &view.published_at) {
        text.push_str(&format!(
            "\n  result {result} published at {at}{}",
            view.payouts_at
                .as_ref()
                .map(|payouts| format!(
                    "; payouts from {payouts} (an operator may void until then)"
                ))
                .unwrap_or_default()
        ));
    }
    if let Some(fee) = view.fee {
        text.push_str(&format!(
            "\n  fee {}  dust {}",
            usdc(fee),
            usdc(view.dust.unwrap_or(0))
        ));
    }
    if let Some(by) = &view.settled_by {
        text.push_str(&format!(
            "\n  settled by {by}{}",
            view.settle_reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ));
    }
    text
}

/// A round in a list: code, status, result and pools.
pub fn round_line(view: &RoundOut) -> String {
    format!(
        "{}  {:8} {:5}  UP {:>22}  DOWN {:>22}",
        view.code,
        view.status,
        view.result.unwrap_or("-"),
        usdc(view.pool_up),
        usdc(view.pool_down)
    )
}

/// A withdrawal in the queue: id, status, amount and destination.
pub fn withdrawal_line(view: &WithdrawalOut) -> String {
    format!(
        "{:>6}  {:<10}  {}  to {}",
        view.id,
        view.status,
        usdc(view.amount),
        view.address
    )
}

/// A withdrawal with the hot wallet's transactions for it, one line each:
/// hash, nonce, state, confirmations, and the explorer link.
pub fn withdrawal_admin_line(view: &WithdrawalAdminOut) -> String {
    let mut text = withdrawal_line(&view.withdrawal);
    if let Some(why) = &view.withdrawal.failure_reason {
        text.push_str(&format!("\n        failed: {why}"));
    }
    for tx in &view.transactions {
        text.push_str(&format!(
            "\n        tx {} nonce {} {}{}{}",
            tx.tx_hash,
            tx.nonce,
            tx.state,
            tx.confirmations
                .map(|c| format!(", {c} confirmations"))
                .unwrap_or_default(),
            tx.explorer_url
                .as_ref()
                .map(|u| format!("  {u}"))
                .unwrap_or_default(),
        ));
    }
    text
}

/// The hot wallet's address and balances.
pub fn hot_wallet(hot: &crate::services::HotBalances) -> String {
    format!(
        "hot wallet {}: {} wei of ETH, {} of the token",
        hot.address,
        hot.eth_wei,
        usdc(i64::try_from(hot.token_micros).unwrap_or(i64::MAX))
    )
}

/// An operator's action: when, who, what, on what, and why.
pub fn audit_line(view: &AuditOut) -> String {
    format!(
        "{}  {:<16} {:<14} {}{}",
        view.at,
        view.actor,
        view.action,
        view.subject,
        view.reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    )
}

/// Total value locked, its parts, and the house's share outside it.
pub fn tvl(view: &TvlOut) -> String {
    format!(
        "TVL {}\n  user balances        {}\n  open/locked pools    {}\n  pending withdrawals  {}\nhouse (outside TVL): fees {}, rounding {}\nin custody (TVL + house = minus the chain account): {}",
        usdc(view.total),
        usdc(view.user_balances),
        usdc(view.round_pools),
        usdc(view.withdrawals_pending),
        usdc(view.house_fees),
        usdc(view.house_rounding),
        usdc(view.custody),
    )
}

/// The verdict, then one line per invariant checked.
pub fn verify(view: &VerifyOut) -> String {
    let mut text = format!(
        "verify: {} ({}: {} transactions, {} entries)",
        if view.ok { "OK" } else { "FAILED" },
        view.scope,
        view.transactions,
        view.entries
    );
    if let Some(checked) = view.checked_transactions {
        let from = view.from_checkpoint.as_ref().map_or_else(
            || "the ledger's first transaction".to_string(),
            |c| format!("checkpoint {} (through transaction {})", c.id, c.through_tx),
        );
        text.push_str(&format!("\n  checked {checked} transactions after {from}"));
        match &view.checkpoint {
            Some(c) => text.push_str(&format!(
                "\n  wrote checkpoint {} through transaction {} ({})",
                c.id, c.through_tx, c.hash
            )),
            None => text.push_str("\n  wrote no checkpoint"),
        }
    }
    for check in &view.checks {
        text.push_str(&format!(
            "\n  [{}] {}: {}",
            if check.passed { "ok" } else { "FAIL" },
            check.name,
            check.detail
        ));
    }
    text
}
