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
//! The task starts with the first stream and ends when the server stops.
//! If it falls behind the bus it sends `resync` to everyone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
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
/// How often players' channels nobody listens to any more are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

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
}

/// What one stream listens to: everyone's frames, and its player's own.
pub struct Listener {
    pub public: broadcast::Receiver<Frame>,
    pub own: Option<broadcast::Receiver<Frame>>,
}

impl Fanout {
    /// Starts routing `app`'s events until `stopping` turns true.
    pub fn start(app: App, stopping: watch::Receiver<bool>) -> Arc<Fanout> {
        let fanout = Arc::new(Fanout {
            public: broadcast::channel(PUBLIC_CAPACITY).0,
            players: Mutex::new(HashMap::new()),
        });
        let events = app.events.subscribe();
        tokio::spawn(fanout.clone().run(app, events, stopping));
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

    async fn run(
        self: Arc<Self>,
        app: App,
        mut events: broadcast::Receiver<Arc<Event>>,
        mut stopping: watch::Receiver<bool>,
    ) {
        // Rounds whose pools changed, with when the first change was told.
        let mut changed: BTreeMap<String, String> = BTreeMap::new();
        let mut last_pools = Instant::now() - POOLS_EVERY;
        let mut last_sweep = Instant::now();
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = keep_alive.tick() => {
                    let _ = self.public.send(Bytes::from_static(KEEP_ALIVE_FRAME));
                },
                received = events.recv() => match received {
                    Ok(event) => self.route(&event, &mut changed),
                    Err(RecvError::Lagged(missed)) => {
                        // Players' events were lost too: everyone refetches.
                        let _ = self.public.send(resync(missed));
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = tokio::time::sleep_until(last_pools + POOLS_EVERY), if !changed.is_empty() => {
                    last_pools = Instant::now();
                    for (round, since) in std::mem::take(&mut changed) {
                        match pools_frame(&app, &round, &since).await {
                            Some(frame) => {
                                let _ = self.public.send(frame);
                            }
                            None => tracing::warn!(round, "could not read the pools for the live streams"),
                        }
                    }
                    if last_sweep.elapsed() >= SWEEP_EVERY {
                        last_sweep = Instant::now();
                        self.players
                            .lock()
                            .expect("players' channels")
                            .retain(|_, channel| channel.receiver_count() > 0);
                    }
                },
                _ = async { stopping.wait_for(|stop| *stop).await.map(drop) } => return,
            }
        }
    }

    /// Sends `event` where it goes, once.
    fn route(&self, event: &Event, changed: &mut BTreeMap<String, String>) {
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
                changed
                    .entry(round.to_string())
                    .or_insert_with(|| event.time.clone());
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
