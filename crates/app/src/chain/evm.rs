//! An EVM node over JSON-RPC, through alloy: the calls the deposit watcher,
//! custody reconciliation and the dev tooling make, each failure sorted
//! into a kind (timeout, rate limit, server error, range too big, garbage,
//! refusal) so callers back off, shrink their range, or give up as it
//! deserves.
//!
//! Only what the node gives with its block hash is used: a log without
//! its block hash, transaction hash or index is garbage, never a credit.
//! Amounts are read as 256-bit integers and never through floating point.

use std::time::Duration;

use alloy::primitives::{Address, Bytes, B256, U256, U64};
use alloy::providers::{Provider, ProviderBuilder, RootProvider};
use alloy::rpc::client::BatchRequest;
use alloy::rpc::types::{BlockNumberOrTag, Filter, TransactionRequest};
use alloy::sol_types::{SolCall, SolEvent};
use alloy::transports::{RpcError, TransportError, TransportErrorKind};
use serde::Deserialize;

alloy::sol! {
    /// ERC-20's transfer event.
    event Transfer(address indexed from, address indexed to, uint256 value);
    function balanceOf(address owner) external view returns (uint256);
    function transfer(address to, uint256 amount) external returns (bool);
    /// The dev token's open mint (chain/contracts/DevUSDC.sol).
    function mint(address to, uint256 amount) external;
}

alloy::sol! {
    /// ERC-20's calls, for the hot wallet's transactions.
    interface IERC20 {
        function transfer(address to, uint256 amount) external returns (bool);
        function transferFrom(address from, address to, uint256 amount) external returns (bool);
        /// EIP-2612.
        function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external;
        function nonces(address owner) external view returns (uint256);
        function DOMAIN_SEPARATOR() external view returns (bytes32);
    }

    /// EIP-2612's signed message.
    struct Permit {
        address owner;
        address spender;
        uint256 value;
        uint256 nonce;
        uint256 deadline;
    }
}

/// The dev token's creation bytecode (chain/artifacts/DevUSDC.bin, built
/// by chain/build-token and checked against its source in CI).
pub const DEV_TOKEN_BYTECODE: &str = include_str!("../../../../chain/artifacts/DevUSDC.bin");

/// Balance reads per batched JSON-RPC request.
const BALANCES_PER_BATCH: usize = 500;
/// Batched balance requests in flight at once.
const BATCHES_IN_FLIGHT: usize = 4;

/// How a call to the node failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RpcErrorKind {
    /// No answer in time.
    Timeout,
    /// HTTP 429, or the node's own "rate limit" error.
    RateLimited,
    /// HTTP 5xx.
    Server,
    /// The node refuses the block range of eth_getLogs as too big.
    RangeTooBig,
    /// An answer that is not what the method returns.
    Garbage,
    /// The node could not be reached.
    Unreachable,
    /// The node answered with an error.
    Refused,
    /// The node is behind what the database has already scanned, or
    /// changed its chain while it was read: asked again later.
    Inconsistent,
}

impl RpcErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RpcErrorKind::Timeout => "timeout",
            RpcErrorKind::RateLimited => "rate_limited",
            RpcErrorKind::Server => "server",
            RpcErrorKind::RangeTooBig => "range_too_big",
            RpcErrorKind::Garbage => "garbage",
            RpcErrorKind::Unreachable => "unreachable",
            RpcErrorKind::Refused => "refused",
            RpcErrorKind::Inconsistent => "inconsistent",
        }
    }
}

#[derive(Clone, Debug, thiserror::Error)]
#[error("EVM node: {} ({detail})", kind.as_str())]
pub struct EvmError {
    pub kind: RpcErrorKind,
    pub detail: String,
}

impl EvmError {
    pub fn new(kind: RpcErrorKind, detail: impl Into<String>) -> EvmError {
        EvmError {
            kind,
            detail: detail.into(),
        }
    }
}

pub type EvmResult<T> = Result<T, EvmError>;

/// Counted once per failed call, by kind; a node that refuses (a wrong
/// chain, a call it will never take) is the caller's to mend, the rest
/// may pass.
impl From<EvmError> for crate::error::AppError {
    fn from(e: EvmError) -> Self {
        metrics::counter!("updown_chain_rpc_errors_total", "kind" => e.kind.as_str()).increment(1);
        match e.kind {
            RpcErrorKind::Refused => crate::error::AppError::Invalid(e.to_string()),
            _ => crate::error::AppError::Unavailable(e.to_string()),
        }
    }
}

/// The same address, as alloy spells it.
pub fn evm_address(address: &updown_domain::address::Address) -> Address {
    Address::from(address.to_bytes())
}

/// Words in a node's error message that mean "ask for fewer blocks"
/// (geth, Erigon, Alchemy, Infura, QuickNode, Ankr phrase it differently).
const RANGE_WORDS: [&str; 7] = [
    "range",
    "too many",
    "more than",
    "limit exceeded",
    "response size",
    "too large",
    "10000 results",
];

/// Sorts an alloy error into a kind.
fn classify(error: TransportError) -> EvmError {
    let detail = error.to_string();
    let kind = match &error {
        RpcError::ErrorResp(payload) => {
            let message = payload.message.to_ascii_lowercase();
            if payload.code == 429 || message.contains("rate limit") {
                RpcErrorKind::RateLimited
            } else if payload.code == -32005 || RANGE_WORDS.iter().any(|w| message.contains(w)) {
                RpcErrorKind::RangeTooBig
            } else {
                RpcErrorKind::Refused
            }
        }
        RpcError::NullResp | RpcError::DeserError { .. } => RpcErrorKind::Garbage,
        RpcError::Transport(TransportErrorKind::HttpError(http)) => match http.status {
            429 => RpcErrorKind::RateLimited,
            413 => RpcErrorKind::RangeTooBig,
            500..=599 => RpcErrorKind::Server,
            _ => RpcErrorKind::Refused,
        },
        RpcError::Transport(TransportErrorKind::Custom(inner)) => {
            match inner.downcast_ref::<reqwest::Error>() {
                Some(e) if e.is_timeout() => RpcErrorKind::Timeout,
                Some(e) if e.is_decode() || e.is_body() => RpcErrorKind::Garbage,
                _ => RpcErrorKind::Unreachable,
            }
        }
        RpcError::Transport(_) => RpcErrorKind::Unreachable,
        _ => RpcErrorKind::Refused,
    };
    EvmError { kind, detail }
}

/// A block as the watcher keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockHead {
    pub number: U64,
    pub hash: B256,
    pub parent_hash: B256,
}

impl BlockHead {
    pub fn number(&self) -> u64 {
        self.number.to::<u64>()
    }
}

/// One ERC-20 transfer, as the node logged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferLog {
    pub block_number: u64,
    pub block_hash: B256,
    pub tx_hash: B256,
    pub log_index: u64,
    pub to: Address,
    pub value: U256,
}

/// Fees per gas, in wei.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fees {
    pub base_fee: u128,
    pub priority_fee: u128,
}

/// What the node said to a signed transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broadcast {
    Accepted,
    /// It holds it already.
    Known,
    /// Its nonce is used (by it, mined, or by another).
    NonceUsed,
}

/// A mined transaction's receipt: where, and whether it succeeded.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub block_number: U64,
    pub block_hash: B256,
    pub status: U64,
}

impl Receipt {
    pub fn block(&self) -> u64 {
        self.block_number.to::<u64>()
    }

    pub fn success(&self) -> bool {
        self.status == U64::from(1)
    }
}

/// A connection to one node.
#[derive(Clone, Debug)]
pub struct EvmRpc {
    provider: RootProvider,
    /// The chain id the node was seen on, once checked (shared by clones).
    seen_chain: std::sync::Arc<std::sync::OnceLock<u64>>,
}

impl EvmRpc {
    /// A client of the node at `url`, each call limited to `timeout`.
    pub fn connect(url: &str, timeout: Duration) -> EvmResult<EvmRpc> {
        crate::tls::install_crypto();
        let url = reqwest::Url::parse(url)
            .map_err(|e| EvmError::new(RpcErrorKind::Refused, format!("EVM_RPC_URL: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("updown/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EvmError::new(RpcErrorKind::Refused, format!("HTTP client: {e}")))?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_reqwest(client, url);
        Ok(EvmRpc {
            provider,
            seen_chain: Default::default(),
        })
    }

    pub async fn chain_id(&self) -> EvmResult<u64> {
        self.provider.get_chain_id().await.map_err(classify)
    }

    /// The node must be on `chain_id` (EVM_CHAIN_ID): asked once, then
    /// remembered; `use_` says what is refused otherwise.
    pub async fn require_chain(&self, chain_id: u64, use_: &str) -> EvmResult<()> {
        if self.seen_chain.get() == Some(&chain_id) {
            return Ok(());
        }
        let id = self.chain_id().await?;
        if id != chain_id {
            return Err(EvmError::new(
                RpcErrorKind::Refused,
                format!("the node is on chain {id}, not EVM_CHAIN_ID {chain_id}; {use_}"),
            ));
        }
        let _ = self.seen_chain.set(id);
        Ok(())
    }

    pub async fn head(&self) -> EvmResult<u64> {
        self.provider.get_block_number().await.map_err(classify)
    }

    /// Block `number` as the node has it now; `None` if it has none.
    pub async fn block(&self, number: u64) -> EvmResult<Option<BlockHead>> {
        self.provider
            .raw_request::<_, Option<BlockHead>>(
                "eth_getBlockByNumber".into(),
                (BlockNumberOrTag::Number(number), false),
            )
            .await
            .map_err(classify)
    }

    /// Blocks `numbers`, in one batched request; an error if the node
    /// lacks any of them or answers for another number.
    pub async fn blocks(&self, numbers: &[u64]) -> EvmResult<Vec<BlockHead>> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let mut batch = BatchRequest::new(self.provider.client());
        let waiters = numbers
            .iter()
            .map(|n| {
                batch.add_call::<_, Option<BlockHead>>(
                    "eth_getBlockByNumber",
                    &(BlockNumberOrTag::Number(*n), false),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(classify)?;
        batch.send().await.map_err(classify)?;
        let mut blocks = Vec::with_capacity(numbers.len());
        for (waiter, number) in waiters.into_iter().zip(numbers) {
            let block = waiter.await.map_err(classify)?.ok_or_else(|| {
                EvmError::new(
                    RpcErrorKind::Inconsistent,
                    format!("the node has no block {number}"),
                )
            })?;
            if block.number() != *number {
                return Err(EvmError::new(
                    RpcErrorKind::Garbage,
                    format!("asked for block {number}, got block {}", block.number()),
                ));
            }
            blocks.push(block);
        }
        Ok(blocks)
    }

    /// Every `Transfer` of `token` in blocks `from..=to`, in chain order.
    pub async fn transfers(
        &self,
        token: Address,
        from: u64,
        to: u64,
    ) -> EvmResult<Vec<TransferLog>> {
        let filter = Filter::new()
            .address(token)
            .event_signature(Transfer::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to);
        let logs = self.provider.get_logs(&filter).await.map_err(classify)?;
        let mut transfers = Vec::with_capacity(logs.len());
        for log in logs {
            if log.removed {
                continue;
            }
            let garbage = |what: &str| {
                EvmError::new(
                    RpcErrorKind::Garbage,
                    format!("a Transfer log without {what}"),
                )
            };
            let (Some(block_number), Some(block_hash), Some(tx_hash), Some(log_index)) = (
                log.block_number,
                log.block_hash,
                log.transaction_hash,
                log.log_index,
            ) else {
                return Err(garbage("its block number, block hash, tx hash and index"));
            };
            if log.address() != token || !(from..=to).contains(&block_number) {
                return Err(garbage("the token and range asked for"));
            }
            // An indexed `to` in topic 2 and the value in the data; a
            // log of another shape (ERC-721's Transfer has the same
            // signature with three topics and no data) is not a transfer
            // of this token's units.
            let topics = log.topics();
            if topics.len() != 3 || log.data().data.len() != 32 {
                continue;
            }
            transfers.push(TransferLog {
                block_number,
                block_hash,
                tx_hash,
                log_index,
                to: Address::from_word(topics[2]),
                value: U256::from_be_slice(&log.data().data),
            });
        }
        Ok(transfers)
    }

    /// `token.balanceOf(owner)` for each of `owners` at block `at`, in
    /// batched requests, a few at once.
    pub async fn balances(
        &self,
        token: Address,
        owners: &[Address],
        at: u64,
    ) -> EvmResult<Vec<U256>> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let chunks: Vec<Vec<Address>> = owners
            .chunks(BALANCES_PER_BATCH)
            .map(<[Address]>::to_vec)
            .collect();
        let chunks: Vec<Vec<U256>> = stream::iter(chunks)
            .map(|chunk| async move { self.balance_batch(token, &chunk, at).await })
            .buffered(BATCHES_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(chunks.into_iter().flatten().collect())
    }

    async fn balance_batch(
        &self,
        token: Address,
        owners: &[Address],
        at: u64,
    ) -> EvmResult<Vec<U256>> {
        let mut batch = BatchRequest::new(self.provider.client());
        let waiters = owners
            .iter()
            .map(|owner| {
                let call = TransactionRequest::default()
                    .to(token)
                    .input(Bytes::from(balanceOfCall { owner: *owner }.abi_encode()).into());
                batch.add_call::<_, Bytes>("eth_call", &(call, BlockNumberOrTag::Number(at)))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(classify)?;
        batch.send().await.map_err(classify)?;
        let mut balances = Vec::with_capacity(owners.len());
        for waiter in waiters {
            let answer = waiter.await.map_err(classify)?;
            balances.push(balanceOfCall::abi_decode_returns(&answer).map_err(|e| {
                EvmError::new(
                    RpcErrorKind::Garbage,
                    format!("balanceOf answered {answer}: {e}"),
                )
            })?);
        }
        Ok(balances)
    }

    /// `to`'s answer to the view `call` at the latest block.
    pub async fn view<C: SolCall>(&self, to: Address, call: &C) -> EvmResult<C::Return> {
        let request = TransactionRequest::default()
            .to(to)
            .input(Bytes::from(call.abi_encode()).into());
        let answer = self
            .provider
            .raw_request::<_, Bytes>("eth_call".into(), (request, BlockNumberOrTag::Latest))
            .await
            .map_err(classify)?;
        C::abi_decode_returns(&answer).map_err(|e| {
            EvmError::new(
                RpcErrorKind::Garbage,
                format!("{} answered {answer}: {e}", C::SIGNATURE),
            )
        })
    }

    /// The latest block's timestamp, in seconds.
    pub async fn latest_time(&self) -> EvmResult<u64> {
        #[derive(Debug, Deserialize)]
        struct Stamped {
            timestamp: U64,
        }
        let block: Option<Stamped> = self
            .provider
            .raw_request(
                "eth_getBlockByNumber".into(),
                (BlockNumberOrTag::Latest, false),
            )
            .await
            .map_err(classify)?;
        block
            .map(|b| b.timestamp.to::<u64>())
            .ok_or_else(|| EvmError::new(RpcErrorKind::Garbage, "the node has no latest block"))
    }

    /// How many transactions `address` has had mined (its next nonce as
    /// the latest block sees it).
    pub async fn mined_nonce(&self, address: Address) -> EvmResult<u64> {
        self.nonce_at(address, BlockNumberOrTag::Latest).await
    }

    /// How many transactions `address` had mined as of block `at`.
    pub async fn nonce_at(&self, address: Address, at: BlockNumberOrTag) -> EvmResult<u64> {
        self.provider
            .raw_request::<_, U64>("eth_getTransactionCount".into(), (address, at))
            .await
            .map(|n| n.to::<u64>())
            .map_err(classify)
    }

    /// `address`'s ETH, in wei, at the latest block.
    pub async fn eth_balance(&self, address: Address) -> EvmResult<U256> {
        self.provider
            .raw_request::<_, U256>("eth_getBalance".into(), (address, BlockNumberOrTag::Latest))
            .await
            .map_err(classify)
    }

    /// The latest block's base fee and the node's suggested priority fee,
    /// in wei per gas.
    pub async fn fees(&self) -> EvmResult<Fees> {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Latest {
            base_fee_per_gas: Option<U256>,
        }
        let latest = self
            .provider
            .raw_request::<_, Option<Latest>>(
                "eth_getBlockByNumber".into(),
                (BlockNumberOrTag::Latest, false),
            )
            .await
            .map_err(classify)?
            .ok_or_else(|| EvmError::new(RpcErrorKind::Garbage, "no latest block"))?;
        let base = latest.base_fee_per_gas.ok_or_else(|| {
            EvmError::new(
                RpcErrorKind::Refused,
                "the latest block has no base fee: the chain does not take EIP-1559 transactions",
            )
        })?;
        let tip = self
            .provider
            .raw_request::<_, U256>("eth_maxPriorityFeePerGas".into(), ())
            .await
            .map_err(classify)?;
        let wei = |v: U256, what: &str| {
            u128::try_from(v)
                .map_err(|_| EvmError::new(RpcErrorKind::Garbage, format!("{what} {v} wei")))
        };
        Ok(Fees {
            base_fee: wei(base, "base fee")?,
            priority_fee: wei(tip, "priority fee")?,
        })
    }

    /// Hands a signed transaction (0x hex) to the node. One it already
    /// holds, or whose nonce is used (perhaps by itself, mined), is not
    /// an error: where it stands is read from its receipt.
    pub async fn broadcast(&self, raw_tx: &str) -> EvmResult<Broadcast> {
        match self
            .provider
            .raw_request::<_, B256>("eth_sendRawTransaction".into(), (raw_tx,))
            .await
        {
            Ok(_) => Ok(Broadcast::Accepted),
            Err(RpcError::ErrorResp(payload)) => {
                let message = payload.message.to_ascii_lowercase();
                if message.contains("already known") || message.contains("known transaction") {
                    Ok(Broadcast::Known)
                } else if message.contains("nonce too low") || message.contains("nonce is too low")
                {
                    Ok(Broadcast::NonceUsed)
                } else {
                    Err(classify(RpcError::ErrorResp(payload)))
                }
            }
            Err(e) => Err(classify(e)),
        }
    }

    /// The receipt of `tx_hash`, once it is mined.
    pub async fn receipt(&self, tx_hash: &str) -> EvmResult<Option<Receipt>> {
        self.provider
            .raw_request::<_, Option<Receipt>>("eth_getTransactionReceipt".into(), (tx_hash,))
            .await
            .map_err(classify)
    }

    /// Whether the node knows `tx_hash` at all (mined or in its pool).
    pub async fn knows(&self, tx_hash: &str) -> EvmResult<bool> {
        self.provider
            .raw_request::<_, Option<serde_json::Value>>(
                "eth_getTransactionByHash".into(),
                (tx_hash,),
            )
            .await
            .map(|found| found.is_some())
            .map_err(classify)
    }

    /// Why the signed transaction `raw_tx` reverted: replayed as a call
    /// from `from` at `block`'s parent, the node's error message.
    pub async fn revert_reason(&self, from: Address, raw_tx: &str, block: u64) -> Option<String> {
        use alloy::consensus::Transaction;
        use alloy::eips::eip2718::Decodable2718;
        let bytes = alloy::hex::decode(raw_tx.trim_start_matches("0x")).ok()?;
        let envelope = alloy::consensus::TxEnvelope::decode_2718(&mut bytes.as_slice()).ok()?;
        let call = TransactionRequest::default()
            .from(from)
            .to(envelope.to()?)
            .input(envelope.input().clone().into());
        match self
            .provider
            .raw_request::<_, Bytes>(
                "eth_call".into(),
                (call, BlockNumberOrTag::Number(block.saturating_sub(1))),
            )
            .await
        {
            Err(RpcError::ErrorResp(payload)) => Some(payload.message.to_string()),
            _ => None,
        }
    }

    /// The node's first unlocked account (a development node's: anvil
    /// unlocks ten).
    pub async fn dev_account(&self) -> EvmResult<Address> {
        self.provider
            .get_accounts()
            .await
            .map_err(classify)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                EvmError::new(
                    RpcErrorKind::Refused,
                    "the node has no unlocked account: dev tooling needs a development node such as anvil",
                )
            })
    }

    /// Sends `request` from an unlocked account of a development node
    /// and waits for its receipt; the contract it created, if any.
    pub async fn send_unlocked(&self, request: TransactionRequest) -> EvmResult<Option<Address>> {
        let pending = self
            .provider
            .send_transaction(request)
            .await
            .map_err(classify)?;
        let hash = *pending.tx_hash();
        for _ in 0..600 {
            if let Some(receipt) = self
                .provider
                .get_transaction_receipt(hash)
                .await
                .map_err(classify)?
            {
                if !receipt.status() {
                    return Err(EvmError::new(
                        RpcErrorKind::Refused,
                        format!("transaction {hash} reverted"),
                    ));
                }
                return Ok(receipt.contract_address);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(EvmError::new(
            RpcErrorKind::Timeout,
            format!("transaction {hash} was not mined within a minute"),
        ))
    }

    /// A call of a development node's own methods (anvil_mine,
    /// evm_setAutomine...), for dev tooling and benchmarks.
    pub async fn dev_call(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> EvmResult<serde_json::Value> {
        self.provider
            .raw_request::<_, serde_json::Value>(method.into(), params)
            .await
            .map_err(classify)
    }

    /// `token.mint(to, amount)` from `from` (unlocked), without waiting
    /// for it to be mined; its hash.
    pub async fn mint_unmined(
        &self,
        token: Address,
        from: Address,
        to: Address,
        amount: U256,
    ) -> EvmResult<B256> {
        let request = TransactionRequest::default()
            .from(from)
            .to(token)
            .gas_limit(100_000)
            .input(Bytes::from(mintCall { to, amount }.abi_encode()).into());
        self.provider
            .send_transaction(request)
            .await
            .map(|pending| *pending.tx_hash())
            .map_err(classify)
    }

    /// Every `Transfer` of `token` to one of `to` in blocks `from..=to_block`
    /// (a topic filter on the indexed `to`): the count of logs.
    pub async fn count_transfers_to(
        &self,
        token: Address,
        to: &[Address],
        from: u64,
        to_block: u64,
    ) -> EvmResult<usize> {
        let topics: Vec<B256> = to.iter().map(|a| a.into_word()).collect();
        let filter = Filter::new()
            .address(token)
            .event_signature(Transfer::SIGNATURE_HASH)
            .topic2(topics)
            .from_block(from)
            .to_block(to_block);
        Ok(self
            .provider
            .get_logs(&filter)
            .await
            .map_err(classify)?
            .len())
    }

    /// Deploys the dev token from the node's first unlocked account.
    pub async fn deploy_dev_token(&self) -> EvmResult<Address> {
        let from = self.dev_account().await?;
        let code = alloy::hex::decode(DEV_TOKEN_BYTECODE.trim()).map_err(|e| {
            EvmError::new(
                RpcErrorKind::Refused,
                format!("the dev token's bytecode: {e}"),
            )
        })?;
        let request = TransactionRequest::default()
            .from(from)
            .input(Bytes::from(code).into());
        let mut request = request;
        request.to = Some(alloy::primitives::TxKind::Create);
        self.send_unlocked(request).await?.ok_or_else(|| {
            EvmError::new(
                RpcErrorKind::Garbage,
                "the deployment's receipt names no contract",
            )
        })
    }

    /// `token.mint(to, amount)` from the node's first unlocked account
    /// (the dev token's mint is open).
    pub async fn mint(&self, token: Address, to: Address, amount: U256) -> EvmResult<()> {
        let from = self.dev_account().await?;
        let request = TransactionRequest::default()
            .from(from)
            .to(token)
            .input(Bytes::from(mintCall { to, amount }.abi_encode()).into());
        self.send_unlocked(request).await.map(|_| ())
    }

    /// `token.transfer(to, amount)` from `from`, an unlocked account.
    pub async fn transfer_unlocked(
        &self,
        token: Address,
        from: Address,
        to: Address,
        amount: U256,
    ) -> EvmResult<()> {
        let request = TransactionRequest::default()
            .from(from)
            .to(token)
            .input(Bytes::from(transferCall { to, amount }.abi_encode()).into());
        self.send_unlocked(request).await.map(|_| ())
    }
}

/// Lower-case 0x hex of a hash, as the store keeps tx and block hashes.
pub fn hash_text(hash: &B256) -> String {
    format!("{hash:#x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transfer_event_and_calls_have_their_erc20_selectors() {
        assert_eq!(
            hash_text(&Transfer::SIGNATURE_HASH),
            "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
        );
        assert_eq!(balanceOfCall::SELECTOR, [0x70, 0xa0, 0x82, 0x31]);
        assert_eq!(transferCall::SELECTOR, [0xa9, 0x05, 0x9c, 0xbb]);
        assert_eq!(mintCall::SELECTOR, [0x40, 0xc1, 0x0f, 0x19]);
    }

    #[test]
    fn the_dev_token_bytecode_is_hex() {
        let code = alloy::hex::decode(DEV_TOKEN_BYTECODE.trim()).unwrap();
        assert!(code.len() > 1_000);
    }

    #[test]
    fn node_errors_are_sorted_into_kinds() {
        let resp = |code: i64, message: &str| {
            classify(RpcError::ErrorResp(alloy::rpc::json_rpc::ErrorPayload {
                code,
                message: message.to_string().into(),
                data: None,
            }))
            .kind
        };
        assert_eq!(
            resp(-32005, "query returned more than 10000 results"),
            RpcErrorKind::RangeTooBig
        );
        assert_eq!(
            resp(-32602, "block range is too wide"),
            RpcErrorKind::RangeTooBig
        );
        assert_eq!(
            resp(
                -32000,
                "Your app has exceeded its compute units per second capacity; rate limit"
            ),
            RpcErrorKind::RateLimited
        );
        assert_eq!(resp(-32000, "execution reverted"), RpcErrorKind::Refused);
        let http = |status: u16| {
            classify(RpcError::Transport(TransportErrorKind::HttpError(
                alloy::transports::HttpError {
                    status,
                    body: String::new(),
                },
            )))
            .kind
        };
        assert_eq!(http(429), RpcErrorKind::RateLimited);
        assert_eq!(http(503), RpcErrorKind::Server);
        assert_eq!(http(403), RpcErrorKind::Refused);
        assert_eq!(classify(RpcError::NullResp).kind, RpcErrorKind::Garbage);
    }
}
