//! Business events, published after their transaction commits: to every
//! stream of this process at once, and to the other instances through the
//! Redis channel `updown.events` when `REDIS_URL` is set.
//!
//! Events tell; they do not decide. Money is in the ledger, so an event
//! lost while Redis is away costs a live page a refresh, never a cent, and
//! publishing never waits: a full outbound queue drops the event and
//! counts it (`updown_events_dropped_total`).
//!
//! An event may belong to a user (their bet, deposit, withdrawal, key): its
//! full payload goes only to that user's stream. Some of those also have a
//! public face (a bet moves the pools everyone sees: side and stake, no
//! ids), and round events are public whole.

mod redis_bus;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;
use updown_domain::ids::UserId;

/// The Redis channel every instance publishes on and listens to.
pub const CHANNEL: &str = "updown.events";
/// Events kept for a slow stream before it is told it missed some.
const LOCAL_CAPACITY: usize = 4096;
/// Events waiting to go to Redis before new ones are dropped.
const OUTBOUND_CAPACITY: usize = 16_384;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RoundOpened,
    BetPlaced,
    BetCancelled,
    RoundLocked,
    RoundSettled,
    RoundVoided,
    /// The oracle's result, published ahead of its payouts
    /// (`SETTLE_DISPUTE_MIN`).
    RoundResult,
    DepositCredited,
    WithdrawalUpdated,
    /// A key was revoked or a player's limits changed: every instance
    /// forgets what it cached about the user.
    CredentialsChanged,
    /// The chain replaced blocks deeper than the confirmations; crediting
    /// from the chain halts until an operator acknowledges it.
    ReorgDetected,
    /// The chain holds less of the token than the ledger owes.
    CustodyShortfall,
    /// A nonce the hot wallet stored was used by a transaction it never
    /// signed; sending waits for an operator.
    NonceConflict,
    /// The oracle's sources disagree beyond the spread, or one revised a
    /// close already recorded: an operator should look.
    OracleIncident,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RoundOpened => "round_opened",
            EventKind::BetPlaced => "bet_placed",
            EventKind::BetCancelled => "bet_cancelled",
            EventKind::RoundLocked => "round_locked",
            EventKind::RoundSettled => "round_settled",
            EventKind::RoundVoided => "round_voided",
            EventKind::RoundResult => "round_result",
            EventKind::DepositCredited => "deposit_credited",
            EventKind::WithdrawalUpdated => "withdrawal_updated",
            EventKind::CredentialsChanged => "credentials_changed",
            EventKind::ReorgDetected => "reorg_detected",
            EventKind::CustodyShortfall => "custody_shortfall",
            EventKind::NonceConflict => "nonce_conflict",
            EventKind::OracleIncident => "oracle_incident",
        }
    }

    /// Whether the event changes what a round's view shows.
    pub fn moves_rounds(self) -> bool {
        matches!(
            self,
            EventKind::RoundOpened
                | EventKind::BetPlaced
                | EventKind::BetCancelled
                | EventKind::RoundLocked
                | EventKind::RoundSettled
                | EventKind::RoundVoided
                | EventKind::RoundResult
        )
    }
}

/// One event as it travels between instances.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// RFC 3339, from the service's clock.
    pub time: String,
    /// The user the event belongs to, who sees `payload` whole.
    pub user: Option<i64>,
    pub payload: Value,
    /// What everyone else sees, if anything.
    pub public: Option<Value>,
}

/// An event as one stream shows it.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct EventOut {
    /// round_opened, bet_placed, bet_cancelled, round_locked,
    /// round_result, round_settled, round_voided, deposit_credited,
    /// withdrawal_updated, and for operators reorg_detected,
    /// custody_shortfall, nonce_conflict, oracle_incident
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// RFC 3339.
    pub time: String,
    pub payload: Value,
}

impl Event {
    /// An event everyone sees whole.
    pub fn public(kind: EventKind, time: DateTime<Utc>, payload: Value) -> Event {
        Event {
            kind,
            time: time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            user: None,
            payload: payload.clone(),
            public: Some(payload),
        }
    }

    /// An event of `user`'s, seen only by them, unless `public` is given.
    pub fn private(
        kind: EventKind,
        time: DateTime<Utc>,
        user: UserId,
        payload: Value,
        public: Option<Value>,
    ) -> Event {
        Event {
            kind,
            time: time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            user: Some(user.0),
            payload,
            public,
        }
    }

    /// What a stream opened by `viewer` (or anonymously) shows of this
    /// event, if anything. Internal kinds are never shown.
    pub fn seen_by(&self, viewer: Option<UserId>) -> Option<EventOut> {
        if self.kind == EventKind::CredentialsChanged {
            return None;
        }
        let payload = match (viewer, self.user) {
            (Some(viewer), Some(owner)) if viewer.0 == owner => self.payload.clone(),
            _ => self.public.clone()?,
        };
        Some(EventOut {
            kind: self.kind.as_str(),
            time: self.time.clone(),
            payload,
        })
    }
}

/// An event with the instance it came from, as sent on Redis.
#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: u64,
    event: Event,
}

/// Where events go: this process's streams, and Redis when configured.
pub struct EventBus {
    /// Tells this instance's envelopes from the others' on Redis.
    origin: u64,
    local: broadcast::Sender<Arc<Event>>,
    outbound: Option<tokio::sync::mpsc::Sender<Arc<Event>>>,
    redis: Option<Arc<redis_bus::RedisLink>>,
    /// Redis's client, when events go through it (health checks ping it).
    client: Option<redis::Client>,
}

impl EventBus {
    /// Events stay in this process (no `REDIS_URL`).
    pub fn in_process() -> EventBus {
        EventBus {
            origin: random_origin(),
            local: broadcast::channel(LOCAL_CAPACITY).0,
            outbound: None,
            redis: None,
            client: None,
        }
    }

    /// Events also go to and come from other instances through Redis.
    /// Starts the publishing and listening tasks (needs a Tokio runtime);
    /// both reconnect by themselves while Redis is away.
    pub fn with_redis(client: redis::Client) -> EventBus {
        let mut bus = EventBus::in_process();
        let (sender, receiver) = tokio::sync::mpsc::channel(OUTBOUND_CAPACITY);
        let link = Arc::new(redis_bus::RedisLink::default());
        tokio::spawn(redis_bus::publish_loop(
            client.clone(),
            bus.origin,
            receiver,
            link.clone(),
        ));
        tokio::spawn(redis_bus::listen_loop(
            client.clone(),
            bus.origin,
            bus.local.clone(),
            link.clone(),
        ));
        bus.outbound = Some(sender);
        bus.redis = Some(link);
        bus.client = Some(client);
        bus
    }

    /// Redis's client, when events go through it.
    pub fn redis_client(&self) -> Option<&redis::Client> {
        self.client.as_ref()
    }

    /// Sends `event` to this process's streams and queues it for Redis.
    /// Never waits.
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        metrics::counter!("updown_events_total", "type" => event.kind.as_str()).increment(1);
        // No stream listening is fine.
        let _ = self.local.send(event.clone());
        if let (Some(outbound), Some(link)) = (&self.outbound, &self.redis) {
            // Counted before sending, so the publisher never counts it
            // done first.
            link.in_flight
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if outbound.try_send(event).is_err() {
                link.in_flight
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                metrics::counter!("updown_events_dropped_total").increment(1);
            }
        }
    }

    /// Waits, at most `within`, until every event queued for Redis has
    /// been sent or given up on: a command that exits right after acting
    /// (`updown lock-round`, the end of `serve`) calls it, so its events
    /// reach the other instances.
    pub async fn flush(&self, within: std::time::Duration) {
        let Some(link) = &self.redis else {
            return;
        };
        let deadline = tokio::time::Instant::now() + within;
        while link.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Every event from now on, from this instance and (with Redis) the
    /// others.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.local.subscribe()
    }

    /// Whether events reach the other instances now: `None` without
    /// Redis.
    pub fn redis_connected(&self) -> Option<bool> {
        self.redis.as_ref().map(|link| link.is_up())
    }
}

fn random_origin() -> u64 {
    let mut bytes = [0u8; 8];
    // A clash only makes two instances ignore each other's events; the
    // fallback is the process id.
    if getrandom::fill(&mut bytes).is_err() {
        return u64::from(std::process::id());
    }
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T20:58:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_private_event_shows_whole_only_to_its_owner() {
        let event = Event::private(
            EventKind::BetPlaced,
            at(),
            UserId(7),
            json!({"bet_id": 3, "side": "UP", "stake": 5}),
            Some(json!({"side": "UP", "stake": 5})),
        );
        assert_eq!(event.seen_by(Some(UserId(7))).unwrap().payload["bet_id"], 3);
        let other = event.seen_by(Some(UserId(8))).unwrap();
        assert_eq!(other.payload, json!({"side": "UP", "stake": 5}));
        assert_eq!(event.seen_by(None).unwrap().payload, other.payload);
        assert_eq!(other.kind, "bet_placed");
    }

    #[test]
    fn an_event_without_a_public_face_is_hidden_from_others() {
        let event = Event::private(
            EventKind::DepositCredited,
            at(),
            UserId(7),
            json!({"amount": 5}),
            None,
        );
        assert!(event.seen_by(None).is_none());
        assert!(event.seen_by(Some(UserId(8))).is_none());
        assert!(event.seen_by(Some(UserId(7))).is_some());
        let internal = Event::private(
            EventKind::CredentialsChanged,
            at(),
            UserId(7),
            json!({}),
            None,
        );
        assert!(internal.seen_by(Some(UserId(7))).is_none());
    }

    #[tokio::test]
    async fn published_events_reach_every_local_stream() {
        let bus = EventBus::in_process();
        let mut first = bus.subscribe();
        let mut second = bus.subscribe();
        bus.publish(Event::public(
            EventKind::RoundOpened,
            at(),
            json!({"round": "20261124"}),
        ));
        assert_eq!(first.recv().await.unwrap().kind, EventKind::RoundOpened);
        assert_eq!(second.recv().await.unwrap().payload["round"], "20261124");
    }
}
