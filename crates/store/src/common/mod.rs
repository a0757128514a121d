//! What both backends share: value parsing, the batch decision, and the
//! `Store` implementation itself.
//!
//! The store's SQL runs unchanged on SQLite and PostgreSQL (`$n`
//! placeholders, `RETURNING`, conditional updates instead of
//! read-then-write), but sqlx's types differ per engine, so the
//! implementation is written once as macros expanded per backend:
//! `helpers.rs` (row decoders, ledger writes) and `store_impl.rs` (`impl
//! Store`). Each backend supplies, as inherent methods: `read()` and
//! `write()` pools, `LOCK` (" FOR UPDATE" or ""), `migrate_impl`,
//! `place_bets_impl` and `pay_chunk` (the hot paths, written per engine).

#[macro_use]
mod helpers;
#[macro_use]
mod store_impl;

use anyhow::anyhow;
use chrono::NaiveDate;
use updown_domain::ids::{Email, Market, RoundCode};
use updown_domain::ledger::Account;
use updown_domain::round::{Price, RoundStatus, TiePolicy};

use crate::StoreError;

/// Fixed ids of the system accounts (see the migrations).
pub(crate) fn system_account_id(account: Account) -> Option<i64> {
    match account {
        Account::Chain => Some(1),
        Account::HouseFees => Some(2),
        Account::HouseRounding => Some(3),
        Account::WithdrawalsPending => Some(4),
        Account::User(_) | Account::Pool(..) => None,
    }
}

pub(crate) fn corrupt(what: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow!("stored {what} {value} is not valid"))
}

pub(crate) fn parse_market(text: &str) -> Result<Market, StoreError> {
    Market::parse(text).map_err(|_| corrupt("market", text))
}

pub(crate) fn parse_code(text: &str) -> Result<RoundCode, StoreError> {
    RoundCode::parse(text).map_err(|_| corrupt("round code", text))
}

pub(crate) fn parse_email(text: &str) -> Result<Email, StoreError> {
    Email::parse(text).map_err(|_| corrupt("email", text))
}

pub(crate) fn parse_date(text: &str) -> Result<NaiveDate, StoreError> {
    text.parse().map_err(|_| corrupt("date", text))
}

pub(crate) fn parse_price(text: &str) -> Result<Price, StoreError> {
    Price::parse(text).map_err(|_| corrupt("price", text))
}

pub(crate) fn parse_status(text: &str) -> Result<RoundStatus, StoreError> {
    text.parse().map_err(|_| corrupt("round status", text))
}

pub(crate) fn parse_tie(text: &str) -> Result<TiePolicy, StoreError> {
    text.parse().map_err(|_| corrupt("tie policy", text))
}

pub(crate) fn micros(value: i64) -> Result<updown_domain::Micros, StoreError> {
    updown_domain::Micros::new(value).map_err(|_| corrupt("amount", value))
}

/// Columns of a round, in the order `round_from_row` reads them.
pub(crate) const ROUND_COLUMNS: &str = "id, market, code, status, previous_session, open_at, lock_at, close_at, \
    settle_at, void_at, fee_bps, tie_policy, terms_digest, opened_at, locked_at, outcome, plan_pool_up, \
    plan_pool_down, fee, distributable, settle_cursor, settle_started_at, settled_at, dust, settled_by, \
    settle_reason, close_date, close_price, close_source, close_fetched_at, prev_close_date, prev_close_price, \
    prev_close_source, prev_close_fetched_at";

pub(crate) const USER_COLUMNS: &str =
    "id, email, sequence, created_at, max_stake_per_round, max_stake_per_day, \
    excluded_until, pending_max_stake_per_round, pending_max_stake_per_day, limits_pending_from";

pub(crate) const BET_COLUMNS: &str =
    "id, round_id, user_id, side, stake, status, placed_at, cancelled_at";

/// Decides a batch of bets in order: round rules by the clock, then each
/// player's balance, limits and exclusion. `players` holds the state of
/// every known player, read under lock; a missing one is an unknown user.
///
/// A request whose Idempotency-Key is in `used` (recorded by an earlier
/// transaction) is not placed again. Two requests of one batch with the
/// same key are one request: the second gets the first's refusal, or
/// learns that its key is used once the first is placed.
pub(crate) fn decide_batch(
    clock: &updown_domain::round::RoundClock,
    requests: &[crate::BetRequest],
    players: &mut std::collections::HashMap<
        updown_domain::UserId,
        updown_domain::admission::PlayerState,
    >,
    used: &std::collections::HashSet<(String, String)>,
) -> Vec<Result<(), crate::BetRefusalReason>> {
    let decide = |request: &crate::BetRequest,
                  players: &mut std::collections::HashMap<
        _,
        updown_domain::admission::PlayerState,
    >| {
        clock.check_bet(request.received_at)?;
        let player = players
            .get_mut(&request.user)
            .ok_or(crate::BetRefusalReason::UnknownUser(request.user))?;
        player.admit(request.stake, request.received_at)?;
        Ok(())
    };
    let mut first_with_key: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::new();
    let mut decisions: Vec<Result<(), crate::BetRefusalReason>> =
        Vec::with_capacity(requests.len());
    for (index, request) in requests.iter().enumerate() {
        let decision = match &request.key {
            None => decide(request, players),
            Some(keyed) => {
                let id = (keyed.key.scope.as_str(), keyed.key.key.as_str());
                if used.contains(&(id.0.to_string(), id.1.to_string())) {
                    Err(crate::BetRefusalReason::KeyUsed)
                } else if let Some(first) = first_with_key.get(&id) {
                    let same_request = requests[*first]
                        .key
                        .as_ref()
                        .is_some_and(|k| k.key.request_hash == keyed.key.request_hash);
                    match &decisions[*first] {
                        // The same request twice gets the same refusal.
                        Err(refusal) if same_request => Err(refusal.clone()),
                        _ => Err(crate::BetRefusalReason::KeyUsed),
                    }
                } else {
                    first_with_key.insert(id, index);
                    decide(request, players)
                }
            }
        };
        decisions.push(decision);
    }
    decisions
}

/// The keys of a batch's requests that carry one.
pub(crate) fn batch_keys(requests: &[crate::BetRequest]) -> (Vec<String>, Vec<String>) {
    requests
        .iter()
        .filter_map(|r| r.key.as_ref())
        .map(|k| (k.key.scope.clone(), k.key.key.clone()))
        .unzip()
}

/// The keys of the placed bets and the answers to record with them.
pub(crate) fn kept_answers(
    requests: &[crate::BetRequest],
    answers: &[Result<crate::Bet, crate::BetRefusalReason>],
) -> Vec<(crate::RequestKey, crate::KeptAnswer)> {
    requests
        .iter()
        .zip(answers)
        .filter_map(|(request, answer)| match (&request.key, answer) {
            (Some(keyed), Ok(bet)) => Some((keyed.key.clone(), (keyed.answer)(bet))),
            _ => None,
        })
        .collect()
}

/// One answer per request: the bet (with its id, in order) or the refusal.
pub(crate) fn answers(
    round: updown_domain::ids::RoundId,
    requests: &[crate::BetRequest],
    decisions: Vec<Result<(), crate::BetRefusalReason>>,
    ids: Vec<i64>,
) -> Vec<Result<crate::Bet, crate::BetRefusalReason>> {
    let mut ids = ids.into_iter();
    requests
        .iter()
        .zip(decisions)
        .map(|(request, decision)| {
            decision.map(|()| crate::Bet {
                id: updown_domain::ids::BetId(ids.next().expect("one id per accepted bet")),
                round,
                user: request.user,
                side: request.side,
                stake: request.stake,
                status: crate::BetStatus::Active,
                placed_at: request.received_at,
                cancelled_at: None,
            })
        })
        .collect()
}

/// The New York day of an instant, as the half-open UTC range the daily
/// stake limit counts over.
pub(crate) fn new_york_day(
    at: chrono::DateTime<chrono::Utc>,
) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    use chrono::TimeZone;
    let tz = chrono_tz::America::New_York;
    let date = at.with_timezone(&tz).date_naive();
    let start = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .expect("New York midnight exists")
            .with_timezone(&chrono::Utc)
    };
    (start(date), start(date.succ_opt().expect("date in range")))
}

/// A pool account's balance, recomputed from its entries.
///
/// Pool balances are deliberately not cached: every bet would otherwise
/// update its round's pool row, and that single row would serialise all
/// bettors (ARCHITECTURE.md). A bet locks only its player's balance row.
/// The pool's `balance` column stays 0, which `verify` checks.
pub(crate) fn pool_balance(account: &str) -> String {
    format!("(SELECT CAST(COALESCE(SUM(pe.amount), 0) AS BIGINT) FROM ledger_entries pe WHERE pe.account_id = {account})")
}

pub(crate) const WITHDRAWAL_COLUMNS: &str =
    "id, user_id, amount, address, status, chain_tx_hash, failure_reason, created_at, updated_at";
