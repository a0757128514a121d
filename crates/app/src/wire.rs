//! Wire types: the JSON contract. These are the shapes the API answers and
//! its OpenAPI document describes; several `--json` commands print them
//! too. Each is built from the store's or the domain's types (`From`, or
//! `at` where the clock matters), which are never serialised themselves.
//! The module also says how that JSON writes instants and reads integers.
//!
//! They are pure data. How a person reads them is the command line's
//! (`cli::text`), the statement's CSV is `api::me`'s, and the arithmetic
//! behind a figure (payouts, multipliers) is the domain's.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::Error as _;
use serde::Serialize;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use updown_domain::payout::PayoutPlan;
use updown_domain::round::Side;
use updown_domain::Micros;
use updown_store::{
    Bet, Checkpoint, IncrementalVerify, Pools, PriceRecord, Round, SourceAnswer, Tvl, User,
    VerifyReport, Withdrawal,
};

/// An instant as the contract writes it: RFC 3339 in UTC, to the second.
pub fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub email: String,
    pub sequence: i64,
    pub created_at: String,
}

impl From<&User> for UserOut {
    fn from(user: &User) -> Self {
        UserOut {
            id: user.id.0,
            email: user.email.to_string(),
            sequence: user.sequence,
            created_at: instant(user.created_at),
        }
    }
}

/// A player's own limits in force; `null` where none is set.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LimitsOut {
    pub max_stake_per_round: Option<i64>,
    pub max_stake_per_day: Option<i64>,
    pub excluded_until: Option<String>,
    /// A raise waiting out its cooling-off period, if any.
    pub pending: Option<PendingLimitsOut>,
}

/// Stake limits that take effect at `from` (a raise or removal waits
/// `LIMIT_RAISE_COOLOFF_HOURS`); `null` where there will be none.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PendingLimitsOut {
    pub max_stake_per_round: Option<i64>,
    pub max_stake_per_day: Option<i64>,
    pub from: String,
}

impl LimitsOut {
    /// The limits as they stand at `now`.
    pub fn at(settings: &updown_domain::admission::LimitSettings, now: DateTime<Utc>) -> Self {
        let settings = settings.settled(now);
        let limits = settings.set;
        LimitsOut {
            max_stake_per_round: limits.max_stake_per_round.map(Micros::get),
            max_stake_per_day: limits.max_stake_per_day.map(Micros::get),
            excluded_until: limits.excluded_until.map(instant),
            pending: settings.pending.map(|p| PendingLimitsOut {
                max_stake_per_round: p.max_stake_per_round.map(Micros::get),
                max_stake_per_day: p.max_stake_per_day.map(Micros::get),
                from: instant(p.from),
            }),
        }
    }
}

/// The caller's account: `GET /me`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MeOut {
    pub id: i64,
    pub email: String,
    /// Micro-USDC available to bet or withdraw.
    pub available: i64,
    pub limits: LimitsOut,
}

/// An API key as listed later: never the key itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyOut {
    pub id: i64,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<&updown_store::ApiKeyInfo> for ApiKeyOut {
    fn from(k: &updown_store::ApiKeyInfo) -> Self {
        ApiKeyOut {
            id: k.id,
            prefix: k.prefix.clone(),
            created_at: instant(k.created_at),
            revoked_at: k.revoked_at.map(instant),
        }
    }
}

/// A new API key, shown only in this answer (stored as a hash).
#[derive(Serialize, utoipa::ToSchema)]
pub struct NewApiKeyOut {
    pub api_key_id: i64,
    pub api_key: String,
}

/// One ledger line of a player's statement; amounts signed micro-USDC.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatementLineOut {
    pub tx_id: i64,
    pub at: String,
    pub kind: &'static str,
    pub amount: i64,
    pub balance_after: i64,
    pub round: Option<String>,
    pub bet_id: Option<i64>,
    pub reference: Option<String>,
}

impl From<&updown_store::StatementLine> for StatementLineOut {
    fn from(line: &updown_store::StatementLine) -> Self {
        StatementLineOut {
            tx_id: line.tx_id,
            at: instant(line.at),
            kind: line.kind.as_str(),
            amount: line.amount,
            balance_after: line.balance_after,
            round: line.round.map(|c| c.to_string()),
            bet_id: line.bet.map(|b| b.0),
            reference: line.reference.clone(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BetOut {
    pub id: i64,
    pub round_id: i64,
    pub user_id: i64,
    pub side: &'static str,
    pub stake: i64,
    pub status: &'static str,
    pub placed_at: String,
}

impl From<&Bet> for BetOut {
    fn from(bet: &Bet) -> Self {
        BetOut {
            id: bet.id.0,
            round_id: bet.round.0,
            user_id: bet.user.0,
            side: bet.side.as_str(),
            stake: bet.stake.get(),
            status: bet.status.as_str(),
            placed_at: instant(bet.placed_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WithdrawalOut {
    pub id: i64,
    pub user_id: i64,
    pub amount: i64,
    pub address: String,
    pub status: &'static str,
    pub chain_tx_hash: Option<String>,
    pub failure_reason: Option<String>,
    /// Still QUEUED, held until two treasurers approve it (over
    /// WITHDRAWAL_APPROVAL_OVER).
    pub awaiting_approval: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Withdrawal> for WithdrawalOut {
    fn from(w: &Withdrawal) -> Self {
        WithdrawalOut {
            id: w.id.0,
            user_id: w.user.0,
            amount: w.amount.get(),
            address: w.address.clone(),
            status: w.status.as_str(),
            chain_tx_hash: w.chain_tx_hash.clone(),
            failure_reason: w.failure_reason.clone(),
            awaiting_approval: w.awaiting_approval,
            created_at: instant(w.created_at),
            updated_at: instant(w.updated_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PriceOut {
    pub date: String,
    pub close: String,
    pub source: String,
    pub fetched_at: String,
    /// Every source asked for this close, what it answered and when, and
    /// which agreed (`GET /rounds/{code}` only; empty for a close an
    /// operator entered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<SourceOut>>,
}

impl From<&PriceRecord> for PriceOut {
    fn from(p: &PriceRecord) -> Self {
        PriceOut {
            date: p.date.to_string(),
            close: p.close.to_string(),
            source: p.source.clone(),
            fetched_at: instant(p.fetched_at),
            sources: None,
        }
    }
}

/// One source's answer for a close.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SourceOut {
    pub source: String,
    /// Its close, an exact decimal; null when it gave none.
    pub close: Option<String>,
    /// Why it gave none, when it failed.
    pub error: Option<String>,
    /// RFC 3339.
    pub answered_at: String,
    /// Whether its close was among those that agreed.
    pub agreed: bool,
}

impl From<&SourceAnswer> for SourceOut {
    fn from(a: &SourceAnswer) -> Self {
        SourceOut {
            source: a.source.clone(),
            close: a.close.map(|close| close.to_string()),
            error: a.error.clone(),
            answered_at: instant(a.answered_at),
            agreed: a.agreed,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RoundOut {
    pub id: i64,
    pub market: String,
    pub code: String,
    pub status: &'static str,
    pub result: Option<&'static str>,
    pub open_at: String,
    pub lock_at: String,
    pub close_at: String,
    pub settle_at: String,
    pub void_at: String,
    pub previous_session: String,
    pub fee_bps: u32,
    pub tie_policy: &'static str,
    /// Where the closes come from and the rule they must meet, as the
    /// terms name it (null for rounds opened before terms named it).
    pub oracle: Option<String>,
    /// Minutes the payouts wait once the oracle's result is published,
    /// while an operator may still void (0: paid at once; null for rounds
    /// opened before terms named it).
    pub dispute_min: Option<u32>,
    /// SHA-256 of the terms' canonical text, which anyone can recompute
    /// from the fields above (the README's "Oracles" says how).
    pub terms_digest: String,
    pub pool_up: i64,
    pub pool_down: i64,
    pub bets_up: i64,
    pub bets_down: i64,
    pub implied_multiplier_up: String,
    pub implied_multiplier_down: String,
    pub fee: Option<i64>,
    pub dust: Option<i64>,
    pub close: Option<PriceOut>,
    pub previous_close: Option<PriceOut>,
    pub settled_by: Option<String>,
    pub settle_reason: Option<String>,
    pub settled_at: Option<String>,
    /// The oracle's result published ahead of its payouts
    /// (`SETTLE_DISPUTE_MIN`): UP or DOWN. Until `payouts_at` an operator
    /// may still void the round; `result` is the one paid.
    pub published_result: Option<&'static str>,
    /// When it was published (RFC 3339).
    pub published_at: Option<String>,
    /// When its payouts start, while they wait (RFC 3339).
    pub payouts_at: Option<String>,
}

impl RoundOut {
    /// Pools come from the bets while a round is open, and from the
    /// settlement's frozen figures afterwards.
    pub fn new(round: &Round, pools: Pools) -> Self {
        let settlement = round.settlement.as_ref();
        let finished = settlement.and_then(|s| s.finished_at);
        RoundOut {
            id: round.id.0,
            market: round.terms.market.to_string(),
            code: round.terms.code.to_string(),
            status: round.status.as_str(),
            result: finished.and(settlement).map(|s| s.plan.outcome.as_str()),
            open_at: instant(round.terms.open_at),
            lock_at: instant(round.terms.lock_at),
            close_at: instant(round.terms.close_at),
            settle_at: instant(round.terms.settle_at),
            void_at: instant(round.terms.void_at),
            previous_session: round.terms.previous_session.to_string(),
            fee_bps: round.terms.fee_bps,
            tie_policy: round.terms.tie_policy.as_str(),
            oracle: round.terms.oracle.clone(),
            dispute_min: round.terms.dispute_min,
            terms_digest: round.terms_digest.clone(),
            pool_up: pools.up.get(),
            pool_down: pools.down.get(),
            bets_up: pools.bets_up,
            bets_down: pools.bets_down,
            implied_multiplier_up: implied_multiplier(pools, Side::Up, round.terms.fee_bps),
            implied_multiplier_down: implied_multiplier(pools, Side::Down, round.terms.fee_bps),
            fee: settlement.map(|s| s.plan.fee.get()),
            dust: settlement.and_then(|s| s.dust).map(|d| d.get()),
            close: settlement
                .and_then(|s| s.evidence.close.as_ref())
                .map(PriceOut::from),
            previous_close: settlement
                .and_then(|s| s.evidence.previous_close.as_ref())
                .map(PriceOut::from),
            settled_by: settlement.map(|s| s.actor.clone()),
            settle_reason: settlement.and_then(|s| s.reason.clone()),
            settled_at: finished.map(instant),
            published_result: round.published.map(|p| p.outcome.as_str()),
            published_at: round.published.map(|p| instant(p.at)),
            payouts_at: None,
        }
    }
}

/// A side's implied multiplier as the contract writes it: "2.1676x", or
/// "-" while nobody is on that side.
fn implied_multiplier(pools: Pools, side: Side, fee_bps: u32) -> String {
    match PayoutPlan::implied_multiplier(pools.up, pools.down, side, fee_bps) {
        Ok(Some(multiplier)) => multiplier.to_string(),
        Ok(None) | Err(_) => "-".into(),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TvlOut {
    pub total: i64,
    pub user_balances: i64,
    pub round_pools: i64,
    pub withdrawals_pending: i64,
    pub house_fees: i64,
    pub house_rounding: i64,
    pub custody: i64,
}

impl From<Tvl> for TvlOut {
    fn from(t: Tvl) -> Self {
        TvlOut {
            total: t.total,
            user_balances: t.user_balances,
            round_pools: t.round_pools,
            withdrawals_pending: t.withdrawals_pending,
            house_fees: t.house_fees,
            house_rounding: t.house_rounding,
            custody: t.custody,
        }
    }
}

/// One operator action from the audit log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditOut {
    /// For paging: `before` this id.
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub reason: Option<String>,
    /// The credential used: `session:<id>`, `token:<id>` or `break-glass`;
    /// null for the scheduler, the command line and older rows.
    pub credential: Option<String>,
    /// The client's address, for an action over HTTP.
    pub client: Option<String>,
    /// The request's `x-request-id`, for an action over HTTP.
    pub request_id: Option<String>,
    /// The previous row's hash and this row's (SHA-256, hex) in the audit
    /// log's hash chain; null on a row from before the chain that no entry
    /// has chained yet.
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

impl From<&updown_store::AuditEntry> for AuditOut {
    fn from(e: &updown_store::AuditEntry) -> Self {
        AuditOut {
            id: e.id,
            at: instant(e.at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            subject: e.subject.clone(),
            reason: e.reason.clone(),
            credential: e.credential.clone(),
            client: e.client.clone(),
            request_id: e.request_id.clone(),
            prev_hash: e.chain.as_ref().map(|c| c.prev_hash.clone()),
            hash: e.chain.as_ref().map(|c| c.hash.clone()),
        }
    }
}

/// A transaction the hot wallet signed for a withdrawal.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChainTxOut {
    pub tx_hash: String,
    pub nonce: i64,
    /// sent, mined, reverted or replaced.
    pub state: &'static str,
    /// The block it was seen mined in, if any.
    pub mined_block: Option<i64>,
    /// Blocks on top of it and its own, as of the sender's last look.
    pub confirmations: Option<i64>,
    /// The hash in EXPLORER_TX_URL, when that is set.
    pub explorer_url: Option<String>,
    pub signed_at: String,
    pub broadcast_at: Option<String>,
}

impl ChainTxOut {
    /// `send` as of `head`, with its explorer link from `explorer`
    /// (a template with `{tx}`).
    pub fn of(send: &updown_store::ChainSend, head: Option<u64>, explorer: Option<&str>) -> Self {
        let confirmations = match (send.mined_block, head) {
            (Some(block), Some(head)) => Some((head as i64 + 1 - block).max(0)),
            _ => None,
        };
        ChainTxOut {
            tx_hash: send.signed.tx_hash.clone(),
            nonce: send.nonce,
            state: send.state.as_str(),
            mined_block: send.mined_block,
            confirmations,
            explorer_url: explorer.map(|t| t.replace("{tx}", &send.signed.tx_hash)),
            signed_at: instant(send.signed_at),
            broadcast_at: send.broadcast_at.map(instant),
        }
    }
}

/// A withdrawal as the operator sees it: with the hot wallet's
/// transactions for it, oldest first (replaced ones included).
#[derive(Serialize, utoipa::ToSchema)]
pub struct WithdrawalAdminOut {
    #[serde(flatten)]
    pub withdrawal: WithdrawalOut,
    pub transactions: Vec<ChainTxOut>,
}

/// A user as the operator sees them: balance and limits.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserSummaryOut {
    #[serde(flatten)]
    pub user: UserOut,
    pub available: i64,
    pub limits: LimitsOut,
}

impl UserSummaryOut {
    /// A user as they stand at `now`.
    pub fn at(s: &updown_store::UserSummary, now: DateTime<Utc>) -> Self {
        UserSummaryOut {
            user: UserOut::from(&s.user),
            available: s.balance.get(),
            limits: LimitsOut::at(&s.user.limit_settings(), now),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckOut {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// A checkpoint of the ledger: every transaction up to `through_tx` was
/// verified, and each account's total up to it is kept.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckpointOut {
    pub id: i64,
    pub through_tx: i64,
    pub transactions: i64,
    pub entries: i64,
    /// SHA-256 over its fields and the previous checkpoint's hash.
    pub hash: String,
    pub created_at: String,
}

impl From<&Checkpoint> for CheckpointOut {
    fn from(c: &Checkpoint) -> Self {
        CheckpointOut {
            id: c.id,
            through_tx: c.through_tx,
            transactions: c.transactions,
            entries: c.entries,
            hash: c.hash.clone(),
            created_at: instant(c.created_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifyOut {
    pub ok: bool,
    /// `full`: the whole ledger; `incremental`: what came after the
    /// latest checkpoint.
    pub scope: &'static str,
    pub transactions: i64,
    pub entries: i64,
    /// Incremental: the transactions it checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_transactions: Option<i64>,
    /// Incremental: the checkpoint it started from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_checkpoint: Option<CheckpointOut>,
    /// Incremental: the checkpoint it wrote (when it passed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointOut>,
    pub checks: Vec<CheckOut>,
}

impl VerifyOut {
    pub fn incremental(run: &IncrementalVerify) -> Self {
        VerifyOut {
            scope: "incremental",
            checked_transactions: Some(run.checked_transactions),
            from_checkpoint: run.from.as_ref().map(CheckpointOut::from),
            checkpoint: run.written.as_ref().map(CheckpointOut::from),
            ..VerifyOut::from(&run.report)
        }
    }
}

impl From<&VerifyReport> for VerifyOut {
    fn from(r: &VerifyReport) -> Self {
        VerifyOut {
            ok: r.ok(),
            scope: "full",
            transactions: r.transactions,
            entries: r.entries,
            checked_transactions: None,
            from_checkpoint: None,
            checkpoint: None,
            checks: r
                .checks
                .iter()
                .map(|c| CheckOut {
                    name: c.name,
                    passed: c.passed,
                    detail: c.detail.clone(),
                })
                .collect(),
        }
    }
}

// Integers in request bodies.

/// A JSON integer, as JSON Schema means it: any number whose value is
/// whole (`5`, `5.0`, `5e3`), read exactly from its text (never through a
/// float), within 64 bits. For `#[serde(deserialize_with = "...")]`.
pub fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let raw = <Box<RawValue>>::deserialize(deserializer)?;
    whole_number(raw.get()).ok_or_else(|| {
        D::Error::custom(format!(
            "expected a whole number within 64 bits, not {}",
            raw.get()
        ))
    })
}

/// [`integer`] for an optional field (absent or null: `None`); pair with
/// `#[serde(default)]`.
pub fn optional_integer<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    let raw = <Option<Box<RawValue>>>::deserialize(deserializer)?;
    match raw {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => whole_number(raw.get()).map(Some).ok_or_else(|| {
            D::Error::custom(format!(
                "expected a whole number within 64 bits, not {}",
                raw.get()
            ))
        }),
    }
}

/// The value of a JSON number's text when it is whole and fits in i64,
/// computed on its digits (no float, no rounding): `5.0`, `5e3` and
/// `0.5e1` are whole; `5.5`, `1e-3` and `1.000…0001e6` are not.
pub fn whole_number(text: &str) -> Option<i64> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (
            &rest[..at],
            rest[at + 1..].trim_start_matches('+').parse::<i64>().ok()?,
        ),
        None => (rest, 0),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((_, "")) => return None,
        Some(parts) => parts,
        None => (mantissa, ""),
    };
    let is_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !is_digits(whole)
        || !is_digits(fraction)
        || exponent.unsigned_abs() > 10_000
    {
        return None;
    }
    // The digits, and where the decimal point falls among them.
    let digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).collect();
    let point = whole.len() as i64 + exponent;
    let (integer, dropped): (&[u8], &[u8]) = if point <= 0 {
        (&[], &digits[..])
    } else if point as usize >= digits.len() {
        (&digits[..], &[])
    } else {
        digits.split_at(point as usize)
    };
    if dropped.iter().any(|d| *d != b'0') {
        return None;
    }
    let zeros = (point - digits.len() as i64).max(0);
    let mut value: i128 = 0;
    for digit in integer
        .iter()
        .map(|d| i128::from(d - b'0'))
        .chain((0..zeros).map(|_| 0))
    {
        value = value.checked_mul(10)?.checked_add(digit)?;
        if value > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    i64::try_from(if negative { -value } else { value }).ok()
}

/// An operator as listed: never the password hash or the TOTP secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OperatorOut {
    pub id: i64,
    pub email: String,
    /// viewer, support, operator, treasurer or admin.
    pub role: &'static str,
    /// Whether sign-in asks for a one-time code.
    pub totp: bool,
    pub created_at: String,
    pub disabled_at: Option<String>,
    /// Sign-in refused until then, after 5 failures in a row.
    pub locked_until: Option<String>,
}

impl From<&updown_store::Operator> for OperatorOut {
    fn from(o: &updown_store::Operator) -> Self {
        OperatorOut {
            id: o.id,
            email: o.email.to_string(),
            role: o.role.as_str(),
            totp: o.totp_secret.is_some(),
            created_at: instant(o.created_at),
            disabled_at: o.disabled_at.map(instant),
            locked_until: o.locked_until.map(instant),
        }
    }
}

/// A vote on an approval.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovalVoteOut {
    /// The operator's email.
    pub operator: String,
    pub approve: bool,
    pub reason: Option<String>,
    pub at: String,
}

/// Something waiting for (or decided by) a second person.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovalOut {
    pub id: i64,
    /// withdrawal (decided by treasurers) or settlement (by operators).
    pub kind: &'static str,
    /// The withdrawal's id, or the round's code.
    pub subject: String,
    /// `send` for a withdrawal; UP, DOWN or VOID for a settlement.
    pub action: String,
    pub reason: Option<String>,
    /// The operator who asked, or `player:<id>` for a withdrawal.
    pub requested_by: String,
    pub requested_at: String,
    /// Approvals needed from enabled operators other than the requester.
    pub needed: i32,
    /// pending, approved or rejected.
    pub state: &'static str,
    pub decided_at: Option<String>,
    pub votes: Vec<ApprovalVoteOut>,
}

impl From<&updown_store::Approval> for ApprovalOut {
    fn from(a: &updown_store::Approval) -> Self {
        ApprovalOut {
            id: a.id,
            kind: a.kind.as_str(),
            subject: a.subject.clone(),
            action: a.action.clone(),
            reason: a.reason.clone(),
            requested_by: a.requested_by.clone(),
            requested_at: instant(a.requested_at),
            needed: a.needed,
            state: a.state.as_str(),
            decided_at: a.decided_at.map(instant),
            votes: a
                .votes
                .iter()
                .map(|v| ApprovalVoteOut {
                    operator: v.operator.clone(),
                    approve: v.approve,
                    reason: v.reason.clone(),
                    at: instant(v.at),
                })
                .collect(),
        }
    }
}
