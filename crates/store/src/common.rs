//! The `Store` implementation both backends share.
//!
//! The SQL below runs unchanged on SQLite and PostgreSQL (`$n` placeholders,
//! `RETURNING`, conditional updates instead of read-then-write), but sqlx's
//! types differ per engine, so the implementation is a macro expanded once
//! per backend. Each backend supplies, as inherent methods: `read()` and
//! `write()` pools, `LOCK` (" FOR UPDATE" or ""), `migrate_impl`,
//! `place_bets_impl` and `pay_chunk` (the hot paths, written per engine).

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
    "id, email, sequence, created_at, max_stake_per_round, max_stake_per_day, excluded_until";

pub(crate) const BET_COLUMNS: &str =
    "id, round_id, user_id, side, stake, status, placed_at, cancelled_at";

/// Decides a batch of bets in order: round rules by the clock, then each
/// player's balance, limits and exclusion. `players` holds the state of
/// every known player, read under lock; a missing one is an unknown user.
pub(crate) fn decide_batch(
    clock: &updown_domain::round::RoundClock,
    requests: &[crate::BetRequest],
    players: &mut std::collections::HashMap<
        updown_domain::UserId,
        updown_domain::admission::PlayerState,
    >,
) -> Vec<Result<(), crate::BetRefusalReason>> {
    requests
        .iter()
        .map(|request| {
            clock.check_bet(request.received_at)?;
            let player = players
                .get_mut(&request.user)
                .ok_or(crate::BetRefusalReason::UnknownUser(request.user))?;
            player.admit(request.stake, request.received_at)?;
            Ok(())
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
    "id, user_id, amount, address, status, created_at, updated_at";

/// Expands to row decoders and `impl Store for $store` over `$db`.
macro_rules! impl_store {
    ($store:ty, $db:ty, $row:ty) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Duration, NaiveDate, Utc};
        use sqlx::Row;
        use updown_domain::admission::PlayerLimits;
        use updown_domain::ids::{BetId, Email, Market, RoundCode, RoundId, UserId, WithdrawalId};
        use updown_domain::ledger::{Account, Posting};
        use updown_domain::payout::PayoutPlan;
        use updown_domain::round::{Outcome, RoundStatus, Side};
        use updown_domain::Micros;

        use crate::common::*;
        use crate::model::*;
        use crate::{Backend, BetRefusalReason, Store, StoreError, StoreResult};

        pub(super) type Tx<'a> = sqlx::Transaction<'a, $db>;

        pub(super) fn user_from_row(row: &$row) -> StoreResult<User> {
            let optional_micros = |name: &str| -> StoreResult<Option<Micros>> {
                row.try_get::<Option<i64>, _>(name)?.map(micros).transpose()
            };
            Ok(User {
                id: UserId(row.try_get("id")?),
                email: parse_email(row.try_get::<&str, _>("email")?)?,
                sequence: row.try_get("sequence")?,
                created_at: row.try_get("created_at")?,
                limits: PlayerLimits {
                    max_stake_per_round: optional_micros("max_stake_per_round")?,
                    max_stake_per_day: optional_micros("max_stake_per_day")?,
                    excluded_until: row.try_get("excluded_until")?,
                },
            })
        }

        pub(super) fn bet_from_row(row: &$row) -> StoreResult<Bet> {
            let side: &str = row.try_get("side")?;
            let status: &str = row.try_get("status")?;
            Ok(Bet {
                id: BetId(row.try_get("id")?),
                round: RoundId(row.try_get("round_id")?),
                user: UserId(row.try_get("user_id")?),
                side: side.parse().map_err(|_| corrupt("side", side))?,
                stake: micros(row.try_get("stake")?)?,
                status: match status {
                    "ACTIVE" => BetStatus::Active,
                    "CANCELLED" => BetStatus::Cancelled,
                    other => return Err(corrupt("bet status", other)),
                },
                placed_at: row.try_get("placed_at")?,
                cancelled_at: row.try_get("cancelled_at")?,
            })
        }

        pub(super) fn withdrawal_from_row(row: &$row) -> StoreResult<Withdrawal> {
            let status: &str = row.try_get("status")?;
            Ok(Withdrawal {
                id: WithdrawalId(row.try_get("id")?),
                user: UserId(row.try_get("user_id")?),
                amount: micros(row.try_get("amount")?)?,
                address: row.try_get("address")?,
                status: WithdrawalStatus::parse(status).ok_or_else(|| corrupt("withdrawal status", status))?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn price_from_columns(row: &$row, market: &Market, prefix: &str) -> StoreResult<Option<PriceRecord>> {
            let date: Option<String> = row.try_get(format!("{prefix}_date").as_str())?;
            let Some(date) = date else { return Ok(None) };
            let close: String = row.try_get(format!("{prefix}_price").as_str())?;
            Ok(Some(PriceRecord {
                market: market.clone(),
                date: parse_date(&date)?,
                close: parse_price(&close)?,
                source: row.try_get(format!("{prefix}_source").as_str())?,
                fetched_at: row.try_get(format!("{prefix}_fetched_at").as_str())?,
            }))
        }

        pub(super) fn round_from_row(row: &$row) -> StoreResult<Round> {
            let market = parse_market(row.try_get::<&str, _>("market")?)?;
            let fee_bps: i32 = row.try_get("fee_bps")?;
            let terms = updown_domain::round::RoundTerms {
                market: market.clone(),
                code: parse_code(row.try_get::<&str, _>("code")?)?,
                previous_session: parse_date(row.try_get::<&str, _>("previous_session")?)?,
                open_at: row.try_get("open_at")?,
                lock_at: row.try_get("lock_at")?,
                close_at: row.try_get("close_at")?,
                settle_at: row.try_get("settle_at")?,
                void_at: row.try_get("void_at")?,
                fee_bps: u32::try_from(fee_bps).map_err(|_| corrupt("fee_bps", fee_bps))?,
                tie_policy: parse_tie(row.try_get::<&str, _>("tie_policy")?)?,
            };
            let outcome: Option<String> = row.try_get("outcome")?;
            let settlement = match outcome {
                None => None,
                Some(outcome) => {
                    let outcome: Outcome = outcome.parse().map_err(|_| corrupt("outcome", &outcome))?;
                    let plan = PayoutPlan::new(
                        outcome,
                        micros(row.try_get("plan_pool_up")?)?,
                        micros(row.try_get("plan_pool_down")?)?,
                        terms.fee_bps,
                    )
                    .map_err(|e| corrupt("payout plan", e))?;
                    // Paired assertion: what was stored is what the rules give.
                    let fee: i64 = row.try_get("fee")?;
                    let distributable: i64 = row.try_get("distributable")?;
                    if plan.fee.get() != fee || plan.distributable.get() != distributable {
                        return Err(corrupt("settlement figures of round", terms.code));
                    }
                    Some(SettlementRecord {
                        plan,
                        evidence: Evidence {
                            close: price_from_columns(row, &market, "close")?,
                            previous_close: price_from_columns(row, &market, "prev_close")?,
                        },
                        actor: row.try_get("settled_by")?,
                        reason: row.try_get("settle_reason")?,
                        started_at: row.try_get("settle_started_at")?,
                        cursor: row.try_get("settle_cursor")?,
                        finished_at: row.try_get("settled_at")?,
                        dust: row.try_get::<Option<i64>, _>("dust")?.map(micros).transpose()?,
                    })
                }
            };
            Ok(Round {
                id: RoundId(row.try_get("id")?),
                terms_digest: row.try_get("terms_digest")?,
                status: parse_status(row.try_get::<&str, _>("status")?)?,
                opened_at: row.try_get("opened_at")?,
                locked_at: row.try_get("locked_at")?,
                settlement,
                terms,
            })
        }

        pub(super) async fn round_in(tx: &mut Tx<'_>, id: RoundId, lock: &str) -> StoreResult<Round> {
            let sql = format!("SELECT {ROUND_COLUMNS} FROM rounds WHERE id = $1{lock}");
            let row = sqlx::query(&sql).bind(id.0).fetch_optional(&mut **tx).await?;
            round_from_row(&row.ok_or_else(|| StoreError::NotFound(format!("round {id}")))?)
        }

        pub(super) async fn account_id(tx: &mut Tx<'_>, account: Account) -> StoreResult<i64> {
            if let Some(id) = system_account_id(account) {
                return Ok(id);
            }
            let row = match account {
                Account::User(user) => {
                    sqlx::query("SELECT account_id FROM users WHERE id = $1")
                        .bind(user.0)
                        .fetch_optional(&mut **tx)
                        .await?
                }
                Account::Pool(round, side) => {
                    let column = match side {
                        Side::Up => "pool_up_account",
                        Side::Down => "pool_down_account",
                    };
                    sqlx::query(&format!("SELECT {column} AS account_id FROM rounds WHERE id = $1"))
                        .bind(round.0)
                        .fetch_optional(&mut **tx)
                        .await?
                }
                _ => unreachable!("system accounts handled above"),
            };
            let row = row.ok_or_else(|| StoreError::NotFound(format!("account {account:?}")))?;
            Ok(row.try_get("account_id")?)
        }

        /// Links a ledger transaction to what caused it.
        #[derive(Default)]
        pub(super) struct TxMeta {
            pub(super) round: Option<RoundId>,
            pub(super) user: Option<UserId>,
            pub(super) bet: Option<BetId>,
            pub(super) reference: Option<String>,
        }

        /// Writes one balanced posting and moves the cached balances; a
        /// movement that would take a non-chain account below zero fails
        /// the whole transaction.
        pub(super) async fn write_posting(tx: &mut Tx<'_>, posting: &Posting, meta: TxMeta, now: DateTime<Utc>) -> StoreResult<i64> {
            let tx_id: i64 = sqlx::query(
                "INSERT INTO ledger_transactions (kind, round_id, user_id, bet_id, reference, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(posting.kind().as_str())
            .bind(meta.round.map(|r| r.0))
            .bind(meta.user.map(|u| u.0))
            .bind(meta.bet.map(|b| b.0))
            .bind(meta.reference)
            .bind(now)
            .fetch_one(&mut **tx)
            .await?
            .try_get("id")?;
            for entry in posting.entries() {
                let account = account_id(tx, entry.account).await?;
                sqlx::query("INSERT INTO ledger_entries (tx_id, account_id, amount) VALUES ($1, $2, $3)")
                    .bind(tx_id)
                    .bind(account)
                    .bind(entry.amount)
                    .execute(&mut **tx)
                    .await?;
                if matches!(entry.account, Account::Pool(..)) {
                    // Pool balances are not cached (see POOL_BALANCE).
                    continue;
                }
                let moved = sqlx::query(
                    "UPDATE accounts SET balance = balance + $1 \
                     WHERE id = $2 AND (kind = 'chain' OR balance + $1 >= 0)",
                )
                .bind(entry.amount)
                .bind(account)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if moved != 1 {
                    let available: i64 = sqlx::query("SELECT balance FROM accounts WHERE id = $1")
                        .bind(account)
                        .fetch_one(&mut **tx)
                        .await?
                        .try_get("balance")?;
                    return Err(StoreError::InsufficientFunds {
                        available: micros(available)?,
                        requested: micros(-entry.amount)?,
                    });
                }
            }
            Ok(tx_id)
        }

        /// A player's state for deciding a batch, from their row (balance
        /// and limits columns); their stored stakes are counted only when
        /// they have limits, which most players do not.
        pub(super) async fn player_state(
            tx: &mut Tx<'_>,
            row: &$row,
            user: UserId,
            round: RoundId,
            received_at: DateTime<Utc>,
        ) -> StoreResult<updown_domain::admission::PlayerState> {
            let optional_micros = |name: &str| -> StoreResult<Option<Micros>> { row.try_get::<Option<i64>, _>(name)?.map(micros).transpose() };
            let limits = PlayerLimits {
                max_stake_per_round: optional_micros("max_stake_per_round")?,
                max_stake_per_day: optional_micros("max_stake_per_day")?,
                excluded_until: row.try_get("excluded_until")?,
            };
            let mut state = updown_domain::admission::PlayerState {
                balance: micros(row.try_get("balance")?)?,
                limits,
                staked_in_round: Micros::ZERO,
                staked_today: Micros::ZERO,
            };
            if !limits.is_unlimited() {
                let (day_start, day_end) = new_york_day(received_at);
                let sums = sqlx::query(
                    "SELECT CAST(COALESCE(SUM(CASE WHEN round_id = $2 THEN stake ELSE 0 END), 0) AS BIGINT) AS in_round, \
                            CAST(COALESCE(SUM(CASE WHEN placed_at >= $3 AND placed_at < $4 THEN stake ELSE 0 END), 0) AS BIGINT) AS today \
                     FROM bets WHERE user_id = $1 AND status = 'ACTIVE'",
                )
                .bind(user.0)
                .bind(round.0)
                .bind(day_start)
                .bind(day_end)
                .fetch_one(&mut **tx)
                .await?;
                state.staked_in_round = micros(sums.try_get("in_round")?)?;
                state.staked_today = micros(sums.try_get("today")?)?;
            }
            Ok(state)
        }

        /// A settlement chunk's rows (id, user_id, side, stake, account_id)
        /// as the domain's (user, side, stake) and each user's account.
        #[allow(clippy::type_complexity)]
        pub(super) fn chunk_bets(rows: &[$row]) -> StoreResult<(Vec<(UserId, Side, Micros)>, std::collections::HashMap<UserId, i64>)> {
            let mut bets = Vec::with_capacity(rows.len());
            let mut account_of = std::collections::HashMap::new();
            for row in rows {
                let user = UserId(row.try_get("user_id")?);
                let side: &str = row.try_get("side")?;
                let side: Side = side.parse().map_err(|_| corrupt("side", side))?;
                bets.push((user, side, micros(row.try_get("stake")?)?));
                account_of.insert(user, row.try_get::<i64, _>("account_id")?);
            }
            Ok((bets, account_of))
        }

        pub(super) async fn pool_balances(tx: &mut Tx<'_>, round: &Round) -> StoreResult<(Micros, Micros)> {
            let sql = format!(
                "SELECT {} AS up, {} AS down FROM rounds r WHERE r.id = $1",
                pool_balance("r.pool_up_account"),
                pool_balance("r.pool_down_account")
            );
            let row = sqlx::query(&sql)
            .bind(round.id.0)
            .fetch_one(&mut **tx)
            .await?;
            Ok((micros(row.try_get("up")?)?, micros(row.try_get("down")?)?))
        }

        pub(super) async fn count(tx: &mut Tx<'_>, sql: &str) -> StoreResult<i64> {
            Ok(sqlx::query(sql).fetch_one(&mut **tx).await?.try_get::<i64, _>(0)?)
        }

        pub(super) async fn sum_balances(tx: &mut Tx<'_>, condition: &str) -> StoreResult<i64> {
            let sql = format!("SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM accounts WHERE {condition}");
            count(tx, &sql).await
        }

        pub(super) async fn insert_user(tx: &mut Tx<'_>, email: &Email, now: DateTime<Utc>) -> StoreResult<User> {
            let account: i64 = sqlx::query("INSERT INTO accounts (kind, balance) VALUES ('user', 0) RETURNING id")
                .fetch_one(&mut **tx)
                .await?
                .try_get("id")?;
            let sql = format!(
                "INSERT INTO users (email, sequence, account_id, created_at) \
                 VALUES ($1, (SELECT COALESCE(MAX(sequence), -1) + 1 FROM users), $2, $3) RETURNING {USER_COLUMNS}"
            );
            let row = sqlx::query(&sql).bind(email.as_str()).bind(account).bind(now).fetch_one(&mut **tx).await?;
            user_from_row(&row)
        }

        /// Credits one chain transfer: the deposit posting and the deposit
        /// row whose unique key refuses a second credit.
        pub(super) async fn credit_in(
            tx: &mut Tx<'_>,
            user: UserId,
            amount: Micros,
            chain_tx_hash: &str,
            log_index: i64,
            now: DateTime<Utc>,
        ) -> StoreResult<i64> {
            let posting = Posting::deposit(user, amount).map_err(|e| StoreError::Invalid(e.to_string()))?;
            let meta = TxMeta {
                user: Some(user),
                reference: Some(format!("{chain_tx_hash}:{log_index}")),
                ..TxMeta::default()
            };
            let ledger_tx = write_posting(tx, &posting, meta, now).await?;
            let id: i64 = sqlx::query(
                "INSERT INTO deposits (user_id, chain_tx_hash, log_index, amount, ledger_tx_id, credited_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(user.0)
            .bind(chain_tx_hash)
            .bind(log_index)
            .bind(amount.get())
            .bind(ledger_tx)
            .bind(now)
            .fetch_one(&mut **tx)
            .await?
            .try_get("id")?;
            Ok(id)
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                Self::BACKEND
            }

            async fn migrate(&self) -> StoreResult<()> {
                self.migrate_impl().await
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(self.read()).await?;
                Ok(())
            }

            async fn create_user(&self, email: &Email, now: DateTime<Utc>) -> StoreResult<User> {
                let mut users = self.create_users(std::slice::from_ref(email), Micros::ZERO, now).await?;
                Ok(users.pop().expect("one user created"))
            }

            async fn create_users(&self, emails: &[Email], funding: Micros, now: DateTime<Utc>) -> StoreResult<Vec<User>> {
                let mut tx = self.write().begin().await?;
                // Sequence numbers are dense (the HD wallet index), so user
                // creation is serialised; it is rare next to bets.
                self.lock_users(&mut tx).await?;
                let mut users = Vec::with_capacity(emails.len());
                for email in emails {
                    let user = insert_user(&mut tx, email, now).await?;
                    if !funding.is_zero() {
                        let reference = format!("seed-{}", user.sequence);
                        credit_in(&mut tx, user.id, funding, &reference, 0, now).await?;
                    }
                    users.push(user);
                }
                tx.commit().await?;
                Ok(users)
            }

            async fn user(&self, id: UserId) -> StoreResult<User> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
                let row = sqlx::query(&sql).bind(id.0).fetch_optional(self.read()).await?;
                user_from_row(&row.ok_or_else(|| StoreError::NotFound(format!("user {id}")))?)
            }

            async fn user_by_email(&self, email: &Email) -> StoreResult<User> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
                let row = sqlx::query(&sql).bind(email.as_str()).fetch_optional(self.read()).await?;
                user_from_row(&row.ok_or_else(|| StoreError::NotFound(format!("user {email}")))?)
            }

            async fn users(&self, limit: i64) -> StoreResult<Vec<UserSummary>> {
                let sql = format!(
                    "SELECT {}, a.balance AS balance FROM users u JOIN accounts a ON a.id = u.account_id \
                     ORDER BY u.id LIMIT $1",
                    USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
                );
                let rows = sqlx::query(&sql).bind(limit).fetch_all(self.read()).await?;
                rows.iter()
                    .map(|row| {
                        Ok(UserSummary {
                            user: user_from_row(row)?,
                            balance: micros(row.try_get("balance")?)?,
                        })
                    })
                    .collect()
            }

            async fn set_limits(&self, user: UserId, limits: PlayerLimits) -> StoreResult<User> {
                let sql = format!(
                    "UPDATE users SET max_stake_per_round = $2, max_stake_per_day = $3, excluded_until = $4 \
                     WHERE id = $1 RETURNING {USER_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(user.0)
                    .bind(limits.max_stake_per_round.map(Micros::get))
                    .bind(limits.max_stake_per_day.map(Micros::get))
                    .bind(limits.excluded_until)
                    .fetch_optional(self.write())
                    .await?;
                user_from_row(&row.ok_or_else(|| StoreError::NotFound(format!("user {user}")))?)
            }

            async fn balance(&self, user: UserId) -> StoreResult<Micros> {
                let row = sqlx::query("SELECT a.balance FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = $1")
                    .bind(user.0)
                    .fetch_optional(self.read())
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("user {user}")))?;
                micros(row.try_get("balance")?)
            }

            async fn credit_deposit(&self, deposit: &NewDeposit) -> StoreResult<Deposit> {
                let mut tx = self.write().begin().await?;
                let id = credit_in(&mut tx, deposit.user, deposit.amount, &deposit.chain_tx_hash, deposit.log_index, deposit.now).await?;
                tx.commit().await?;
                Ok(Deposit {
                    id,
                    user: deposit.user,
                    amount: deposit.amount,
                    chain_tx_hash: deposit.chain_tx_hash.clone(),
                    log_index: deposit.log_index,
                    credited_at: deposit.now,
                })
            }

            async fn request_withdrawal(&self, request: &NewWithdrawal) -> StoreResult<Withdrawal> {
                let posting = Posting::withdrawal_request(request.user, request.amount)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?;
                let mut tx = self.write().begin().await?;
                let meta = TxMeta {
                    user: Some(request.user),
                    ..TxMeta::default()
                };
                let ledger_tx = write_posting(&mut tx, &posting, meta, request.now).await?;
                let sql = format!(
                    "INSERT INTO withdrawals (user_id, amount, address, status, ledger_tx_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'QUEUED', $4, $5, $5) RETURNING {WITHDRAWAL_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(request.user.0)
                    .bind(request.amount.get())
                    .bind(&request.address)
                    .bind(ledger_tx)
                    .bind(request.now)
                    .fetch_one(&mut *tx)
                    .await?;
                let withdrawal = withdrawal_from_row(&row)?;
                sqlx::query("UPDATE ledger_transactions SET reference = $1 WHERE id = $2")
                    .bind(format!("withdrawal:{}", withdrawal.id))
                    .bind(ledger_tx)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(withdrawal)
            }

            async fn withdrawals(&self, user: Option<UserId>, limit: i64) -> StoreResult<Vec<Withdrawal>> {
                let sql = format!(
                    "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE ($1 IS NULL OR user_id = $1) ORDER BY id DESC LIMIT $2"
                );
                let rows = sqlx::query(&sql)
                    .bind(user.map(|u| u.0))
                    .bind(limit)
                    .fetch_all(self.read())
                    .await?;
                rows.iter().map(withdrawal_from_row).collect()
            }

            async fn open_round(&self, new: &NewRound) -> StoreResult<(Round, bool)> {
                let terms = &new.terms;
                if let Ok(existing) = self.round(&terms.market, terms.code).await {
                    return Ok((existing, false));
                }
                let mut tx = self.write().begin().await?;
                let mut pool = [0i64; 2];
                for slot in pool.iter_mut() {
                    *slot = sqlx::query("INSERT INTO accounts (kind, balance) VALUES ('pool', 0) RETURNING id")
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get("id")?;
                }
                let sql = format!(
                    "INSERT INTO rounds (market, code, status, previous_session, open_at, lock_at, close_at, settle_at, \
                     void_at, fee_bps, tie_policy, terms_digest, pool_up_account, pool_down_account, opened_at) \
                     VALUES ($1, $2, 'OPEN', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {ROUND_COLUMNS}"
                );
                let inserted = sqlx::query(&sql)
                    .bind(terms.market.as_str())
                    .bind(terms.code.to_string())
                    .bind(terms.previous_session.to_string())
                    .bind(terms.open_at)
                    .bind(terms.lock_at)
                    .bind(terms.close_at)
                    .bind(terms.settle_at)
                    .bind(terms.void_at)
                    .bind(i32::try_from(terms.fee_bps).map_err(|_| StoreError::Invalid("fee_bps too large".into()))?)
                    .bind(terms.tie_policy.as_str())
                    .bind(terms.digest())
                    .bind(pool[0])
                    .bind(pool[1])
                    .bind(new.now)
                    .fetch_one(&mut *tx)
                    .await;
                match inserted {
                    Ok(row) => {
                        let round = round_from_row(&row)?;
                        tx.commit().await?;
                        Ok((round, true))
                    }
                    // Another caller opened it between our read and insert.
                    Err(e) => match StoreError::from(e) {
                        StoreError::Conflict(_) => {
                            tx.rollback().await?;
                            Ok((self.round(&terms.market, terms.code).await?, false))
                        }
                        other => Err(other),
                    },
                }
            }

            async fn round(&self, market: &Market, code: RoundCode) -> StoreResult<Round> {
                let sql = format!("SELECT {ROUND_COLUMNS} FROM rounds WHERE market = $1 AND code = $2");
                let row = sqlx::query(&sql)
                    .bind(market.as_str())
                    .bind(code.to_string())
                    .fetch_optional(self.read())
                    .await?;
                round_from_row(&row.ok_or_else(|| StoreError::NotFound(format!("round {market} {code}")))?)
            }

            async fn round_by_id(&self, id: RoundId) -> StoreResult<Round> {
                let sql = format!("SELECT {ROUND_COLUMNS} FROM rounds WHERE id = $1");
                let row = sqlx::query(&sql).bind(id.0).fetch_optional(self.read()).await?;
                round_from_row(&row.ok_or_else(|| StoreError::NotFound(format!("round {id}")))?)
            }

            async fn rounds(&self, market: &Market, limit: i64) -> StoreResult<Vec<Round>> {
                let sql = format!("SELECT {ROUND_COLUMNS} FROM rounds WHERE market = $1 ORDER BY code DESC LIMIT $2");
                let rows = sqlx::query(&sql).bind(market.as_str()).bind(limit).fetch_all(self.read()).await?;
                rows.iter().map(round_from_row).collect()
            }

            async fn unfinished_rounds(&self, market: &Market) -> StoreResult<Vec<Round>> {
                let sql = format!(
                    "SELECT {ROUND_COLUMNS} FROM rounds WHERE market = $1 AND status IN ('OPEN', 'LOCKED') ORDER BY code"
                );
                let rows = sqlx::query(&sql).bind(market.as_str()).fetch_all(self.read()).await?;
                rows.iter().map(round_from_row).collect()
            }

            async fn pools(&self, round: RoundId) -> StoreResult<Pools> {
                let row = sqlx::query(
                    "SELECT \
                       CAST(COALESCE(SUM(CASE WHEN side = 'UP' THEN stake ELSE 0 END), 0) AS BIGINT) AS up, \
                       CAST(COALESCE(SUM(CASE WHEN side = 'DOWN' THEN stake ELSE 0 END), 0) AS BIGINT) AS down, \
                       CAST(COALESCE(SUM(CASE WHEN side = 'UP' THEN 1 ELSE 0 END), 0) AS BIGINT) AS bets_up, \
                       CAST(COALESCE(SUM(CASE WHEN side = 'DOWN' THEN 1 ELSE 0 END), 0) AS BIGINT) AS bets_down \
                     FROM bets WHERE round_id = $1 AND status = 'ACTIVE'",
                )
                .bind(round.0)
                .fetch_one(self.read())
                .await?;
                Ok(Pools {
                    up: micros(row.try_get("up")?)?,
                    down: micros(row.try_get("down")?)?,
                    bets_up: row.try_get("bets_up")?,
                    bets_down: row.try_get("bets_down")?,
                })
            }

            async fn lock_round(&self, round: RoundId, now: DateTime<Utc>) -> StoreResult<Round> {
                let mut tx = self.write().begin().await?;
                let current = round_in(&mut tx, round, Self::LOCK).await?;
                match current.status {
                    RoundStatus::Open => {
                        sqlx::query("UPDATE rounds SET status = 'LOCKED', locked_at = $2 WHERE id = $1")
                            .bind(round.0)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                    RoundStatus::Locked => {}
                    _ => current.clock().check_lock()?,
                }
                let locked = round_in(&mut tx, round, "").await?;
                tx.commit().await?;
                Ok(locked)
            }

            async fn place_bets(&self, round: RoundId, requests: &[BetRequest]) -> StoreResult<Vec<Result<Bet, BetRefusalReason>>> {
                self.place_bets_impl(round, requests).await
            }

            async fn cancel_bet(&self, bet: BetId, owner: Option<UserId>, now: DateTime<Utc>, cancel_cutoff: Duration) -> StoreResult<Bet> {
                let mut tx = self.write().begin().await?;
                let sql = format!("SELECT {BET_COLUMNS} FROM bets WHERE id = $1{}", Self::LOCK);
                let row = sqlx::query(&sql).bind(bet.0).fetch_optional(&mut *tx).await?;
                let found = bet_from_row(&row.ok_or_else(|| StoreError::NotFound(format!("bet {bet}")))?)?;
                if owner.is_some_and(|o| o != found.user) {
                    // Someone else's bet does not exist, as far as callers learn.
                    return Err(StoreError::NotFound(format!("bet {bet}")));
                }
                if found.status == BetStatus::Cancelled {
                    return Err(StoreError::Conflict(format!("bet {bet} is already cancelled")));
                }
                let round = round_in(&mut tx, found.round, Self::LOCK_SHARED).await?;
                round.clock().check_cancel(now, cancel_cutoff)?;
                let posting = Posting::cancel_bet(found.user, found.round, found.side, found.stake)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?;
                let meta = TxMeta {
                    round: Some(found.round),
                    user: Some(found.user),
                    bet: Some(bet),
                    reference: None,
                };
                write_posting(&mut tx, &posting, meta, now).await?;
                let sql = format!("UPDATE bets SET status = 'CANCELLED', cancelled_at = $2 WHERE id = $1 RETURNING {BET_COLUMNS}");
                let row = sqlx::query(&sql).bind(bet.0).bind(now).fetch_one(&mut *tx).await?;
                let cancelled = bet_from_row(&row)?;
                tx.commit().await?;
                Ok(cancelled)
            }

            async fn bets_of_user(&self, user: UserId, limit: i64) -> StoreResult<Vec<Bet>> {
                let sql = format!("SELECT {BET_COLUMNS} FROM bets WHERE user_id = $1 ORDER BY id DESC LIMIT $2");
                let rows = sqlx::query(&sql).bind(user.0).bind(limit).fetch_all(self.read()).await?;
                rows.iter().map(bet_from_row).collect()
            }

            async fn bet(&self, bet: BetId) -> StoreResult<Bet> {
                let sql = format!("SELECT {BET_COLUMNS} FROM bets WHERE id = $1");
                let row = sqlx::query(&sql).bind(bet.0).fetch_optional(self.read()).await?;
                bet_from_row(&row.ok_or_else(|| StoreError::NotFound(format!("bet {bet}")))?)
            }

            async fn begin_settlement(&self, round: RoundId, start: &SettlementStart) -> StoreResult<Round> {
                let mut tx = self.write().begin().await?;
                let current = round_in(&mut tx, round, Self::LOCK).await?;
                if let Some(existing) = &current.settlement {
                    // Begun before (perhaps by a crashed run): resume it, but
                    // never with a different result.
                    if existing.plan.outcome != start.outcome {
                        return Err(StoreError::Conflict(format!(
                            "round {} is already being settled as {}",
                            current.terms.code,
                            existing.plan.outcome.as_str()
                        )));
                    }
                    tx.commit().await?;
                    return Ok(current);
                }
                if current.status != RoundStatus::Locked {
                    current.clock().check_settle(start.now, false)?;
                }
                let (pool_up, pool_down) = pool_balances(&mut tx, &current).await?;
                let plan = PayoutPlan::new(start.outcome, pool_up, pool_down, current.terms.fee_bps)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?;
                let evidence = |p: &Option<PriceRecord>| {
                    p.as_ref().map(|p| (p.date.to_string(), p.close.to_string(), p.source.clone(), p.fetched_at))
                };
                let (close, prev) = (evidence(&start.evidence.close), evidence(&start.evidence.previous_close));
                sqlx::query(
                    "UPDATE rounds SET outcome = $2, plan_pool_up = $3, plan_pool_down = $4, fee = $5, distributable = $6, \
                     settle_cursor = 0, settle_started_at = $7, settled_by = $8, settle_reason = $9, \
                     close_date = $10, close_price = $11, close_source = $12, close_fetched_at = $13, \
                     prev_close_date = $14, prev_close_price = $15, prev_close_source = $16, prev_close_fetched_at = $17 \
                     WHERE id = $1",
                )
                .bind(round.0)
                .bind(start.outcome.as_str())
                .bind(pool_up.get())
                .bind(pool_down.get())
                .bind(plan.fee.get())
                .bind(plan.distributable.get())
                .bind(start.now)
                .bind(&start.actor)
                .bind(&start.reason)
                .bind(close.as_ref().map(|c| c.0.clone()))
                .bind(close.as_ref().map(|c| c.1.clone()))
                .bind(close.as_ref().map(|c| c.2.clone()))
                .bind(close.as_ref().map(|c| c.3))
                .bind(prev.as_ref().map(|c| c.0.clone()))
                .bind(prev.as_ref().map(|c| c.1.clone()))
                .bind(prev.as_ref().map(|c| c.2.clone()))
                .bind(prev.as_ref().map(|c| c.3))
                .execute(&mut *tx)
                .await?;
                if let Some(fee) = Posting::fee(round, &plan).map_err(|e| StoreError::Invalid(e.to_string()))? {
                    let meta = TxMeta {
                        round: Some(round),
                        ..TxMeta::default()
                    };
                    write_posting(&mut tx, &fee, meta, start.now).await?;
                }
                let begun = round_in(&mut tx, round, "").await?;
                tx.commit().await?;
                Ok(begun)
            }

            async fn settle_chunk(&self, round: RoundId, chunk_size: i64) -> StoreResult<Option<u64>> {
                let mut tx = self.write().begin().await?;
                let current = round_in(&mut tx, round, Self::LOCK).await?;
                let Some(settlement) = current.settlement.as_ref().filter(|s| s.finished_at.is_none()) else {
                    return Ok(None);
                };
                // The next unpaid bet id: an index probe, cheap whatever the
                // table's statistics say.
                let next: Option<i64> = sqlx::query("SELECT MIN(id) FROM bets WHERE round_id = $1 AND id > $2")
                    .bind(round.0)
                    .bind(settlement.cursor)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                let Some(first) = next else {
                    tx.commit().await?;
                    return Ok(None);
                };
                let last = first.saturating_add(chunk_size.max(1) - 1);
                let paid = self.pay_chunk(&mut tx, &current, &settlement.plan, first, last).await?;
                sqlx::query("UPDATE rounds SET settle_cursor = $2 WHERE id = $1")
                    .bind(round.0)
                    .bind(last)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(paid))
            }

            async fn finish_settlement(&self, round: RoundId, now: DateTime<Utc>) -> StoreResult<Round> {
                let mut tx = self.write().begin().await?;
                let current = round_in(&mut tx, round, Self::LOCK).await?;
                let settlement = current
                    .settlement
                    .clone()
                    .ok_or_else(|| StoreError::Conflict(format!("round {} has no settlement in progress", current.terms.code)))?;
                if settlement.finished_at.is_some() {
                    tx.commit().await?;
                    return Ok(current);
                }
                let unpaid: i64 = sqlx::query("SELECT COUNT(*) FROM bets WHERE round_id = $1 AND status = 'ACTIVE' AND id > $2")
                    .bind(round.0)
                    .bind(settlement.cursor)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                let unpaid_sides: Vec<&str> = Side::BOTH
                    .into_iter()
                    .filter(|s| settlement.plan.pays(*s))
                    .map(Side::as_str)
                    .collect();
                if unpaid > 0 && !unpaid_sides.is_empty() {
                    let sql = format!(
                        "SELECT COUNT(*) FROM bets WHERE round_id = $1 AND status = 'ACTIVE' AND id > $2 AND side IN ('{}')",
                        unpaid_sides.join("', '")
                    );
                    let still_to_pay: i64 = sqlx::query(&sql).bind(round.0).bind(settlement.cursor).fetch_one(&mut *tx).await?.try_get(0)?;
                    if still_to_pay > 0 {
                        return Err(StoreError::Conflict(format!("{still_to_pay} bets of round {} are not paid yet", current.terms.code)));
                    }
                }
                // What the payout floors left in the pools is dust.
                let (up, down) = pool_balances(&mut tx, &current).await?;
                let mut dust = Micros::ZERO;
                for (side, left) in [(Side::Up, up), (Side::Down, down)] {
                    if let Some(posting) = Posting::dust(round, side, left).map_err(|e| StoreError::Invalid(e.to_string()))? {
                        let meta = TxMeta {
                            round: Some(round),
                            ..TxMeta::default()
                        };
                        write_posting(&mut tx, &posting, meta, now).await?;
                        dust = dust.checked_add(left).map_err(|e| StoreError::Invalid(e.to_string()))?;
                    }
                }
                let status = match settlement.plan.outcome {
                    Outcome::Void => "VOID",
                    Outcome::Up | Outcome::Down => "SETTLED",
                };
                sqlx::query("UPDATE rounds SET status = $2, settled_at = $3, dust = $4 WHERE id = $1")
                    .bind(round.0)
                    .bind(status)
                    .bind(now)
                    .bind(dust.get())
                    .execute(&mut *tx)
                    .await?;
                let finished = round_in(&mut tx, round, "").await?;
                tx.commit().await?;
                Ok(finished)
            }

            async fn record_price(&self, price: &PriceRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO prices (market, session_date, close, source, fetched_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(price.market.as_str())
                .bind(price.date.to_string())
                .bind(price.close.to_string())
                .bind(&price.source)
                .bind(price.fetched_at)
                .execute(self.write())
                .await?;
                Ok(())
            }

            async fn price(&self, market: &Market, date: NaiveDate) -> StoreResult<Option<PriceRecord>> {
                let row = sqlx::query("SELECT close, source, fetched_at FROM prices WHERE market = $1 AND session_date = $2")
                    .bind(market.as_str())
                    .bind(date.to_string())
                    .fetch_optional(self.read())
                    .await?;
                row.map(|row| {
                    Ok(PriceRecord {
                        market: market.clone(),
                        date,
                        close: parse_price(row.try_get::<&str, _>("close")?)?,
                        source: row.try_get("source")?,
                        fetched_at: row.try_get("fetched_at")?,
                    })
                })
                .transpose()
            }

            async fn tvl(&self) -> StoreResult<Tvl> {
                let mut tx = self.read().begin().await?;
                self.snapshot(&mut tx).await?;
                let user_balances = sum_balances(&mut tx, "kind = 'user'").await?;
                let round_pools = count(&mut tx, &format!(
                    "SELECT CAST(COALESCE(SUM({} + {}), 0) AS BIGINT) FROM rounds r WHERE r.status IN ('OPEN', 'LOCKED')",
                    pool_balance("r.pool_up_account"), pool_balance("r.pool_down_account"))).await?;
                let withdrawals_pending = sum_balances(&mut tx, "kind = 'withdrawals_pending'").await?;
                let tvl = Tvl {
                    total: user_balances + round_pools + withdrawals_pending,
                    user_balances,
                    round_pools,
                    withdrawals_pending,
                    house_fees: sum_balances(&mut tx, "kind = 'house_fees'").await?,
                    house_rounding: sum_balances(&mut tx, "kind = 'house_rounding'").await?,
                    custody: -sum_balances(&mut tx, "kind = 'chain'").await?,
                };
                tx.commit().await?;
                Ok(tvl)
            }

            async fn verify(&self) -> StoreResult<VerifyReport> {
                // One snapshot for every check, so concurrent writers cannot
                // make a consistent ledger look inconsistent.
                let mut tx = self.read().begin().await?;
                self.snapshot(&mut tx).await?;
                let mut report = VerifyReport {
                    transactions: count(&mut tx, "SELECT COUNT(*) FROM ledger_transactions").await?,
                    entries: count(&mut tx, "SELECT COUNT(*) FROM ledger_entries").await?,
                    ..VerifyReport::default()
                };
                let unbalanced = count(&mut tx,
                    "SELECT COUNT(*) FROM (SELECT t.id FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.tx_id = t.id \
                     GROUP BY t.id HAVING COUNT(e.tx_id) < 2 OR COALESCE(SUM(e.amount), 0) <> 0) x").await?;
                report.check("every transaction balances", unbalanced, "transactions do not sum to zero or have fewer than two entries");
                let orphans = count(&mut tx,
                    "SELECT COUNT(*) FROM ledger_entries e WHERE NOT EXISTS (SELECT 1 FROM ledger_transactions t WHERE t.id = e.tx_id) \
                     OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = e.account_id)").await?;
                report.check("every entry belongs to a transaction and an account", orphans, "orphaned entries");
                let total = count(&mut tx, &format!(
                    "SELECT CAST(COALESCE(SUM(CASE WHEN kind = 'pool' THEN {} ELSE balance END), 0) AS BIGINT) FROM accounts a",
                    pool_balance("a.id"))).await?;
                let entry_total = count(&mut tx, "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries").await?;
                report.check("the sum of all accounts is zero", total.abs() + entry_total.abs(), "micro-USDC off zero");
                let stale = count(&mut tx,
                    "SELECT COUNT(*) FROM accounts a LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM ledger_entries GROUP BY account_id) s \
                     ON s.account_id = a.id WHERE a.balance <> CASE WHEN a.kind = 'pool' THEN 0 ELSE COALESCE(s.total, 0) END").await?;
                report.check("cached balances equal recomputed ones", stale, "accounts whose cached balance differs from their entries");
                let negative = count(&mut tx, &format!(
                    "SELECT COUNT(*) FROM accounts a WHERE (kind NOT IN ('chain', 'pool') AND balance < 0) OR (kind = 'pool' AND {} < 0)",
                    pool_balance("a.id"))).await?;
                report.check("no balance but the chain's is negative", negative, "negative accounts");
                let open_pools = count(&mut tx, &format!(
                    "SELECT COUNT(*) FROM rounds r WHERE r.status IN ('SETTLED', 'VOID') AND ({} <> 0 OR {} <> 0)",
                    pool_balance("r.pool_up_account"), pool_balance("r.pool_down_account"))).await?;
                report.check("every settled or void round's pool is zero", open_pools, "pools not emptied");
                let pools_match = count(&mut tx, &format!(
                    "SELECT COUNT(*) FROM rounds r WHERE r.status IN ('OPEN', 'LOCKED') AND r.outcome IS NULL AND ({} + {}) <> \
                     (SELECT COALESCE(SUM(b.stake), 0) FROM bets b WHERE b.round_id = r.id AND b.status = 'ACTIVE')",
                    pool_balance("r.pool_up_account"), pool_balance("r.pool_down_account"))).await?;
                report.check("open pools equal their active stakes", pools_match, "rounds whose pools differ from their bets");
                let misallocated = count(&mut tx,
                    "SELECT COUNT(*) FROM rounds r WHERE r.status IN ('SETTLED', 'VOID') AND \
                     (SELECT COALESCE(SUM(b.stake), 0) FROM bets b WHERE b.round_id = r.id AND b.status = 'ACTIVE') <> \
                     COALESCE((SELECT SUM(e.amount) FROM ledger_transactions t JOIN ledger_entries e ON e.tx_id = t.id \
                       WHERE t.round_id = r.id AND t.kind IN ('payout', 'refund', 'fee', 'dust') AND e.amount > 0), 0) \
                     OR COALESCE(r.fee, 0) <> COALESCE((SELECT SUM(e.amount) FROM ledger_transactions t JOIN ledger_entries e ON e.tx_id = t.id \
                       WHERE t.round_id = r.id AND t.kind = 'fee' AND e.amount > 0), 0) \
                     OR COALESCE(r.dust, 0) <> COALESCE((SELECT SUM(e.amount) FROM ledger_transactions t JOIN ledger_entries e ON e.tx_id = t.id \
                       WHERE t.round_id = r.id AND t.kind = 'dust' AND e.amount > 0), 0)").await?;
                report.check("payouts + fee + dust = each settled round's total pool", misallocated, "rounds paid out differently from their pool");
                let doubled = count(&mut tx,
                    "SELECT COUNT(*) FROM (SELECT reference FROM ledger_transactions WHERE kind = 'deposit' \
                     GROUP BY reference HAVING COUNT(*) > 1) x").await?;
                report.check("every deposit tx is credited at most once", doubled, "chain transfers credited more than once");
                let stray_bets = count(&mut tx,
                    "SELECT COUNT(*) FROM bets b WHERE NOT EXISTS (SELECT 1 FROM rounds r WHERE r.id = b.round_id) \
                     OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = b.user_id)").await?;
                report.check("every bet belongs to a round and a user", stray_bets, "orphaned bets");
                tx.rollback().await?;
                Ok(report)
            }

            async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
                sqlx::query("INSERT INTO audit_log (at, actor, action, subject, reason) VALUES ($1, $2, $3, $4, $5)")
                    .bind(entry.at)
                    .bind(&entry.actor)
                    .bind(&entry.action)
                    .bind(&entry.subject)
                    .bind(&entry.reason)
                    .execute(self.write())
                    .await?;
                Ok(())
            }

            async fn audit_log(&self, limit: i64) -> StoreResult<Vec<AuditEntry>> {
                let rows = sqlx::query("SELECT at, actor, action, subject, reason FROM audit_log ORDER BY id DESC LIMIT $1")
                    .bind(limit)
                    .fetch_all(self.read())
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(AuditEntry {
                            at: row.try_get("at")?,
                            actor: row.try_get("actor")?,
                            action: row.try_get("action")?,
                            subject: row.try_get("subject")?,
                            reason: row.try_get("reason")?,
                        })
                    })
                    .collect()
            }
        }
    };
}
