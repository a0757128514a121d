//! The updown service: use-cases over the store, adapters, and the `updown`
//! command line. `main.rs` only calls [`cli::main`].
//!
//! # Layout
//! - [`config`]: environment and `.env`, validated once at start, one part
//!   per concern, each value's source noted (`updown config --explain`).
//! - [`clock`]: the clock port (system, manual, scaled for demos).
//! - [`oracle`]: the oracle port (mock, CSV, manual, Polygon, Twelve Data,
//!   Tiingo, Market Data, quorum).
//! - [`chain`]: the chain-sender port for withdrawals (mock; manual is none).
//! - [`services`]: the use-cases, including group commit for bets.
//! - [`startup`]: wires the process (store, clock, oracle, chain) into an
//!   [`services::App`].
//! - [`error`]: the use-cases' error with stable codes.
//! - [`events`]: business events, in-process and on Redis.
//! - [`retry`]: backoff with jitter for calls to outside services.
//! - [`metrics`]: Prometheus metrics.
//! - [`api`]: the HTTP API (axum), served by `updown serve`.
//! - [`web`]: the player page and the operator console (embedded assets).
//! - [`cli`]: clap commands, each calling a use-case; with them `updown
//!   demo` (the whole story on a fresh database) and `updown bench`
//!   (speed measured on a fresh database; `bench http` loads the real
//!   `serve` with wrk).
//! - [`secret`]: values kept out of logs and `Debug` output; [`hot_key`]:
//!   the hot wallet's key, read from its file.
//! - [`telemetry`]: logging setup (JSON or human lines, written by a
//!   thread of their own).
//! - [`wire`]: the JSON contract, pure data: the shapes the API answers
//!   (and `--json` commands print).

pub mod api;
pub mod chain;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod faults;
pub mod hot_key;
pub mod metrics;
pub mod oracle;
pub mod retry;
pub mod secret;
pub mod services;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod web;
pub mod wire;
