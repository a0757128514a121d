//! Fresh databases for tests: a temporary SQLite file, or a new schema in
//! the PostgreSQL that `TEST_POSTGRES_URL` names. Used by this crate's and
//! the app's tests; not part of the service.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use sqlx::Connection;

use crate::{SqlStore, Store};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// The engines every story runs on (see [`on_both_backends!`](crate::on_both_backends)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// A fresh, migrated database on this engine (PostgreSQL: a new schema
    /// in `TEST_POSTGRES_URL`'s database).
    pub async fn fresh(self) -> TestDb {
        match self {
            Engine::Sqlite => sqlite().await,
            Engine::Postgres => {
                let url = postgres_url("a story").expect("TEST_POSTGRES_URL is set");
                postgres(&url, 16).await
            }
        }
    }
}

/// Runs each story (`async fn story(engine: Engine)`) as two tests: on
/// SQLite, and on PostgreSQL when `TEST_POSTGRES_URL` is set (otherwise
/// the PostgreSQL test says it skipped and returns).
#[macro_export]
macro_rules! on_both_backends {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    super::$story($crate::testing::Engine::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    if $crate::testing::postgres_url(stringify!($story)).is_none() {
                        return;
                    }
                    super::$story($crate::testing::Engine::Postgres).await;
                }
            )*
        }
    };
}

/// A test database; the SQLite files are removed when it is dropped.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub url: String,
    files: Vec<PathBuf>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// A migrated SQLite database in a temporary file.
pub async fn sqlite() -> TestDb {
    let path = std::env::temp_dir().join(format!("updown-test-{}.db", unique_suffix()));
    let url = format!("sqlite://{}", path.display());
    let store = SqlStore::open_sqlite(&url, 4)
        .await
        .expect("open SQLite test database");
    store.migrate().await.expect("migrate SQLite");
    let files = ["", "-wal", "-shm"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", path.display())))
        .collect();
    TestDb {
        store: Arc::new(store),
        url,
        files,
    }
}

/// The PostgreSQL URL for tests, or `None` (and a line saying the test is
/// skipped) when `TEST_POSTGRES_URL` is unset.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {test} on PostgreSQL (TEST_POSTGRES_URL is not set)");
            None
        }
    }
}

/// A migrated PostgreSQL store in a fresh schema of `url`'s database.
pub async fn postgres(url: &str, max_connections: u32) -> TestDb {
    let schema = format!("updown_t_{}", unique_suffix());
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to TEST_POSTGRES_URL");
    drop_schemas_of_dead_processes(&mut admin).await;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .expect("create test schema");
    let options = PgConnectOptions::from_str(url)
        .expect("parse TEST_POSTGRES_URL")
        .options([("search_path", schema.as_str())]);
    let store = SqlStore::open_postgres_with(options, max_connections)
        .await
        .expect("open PostgreSQL test schema");
    store.migrate().await.expect("migrate PostgreSQL");
    TestDb {
        store: Arc::new(store),
        url: format!(
            "{url}{}options=-c%20search_path%3D{schema}",
            if url.contains('?') { "&" } else { "?" }
        ),
        files: Vec::new(),
    }
}

/// Test schemas are named after the process that made them; those whose
/// process is gone are left-overs and are dropped.
async fn drop_schemas_of_dead_processes(admin: &mut sqlx::PgConnection) {
    let schemas: Vec<(String,)> =
        sqlx::query_as("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'updown_t_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for (schema,) in schemas {
        let pid = schema
            .trim_start_matches("updown_t_")
            .split('_')
            .next()
            .unwrap_or("");
        let alive = !pid.is_empty() && std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&mut *admin)
                .await;
        }
    }
}

/// A new, empty PostgreSQL database beside the one `url` names, for
/// another process to use (benchmarks); `remove` drops it.
pub struct ScratchDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> Option<String> {
    let after_scheme = url.find("://")? + 3;
    let path = after_scheme + url[after_scheme..].find('/')?;
    let end = url[path..].find('?').map_or(url.len(), |q| path + q);
    Some(format!("{}/{name}{}", &url[..path], &url[end..]))
}

pub async fn scratch_postgres_database(url: &str) -> anyhow::Result<ScratchDatabase> {
    let name = format!("updown_scratch_{}", unique_suffix());
    let target = with_database(url, &name)
        .ok_or_else(|| anyhow::anyhow!("{url:?} does not name a database"))?;
    let mut admin = sqlx::PgConnection::connect(url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    Ok(ScratchDatabase {
        url: target,
        admin_url: url.to_string(),
        name,
    })
}

impl ScratchDatabase {
    pub async fn remove(self) -> anyhow::Result<()> {
        let mut admin = sqlx::PgConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await?;
        Ok(())
    }
}

/// Runs `sql` on the database at `url` behind the service's back, as a
/// fault, a bad restore or a tamperer would change it.
pub async fn behind_the_back(url: &str, sql: &str) {
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_name_is_swapped_keeping_the_options() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/test?sslmode=disable", "x").as_deref(),
            Some("postgres://u@h:5432/x?sslmode=disable")
        );
        assert_eq!(
            super::with_database("postgres://h/test", "x").as_deref(),
            Some("postgres://h/x")
        );
        assert_eq!(super::with_database("postgres://h", "x"), None);
    }
}
