//! A real local chain for the chain tests: anvil (Foundry's node, from
//! npm: `scripts/chain-tools`) on a port of its own, with the dev token
//! deployed. Required when `TEST_ANVIL` names its binary (CI); otherwise
//! the one `scripts/chain-tools` installed is used if present, and a story
//! without either says it skipped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use serde_json::{json, Value};
use updown_app::chain::evm::EvmRpc;

/// anvil's first ten accounts (from its default mnemonic), unlocked.
pub const ACCOUNTS: [&str; 4] = [
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b476c8b0EA70a5",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
];

/// The hot wallet in the stories: no key derived from the development
/// mnemonic (whose addresses anvil's accounts and the deposit addresses
/// share), so it sends only when impersonated.
pub const HOT_WALLET: &str = "0x4242424242424242424242424242424242424242";

pub struct Anvil {
    child: Child,
    pub url: String,
    pub rpc: EvmRpc,
    http: reqwest::Client,
}

fn binary(story: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var("TEST_ANVIL") {
        if !path.is_empty() {
            return Some(PathBuf::from(path));
        }
    }
    let installed = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../chain/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    if installed.exists() {
        return Some(installed);
    }
    eprintln!("skipped: {story} (no anvil: run scripts/chain-tools, or set TEST_ANVIL)");
    None
}

impl Anvil {
    /// A fresh chain, or `None` (the story skips) without anvil.
    pub async fn start(story: &str) -> Option<Anvil> {
        let binary = binary(story)?;
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = Command::new(&binary)
            .args(["--port", &port.to_string(), "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let url = format!("http://127.0.0.1:{port}");
        updown_app::tls::install_crypto();
        let anvil = Anvil {
            child,
            rpc: EvmRpc::connect(&url, Duration::from_secs(10)).unwrap(),
            url,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        for _ in 0..200 {
            if anvil.rpc.head().await.is_ok() {
                return Some(anvil);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("anvil did not answer on {}", anvil.url);
    }

    /// A raw JSON-RPC call; its result (panics on an error answer).
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let answer: Value = self
            .http
            .post(&self.url)
            .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    pub async fn mine(&self, blocks: u64) {
        self.call("anvil_mine", json!([format!("{blocks:#x}")]))
            .await;
    }

    pub async fn head(&self) -> u64 {
        self.rpc.head().await.unwrap()
    }

    /// Replaces the last `depth` blocks (the height stays); `txs` are
    /// (transaction, offset) put into the new blocks.
    pub async fn reorg(&self, depth: u64, txs: Value) {
        self.call("anvil_reorg", json!([depth, txs])).await;
    }

    /// Lets `address` send without its key, with ETH for gas.
    pub async fn impersonate(&self, address: &str) {
        self.call("anvil_impersonateAccount", json!([address]))
            .await;
        self.call("anvil_setBalance", json!([address, "0xde0b6b3a7640000"]))
            .await;
    }

    pub async fn deploy_token(&self) -> Address {
        self.rpc.deploy_dev_token().await.unwrap()
    }

    /// Mints `micros` of `token` to `to`, in a block of its own.
    pub async fn mint(&self, token: Address, to: &str, micros: u64) {
        self.rpc
            .mint(token, to.parse().unwrap(), U256::from(micros))
            .await
            .unwrap();
    }

    /// The mint as a transaction object, for `reorg` to put back.
    pub fn mint_tx(token: Address, to: &str, micros: u64) -> Value {
        use alloy::sol_types::SolCall;
        let call = updown_app::chain::evm::mintCall {
            to: to.parse().unwrap(),
            amount: U256::from(micros),
        };
        json!({
            "from": ACCOUNTS[0],
            "to": token.to_checksum(None),
            "data": format!("0x{}", alloy::hex::encode(call.abi_encode())),
            "gas": "0x30000",
        })
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hot wallet with a key of its own (not from the development
/// mnemonic), in a key file as CHAIN_SENDER=evm reads it.
pub struct HotKeyFile {
    pub path: PathBuf,
    pub address: Address,
    folder: PathBuf,
}

impl HotKeyFile {
    /// Key `seed` repeated 32 times, written to a private file.
    pub fn new(seed: u8) -> HotKeyFile {
        use std::os::unix::fs::PermissionsExt;
        let folder = std::env::temp_dir().join(format!(
            "updown-hot-{seed}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join("hot.key");
        std::fs::write(&path, format!("0x{}\n", hex::encode([seed; 32]))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = updown_app::hot_key::HotKey::load(&path, None, true).unwrap();
        HotKeyFile {
            path,
            address: key.address(),
            folder,
        }
    }

    pub fn checksum(&self) -> String {
        self.address.to_checksum(None)
    }
}

impl Drop for HotKeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

impl Anvil {
    /// Gives `address` 1 ETH for gas.
    pub async fn fund_gas(&self, address: Address) {
        self.call(
            "anvil_setBalance",
            json!([address.to_checksum(None), "0xde0b6b3a7640000"]),
        )
        .await;
    }

    /// Waits until `token.balanceOf(owner)` is `expected` (automine
    /// mines a broadcast transaction a moment after it is accepted).
    pub async fn await_token_balance(&self, token: Address, owner: Address, expected: u64) {
        for _ in 0..400 {
            if self.token_balance(token, owner).await == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(self.token_balance(token, owner).await, expected);
    }

    /// `token.balanceOf(owner)` at the head.
    pub async fn token_balance(&self, token: Address, owner: Address) -> u64 {
        let head = self.head().await;
        let balances = self.rpc.balances(token, &[owner], head).await.unwrap();
        balances[0].to::<u64>()
    }
}
