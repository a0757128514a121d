//! How the store speaks SQL to either engine with one piece of code.
//!
//! The store's SQL text is the same on SQLite and PostgreSQL (`$n`
//! placeholders, `RETURNING`, conditional updates), but sqlx's types are
//! per engine. This module is the seam: a [`Query`] holds its text and its
//! arguments as plain values, and is bound to the engine's own sqlx query
//! only when it runs, on a [`Pool`] or in a [`Tx`]; rows come back as a
//! [`Row`] that decodes a column, or a whole `FromRow` struct, on either
//! engine. (`sqlx::Any` cannot do this: it binds no timestamps.)
//!
//! What one engine does and the other cannot (PostgreSQL's arrays for the
//! hot paths) is written natively in `sqlite.rs` and `postgres.rs`, which
//! reach the engine's transaction through [`Tx::sqlite`] and
//! [`Tx::postgres`].

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, FromRow, PgPool, Postgres, Sqlite, SqlitePool, Type};

use crate::{StoreError, StoreResult};

/// A pool to run a statement or begin a transaction on.
#[derive(Clone, Copy)]
pub(crate) enum Pool<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

impl Pool<'_> {
    pub(crate) async fn begin(self) -> StoreResult<Tx<'static>> {
        Ok(match self {
            Pool::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Pool::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }
}

/// An open transaction on either engine.
pub(crate) enum Tx<'c> {
    Sqlite(sqlx::Transaction<'c, Sqlite>),
    Postgres(sqlx::Transaction<'c, Postgres>),
}

impl<'c> Tx<'c> {
    pub(crate) async fn commit(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub(crate) async fn rollback(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await?,
            Tx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    /// The SQLite transaction, for SQLite's own code.
    pub(crate) fn sqlite(&mut self) -> &mut sqlx::Transaction<'c, Sqlite> {
        match self {
            Tx::Sqlite(tx) => tx,
            Tx::Postgres(_) => unreachable!("SQLite code ran in a PostgreSQL transaction"),
        }
    }

    /// The PostgreSQL transaction, for PostgreSQL's own code.
    pub(crate) fn postgres(&mut self) -> &mut sqlx::Transaction<'c, Postgres> {
        match self {
            Tx::Postgres(tx) => tx,
            Tx::Sqlite(_) => unreachable!("PostgreSQL code ran in a SQLite transaction"),
        }
    }
}

/// Where a statement runs: a transaction, or a pool for a statement of its own.
pub(crate) enum On<'a, 'c> {
    Tx(&'a mut Tx<'c>),
    Pool(Pool<'a>),
}

impl<'a, 'c> From<&'a mut Tx<'c>> for On<'a, 'c> {
    fn from(tx: &'a mut Tx<'c>) -> Self {
        On::Tx(tx)
    }
}

impl<'a> From<Pool<'a>> for On<'a, 'static> {
    fn from(pool: Pool<'a>) -> Self {
        On::Pool(pool)
    }
}

/// A bound value. Each variant binds the Rust type sqlx maps to the same
/// SQL type on both engines; `None` binds a typed NULL.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Int4(Option<i32>),
    Bool(bool),
    Text(Option<String>),
    Time(Option<DateTime<Utc>>),
}

macro_rules! args_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl From<$t> for Arg {
            fn from($v: $t) -> Arg {
                $e
            }
        })*
    };
}

args_from! {
    i64 => |v| Arg::Int(Some(v)),
    Option<i64> => |v| Arg::Int(v),
    i32 => |v| Arg::Int4(Some(v)),
    Option<i32> => |v| Arg::Int4(v),
    bool => |v| Arg::Bool(v),
    &str => |v| Arg::Text(Some(v.to_string())),
    String => |v| Arg::Text(Some(v)),
    &String => |v| Arg::Text(Some(v.clone())),
    Option<&str> => |v| Arg::Text(v.map(str::to_string)),
    Option<String> => |v| Arg::Text(v),
    &Option<String> => |v| Arg::Text(v.clone()),
    DateTime<Utc> => |v| Arg::Time(Some(v)),
    Option<DateTime<Utc>> => |v| Arg::Time(v),
}

/// A statement and its arguments, run on whichever engine it is given.
#[must_use = "a query does nothing until it runs"]
pub(crate) struct Query<'s> {
    sql: &'s str,
    args: Vec<Arg>,
}

/// A statement with `$n` placeholders, bound with [`Query::bind`].
pub(crate) fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        args: Vec::new(),
    }
}

/// `($1, $2), ($3, $4)`: the placeholders of a multi-row `VALUES` list
/// of `rows` rows of `columns` values each.
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    let row = |r: usize| {
        let cells: Vec<String> = (1..=columns)
            .map(|c| format!("${}", r * columns + c))
            .collect();
        format!("({})", cells.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// A column type both engines decode.
pub(crate) trait Column<'r>:
    Decode<'r, Sqlite> + Type<Sqlite> + Decode<'r, Postgres> + Type<Postgres>
{
}

impl<'r, T> Column<'r> for T where
    T: Decode<'r, Sqlite> + Type<Sqlite> + Decode<'r, Postgres> + Type<Postgres>
{
}

/// A model type read from a row: its `FromRow` struct, and the checked
/// conversion from it.
pub(crate) trait Record: Sized + TryFrom<Self::Row, Error = StoreError> {
    type Row: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>;
}

/// A row from either engine.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Row {
    /// The column `name`.
    pub(crate) fn get<'r, T: Column<'r>>(&'r self, name: &str) -> StoreResult<T> {
        use sqlx::Row as _;
        Ok(match self {
            Row::Sqlite(row) => row.try_get(name)?,
            Row::Postgres(row) => row.try_get(name)?,
        })
    }

    /// The column at `index` (0 for the first).
    pub(crate) fn get_at<'r, T: Column<'r>>(&'r self, index: usize) -> StoreResult<T> {
        use sqlx::Row as _;
        Ok(match self {
            Row::Sqlite(row) => row.try_get(index)?,
            Row::Postgres(row) => row.try_get(index)?,
        })
    }

    /// The row as a model record, through its `FromRow` struct.
    pub(crate) fn record<T: Record>(&self) -> StoreResult<T> {
        T::try_from(self.decode::<T::Row>()?)
    }

    /// The whole row as a `#[derive(FromRow)]` struct.
    pub(crate) fn decode<'r, T>(&'r self) -> StoreResult<T>
    where
        T: FromRow<'r, SqliteRow> + FromRow<'r, PgRow>,
    {
        Ok(match self {
            Row::Sqlite(row) => T::from_row(row)?,
            Row::Postgres(row) => T::from_row(row)?,
        })
    }
}

impl<'s> Query<'s> {
    pub(crate) fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// The statement as engine `DB`'s own query, its arguments bound.
    fn native<'q, DB>(&'q self) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
    where
        DB: sqlx::Database,
        Option<i64>: sqlx::Encode<'q, DB> + Type<DB>,
        Option<i32>: sqlx::Encode<'q, DB> + Type<DB>,
        bool: sqlx::Encode<'q, DB> + Type<DB>,
        Option<&'q str>: sqlx::Encode<'q, DB> + Type<DB>,
        Option<DateTime<Utc>>: sqlx::Encode<'q, DB> + Type<DB>,
    {
        self.args
            .iter()
            .fold(sqlx::query(self.sql), |q, arg| match arg {
                Arg::Int(v) => q.bind(*v),
                Arg::Int4(v) => q.bind(*v),
                Arg::Bool(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_deref()),
                Arg::Time(v) => q.bind(*v),
            })
    }

    /// Runs the statement; how many rows it changed.
    pub(crate) async fn execute<'a, 'c: 'a>(self, on: impl Into<On<'a, 'c>>) -> StoreResult<u64> {
        Ok(match on.into() {
            On::Tx(Tx::Sqlite(tx)) => self
                .native::<Sqlite>()
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            On::Tx(Tx::Postgres(tx)) => self
                .native::<Postgres>()
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            On::Pool(Pool::Sqlite(pool)) => {
                self.native::<Sqlite>().execute(pool).await?.rows_affected()
            }
            On::Pool(Pool::Postgres(pool)) => self
                .native::<Postgres>()
                .execute(pool)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn fetch_optional<'a, 'c: 'a>(
        self,
        on: impl Into<On<'a, 'c>>,
    ) -> StoreResult<Option<Row>> {
        Ok(match on.into() {
            On::Tx(Tx::Sqlite(tx)) => self
                .native::<Sqlite>()
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Sqlite),
            On::Tx(Tx::Postgres(tx)) => self
                .native::<Postgres>()
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Postgres),
            On::Pool(Pool::Sqlite(pool)) => self
                .native::<Sqlite>()
                .fetch_optional(pool)
                .await?
                .map(Row::Sqlite),
            On::Pool(Pool::Postgres(pool)) => self
                .native::<Postgres>()
                .fetch_optional(pool)
                .await?
                .map(Row::Postgres),
        })
    }

    /// The one row the statement returns (`NotFound` if none).
    pub(crate) async fn fetch_one<'a, 'c: 'a>(self, on: impl Into<On<'a, 'c>>) -> StoreResult<Row> {
        self.fetch_optional(on)
            .await?
            .ok_or_else(|| StoreError::NotFound("row".into()))
    }

    pub(crate) async fn fetch_all<'a, 'c: 'a>(
        self,
        on: impl Into<On<'a, 'c>>,
    ) -> StoreResult<Vec<Row>> {
        Ok(match on.into() {
            On::Tx(Tx::Sqlite(tx)) => wrap(
                self.native::<Sqlite>().fetch_all(&mut **tx).await?,
                Row::Sqlite,
            ),
            On::Tx(Tx::Postgres(tx)) => wrap(
                self.native::<Postgres>().fetch_all(&mut **tx).await?,
                Row::Postgres,
            ),
            On::Pool(Pool::Sqlite(pool)) => {
                wrap(self.native::<Sqlite>().fetch_all(pool).await?, Row::Sqlite)
            }
            On::Pool(Pool::Postgres(pool)) => wrap(
                self.native::<Postgres>().fetch_all(pool).await?,
                Row::Postgres,
            ),
        })
    }

    /// The row, if any, as a model record.
    pub(crate) async fn fetch_record<'a, 'c: 'a, T: Record>(
        self,
        on: impl Into<On<'a, 'c>>,
    ) -> StoreResult<Option<T>> {
        self.fetch_optional(on)
            .await?
            .map(|row| row.record())
            .transpose()
    }

    /// Every row, as model records.
    pub(crate) async fn fetch_records<'a, 'c: 'a, T: Record>(
        self,
        on: impl Into<On<'a, 'c>>,
    ) -> StoreResult<Vec<T>> {
        self.fetch_all(on).await?.iter().map(Row::record).collect()
    }
}

fn wrap<R>(rows: Vec<R>, as_row: fn(R) -> Row) -> Vec<Row> {
    rows.into_iter().map(as_row).collect()
}
