//! `updown chain ...`, `updown reconcile` and `updown sweep`: the dev
//! token, the deposit watcher's state and one poll of it, reorg
//! acknowledgement, custody, and sweeping deposits into the hot wallet.

use alloy::primitives::{Address, U256};
use serde_json::json;

use super::args::ChainCommand;
use super::output::Printer;
use crate::chain::evm::{evm_address, EvmRpc};
use crate::error::{AppError, AppResult};
use crate::services::App;

pub async fn run(command: ChainCommand, app: &App, out: &Printer) -> AppResult<i32> {
    match command {
        ChainCommand::DevToken {
            token,
            mint_to,
            amount,
        } => dev_token(app, token, mint_to.zip(amount), out).await,
        ChainCommand::Status => status(app, out).await,
        ChainCommand::Watch => {
            let tick = app.watch_step().await?;
            out.print(&tick, || format!("{tick:?}"));
            Ok(0)
        }
        ChainCommand::AckReorg { id, reason, actor } => {
            let by = actor.unwrap_or_else(super::ledger::default_actor);
            let reorg = app.ack_reorg(id, &by, &reason).await?;
            let view = json!({
                "id": reorg.id,
                "fork_block": reorg.fork_block,
                "acked_by": reorg.acked_by,
                "ack_reason": reorg.ack_reason,
            });
            out.print(&view, || {
                format!(
                    "reorg {} (from block {}) acknowledged by {by}; crediting from the chain resumes",
                    reorg.id, reorg.fork_block
                )
            });
            Ok(0)
        }
    }
}

/// The node EVM_RPC_URL names.
fn node(app: &App) -> AppResult<EvmRpc> {
    let evm = &app.config.chain.evm;
    let url = evm
        .rpc_url
        .as_ref()
        .ok_or_else(|| AppError::Invalid("set EVM_RPC_URL to the node's JSON-RPC URL".into()))?;
    Ok(EvmRpc::connect(url.expose(), evm.rpc_timeout)?)
}

fn address(text: &str) -> AppResult<Address> {
    Ok(evm_address(&crate::services::parse_address(text)?))
}

async fn dev_token(
    app: &App,
    token: Option<String>,
    mint: Option<(String, updown_domain::Micros)>,
    out: &Printer,
) -> AppResult<i32> {
    let rpc = node(app)?;
    let token = match token {
        Some(text) => address(&text)?,
        None => rpc.deploy_dev_token().await?,
    };
    let mut view = json!({ "address": token.to_checksum(None) });
    if let Some((to, amount)) = &mint {
        let to = address(to)?;
        rpc.mint(token, to, U256::from(amount.get() as u64)).await?;
        view["minted"] = json!({ "to": to.to_checksum(None), "amount": amount.get() });
    }
    out.print(&view, || match &mint {
        Some((to, amount)) => format!(
            "{}\nminted {} micro-USDC to {to}",
            token.to_checksum(None),
            amount.get()
        ),
        None => token.to_checksum(None),
    });
    Ok(0)
}

async fn status(app: &App, out: &Printer) -> AppResult<i32> {
    let view = app.chain_report().await?;
    out.print(&view, || {
        let mut lines = vec![
            format!(
                "cursor: {}",
                view["cursor"]
                    .as_i64()
                    .map_or("never scanned".into(), |n| format!("block {n} (the next to scan)"))
            ),
            match view["head"].as_u64() {
                Some(head) => format!("head: block {head}"),
                None => format!("head: unknown ({})", view["head_error"].as_str().unwrap_or("")),
            },
            format!(
                "lag: {}",
                view["lag"]
                    .as_u64()
                    .map_or("unknown".into(), |l| format!("{l} confirmed blocks"))
            ),
        ];
        for r in view["reorgs"].as_array().into_iter().flatten() {
            if r["acked_at"].is_null() {
                lines.push(format!(
                    "HALTED by reorg {} at block {} (depth {}); after checking, run `updown chain ack-reorg --id {} --reason ...`",
                    r["id"], r["fork_block"], r["depth"], r["id"]
                ));
            }
        }
        if let Some(c) = view["custody_checks"].as_array().and_then(|c| c.first()) {
            lines.push(format!(
                "custody at block {}: chain {} vs ledger {} micro-USDC: {}",
                c["block"], c["chain_total"].as_str().unwrap_or(""), c["ledger_total"], c["status"].as_str().unwrap_or("")
            ));
        }
        lines.join("\n")
    });
    Ok(0)
}

pub async fn reconcile(app: &App, out: &Printer) -> AppResult<i32> {
    let r = app.reconcile().await?;
    out.print(&r, || {
        let mut lines = vec![format!(
            "custody at block {} ({} addresses): chain {} vs ledger {} micro-USDC: {} ({})",
            r.block, r.addresses, r.chain_total, r.ledger_total, r.status, r.difference
        )];
        for p in &r.places {
            lines.push(format!(
                "  {}: chain {} vs ledger {} ({})",
                p.place.replace('_', " "),
                p.chain,
                p.ledger,
                p.difference
            ));
        }
        lines.join("\n")
    });
    Ok(if r.status == "shortfall" { 1 } else { 0 })
}

/// `updown sweep`: one planning step, then following until every sweep is
/// confirmed or failed, or `wait_secs` pass.
pub async fn sweep(app: &App, dry_run: bool, wait_secs: u64, out: &Printer) -> AppResult<i32> {
    let seed_file = app
        .config
        .chain
        .sending
        .sweep_seed_file
        .as_ref()
        .ok_or_else(|| {
            AppError::Invalid(
                "set SWEEP_SEED_FILE to the file holding the deposit keys' mnemonic or xprv".into(),
            )
        })?;
    let keys = crate::hot_key::load_deposit_keys(seed_file, app.config.production)
        .map_err(AppError::Invalid)?;
    let first = app.sweep_step(Some(&keys), false, dry_run).await?;
    drop(keys);
    if dry_run {
        out.print(&first, || {
            let mut lines: Vec<String> = first
                .planned
                .iter()
                .map(|l| format!("would sweep {} micro-USDC from {} (user {})", l.amount, l.address, l.user))
                .collect();
            lines.push(format!(
                "{} addresses, {} micro-USDC into {}; {} below SWEEP_MIN left alone; {} sweeps in flight (dry run: nothing signed)",
                first.planned.len(),
                first.planned.iter().map(|l| l.amount).sum::<i64>(),
                first.hot_wallet,
                first.below_min,
                first.open
            ));
            lines.join("\n")
        });
        return Ok(0);
    }
    let total = first.planned.len() as u64
        + first.confirmed.len() as u64
        + first.failed.len() as u64
        + first.open;
    let bar = super::output::progress_bar(out.json, total.max(first.open), "sweeps");
    let mut confirmed = first.confirmed.clone();
    let mut failed = first.failed.clone();
    let mut errors = first.errors.clone();
    let mut open = first.open;
    bar.set_position((confirmed.len() + failed.len()) as u64);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait_secs);
    while open > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(app.config.chain.evm.poll).await;
        let step = app.sweep_step(None, true, false).await?;
        confirmed.extend(step.confirmed);
        failed.extend(step.failed);
        errors = step.errors;
        open = step.open;
        bar.set_position((confirmed.len() + failed.len()) as u64);
    }
    bar.finish_and_clear();
    let view = json!({
        "block": first.block,
        "hot_wallet": first.hot_wallet,
        "signed": first.planned,
        "below_min": first.below_min,
        "confirmed": confirmed,
        "failed": failed,
        "in_flight": open,
        "errors": errors,
    });
    out.print(&view, || {
        let mut lines: Vec<String> = first
            .planned
            .iter()
            .map(|l| format!("sweep {}: {} micro-USDC from {} (user {})", l.sweep.unwrap_or_default(), l.amount, l.address, l.user))
            .collect();
        lines.extend(failed.iter().map(|(id, why)| format!("sweep {id} FAILED: {why}")));
        lines.extend(errors.iter().map(|e| format!("error: {e}")));
        lines.push(format!(
            "{} confirmed, {} failed, {} in flight (run `updown sweep` again to follow them); {} below SWEEP_MIN left alone",
            confirmed.len(),
            failed.len(),
            open,
            first.below_min
        ));
        lines.join("\n")
    });
    Ok(if failed.is_empty() && open == 0 && errors.is_empty() {
        0
    } else {
        1
    })
}
