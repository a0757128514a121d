//! [`SqlStore`]: the one implementation of the store's contract, on SQLite
//! or PostgreSQL.
//!
//! The SQL is written once, in one file per aggregate (`users.rs`,
//! `funds.rs`, `chain.rs`, `rounds.rs`, `bets.rs`, `settlement.rs`, `keys.rs`,
//! `reports.rs`), each implementing its trait of the contract. It runs
//! through `db.rs`, which binds it to the engine's sqlx types when it runs.
//! What differs per engine (connecting, migrations, the scheduler's lease,
//! and the two hot paths: a batch of bets and a settlement chunk) is in
//! `sqlite.rs` and `postgres.rs` (what they share, deciding a batch, is
//! `batch.rs`); `SqlStore` chooses between them with a `match` on its
//! pools.

mod approvals;
mod audit;
mod batch;
mod bets;
mod chain;
mod checkpoint;
mod db;
mod funds;
mod keys;
mod ledger;
mod operators;
mod postgres;
mod replica;
mod reports;
mod rounds;
mod rows;
mod sending;
mod settlement;
mod sqlite;
mod sweeps;
mod users;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, SqlitePool};

use crate::{Backend, Lease, Store, StoreResult};
use db::{query, Pool, Tx};

/// The store on one engine's connection pools.
pub struct SqlStore {
    pools: Pools,
    /// The read replica for lists (DATABASE_READ_URL), if any.
    replica: Option<replica::Replica>,
}

enum Pools {
    /// One write connection (SQLite has one writer: every write
    /// transaction queues for it, none fails with SQLITE_BUSY) and a few
    /// read-only ones that see WAL snapshots.
    Sqlite {
        writer: SqlitePool,
        readers: SqlitePool,
    },
    Postgres(PgPool),
}

impl SqlStore {
    /// Opens (creating if needed) the SQLite database a `sqlite:` URL
    /// names, and its folder.
    pub async fn open_sqlite(url: &str, max_readers: u32) -> anyhow::Result<SqlStore> {
        sqlite::open(url, max_readers).await
    }

    pub async fn open_postgres(url: &str, max_connections: u32) -> anyhow::Result<SqlStore> {
        postgres::open(url.parse()?, max_connections).await
    }

    pub async fn open_postgres_with(
        options: sqlx::postgres::PgConnectOptions,
        max_connections: u32,
    ) -> anyhow::Result<SqlStore> {
        postgres::open(options, max_connections).await
    }

    /// The pool reads run on.
    fn read(&self) -> Pool<'_> {
        match &self.pools {
            Pools::Sqlite { readers, .. } => Pool::Sqlite(readers),
            Pools::Postgres(pool) => Pool::Postgres(pool),
        }
    }

    /// The pool writes run on.
    fn write(&self) -> Pool<'_> {
        match &self.pools {
            Pools::Sqlite { writer, .. } => Pool::Sqlite(writer),
            Pools::Postgres(pool) => Pool::Postgres(pool),
        }
    }

    /// A read that locks the rows it reads until the transaction ends (on
    /// SQLite the single writer already excludes everyone).
    fn for_update(&self) -> &'static str {
        match self.pools {
            Pools::Sqlite { .. } => "",
            Pools::Postgres(_) => " FOR UPDATE",
        }
    }

    /// A read that keeps the rows from changing until the transaction ends.
    fn for_share(&self) -> &'static str {
        match self.pools {
            Pools::Sqlite { .. } => "",
            Pools::Postgres(_) => " FOR SHARE",
        }
    }

    /// A read-only transaction that sees one snapshot for all its reads.
    async fn snapshot(&self) -> StoreResult<Tx<'static>> {
        let mut tx = self.read().begin().await?;
        if let Tx::Postgres(_) = tx {
            query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut tx)
                .await?;
        }
        // SQLite: a read transaction in WAL mode is a snapshot from its
        // first read.
        Ok(tx)
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    async fn migrate(&self) -> StoreResult<()> {
        match &self.pools {
            Pools::Sqlite { writer, .. } => sqlite::migrate(writer).await,
            Pools::Postgres(pool) => postgres::migrate(pool).await,
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        query("SELECT 1").execute(self.read()).await?;
        Ok(())
    }

    async fn unready(&self) -> StoreResult<Option<String>> {
        let needed = match &self.pools {
            Pools::Sqlite { .. } => sqlite::latest_migration(),
            Pools::Postgres(_) => postgres::latest_migration(),
        };
        let applied: Option<i64> =
            query("SELECT MAX(version) AS version FROM _sqlx_migrations WHERE success")
                .fetch_one(self.write())
                .await?
                .get("version")?;
        let applied = applied.unwrap_or(0);
        Ok((applied < needed).then(|| {
            format!("the database's schema is at migration {applied}; this build needs {needed} (run `updown migrate`)")
        }))
    }

    async fn check_replica(&self, max_lag: std::time::Duration) -> crate::ReplicaState {
        self.check_replica_lag(max_lag).await
    }

    async fn claim_run(
        &self,
        task: &str,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write().begin().await?;
        let claimed = query(
            "INSERT INTO task_runs (task, last_run_at) VALUES ($1, $2) \
             ON CONFLICT (task) DO UPDATE SET last_run_at = excluded.last_run_at \
             WHERE task_runs.last_run_at <= $3 RETURNING task",
        )
        .bind(task)
        .bind(now)
        .bind(since)
        .fetch_optional(&mut tx)
        .await?
        .is_some();
        tx.commit().await?;
        Ok(claimed)
    }

    async fn scheduler_lease(&self) -> StoreResult<Option<Box<dyn Lease>>> {
        match &self.pools {
            // One process owns a SQLite file's writes; nothing to contend for.
            Pools::Sqlite { .. } => Ok(Some(Box::new(crate::SoleLease))),
            Pools::Postgres(pool) => postgres::scheduler_lease(pool).await,
        }
    }
}
