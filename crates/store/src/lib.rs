//! Persistence for updown: one contract, [`Store`] (a trait per concern),
//! and one implementation, [`SqlStore`], on SQLite (the embedded default)
//! or PostgreSQL (production).
//!
//! # Layout
//! - `contract`: the traits; what each method promises.
//! - [`model`]: the records the store returns and accepts (withdrawals in
//!   `model/withdrawals.rs`).
//! - `error`: [`StoreError`], and sqlx's errors mapped to it in one place.
//! - `sql`: [`SqlStore`]: one file per aggregate, written once for both
//!   engines through a small engine-neutral layer (`sql/db.rs`), and one
//!   file per engine for what differs (connecting, migrations, the
//!   scheduler's lease, the bet batch and settlement chunk hot paths).
//! - [`backup`]: consistent copies of a live database, and restores into
//!   an empty one.
//! - `testing`: fresh databases for tests.

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;
use updown_domain::admission::BetRefusal;
use updown_domain::ids::UserId;
use updown_domain::round::RoundError;

pub mod backup;
mod contract;
mod error;
pub mod model;
mod sql;
#[doc(hidden)]
pub mod testing;

pub use contract::*;
pub use error::{StoreError, StoreResult};
pub use model::*;
pub use sql::SqlStore;

/// Which engine a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What [`Store::check_replica`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplicaState {
    NotConfigured,
    /// Answering, this far behind the primary: lists read from it.
    Ok(std::time::Duration),
    /// Further behind than allowed: lists read from the primary.
    Lagging(std::time::Duration),
    /// Not answering (why): lists read from the primary.
    Down(String),
}

/// A held right (see [`Store::scheduler_lease`]).
#[async_trait]
pub trait Lease: Send {
    async fn release(self: Box<Self>) -> StoreResult<()>;
}

/// A lease nobody else can contend for.
pub struct SoleLease;

#[async_trait]
impl Lease for SoleLease {
    async fn release(self: Box<Self>) -> StoreResult<()> {
        Ok(())
    }
}

/// Why one bet of a batch was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum BetRefusalReason {
    #[error(transparent)]
    Player(#[from] BetRefusal),
    #[error(transparent)]
    Round(#[from] RoundError),
    #[error("user {0} not found")]
    UnknownUser(UserId),
    /// Its Idempotency-Key was recorded by an earlier request: the answer
    /// is that request's.
    #[error("this Idempotency-Key was used before")]
    KeyUsed,
}

/// Opens the store a `DATABASE_URL` names: `sqlite://path` or
/// `postgres://...`.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Arc<dyn Store>> {
    // The URL is not in the message: it may hold a password.
    let backend = Backend::of_url(url).map_err(|e| anyhow::anyhow!("DATABASE_URL {e}"))?;
    Ok(match backend {
        Backend::Postgres => Arc::new(SqlStore::open_postgres(url, max_connections).await?),
        Backend::Sqlite => Arc::new(SqlStore::open_sqlite(url, max_connections).await?),
    })
}

/// As [`connect`], with a PostgreSQL read replica for the lists (see
/// `SqlStore::with_replica`); connected lazily, so a replica down at start
/// does not stop it.
pub async fn connect_with_replica(
    url: &str,
    read_url: &str,
    max_connections: u32,
) -> anyhow::Result<Arc<dyn Store>> {
    if Backend::of_url(url) != Ok(Backend::Postgres) {
        anyhow::bail!("a read replica needs DATABASE_URL on PostgreSQL");
    }
    let store = SqlStore::open_postgres(url, max_connections).await?;
    Ok(Arc::new(store.with_replica(read_url, max_connections)?))
}

/// A database URL of no engine this store speaks.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("must start with sqlite: or postgres://")]
pub struct UnknownEngine;

impl Backend {
    /// The engine a `DATABASE_URL` names, by its scheme (`sqlite:`,
    /// `postgres://` or `postgresql://`): the one place that decides it,
    /// for [`connect`] and for the configuration that checks it at start.
    pub fn of_url(url: &str) -> Result<Backend, UnknownEngine> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            Err(UnknownEngine)
        }
    }
}
