//! What UPDOWN_ENV=production refuses, in one place: each setting that
//! would let anyone know results in advance, move time, pretend to pay,
//! or leave the service open, with what to set instead.

use super::reader::ConfigError;
use super::Config;

/// What the process is about to do: serving asks more than a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Any command (checked as the configuration is read).
    Command,
    /// `updown serve`: also an admin token and the operator's deposit key.
    Serve,
}

/// Refuses what is unsafe in production for `purpose`; development keeps
/// its conveniences.
pub fn refuse_unsafe_production(config: &Config, purpose: Purpose) -> Result<(), ConfigError> {
    if !config.production {
        return Ok(());
    }
    if config.oracle.uses_mock() {
        return Err(ConfigError::new(
            "ORACLE",
            config.oracle.kind.as_str(),
            "UPDOWN_ENV=production refuses the mock oracle (its closes are a public hash of market and date, \
             so anyone who reads the source knows every result); set ORACLE=http with ORACLE_API_KEY, ORACLE=twelvedata with ORACLE_TWELVEDATA_KEY, \
             ORACLE=tiingo with ORACLE_TIINGO_KEY, ORACLE=marketdata with ORACLE_MARKETDATA_KEY, ORACLE=quorum with real ORACLE_SOURCES, csv, or manual",
        ));
    }
    if let Some(clock) = config.clock {
        return Err(ConfigError::new(
            "CLOCK_START",
            &clock.start.to_rfc3339(),
            "UPDOWN_ENV=production runs on the system clock; unset CLOCK_START and CLOCK_SPEED (they are for demos and tests)",
        ));
    }
    if config.chain.sender == super::ChainSenderKind::Mock {
        return Err(ConfigError::new(
            "CHAIN_SENDER",
            "mock",
            "the mock chain only pretends to send; UPDOWN_ENV=production needs CHAIN_SENDER=manual \
             (operators send and record withdrawals with `updown withdrawals`)",
        ));
    }
    if config.chain.evm.rpc_is_insecure() && !config.chain.evm.allow_insecure_rpc {
        return Err(ConfigError::new(
            "EVM_RPC_URL",
            "http:",
            "UPDOWN_ENV=production refuses plain http:// to an EVM node on another host (anyone on the path \
             could feed the watcher a false chain); use https://, a node on localhost, or set EVM_ALLOW_INSECURE_RPC=1",
        ));
    }
    if purpose == Purpose::Command {
        return Ok(());
    }
    if config.http.admin_token.is_none() {
        return Err(ConfigError::new(
            "ADMIN_TOKEN",
            "",
            "UPDOWN_ENV=production needs ADMIN_TOKEN (at least 16 characters); \
             development makes one up for each run",
        ));
    }
    if config.chain.wallet_xpub.is_none() {
        return Err(ConfigError::new(
            "WALLET_XPUB",
            "",
            "UPDOWN_ENV=production needs WALLET_XPUB (the account-level xpub for m/44'/60'/0'); \
             development derives deposit addresses from a public test mnemonic",
        ));
    }
    Ok(())
}
