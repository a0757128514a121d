//! The part of the configuration about the chain: the deposit wallet,
//! which transfers count as deposits, and who sends withdrawals.

use updown_domain::address::Address;
use updown_domain::wallet::DepositWallet;

use super::reader::{ConfigError, Reader};
use super::service::at_least_16_characters;
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
                ],
            )?,
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
