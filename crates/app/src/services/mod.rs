//! Use-cases: each loads state from the store, asks the domain what should
//! happen, writes the result in one transaction, and logs the business
//! event. Entry points (the CLI, the HTTP API, the scheduler) call these and
//! never write SQL.

mod accounts;
mod batcher;
mod bets;
mod credentials;
mod keys;
mod queries;
mod rounds;
mod scheduler;
mod sessions;
mod views;
mod wallets;
pub mod webhooks;
mod withdrawal_worker;

use std::sync::Arc;

use updown_domain::calendar::Calendar;
use updown_store::Store;

pub use batcher::BetBatcher;
pub use keys::random_hex;
pub use rounds::{SettleOptions, SettleRequest};
pub use scheduler::Tick;
pub use sessions::{check_password, SESSION_TTL};
pub use withdrawal_worker::WorkerTick;

use crate::chain::{ChainSender, MockChain};
use crate::clock::Clock;
use crate::config::{ChainSenderKind, Config};
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

/// What an [`App`] holds.
pub struct AppParts {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub oracle: Arc<dyn Oracle>,
    /// Sends withdrawals; `None` when operators do (CHAIN_SENDER=manual).
    pub chain: Option<Arc<dyn ChainSender>>,
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
    /// When this process's scheduler last stepped (the clock's time, in
    /// milliseconds since the epoch; `i64::MIN` when it never has).
    last_tick: std::sync::atomic::AtomicI64,
    /// Whether this process runs the scheduler loop.
    pub(crate) scheduler_running: std::sync::atomic::AtomicBool,
    /// Redis, when REDIS_URL is set (connections are made on use).
    pub redis: Option<redis::Client>,
    /// Deposit address derivation, built on first use.
    wallet: Arc<std::sync::OnceLock<updown_domain::wallet::DepositWallet>>,
    /// Where business events go after their transaction commits.
    pub events: EventBus,
    /// Open `GET /events` streams, at most `MAX_EVENT_STREAMS`.
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// Set when the server stops, which ends the event streams.
    stopping: tokio::sync::watch::Sender<bool>,
}

/// Event streams one instance serves at once.
pub const MAX_EVENT_STREAMS: usize = 10_000;

impl App {
    /// Wires the ports together, with the chain sender the configuration
    /// names, and starts the bet batcher (needs a Tokio runtime).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        oracle: Arc<dyn Oracle>,
    ) -> App {
        let chain: Option<Arc<dyn ChainSender>> = match config.chain.sender {
            ChainSenderKind::Mock => Some(Arc::new(MockChain::default())),
            ChainSenderKind::Manual => None,
        };
        App::with_chain(config, store, clock, oracle, chain)
    }

    /// As `new`, with a chain sender of the caller's (tests).
    pub fn with_chain(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        oracle: Arc<dyn Oracle>,
        chain: Option<Arc<dyn ChainSender>>,
    ) -> App {
        let bets = BetBatcher::start(
            store.clone(),
            config.batching.bet_batch_max,
            config.batching.bet_batch_wait,
            config.batching.bet_workers,
        );
        let redis = config
            .events
            .redis_url
            .as_ref()
            .and_then(|url| redis::Client::open(url.expose()).ok());
        let events = match &redis {
            Some(client) => EventBus::with_redis(client.clone()),
            None => EventBus::in_process(),
        };
        let credentials = Arc::<credentials::CredentialCache>::default();
        let changes = Arc::<std::sync::atomic::AtomicU64>::default();
        tokio::spawn(follow_events(
            events.subscribe(),
            credentials.clone(),
            changes.clone(),
        ));
        App(Arc::new(AppParts {
            events,
            event_streams: Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_STREAMS)),
            stopping: tokio::sync::watch::channel(false).0,
            calendar: config.rounds.calendar(),
            config: Arc::new(config),
            store,
            clock,
            oracle,
            chain,
            bets,
            round_ids: Arc::default(),
            taking_bets: Arc::default(),
            wallet: Arc::default(),
            redis,
            changes,
            credentials,
            last_tick: std::sync::atomic::AtomicI64::new(i64::MIN),
            scheduler_running: std::sync::atomic::AtomicBool::new(false),
            view: Arc::default(),
        }))
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

    /// Ends every event stream (the server is stopping).
    pub fn stop_streams(&self) {
        self.stopping.send_replace(true);
    }

    /// Changes to `true` when the server stops.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    pub(crate) fn scheduler_ticked(&self, at: chrono::DateTime<chrono::Utc>) {
        self.last_tick
            .store(at.timestamp_millis(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether this process runs the scheduler loop now.
    pub fn scheduler_running(&self) -> bool {
        self.scheduler_running
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// When this process's scheduler last stepped, if it ever has.
    pub fn scheduler_last_tick(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.last_tick.load(std::sync::atomic::Ordering::Relaxed) {
            i64::MIN => None,
            millis => chrono::DateTime::from_timestamp_millis(millis),
        }
    }
}
