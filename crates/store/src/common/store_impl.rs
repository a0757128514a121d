//! `impl Store` for a backend, written once (see `common`'s docs).

/// Expands to the shared helpers and `impl Store for $store` over `$db`.
macro_rules! impl_store {
    ($store:ty, $db:ty, $row:ty) => {
        store_helpers!($db, $row);

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

            async fn users(&self, before: Option<i64>, limit: i64) -> StoreResult<Vec<UserSummary>> {
                let sql = format!(
                    "SELECT {}, a.balance AS balance FROM users u JOIN accounts a ON a.id = u.account_id \
                     WHERE ($1 IS NULL OR u.id < $1) ORDER BY u.id DESC LIMIT $2",
                    USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
                );
                let rows = sqlx::query(&sql).bind(before).bind(limit).fetch_all(self.read()).await?;
                rows.iter()
                    .map(|row| {
                        Ok(UserSummary {
                            user: user_from_row(row)?,
                            balance: micros(row.try_get("balance")?)?,
                        })
                    })
                    .collect()
            }

            async fn change_limits(&self, user: UserId, wanted: PlayerLimits, now: DateTime<Utc>, cooloff: Duration) -> StoreResult<User> {
                let mut tx = self.write().begin().await?;
                // A no-op update takes the row lock on both engines, so the
                // decision below is made on the row as it stands.
                // (Not `id = id`: SQLite would treat a key change as one and
                // check every table that refers to users.)
                let sql = format!(
                    "UPDATE users SET max_stake_per_round = max_stake_per_round WHERE id = $1 RETURNING {USER_COLUMNS}"
                );
                let row = sqlx::query(&sql).bind(user.0).fetch_optional(&mut *tx).await?;
                let current = user_from_row(&row.ok_or_else(|| StoreError::NotFound(format!("user {user}")))?)?;
                let next = current
                    .limit_settings()
                    .request(wanted, now, cooloff)
                    .map_err(|e| StoreError::Conflict(e.to_string()))?;
                let pending = next.pending;
                // The write itself refuses to shorten an exclusion in force,
                // whatever was read.
                let sql = format!(
                    "UPDATE users SET max_stake_per_round = $2, max_stake_per_day = $3, excluded_until = $4, \
                     pending_max_stake_per_round = $5, pending_max_stake_per_day = $6, limits_pending_from = $7 \
                     WHERE id = $1 AND (excluded_until IS NULL OR excluded_until <= $8 OR ($4 IS NOT NULL AND $4 >= excluded_until)) \
                     RETURNING {USER_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(user.0)
                    .bind(next.set.max_stake_per_round.map(Micros::get))
                    .bind(next.set.max_stake_per_day.map(Micros::get))
                    .bind(next.set.excluded_until)
                    .bind(pending.and_then(|p| p.max_stake_per_round).map(Micros::get))
                    .bind(pending.and_then(|p| p.max_stake_per_day).map(Micros::get))
                    .bind(pending.map(|p| p.from))
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let changed = user_from_row(&row.ok_or_else(|| {
                    StoreError::Conflict("a self-exclusion in force can be extended, not shortened or lifted".into())
                })?)?;
                tx.commit().await?;
                Ok(changed)
            }

            async fn balance(&self, user: UserId) -> StoreResult<Micros> {
                let row = sqlx::query("SELECT a.balance FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = $1")
                    .bind(user.0)
                    .fetch_optional(self.read())
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("user {user}")))?;
                micros(row.try_get("balance")?)
            }

            async fn create_api_key(&self, user: UserId, prefix: &str, key_hash: &str, now: DateTime<Utc>) -> StoreResult<i64> {
                let id: i64 = sqlx::query(
                    "INSERT INTO api_keys (user_id, prefix, key_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(user.0)
                .bind(prefix)
                .bind(key_hash)
                .bind(now)
                .fetch_one(self.write())
                .await?
                .try_get("id")?;
                Ok(id)
            }

            async fn user_by_api_key(&self, key_hash: &str) -> StoreResult<Option<User>> {
                let sql = format!(
                    "SELECT {} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1 AND k.kind = 'api' AND k.revoked_at IS NULL",
                    USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
                );
                let row = sqlx::query(&sql).bind(key_hash).fetch_optional(self.read()).await?;
                row.as_ref().map(user_from_row).transpose()
            }

            async fn revoke_api_key(&self, user: UserId, key: i64, now: DateTime<Utc>) -> StoreResult<()> {
                let revoked = sqlx::query("UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND kind = 'api' AND revoked_at IS NULL")
                    .bind(key)
                    .bind(user.0)
                    .bind(now)
                    .execute(self.write())
                    .await?
                    .rows_affected();
                if revoked == 0 {
                    return Err(StoreError::NotFound(format!("api key {key}")));
                }
                Ok(())
            }

            async fn api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKeyInfo>> {
                let rows = sqlx::query(
                    "SELECT id, prefix, created_at, revoked_at FROM api_keys WHERE user_id = $1 AND kind = 'api' ORDER BY id DESC LIMIT 1000",
                )
                .bind(user.0)
                .fetch_all(self.read())
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(ApiKeyInfo {
                            id: row.try_get("id")?,
                            prefix: row.try_get("prefix")?,
                            created_at: row.try_get("created_at")?,
                            revoked_at: row.try_get("revoked_at")?,
                        })
                    })
                    .collect()
            }

            async fn assign_deposit_address(&self, user: UserId, address: &str) -> StoreResult<String> {
                let row = sqlx::query(
                    "UPDATE users SET deposit_address = COALESCE(deposit_address, $2) WHERE id = $1 RETURNING deposit_address",
                )
                .bind(user.0)
                .bind(address)
                .fetch_optional(self.write())
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("user {user}")))?;
                Ok(row.try_get("deposit_address")?)
            }

            async fn user_by_deposit_address(&self, address: &str) -> StoreResult<Option<User>> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE deposit_address = $1");
                let row = sqlx::query(&sql).bind(address).fetch_optional(self.read()).await?;
                row.as_ref().map(user_from_row).transpose()
            }

            async fn set_password_hash(&self, user: UserId, hash: &str) -> StoreResult<()> {
                let updated = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                    .bind(user.0)
                    .bind(hash)
                    .execute(self.write())
                    .await?
                    .rows_affected();
                if updated == 0 {
                    return Err(StoreError::NotFound(format!("user {user}")));
                }
                Ok(())
            }

            async fn password_hash(&self, email: &Email) -> StoreResult<Option<(User, Option<String>)>> {
                let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1");
                let row = sqlx::query(&sql).bind(email.as_str()).fetch_optional(self.read()).await?;
                row.map(|row| Ok((user_from_row(&row)?, row.try_get("password_hash")?)))
                    .transpose()
            }

            async fn create_session(&self, user: UserId, token_hash: &str, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO api_keys (user_id, prefix, key_hash, created_at, kind, expires_at) VALUES ($1, '', $2, $3, 'session', $4)",
                )
                .bind(user.0)
                .bind(token_hash)
                .bind(now)
                .bind(expires_at)
                .execute(self.write())
                .await?;
                Ok(())
            }

            async fn user_by_session(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<User>> {
                let sql = format!(
                    "SELECT {} FROM api_keys k JOIN users u ON u.id = k.user_id \
                     WHERE k.key_hash = $1 AND k.kind = 'session' AND k.revoked_at IS NULL AND k.expires_at > $2",
                    USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
                );
                let row = sqlx::query(&sql).bind(token_hash).bind(now).fetch_optional(self.read()).await?;
                row.as_ref().map(user_from_row).transpose()
            }

            async fn end_session(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE key_hash = $1 AND kind = 'session' AND revoked_at IS NULL")
                    .bind(token_hash)
                    .bind(now)
                    .execute(self.write())
                    .await?;
                Ok(())
            }

            async fn statement(&self, user: UserId, before: Option<i64>, limit: i64) -> StoreResult<Vec<StatementLine>> {
                // The running balance is a window over all of the account's
                // entries; `before` only drops newer lines, so it stays right.
                let rows = sqlx::query(
                    "SELECT * FROM (SELECT t.id AS tx_id, t.kind, t.created_at, t.bet_id, t.reference, r.code AS round_code, \
                     e.amount, CAST(SUM(e.amount) OVER (ORDER BY e.tx_id) AS BIGINT) AS balance_after \
                     FROM users u JOIN ledger_entries e ON e.account_id = u.account_id \
                     JOIN ledger_transactions t ON t.id = e.tx_id LEFT JOIN rounds r ON r.id = t.round_id \
                     WHERE u.id = $1) lines WHERE ($2 IS NULL OR tx_id < $2) ORDER BY tx_id DESC LIMIT $3",
                )
                .bind(user.0)
                .bind(before)
                .bind(limit)
                .fetch_all(self.read())
                .await?;
                rows.iter()
                    .map(|row| {
                        let kind: &str = row.try_get("kind")?;
                        let code: Option<&str> = row.try_get("round_code")?;
                        Ok(StatementLine {
                            tx_id: row.try_get("tx_id")?,
                            kind: updown_domain::ledger::TxKind::parse(kind).ok_or_else(|| corrupt("transaction kind", kind))?,
                            at: row.try_get("created_at")?,
                            amount: row.try_get("amount")?,
                            balance_after: row.try_get("balance_after")?,
                            round: code.map(|c| RoundCode::parse(c).map_err(|_| corrupt("round code", c))).transpose()?,
                            bet: row.try_get::<Option<i64>, _>("bet_id")?.map(BetId),
                            reference: row.try_get("reference")?,
                        })
                    })
                    .collect()
            }

            async fn credit_deposit(&self, deposit: &NewDeposit) -> StoreResult<Deposit> {
                let mut tx = self.write().begin().await?;
                check_key(&mut tx, deposit.key.as_ref()).await?;
                let id = credit_in(&mut tx, deposit.user, deposit.amount, &deposit.chain_tx_hash, deposit.log_index, deposit.now).await?;
                let balance: i64 = sqlx::query("SELECT a.balance FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = $1")
                    .bind(deposit.user.0)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("balance")?;
                let credited = Deposit {
                    id,
                    user: deposit.user,
                    amount: deposit.amount,
                    chain_tx_hash: deposit.chain_tx_hash.clone(),
                    log_index: deposit.log_index,
                    credited_at: deposit.now,
                    balance_after: Some(micros(balance)?),
                };
                keep(&mut tx, deposit.key.as_ref(), &credited).await?;
                tx.commit().await?;
                Ok(credited)
            }

            async fn deposit_by_transfer(&self, tx_hash: &str, log_index: i64) -> StoreResult<Option<Deposit>> {
                let row = sqlx::query(
                    "SELECT id, user_id, amount, chain_tx_hash, log_index, credited_at FROM deposits \
                     WHERE chain_tx_hash = $1 AND log_index = $2",
                )
                .bind(tx_hash)
                .bind(log_index)
                .fetch_optional(self.read())
                .await?;
                row.map(|row| {
                    Ok(Deposit {
                        id: row.try_get("id")?,
                        user: UserId(row.try_get("user_id")?),
                        amount: micros(row.try_get("amount")?)?,
                        chain_tx_hash: row.try_get("chain_tx_hash")?,
                        log_index: row.try_get("log_index")?,
                        credited_at: row.try_get("credited_at")?,
                        balance_after: None,
                    })
                })
                .transpose()
            }

            async fn record_deposit_notification(&self, n: &DepositNotification) -> StoreResult<()> {
                let (Some(received_at), Some(outcome)) = (n.received_at, n.outcome) else {
                    return Err(StoreError::Invalid("a recorded notification needs its time and outcome".into()));
                };
                sqlx::query(
                    "INSERT INTO deposit_notifications (received_at, outcome, reason, chain, token, tx_hash, \
                     log_index, to_address, amount, confirmations, user_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(received_at)
                .bind(outcome.as_str())
                .bind(&n.reason)
                .bind(&n.chain)
                .bind(&n.token)
                .bind(&n.tx_hash)
                .bind(n.log_index)
                .bind(&n.to_address)
                .bind(n.amount)
                .bind(n.confirmations)
                .bind(n.user.map(|u| u.0))
                .execute(self.write())
                .await?;
                Ok(())
            }

            async fn deposit_notifications(&self, before: Option<i64>, limit: i64) -> StoreResult<Vec<DepositNotification>> {
                let rows = sqlx::query(
                    "SELECT id, received_at, outcome, reason, chain, token, tx_hash, log_index, to_address, \
                     amount, confirmations, user_id FROM deposit_notifications WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                )
                .bind(before)
                .bind(limit)
                .fetch_all(self.read())
                .await?;
                rows.iter()
                    .map(|row| {
                        let outcome: String = row.try_get("outcome")?;
                        Ok(DepositNotification {
                            id: Some(row.try_get("id")?),
                            received_at: Some(row.try_get("received_at")?),
                            outcome: DepositOutcome::parse(&outcome),
                            reason: row.try_get("reason")?,
                            chain: row.try_get("chain")?,
                            token: row.try_get("token")?,
                            tx_hash: row.try_get("tx_hash")?,
                            log_index: row.try_get("log_index")?,
                            to_address: row.try_get("to_address")?,
                            amount: row.try_get("amount")?,
                            confirmations: row.try_get("confirmations")?,
                            user: row.try_get::<Option<i64>, _>("user_id")?.map(UserId),
                        })
                    })
                    .collect()
            }

            async fn request_withdrawal(&self, request: &NewWithdrawal) -> StoreResult<Withdrawal> {
                let posting = Posting::withdrawal_request(request.user, request.amount)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?;
                let mut tx = self.write().begin().await?;
                check_key(&mut tx, request.key.as_ref()).await?;
                let meta = TxMeta {
                    user: Some(request.user),
                    ..TxMeta::default()
                };
                // Moving the funds first locks the user's balance row, so
                // their concurrent withdrawals take the cap's sum in turn.
                let ledger_tx = write_posting(&mut tx, &posting, meta, request.now).await?;
                if let Some(cap) = request.cap {
                    let recent: i64 = sqlx::query(
                        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS recent FROM withdrawals \
                         WHERE user_id = $1 AND created_at > $2 AND status <> 'FAILED'",
                    )
                    .bind(request.user.0)
                    .bind(cap.after)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("recent")?;
                    if recent.saturating_add(request.amount.get()) > cap.max.get() {
                        return Err(StoreError::LimitExceeded(format!(
                            "withdrawals are limited to {} micro-USDC per day; {recent} already withdrawn since {}, so at most {} more",
                            cap.max,
                            cap.after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            (cap.max.get() - recent).max(0)
                        )));
                    }
                }
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
                keep(&mut tx, request.key.as_ref(), &withdrawal).await?;
                tx.commit().await?;
                Ok(withdrawal)
            }

            async fn withdrawals(&self, user: Option<UserId>, status: Option<WithdrawalStatus>, before: Option<WithdrawalId>, limit: i64) -> StoreResult<Vec<Withdrawal>> {
                let sql = format!(
                    "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR status = $2) \
                     AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
                );
                let rows = sqlx::query(&sql)
                    .bind(user.map(|u| u.0))
                    .bind(status.map(WithdrawalStatus::as_str))
                    .bind(before.map(|w| w.0))
                    .bind(limit)
                    .fetch_all(self.read())
                    .await?;
                rows.iter().map(withdrawal_from_row).collect()
            }

            async fn withdrawals_to_step(&self, status: WithdrawalStatus, after: Option<WithdrawalId>, limit: i64) -> StoreResult<Vec<Withdrawal>> {
                let sql = format!(
                    "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE status = $1 AND id > $2 ORDER BY id LIMIT $3"
                );
                let rows = sqlx::query(&sql)
                    .bind(status.as_str())
                    .bind(after.map_or(0, |w| w.0))
                    .bind(limit)
                    .fetch_all(self.read())
                    .await?;
                rows.iter().map(withdrawal_from_row).collect()
            }

            async fn withdrawal(&self, id: WithdrawalId) -> StoreResult<Withdrawal> {
                let sql = format!("SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE id = $1");
                let row = sqlx::query(&sql).bind(id.0).fetch_optional(self.read()).await?;
                withdrawal_from_row(&row.ok_or_else(|| StoreError::NotFound(format!("withdrawal {id}")))?)
            }

            async fn change_withdrawal(&self, id: WithdrawalId, change: &WithdrawalChange, now: DateTime<Utc>, key: Option<&Keyed<Withdrawal>>) -> StoreResult<Withdrawal> {
                let mut tx = self.write().begin().await?;
                check_key(&mut tx, key).await?;
                // A no-op update takes the row lock on both engines: the step
                // is decided on the status as it stands, not as a caller read it.
                let sql = format!("UPDATE withdrawals SET updated_at = updated_at WHERE id = $1 RETURNING {WITHDRAWAL_COLUMNS}");
                let row = sqlx::query(&sql).bind(id.0).fetch_optional(&mut *tx).await?;
                let current = withdrawal_from_row(&row.ok_or_else(|| StoreError::NotFound(format!("withdrawal {id}")))?)?;
                change.check(&current).map_err(StoreError::Conflict)?;
                let posting = match change {
                    WithdrawalChange::Claim | WithdrawalChange::Submit { .. } => None,
                    WithdrawalChange::Confirm { .. } => Some(Posting::withdrawal_confirm(current.amount)),
                    WithdrawalChange::Fail { .. } => Some(Posting::withdrawal_fail(current.user, current.amount)),
                };
                if let Some(posting) = posting {
                    let posting = posting.map_err(|e| StoreError::Invalid(e.to_string()))?;
                    let meta = TxMeta {
                        user: Some(current.user),
                        reference: Some(format!("withdrawal:{id}")),
                        ..TxMeta::default()
                    };
                    write_posting(&mut tx, &posting, meta, now).await?;
                }
                let (hash, reason) = match change {
                    WithdrawalChange::Claim => (None, None),
                    WithdrawalChange::Submit { chain_tx_hash } | WithdrawalChange::Confirm { chain_tx_hash } => (chain_tx_hash.clone(), None),
                    WithdrawalChange::Fail { reason, rejection } => {
                        let hash = match rejection {
                            Some(ChainRejection::Operator { tx_hash }) => Some(tx_hash.clone()),
                            _ => None,
                        };
                        (hash, Some(reason.clone()))
                    }
                };
                let sql = format!(
                    "UPDATE withdrawals SET status = $2, chain_tx_hash = COALESCE(chain_tx_hash, $3), failure_reason = $4, updated_at = $5 \
                     WHERE id = $1 RETURNING {WITHDRAWAL_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(id.0)
                    .bind(change.target().as_str())
                    .bind(hash)
                    .bind(reason)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                let changed = withdrawal_from_row(&row)?;
                keep(&mut tx, key, &changed).await?;
                tx.commit().await?;
                Ok(changed)
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

            async fn cancel_bet(&self, bet: BetId, owner: Option<UserId>, now: DateTime<Utc>, cancel_cutoff: Duration, key: Option<&Keyed<Bet>>) -> StoreResult<Bet> {
                let mut tx = self.write().begin().await?;
                check_key(&mut tx, key).await?;
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
                keep(&mut tx, key, &cancelled).await?;
                tx.commit().await?;
                Ok(cancelled)
            }

            async fn bets_of_user(&self, user: UserId, before: Option<BetId>, limit: i64) -> StoreResult<Vec<Bet>> {
                let sql = format!("SELECT {BET_COLUMNS} FROM bets WHERE user_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3");
                let rows = sqlx::query(&sql).bind(user.0).bind(before.map(|b| b.0)).bind(limit).fetch_all(self.read()).await?;
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

            async fn round_counts(&self) -> StoreResult<Vec<(String, i64)>> {
                let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM rounds GROUP BY status ORDER BY status")
                    .fetch_all(self.read())
                    .await?;
                rows.iter().map(|row| Ok((row.try_get("status")?, row.try_get("n")?))).collect()
            }

            async fn scheduler_lease(&self) -> StoreResult<Option<Box<dyn crate::Lease>>> {
                self.scheduler_lease_impl().await
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
                // However its hash was written (case, with or without 0x).
                let respelled = count(&mut tx,
                    "SELECT COUNT(*) FROM (SELECT lower(CASE WHEN length(chain_tx_hash) = 66 AND lower(substr(chain_tx_hash, 1, 2)) = '0x' \
                     THEN substr(chain_tx_hash, 3) ELSE chain_tx_hash END) AS hash, log_index FROM deposits \
                     GROUP BY 1, 2 HAVING COUNT(*) > 1) x").await?;
                report.check("no transfer is credited twice under two spellings of its hash", respelled, "transfers credited under two spellings");
                let pending = count(&mut tx,
                    "SELECT (SELECT balance FROM accounts WHERE kind = 'withdrawals_pending') - \
                     (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM withdrawals WHERE status IN ('QUEUED', 'SUBMITTING', 'SUBMITTED'))").await?;
                report.check("pending withdrawals hold exactly the queued and submitted amounts", pending.abs(), "micro-USDC off");
                let stray_bets = count(&mut tx,
                    "SELECT COUNT(*) FROM bets b WHERE NOT EXISTS (SELECT 1 FROM rounds r WHERE r.id = b.round_id) \
                     OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = b.user_id)").await?;
                report.check("every bet belongs to a round and a user", stray_bets, "orphaned bets");
                tx.rollback().await?;
                Ok(report)
            }

            async fn idempotency_key(&self, scope: &str, key: &str) -> StoreResult<Option<KeyRecord>> {
                let row = sqlx::query(
                    "SELECT request_hash, status_code, response_body, created_at FROM idempotency_keys WHERE scope = $1 AND key = $2",
                )
                .bind(scope)
                .bind(key)
                .fetch_optional(self.read())
                .await?;
                row.map(|row| {
                    let status: Option<i32> = row.try_get("status_code")?;
                    let status = status.ok_or_else(|| corrupt("idempotency answer of key", key))?;
                    Ok(KeyRecord {
                        request_hash: row.try_get("request_hash")?,
                        answer: KeptAnswer {
                            status: u16::try_from(status).map_err(|_| corrupt("status code", status))?,
                            body: row.try_get::<Option<String>, _>("response_body")?.unwrap_or_default(),
                        },
                        at: row.try_get("created_at")?,
                    })
                })
                .transpose()
            }

            async fn record_idempotency_key(&self, key: &RequestKey, answer: &KeptAnswer) -> StoreResult<bool> {
                let inserted = sqlx::query(
                    "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response_body, created_at, completed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (scope, key) DO NOTHING",
                )
                .bind(&key.scope)
                .bind(&key.key)
                .bind(&key.request_hash)
                .bind(i32::from(answer.status))
                .bind(&answer.body)
                .bind(key.at)
                .execute(self.write())
                .await?
                .rows_affected();
                Ok(inserted == 1)
            }

            async fn purge(&self, keys_before: DateTime<Utc>, notifications_before: DateTime<Utc>, limit: i64) -> StoreResult<Purged> {
                let keys = sqlx::query(
                    "DELETE FROM idempotency_keys WHERE (scope, key) IN \
                     (SELECT scope, key FROM idempotency_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
                )
                .bind(keys_before)
                .bind(limit)
                .execute(self.write())
                .await?
                .rows_affected();
                let notifications = sqlx::query(
                    "DELETE FROM deposit_notifications WHERE id IN \
                     (SELECT id FROM deposit_notifications WHERE outcome = 'refused' AND received_at < $1 ORDER BY received_at LIMIT $2)",
                )
                .bind(notifications_before)
                .bind(limit)
                .execute(self.write())
                .await?
                .rows_affected();
                Ok(Purged {
                    idempotency_keys: keys,
                    deposit_notifications: notifications,
                })
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

            async fn audit_log(&self, before: Option<i64>, limit: i64) -> StoreResult<Vec<AuditEntry>> {
                let rows = sqlx::query(
                    "SELECT id, at, actor, action, subject, reason FROM audit_log WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                )
                    .bind(before)
                    .bind(limit)
                    .fetch_all(self.read())
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(AuditEntry {
                            id: row.try_get("id")?,
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
