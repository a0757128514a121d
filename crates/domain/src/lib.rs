//! updown's pure rules: money, the NASDAQ calendar, round schedules and
//! outcomes, parimutuel payouts and ledger postings.
//!
//! Nothing here does I/O or reads the clock: every function that depends
//! on time takes `now` as an argument. The crate's dependencies (no tokio,
//! sqlx or HTTP) keep it that way.
//!
//! # Layout
//! - [`money`]: [`Micros`], checked integer micro-USDC and exact parsing.
//! - [`ids`]: typed ids, round codes, market symbols, emails.
//! - [`calendar`]: NASDAQ sessions, holidays, early closes, closures.
//! - [`schedule`]: a session's open, lock, settle and void instants.
//! - [`round`]: round status, outcome from two closes, terms and digest.
//! - [`payout`]: fee, shares and dust of a parimutuel round, and the
//!   multiplier each side implies before the result.
//! - [`ledger`]: balanced postings for each business act.
//! - [`operator`]: operators' roles and the areas each may touch.
//! - [`admission`]: balance, limits and self-exclusion for each bet.
//! - [`address`]: Ethereum addresses with the EIP-55 checksum.
//! - [`audit`]: the audit log's hash chain.
//! - [`totp`]: operators' one-time codes (RFC 6238).
//! - [`wallet`]: deposit addresses derived from the operator's xpub
//!   (BIP-32/BIP-44), so no private key lives in the service.

pub mod address;
pub mod admission;
pub mod audit;
pub mod calendar;
pub mod checkpoint;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod operator;
pub mod payout;
pub mod round;
pub mod schedule;
pub mod totp;
pub mod wallet;

pub use ids::{BetId, Email, Market, RoundCode, RoundId, UserId, WithdrawalId};
pub use money::Micros;
