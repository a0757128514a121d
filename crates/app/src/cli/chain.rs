//! `updown chain ...` and `updown reconcile`: the dev token, the deposit
//! watcher's state and one poll of it, reorg acknowledgement, custody.

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
        format!(
            "custody at block {} ({} addresses): chain {} vs ledger {} micro-USDC: {} ({})",
            r.block, r.addresses, r.chain_total, r.ledger_total, r.status, r.difference
        )
    });
    Ok(if r.status == "shortfall" { 1 } else { 0 })
}
