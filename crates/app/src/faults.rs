//! Fault injection for the crash tests: `UPDOWN_TEST_CRASH=<point>` makes
//! this process SIGKILL itself the first time it reaches `<point>` (the
//! real signal, through `kill -9`: no unwinding, no flushing, as a crash).
//! Off unless set, and ignored with UPDOWN_ENV=production. The points:
//! - `watcher_before_commit`: a range with credits, before its commit;
//! - `watcher_after_commit`: the same, right after its commit;
//! - `send_after_nonce`: the hot wallet's nonce taken, inside the database
//!   transaction, before signing;
//! - `send_after_sign`: signed, the transaction not committed;
//! - `send_after_store`: the signed transaction committed, not broadcast;
//! - `send_after_broadcast`: broadcast;
//! - `send_after_mined`: its receipt seen with enough confirmations,
//!   before the withdrawal is recorded CONFIRMED;
//! - `send_after_replace`: a replacement of a stuck transaction stored,
//!   not broadcast;
//! - `withdrawal_after_commit`: an operator's step for a withdrawal
//!   (submit, confirm, fail) committed, before anything is told;
//! - `operator_after_commit`: an operator added, given a role or disabled
//!   (with its audit entry) committed, before anything is told;
//! - `settle_after_begin`: a settlement begun (its result, plan and, for a
//!   result by hand, its audit entry committed), before any payout;
//! - `sweep_after_sign`: a sweep's transactions signed, not committed;
//! - `sweep_after_store`: committed, not broadcast;
//! - `sweep_after_mined`: its transferFrom seen with enough
//!   confirmations, before it is booked.

/// Dies here if the test asked for a crash at `point`.
pub fn crash_point(point: &str, production: bool) {
    if production {
        return;
    }
    static ASKED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let asked = ASKED.get_or_init(|| std::env::var("UPDOWN_TEST_CRASH").ok());
    if asked.as_deref() != Some(point) {
        return;
    }
    eprintln!("UPDOWN_TEST_CRASH: SIGKILL at {point}");
    let _ = std::process::Command::new("kill")
        .args(["-9", &std::process::id().to_string()])
        .status();
    // The signal is on its way; nothing more happens here.
    std::thread::sleep(std::time::Duration::from_secs(60));
}
