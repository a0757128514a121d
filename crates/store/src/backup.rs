//! Backups that restore: a consistent copy of a live database, checked
//! after it is written, and a restore into an empty database only.
//!
//! - SQLite: `VACUUM INTO` copies one read snapshot (WAL mode: `serve`
//!   keeps writing meanwhile) into a new file, which is then opened and
//!   checked (`PRAGMA integrity_check`). A restore copies it beside the
//!   target and links it into place, which fails if the target appeared
//!   meanwhile: nothing is ever overwritten.
//! - PostgreSQL: `pg_dump --format=custom` (one repeatable-read snapshot,
//!   no owners or grants, so it restores under another role), checked by
//!   reading its table of contents back (`pg_restore --list`). A restore
//!   runs `pg_restore --single-transaction --exit-on-error`: all of it or
//!   nothing. The password never appears on a command line (it goes to the
//!   tools as `PGPASSWORD`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context};
use sqlx::{ConnectOptions, Connection};

use crate::Backend;

/// What a backup holds, read back from it.
#[derive(Clone, Debug)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub bytes: u64,
    /// The backup's format: `sqlite` or `pg_dump custom`.
    pub format: &'static str,
    /// The last migration the copied database had (SQLite; for PostgreSQL
    /// read after a restore).
    pub migration: Option<i64>,
    /// Bets in the copy (SQLite; for PostgreSQL after a restore).
    pub bets: Option<i64>,
    /// The tables whose rows the backup holds.
    pub tables: usize,
}

/// Copies the database at `url` to the new file `to` (refused if it
/// exists), then checks the copy.
pub async fn backup(url: &str, to: &Path) -> anyhow::Result<BackupSummary> {
    if to.exists() {
        bail!("{} exists; a backup never overwrites a file", to.display());
    }
    match Backend::of_url(url)? {
        Backend::Sqlite => backup_sqlite(url, to).await,
        Backend::Postgres => backup_postgres(url, to),
    }
}

/// Restores the backup `from` into the empty database at `url`; refused
/// when it holds any table.
pub async fn restore(url: &str, from: &Path) -> anyhow::Result<BackupSummary> {
    if !from.is_file() {
        bail!("{}: no such backup file", from.display());
    }
    match Backend::of_url(url)? {
        Backend::Sqlite => restore_sqlite(url, from).await,
        Backend::Postgres => restore_postgres(url, from).await,
    }
}

fn sqlite_path(url: &str) -> anyhow::Result<PathBuf> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    Ok(options.get_filename().to_path_buf())
}

async fn backup_sqlite(url: &str, to: &Path) -> anyhow::Result<BackupSummary> {
    let source = sqlite_path(url)?;
    if !source.is_file() {
        bail!("{}: no such SQLite database", source.display());
    }
    let target = to
        .to_str()
        .ok_or_else(|| anyhow!("{}: not a UTF-8 path", to.display()))?;
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&source)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("opening {}", source.display()))?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut connection)
        .await
        .with_context(|| format!("copying into {}", to.display()))?;
    connection.close().await?;
    check_sqlite(to).await
}

/// Opens a SQLite copy read-only and checks it whole.
async fn check_sqlite(path: &Path) -> anyhow::Result<BackupSummary> {
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut connection)
        .await
        .with_context(|| format!("{}: not a SQLite database", path.display()))?;
    if integrity != "ok" {
        bail!("{}: integrity check failed: {integrity}", path.display());
    }
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_one(&mut connection)
    .await?;
    let migration: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut connection)
            .await
            .with_context(|| format!("{}: not an updown database", path.display()))?;
    let bets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bets")
        .fetch_one(&mut connection)
        .await
        .with_context(|| format!("{}: not an updown database", path.display()))?;
    connection.close().await?;
    Ok(BackupSummary {
        path: path.to_path_buf(),
        bytes: std::fs::metadata(path)?.len(),
        format: "sqlite",
        migration,
        bets: Some(bets),
        tables: tables as usize,
    })
}

async fn restore_sqlite(url: &str, from: &Path) -> anyhow::Result<BackupSummary> {
    let target = sqlite_path(url)?;
    let summary = check_sqlite(from).await?;
    let empty = std::fs::metadata(&target).map_or(true, |m| m.len() == 0);
    if !empty || has_sqlite_journal(&target) {
        bail!(
            "{} is not empty; restore into a new database only (move it aside first)",
            target.display()
        );
    }
    if let Some(folder) = target.parent().filter(|f| !f.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)?;
    }
    let staging = target.with_extension("restoring");
    std::fs::copy(from, &staging).with_context(|| format!("copying into {}", staging.display()))?;
    std::fs::File::open(&staging)?.sync_all()?;
    // An empty file in the way (a database opened and never written) is
    // removed; one that appears from now on makes the link fail.
    if target.exists() {
        std::fs::remove_file(&target)?;
    }
    let linked = std::fs::hard_link(&staging, &target);
    std::fs::remove_file(&staging)?;
    linked.with_context(|| format!("{} appeared during the restore", target.display()))?;
    Ok(BackupSummary {
        path: target,
        ..summary
    })
}

fn has_sqlite_journal(path: &Path) -> bool {
    ["-wal", "-journal"].iter().any(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::fs::metadata(PathBuf::from(name)).is_ok_and(|m| m.len() > 0)
    })
}

/// `url` without its password, and the password.
fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((user_info, host)) = authority.rsplit_once('@') else {
        return (url.to_string(), None);
    };
    let Some((user, password)) = user_info.split_once(':') else {
        return (url.to_string(), None);
    };
    let password = percent_encoding::percent_decode_str(password)
        .decode_utf8_lossy()
        .into_owned();
    (format!("{scheme}://{user}@{host}{tail}"), Some(password))
}

/// One of PostgreSQL's tools against `url`, the password in its
/// environment.
fn pg_tool(tool: &str, url: &str) -> Command {
    let (url, password) = split_password(url);
    let mut command = Command::new(tool);
    command.arg(format!("--dbname={url}"));
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    command
}

/// Runs `command`; its stderr on failure.
fn run(mut command: Command, what: &str) -> anyhow::Result<String> {
    let output = command.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!("{what}: not found; install PostgreSQL's client tools (Debian: postgresql-client) of the server's major version")
        } else {
            anyhow!("{what}: {e}")
        }
    })?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn backup_postgres(url: &str, to: &Path) -> anyhow::Result<BackupSummary> {
    let mut dump = pg_tool("pg_dump", url);
    dump.args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
        .arg(to);
    if let Err(e) = run(dump, "pg_dump") {
        let _ = std::fs::remove_file(to);
        return Err(e);
    }
    let tables = check_dump(to)?;
    Ok(BackupSummary {
        path: to.to_path_buf(),
        bytes: std::fs::metadata(to)?.len(),
        format: "pg_dump custom",
        migration: None,
        bets: None,
        tables,
    })
}

/// Reads a dump's table of contents back: the tables whose rows it holds.
fn check_dump(path: &Path) -> anyhow::Result<usize> {
    let mut list = Command::new("pg_restore");
    list.arg("--list").arg(path);
    let contents = run(list, "pg_restore --list")
        .with_context(|| format!("{}: not a readable pg_dump archive", path.display()))?;
    let tables: Vec<&str> = contents
        .lines()
        .filter(|line| !line.starts_with(';') && line.contains(" TABLE DATA "))
        .collect();
    for needed in ["_sqlx_migrations", "ledger_entries", "bets"] {
        if !tables
            .iter()
            .any(|line| line.split_whitespace().any(|word| word == needed))
        {
            bail!(
                "{}: no {needed} table's rows; not an updown database",
                path.display()
            );
        }
    }
    Ok(tables.len())
}

async fn restore_postgres(url: &str, from: &Path) -> anyhow::Result<BackupSummary> {
    let tables = check_dump(from)?;
    let mut connection = sqlx::postgres::PgConnectOptions::from_str(url)?
        .connect()
        .await
        .context("connecting to the database to restore into")?;
    let existing: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_catalog.pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_one(&mut connection)
    .await?;
    if existing > 0 {
        bail!("the database holds {existing} tables; restore into an empty database only (createdb a new one)");
    }
    let mut restore = pg_tool("pg_restore", url);
    restore
        .args([
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
        ])
        .arg(from);
    run(restore, "pg_restore")?;
    let migration: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut connection)
            .await?;
    let bets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bets")
        .fetch_one(&mut connection)
        .await?;
    connection.close().await?;
    Ok(BackupSummary {
        path: from.to_path_buf(),
        bytes: std::fs::metadata(from)?.len(),
        format: "pg_dump custom",
        migration,
        bets: Some(bets),
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_for_the_environment() {
        assert_eq!(
            split_password("postgres://app:p%40ss@db:5432/updown?sslmode=disable"),
            (
                "postgres://app@db:5432/updown?sslmode=disable".to_string(),
                Some("p@ss".to_string())
            )
        );
        assert_eq!(
            split_password("postgres://postgres@127.0.0.1/test"),
            ("postgres://postgres@127.0.0.1/test".to_string(), None)
        );
        assert_eq!(
            split_password("postgres://app:secret@db/x@y"),
            ("postgres://app@db/x@y".to_string(), Some("secret".into()))
        );
    }
}
