//! A PostgreSQL read replica (DATABASE_READ_URL) for the read-only lists
//! (rounds, a player's bets and statement, the operators' lists): used
//! while [`SqlStore::check_replica`] last found it answering within the
//! allowed lag; otherwise, and whenever a read on it fails, the read goes
//! to the primary. Nothing that moves money, and nothing that must see its
//! own writes, ever reads from it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::SqlStore;
use crate::{ReplicaState, StoreError};

pub(super) struct Replica {
    pub(super) pool: PgPool,
    /// Whether reads go to it (set by each check).
    usable: AtomicBool,
}

impl Replica {
    /// Connects lazily: a replica down at start only sends reads to the
    /// primary until it answers.
    pub(super) fn connect(options: PgConnectOptions, max_connections: u32) -> Replica {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(options);
        Replica {
            pool,
            usable: AtomicBool::new(false),
        }
    }
}

impl SqlStore {
    /// Adds a read replica at `url` (PostgreSQL only).
    pub fn with_replica(mut self, url: &str, max_connections: u32) -> anyhow::Result<SqlStore> {
        if !matches!(self.pools, super::Pools::Postgres(_)) {
            anyhow::bail!("a read replica needs PostgreSQL as the primary");
        }
        self.replica = Some(Replica::connect(url.parse()?, max_connections));
        Ok(self)
    }

    /// The replica's pool while reads may go to it.
    pub(super) fn replica_pool(&self) -> Option<&PgPool> {
        self.replica
            .as_ref()
            .filter(|r| r.usable.load(Ordering::Relaxed))
            .map(|r| &r.pool)
    }

    /// A read on the replica failed: the primary takes reads until the
    /// next check finds it well.
    pub(super) fn replica_failed(&self, error: &StoreError) {
        if let Some(replica) = &self.replica {
            if replica.usable.swap(false, Ordering::Relaxed) {
                tracing::warn!(%error, "a read on the replica failed; reading from the primary");
            }
        }
    }

    pub(super) async fn check_replica_lag(&self, max_lag: Duration) -> ReplicaState {
        let Some(replica) = &self.replica else {
            return ReplicaState::NotConfigured;
        };
        // Nothing received and not replayed: no lag, however long the
        // primary has been quiet; else how old the last replayed commit is.
        let lag = sqlx::query_scalar::<_, Option<f64>>(
            "SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL \
             WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
             ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 END",
        )
        .fetch_one(&replica.pool);
        let state = match tokio::time::timeout(Duration::from_secs(2), lag).await {
            Err(_) => ReplicaState::Down("no answer within 2 s".into()),
            Ok(Err(e)) => ReplicaState::Down(e.to_string()),
            Ok(Ok(None)) => ReplicaState::Down("it is not in recovery (not a replica)".into()),
            Ok(Ok(Some(seconds))) => {
                let lag = Duration::from_secs_f64(seconds.max(0.0));
                if lag > max_lag {
                    ReplicaState::Lagging(lag)
                } else {
                    ReplicaState::Ok(lag)
                }
            }
        };
        let usable = matches!(state, ReplicaState::Ok(_));
        replica.usable.store(usable, Ordering::Relaxed);
        state
    }
}

/// Runs the read `$body` (an expression of `$pool`, a [`super::db::Pool`])
/// on the replica while it is usable, and on the primary otherwise or when
/// it fails there.
macro_rules! on_replica {
    ($store:expr, |$pool:ident| $body:expr) => {{
        let store = $store;
        let first = match store.replica_pool() {
            Some(replica) => {
                let $pool = super::db::Pool::Postgres(replica);
                Some($body.await)
            }
            None => None,
        };
        match first {
            Some(Ok(found)) => Ok(found),
            Some(Err(error)) => {
                store.replica_failed(&error);
                let $pool = store.read();
                $body.await
            }
            None => {
                let $pool = store.read();
                $body.await
            }
        }
    }};
}
pub(super) use on_replica;
