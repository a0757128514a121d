//! Row decoders and transaction helpers shared by both backends: a macro,
//! because the SQL is the same but sqlx's types differ per engine. Used by
//! `impl_store!`.

/// Expands to the helpers over database `$db` with row type `$row`.
macro_rules! store_helpers {
    ($db:ty, $row:ty) => {
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
            let settings = limit_settings_from_row(row)?;
            Ok(User {
                id: UserId(row.try_get("id")?),
                email: parse_email(row.try_get::<&str, _>("email")?)?,
                sequence: row.try_get("sequence")?,
                created_at: row.try_get("created_at")?,
                limits: settings.set,
                pending_limits: settings.pending,
            })
        }

        /// A player's limits from their row's limit columns.
        pub(super) fn limit_settings_from_row(row: &$row) -> StoreResult<updown_domain::admission::LimitSettings> {
            let optional_micros = |name: &str| -> StoreResult<Option<Micros>> {
                row.try_get::<Option<i64>, _>(name)?.map(micros).transpose()
            };
            let pending = match row.try_get::<Option<DateTime<Utc>>, _>("limits_pending_from")? {
                None => None,
                Some(from) => Some(updown_domain::admission::PendingLimits {
                    max_stake_per_round: optional_micros("pending_max_stake_per_round")?,
                    max_stake_per_day: optional_micros("pending_max_stake_per_day")?,
                    from,
                }),
            };
            Ok(updown_domain::admission::LimitSettings {
                set: PlayerLimits {
                    max_stake_per_round: optional_micros("max_stake_per_round")?,
                    max_stake_per_day: optional_micros("max_stake_per_day")?,
                    excluded_until: row.try_get("excluded_until")?,
                },
                pending,
            })
        }

        /// Refuses a request whose key an earlier transaction recorded;
        /// called first in the effect's transaction.
        pub(super) async fn key_unused(tx: &mut Tx<'_>, key: &RequestKey) -> StoreResult<()> {
            let found = sqlx::query("SELECT 1 FROM idempotency_keys WHERE scope = $1 AND key = $2")
                .bind(&key.scope)
                .bind(&key.key)
                .fetch_optional(&mut **tx)
                .await?;
            match found {
                Some(_) => Err(StoreError::KeyUsed),
                None => Ok(()),
            }
        }

        /// Records a key with its answer, in the effect's transaction. A
        /// concurrent request that recorded it first makes this fail with
        /// `KeyUsed`, and the whole transaction with it.
        pub(super) async fn keep_answer(tx: &mut Tx<'_>, key: &RequestKey, answer: &KeptAnswer) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response_body, created_at, completed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(&key.scope)
            .bind(&key.key)
            .bind(&key.request_hash)
            .bind(i32::from(answer.status))
            .bind(&answer.body)
            .bind(key.at)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// `key_unused` for an optional key.
        pub(super) async fn check_key<T>(tx: &mut Tx<'_>, keyed: Option<&Keyed<T>>) -> StoreResult<()> {
            match keyed {
                Some(keyed) => key_unused(tx, &keyed.key).await,
                None => Ok(()),
            }
        }

        /// `keep_answer` for an optional key, from the effect's result.
        pub(super) async fn keep<T>(tx: &mut Tx<'_>, keyed: Option<&Keyed<T>>, result: &T) -> StoreResult<()> {
            match keyed {
                Some(keyed) => keep_answer(tx, &keyed.key, &(keyed.answer)(result)).await,
                None => Ok(()),
            }
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
                chain_tx_hash: row.try_get("chain_tx_hash")?,
                failure_reason: row.try_get("failure_reason")?,
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
                    // Pool balances are not cached (see `common::pool_balance`).
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
            let settings = limit_settings_from_row(row)?;
            // A raise waiting out its cooling-off applies from its instant.
            let limits = settings.in_force(received_at);
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

    };
}
