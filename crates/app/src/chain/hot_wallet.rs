//! The hot wallet's transactions, EIP-1559, signed by its key for a nonce
//! the caller took (from the database, see `services/sender.rs`): an
//! ERC-20 `transfer` (a withdrawal), and a sweep's `permit` and
//! `transferFrom`; and the EIP-2612 permit a deposit key signs.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::primitives::{keccak256, Address, TxKind, B256, U256};
use alloy::signers::SignerSync;
use alloy::sol_types::{SolCall, SolStruct};
use updown_store::SignedTx;

use super::evm::{Permit, IERC20};
pub use crate::hot_key::HotKey;

/// Gas for one token `transfer`: USDC's costs 35,000 to 65,000; only the
/// gas used is paid.
pub const TRANSFER_GAS: u64 = 100_000;

/// One `transfer` of `amount` token units to `to`, with its nonce and fees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferTx {
    pub chain_id: u64,
    pub nonce: u64,
    pub token: Address,
    pub to: Address,
    pub amount: U256,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

/// Signs `transfer` with `key`: the raw EIP-2718 bytes and their hash.
pub fn sign_transfer(key: &HotKey, transfer: &TransferTx) -> Result<SignedTx, String> {
    let input = IERC20::transferCall {
        to: transfer.to,
        amount: transfer.amount,
    }
    .abi_encode();
    sign_call(
        key,
        &CallTx {
            chain_id: transfer.chain_id,
            nonce: transfer.nonce,
            to: transfer.token,
            input,
            gas_limit: TRANSFER_GAS,
            max_fee_per_gas: transfer.max_fee_per_gas,
            max_priority_fee_per_gas: transfer.max_priority_fee_per_gas,
        },
    )
}

/// A call of a contract, with no ETH attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallTx {
    pub chain_id: u64,
    pub nonce: u64,
    pub to: Address,
    pub input: Vec<u8>,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

/// Signs `call` with `key`: the raw EIP-2718 bytes and their hash.
pub fn sign_call(key: &HotKey, call: &CallTx) -> Result<SignedTx, String> {
    let tx = TxEip1559 {
        chain_id: call.chain_id,
        nonce: call.nonce,
        gas_limit: call.gas_limit,
        max_fee_per_gas: call.max_fee_per_gas,
        max_priority_fee_per_gas: call.max_priority_fee_per_gas,
        to: TxKind::Call(call.to),
        value: U256::ZERO,
        access_list: Default::default(),
        input: call.input.clone().into(),
    };
    let signature = key
        .signer()
        .sign_hash_sync(&tx.signature_hash())
        .map_err(|e| e.to_string())?;
    let envelope = TxEnvelope::from(tx.into_signed(signature));
    Ok(SignedTx {
        tx_hash: super::evm::hash_text(envelope.tx_hash()),
        raw_tx: format!("0x{}", hex::encode(envelope.encoded_2718())),
        max_fee_per_gas: call.max_fee_per_gas.to_string(),
        max_priority_fee_per_gas: call.max_priority_fee_per_gas.to_string(),
    })
}

/// `raw_tx` (an EIP-1559 transaction) signed again by `key` with other
/// fees: the same chain, nonce, recipient, call and gas; a replacement.
pub fn resign(key: &HotKey, raw_tx: &str, max_fee: u128, tip: u128) -> Result<SignedTx, String> {
    use alloy::eips::eip2718::Decodable2718;
    let bytes = hex::decode(raw_tx.trim_start_matches("0x")).map_err(|e| e.to_string())?;
    let TxEnvelope::Eip1559(signed) = TxEnvelope::decode_2718(&mut bytes.as_slice())
        .map_err(|e| format!("a stored transaction does not decode: {e}"))?
    else {
        return Err("a stored transaction is not EIP-1559".into());
    };
    let tx = signed.tx();
    let TxKind::Call(to) = tx.to else {
        return Err("a stored transaction creates a contract".into());
    };
    sign_call(
        key,
        &CallTx {
            chain_id: tx.chain_id,
            nonce: tx.nonce,
            to,
            input: tx.input.to_vec(),
            gas_limit: tx.gas_limit,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
        },
    )
}

/// Gas for a `permit` (an ecrecover and two writes: about 50,000 to 80,000).
pub const PERMIT_GAS: u64 = 120_000;

/// What a deposit key allows: `spender` may take `value` of the token
/// from `owner` until `deadline` (seconds), with the token's `nonce` for
/// `owner`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermitTerms {
    /// The token's EIP-712 domain, as its DOMAIN_SEPARATOR() answers.
    pub domain_separator: B256,
    pub owner: Address,
    pub spender: Address,
    pub value: U256,
    pub nonce: U256,
    pub deadline: U256,
}

/// The permit's EIP-712 digest: keccak256(0x1901 ‖ domain ‖ hashStruct).
pub fn permit_digest(terms: &PermitTerms) -> B256 {
    let permit = Permit {
        owner: terms.owner,
        spender: terms.spender,
        value: terms.value,
        nonce: terms.nonce,
        deadline: terms.deadline,
    };
    let mut message = Vec::with_capacity(66);
    message.extend_from_slice(&[0x19, 0x01]);
    message.extend_from_slice(terms.domain_separator.as_slice());
    message.extend_from_slice(permit.eip712_hash_struct().as_slice());
    keccak256(message)
}

/// The `permit(...)` call data, signed by `owner_key` (the deposit
/// address's own key, which must be `terms.owner`'s).
pub fn permit_call(owner_key: &HotKey, terms: &PermitTerms) -> Result<Vec<u8>, String> {
    if owner_key.address() != terms.owner {
        return Err(format!(
            "the key given for {} is {}'s",
            terms.owner,
            owner_key.address()
        ));
    }
    let signature = owner_key
        .signer()
        .sign_hash_sync(&permit_digest(terms))
        .map_err(|e| e.to_string())?;
    Ok(IERC20::permitCall {
        owner: terms.owner,
        spender: terms.spender,
        value: terms.value,
        deadline: terms.deadline,
        v: 27 + u8::from(signature.v()),
        r: signature.r().into(),
        s: signature.s().into(),
    }
    .abi_encode())
}

/// The `transferFrom(from, to, amount)` call data.
pub fn transfer_from_call(from: Address, to: Address, amount: U256) -> Vec<u8> {
    IERC20::transferFromCall { from, to, amount }.abi_encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANVIL_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn a_signed_transfer_recovers_to_the_key_and_carries_its_terms() {
        use alloy::eips::eip2718::Decodable2718;
        let bytes: [u8; 32] = hex::decode(ANVIL_KEY).unwrap().try_into().unwrap();
        let key = HotKey::from_bytes(&bytes).unwrap();
        let transfer = TransferTx {
            chain_id: 31337,
            nonce: 5,
            token: Address::repeat_byte(0x11),
            to: Address::repeat_byte(0x22),
            amount: U256::from(2_000_000u64),
            max_fee_per_gas: 3_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
        };
        let signed = sign_transfer(&key, &transfer).unwrap();
        let raw = hex::decode(&signed.raw_tx[2..]).unwrap();
        let envelope = TxEnvelope::decode_2718(&mut raw.as_slice()).unwrap();
        assert_eq!(
            super::super::evm::hash_text(envelope.tx_hash()),
            signed.tx_hash
        );
        let TxEnvelope::Eip1559(tx) = &envelope else {
            panic!("not EIP-1559: {envelope:?}");
        };
        let signer = tx
            .signature()
            .recover_address_from_prehash(&tx.signature_hash())
            .unwrap();
        assert_eq!(signer, key.address());
        assert_eq!(tx.tx().nonce, 5);
        assert_eq!(tx.tx().to, TxKind::Call(transfer.token));
        let call = IERC20::transferCall::abi_decode(&tx.tx().input).unwrap();
        assert_eq!((call.to, call.amount), (transfer.to, transfer.amount));
        // The same terms sign to the same bytes (RFC 6979): a restart
        // never makes a different transaction from them.
        assert_eq!(sign_transfer(&key, &transfer).unwrap(), signed);
    }

    #[test]
    fn a_permit_is_signed_by_its_owner_over_the_eip712_digest_only() {
        let bytes: [u8; 32] = hex::decode(ANVIL_KEY).unwrap().try_into().unwrap();
        let owner = HotKey::from_bytes(&bytes).unwrap();
        let other = HotKey::from_bytes(&[7u8; 32]).unwrap();
        let terms = PermitTerms {
            domain_separator: B256::repeat_byte(0xd0),
            owner: owner.address(),
            spender: Address::repeat_byte(0x42),
            value: U256::from(5_000_000u64),
            nonce: U256::from(3u64),
            deadline: U256::from(1_800_000_000u64),
        };
        let data = permit_call(&owner, &terms).unwrap();
        let call = IERC20::permitCall::abi_decode(&data).unwrap();
        assert_eq!(
            (call.owner, call.spender, call.value, call.deadline),
            (terms.owner, terms.spender, terms.value, terms.deadline)
        );
        assert!(call.v == 27 || call.v == 28, "{}", call.v);
        let signature =
            alloy::primitives::Signature::from_scalars_and_parity(call.r, call.s, call.v == 28);
        let signer = signature
            .recover_address_from_prehash(&permit_digest(&terms))
            .unwrap();
        assert_eq!(signer, owner.address());
        // Another nonce is another digest: a permit is good once.
        let next = PermitTerms {
            nonce: U256::from(4u64),
            ..terms.clone()
        };
        assert_ne!(permit_digest(&next), permit_digest(&terms));
        // A key that is not the owner's signs nothing.
        assert!(permit_call(&other, &terms).unwrap_err().contains("is"));
        let take = transfer_from_call(terms.owner, terms.spender, terms.value);
        let call = IERC20::transferFromCall::abi_decode(&take).unwrap();
        assert_eq!(
            (call.from, call.to, call.amount),
            (terms.owner, terms.spender, terms.value)
        );
    }

    #[test]
    fn a_resigned_transaction_changes_its_fees_only() {
        use alloy::eips::eip2718::Decodable2718;
        let bytes: [u8; 32] = hex::decode(ANVIL_KEY).unwrap().try_into().unwrap();
        let key = HotKey::from_bytes(&bytes).unwrap();
        let call = CallTx {
            chain_id: 31337,
            nonce: 9,
            to: Address::repeat_byte(0x11),
            input: transfer_from_call(
                Address::repeat_byte(1),
                Address::repeat_byte(2),
                U256::from(5u64),
            ),
            gas_limit: PERMIT_GAS,
            max_fee_per_gas: 10,
            max_priority_fee_per_gas: 2,
        };
        let first = sign_call(&key, &call).unwrap();
        let again = resign(&key, &first.raw_tx, 20, 4).unwrap();
        assert_ne!(again.tx_hash, first.tx_hash);
        assert_eq!(
            (
                again.max_fee_per_gas.as_str(),
                again.max_priority_fee_per_gas.as_str()
            ),
            ("20", "4")
        );
        let raw = hex::decode(&again.raw_tx[2..]).unwrap();
        let TxEnvelope::Eip1559(tx) = TxEnvelope::decode_2718(&mut raw.as_slice()).unwrap() else {
            panic!("not EIP-1559");
        };
        let tx = tx.tx();
        assert_eq!(
            (tx.chain_id, tx.nonce, tx.to, tx.gas_limit),
            (31337, 9, TxKind::Call(call.to), PERMIT_GAS)
        );
        assert_eq!(tx.input.to_vec(), call.input);
        assert!(resign(&key, "0x02zz", 1, 1).is_err());
    }
}
