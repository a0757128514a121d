//! The bank test's verdict: the database, read directly, against what the
//! clients were told. Every acknowledged operation took effect exactly
//! once, nothing else did, and every balance adds up.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgPool;

use super::journal::{Entry, Operation, Outcome};

/// A funded player of the test.
pub struct Player {
    pub email: String,
    pub api_key: String,
    pub user_id: i64,
    /// Micro-USDC credited at setup.
    pub deposits: i64,
}

/// What the journal says each player's operations did.
#[derive(Default)]
struct Expected {
    /// Acknowledged bets: id -> (side, stake).
    bets: BTreeMap<i64, (String, i64)>,
    /// Bets whose cancel was acknowledged.
    cancels: BTreeSet<i64>,
    /// Acknowledged withdrawals: id -> amount.
    withdrawals: BTreeMap<i64, i64>,
}

struct BetRow {
    id: i64,
    side: String,
    stake: i64,
    status: String,
}

/// Violations: a kind each (for the tally) and a line.
#[derive(Default)]
pub struct Violations(pub Vec<(&'static str, String)>);

impl Violations {
    pub fn add(&mut self, kind: &'static str, line: String) {
        self.0.push((kind, line));
    }

    /// How many of each kind, most frequent first.
    pub fn tally(&self) -> String {
        let mut counts = BTreeMap::<&str, usize>::new();
        for (kind, _) in &self.0 {
            *counts.entry(kind).or_default() += 1;
        }
        let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        let counts: Vec<String> = counts
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        counts.join(", ")
    }
}

/// Every violation found.
pub async fn check(pool: &PgPool, players: &[Player], journal: &[Entry]) -> Violations {
    let mut violations = Violations::default();
    let expected = expectations(players, journal, &mut violations);
    let player_of: BTreeMap<i64, usize> = players
        .iter()
        .enumerate()
        .map(|(index, p)| (p.user_id, index))
        .collect();

    let mut bets: Vec<Vec<BetRow>> = players.iter().map(|_| Vec::new()).collect();
    let rows: Vec<(i64, i64, String, i64, String)> =
        sqlx::query_as("SELECT id, user_id, side, stake, status FROM bets ORDER BY id")
            .fetch_all(pool)
            .await
            .expect("read bets");
    for (id, user, side, stake, status) in rows {
        match player_of.get(&user) {
            Some(&p) => bets[p].push(BetRow {
                id,
                side,
                stake,
                status,
            }),
            None => violations.add(
                "stray bet",
                format!("bet {id} belongs to user {user}, no player"),
            ),
        }
    }
    let mut withdrawals: Vec<Vec<(i64, i64, String)>> =
        players.iter().map(|_| Vec::new()).collect();
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as("SELECT id, user_id, amount, status FROM withdrawals ORDER BY id")
            .fetch_all(pool)
            .await
            .expect("read withdrawals");
    for (id, user, amount, status) in rows {
        match player_of.get(&user) {
            Some(&p) => withdrawals[p].push((id, amount, status)),
            None => violations.add(
                "stray withdrawal",
                format!("withdrawal {id} belongs to user {user}, no player"),
            ),
        }
    }
    let balances: BTreeMap<i64, i64> = sqlx::query_as(
        "SELECT u.id, a.balance FROM users u JOIN accounts a ON a.id = u.account_id",
    )
    .fetch_all(pool)
    .await
    .expect("read balances")
    .into_iter()
    .collect();
    let deposited: BTreeMap<i64, i64> = sqlx::query_as(
        "SELECT user_id, CAST(SUM(amount) AS BIGINT) FROM deposits GROUP BY user_id",
    )
    .fetch_all(pool)
    .await
    .expect("read deposits")
    .into_iter()
    .collect();

    for (index, player) in players.iter().enumerate() {
        let who = &player.email;
        let expected = &expected[index];
        check_bets(who, &bets[index], expected, journal, index, &mut violations);
        check_withdrawals(
            who,
            &withdrawals[index],
            expected,
            journal,
            index,
            &mut violations,
        );
        if deposited.get(&player.user_id) != Some(&player.deposits) {
            violations.add(
                "deposit",
                format!(
                    "{who}: deposits {:?} in the database, {} credited",
                    deposited.get(&player.user_id),
                    player.deposits
                ),
            );
        }
        let staked: i64 = bets[index]
            .iter()
            .filter(|b| b.status == "ACTIVE")
            .map(|b| b.stake)
            .sum();
        let withdrawn: i64 = withdrawals[index]
            .iter()
            .filter(|w| w.2 != "FAILED")
            .map(|w| w.1)
            .sum();
        let owed = player.deposits - staked - withdrawn;
        match balances.get(&player.user_id) {
            Some(&balance) if balance == owed => {}
            balance => violations.add("balance", format!(
                "{who}: balance {balance:?}, but deposits {} - active stakes {staked} - withdrawals {withdrawn} = {owed}",
                player.deposits
            )),
        }
    }
    let negative: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT id, kind, balance FROM accounts WHERE kind <> 'chain' AND balance < 0 ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("read accounts");
    for (id, kind, balance) in negative {
        violations.add(
            "negative balance",
            format!("account {id} ({kind}) is negative: {balance}"),
        );
    }
    violations
}

/// Per player, the acknowledged bets, cancels and withdrawals; answers
/// that contradict their request, and requests never resolved, are
/// violations.
fn expectations(
    players: &[Player],
    journal: &[Entry],
    violations: &mut Violations,
) -> Vec<Expected> {
    let mut expected: Vec<Expected> = players.iter().map(|_| Expected::default()).collect();
    let mut answered_by: BTreeMap<(&str, i64), &str> = BTreeMap::new();
    for entry in journal {
        let request = &entry.request;
        let player = &players[request.player];
        let body = match &entry.outcome {
            Outcome::Acknowledged(body) => body,
            Outcome::Refused { code, .. } if code == "idempotency_mismatch" => {
                violations.add(
                    "idempotency mismatch",
                    format!(
                        "{} {}: idempotency_mismatch on an identical retry",
                        request.kind(),
                        request.key
                    ),
                );
                continue;
            }
            Outcome::Refused { .. } => continue,
            Outcome::Indeterminate(why) => {
                violations.add(
                    "unresolved",
                    format!(
                        "{} {} of {}: still indeterminate after {} attempts ({why})",
                        request.kind(),
                        request.key,
                        player.email,
                        entry.attempts
                    ),
                );
                continue;
            }
        };
        let id = body["id"].as_i64().unwrap_or(-1);
        let mut contradicts = body["user_id"].as_i64() != Some(player.user_id);
        let mine = &mut expected[request.player];
        match &request.operation {
            Operation::Bet { side, stake } => {
                contradicts |= body["side"] != *side || body["stake"] != *stake;
                mine.bets.insert(id, (side.to_string(), *stake));
            }
            Operation::Cancel { bet } => {
                contradicts |= id != *bet || body["status"] != "CANCELLED";
                mine.cancels.insert(*bet);
            }
            Operation::Withdraw { amount } => {
                contradicts |= body["amount"] != *amount;
                mine.withdrawals.insert(id, *amount);
            }
        }
        if contradicts {
            violations.add(
                "contradicting answer",
                format!(
                    "{} {}: the answer contradicts the request: {body}",
                    request.kind(),
                    request.key
                ),
            );
        }
        // Two requests (two keys) answered with one bet or withdrawal.
        if !matches!(request.operation, Operation::Cancel { .. }) {
            if let Some(other) = answered_by.insert((request.kind(), id), &request.key) {
                violations.add(
                    "acknowledged twice",
                    format!(
                        "{} {id} acknowledged to two requests: {other} and {}",
                        request.kind(),
                        request.key
                    ),
                );
            }
        }
    }
    expected
}

fn check_bets(
    who: &str,
    rows: &[BetRow],
    expected: &Expected,
    journal: &[Entry],
    player: usize,
    violations: &mut Violations,
) {
    let stored: BTreeMap<i64, &BetRow> = rows.iter().map(|b| (b.id, b)).collect();
    for (id, (side, stake)) in &expected.bets {
        match stored.get(id) {
            None => violations.add(
                "lost bet",
                format!("{who}: acknowledged bet {id} is not in the database"),
            ),
            Some(row) if row.side != *side || row.stake != *stake => violations.add(
                "altered bet",
                format!(
                    "{who}: bet {id} is {} {} in the database, acknowledged as {side} {stake}",
                    row.side, row.stake
                ),
            ),
            Some(_) => {}
        }
    }
    for row in rows {
        if !expected.bets.contains_key(&row.id) {
            violations.add("unacknowledged bet", format!(
                "{who}: bet {} ({} {}) was never acknowledged: placed twice, or refused but took effect ({})",
                row.id,
                row.side,
                row.stake,
                requests_like(journal, player, |o| {
                    matches!(o, Operation::Bet { side, stake } if *side == row.side && *stake == row.stake)
                })
            ));
        }
        let cancelled = row.status == "CANCELLED";
        if cancelled && !expected.cancels.contains(&row.id) {
            violations.add(
                "unacknowledged cancel",
                format!(
                    "{who}: bet {} is cancelled, but no cancel was acknowledged",
                    row.id
                ),
            );
        }
        if !cancelled && expected.cancels.contains(&row.id) {
            violations.add(
                "lost cancel",
                format!(
                    "{who}: bet {} is {}, but its cancel was acknowledged",
                    row.id, row.status
                ),
            );
        }
    }
}

fn check_withdrawals(
    who: &str,
    rows: &[(i64, i64, String)],
    expected: &Expected,
    journal: &[Entry],
    player: usize,
    violations: &mut Violations,
) {
    let stored: BTreeMap<i64, i64> = rows.iter().map(|w| (w.0, w.1)).collect();
    for (id, amount) in &expected.withdrawals {
        match stored.get(id) {
            None => violations.add(
                "lost withdrawal",
                format!("{who}: acknowledged withdrawal {id} is not in the database"),
            ),
            Some(stored) if stored != amount => violations.add(
                "altered withdrawal",
                format!(
                    "{who}: withdrawal {id} is {stored} in the database, acknowledged as {amount}"
                ),
            ),
            Some(_) => {}
        }
    }
    for (id, amount, status) in rows {
        if !expected.withdrawals.contains_key(id) {
            violations.add("unacknowledged withdrawal", format!(
                "{who}: withdrawal {id} ({amount}, {status}) was never acknowledged: made twice, or refused but took effect ({})",
                requests_like(journal, player, |o| matches!(o, Operation::Withdraw { amount: a } if a == amount))
            ));
        }
    }
}

/// The player's requests `like` an unexpected row (same side and stake,
/// or same amount), for the violation's line: their outcomes and attempts.
fn requests_like(journal: &[Entry], player: usize, like: impl Fn(&Operation) -> bool) -> String {
    let matching: Vec<String> = journal
        .iter()
        .filter(|e| e.request.player == player && like(&e.request.operation))
        .map(|e| {
            let outcome = match &e.outcome {
                Outcome::Acknowledged(body) => format!("acknowledged as {}", body["id"]),
                Outcome::Refused {
                    status,
                    code,
                    message,
                } => format!("refused {status} {code} ({message})"),
                Outcome::Indeterminate(why) => format!("indeterminate ({why})"),
            };
            format!(
                "key {}: {outcome} after {} attempts",
                e.request.key, e.attempts
            )
        })
        .collect();
    if matching.is_empty() {
        "no such request".into()
    } else {
        matching.join("; ")
    }
}
