//! The two Redis tasks: one publishes this instance's events (pipelined,
//! up to `BATCH` per round trip), one listens for the other instances'.
//! Each reconnects after a failure with capped, jittered backoff; while
//! Redis is away, outbound events are dropped and counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};

use super::{Envelope, Event, CHANNEL};
use crate::retry::Backoff;

/// Events sent in one pipeline.
const BATCH: usize = 256;
/// Longest wait for Redis to accept a connection or a pipeline.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

fn retries() -> Backoff {
    Backoff::new(RETRY_MIN, RETRY_MAX)
}

/// Whether both tasks are connected now, and how many events wait to be
/// sent.
#[derive(Default)]
pub struct RedisLink {
    publishing: AtomicBool,
    listening: AtomicBool,
    /// Queued for Redis and neither sent nor dropped yet.
    pub(super) in_flight: AtomicU64,
}

impl RedisLink {
    pub fn is_up(&self) -> bool {
        self.publishing.load(Ordering::Relaxed) && self.listening.load(Ordering::Relaxed)
    }

    /// `count` events were sent or dropped.
    fn done(&self, count: usize) {
        self.in_flight.fetch_sub(count as u64, Ordering::Relaxed);
    }
}

pub async fn publish_loop(
    client: redis::Client,
    origin: u64,
    mut events: mpsc::Receiver<Arc<Event>>,
    link: Arc<RedisLink>,
) {
    let mut retry = retries();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let connected =
            tokio::time::timeout(IO_TIMEOUT, client.get_multiplexed_async_connection()).await;
        let mut connection = match connected {
            Ok(Ok(connection)) => connection,
            failed => {
                if link.publishing.swap(false, Ordering::Relaxed) || retry.is_fresh() {
                    tracing::warn!(error = ?failed.err(), "events: cannot connect to Redis to publish; retrying");
                }
                let wait = retry.next_wait();
                // Events meanwhile would be stale by the time Redis is back.
                drop_until(&mut events, wait, &link).await;
                if events.is_closed() && events.is_empty() {
                    return;
                }
                continue;
            }
        };
        link.publishing.store(true, Ordering::Relaxed);
        retry.reset();
        loop {
            if events.recv_many(&mut batch, BATCH).await == 0 {
                return;
            }
            let count = batch.len();
            let mut pipe = redis::pipe();
            for event in batch.drain(..) {
                let envelope = Envelope {
                    origin,
                    event: (*event).clone(),
                };
                let text = serde_json::to_string(&envelope).expect("events serialise");
                pipe.cmd("PUBLISH").arg(CHANNEL).arg(text).ignore();
            }
            let sent = tokio::time::timeout(IO_TIMEOUT, pipe.query_async::<()>(&mut connection));
            let sent = matches!(sent.await, Ok(Ok(())));
            link.done(count);
            if !sent {
                metrics::counter!("updown_events_dropped_total").increment(count as u64);
                link.publishing.store(false, Ordering::Relaxed);
                tracing::warn!("events: publishing to Redis failed; reconnecting");
                break;
            }
        }
    }
}

/// Drops outbound events for `wait`.
async fn drop_until(events: &mut mpsc::Receiver<Arc<Event>>, wait: Duration, link: &RedisLink) {
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, events.recv()).await {
        metrics::counter!("updown_events_dropped_total").increment(1);
        link.done(1);
    }
}

pub async fn listen_loop(
    client: redis::Client,
    origin: u64,
    local: broadcast::Sender<Arc<Event>>,
    link: Arc<RedisLink>,
) {
    let mut retry = retries();
    loop {
        let subscribed = tokio::time::timeout(IO_TIMEOUT, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        let pubsub = match subscribed {
            Ok(Ok(pubsub)) => pubsub,
            failed => {
                if link.listening.swap(false, Ordering::Relaxed) || retry.is_fresh() {
                    tracing::warn!(error = ?failed.err(), "events: cannot subscribe on Redis; retrying");
                }
                tokio::time::sleep(retry.next_wait()).await;
                continue;
            }
        };
        link.listening.store(true, Ordering::Relaxed);
        retry.reset();
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let Ok(envelope) = serde_json::from_slice::<Envelope>(message.get_payload_bytes())
            else {
                tracing::warn!("events: ignored a message on {CHANNEL} that is not an event");
                continue;
            };
            if envelope.origin != origin {
                let _ = local.send(Arc::new(envelope.event));
            }
        }
        link.listening.store(false, Ordering::Relaxed);
        tracing::warn!("events: the Redis subscription ended; resubscribing");
        tokio::time::sleep(retry.next_wait()).await;
    }
}
