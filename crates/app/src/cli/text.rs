//! How the wire types read for a person: the text commands print without
//! `--json`. The JSON contract is `crate::wire`'s; these forms are the
//! command line's own and may change with it.

use crate::wire::{RoundOut, TvlOut, VerifyOut};

/// Micro-USDC shown to a person: "1.500000 USDC".
pub fn usdc(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}{}.{:06} USDC", abs / 1_000_000, abs % 1_000_000)
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
        "verify: {} ({} transactions, {} entries)",
        if view.ok { "OK" } else { "FAILED" },
        view.transactions,
        view.entries
    );
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
