//! Double-entry postings for every business act.
//!
//! A posting is one ledger transaction: two or more non-zero entries whose
//! amounts sum to zero, checked when built (and again by `verify` when read
//! back). A positive amount raises an account's balance. Only the chain
//! accounts, the outside world's side of deposits and withdrawals, may go
//! below zero: minus their balance is what custody holds. Custody has two
//! places, each with its chain account: the deposit addresses (deposits
//! arrive there) and the hot wallet (withdrawals leave from it); a sweep
//! moves tokens from the first to the second.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::ids::{RoundId, UserId};
use crate::money::Micros;
use crate::payout::PayoutPlan;
use crate::round::Side;

/// Where custody holds tokens on the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Custody {
    /// The players' deposit addresses, all together.
    DepositAddresses,
    /// The hot wallet, which pays withdrawals.
    HotWallet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// The blockchain as seen from one custody place: counterpart of the
    /// deposits it received and the withdrawals it paid; minus its balance
    /// is what that place holds.
    Chain(Custody),
    /// Fees taken from loser pools.
    HouseFees,
    /// What the floors of payout shares leave over.
    HouseRounding,
    /// Withdrawals requested and not yet confirmed or failed.
    WithdrawalsPending,
    /// A player's available balance.
    User(UserId),
    /// The stakes on one side of one round.
    Pool(RoundId, Side),
}

impl Account {
    pub fn may_go_negative(self) -> bool {
        matches!(self, Account::Chain(_))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxKind {
    Deposit,
    Bet,
    BetCancel,
    WithdrawalRequest,
    WithdrawalConfirm,
    WithdrawalFail,
    Fee,
    Payout,
    Refund,
    Dust,
    Sweep,
}

impl TxKind {
    pub const ALL: [TxKind; 11] = [
        TxKind::Deposit,
        TxKind::Bet,
        TxKind::BetCancel,
        TxKind::WithdrawalRequest,
        TxKind::WithdrawalConfirm,
        TxKind::WithdrawalFail,
        TxKind::Fee,
        TxKind::Payout,
        TxKind::Refund,
        TxKind::Dust,
        TxKind::Sweep,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TxKind::Deposit => "deposit",
            TxKind::Bet => "bet",
            TxKind::BetCancel => "bet_cancel",
            TxKind::WithdrawalRequest => "withdrawal_request",
            TxKind::WithdrawalConfirm => "withdrawal_confirm",
            TxKind::WithdrawalFail => "withdrawal_fail",
            TxKind::Fee => "fee",
            TxKind::Payout => "payout",
            TxKind::Refund => "refund",
            TxKind::Dust => "dust",
            TxKind::Sweep => "sweep",
        }
    }

    pub fn parse(text: &str) -> Option<TxKind> {
        TxKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub account: Account,
    pub amount: i64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LedgerError {
    #[error("a ledger transaction needs at least two entries, got {0}")]
    TooFewEntries(usize),
    #[error("ledger entries must not be zero")]
    ZeroEntry,
    #[error("ledger entries sum to {0}, not zero")]
    Unbalanced(i128),
    #[error("a transfer needs a positive amount")]
    ZeroTransfer,
    #[error("account {0:?} appears twice in one ledger transaction")]
    DuplicateAccount(Account),
}

/// A balanced ledger transaction, ready to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posting {
    kind: TxKind,
    entries: Vec<Entry>,
}

impl Posting {
    pub fn new(kind: TxKind, entries: Vec<Entry>) -> Result<Posting, LedgerError> {
        if entries.len() < 2 {
            return Err(LedgerError::TooFewEntries(entries.len()));
        }
        if entries.iter().any(|e| e.amount == 0) {
            return Err(LedgerError::ZeroEntry);
        }
        let sum: i128 = entries.iter().map(|e| i128::from(e.amount)).sum();
        if sum != 0 {
            return Err(LedgerError::Unbalanced(sum));
        }
        // One entry per account: the store keys entries by (transaction,
        // account), and a statement reads better without repeats.
        let mut accounts: Vec<Account> = entries.iter().map(|e| e.account).collect();
        accounts.sort_unstable();
        if let Some(pair) = accounts.windows(2).find(|w| w[0] == w[1]) {
            return Err(LedgerError::DuplicateAccount(pair[0]));
        }
        Ok(Posting { kind, entries })
    }

    /// Moves `amount` from one account to another.
    pub fn transfer(
        kind: TxKind,
        from: Account,
        to: Account,
        amount: Micros,
    ) -> Result<Posting, LedgerError> {
        if amount.is_zero() {
            return Err(LedgerError::ZeroTransfer);
        }
        Posting::new(
            kind,
            vec![
                Entry {
                    account: from,
                    amount: -amount.get(),
                },
                Entry {
                    account: to,
                    amount: amount.get(),
                },
            ],
        )
    }

    pub fn kind(&self) -> TxKind {
        self.kind
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn deposit(user: UserId, amount: Micros) -> Result<Posting, LedgerError> {
        Posting::transfer(
            TxKind::Deposit,
            Account::Chain(Custody::DepositAddresses),
            Account::User(user),
            amount,
        )
    }

    /// Tokens swept from the deposit addresses into the hot wallet: a move
    /// inside custody, nobody's balance changes.
    pub fn sweep(amount: Micros) -> Result<Posting, LedgerError> {
        Posting::transfer(
            TxKind::Sweep,
            Account::Chain(Custody::HotWallet),
            Account::Chain(Custody::DepositAddresses),
            amount,
        )
    }

    pub fn bet(
        user: UserId,
        round: RoundId,
        side: Side,
        stake: Micros,
    ) -> Result<Posting, LedgerError> {
        Posting::transfer(
            TxKind::Bet,
            Account::User(user),
            Account::Pool(round, side),
            stake,
        )
    }

    pub fn cancel_bet(
        user: UserId,
        round: RoundId,
        side: Side,
        stake: Micros,
    ) -> Result<Posting, LedgerError> {
        Posting::transfer(
            TxKind::BetCancel,
            Account::Pool(round, side),
            Account::User(user),
            stake,
        )
    }

    pub fn withdrawal_request(user: UserId, amount: Micros) -> Result<Posting, LedgerError> {
        Posting::transfer(
            TxKind::WithdrawalRequest,
            Account::User(user),
            Account::WithdrawalsPending,
            amount,
        )
    }

    pub fn withdrawal_confirm(amount: Micros) -> Result<Posting, LedgerError> {
        Posting::transfer(
            TxKind::WithdrawalConfirm,
            Account::WithdrawalsPending,
            Account::Chain(Custody::HotWallet),
            amount,
        )
    }

    pub fn withdrawal_fail(user: UserId, amount: Micros) -> Result<Posting, LedgerError> {
        Posting::transfer(
            TxKind::WithdrawalFail,
            Account::WithdrawalsPending,
            Account::User(user),
            amount,
        )
    }

    /// The fee leaves the loser pool for the house, once per round.
    pub fn fee(round: RoundId, plan: &PayoutPlan) -> Result<Option<Posting>, LedgerError> {
        let winner = match plan.mode {
            crate::payout::PayoutMode::Parimutuel { winner } => winner,
            crate::payout::PayoutMode::RefundAll => return Ok(None),
        };
        if plan.fee.is_zero() {
            return Ok(None);
        }
        Posting::transfer(
            TxKind::Fee,
            Account::Pool(round, winner.other()),
            Account::HouseFees,
            plan.fee,
        )
        .map(Some)
    }

    /// Whatever remains in the pools after every payout is dust.
    pub fn dust(round: RoundId, side: Side, dust: Micros) -> Result<Option<Posting>, LedgerError> {
        if dust.is_zero() {
            return Ok(None);
        }
        Posting::transfer(
            TxKind::Dust,
            Account::Pool(round, side),
            Account::HouseRounding,
            dust,
        )
        .map(Some)
    }

    /// Pays a chunk of bets: each user gets the sum of their payouts in the
    /// chunk; each side's pool gives what its bets' payouts take from it.
    /// A winner's stake comes from the winning pool, the share from the
    /// losing pool. Returns `None` when the chunk pays nothing.
    pub fn settlement_chunk(
        round: RoundId,
        plan: &PayoutPlan,
        bets: &[(UserId, Side, Micros)],
    ) -> Result<Option<Posting>, LedgerError> {
        let kind = match plan.mode {
            crate::payout::PayoutMode::Parimutuel { .. } => TxKind::Payout,
            crate::payout::PayoutMode::RefundAll => TxKind::Refund,
        };
        let mut per_user: BTreeMap<UserId, i64> = BTreeMap::new();
        let mut from_pool: BTreeMap<Side, i64> = BTreeMap::new();
        for &(user, side, stake) in bets {
            let payout = plan.payout(side, stake);
            if payout.is_zero() {
                continue;
            }
            *per_user.entry(user).or_default() += payout.get();
            *from_pool.entry(side).or_default() += stake.get();
            let share = payout.get() - stake.get();
            if share > 0 {
                *from_pool.entry(side.other()).or_default() += share;
            }
        }
        if per_user.is_empty() {
            return Ok(None);
        }
        let mut entries: Vec<Entry> = from_pool
            .into_iter()
            .filter(|(_, amount)| *amount != 0)
            .map(|(side, amount)| Entry {
                account: Account::Pool(round, side),
                amount: -amount,
            })
            .collect();
        entries.extend(per_user.into_iter().map(|(user, amount)| Entry {
            account: Account::User(user),
            amount,
        }));
        Posting::new(kind, entries).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round::Outcome;

    fn m(v: i64) -> Micros {
        Micros::new(v).unwrap()
    }

    #[test]
    fn unbalanced_or_degenerate_postings_are_refused() {
        let e = |amount| Entry {
            account: Account::Chain(Custody::DepositAddresses),
            amount,
        };
        assert_eq!(
            Posting::new(TxKind::Deposit, vec![e(1)]),
            Err(LedgerError::TooFewEntries(1))
        );
        assert_eq!(
            Posting::new(TxKind::Deposit, vec![e(1), e(-2)]),
            Err(LedgerError::Unbalanced(-1))
        );
        assert_eq!(
            Posting::new(TxKind::Deposit, vec![e(0), e(0)]),
            Err(LedgerError::ZeroEntry)
        );
        assert_eq!(
            Posting::deposit(UserId(1), Micros::ZERO),
            Err(LedgerError::ZeroTransfer)
        );
        assert_eq!(
            Posting::new(TxKind::Deposit, vec![e(1), e(-1)]),
            Err(LedgerError::DuplicateAccount(Account::Chain(
                Custody::DepositAddresses
            )))
        );
    }

    #[test]
    fn a_sweep_moves_custody_between_its_places_and_nothing_else() {
        let sweep = Posting::sweep(m(600)).unwrap();
        assert_eq!(sweep.kind(), TxKind::Sweep);
        let moved: BTreeMap<Account, i64> = sweep
            .entries()
            .iter()
            .map(|e| (e.account, e.amount))
            .collect();
        // Custody is minus a chain account: the deposit addresses hold 600
        // less, the hot wallet 600 more.
        assert_eq!(moved[&Account::Chain(Custody::DepositAddresses)], 600);
        assert_eq!(moved[&Account::Chain(Custody::HotWallet)], -600);
        assert_eq!(moved.len(), 2);
        assert!(Account::Chain(Custody::HotWallet).may_go_negative());
        assert_eq!(TxKind::parse("sweep"), Some(TxKind::Sweep));
        assert_eq!(Posting::sweep(Micros::ZERO), Err(LedgerError::ZeroTransfer));
        // Deposits arrive at the deposit addresses; withdrawals leave from
        // the hot wallet.
        let deposit = Posting::deposit(UserId(1), m(5)).unwrap();
        assert!(deposit
            .entries()
            .iter()
            .any(|e| e.account == Account::Chain(Custody::DepositAddresses) && e.amount == -5));
        let paid = Posting::withdrawal_confirm(m(5)).unwrap();
        assert!(paid
            .entries()
            .iter()
            .any(|e| e.account == Account::Chain(Custody::HotWallet) && e.amount == 5));
    }

    #[test]
    fn settlement_chunks_empty_both_pools_exactly_with_fee_and_dust() {
        let round = RoundId(7);
        let bets = [
            (UserId(1), Side::Up, m(3)),
            (UserId(2), Side::Up, m(4)),
            (UserId(1), Side::Down, m(1000)),
        ];
        let plan = PayoutPlan::new(Outcome::Up, m(7), m(1000), 100).unwrap();
        let mut pools: BTreeMap<Account, i64> = BTreeMap::new();
        pools.insert(Account::Pool(round, Side::Up), 7);
        pools.insert(Account::Pool(round, Side::Down), 1000);
        fn apply(pools: &mut BTreeMap<Account, i64>, p: &Posting) {
            for e in p.entries() {
                *pools.entry(e.account).or_default() += e.amount;
            }
        }
        apply(&mut pools, &Posting::fee(round, &plan).unwrap().unwrap());
        // Two chunks, as the settlement service would write them.
        apply(
            &mut pools,
            &Posting::settlement_chunk(round, &plan, &bets[..1])
                .unwrap()
                .unwrap(),
        );
        apply(
            &mut pools,
            &Posting::settlement_chunk(round, &plan, &bets[1..])
                .unwrap()
                .unwrap(),
        );
        let dust = pools[&Account::Pool(round, Side::Down)];
        apply(
            &mut pools,
            &Posting::dust(round, Side::Down, m(dust)).unwrap().unwrap(),
        );
        assert_eq!(pools[&Account::Pool(round, Side::Up)], 0);
        assert_eq!(pools[&Account::Pool(round, Side::Down)], 0);
        assert_eq!(pools[&Account::HouseFees], 10);
        // 990 shared 3:4 -> 424 + 565, dust 1.
        assert_eq!(pools[&Account::User(UserId(1))], 3 + 424);
        assert_eq!(pools[&Account::User(UserId(2))], 4 + 565);
        assert_eq!(pools[&Account::HouseRounding], 1);
    }
}
