//! Deposit addresses, derived as an HD wallet would (BIP-32/BIP-44) from
//! the operator's account-level extended public key: the user with
//! sequence number `i` gets the external child `0/i`, that is
//! `m/44'/60'/0'/0/i`, as an EIP-55 Ethereum address. Only public keys
//! are held: whoever has the matching private key can spend the deposits,
//! nobody else, and the service never could.

use std::str::FromStr;

use bip32::{ChildNumber, DerivationPath, XPrv, XPub};
use sha3::{Digest, Keccak256};
use thiserror::Error;

use crate::address::Address;

/// The BIP-44 account path for Ether (coin type 60), account 0.
pub const ACCOUNT_PATH: &str = "m/44'/60'/0'";

/// The public development mnemonic (Hardhat's and Foundry's): its keys are
/// known to everyone, so funds sent to its addresses are anyone's.
pub const DEVELOPMENT_MNEMONIC: &str =
    "test test test test test test test test test test test junk";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WalletError {
    #[error("WALLET_XPUB is not a valid BIP-32 extended public key: {0}")]
    BadXpub(String),
    #[error(
        "WALLET_XPUB must be an account-level key (depth 3, for m/44'/60'/0'); this one has depth {0}"
    )]
    NotAccountLevel(u8),
    #[error("user sequence {0} is beyond the 2^31 non-hardened children of the account")]
    IndexTooLarge(i64),
    #[error("SWEEP_SEED_FILE holds no valid BIP-32 extended private key: {0}")]
    BadXprv(String),
    #[error("SWEEP_SEED_FILE's xprv must be the master key (depth 0) or the account m/44'/60'/0' (depth 3); this one has depth {0}")]
    NotMasterOrAccount(u8),
    #[error("SWEEP_SEED_FILE holds {0} words: a BIP-39 mnemonic has 12, 15, 18, 21 or 24")]
    BadMnemonic(usize),
    #[error("key derivation failed: {0}")]
    Derivation(String),
}

/// Derives deposit addresses; holds only the account's public key.
#[derive(Clone)]
pub struct DepositWallet {
    /// The external chain, m/44'/60'/0'/0.
    external: XPub,
}

impl DepositWallet {
    /// From the operator's account-level `xpub...` (m/44'/60'/0').
    pub fn from_xpub(xpub: &str) -> Result<DepositWallet, WalletError> {
        let account =
            XPub::from_str(xpub.trim()).map_err(|e| WalletError::BadXpub(e.to_string()))?;
        let depth = account.attrs().depth;
        if depth != 3 {
            return Err(WalletError::NotAccountLevel(depth));
        }
        Self::from_account(&account)
    }

    /// From a BIP-39 mnemonic (no passphrase): the private key is used
    /// once to reach the account and dropped. For development only: the
    /// phrase's word list and checksum are not checked.
    pub fn from_mnemonic(phrase: &str) -> Result<DepositWallet, WalletError> {
        let path: DerivationPath = ACCOUNT_PATH.parse().expect("a valid path");
        let account = XPrv::derive_from_path(bip39_seed(phrase), &path)
            .map_err(|e| WalletError::Derivation(e.to_string()))?;
        Self::from_account(&account.public_key())
    }

    /// The account-level `xpub` (m/44'/60'/0') of a BIP-39 mnemonic: what
    /// WALLET_XPUB must be for SWEEP_SEED_FILE's mnemonic.
    pub fn account_xpub(phrase: &str) -> Result<String, WalletError> {
        let path: DerivationPath = ACCOUNT_PATH.parse().expect("a valid path");
        let account = XPrv::derive_from_path(bip39_seed(phrase), &path)
            .map_err(|e| WalletError::Derivation(e.to_string()))?;
        Ok(account.public_key().to_string(bip32::Prefix::XPUB))
    }

    fn from_account(account: &XPub) -> Result<DepositWallet, WalletError> {
        let external = account
            .derive_child(ChildNumber::new(0, false).expect("0 is a valid child"))
            .map_err(|e| WalletError::Derivation(e.to_string()))?;
        Ok(DepositWallet { external })
    }

    /// The account-level key as `xpub...`, to show the operator what is in use.
    pub fn describe(&self) -> String {
        format!(
            "external chain key {}",
            self.external.to_string(bip32::Prefix::XPUB)
        )
    }

    /// The deposit address of the user with sequence number `index`, and
    /// its derivation path.
    pub fn address(&self, index: i64) -> Result<(Address, String), WalletError> {
        let key = self
            .external
            .derive_child(external_child(index)?)
            .map_err(|e| WalletError::Derivation(e.to_string()))?;
        Ok((
            ethereum_address(key.public_key()),
            format!("{ACCOUNT_PATH}/0/{index}"),
        ))
    }
}

/// The deposit addresses' private keys, for the sweep alone (`updown
/// sweep`, from SWEEP_SEED_FILE): the operator's BIP-39 mnemonic, or an
/// `xprv` of the master (depth 0) or of the account m/44'/60'/0' (depth
/// 3). `serve` never builds one. Its Debug shows nothing of the key.
#[derive(Clone)]
pub struct DepositKeys {
    /// The external chain, m/44'/60'/0'/0.
    external: XPrv,
}

impl std::fmt::Debug for DepositKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DepositKeys(..)")
    }
}

impl DepositKeys {
    /// From the text of a seed file: a mnemonic's words, or an `xprv`.
    pub fn from_seed_text(text: &str) -> Result<DepositKeys, WalletError> {
        let text = text.trim();
        let account = if text.starts_with("xprv") {
            let key = XPrv::from_str(text).map_err(|e| WalletError::BadXprv(e.to_string()))?;
            match key.attrs().depth {
                3 => key,
                0 => derive_path(&key, "m/44'/60'/0'")?,
                depth => return Err(WalletError::NotMasterOrAccount(depth)),
            }
        } else {
            let words = text.split_whitespace().count();
            if ![12, 15, 18, 21, 24].contains(&words) {
                return Err(WalletError::BadMnemonic(words));
            }
            let path: DerivationPath = ACCOUNT_PATH.parse().expect("a valid path");
            XPrv::derive_from_path(bip39_seed(text), &path)
                .map_err(|e| WalletError::Derivation(e.to_string()))?
        };
        let external = account
            .derive_child(ChildNumber::new(0, false).expect("0 is a valid child"))
            .map_err(|e| WalletError::Derivation(e.to_string()))?;
        Ok(DepositKeys { external })
    }

    /// The private key of the deposit address with sequence number
    /// `index`, and that address.
    pub fn key(&self, index: i64) -> Result<([u8; 32], Address), WalletError> {
        let key = self
            .external
            .derive_child(external_child(index)?)
            .map_err(|e| WalletError::Derivation(e.to_string()))?;
        let address = ethereum_address(key.public_key().public_key());
        Ok((key.to_bytes(), address))
    }
}

/// The non-hardened child `index` (a user's sequence number).
fn external_child(index: i64) -> Result<ChildNumber, WalletError> {
    u32::try_from(index)
        .ok()
        .and_then(|i| ChildNumber::new(i, false).ok())
        .ok_or(WalletError::IndexTooLarge(index))
}

/// `key`'s descendant along `path` (each step from `key` down).
fn derive_path(key: &XPrv, path: &str) -> Result<XPrv, WalletError> {
    let path: DerivationPath = path.parse().expect("a valid path");
    let derived = path.iter().try_fold(key.clone(), |key, child| {
        key.derive_child(child)
            .map_err(|e| WalletError::Derivation(e.to_string()))
    });
    derived
}

/// BIP-39's seed: PBKDF2-HMAC-SHA512 over the phrase, salt "mnemonic",
/// 2048 rounds (an ASCII phrase is its own NFKD form).
fn bip39_seed(phrase: &str) -> [u8; 64] {
    let words: Vec<&str> = phrase.split_whitespace().collect();
    let mut seed = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(words.join(" ").as_bytes(), b"mnemonic", 2048, &mut seed);
    seed
}

/// The last 20 bytes of the Keccak-256 of the uncompressed public key
/// (without its 0x04 tag).
fn ethereum_address(key: &bip32::secp256k1::ecdsa::VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    let hash = Keccak256::digest(&point.as_bytes()[1..]);
    let mut bytes = [0u8; 20];
    bytes.copy_from_slice(&hash[12..]);
    Address::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BIP-32 test vector 1 (seed 000102030405060708090a0b0c0d0e0f): public
    /// derivation from an extended public key must give the published
    /// extended public keys.
    #[test]
    fn public_derivation_matches_the_bip32_test_vectors() {
        let cases = [
            // m/0H  ->  m/0H/1
            (
                "xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw",
                1,
                "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ",
            ),
            // m/0H/1/2H/2  ->  m/0H/1/2H/2/1000000000
            (
                "xpub6FHa3pjLCk84BayeJxFW2SP4XRrFd1JYnxeLeU8EqN3vDfZmbqBqaGJAyiLjTAwm6ZLRQUMv1ZACTj37sR62cfN7fe5JnJ7dh8zL4fiyLHV",
                1_000_000_000,
                "xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy",
            ),
        ];
        for (parent, index, expected) in cases {
            let parent = XPub::from_str(parent).unwrap();
            let child = parent
                .derive_child(ChildNumber::new(index, false).unwrap())
                .unwrap();
            assert_eq!(child.to_string(bip32::Prefix::XPUB), expected);
        }
    }

    /// The development mnemonic's first accounts, as Hardhat, Foundry and
    /// MetaMask show them for m/44'/60'/0'/0/i.
    #[test]
    fn the_development_mnemonic_gives_the_well_known_ethereum_accounts() {
        let wallet = DepositWallet::from_mnemonic(DEVELOPMENT_MNEMONIC).unwrap();
        let expected = [
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        ];
        for (i, address) in expected.iter().enumerate() {
            let (derived, path) = wallet.address(i as i64).unwrap();
            assert_eq!(derived.to_checksum(), *address);
            assert_eq!(path, format!("m/44'/60'/0'/0/{i}"));
        }
    }

    /// The same account given as an xpub derives the same addresses: the
    /// service needs no private key.
    #[test]
    fn an_account_xpub_derives_what_its_private_key_would() {
        let seed = bip39_seed(DEVELOPMENT_MNEMONIC);
        let account = XPrv::derive_from_path(seed, &ACCOUNT_PATH.parse().unwrap()).unwrap();
        let xpub = account.public_key().to_string(bip32::Prefix::XPUB);
        let from_xpub = DepositWallet::from_xpub(&xpub).unwrap();
        let from_mnemonic = DepositWallet::from_mnemonic(DEVELOPMENT_MNEMONIC).unwrap();
        for i in [0, 1, 7, 1_000_000] {
            assert_eq!(
                from_xpub.address(i).unwrap(),
                from_mnemonic.address(i).unwrap()
            );
        }
    }

    /// BIP-39's own test vector (passphrase "TREZOR" there; here none, so
    /// the seed of "abandon ... about" is the published no-passphrase one).
    #[test]
    fn the_seed_follows_bip39() {
        let phrase = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
        let seed = hex::encode(bip39_seed(phrase));
        assert_eq!(
            seed,
            "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc19a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4"
        );
    }

    #[test]
    fn bad_keys_and_indexes_are_refused() {
        assert!(matches!(
            DepositWallet::from_xpub("xpub-nonsense"),
            Err(WalletError::BadXpub(_))
        ));
        // A master-level key (depth 0) is not an account.
        let master = "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8";
        assert_eq!(
            DepositWallet::from_xpub(master).err(),
            Some(WalletError::NotAccountLevel(0))
        );
        let wallet = DepositWallet::from_mnemonic(DEVELOPMENT_MNEMONIC).unwrap();
        assert!(matches!(
            wallet.address(-1),
            Err(WalletError::IndexTooLarge(-1))
        ));
        assert!(matches!(
            wallet.address(1 << 31),
            Err(WalletError::IndexTooLarge(_))
        ));
    }

    /// The sweep's private keys belong to the addresses the public side
    /// derives, whether the seed is a mnemonic or an xprv.
    #[test]
    fn deposit_keys_match_the_deposit_addresses_from_any_seed_form() {
        let wallet = DepositWallet::from_mnemonic(DEVELOPMENT_MNEMONIC).unwrap();
        let seed = bip39_seed(DEVELOPMENT_MNEMONIC);
        let master = XPrv::new(seed).unwrap();
        let account = XPrv::derive_from_path(seed, &ACCOUNT_PATH.parse().unwrap()).unwrap();
        let forms = [
            DEVELOPMENT_MNEMONIC.to_string(),
            format!("{}\n", master.to_string(bip32::Prefix::XPRV).as_str()),
            account.to_string(bip32::Prefix::XPRV).to_string(),
        ];
        for form in forms {
            let keys = DepositKeys::from_seed_text(&form).unwrap();
            for i in [0, 1, 19] {
                let (secret, address) = keys.key(i).unwrap();
                assert_eq!(address, wallet.address(i).unwrap().0);
                assert_ne!(secret, [0u8; 32]);
            }
        }
        // Anvil's well-known first key is the mnemonic's index 0.
        let (secret, _) = DepositKeys::from_seed_text(DEVELOPMENT_MNEMONIC)
            .unwrap()
            .key(0)
            .unwrap();
        assert_eq!(
            hex::encode(secret),
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        );
        assert_eq!(
            format!(
                "{:?}",
                DepositKeys::from_seed_text(DEVELOPMENT_MNEMONIC).unwrap()
            ),
            "DepositKeys(..)"
        );
    }

    #[test]
    fn a_bad_seed_is_refused_with_its_reason() {
        assert_eq!(
            DepositKeys::from_seed_text("test test junk").err(),
            Some(WalletError::BadMnemonic(3))
        );
        assert!(matches!(
            DepositKeys::from_seed_text("xprv-nonsense"),
            Err(WalletError::BadXprv(_))
        ));
        let seed = bip39_seed(DEVELOPMENT_MNEMONIC);
        let depth1 = XPrv::derive_from_path(seed, &"m/44'".parse().unwrap()).unwrap();
        assert_eq!(
            DepositKeys::from_seed_text(depth1.to_string(bip32::Prefix::XPRV).as_str()).err(),
            Some(WalletError::NotMasterOrAccount(1))
        );
        let keys = DepositKeys::from_seed_text(DEVELOPMENT_MNEMONIC).unwrap();
        assert!(matches!(keys.key(-1), Err(WalletError::IndexTooLarge(-1))));
    }
}
