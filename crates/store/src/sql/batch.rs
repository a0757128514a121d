//! What both engines' hot paths share: deciding a batch of bets and
//! answering each request, and the bounds of a settlement chunk. The
//! engines (`sqlite.rs`, `postgres.rs`) write; this decides.

use std::collections::{HashMap, HashSet};

use updown_domain::admission::PlayerState;
use updown_domain::ids::{BetId, RoundId, UserId};
use updown_domain::payout::PayoutPlan;
use updown_domain::round::RoundClock;

use crate::model::{Bet, BetRequest, BetStatus, KeptAnswer, RequestKey, Round};
use crate::BetRefusalReason;

/// One answer per request of a batch: the bet placed, or why not.
pub(crate) type Answers = Vec<Result<Bet, BetRefusalReason>>;

/// The bets a settlement chunk pays: the winners among ids `first..=last`.
#[derive(Clone, Copy)]
pub(crate) struct Chunk<'a> {
    pub(crate) round: &'a Round,
    pub(crate) plan: &'a PayoutPlan,
    pub(crate) first: i64,
    pub(crate) last: i64,
}

/// Decides a batch of bets in order: round rules by the clock, then each
/// player's balance, limits and exclusion. `players` holds the state of
/// every known player, read under lock; a missing one is an unknown user.
///
/// A request whose Idempotency-Key is in `used` (recorded by an earlier
/// transaction) is not placed again. Two requests of one batch with the
/// same key are one request: the second gets the first's refusal, or
/// learns that its key is used once the first is placed.
pub(crate) fn decide_batch(
    clock: &RoundClock,
    requests: &[BetRequest],
    players: &mut HashMap<UserId, PlayerState>,
    used: &HashSet<(String, String)>,
) -> Vec<Result<(), BetRefusalReason>> {
    let decide = |request: &BetRequest, players: &mut HashMap<UserId, PlayerState>| {
        clock.check_bet(request.received_at)?;
        let player = players
            .get_mut(&request.user)
            .ok_or(BetRefusalReason::UnknownUser(request.user))?;
        player.admit(request.stake, request.received_at)?;
        Ok(())
    };
    let mut first_with_key: HashMap<(&str, &str), usize> = HashMap::new();
    let mut decisions: Vec<Result<(), BetRefusalReason>> = Vec::with_capacity(requests.len());
    for (index, request) in requests.iter().enumerate() {
        let decision = match &request.key {
            None => decide(request, players),
            Some(keyed) => {
                let id = (keyed.key.scope.as_str(), keyed.key.key.as_str());
                if used.contains(&(id.0.to_string(), id.1.to_string())) {
                    Err(BetRefusalReason::KeyUsed)
                } else if let Some(first) = first_with_key.get(&id) {
                    let same_request = requests[*first]
                        .key
                        .as_ref()
                        .is_some_and(|k| k.key.request_hash == keyed.key.request_hash);
                    match &decisions[*first] {
                        // The same request twice gets the same refusal.
                        Err(refusal) if same_request => Err(refusal.clone()),
                        _ => Err(BetRefusalReason::KeyUsed),
                    }
                } else {
                    first_with_key.insert(id, index);
                    decide(request, players)
                }
            }
        };
        decisions.push(decision);
    }
    decisions
}

/// The requests a batch's decisions accepted, in order.
pub(crate) fn accepted<'r>(
    requests: &'r [BetRequest],
    decisions: &[Result<(), BetRefusalReason>],
) -> Vec<&'r BetRequest> {
    requests
        .iter()
        .zip(decisions)
        .filter(|(_, d)| d.is_ok())
        .map(|(r, _)| r)
        .collect()
}

/// The keys of placed bets and the answers to record with them.
pub(crate) fn kept_answers(
    requests: &[BetRequest],
    answers: &Answers,
) -> Vec<(RequestKey, KeptAnswer)> {
    requests
        .iter()
        .zip(answers)
        .filter_map(|(request, answer)| match (&request.key, answer) {
            (Some(keyed), Ok(bet)) => Some((keyed.key.clone(), (keyed.answer)(bet))),
            _ => None,
        })
        .collect()
}

/// One answer per request: the bet (with its id, in order) or the refusal.
pub(crate) fn answers(
    round: RoundId,
    requests: &[BetRequest],
    decisions: Vec<Result<(), BetRefusalReason>>,
    ids: Vec<i64>,
) -> Answers {
    let mut ids = ids.into_iter();
    requests
        .iter()
        .zip(decisions)
        .map(|(request, decision)| {
            decision.map(|()| Bet {
                id: BetId(ids.next().expect("one id per accepted bet")),
                round,
                user: request.user,
                side: request.side,
                stake: request.stake,
                status: BetStatus::Active,
                placed_at: request.received_at,
                cancelled_at: None,
            })
        })
        .collect()
}
