//! Deposit addresses: derived from the operator's xpub (WALLET_XPUB) by
//! the user's sequence number, recorded once, the user's forever.

use updown_domain::wallet::{DepositWallet, DEVELOPMENT_MNEMONIC};
use updown_store::User;

use super::App;
use crate::error::{AppError, AppResult};

impl App {
    /// The configured key, or in development the public test mnemonic
    /// (with a loud warning: anyone can spend what is sent there).
    /// Production never falls back to the mnemonic.
    pub fn deposit_wallet(&self) -> AppResult<&DepositWallet> {
        if let Some(wallet) = self.wallet.get() {
            return Ok(wallet);
        }
        let wallet = match &self.config.chain.wallet_xpub {
            Some(xpub) => DepositWallet::from_xpub(xpub),
            // `serve` refuses production without one before it starts
            // (config::refuse_unsafe_production); this keeps any other
            // way in from falling back to the public mnemonic.
            None if self.config.production => {
                return Err(AppError::Invalid(
                    "UPDOWN_ENV=production needs WALLET_XPUB (the account-level xpub for m/44'/60'/0')".into(),
                ))
            }
            None => {
                tracing::warn!(
                    "WALLET_XPUB is not set: deposit addresses come from the PUBLIC test mnemonic \
                     \"{DEVELOPMENT_MNEMONIC}\"; anyone can take funds sent to them. Development only."
                );
                DepositWallet::from_mnemonic(DEVELOPMENT_MNEMONIC)
            }
        }
        .map_err(|e| AppError::Invalid(e.to_string()))?;
        Ok(self.wallet.get_or_init(|| wallet))
    }

    /// The user's deposit address and its derivation path; derived and
    /// recorded on first request, the same ever after.
    pub async fn deposit_address(&self, user: &User) -> AppResult<(String, String)> {
        let (derived, path) = self
            .deposit_wallet()?
            .address(user.sequence)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        let derived = derived.to_checksum();
        let recorded = self.store.assign_deposit_address(user.id, &derived).await?;
        if recorded != derived {
            tracing::warn!(user = %user.id, recorded, derived, "the deposit key changed since this address was recorded; the recorded one stays");
        } else {
            tracing::info!(event = "deposit_address", user = %user.id, address = %recorded, path);
        }
        Ok((recorded, path))
    }

    /// The user a deposit address was given to.
    pub async fn user_by_deposit_address(&self, address: &str) -> AppResult<User> {
        let address = parse_address(address)?.to_checksum();
        self.store
            .user_by_deposit_address(&address)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no user has the deposit address {address}")))
    }
}

/// An address: malformed is invalid input; well-formed with a failing
/// EIP-55 checksum is refused (a mistyped letter).
pub fn parse_address(text: &str) -> AppResult<updown_domain::address::Address> {
    use updown_domain::address::{Address, AddressError};
    if text.trim() != text {
        return Err(AppError::Invalid(format!(
            "address {text:?} must be 0x followed by 40 hexadecimal digits, nothing around it"
        )));
    }
    Address::parse(text).map_err(|e| match e {
        AddressError::BadChecksum(_) => AppError::Rejected(e.to_string()),
        AddressError::Malformed(_) => AppError::Invalid(e.to_string()),
    })
}
