//! Wires the process: the store the configuration names (migrated), the
//! clock, the oracle, the chain sender and the event bus, into one
//! [`App`], and starts what runs beside it (the bet batcher's workers, the
//! event follower). Entry points (`updown serve`, the commands) start here;
//! tests wire their own ports through [`wire`].

use std::sync::Arc;

use updown_store::Store;

use crate::chain::evm::EvmRpc;
use crate::chain::{ChainSender, MockChain};
use crate::clock::{Clock, ScaledClock, SystemClock};
use crate::config::{ChainSenderKind, Config, DepositSource, OracleKind};
use crate::events::EventBus;
use crate::oracle::{
    CsvOracle, HttpOracle, ManualOracle, MarketDataOracle, MockOracle, Oracle, QuorumOracle,
    TiingoOracle, TwelveDataOracle,
};
use crate::services::{App, BetBatcher, ChainWatch, EvmSender, Ports};

/// Connects the database the configuration names, runs migrations, and
/// builds the clock and oracle it asks for.
pub async fn app(config: Config) -> anyhow::Result<App> {
    let store = match &config.database.read_url {
        Some(read_url) => {
            updown_store::connect_with_replica(
                config.database.url.expose(),
                read_url.expose(),
                config.database.max_connections,
            )
            .await?
        }
        None => {
            updown_store::connect(
                config.database.url.expose(),
                config.database.max_connections,
            )
            .await?
        }
    };
    store.migrate().await?;
    let clock: Arc<dyn Clock> = match config.clock {
        Some(setting) => {
            // The log line's own timestamp is the real instant the clock
            // starts from (`bench rush` reads it). Info, not a warning: the
            // commands' `--json` error is the first JSON line they print.
            tracing::info!(
                event = "clock_override",
                starts_at = %setting.start.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                speed = setting.speed,
                "the clock is not the system's (CLOCK_START, CLOCK_SPEED): for demos and tests only"
            );
            Arc::new(ScaledClock::new(setting))
        }
        None => Arc::new(SystemClock),
    };
    let oracle = oracle_for(&config, clock.clone())?;
    Ok(wire(config, store, clock, oracle))
}

/// An app over these ports, with the chain sender the configuration names
/// (needs a Tokio runtime: it starts the background tasks).
pub fn wire(
    config: Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    oracle: Arc<dyn Oracle>,
) -> App {
    let chain: Option<Arc<dyn ChainSender>> = match config.chain.sender {
        ChainSenderKind::Mock => Some(Arc::new(MockChain::default())),
        ChainSenderKind::Manual | ChainSenderKind::Evm => None,
    };
    wire_with_chain(config, store, clock, oracle, chain)
}

/// As [`wire`], with a chain sender of the caller's (tests).
pub fn wire_with_chain(
    config: Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    oracle: Arc<dyn Oracle>,
    chain: Option<Arc<dyn ChainSender>>,
) -> App {
    let bets = BetBatcher::start(
        store.clone(),
        config.batching.bet_batch_max,
        config.batching.bet_batch_wait,
        config.batching.bet_workers,
    );
    let events = match &config.events.redis_url {
        Some(url) => match redis::Client::open(url.expose()) {
            Ok(client) => EventBus::with_redis(client),
            // Checked when the configuration was read; a URL the client
            // still refuses leaves events in this process, and /health
            // says Redis is not configured.
            Err(_) => EventBus::in_process(),
        },
        None => EventBus::in_process(),
    };
    let ports = Ports {
        store,
        clock,
        oracle,
        chain,
        watch: chain_watch(&config).map(Arc::new),
        sender: evm_sender(&config).map(Arc::new),
        events,
        bets,
    };
    let app = App::new(config, ports);
    tokio::spawn(app.follow_events());
    if app.config.database.read_url.is_some() {
        tokio::spawn(app.clone().follow_replica());
    }
    app
}

/// The chain watcher, when DEPOSIT_SOURCE=evm (connects nothing yet:
/// the node is first asked at the first poll).
fn chain_watch(config: &Config) -> Option<ChainWatch> {
    if config.chain.deposit_source != DepositSource::Evm {
        return None;
    }
    let evm = &config.chain.evm;
    let (Some(url), Some(chain_id)) = (&evm.rpc_url, evm.chain_id) else {
        unreachable!("checked with the configuration");
    };
    let token = crate::chain::evm::evm_address(&config.chain.deposit_token);
    match EvmRpc::connect(url.expose(), evm.rpc_timeout) {
        Ok(rpc) => Some(ChainWatch::new(rpc, token, chain_id, evm.log_range)),
        Err(e) => {
            tracing::error!(error = %e, "the chain watcher cannot start");
            None
        }
    }
}

/// The hot wallet's sender, when CHAIN_SENDER=evm.
fn evm_sender(config: &Config) -> Option<EvmSender> {
    if config.chain.sender != ChainSenderKind::Evm {
        return None;
    }
    let evm = &config.chain.evm;
    let (Some(url), Some(chain_id), Some(key)) =
        (&evm.rpc_url, evm.chain_id, &config.chain.sending.key)
    else {
        unreachable!("checked with the configuration");
    };
    let token = crate::chain::evm::evm_address(&config.chain.deposit_token);
    match EvmRpc::connect(url.expose(), evm.rpc_timeout) {
        Ok(rpc) => Some(EvmSender::new(rpc, key.clone(), token, chain_id)),
        Err(e) => {
            tracing::error!(error = %e, "the withdrawal sender cannot start");
            None
        }
    }
}

/// The oracle the configuration names.
/// A quorum's sources' answers are timed by `clock`.
pub fn oracle_for(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<dyn Oracle>> {
    let single = |kind| -> anyhow::Result<Arc<dyn Oracle>> {
        Ok(match kind {
            OracleKind::Mock => Arc::new(MockOracle::default()),
            OracleKind::Csv => Arc::new(CsvOracle::new(
                config
                    .oracle
                    .csv_path
                    .clone()
                    .expect("validated with the config"),
            )),
            OracleKind::Http => Arc::new(HttpOracle::new(
                config
                    .oracle
                    .http
                    .clone()
                    .expect("validated with the config"),
            )?),
            OracleKind::TwelveData => Arc::new(TwelveDataOracle::new(
                config
                    .oracle
                    .twelvedata
                    .clone()
                    .expect("validated with the config"),
            )?),
            OracleKind::Tiingo => Arc::new(TiingoOracle::new(
                config
                    .oracle
                    .tiingo
                    .clone()
                    .expect("validated with the config"),
            )?),
            OracleKind::MarketData => Arc::new(MarketDataOracle::new(
                config
                    .oracle
                    .marketdata
                    .clone()
                    .expect("validated with the config"),
            )?),
            OracleKind::Manual | OracleKind::Quorum => Arc::new(ManualOracle),
        })
    };
    if config.oracle.kind != OracleKind::Quorum {
        return single(config.oracle.kind);
    }
    let sources = config
        .oracle
        .sources
        .iter()
        .map(|kind| single(*kind))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Arc::new(
        QuorumOracle::new(sources, config.oracle.quorum, config.oracle.max_spread_bps)
            .with_clock(clock),
    ))
}
