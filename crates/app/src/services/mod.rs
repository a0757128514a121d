//! Use-cases: each loads state from the store, asks the domain what should
//! happen, writes the result in one transaction, and logs the business
//! event. Entry points (the CLI, the HTTP API, the scheduler) call these and
//! never write SQL.

mod accounts;
mod approvals;
mod batcher;
mod bets;
pub mod context;
mod credentials;
mod custody;
mod keys;
mod operators;
mod oracle;
mod queries;
mod rounds;
mod scheduler;
mod sender;
mod sessions;
mod sweep;
mod views;
mod wallets;
pub mod watcher;
pub mod webhooks;
mod withdrawal_worker;

use std::sync::Arc;

use updown_domain::calendar::Calendar;
use updown_store::Store;

pub use approvals::{ByHand, Decision};
pub use batcher::BetBatcher;
pub use custody::Reconciliation;
pub use keys::random_hex;
pub use operators::{
    OperatorSignIn, Staff, TotpSetup, BREAK_GLASS, LOCK_AFTER, LOCK_FOR, OPERATOR_SESSION_TTL,
};
pub use rounds::{SettleOptions, SettleRequest};
pub use scheduler::{Heartbeat, Tick};
pub use sender::{EvmSender, HotBalances, SenderStatus};
pub use sessions::{check_password, SESSION_TTL};
pub use sweep::{SweepLine, SweepStep};
pub use wallets::parse_address;
pub use watcher::{ChainWatch, WatchStatus, WatchTick};
pub use withdrawal_worker::WorkerTick;

use crate::chain::ChainSender;
use crate::clock::Clock;
use crate::config::Config;
use crate::events::{Event, EventBus, EventKind};
use crate::oracle::Oracle;

/// Everything a use-case needs, shared by every entry point. Cloning is
/// one reference count (each request clones it).
#[derive(Clone)]
pub struct App(Arc<AppParts>);

impl std::ops::Deref for App {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// What an [`App`] holds: the ports, the configuration, and the caches
/// and state the use-cases keep between calls. Nothing of HTTP's (that is
/// in `api`), and no wiring (that is `startup.rs`).
pub struct AppParts {
    /// Private to the services: entry points call a use-case.
    pub(crate) store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub oracle: Arc<dyn Oracle>,
    /// Sends withdrawals; `None` when operators do (CHAIN_SENDER=manual).
    pub chain: Option<Arc<dyn ChainSender>>,
    /// Reads deposits from the chain; `None` unless DEPOSIT_SOURCE=evm.
    pub watch: Option<Arc<ChainWatch>>,
    /// The hot wallet's sender; `None` unless CHAIN_SENDER=evm.
    pub sender: Option<Arc<EvmSender>>,
    pub config: Arc<Config>,
    pub calendar: Calendar,
    bets: BetBatcher,
    /// Round ids by code: a round's id never changes once it exists, so
    /// bets need not look it up each time (the batch checks the round's
    /// state under lock anyway).
    round_ids: Arc<
        std::sync::RwLock<
            std::collections::HashMap<updown_domain::ids::RoundCode, updown_domain::ids::RoundId>,
        >,
    >,
    /// The schedule of the round taking bets, kept until its lock instant
    /// so bets do not recompute the calendar.
    taking_bets: Arc<std::sync::RwLock<Option<updown_domain::schedule::RoundSchedule>>>,
    /// Bumped by every change the current round's view shows.
    changes: Arc<std::sync::atomic::AtomicU64>,
    view: Arc<views::CurrentRoundView>,
    /// Credentials recently seen, by hash (see `credentials`).
    credentials: Arc<credentials::CredentialCache>,
    /// This process's scheduler: whether it runs, when it last stepped.
    heartbeat: Heartbeat,
    /// The read replica as last checked (see `follow_replica`).
    replica: Arc<std::sync::RwLock<updown_store::ReplicaState>>,
    /// Deposit address derivation, built on first use.
    wallet: Arc<std::sync::OnceLock<updown_domain::wallet::DepositWallet>>,
    /// Where business events go after their transaction commits.
    pub events: EventBus,
}

/// The ports an [`App`] is built from (see `startup.rs`, which makes
/// them and starts what runs in the background).
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub oracle: Arc<dyn Oracle>,
    pub chain: Option<Arc<dyn ChainSender>>,
    pub watch: Option<Arc<ChainWatch>>,
    pub sender: Option<Arc<EvmSender>>,
    pub events: EventBus,
    pub bets: BetBatcher,
}

impl App {
    /// An app over its ports. Starts nothing: `startup::wire` runs the
    /// bet batcher and [`App::follow_events`].
    pub fn new(config: Config, ports: Ports) -> App {
        App(Arc::new(AppParts {
            calendar: config.rounds.calendar(),
            config: Arc::new(config),
            store: ports.store,
            clock: ports.clock,
            oracle: ports.oracle,
            chain: ports.chain,
            watch: ports.watch,
            sender: ports.sender,
            bets: ports.bets,
            events: ports.events,
            round_ids: Arc::default(),
            taking_bets: Arc::default(),
            wallet: Arc::default(),
            changes: Arc::default(),
            credentials: Arc::default(),
            heartbeat: Heartbeat::default(),
            replica: Arc::new(std::sync::RwLock::new(
                updown_store::ReplicaState::NotConfigured,
            )),
            view: Arc::default(),
        }))
    }

    /// Keeps this instance's caches true to events from every instance
    /// (see [`follow_events`]); ends with the bus. `startup` spawns it.
    pub fn follow_events(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        follow_events(
            self.events.subscribe(),
            self.credentials.clone(),
            self.changes.clone(),
        )
    }
}

/// Keeps this instance's caches true to events from every instance: a
/// revoked key or changed limits drop the user's cached credentials, and
/// round events make the current round's view rebuild. Ends with the bus.
async fn follow_events(
    mut events: tokio::sync::broadcast::Receiver<Arc<crate::events::Event>>,
    credentials: Arc<credentials::CredentialCache>,
    changes: Arc<std::sync::atomic::AtomicU64>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(event) => {
                if event.kind == EventKind::CredentialsChanged {
                    if let Some(user) = event.user {
                        credentials.forget_user(updown_domain::ids::UserId(user));
                    }
                }
                if event.kind.moves_rounds() {
                    changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            // Missed some: forget everything, to be safe.
            Err(RecvError::Lagged(_)) => credentials.clear(),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Midnight of `date` in New York, as an instant (self-exclusion ends then).
pub fn new_york_midnight(
    date: chrono::NaiveDate,
) -> crate::error::AppResult<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    chrono_tz::America::New_York
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
        .earliest()
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok_or_else(|| {
            crate::error::AppError::Invalid(format!("{date} has no midnight in New York"))
        })
}

impl App {
    /// Publishes an event everyone may see, timed by the clock.
    pub(crate) fn publish(&self, kind: EventKind, payload: serde_json::Value) {
        self.events
            .publish(Event::public(kind, self.clock.now(), payload));
    }

    /// Publishes `user`'s event: whole to them, `public` to everyone else.
    pub(crate) fn publish_for(
        &self,
        user: updown_domain::ids::UserId,
        kind: EventKind,
        payload: serde_json::Value,
        public: Option<serde_json::Value>,
    ) {
        self.events.publish(Event::private(
            kind,
            self.clock.now(),
            user,
            payload,
            public,
        ));
    }
}

/// Bounds what is recorded of a text from outside (an unchecked field, a
/// provider's error): its first 200 characters.
pub(crate) fn clip(text: &str) -> String {
    text.chars().take(200).collect()
}
