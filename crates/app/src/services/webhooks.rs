//! Deposit notifications from the provider's webhook. Each is checked
//! (signature over the timestamp and the raw body with
//! `DEPOSIT_WEBHOOK_SECRET`, at most five minutes old, the configured
//! chain and token, a known deposit address), then credited once per
//! transfer (tx hash, log index) when it has `MIN_CONFIRMATIONS`, or
//! recorded as pending until a later notification has them. Duplicates,
//! replays and out-of-order notifications credit nothing more. Every
//! notification is recorded with what became of it, refusals with why.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use updown_domain::ids::UserId;
use updown_domain::Micros;
use updown_store::{DepositNotification, DepositOutcome};

use super::{clip, App};
use crate::error::{AppError, AppResult};

/// Oldest (or furthest in the future) a signed timestamp may be.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// A notification's body, as the provider sends it.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepositNotice {
    /// Must be DEPOSIT_CHAIN (422 otherwise).
    #[schema(example = "ethereum")]
    pub chain: String,
    /// The token contract: must be DEPOSIT_TOKEN (422 otherwise).
    #[schema(
        example = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
        pattern = "^0x[0-9a-fA-F]{40}$"
    )]
    pub token: String,
    /// The transfer's transaction: 32 bytes, in any case, with or without 0x.
    #[schema(pattern = "^(0[xX])?[0-9a-fA-F]{64}$")]
    pub tx_hash: String,
    #[schema(minimum = 0)]
    #[serde(deserialize_with = "crate::wire::integer")]
    pub log_index: i64,
    /// The deposit address it was sent to (a user's, 422 otherwise).
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub to: String,
    /// In the token's smallest unit: micro-USDC.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "crate::wire::integer")]
    pub amount: i64,
    #[schema(minimum = 0)]
    #[serde(deserialize_with = "crate::wire::integer")]
    pub confirmations: i64,
}

/// A signed request as it arrived.
pub struct SignedRequest<'a> {
    /// The `X-Webhook-Timestamp` header: Unix seconds.
    pub timestamp: Option<&'a str>,
    /// The `X-Webhook-Signature` header: `sha256=<hex>`.
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"): what a
/// provider sends, and what tests and tools sign with.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let digest = hex::encode(mac.finalize().into_bytes());
    format!("sha256={digest}")
}

/// Checks the signature (in constant time) and the timestamp's age.
fn check_signature(
    secret: &str,
    request: &SignedRequest,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let (Some(timestamp), Some(signature)) = (request.timestamp, request.signature) else {
        return Err("missing X-Webhook-Timestamp or X-Webhook-Signature".into());
    };
    let Ok(seconds) = timestamp.trim().parse::<i64>() else {
        return Err("X-Webhook-Timestamp must be Unix seconds".into());
    };
    // Checked: a hostile timestamp (i64::MIN) must not overflow.
    let skew = now.timestamp().checked_sub(seconds).map(i64::unsigned_abs);
    if skew.is_none_or(|skew| skew > SIGNATURE_TOLERANCE_SECS.unsigned_abs()) {
        return Err(format!(
            "the signed timestamp {seconds} is more than {SIGNATURE_TOLERANCE_SECS} s from now; replayed or delayed"
        ));
    }
    let Some(given) = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(decode_hex)
    else {
        return Err("X-Webhook-Signature must be sha256=<64 hex digits>".into());
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{seconds}.").as_bytes());
    mac.update(request.body);
    mac.verify_slice(&given)
        .map_err(|_| "the signature does not match the body".to_string())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    (text.len() == 64).then(|| hex::decode(text).ok()).flatten()
}

impl App {
    /// Handles one webhook call; the answer's body on success. Every call
    /// with the webhook configured is recorded.
    pub async fn receive_deposit_notification(
        &self,
        request: SignedRequest<'_>,
    ) -> AppResult<(DepositOutcome, Value)> {
        let Some(secret) = &self.config.chain.deposit_webhook_secret else {
            // Unsigned calls are refused as unsigned, whether it is on or not.
            if request.timestamp.is_none() || request.signature.is_none() {
                return Err(AppError::Unauthorized(
                    "deposit webhook refused: missing X-Webhook-Timestamp or X-Webhook-Signature"
                        .into(),
                ));
            }
            return Err(AppError::NotFound(
                "the deposit webhook is off: the operator has not set DEPOSIT_WEBHOOK_SECRET"
                    .into(),
            ));
        };
        let now = self.clock.now();
        let notice = serde_json::from_slice::<DepositNotice>(request.body);
        let mut record = DepositNotification {
            received_at: Some(now),
            ..DepositNotification::default()
        };
        if let Ok(notice) = &notice {
            record.chain = Some(clip(&notice.chain));
            record.token = Some(clip(&notice.token));
            record.tx_hash = Some(clip(&notice.tx_hash));
            record.log_index = Some(notice.log_index);
            record.to_address = Some(clip(&notice.to));
            record.amount = Some(notice.amount);
            record.confirmations = Some(notice.confirmations);
        }
        let result = match check_signature(secret.expose(), &request, now) {
            Err(why) => Err(AppError::Unauthorized(format!(
                "deposit webhook refused: {why}"
            ))),
            Ok(()) => match notice {
                Err(e) => Err(AppError::Invalid(format!(
                    "the notification is not valid: {e}"
                ))),
                Ok(notice) => self.apply_notice(&notice, &mut record).await,
            },
        };
        record.outcome = Some(match &result {
            Ok((outcome, _)) => *outcome,
            Err(_) => DepositOutcome::Refused,
        });
        if let Err(e) = &result {
            record.reason = Some(e.to_string());
            tracing::warn!(event = "deposit_refused", reason = %e, tx_hash = record.tx_hash.as_deref().unwrap_or(""));
        }
        if let Err(e) = self.store.record_deposit_notification(&record).await {
            tracing::error!(error = %e, "recording a deposit notification failed");
        }
        result
    }

    /// Checks a signed notice and credits it when it has enough
    /// confirmations.
    async fn apply_notice(
        &self,
        notice: &DepositNotice,
        record: &mut DepositNotification,
    ) -> AppResult<(DepositOutcome, Value)> {
        let config = &self.config;
        if notice.chain != config.chain.deposit_chain {
            return Err(AppError::Rejected(format!(
                "chain {:?} is not the deposit chain {:?} (DEPOSIT_CHAIN)",
                notice.chain, config.chain.deposit_chain
            )));
        }
        let token = super::wallets::parse_address(&notice.token)?;
        if token != config.chain.deposit_token {
            return Err(AppError::Rejected(format!(
                "token {} is not the deposit token {} (DEPOSIT_TOKEN)",
                token.to_checksum(),
                config.chain.deposit_token.to_checksum()
            )));
        }
        let amount = Micros::new(notice.amount)
            .ok()
            .filter(|a| !a.is_zero())
            .ok_or_else(|| {
                AppError::Invalid(format!(
                    "amount {} must be a positive number of micro-USDC",
                    notice.amount
                ))
            })?;
        if notice.confirmations < 0 {
            return Err(AppError::Invalid(
                "confirmations must not be negative".into(),
            ));
        }
        let user = self
            .user_by_deposit_address(&notice.to)
            .await
            .map_err(|e| match e {
                AppError::NotFound(why) => AppError::Rejected(why),
                other => other,
            })?;
        record.user = Some(user.id);
        // One transfer written in two cases is one transfer.
        let tx_hash = super::accounts::chain_tx_hash(&notice.tx_hash)?;
        let notice = &DepositNotice {
            tx_hash,
            ..notice.clone()
        };
        if let Some(credited) = self
            .store
            .deposit_by_transfer(&notice.tx_hash, notice.log_index)
            .await?
        {
            if credited.amount != amount || credited.user != user.id {
                return Err(AppError::Conflict(format!(
                    "transfer {}:{} was credited as {} micro-USDC to user {}; this notification says otherwise",
                    notice.tx_hash, notice.log_index, credited.amount, credited.user
                )));
            }
            return Ok((
                DepositOutcome::Duplicate,
                receipt("duplicate", user.id, notice, Some(credited.id)),
            ));
        }
        let required = i64::from(config.chain.min_confirmations);
        if notice.confirmations < required {
            let mut body = receipt("pending", user.id, notice, None);
            body["required_confirmations"] = json!(required);
            return Ok((DepositOutcome::Pending, body));
        }
        match self
            .deposit(user.id, amount, &notice.tx_hash, notice.log_index, None)
            .await
        {
            Ok(deposit) => Ok((
                DepositOutcome::Credited,
                receipt("credited", user.id, notice, Some(deposit.id)),
            )),
            // The same transfer, credited by a concurrent notification.
            Err(AppError::Conflict(_)) => Ok((
                DepositOutcome::Duplicate,
                receipt("duplicate", user.id, notice, None),
            )),
            Err(e) => Err(e),
        }
    }
}

fn receipt(status: &str, user: UserId, notice: &DepositNotice, deposit: Option<i64>) -> Value {
    json!({
        "status": status,
        "user_id": user.0,
        "deposit_id": deposit,
        "tx_hash": notice.tx_hash,
        "log_index": notice.log_index,
        "amount": notice.amount,
        "confirmations": notice.confirmations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap()
    }

    fn signed<'a>(timestamp: &'a str, signature: &'a str, body: &'a [u8]) -> SignedRequest<'a> {
        SignedRequest {
            timestamp: Some(timestamp),
            signature: Some(signature),
            body,
        }
    }

    #[test]
    fn a_signature_holds_only_for_its_body_secret_and_time() {
        let body = br#"{"amount": 5}"#;
        let stamp = now().timestamp();
        let good = sign("secret-0123456789", stamp, body);
        let text = stamp.to_string();
        assert_eq!(
            check_signature("secret-0123456789", &signed(&text, &good, body), now()),
            Ok(())
        );
        assert!(check_signature("secret-other-0000", &signed(&text, &good, body), now()).is_err());
        assert!(check_signature(
            "secret-0123456789",
            &signed(&text, &good, br#"{"amount": 6}"#),
            now()
        )
        .is_err());
        let later = (stamp + 1).to_string();
        assert!(check_signature("secret-0123456789", &signed(&later, &good, body), now()).is_err());
        let old = stamp - SIGNATURE_TOLERANCE_SECS - 1;
        let old_text = old.to_string();
        let old_signature = sign("secret-0123456789", old, body);
        let refused = check_signature(
            "secret-0123456789",
            &signed(&old_text, &old_signature, body),
            now(),
        );
        assert!(refused.unwrap_err().contains("replayed or delayed"));
        let missing = SignedRequest {
            timestamp: None,
            signature: None,
            body,
        };
        assert!(check_signature("secret-0123456789", &missing, now()).is_err());
        assert!(check_signature(
            "secret-0123456789",
            &signed(&text, "sha256=zz", body),
            now()
        )
        .is_err());
    }

    #[test]
    fn hostile_timestamps_are_refused_without_overflow() {
        let body = br#"{"amount": 5}"#;
        for stamp in [i64::MIN, i64::MAX, i64::MIN + 1] {
            let text = stamp.to_string();
            let signature = sign("secret-0123456789", stamp, body);
            let refused =
                check_signature("secret-0123456789", &signed(&text, &signature, body), now());
            assert!(
                refused.unwrap_err().contains("replayed or delayed"),
                "{stamp}"
            );
        }
    }

    #[test]
    fn signing_follows_hmac_sha256_over_timestamp_dot_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let signature = sign("Jefe", 0, b"what do ya want for nothing?");
        // The signed text is "0." followed by the body, so the digest
        // differs from the RFC's; check the construction instead.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"0.what do ya want for nothing?");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(signature, format!("sha256={expected}"));
        let plain = Hmac::<Sha256>::new_from_slice(b"Jefe")
            .unwrap()
            .chain_update(b"what do ya want for nothing?")
            .finalize()
            .into_bytes();
        let plain_hex = hex::encode(plain);
        assert_eq!(
            plain_hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
