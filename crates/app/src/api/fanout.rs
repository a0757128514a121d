//! One process's fan-out of events to its `GET /events` streams.
//!
//! Each stream used to hear every event and filter and serialise it itself:
//! with 10,000 streams and 2,000 bets a second, that is 20 million
//! renderings a second. Instead one task per process routes each event
//! once, rendered once:
//!
//! - a player's own events (their bets whole, with ids; deposits;
//!   withdrawals) go to that player's channel, which only their streams
//!   hear;
//! - round events go to the public channel, which every stream hears;
//! - bets are not repeated one by one to everyone. A bet or a cancel marks
//!   its round, and at most every [`POOLS_EVERY`] the task reads the
//!   round's pools from the database and sends one `pools` event with the
//!   totals, the implied multipliers, and `since`: when the first change it
//!   reflects was published. The database, not a running sum of events, is
//!   the source, so an event lost between instances costs at most 100 ms
//!   of staleness, never a wrong total.
//!
//! Each frame is rendered once to its Server-Sent Events text and the same
//! bytes go to every stream; the keep-alive comment too, from one timer.
//! Two tasks start with the first stream and end when the server stops:
//! one routes events and never waits for the database, the other reads
//! and sends the pools (a slow read spaces them out, it holds nothing
//! up). Players' channels nobody listens to are dropped at each keep-alive.
//! If the router falls behind the bus it sends `resync` to everyone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch, Notify};
use tokio::time::Instant;
use updown_domain::ids::{RoundCode, UserId};

use crate::events::{Event, EventKind, EventOut};
use crate::services::App;

/// How often at most a round's `pools` event goes out while bets arrive.
pub const POOLS_EVERY: Duration = Duration::from_millis(100);
/// Frames a stream may fall behind on the public channel before it is
/// sent `resync`: at 10 `pools` a second, about 100 s.
const PUBLIC_CAPACITY: usize = 1024;
/// The same for a player's own channel.
const PLAYER_CAPACITY: usize = 256;
/// A round whose pools could not be read is tried again this much later.
const RETRY_POOLS_AFTER: Duration = Duration::from_secs(1);

/// An event as streams send it, rendered once to its Server-Sent Events
/// text (`event:` the type, `data:` the JSON); every stream sends the same
/// bytes.
pub type Frame = Bytes;

fn frame(kind: &str, data: &str) -> Frame {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

fn frame_of(out: &EventOut) -> Frame {
    frame(
        out.kind,
        &serde_json::to_string(out).expect("events serialise"),
    )
}

/// Told to a stream that missed frames: refetch what you show.
pub fn resync(missed: u64) -> Frame {
    frame("resync", &format!("{{\"missed\":{missed}}}"))
}

/// A comment line every [`KEEP_ALIVE`] keeps proxies from closing quiet
/// streams: one timer for all of them.
const KEEP_ALIVE_FRAME: &[u8] = b":\n\n";
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The channels streams listen to.
pub struct Fanout {
    public: broadcast::Sender<Frame>,
    players: Mutex<HashMap<UserId, broadcast::Sender<Frame>>>,
    /// Rounds whose pools changed, with when the first change was told.
    changed: Mutex<BTreeMap<String, String>>,
    /// Wakes the pools' publisher.
    pools_due: Notify,
}

/// What one stream listens to: everyone's frames, and its player's own.
pub struct Listener {
    pub public: broadcast::Receiver<Frame>,
    pub own: Option<broadcast::Receiver<Frame>>,
}

impl Fanout {
    /// Starts routing `app`'s events, and publishing the pools, until
    /// `stopping` turns true.
    pub fn start(app: App, stopping: watch::Receiver<bool>) -> Arc<Fanout> {
        let fanout = Arc::new(Fanout {
            public: broadcast::channel(PUBLIC_CAPACITY).0,
            players: Mutex::new(HashMap::new()),
            changed: Mutex::new(BTreeMap::new()),
            pools_due: Notify::new(),
        });
        let events = app.events.subscribe();
        tokio::spawn(fanout.clone().route_events(events, stopping.clone()));
        tokio::spawn(fanout.clone().publish_pools(app, stopping));
        fanout
    }

    /// A new stream's channels; `viewer`'s own when signed in.
    pub fn listen(&self, viewer: Option<UserId>) -> Listener {
        let own = viewer.map(|user| {
            self.players
                .lock()
                .expect("players' channels")
                .entry(user)
                .or_insert_with(|| broadcast::channel(PLAYER_CAPACITY).0)
                .subscribe()
        });
        Listener {
            public: self.public.subscribe(),
            own,
        }
    }

    /// Routes every event as it comes; never waits for the database.
    async fn route_events(
        self: Arc<Self>,
        mut events: broadcast::Receiver<Arc<Event>>,
        mut stopping: watch::Receiver<bool>,
    ) {
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = keep_alive.tick() => {
                    let _ = self.public.send(Bytes::from_static(KEEP_ALIVE_FRAME));
                    // Players who closed every stream.
                    self.players
                        .lock()
                        .expect("players' channels")
                        .retain(|_, channel| channel.receiver_count() > 0);
                },
                received = events.recv() => match received {
                    Ok(event) => self.route(&event),
                    Err(RecvError::Lagged(missed)) => {
                        // Players' events were lost too: everyone refetches.
                        let _ = self.public.send(resync(missed));
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = async { stopping.wait_for(|stop| *stop).await.map(drop) } => return,
            }
        }
    }

    /// Sends the `pools` of the rounds that changed, at most every
    /// [`POOLS_EVERY`]; a slow read only spaces them out. A round whose
    /// pools could not be read is tried again a second later.
    async fn publish_pools(self: Arc<Self>, app: App, mut stopping: watch::Receiver<bool>) {
        let mut next = Instant::now();
        loop {
            let wait = async {
                self.pools_due.notified().await;
                tokio::time::sleep_until(next).await;
            };
            tokio::select! {
                _ = wait => {},
                _ = async { stopping.wait_for(|stop| *stop).await.map(drop) } => return,
            }
            next = Instant::now() + POOLS_EVERY;
            let rounds = std::mem::take(&mut *self.changed.lock().expect("changed rounds"));
            for (round, since) in rounds {
                match pools_frame(&app, &round, &since).await {
                    Some(frame) => {
                        let _ = self.public.send(frame);
                    }
                    None => {
                        tracing::warn!(round, "could not read the pools for the live streams");
                        self.changed
                            .lock()
                            .expect("changed rounds")
                            .entry(round)
                            .or_insert(since);
                        self.pools_due.notify_one();
                        next = Instant::now() + RETRY_POOLS_AFTER;
                    }
                }
            }
        }
    }

    /// Sends `event` where it goes, once.
    fn route(&self, event: &Event) {
        if let Some(owner) = event.user.map(UserId) {
            if let Some(out) = event.seen_by(Some(owner)) {
                let mut players = self.players.lock().expect("players' channels");
                if let Some(channel) = players.get(&owner) {
                    if channel.send(frame_of(&out)).is_err() {
                        // Nobody listens any more.
                        players.remove(&owner);
                    }
                }
            }
        }
        if matches!(event.kind, EventKind::BetPlaced | EventKind::BetCancelled) {
            if let Some(round) = event.payload["round"].as_str() {
                self.changed
                    .lock()
                    .expect("changed rounds")
                    .entry(round.to_string())
                    .or_insert_with(|| event.time.clone());
                self.pools_due.notify_one();
            }
            return;
        }
        if let Some(out) = event.seen_by(None) {
            let _ = self.public.send(frame_of(&out));
        }
    }
}

/// The `pools` event of round `code` as the database has it now.
async fn pools_frame(app: &App, code: &str, since: &str) -> Option<Frame> {
    let code = RoundCode::parse(code).ok()?;
    let round = app.round(code).await.ok()?;
    let view = app.round_view(&round).await.ok()?;
    let out = EventOut {
        kind: "pools",
        time: app
            .clock
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        payload: json!({
            "round": view.code,
            "pool_up": view.pool_up,
            "pool_down": view.pool_down,
            "bets_up": view.bets_up,
            "bets_down": view.bets_down,
            "implied_multiplier_up": view.implied_multiplier_up,
            "implied_multiplier_down": view.implied_multiplier_down,
            "since": since,
        }),
    };
    Some(frame_of(&out))
}
