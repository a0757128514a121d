//! `updown backup --to FILE` and `updown restore --from FILE` (see
//! `updown_store::backup` for how each engine copies).

use std::path::Path;

use serde_json::json;
use updown_store::backup::BackupSummary;

use super::output::Printer;
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::wire::VerifyOut;

fn view(summary: &BackupSummary) -> serde_json::Value {
    json!({
        "path": summary.path,
        "bytes": summary.bytes,
        "format": summary.format,
        "migration": summary.migration,
        "bets": summary.bets,
        "tables": summary.tables,
    })
}

fn describe(summary: &BackupSummary) -> String {
    let mut line = format!(
        "{} ({}, {} bytes, {} tables",
        summary.path.display(),
        summary.format,
        summary.bytes,
        summary.tables
    );
    if let Some(migration) = summary.migration {
        line.push_str(&format!(", migration {migration}"));
    }
    if let Some(bets) = summary.bets {
        line.push_str(&format!(", {bets} bets"));
    }
    line.push(')');
    line
}

pub async fn backup(config: &Config, to: &Path, out: &Printer) -> AppResult<i32> {
    let summary = updown_store::backup::backup(config.database.url.expose(), to)
        .await
        .map_err(|e| AppError::Invalid(format!("{e:#}")))?;
    out.print(&view(&summary), || {
        format!("backup written and checked: {}", describe(&summary))
    });
    Ok(0)
}

/// Restores, then opens the database as every command does (which applies
/// migrations newer than the backup's) and verifies the ledger.
pub async fn restore(config: Config, from: &Path, out: &Printer) -> AppResult<i32> {
    let summary = updown_store::backup::restore(config.database.url.expose(), from)
        .await
        .map_err(|e| AppError::Invalid(format!("{e:#}")))?;
    let app = crate::startup::app(config)
        .await
        .map_err(AppError::Internal)?;
    let verified = VerifyOut::from(&app.verify().await?);
    let mut answer = view(&summary);
    answer["verify"] = serde_json::to_value(&verified).expect("serialisable");
    out.print(&answer, || {
        format!(
            "restored {}\n{}",
            describe(&summary),
            super::text::verify(&verified)
        )
    });
    Ok(if verified.ok { 0 } else { 1 })
}
