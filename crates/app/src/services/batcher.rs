//! Group commit for bets: concurrent bets are gathered into one database
//! transaction, so one commit (one fsync) acknowledges many of them.
//!
//! A worker takes the first waiting bet, then keeps gathering while another
//! worker's batch is in flight or while it has fewer than about the last
//! batch's size, and starts as soon as neither holds (or its batch is full,
//! or `max_wait` has passed). An idle system answers at once; a busy one
//! fills each batch with what comes back in a round trip. Every answer is
//! sent only after its batch committed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use tokio::sync::{mpsc, oneshot, Mutex};
use updown_domain::ids::RoundId;
use updown_store::{Bet, BetRefusalReason, BetRequest, Store, StoreError, StoreResult};

/// Bets waiting for a worker, at most; a full queue makes callers wait.
const QUEUE_CAPACITY: usize = 8192;

type Answer = StoreResult<Result<Bet, BetRefusalReason>>;

struct Job {
    round: RoundId,
    queued: Instant,
    request: BetRequest,
    reply: oneshot::Sender<Answer>,
}

#[derive(Clone)]
pub struct BetBatcher {
    queue: mpsc::Sender<Job>,
}

impl BetBatcher {
    pub fn start(
        store: Arc<dyn Store>,
        max_batch: usize,
        max_wait: Duration,
        workers: usize,
    ) -> BetBatcher {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let shared = Arc::new(Shared {
            receiver: Mutex::new(receiver),
            in_flight: AtomicUsize::new(0),
            recent: AtomicUsize::new(1),
            finished: Notify::new(),
            max_batch: max_batch.max(1),
            max_wait,
        });
        for _ in 0..workers.max(1) {
            tokio::spawn(work(store.clone(), shared.clone()));
        }
        BetBatcher { queue }
    }

    /// Places one bet; returns once it is committed or refused.
    pub async fn submit(&self, round: RoundId, request: BetRequest) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job {
                round,
                queued: Instant::now(),
                request,
                reply,
            })
            .await
            .map_err(|_| StoreError::Other(anyhow::anyhow!("the bet queue is closed")))?;
        answer.await.map_err(|_| {
            StoreError::Other(anyhow::anyhow!("the bet worker stopped before answering"))
        })?
    }
}

/// What the workers share: the queue, and how many batches are writing.
struct Shared {
    receiver: Mutex<mpsc::Receiver<Job>>,
    in_flight: AtomicUsize,
    /// The size of the last batch: under steady load about as many bets
    /// come back each round trip, so a batch waits (up to `max_wait`)
    /// for most of them rather than leave with the first few.
    recent: AtomicUsize,
    finished: Notify,
    max_batch: usize,
    max_wait: Duration,
}

impl Shared {
    /// The next batch: the first job, then more while another batch is in
    /// flight. `None` once the queue is closed.
    async fn gather(&self) -> Option<Vec<Job>> {
        let mut receiver = self.receiver.lock().await;
        let mut jobs = vec![receiver.recv().await?];
        let deadline = Instant::now() + self.max_wait;
        let target = (self.recent.load(Ordering::Relaxed) * 3 / 4).max(1);
        while jobs.len() < self.max_batch {
            if let Ok(job) = receiver.try_recv() {
                jobs.push(job);
                continue;
            }
            // Register for the wake-up before looking, so none is missed.
            let finished = self.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) == 0 && jobs.len() >= target {
                break;
            }
            tokio::select! {
                job = receiver.recv() => match job {
                    Some(job) => jobs.push(job),
                    None => break,
                },
                _ = &mut finished => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.recent.store(jobs.len(), Ordering::Relaxed);
        Some(jobs)
    }
}

async fn work(store: Arc<dyn Store>, shared: Arc<Shared>) {
    while let Some(jobs) = shared.gather().await {
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        write_batch(&*store, jobs).await;
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        shared.finished.notify_waiters();
    }
}

async fn write_batch(store: &dyn Store, jobs: Vec<Job>) {
    // A caller that gave up while its bet waited (the request timed out,
    // or its client went away) hears nothing: its bet is not placed, so
    // its retry places it once instead of finding a bet it was never told
    // of. (One that gives up during the write may still be placed; its
    // answer said so, and a retry with its Idempotency-Key finds it.)
    let (mut jobs, abandoned): (Vec<Job>, Vec<Job>) =
        jobs.into_iter().partition(|job| !job.reply.is_closed());
    if !abandoned.is_empty() {
        metrics::counter!("updown_bets_abandoned_total").increment(abandoned.len() as u64);
        tracing::info!(
            event = "bets_abandoned",
            bets = abandoned.len(),
            "not placed: their requests ended while they waited"
        );
    }
    // Almost always one round; group anyway so a batch never mixes.
    while !jobs.is_empty() {
        let round = jobs[0].round;
        let (this_round, rest): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| j.round == round);
        jobs = rest;
        let requests: Vec<BetRequest> = this_round.iter().map(|j| j.request.clone()).collect();
        metrics::histogram!("updown_bet_batch_size").record(requests.len() as f64);
        let started = Instant::now();
        let waited = metrics::histogram!("updown_bet_queue_seconds");
        for job in &this_round {
            waited.record(started.duration_since(job.queued).as_secs_f64());
        }
        let placed = store.place_bets(round, &requests).await;
        metrics::histogram!("updown_bet_batch_seconds").record(started.elapsed().as_secs_f64());
        match placed {
            Ok(answers) => {
                for (job, answer) in this_round.into_iter().zip(answers) {
                    let _ = job.reply.send(Ok(answer));
                }
            }
            Err(error) => {
                tracing::error!(error = %error, bets = requests.len(), "bet batch failed");
                let message = format!("{error:#}");
                for job in this_round {
                    let _ = job
                        .reply
                        .send(Err(StoreError::Other(anyhow::anyhow!("{message}"))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Config;
    use crate::oracle::MockOracle;
    use chrono::TimeZone;
    use updown_domain::round::Side;
    use updown_domain::Micros;

    #[tokio::test]
    async fn a_bet_whose_caller_gave_up_before_its_batch_is_not_placed() {
        let db = updown_store::testing::sqlite().await;
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 11, 24, 15, 0, 0)
            .unwrap();
        let app = crate::startup::wire(
            Config::with(&[]).unwrap(),
            db.store.clone(),
            Arc::new(ManualClock::new(now)),
            Arc::new(MockOracle::default()),
        );
        let (round, _) = app.open_round(None).await.unwrap();
        let mut jobs = Vec::new();
        let mut answers = Vec::new();
        for name in ["ann", "bob"] {
            let user = app
                .create_user(&format!("{name}@example.com"))
                .await
                .unwrap();
            let stake = Micros::usdc(10).unwrap();
            app.deposit(user.id, stake, &format!("0xfund-{name}"), 0, None)
                .await
                .unwrap();
            let (reply, answer) = oneshot::channel();
            jobs.push(Job {
                round: round.id,
                queued: Instant::now(),
                request: BetRequest {
                    user: user.id,
                    side: Side::Up,
                    stake,
                    received_at: now,
                    key: None,
                },
                reply,
            });
            answers.push((user.id, answer));
        }
        // Bob's request ends (its timeout, say) before the batch is written.
        let (bob, bob_answer) = answers.pop().unwrap();
        drop(bob_answer);
        let (ann, ann_answer) = answers.pop().unwrap();
        write_batch(&*db.store, jobs).await;
        let placed = ann_answer.await.unwrap().unwrap().unwrap();
        assert_eq!(placed.user, ann);
        assert_eq!(app.balance(ann).await.unwrap(), Micros::ZERO);
        assert_eq!(
            app.balance(bob).await.unwrap(),
            Micros::usdc(10).unwrap(),
            "nothing placed for the caller that left"
        );
        let pools = db.store.pools(round.id).await.unwrap();
        assert_eq!(pools.bets_up, 1);
        assert!(db.store.verify().await.unwrap().ok());
    }
}
