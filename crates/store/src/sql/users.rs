//! Users: accounts, limits, balances, statements, API keys, passwords and
//! web sessions, deposit addresses.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use updown_domain::admission::PlayerLimits;
use updown_domain::ids::{Email, UserId};
use updown_domain::ledger::Posting;
use updown_domain::Micros;

use super::audit::commit_audited;
use super::db::{placeholders, query, Tx};
use super::ledger::{account_row, invalid};
use super::replica::on_replica;
use super::rows::{micros, USER_COLUMNS, U_USER_COLUMNS};
use super::SqlStore;
use crate::model::{ApiKeyInfo, AuditEntry, StatementLine, User, UserSummary};
use crate::{StoreError, StoreResult, UserStore};

fn user_not_found(user: impl std::fmt::Display) -> StoreError {
    StoreError::NotFound(format!("user {user}"))
}

/// Rows per multi-row statement when creating users. SQLite's cost of
/// binding `$n` placeholders grows with the square of their number, so the
/// statements stay small; 200 rows still make a round trip per 200 users.
const ROWS_PER_STATEMENT: usize = 200;

/// Inserts users with the next sequence numbers, each with a new empty
/// account, in multi-row statements. Returns them in sequence order, with
/// the account of each.
async fn insert_users(
    tx: &mut Tx<'_>,
    emails: &[Email],
    now: DateTime<Utc>,
) -> StoreResult<Vec<(User, i64)>> {
    let first: i64 = query("SELECT COALESCE(MAX(sequence), -1) + 1 FROM users")
        .fetch_one(&mut *tx)
        .await?
        .get_at(0)?;
    let mut users = Vec::with_capacity(emails.len());
    for (part_index, part) in emails.chunks(ROWS_PER_STATEMENT).enumerate() {
        // Fresh accounts are all alike: which user gets which is immaterial.
        let sql = format!(
            "INSERT INTO accounts (kind, balance) VALUES {} RETURNING id",
            vec!["('user', 0)"; part.len()].join(", ")
        );
        let accounts = query(&sql)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.get::<i64>("id"))
            .collect::<StoreResult<Vec<i64>>>()?;
        let sql = format!(
            "INSERT INTO users (email, sequence, account_id, created_at) VALUES {} RETURNING {USER_COLUMNS}",
            placeholders(part.len(), 4)
        );
        let mut insert = query(&sql);
        let mut account_of = HashMap::with_capacity(part.len());
        for (offset, (email, account)) in part.iter().zip(&accounts).enumerate() {
            let sequence = first + (part_index * ROWS_PER_STATEMENT + offset) as i64;
            insert = insert
                .bind(email.as_str())
                .bind(sequence)
                .bind(*account)
                .bind(now);
            account_of.insert(email.as_str(), *account);
        }
        for user in insert.fetch_records::<User>(&mut *tx).await? {
            let account = account_of[user.email.as_str()];
            users.push((user, account));
        }
    }
    users.sort_by_key(|(user, _)| user.sequence);
    Ok(users)
}

/// Credits each new user `funding` as a seed deposit (chain reference
/// `seed-{sequence}`), in multi-row statements: the postings the domain
/// defines, one ledger transaction and one deposit row per user, and the
/// cached balances moved once per account.
async fn fund_users(
    tx: &mut Tx<'_>,
    users: &[(User, i64)],
    funding: Micros,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let account_of: HashMap<UserId, i64> = users.iter().map(|(u, a)| (u.id, *a)).collect();
    let mut moves: BTreeMap<i64, i64> = BTreeMap::new();
    for part in users.chunks(ROWS_PER_STATEMENT) {
        let postings = part
            .iter()
            .map(|(user, _)| Posting::deposit(user.id, funding))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let reference = |user: &User| format!("seed-{}", user.sequence);
        let sql = format!(
            "INSERT INTO ledger_transactions (kind, user_id, reference, created_at) VALUES {} RETURNING id, user_id",
            placeholders(part.len(), 4)
        );
        let mut insert = query(&sql);
        for ((user, _), posting) in part.iter().zip(&postings) {
            insert = insert
                .bind(posting.kind().as_str())
                .bind(user.id.0)
                .bind(format!("{}:0", reference(user)))
                .bind(now);
        }
        let mut tx_of = HashMap::with_capacity(part.len());
        for row in insert.fetch_all(&mut *tx).await? {
            tx_of.insert(UserId(row.get("user_id")?), row.get::<i64>("id")?);
        }
        let mut entries = Vec::with_capacity(part.len() * 2);
        for ((user, _), posting) in part.iter().zip(&postings) {
            for entry in posting.entries() {
                let account = account_row(entry.account, NO_POOLS, &account_of)?;
                entries.push((tx_of[&user.id], account, entry.amount));
                let moved = moves.entry(account).or_default();
                *moved = moved
                    .checked_add(entry.amount)
                    .ok_or_else(|| invalid("seed funding overflows an account's balance"))?;
            }
        }
        let sql = format!(
            "INSERT INTO ledger_entries (tx_id, account_id, amount) VALUES {}",
            placeholders(entries.len(), 3)
        );
        let insert = entries
            .iter()
            .fold(query(&sql), |q, (tx_id, account, amount)| {
                q.bind(*tx_id).bind(*account).bind(*amount)
            });
        insert.execute(&mut *tx).await?;
        let sql = format!(
            "INSERT INTO deposits (user_id, chain_tx_hash, log_index, amount, ledger_tx_id, credited_at) VALUES {}",
            placeholders(part.len(), 6)
        );
        let insert = part.iter().fold(query(&sql), |q, (user, _)| {
            q.bind(user.id.0)
                .bind(reference(user))
                .bind(0i64)
                .bind(funding.get())
                .bind(tx_of[&user.id])
                .bind(now)
        });
        insert.execute(&mut *tx).await?;
    }
    let moves: Vec<(i64, i64)> = moves.into_iter().collect();
    for part in moves.chunks(ROWS_PER_STATEMENT) {
        // `WHERE id IN (...)`: a join to a VALUES list let PostgreSQL scan
        // every account each time (2,400 users a second at 500,000).
        let cases: String = (0..part.len())
            .map(|i| format!(" WHEN ${} THEN ${}", 2 * i + 1, 2 * i + 2))
            .collect();
        let ids: Vec<String> = (0..part.len()).map(|i| format!("${}", 2 * i + 1)).collect();
        let sql = format!(
            "UPDATE accounts SET balance = balance + CASE id{cases} END WHERE id IN ({})",
            ids.join(", ")
        );
        let update = part.iter().fold(query(&sql), |q, (account, delta)| {
            q.bind(*account).bind(*delta)
        });
        update.execute(&mut *tx).await?;
    }
    Ok(())
}

/// A deposit's posting names no pool.
const NO_POOLS: (i64, i64) = (0, 0);

#[async_trait]
impl UserStore for SqlStore {
    async fn create_user(&self, email: &Email, now: DateTime<Utc>) -> StoreResult<User> {
        let mut users = self
            .create_users(std::slice::from_ref(email), Micros::ZERO, now)
            .await?;
        Ok(users.pop().expect("one user created"))
    }

    async fn create_users(
        &self,
        emails: &[Email],
        funding: Micros,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<User>> {
        let mut tx = self.write().begin().await?;
        // Sequence numbers are dense (the HD wallet index), so user
        // creation is serialised; it is rare next to bets. (SQLite's single
        // write connection serialises it already.)
        if let Tx::Postgres(_) = tx {
            query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut tx)
                .await?;
        }
        let users = insert_users(&mut tx, emails, now).await?;
        if !funding.is_zero() {
            fund_users(&mut tx, &users, funding, now).await?;
        }
        tx.commit().await?;
        Ok(users.into_iter().map(|(user, _)| user).collect())
    }

    async fn user(&self, id: UserId) -> StoreResult<User> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let found = query(&sql).bind(id.0).fetch_record(self.read()).await?;
        found.ok_or_else(|| user_not_found(id))
    }

    async fn user_by_email(&self, email: &Email) -> StoreResult<User> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        let found = query(&sql)
            .bind(email.as_str())
            .fetch_record(self.read())
            .await?;
        found.ok_or_else(|| user_not_found(email))
    }

    async fn users(&self, before: Option<i64>, limit: i64) -> StoreResult<Vec<UserSummary>> {
        let sql = format!(
            "SELECT {U_USER_COLUMNS}, a.balance AS balance FROM users u JOIN accounts a ON a.id = u.account_id \
             WHERE ($1 IS NULL OR u.id < $1) ORDER BY u.id DESC LIMIT $2"
        );
        on_replica!(self, |pool| query(&sql)
            .bind(before)
            .bind(limit)
            .fetch_records(pool))
    }

    async fn change_limits(
        &self,
        user: UserId,
        wanted: PlayerLimits,
        now: DateTime<Utc>,
        cooloff: Duration,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<User> {
        let mut tx = self.write().begin().await?;
        // A no-op update takes the row lock on both engines, so the
        // decision below is made on the row as it stands. (Not `id = id`:
        // SQLite would treat a key change as one and check every table
        // that refers to users.)
        let sql = format!(
            "UPDATE users SET max_stake_per_round = max_stake_per_round WHERE id = $1 RETURNING {USER_COLUMNS}"
        );
        let current: User = query(&sql)
            .bind(user.0)
            .fetch_record(&mut tx)
            .await?
            .ok_or_else(|| user_not_found(user))?;
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
        let changed = query(&sql)
            .bind(user.0)
            .bind(next.set.max_stake_per_round.map(Micros::get))
            .bind(next.set.max_stake_per_day.map(Micros::get))
            .bind(next.set.excluded_until)
            .bind(pending.and_then(|p| p.max_stake_per_round).map(Micros::get))
            .bind(pending.and_then(|p| p.max_stake_per_day).map(Micros::get))
            .bind(pending.map(|p| p.from))
            .bind(now)
            .fetch_record(&mut tx)
            .await?
            .ok_or_else(|| {
                StoreError::Conflict(
                    "a self-exclusion in force can be extended, not shortened or lifted".into(),
                )
            })?;
        commit_audited(tx, audit).await?;
        Ok(changed)
    }

    async fn balance(&self, user: UserId) -> StoreResult<Micros> {
        let row = query(
            "SELECT a.balance FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = $1",
        )
        .bind(user.0)
        .fetch_optional(self.read())
        .await?
        .ok_or_else(|| user_not_found(user))?;
        micros(row.get("balance")?)
    }

    async fn statement(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<StatementLine>> {
        // The running balance is a window over all of the account's
        // entries; `before` only drops newer lines, so it stays right.
        on_replica!(self, |pool| {
            query(
            "SELECT * FROM (SELECT t.id AS tx_id, t.kind, t.created_at, t.bet_id, t.reference, r.code AS round_code, \
             e.amount, CAST(SUM(e.amount) OVER (ORDER BY e.tx_id) AS BIGINT) AS balance_after \
             FROM users u JOIN ledger_entries e ON e.account_id = u.account_id \
             JOIN ledger_transactions t ON t.id = e.tx_id LEFT JOIN rounds r ON r.id = t.round_id \
             WHERE u.id = $1) lines WHERE ($2 IS NULL OR tx_id < $2) ORDER BY tx_id DESC LIMIT $3",
        )
        .bind(user.0)
        .bind(before)
        .bind(limit).fetch_records(pool)
        })
    }

    async fn create_api_key(
        &self,
        user: UserId,
        prefix: &str,
        key_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        query(
            "INSERT INTO api_keys (user_id, prefix, key_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(user.0)
        .bind(prefix)
        .bind(key_hash)
        .bind(now)
        .fetch_one(self.write())
        .await?
        .get("id")
    }

    async fn user_by_api_key(&self, key_hash: &str) -> StoreResult<Option<User>> {
        let sql = format!(
            "SELECT {U_USER_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE k.key_hash = $1 AND k.kind = 'api' AND k.revoked_at IS NULL"
        );
        query(&sql).bind(key_hash).fetch_record(self.read()).await
    }

    async fn revoke_api_key(&self, user: UserId, key: i64, now: DateTime<Utc>) -> StoreResult<()> {
        let revoked = query(
            "UPDATE api_keys SET revoked_at = $3 \
             WHERE id = $1 AND user_id = $2 AND kind = 'api' AND revoked_at IS NULL",
        )
        .bind(key)
        .bind(user.0)
        .bind(now)
        .execute(self.write())
        .await?;
        if revoked == 0 {
            return Err(StoreError::NotFound(format!("api key {key}")));
        }
        Ok(())
    }

    async fn api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKeyInfo>> {
        query(
            "SELECT id, prefix, created_at, revoked_at FROM api_keys \
             WHERE user_id = $1 AND kind = 'api' ORDER BY id DESC LIMIT 1000",
        )
        .bind(user.0)
        .fetch_records(self.read())
        .await
    }

    async fn assign_deposit_address(&self, user: UserId, address: &str) -> StoreResult<String> {
        query(
            "UPDATE users SET deposit_address = COALESCE(deposit_address, $2) WHERE id = $1 \
             RETURNING deposit_address",
        )
        .bind(user.0)
        .bind(address)
        .fetch_optional(self.write())
        .await?
        .ok_or_else(|| user_not_found(user))?
        .get("deposit_address")
    }

    async fn user_by_deposit_address(&self, address: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE deposit_address = $1");
        query(&sql).bind(address).fetch_record(self.read()).await
    }

    async fn set_password_hash(&self, user: UserId, hash: &str) -> StoreResult<()> {
        let updated = query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(user.0)
            .bind(hash)
            .execute(self.write())
            .await?;
        if updated == 0 {
            return Err(user_not_found(user));
        }
        Ok(())
    }

    async fn password_hash(&self, email: &Email) -> StoreResult<Option<(User, Option<String>)>> {
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1");
        let row = query(&sql)
            .bind(email.as_str())
            .fetch_optional(self.read())
            .await?;
        row.map(|row| Ok((row.record()?, row.get("password_hash")?)))
            .transpose()
    }

    async fn create_session(
        &self,
        user: UserId,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        query(
            "INSERT INTO api_keys (user_id, prefix, key_hash, created_at, kind, expires_at) \
             VALUES ($1, '', $2, $3, 'session', $4)",
        )
        .bind(user.0)
        .bind(token_hash)
        .bind(now)
        .bind(expires_at)
        .execute(self.write())
        .await?;
        Ok(())
    }

    async fn user_by_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        let sql = format!(
            "SELECT {U_USER_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE k.key_hash = $1 AND k.kind = 'session' AND k.revoked_at IS NULL AND k.expires_at > $2"
        );
        query(&sql)
            .bind(token_hash)
            .bind(now)
            .fetch_record(self.read())
            .await
    }

    async fn end_session(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<()> {
        query(
            "UPDATE api_keys SET revoked_at = $2 \
             WHERE key_hash = $1 AND kind = 'session' AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .execute(self.write())
        .await?;
        Ok(())
    }
}
