//! `updown bench chain`: the deposit watcher and custody reconciliation
//! against a development node (anvil at EVM_RPC_URL), on a fresh database.
//!
//! 1. Deploys the dev token, creates ADDRESSES users with deposit
//!    addresses, and mints TRANSFERS transfers to them (round robin),
//!    PER_BLOCK to a block, then mines empty blocks up to BLOCKS.
//! 2. Times the watcher catching up from block 0 (blocks/s, transfers/s).
//! 3. Times one reconciliation over every address.
//! 4. Times the two ways to find the deposits among the token's transfers:
//!    every transfer of the range matched in memory against the address
//!    set (what the watcher does), and eth_getLogs with the addresses as a
//!    topic filter, in chunks, with TOPIC_ADDRESSES addresses (the real
//!    ones and made-up ones).

use std::collections::HashSet;
use std::time::Instant;

use alloy::primitives::{Address, U256};
use serde_json::{json, Value};

use super::bench::{fresh_database, BenchBackend};
use crate::chain::evm::{EvmError, EvmRpc};
use crate::config::Config;
use crate::error::{AppError, AppResult};

pub struct ChainArgs {
    pub backend: BenchBackend,
    pub url: String,
    pub addresses: u32,
    pub transfers: u32,
    pub per_block: u32,
    pub blocks: u64,
    pub topic_addresses: u32,
    pub topic_chunk: u32,
}

pub async fn chain(config: Config, args: ChainArgs) -> AppResult<Value> {
    let evm = &config.chain.evm;
    let url = evm
        .rpc_url
        .as_ref()
        .ok_or_else(|| {
            AppError::Invalid(
                "bench chain needs EVM_RPC_URL (a development node such as anvil)".into(),
            )
        })?
        .expose()
        .to_string();
    let rpc = EvmRpc::connect(&url, evm.rpc_timeout)?;
    let chain_id = rpc.chain_id().await?;
    let start_block = rpc.head().await?;
    let token = rpc.deploy_dev_token().await?;
    let db = fresh_database(args.backend, &args.url, 16).await;
    let settings = [
        ("DEPOSIT_SOURCE", "evm".to_string()),
        ("EVM_RPC_URL", url.clone()),
        ("EVM_CHAIN_ID", chain_id.to_string()),
        ("DEPOSIT_TOKEN", token.to_checksum(None)),
        ("MIN_CONFIRMATIONS", "1".to_string()),
        ("EVM_START_BLOCK", start_block.to_string()),
    ];
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bench_config = Config::with(&pairs).map_err(|e| AppError::Invalid(e.to_string()))?;
    let app = crate::startup::wire(
        bench_config,
        db.store.clone(),
        std::sync::Arc::new(crate::clock::SystemClock),
        std::sync::Arc::new(crate::oracle::MockOracle::default()),
    );

    eprintln!(
        "creating {} users with deposit addresses...",
        args.addresses
    );
    app.seed_users(args.addresses, updown_domain::Micros::ZERO, &|_| {})
        .await?;
    let users = app.store.users(None, i64::from(args.addresses)).await?;
    let mut addresses = Vec::with_capacity(users.len());
    for summary in &users {
        let (address, _) = app.deposit_address(&summary.user).await?;
        addresses.push(
            address
                .parse::<Address>()
                .map_err(|e| AppError::Internal(e.into()))?,
        );
    }

    eprintln!(
        "minting {} transfers, {} a block...",
        args.transfers, args.per_block
    );
    let from = rpc.dev_account().await?;
    rpc.dev_call("evm_setAutomine", json!([false])).await?;
    let minted = async {
        for i in 0..args.transfers {
            let to = addresses[i as usize % addresses.len()];
            rpc.mint_unmined(token, from, to, U256::from(1_000_000u64 + u64::from(i)))
                .await?;
            if (i + 1) % args.per_block == 0 {
                rpc.dev_call("anvil_mine", json!(["0x1"])).await?;
            }
            if (i + 1) % 1_000 == 0 {
                eprintln!("  {} minted", i + 1);
            }
        }
        rpc.dev_call("anvil_mine", json!(["0x1"])).await?;
        Ok::<(), EvmError>(())
    }
    .await;
    rpc.dev_call("evm_setAutomine", json!([true])).await?;
    minted?;
    let head = rpc.head().await?;
    if head < start_block + args.blocks {
        let more = start_block + args.blocks - head;
        rpc.dev_call("anvil_mine", json!([format!("{more:#x}")]))
            .await?;
    }
    let head = rpc.head().await?;
    let blocks = head - start_block + 1;

    eprintln!("the watcher catches up over {blocks} blocks...");
    let started = Instant::now();
    let mut credited = 0;
    loop {
        let tick = app.watch_step().await?;
        credited += tick.credited;
        if !tick.behind {
            break;
        }
    }
    let catch_up = started.elapsed().as_secs_f64();
    if credited != args.transfers as usize {
        return Err(AppError::Internal(anyhow::anyhow!(
            "the watcher credited {credited} of {} transfers",
            args.transfers
        )));
    }

    eprintln!("reconciling {} addresses...", addresses.len());
    let started = Instant::now();
    let reconciled = app.reconcile().await?;
    let reconcile = started.elapsed().as_secs_f64();

    eprintln!(
        "matching against {} addresses two ways...",
        args.topic_addresses
    );
    let mut set: Vec<Address> = addresses.clone();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    while set.len() < args.topic_addresses as usize {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bytes = [0u8; 20];
        bytes[..8].copy_from_slice(&seed.to_be_bytes());
        bytes[12..].copy_from_slice(&seed.rotate_left(17).to_be_bytes());
        set.push(Address::from(bytes));
    }
    let started = Instant::now();
    let lookup: HashSet<Address> = set.iter().copied().collect();
    let mut matched = 0;
    let mut at = start_block;
    while at <= head {
        let to = (at + evm.log_range - 1).min(head);
        let transfers = rpc.transfers(token, at, to).await?;
        matched += transfers.iter().filter(|t| lookup.contains(&t.to)).count();
        at = to + 1;
    }
    let in_memory = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut by_topic = 0;
    let mut topic_calls = 0;
    let mut at = start_block;
    while at <= head {
        let to = (at + evm.log_range - 1).min(head);
        for chunk in set.chunks(args.topic_chunk as usize) {
            by_topic += rpc.count_transfers_to(token, chunk, at, to).await?;
            topic_calls += 1;
        }
        at = to + 1;
    }
    let topics = started.elapsed().as_secs_f64();

    Ok(json!({
        "backend": format!("{:?}", args.backend).to_lowercase(),
        "blocks": blocks,
        "transfers": args.transfers,
        "addresses": addresses.len(),
        "watcher_catch_up_s": catch_up,
        "watcher_blocks_per_s": blocks as f64 / catch_up,
        "watcher_transfers_per_s": f64::from(args.transfers) / catch_up,
        "reconcile_s": reconcile,
        "reconcile_status": reconciled.status,
        "match_addresses": set.len(),
        "match_in_memory_s": in_memory,
        "match_in_memory_found": matched,
        "match_by_topic_s": topics,
        "match_by_topic_found": by_topic,
        "match_by_topic_calls": topic_calls,
        "match_by_topic_chunk": args.topic_chunk,
    }))
}
