//! Group commit for bets: concurrent bets are gathered into one database
//! transaction, so one commit (one fsync) acknowledges many of them.
//!
//! A worker takes the first waiting bet, then every bet already queued
//! behind it (up to `max_batch`), without waiting for more: an idle system
//! answers at once, a busy one batches naturally. Two workers alternate,
//! so one batch is gathered while the previous one commits. Every answer is
//! sent only after its batch committed.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};
use updown_domain::ids::RoundId;
use updown_store::{Bet, BetRefusalReason, BetRequest, Store, StoreError, StoreResult};

/// Bets waiting for a worker, at most; a full queue makes callers wait.
const QUEUE_CAPACITY: usize = 8192;

type Answer = StoreResult<Result<Bet, BetRefusalReason>>;

struct Job {
    round: RoundId,
    request: BetRequest,
    reply: oneshot::Sender<Answer>,
}

#[derive(Clone)]
pub struct BetBatcher {
    queue: mpsc::Sender<Job>,
}

impl BetBatcher {
    pub fn start(store: Arc<dyn Store>, max_batch: usize, workers: usize) -> BetBatcher {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(store.clone(), receiver.clone(), max_batch.max(1)));
        }
        BetBatcher { queue }
    }

    /// Places one bet; returns once it is committed or refused.
    pub async fn submit(&self, round: RoundId, request: BetRequest) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job {
                round,
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

async fn work(store: Arc<dyn Store>, receiver: Arc<Mutex<mpsc::Receiver<Job>>>, max_batch: usize) {
    loop {
        let mut jobs = Vec::with_capacity(max_batch);
        {
            let mut receiver = receiver.lock().await;
            match receiver.recv().await {
                Some(job) => jobs.push(job),
                None => return,
            }
            while jobs.len() < max_batch {
                match receiver.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        // Almost always one round; group anyway so a batch never mixes.
        while !jobs.is_empty() {
            let round = jobs[0].round;
            let (this_round, rest): (Vec<Job>, Vec<Job>) =
                jobs.into_iter().partition(|j| j.round == round);
            jobs = rest;
            let requests: Vec<BetRequest> = this_round.iter().map(|j| j.request.clone()).collect();
            match store.place_bets(round, &requests).await {
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
}
