//! Wires the process: the store the configuration names (migrated), the
//! clock, the oracle and the chain sender, into one [`App`]. Entry points
//! (`updown serve`, the commands) start here; tests wire their own.

use std::sync::Arc;

use crate::clock::{Clock, ScaledClock, SystemClock};
use crate::config::{Config, OracleKind};
use crate::oracle::{CsvOracle, HttpOracle, ManualOracle, MockOracle, Oracle, QuorumOracle};
use crate::services::App;

/// Connects the database the configuration names, runs migrations, and
/// builds the clock and oracle it asks for.
pub async fn app(config: Config) -> anyhow::Result<App> {
    let store = updown_store::connect(
        config.database.url.expose(),
        config.database.max_connections,
    )
    .await?;
    store.migrate().await?;
    let clock: Arc<dyn Clock> = match config.clock {
        Some(setting) => Arc::new(ScaledClock::new(setting)),
        None => Arc::new(SystemClock),
    };
    let oracle = oracle_for(&config)?;
    Ok(App::new(config, store, clock, oracle))
}

/// The oracle the configuration names.
pub fn oracle_for(config: &Config) -> anyhow::Result<Arc<dyn Oracle>> {
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
    Ok(Arc::new(QuorumOracle::new(
        sources,
        config.oracle.quorum,
        config.oracle.max_spread_bps,
    )))
}
