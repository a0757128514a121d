//! The part of the configuration about the chain: the deposit wallet,
//! which transfers count as deposits, where they are read from (the
//! webhook, the chain itself), and who sends withdrawals.

use std::path::{Path, PathBuf};
use std::time::Duration;

use updown_domain::address::Address;
use updown_domain::wallet::DepositWallet;

use super::reader::{ConfigError, Reader, Unit};
use super::service::at_least_16_characters;
use crate::hot_key::HotKey;
use crate::secret::Secret;

/// The USDC contract on Ethereum mainnet: the default deposit token.
pub const USDC_ETHEREUM: &str = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";

/// Who sends withdrawals to the chain (CHAIN_SENDER).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainSenderKind {
    /// A simulated chain that accepts and confirms every transfer.
    Mock,
    /// An operator sends them and records the outcome (`updown
    /// withdrawals`).
    Manual,
    /// The hot wallet signs and sends them to EVM_RPC_URL
    /// (`services/sender.rs`).
    Evm,
}

/// Where deposits are learned of (DEPOSIT_SOURCE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepositSource {
    /// Only the provider's signed webhook (when DEPOSIT_WEBHOOK_SECRET is
    /// set).
    Webhook,
    /// The chain watcher reads them from EVM_RPC_URL; the webhook still
    /// runs when its secret is set (one transfer is credited once).
    Evm,
}

/// The EVM node and how the watcher reads it (EVM_*).
#[derive(Clone, Debug)]
pub struct Evm {
    /// The node's JSON-RPC URL (EVM_RPC_URL); may hold a provider's key,
    /// so it is a secret.
    pub rpc_url: Option<Secret>,
    /// The chain id the node must report (EVM_CHAIN_ID).
    pub chain_id: Option<u64>,
    /// Where a fresh database starts scanning (EVM_START_BLOCK).
    pub start_block: u64,
    /// Blocks per eth_getLogs call (EVM_LOG_RANGE), halved when the node
    /// says the range is too big.
    pub log_range: u64,
    /// How often the watcher polls (EVM_POLL_MS).
    pub poll: Duration,
    /// Each RPC call's time limit (EVM_RPC_TIMEOUT_MS).
    pub rpc_timeout: Duration,
    /// Plain http:// to another host than this one is refused in
    /// production unless this is on (EVM_ALLOW_INSECURE_RPC).
    pub allow_insecure_rpc: bool,
    /// The hot wallet, whose balance counts toward custody
    /// (HOT_WALLET_ADDRESS).
    pub hot_wallet: Option<Address>,
    /// How often serve reconciles custody against the chain
    /// (RECONCILE_EVERY_MIN; 0 = never).
    pub reconcile_every: Option<Duration>,
}

impl Evm {
    fn from_reader(r: &mut Reader) -> Result<Evm, ConfigError> {
        let reconcile_every = r.duration("RECONCILE_EVERY_MIN", Unit::Minutes, 60, 0..=10_080)?;
        Ok(Evm {
            rpc_url: r.optional_secret_url("EVM_RPC_URL", rpc_url)?,
            chain_id: r.optional("EVM_CHAIN_ID", |text| {
                text.parse::<u64>()
                    .ok()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| "must be a chain id, a whole number above 0 (1 for Ethereum, 31337 for anvil)".to_string())
            })?,
            start_block: r.number("EVM_START_BLOCK", 0u64, 0..=i64::MAX as u64)?,
            log_range: r.number("EVM_LOG_RANGE", 2_000u64, 1..=100_000)?,
            poll: r.duration("EVM_POLL_MS", Unit::Millis, 2_000, 50..=600_000)?,
            rpc_timeout: r.duration("EVM_RPC_TIMEOUT_MS", Unit::Millis, 10_000, 100..=120_000)?,
            allow_insecure_rpc: r.flag("EVM_ALLOW_INSECURE_RPC", false)?,
            hot_wallet: r.optional("HOT_WALLET_ADDRESS", |text| {
                Address::parse(text).map_err(|e| e.to_string())
            })?,
            reconcile_every: (!reconcile_every.is_zero()).then_some(reconcile_every),
        })
    }

    /// Whether the RPC URL is plain http:// to another host than this one.
    pub fn rpc_is_insecure(&self) -> bool {
        let Some(url) = &self.rpc_url else {
            return false;
        };
        match reqwest::Url::parse(url.expose()) {
            Ok(url) if url.scheme() == "http" => !matches!(
                url.host_str(),
                Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
            ),
            _ => false,
        }
    }
}

fn rpc_url(text: &str) -> Result<(), String> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => Ok(()),
        _ => Err("must be an http:// or https:// URL of an EVM node's JSON-RPC".into()),
    }
}

#[derive(Clone, Debug)]
pub struct Chain {
    /// The operator's account-level extended public key (WALLET_XPUB,
    /// m/44'/60'/0'), from which deposit addresses are derived.
    pub wallet_xpub: Option<String>,
    /// The deposit provider's webhook signing secret
    /// (DEPOSIT_WEBHOOK_SECRET); without it the webhook is off.
    pub deposit_webhook_secret: Option<Secret>,
    /// Confirmations a transfer needs before it is credited
    /// (MIN_CONFIRMATIONS).
    pub min_confirmations: u32,
    /// The chain and token contract deposits must come on (DEPOSIT_CHAIN,
    /// DEPOSIT_TOKEN).
    pub deposit_chain: String,
    pub deposit_token: Address,
    /// Who sends withdrawals (CHAIN_SENDER).
    pub sender: ChainSenderKind,
    /// Where deposits are learned of (DEPOSIT_SOURCE).
    pub deposit_source: DepositSource,
    pub evm: Evm,
    pub sending: Sending,
    /// A block explorer's transaction page, `{tx}` standing for the hash
    /// (EXPLORER_TX_URL); unset: no links, no outside host named.
    pub explorer_tx_url: Option<String>,
}

impl Chain {
    /// In `production` withdrawals are sent by hand unless CHAIN_SENDER
    /// says otherwise.
    pub fn from_reader(r: &mut Reader, production: bool) -> Result<Chain, ConfigError> {
        Ok(Chain {
            wallet_xpub: r.optional("WALLET_XPUB", |xpub| {
                DepositWallet::from_xpub(xpub)
                    .map(|_| xpub.to_string())
                    .map_err(|e| e.to_string())
            })?,
            deposit_webhook_secret: r.secret("DEPOSIT_WEBHOOK_SECRET", at_least_16_characters)?,
            min_confirmations: r.number("MIN_CONFIRMATIONS", 12u32, 0..=10_000)?,
            deposit_chain: r.parse("DEPOSIT_CHAIN", "ethereum", chain_name)?,
            deposit_token: r.parse("DEPOSIT_TOKEN", USDC_ETHEREUM, |text| {
                Address::parse(text).map_err(|e| e.to_string())
            })?,
            sender: r.choice(
                "CHAIN_SENDER",
                if production { "manual" } else { "mock" },
                &[
                    ("mock", ChainSenderKind::Mock),
                    ("manual", ChainSenderKind::Manual),
                    ("evm", ChainSenderKind::Evm),
                ],
            )?,
            deposit_source: r.choice(
                "DEPOSIT_SOURCE",
                "webhook",
                &[
                    ("webhook", DepositSource::Webhook),
                    ("evm", DepositSource::Evm),
                ],
            )?,
            evm: Evm::from_reader(r)?,
            sending: Sending::from_reader(r, production)?,
            explorer_tx_url: r.optional("EXPLORER_TX_URL", |text| {
                let url_like = text.starts_with("https://") || text.starts_with("http://");
                if url_like && text.contains("{tx}") {
                    Ok(text.to_string())
                } else {
                    Err("must be an http(s) URL with {tx} where the transaction hash goes, such as https://etherscan.io/tx/{tx}".to_string())
                }
            })?,
        })
        .and_then(|chain| chain.checked())
    }

    /// The watcher and the sender need a node and the chain it must be
    /// on; the sender its key, whose address is the hot wallet's.
    fn checked(mut self) -> Result<Chain, ConfigError> {
        if self.sender == ChainSenderKind::Evm {
            let Some(key) = &self.sending.key else {
                return Err(ConfigError::new(
                    "HOT_WALLET_KEY_FILE",
                    "",
                    "CHAIN_SENDER=evm needs the hot wallet's key: HOT_WALLET_KEY_FILE names a file with the key \
                     in hex, or a JSON keystore (with HOT_WALLET_PASSWORD_FILE)",
                ));
            };
            let address = Address::from_bytes(key.address().into_array());
            match self.evm.hot_wallet {
                Some(given) if given != address => {
                    return Err(ConfigError::new(
                        "HOT_WALLET_ADDRESS",
                        &given.to_checksum(),
                        format!(
                            "is not the address of the key in HOT_WALLET_KEY_FILE ({}); leave it unset or make them agree",
                            address.to_checksum()
                        ),
                    ))
                }
                _ => self.evm.hot_wallet = Some(address),
            }
        }
        let needs_node = match (self.deposit_source, self.sender) {
            (DepositSource::Evm, _) => Some("DEPOSIT_SOURCE=evm"),
            (_, ChainSenderKind::Evm) => Some("CHAIN_SENDER=evm"),
            _ => None,
        };
        if let Some(who) = needs_node {
            if self.evm.rpc_url.is_none() {
                return Err(ConfigError::new(
                    "EVM_RPC_URL",
                    "",
                    format!("{who} needs the node's JSON-RPC URL (EVM_RPC_URL)"),
                ));
            }
            if self.evm.chain_id.is_none() {
                return Err(ConfigError::new(
                    "EVM_CHAIN_ID",
                    "",
                    format!("{who} needs the chain id the node must be on (EVM_CHAIN_ID: 1 for Ethereum, 31337 for anvil)"),
                ));
            }
        }
        Ok(self)
    }
}

/// How the hot wallet sends withdrawals (CHAIN_SENDER=evm).
#[derive(Clone, Debug)]
pub struct Sending {
    /// The hot wallet's key, read from HOT_WALLET_KEY_FILE (with
    /// HOT_WALLET_PASSWORD_FILE for a keystore); production refuses a
    /// file others may read.
    pub key: Option<HotKey>,
    /// Below this much ETH for gas the sender holds (MIN_GAS_BALANCE, in
    /// ETH), in wei.
    pub min_gas_balance: u128,
    /// A transaction not mined after this long is replaced with higher
    /// fees (WITHDRAWAL_STUCK_AFTER_S).
    pub stuck_after: Duration,
    /// The highest fee per gas ever offered (MAX_FEE_GWEI), in wei.
    pub max_fee_per_gas: u128,
    /// At most this many withdrawals are signed per step
    /// (WITHDRAWAL_BATCH_MAX).
    pub batch_max: u32,
    /// Where `updown sweep` reads the deposit keys' seed (SWEEP_SEED_FILE:
    /// a BIP-39 mnemonic or an xprv). Only the path: the configuration
    /// never opens it, so `serve` never holds the deposit keys.
    pub sweep_seed_file: Option<PathBuf>,
    /// Deposit addresses holding less are not swept (SWEEP_MIN).
    pub sweep_min: updown_domain::Micros,
}

const GWEI: u128 = 1_000_000_000;

impl Sending {
    fn from_reader(r: &mut Reader, production: bool) -> Result<Sending, ConfigError> {
        let password_file: Option<PathBuf> =
            r.optional("HOT_WALLET_PASSWORD_FILE", |text| Ok(PathBuf::from(text)))?;
        let key = r.optional("HOT_WALLET_KEY_FILE", |text| {
            HotKey::load(Path::new(text), password_file.as_deref(), production)
        })?;
        Ok(Sending {
            key,
            min_gas_balance: r.parse("MIN_GAS_BALANCE", "0.005", |text| {
                alloy::primitives::utils::parse_ether(text)
                    .ok()
                    .and_then(|wei| u128::try_from(wei).ok())
                    .ok_or_else(|| "must be an amount of ETH such as 0.005".to_string())
            })?,
            stuck_after: r.duration("WITHDRAWAL_STUCK_AFTER_S", Unit::Seconds, 180, 5..=86_400)?,
            max_fee_per_gas: u128::from(r.number("MAX_FEE_GWEI", 300u64, 1..=100_000)?) * GWEI,
            batch_max: r.number("WITHDRAWAL_BATCH_MAX", 25u32, 1..=1_000)?,
            sweep_seed_file: r.optional("SWEEP_SEED_FILE", |text| Ok(PathBuf::from(text)))?,
            sweep_min: r.amount("SWEEP_MIN", "10USDC")?,
        })
    }
}

fn chain_name(text: &str) -> Result<String, String> {
    let name_like = text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_like {
        return Err(
            "must be a chain name such as ethereum (lower-case letters, digits, '-')".into(),
        );
    }
    Ok(text.to_string())
}
