//! The hot wallet's key: read once from a file (HOT_WALLET_KEY_FILE: the
//! private key in hex, or an encrypted JSON keystore opened with the
//! password in HOT_WALLET_PASSWORD_FILE), never from the environment, and
//! never shown (`Debug` prints only its address). Its own module, below
//! both the configuration, which loads it, and the chain adapter, which
//! signs with it (`chain/hot_wallet.rs`).

use std::path::Path;
use std::sync::Arc;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;

#[derive(Clone)]
pub struct HotKey(Arc<PrivateKeySigner>);

impl std::fmt::Debug for HotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HotKey({})", self.address())
    }
}

impl HotKey {
    /// Reads the key from `key_file`: hex (with or without 0x), or a JSON
    /// keystore when `password_file` is given. With `strict` (production)
    /// a file others may read is refused.
    pub fn load(
        key_file: &Path,
        password_file: Option<&Path>,
        strict: bool,
    ) -> Result<HotKey, String> {
        if strict {
            private_file(key_file)?;
            if let Some(password) = password_file {
                private_file(password)?;
            }
        }
        let signer = match password_file {
            Some(password_file) => {
                let password = std::fs::read(password_file)
                    .map_err(|e| format!("{}: {e}", password_file.display()))?;
                let password = trim_line_end(&password);
                PrivateKeySigner::decrypt_keystore(key_file, password).map_err(|e| {
                    format!(
                        "{} does not open as a keystore with that password: {e}",
                        key_file.display()
                    )
                })?
            }
            None => {
                let text = std::fs::read_to_string(key_file)
                    .map_err(|e| format!("{}: {e}", key_file.display()))?;
                let hex = text.trim();
                let hex = hex.strip_prefix("0x").unwrap_or(hex);
                let bytes = hex::decode(hex)
                    .ok()
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| {
                        format!(
                            "{} must hold a private key: 64 hexadecimal digits (or a keystore, with HOT_WALLET_PASSWORD_FILE)",
                            key_file.display()
                        )
                    })?;
                PrivateKeySigner::from_slice(&bytes)
                    .map_err(|_| format!("{} holds no valid secp256k1 key", key_file.display()))?
            }
        };
        Ok(HotKey(Arc::new(signer)))
    }

    /// A key from its bytes (tests, the dev tooling).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<HotKey, String> {
        PrivateKeySigner::from_slice(bytes)
            .map(|s| HotKey(Arc::new(s)))
            .map_err(|e| e.to_string())
    }

    pub fn address(&self) -> Address {
        self.0.address()
    }

    pub(crate) fn signer(&self) -> &PrivateKeySigner {
        &self.0
    }
}

/// The deposit addresses' keys, from SWEEP_SEED_FILE (a mnemonic or an
/// xprv); with `strict` (production) a file others may read is refused.
/// Only `updown sweep` calls it.
pub fn load_deposit_keys(
    seed_file: &Path,
    strict: bool,
) -> Result<updown_domain::wallet::DepositKeys, String> {
    if strict {
        private_file(seed_file)?;
    }
    let text = std::fs::read_to_string(seed_file)
        .map_err(|e| format!("SWEEP_SEED_FILE {}: {e}", seed_file.display()))?;
    updown_domain::wallet::DepositKeys::from_seed_text(&text).map_err(|e| e.to_string())
}

/// A password file ends with the newline an editor adds; it is not part
/// of the password.
fn trim_line_end(bytes: &[u8]) -> &[u8] {
    let mut end = bytes.len();
    while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &bytes[..end]
}

/// Refuses a file that its group or others may read or write.
fn private_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} may be read by others (mode {:o}); UPDOWN_ENV=production needs it private: chmod 600",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// anvil's first dev key (public knowledge) and its address.
    const ANVIL_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    const ANVIL_ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

    fn folder(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("updown-hotkey-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_hex_key_file_loads_and_a_shared_one_is_refused_when_strict() {
        let dir = folder("hex");
        let file = dir.join("key");
        std::fs::write(&file, format!("{ANVIL_KEY}\n")).unwrap();
        chmod(&file, 0o644);
        let key = HotKey::load(&file, None, false).unwrap();
        assert_eq!(key.address().to_checksum(None), ANVIL_ADDRESS);
        assert!(!format!("{key:?}").contains("ac0974"), "{key:?}");
        let refused = HotKey::load(&file, None, true).unwrap_err();
        assert!(refused.contains("chmod 600"), "{refused}");
        chmod(&file, 0o600);
        assert!(HotKey::load(&file, None, true).is_ok());
        std::fs::write(&file, "0x1234").unwrap();
        let bad = HotKey::load(&file, None, false).unwrap_err();
        assert!(bad.contains("64 hexadecimal digits"), "{bad}");
        assert!(
            !bad.contains("1234"),
            "the file's text is not echoed: {bad}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_keystore_opens_with_its_password_only() {
        let dir = folder("keystore");
        let secret = hex::decode(&ANVIL_KEY[2..]).unwrap();
        let mut rng = rand::thread_rng();
        PrivateKeySigner::encrypt_keystore(&dir, &mut rng, &secret, "s3cret", Some("hot.json"))
            .unwrap();
        let password = dir.join("password");
        std::fs::write(&password, "s3cret\n").unwrap();
        let key = HotKey::load(&dir.join("hot.json"), Some(&password), false).unwrap();
        assert_eq!(key.address().to_checksum(None), ANVIL_ADDRESS);
        std::fs::write(&password, "wrong").unwrap();
        assert!(HotKey::load(&dir.join("hot.json"), Some(&password), false).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
