//! The current round as the API shows it, kept in memory: `GET
//! /rounds/current` is the hottest read, and its answer only changes when
//! a bet, a cancellation or a round transition happens, here or on
//! another instance (their events mark the view stale as they arrive).
//! The answer is rebuilt at most every `MIN_AGE` while things change, and
//! at least every `MAX_AGE` (should another instance's event be lost).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use updown_domain::ids::RoundCode;

use super::App;
use crate::error::{AppError, AppResult};
use crate::wire::{PriceOut, RoundOut, SourceOut};

/// Rebuilt no more often than this while bets pour in.
const MIN_AGE: Duration = Duration::from_millis(100);
/// Rebuilt at least this often, for changes made by other instances.
const MAX_AGE: Duration = Duration::from_secs(1);

struct Cached {
    code: RoundCode,
    version: u64,
    built: Instant,
    body: Bytes,
}

#[derive(Default)]
pub struct CurrentRoundView {
    cached: std::sync::RwLock<Option<Cached>>,
    rebuilding: tokio::sync::Mutex<()>,
}

impl App {
    /// A round as the API and the CLI show it: with its pools.
    pub async fn round_view(&self, round: &updown_store::Round) -> AppResult<RoundOut> {
        let pools = self.store.pools(round.id).await?;
        let mut view = RoundOut::new(round, pools);
        if let (Some(published), None) = (round.published, &round.settlement) {
            // Held for the dispute window: when it is paid, and the closes
            // it was decided on (settlement keeps them only once begun).
            view.payouts_at = Some(crate::wire::instant(published.payouts_at));
            let market = &round.terms.market;
            for (out, date) in [
                (&mut view.close, round.terms.code.date()),
                (&mut view.previous_close, round.terms.previous_session),
            ] {
                *out = self
                    .store
                    .price(market, date)
                    .await?
                    .as_ref()
                    .map(PriceOut::from);
            }
        }
        Ok(view)
    }

    /// A round's view with the proof of its closes: what each source
    /// answered, when, and which agreed.
    pub async fn round_view_with_proof(&self, round: &updown_store::Round) -> AppResult<RoundOut> {
        let mut view = self.round_view(round).await?;
        let market = &round.terms.market;
        for (out, date) in [
            (view.close.as_mut(), round.terms.code.date()),
            (view.previous_close.as_mut(), round.terms.previous_session),
        ] {
            if let Some(out) = out {
                let sources = self.store.price_sources(market, date).await?;
                out.sources = Some(sources.iter().map(SourceOut::from).collect());
            }
        }
        Ok(view)
    }

    /// Something that the current round's view shows has changed here.
    pub(crate) fn touch(&self) {
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// The cached body when it may still be served: same round, and
    /// either nothing changed or it is younger than `MIN_AGE`, and never
    /// older than `MAX_AGE` (or any age, with `stale_ok`, while another
    /// request rebuilds it).
    fn cached_view(&self, code: RoundCode, stale_ok: bool) -> Option<Bytes> {
        let cached = self.view.cached.read().expect("view cache");
        let cached = cached.as_ref().filter(|c| c.code == code)?;
        let age = cached.built.elapsed();
        let unchanged = cached.version == self.changes.load(Ordering::Relaxed);
        let fresh = age < MAX_AGE && (unchanged || age < MIN_AGE);
        (fresh || stale_ok).then(|| cached.body.clone())
    }

    /// `GET /rounds/current`'s JSON body.
    pub async fn current_round_json(&self) -> AppResult<Bytes> {
        let code = self.schedule_taking_bets(self.clock.now())?.code();
        if let Some(body) = self.cached_view(code, false) {
            return Ok(body);
        }
        let _rebuilding = match self.view.rebuilding.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                if let Some(body) = self.cached_view(code, true) {
                    return Ok(body);
                }
                self.view.rebuilding.lock().await
            }
        };
        if let Some(body) = self.cached_view(code, false) {
            return Ok(body);
        }
        let version = self.changes.load(Ordering::Relaxed);
        let round = self.current_round().await?;
        let body = serde_json::to_vec(&self.round_view(&round).await?)
            .map_err(|e| AppError::Internal(e.into()))?;
        let body = Bytes::from(body);
        *self.view.cached.write().expect("view cache") = Some(Cached {
            code,
            version,
            built: Instant::now(),
            body: body.clone(),
        });
        Ok(body)
    }
}
