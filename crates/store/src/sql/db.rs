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
            Pool::Postgres(pool) => Tx::Postgres(PgTx::Sqlx(pool.begin().await?)),
        })
    }
}

/// An open transaction on either engine.
pub(crate) enum Tx<'c> {
    Sqlite(sqlx::Transaction<'c, Sqlite>),
    Postgres(PgTx<'c>),
}

/// A PostgreSQL transaction: sqlx's, or one whose `BEGIN` travelled with
/// its first reads (see [`Begun`]).
pub(crate) enum PgTx<'c> {
    Sqlx(sqlx::Transaction<'c, Postgres>),
    Begun(Begun),
}

/// A PostgreSQL transaction begun by one simple-protocol message that also
/// carries its first statements: `BEGIN; SELECT ...; SELECT ...` costs one
/// round trip where sqlx's `begin` and two queries cost three.
///
/// sqlx does not know this connection is in a transaction, so this guard
/// does the bookkeeping: `commit` and `rollback` end it, and a `Begun`
/// dropped without either (an error, a cancelled future) closes its
/// connection, which makes PostgreSQL roll the transaction back, instead of
/// returning a connection mid-transaction to the pool.
pub(crate) struct Begun {
    connection: sqlx::pool::PoolConnection<Postgres>,
    open: bool,
}

impl Begun {
    /// Sends `BEGIN` followed by `statements` (joined with `;`) in one
    /// message and returns each statement's rows. The statements are sent
    /// as text without parameters: callers put only numbers they formatted
    /// themselves in them, never a caller's string.
    pub(super) async fn start(
        connection: sqlx::pool::PoolConnection<Postgres>,
        statements: &[&str],
    ) -> StoreResult<(Begun, Vec<Vec<Row>>)> {
        use futures::TryStreamExt as _;
        use sqlx::Either;
        let sql = std::iter::once("BEGIN")
            .chain(statements.iter().copied())
            .collect::<Vec<_>>()
            .join("; ");
        let mut begun = Begun {
            connection,
            open: true,
        };
        // One result set per statement, BEGIN's first (it has no rows).
        let mut results: Vec<Vec<Row>> = vec![Vec::new()];
        {
            let mut stream = sqlx::raw_sql(&sql).fetch_many(&mut *begun.connection);
            while let Some(item) = stream.try_next().await? {
                match item {
                    Either::Left(_done) => results.push(Vec::new()),
                    Either::Right(row) => results
                        .last_mut()
                        .expect("a result set is open")
                        .push(Row::Postgres(row)),
                }
            }
        }
        // The last push opened a set after the last statement's end.
        results.pop();
        if results.len() != statements.len() + 1 {
            return Err(StoreError::Other(anyhow::anyhow!(
                "expected {} results from one message, got {}",
                statements.len() + 1,
                results.len()
            )));
        }
        results.remove(0);
        Ok((begun, results))
    }

    /// Ends the transaction with `statement`. (Boxed: the future of a
    /// generic sqlx call, awaited inside `Tx::commit`, is otherwise not
    /// provably `Send` to the async traits' callers.)
    fn end(
        mut self,
        statement: &'static str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<()>> + Send>> {
        Box::pin(async move {
            sqlx::Executor::execute(&mut *self.connection, statement).await?;
            self.open = false;
            drop(self);
            Ok(())
        })
    }
}

impl Drop for Begun {
    fn drop(&mut self) {
        if self.open {
            self.connection.close_on_drop();
        }
    }
}

impl<'c> Tx<'c> {
    pub(crate) async fn commit(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(PgTx::Sqlx(tx)) => tx.commit().await?,
            Tx::Postgres(PgTx::Begun(tx)) => tx.end("COMMIT").await?,
        }
        Ok(())
    }

    pub(crate) async fn rollback(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await?,
            Tx::Postgres(PgTx::Sqlx(tx)) => tx.rollback().await?,
            Tx::Postgres(PgTx::Begun(tx)) => tx.end("ROLLBACK").await?,
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

    /// The PostgreSQL transaction's connection, for PostgreSQL's own code.
    pub(crate) fn postgres(&mut self) -> &mut sqlx::PgConnection {
        match self {
            Tx::Postgres(PgTx::Sqlx(tx)) => tx,
            Tx::Postgres(PgTx::Begun(tx)) => &mut tx.connection,
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
            On::Tx(Tx::Postgres(PgTx::Sqlx(tx))) => self
                .native::<Postgres>()
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            On::Tx(Tx::Postgres(PgTx::Begun(tx))) => self
                .native::<Postgres>()
                .execute(&mut *tx.connection)
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
            On::Tx(Tx::Postgres(PgTx::Sqlx(tx))) => self
                .native::<Postgres>()
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Postgres),
            On::Tx(Tx::Postgres(PgTx::Begun(tx))) => self
                .native::<Postgres>()
                .fetch_optional(&mut *tx.connection)
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
            On::Tx(Tx::Postgres(PgTx::Sqlx(tx))) => wrap(
                self.native::<Postgres>().fetch_all(&mut **tx).await?,
                Row::Postgres,
            ),
            On::Tx(Tx::Postgres(PgTx::Begun(tx))) => wrap(
                self.native::<Postgres>()
                    .fetch_all(&mut *tx.connection)
                    .await?,
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

#[cfg(test)]
mod tests {
    use sqlx::postgres::PgPoolOptions;
    use sqlx::{PgPool, Row as _};

    use super::{Begun, PgTx, Tx};
    use crate::testing;

    /// A pool of one connection on a fresh schema with a table to write,
    /// or `None` when `TEST_POSTGRES_URL` is unset.
    async fn one_connection(test: &str) -> Option<(testing::TestDb, PgPool)> {
        let url = testing::postgres_url(test)?;
        let db = testing::postgres(&url, 2).await;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&db.url)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE begun_probe (n INT NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        Some((db, pool))
    }

    /// The connection's backend, whether it is inside an earlier
    /// transaction that wrote (it would have a transaction id already),
    /// and the probe rows it sees.
    async fn look(pool: &PgPool) -> (i32, bool, Vec<i32>) {
        let mut connection = pool.acquire().await.unwrap();
        let row =
            sqlx::query("SELECT pg_backend_pid() AS pid, pg_current_xact_id_if_assigned() IS NOT NULL AS inside")
                .fetch_one(&mut *connection)
                .await
                .unwrap();
        let rows: Vec<i32> = sqlx::query_scalar("SELECT n FROM begun_probe ORDER BY n")
            .fetch_all(&mut *connection)
            .await
            .unwrap();
        (row.get("pid"), row.get("inside"), rows)
    }

    #[tokio::test]
    async fn the_reads_come_back_per_statement_and_commit_ends_the_transaction() {
        let Some((_db, pool)) = one_connection("Begun commits").await else {
            return;
        };
        let (pid, _, _) = look(&pool).await;
        let connection = pool.acquire().await.unwrap();
        let (begun, results) = Begun::start(
            connection,
            &[
                "SELECT n FROM generate_series(1, 3) AS n",
                "INSERT INTO begun_probe VALUES (7)",
                "SELECT 'none' WHERE false",
            ],
        )
        .await
        .unwrap();
        let counts: Vec<usize> = results.iter().map(Vec::len).collect();
        assert_eq!(counts, [3, 0, 0]);
        assert_eq!(results[0][2].get::<i32>("n").unwrap(), 3);
        Tx::Postgres(PgTx::Begun(begun)).commit().await.unwrap();
        // The same connection came back, outside any transaction, and the
        // row is there.
        assert_eq!(look(&pool).await, (pid, false, vec![7]));
    }

    #[tokio::test]
    async fn a_transaction_dropped_unfinished_is_rolled_back_and_its_connection_closed() {
        let Some((_db, pool)) = one_connection("Begun dropped").await else {
            return;
        };
        let (pid, _, _) = look(&pool).await;
        let connection = pool.acquire().await.unwrap();
        let (begun, _) = Begun::start(connection, &["INSERT INTO begun_probe VALUES (1)"])
            .await
            .unwrap();
        // An error or a cancelled future between the reads and the commit.
        drop(begun);
        let (new_pid, inside, rows) = look(&pool).await;
        assert_ne!(
            new_pid, pid,
            "a connection mid-transaction went back to the pool"
        );
        assert!(!inside);
        assert!(rows.is_empty(), "{rows:?}");
    }

    #[tokio::test]
    async fn a_failing_statement_fails_the_start_and_leaves_the_pool_clean() {
        let Some((_db, pool)) = one_connection("Begun fails").await else {
            return;
        };
        let connection = pool.acquire().await.unwrap();
        let failed = Begun::start(
            connection,
            &["INSERT INTO begun_probe VALUES (2)", "SELECT 1 / 0"],
        )
        .await;
        assert!(failed.is_err());
        let (_, inside, rows) = look(&pool).await;
        assert!(!inside);
        assert!(rows.is_empty(), "{rows:?}");
        // And a rollback ends a transaction as it should.
        let connection = pool.acquire().await.unwrap();
        let (begun, _) = Begun::start(connection, &["INSERT INTO begun_probe VALUES (3)"])
            .await
            .unwrap();
        Tx::Postgres(PgTx::Begun(begun)).rollback().await.unwrap();
        let (_, inside, rows) = look(&pool).await;
        assert!(!inside);
        assert!(rows.is_empty(), "{rows:?}");
    }
}
