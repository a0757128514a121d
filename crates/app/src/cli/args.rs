//! The command line's shape: every command, its arguments and `--help`.

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use updown_domain::ids::RoundCode;
use updown_domain::operator::Role;
use updown_domain::round::{Price, Side};
use updown_domain::Micros;

const AMOUNT_HELP: &str = "integer micro-USDC (1500000) or USDC with the suffix (1.5USDC)";

#[derive(Parser, Debug)]
#[command(
    name = "updown",
    version,
    about = "Daily Up/Down parimutuel betting on the NASDAQ close, with a double-entry USDC ledger."
)]
#[command(
    after_help = "Configuration comes from the environment and .env (see the README; \
`updown config --explain` shows every setting and its source). \
DATABASE_URL unset means sqlite://./data/updown.db."
)]
pub struct Cli {
    /// Print machine-readable JSON on stdout (errors as JSON on stderr).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP service on BIND_ADDR (migrates first; stops cleanly on Ctrl-C or SIGTERM).
    Serve,
    /// Print the API's OpenAPI 3.1 document (what `serve` has at /openapi.json).
    Openapi,
    /// NASDAQ sessions and their close (New York time) between two dates.
    Calendar {
        #[arg(long)]
        from: NaiveDate,
        #[arg(long)]
        to: NaiveDate,
    },
    /// Print the configuration, secrets redacted: VARIABLE=value for each setting
    /// with a value; --explain: every setting with its source.
    Config {
        /// Every setting, unset ones too, with where its value came from:
        /// default, .env or environment (which wins over .env).
        #[arg(long)]
        explain: bool,
    },
    /// GET a URL, by default this configuration's own /health/ready (BIND_ADDR):
    /// exits 0 on 200, 1 otherwise. For container health checks (no curl needed).
    Probe {
        /// An http:// URL to GET instead.
        #[arg(long)]
        url: Option<String>,
    },
    /// Copy the database (DATABASE_URL) into a new file while it is in use,
    /// and check the copy. SQLite: VACUUM INTO, one consistent snapshot;
    /// PostgreSQL: pg_dump --format=custom, read back with pg_restore --list
    /// (PostgreSQL's client tools of the server's version must be installed).
    Backup {
        /// The backup file to write; refused if it exists.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Restore a backup into DATABASE_URL, which must be empty (a new SQLite
    /// file, or a database without tables); then migrate and verify the
    /// ledger (exits 1 if an invariant fails).
    Restore {
        /// The backup file, as `updown backup` wrote it.
        #[arg(long)]
        from: std::path::PathBuf,
    },
    /// Tell the whole story on a fresh temporary database.
    Demo,
    /// Measure speed on a fresh database (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    #[command(flatten)]
    Ledger(LedgerCommand),
}

/// The commands that work on the database through the use-cases.
#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Apply database migrations.
    Migrate,
    /// Create user1@example.com..userN@example.com, each funded.
    Seed {
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        users: u32,
        /// Starting balance of each user.
        #[arg(long, default_value = "1000USDC", value_parser = parse_amount, help = format!("Starting balance: {AMOUNT_HELP}"))]
        balance: Micros,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Credit funds to a user directly (bypasses the chain; one credit per --tx).
    Deposit {
        #[arg(long)]
        user: String,
        #[arg(long, value_parser = parse_amount, help = AMOUNT_HELP)]
        amount: Micros,
        /// Chain transaction hash; a hash is credited once (default: a new one).
        #[arg(long)]
        tx: Option<String>,
        #[arg(long, default_value_t = 0)]
        log_index: i64,
    },
    /// Place a bet; prints the bet id.
    Bet {
        #[arg(long)]
        user: String,
        #[arg(long, value_parser = parse_side)]
        side: Side,
        #[arg(long, value_parser = parse_amount, help = AMOUNT_HELP)]
        amount: Micros,
        /// Round code YYYYMMDD (default: the round taking bets now).
        #[arg(long, value_parser = parse_code)]
        round: Option<RoundCode>,
    },
    /// Cancel a bet for a full refund (until CANCEL_CUTOFF_MIN before lock).
    CancelBet {
        #[arg(long)]
        id: i64,
    },
    /// Queue a withdrawal: the amount moves to pending at once.
    Withdraw {
        #[arg(long)]
        user: String,
        #[arg(long, value_parser = parse_amount, help = AMOUNT_HELP)]
        amount: Micros,
        /// Destination Ethereum address (EIP-55 checked when mixed case).
        #[arg(long)]
        to: String,
    },
    /// The withdrawal queue: list, approve, confirm with the chain tx, fail.
    #[command(subcommand)]
    Withdrawals(WithdrawalCommand),
    /// Open a round (default: the one that should take bets now).
    OpenRound {
        #[arg(long, value_parser = parse_code)]
        code: Option<RoundCode>,
        /// Who is acting (default: cli:$USER); kept in the audit log.
        #[arg(long)]
        actor: Option<String>,
    },
    /// Stop a round taking bets (before its lock instant too, e.g. an outage).
    LockRound {
        #[arg(long, value_parser = parse_code)]
        code: RoundCode,
        /// Why (kept in the audit log with who).
        #[arg(long)]
        reason: Option<String>,
        /// Who is acting (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Settle a round from the oracle (AUTO) or by hand (UP, DOWN, VOID).
    SettleRound {
        #[arg(long, value_parser = parse_code)]
        code: RoundCode,
        /// AUTO, UP, DOWN or VOID.
        #[arg(long)]
        result: String,
        /// Why (required for a manual result; kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
        /// Who is acting (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Official closes.
    #[command(subcommand)]
    Price(PriceCommand),
    /// A user's available balance.
    Balance {
        #[arg(long)]
        user: String,
    },
    /// A user's limits, set on their behalf under their own rules: a stricter
    /// one applies at once, a looser or omitted one after
    /// LIMIT_RAISE_COOLOFF_HOURS; an exclusion is never shortened. Audited.
    Limits(LimitsArgs),
    /// Inspect one round.
    #[command(subcommand)]
    Round(RoundCommand),
    /// Recent rounds, newest first.
    Rounds {
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=1000))]
        limit: i64,
    },
    /// Total value locked and its parts.
    Tvl,
    /// The EVM chain (EVM_RPC_URL): a dev token, the deposit watcher's
    /// state, reorg acknowledgement.
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Compare the deposit token's balances on the chain (HOT_WALLET_ADDRESS
    /// and every deposit address, read at one block) with the ledger's
    /// custody; exits 1 on a shortfall.
    Reconcile,
    /// Move the deposit addresses' tokens into the hot wallet with EIP-2612
    /// permits (no ETH is sent to them): each address holding SWEEP_MIN or
    /// more, read at the settled block. Needs SWEEP_SEED_FILE (the deposit
    /// keys; only this command reads it) and the hot wallet (CHAIN_SENDER=evm,
    /// HOT_WALLET_KEY_FILE), which pays the gas. Follows what an earlier run
    /// left in flight first, then waits for the confirmations; run it again
    /// to finish what a timeout left. Exits 1 if a sweep failed or is still
    /// in flight.
    Sweep {
        /// List what would be swept; sign and send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for the confirmations before exiting (0: do not
        /// wait).
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(0..=86_400))]
        wait_secs: u64,
        /// Instead of sweeping: end sweep ID, whose transferFrom nonce another
        /// transaction used (checked on the chain first), as failed with
        /// nothing booked; audited, with --reason.
        #[arg(long, value_name = "ID", requires = "reason")]
        resolve: Option<i64>,
        /// Why (with --resolve).
        #[arg(long, requires = "resolve")]
        reason: Option<String>,
        /// Who resolves (default cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Operators as people: named accounts with a role (viewer, support,
    /// operator, treasurer, admin) and personal tokens for the admin API.
    /// Run on the host, with the database's credentials; every change is
    /// audited.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Check the ledger's invariants over the transactions after the latest
    /// checkpoint, carrying its totals forward, and write a new checkpoint
    /// when they hold (the first run checks everything); exits 1 if one
    /// fails. --full recomputes the whole ledger, checkpoints included.
    Verify {
        /// Recompute every invariant over the whole ledger, and check the
        /// checkpoints against the entries (writes nothing).
        #[arg(long)]
        full: bool,
    },
    /// Operators' manual actions, newest first: who, what, why, and each
    /// row's place in the log's hash chain; `audit verify` checks the chain,
    /// `audit head` prints its last hash for an outside party to keep.
    Audit {
        #[command(subcommand)]
        command: Option<AuditCommand>,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
    },
    /// Open, lock, settle and void rounds on time, and step withdrawals
    /// through the chain sender (what `serve` also does unless
    /// SCHEDULER=off); every SCHEDULER_TICK_SECS until Ctrl-C.
    Scheduler {
        /// One step (every overdue transition, then opening, then the
        /// withdrawal worker), then exit.
        #[arg(long)]
        once: bool,
    },
}

/// Where a benchmark runs: a fresh database of this backend.
#[derive(Args, Debug)]
pub struct BenchTarget {
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: super::bench::BenchBackend,
    /// PostgreSQL to use (a fresh schema is created in it).
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
    )]
    pub url: String,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Concurrent bets through the service layer; optionally pgbench -N beside it.
    Bets {
        #[command(flatten)]
        target: BenchTarget,
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        users: u32,
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
        concurrency: u64,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Also run `pgbench -N -c CONCURRENCY -j 2` on the same PostgreSQL and report the ratio.
        #[arg(long)]
        pgbench: bool,
    },
    /// The real `serve` in its own process loaded by wrk: start-up time,
    /// idle memory, GET /rounds/current and POST /bets (needs wrk).
    Http {
        #[command(flatten)]
        target: BenchTarget,
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        users: u32,
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(2..=1024))]
        connections: u32,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Also run `pgbench -N -c CONNECTIONS -j 2` on the same PostgreSQL and report the ratio.
        #[arg(long)]
        pgbench: bool,
        /// With --pgbench: this many pairs in turn (the bets, then pgbench
        /// for as long), each pair's ratio listed and their median reported.
        #[arg(long, default_value_t = 1, requires = "pgbench", value_parser = clap::value_parser!(u32).range(1..=20))]
        pairs: u32,
        /// Send every bet with an Idempotency-Key of its own (recorded with the bet).
        #[arg(long)]
        idempotency_keys: bool,
    },
    /// The deposit watcher's catch-up and custody reconciliation against a
    /// development node at EVM_RPC_URL (anvil: scripts/chain-tools), and
    /// the two ways to find deposits among the token's transfers.
    Chain {
        #[command(flatten)]
        target: BenchTarget,
        /// Users with deposit addresses.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        addresses: u32,
        /// Transfers minted to them, round robin.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        transfers: u32,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        per_block: u32,
        /// Blocks in the scanned range at least (empty ones mined after).
        #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        blocks: u64,
        /// Addresses matched both ways (the real ones and made-up ones).
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        topic_addresses: u32,
        /// Addresses per eth_getLogs topic filter.
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        topic_chunk: u32,
    },
    /// Verify a ledger of BETS bets in full, write a checkpoint, add
    /// NEW_BETS, then time the incremental verify from the checkpoint
    /// against the full one.
    Verify {
        #[command(flatten)]
        target: BenchTarget,
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        users: u32,
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        bets: u64,
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        new_bets: u64,
    },
    /// The last minute before a lock against the real `serve`: every player
    /// bets once, piling up before the lock and a few after it; latency,
    /// and every answer checked against the lock instant from the journal.
    Rush {
        #[command(flatten)]
        target: BenchTarget,
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        players: u32,
        /// How many times faster than real time the minute passes (1 to 100).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// Live fan-out: STREAMS `GET /events` streams on the real `serve` (two
    /// instances through Redis with --redis) while bets arrive at RATE a
    /// second; each `pools` event timed from its first bet to its arrival.
    Sse {
        #[command(flatten)]
        target: BenchTarget,
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=15_000))]
        streams: u32,
        #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=50_000))]
        rate: u32,
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Funded players the bets come from.
        #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        players: u32,
        /// Run two instances sharing events through this Redis (PostgreSQL only).
        #[arg(long)]
        redis: Option<String>,
    },
    /// Settle one round of many bets from the oracle; time and peak memory.
    Settle {
        #[command(flatten)]
        target: BenchTarget,
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        users: u32,
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        bets: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum ChainCommand {
    /// Deploy the dev token (6 decimals, EIP-2612 permit, open mint) from
    /// the node's first unlocked account (anvil's) and print its address;
    /// with --mint-to, also mint to that address.
    DevToken {
        /// Mint on this token instead of deploying a new one.
        #[arg(long)]
        token: Option<String>,
        /// Mint to this address.
        #[arg(long, requires = "amount")]
        mint_to: Option<String>,
        #[arg(long, requires = "mint_to", value_parser = parse_amount, help = format!("How much to mint: {AMOUNT_HELP}"))]
        amount: Option<Micros>,
    },
    /// The watcher's cursor, the chain's head and the lag; reorgs; the
    /// last custody checks.
    Status,
    /// One poll of the watcher (what `serve` does every EVM_POLL_MS with
    /// DEPOSIT_SOURCE=evm): credit confirmed transfers, record pending ones.
    Watch,
    /// Acknowledge a reorg deeper than the confirmations, after checking
    /// its credits: crediting from the chain resumes from the cursor.
    AckReorg {
        #[arg(long)]
        id: i64,
        /// Why it is safe to go on (kept with the reorg).
        #[arg(long)]
        reason: String,
        /// Who is acting (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum WithdrawalCommand {
    /// Withdrawals, newest first.
    List {
        /// QUEUED, SUBMITTED, CONFIRMED or FAILED.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1000))]
        limit: i64,
    },
    /// QUEUED -> SUBMITTED: the operator sends it on the chain.
    Approve {
        #[arg(long)]
        id: i64,
        #[arg(long)]
        actor: Option<String>,
    },
    /// -> CONFIRMED: the chain transaction that paid it.
    Confirm {
        #[arg(long)]
        id: i64,
        #[arg(long)]
        tx: String,
        #[arg(long)]
        actor: Option<String>,
    },
    /// A withdrawal the hot wallet sent (CHAIN_SENDER=evm) whose nonce was
    /// used on the chain by another transaction: after the chain confirms
    /// it (the nonce used, none of its transactions mined), it fails, the
    /// funds go back to the user, and the hot wallet's next nonce moves to
    /// the chain's count. The worker never does this by itself.
    ResolveNonce {
        #[arg(long)]
        id: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        actor: Option<String>,
    },
    /// -> FAILED: the funds go back to the user. Once it may have reached
    /// the chain (SUBMITTING, SUBMITTED), only with --tx: the hash of the
    /// transaction the chain rejected.
    Fail {
        #[arg(long)]
        id: i64,
        #[arg(long)]
        reason: String,
        /// The rejected transaction (needed once it may be on the chain).
        #[arg(long)]
        tx: Option<String>,
        #[arg(long)]
        actor: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user.
    Create {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PriceCommand {
    /// Record an official close (ORACLE=manual takes closes only from here).
    Set {
        #[arg(long)]
        date: NaiveDate,
        #[arg(long, value_parser = parse_price)]
        close: Price,
        #[arg(long)]
        actor: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RoundCommand {
    /// Status, pools, result, fee, dust and evidence of a round.
    Show {
        #[arg(long, value_parser = parse_code)]
        code: RoundCode,
    },
}

#[derive(Args, Debug)]
pub struct LimitsArgs {
    #[arg(long)]
    pub user: String,
    /// Maximum total stake per round.
    #[arg(long, value_parser = parse_amount)]
    pub per_round: Option<Micros>,
    /// Maximum total stake per New York day.
    #[arg(long, value_parser = parse_amount)]
    pub per_day: Option<Micros>,
    /// Refuse this user's bets until this date (New York midnight).
    #[arg(long)]
    pub exclude_until: Option<NaiveDate>,
    /// Why (kept in the audit log).
    #[arg(long, default_value = "asked by the player")]
    pub reason: String,
    /// Who is acting (default: cli:$USER).
    #[arg(long)]
    pub actor: Option<String>,
}

fn parse_amount(text: &str) -> Result<Micros, String> {
    Micros::parse_cli(text).map_err(|e| e.to_string())
}

fn parse_side(text: &str) -> Result<Side, String> {
    text.parse()
        .map_err(|e: updown_domain::round::ParseEnumError| e.to_string())
}

fn parse_code(text: &str) -> Result<RoundCode, String> {
    RoundCode::parse(text).map_err(|e| e.to_string())
}

fn parse_price(text: &str) -> Result<Price, String> {
    Price::parse(text).map_err(|e| e.to_string())
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the hash chain from the first row: a row edited, deleted,
    /// inserted or moved behind the service's back is named; exits 1.
    Verify,
    /// The chain's head (last row id and hash): keep it outside (a ticket,
    /// a notary, another company) so even a rewrite of the whole log shows.
    Head,
}

#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Add an operator; prints a generated password once.
    Add {
        #[arg(long)]
        email: String,
        /// viewer, support, operator, treasurer or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Who adds (default cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Every operator, with role and state.
    List,
    /// Change an operator's role.
    SetRole {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        actor: Option<String>,
    },
    /// Disable an operator and revoke every token of theirs.
    Disable {
        #[arg(long)]
        email: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        actor: Option<String>,
    },
    /// A new generated password, printed once.
    ResetPassword {
        #[arg(long)]
        email: String,
        #[arg(long)]
        actor: Option<String>,
    },
    /// Remove an operator's second factor (a lost phone) and end their
    /// sessions; they set it up again from the console.
    ResetTotp {
        #[arg(long)]
        email: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        actor: Option<String>,
    },
    /// A personal token for the admin API (Authorization: Bearer op_...),
    /// printed once.
    Token {
        #[arg(long)]
        email: String,
        /// What it is for (1 to 64 characters).
        #[arg(long)]
        name: String,
        #[arg(long)]
        actor: Option<String>,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| "must be viewer, support, operator, treasurer or admin".into())
}
