//! The oracle's side of rounds: asking for a close and recording it with
//! what each source answered (the proof), reporting sources that disagree
//! or revise a close already recorded (incidents, for the operators), and
//! the periodic revision check.

use chrono::NaiveDate;
use serde_json::json;
use updown_store::{IncidentKind, OracleIncident, PriceRecord, SourceAnswer, StoreError};

use super::{clip, App};
use crate::error::{AppError, AppResult};
use crate::events::EventKind;
use crate::oracle::{closes_told, Asked};

/// How many days back the revision check asks again for recorded closes.
pub const REVISION_WINDOW_DAYS: i64 = 7;
/// How often the revision check runs, for all instances together.
pub const REVISION_CHECK_EVERY: chrono::Duration = chrono::Duration::hours(1);

impl App {
    /// The official close of `date`: recorded before (by an operator or an
    /// earlier fetch), or fetched from the oracle now and recorded with
    /// what each of its sources answered. Sources that disagree are an
    /// error that says so (the round waits), reported to the operators.
    pub async fn close_of(&self, date: NaiveDate) -> AppResult<Option<PriceRecord>> {
        let market = &self.config.rounds.market;
        if let Some(recorded) = self.store.price(market, date).await? {
            return Ok(Some(recorded));
        }
        let asked = self.ask_oracle(date).await?;
        let Some(quote) = asked.quote else {
            if asked.disagreement {
                return Err(self.oracle_disagreed(date, &asked.answers).await);
            }
            return Ok(None);
        };
        let now = self.clock.now();
        let answers = if asked.answers.is_empty() {
            // A single source: its quote is its answer.
            vec![SourceAnswer {
                source: quote.source.clone(),
                close: Some(quote.price),
                error: None,
                answered_at: now,
                agreed: true,
            }]
        } else {
            asked
                .answers
                .into_iter()
                .map(|answer| SourceAnswer {
                    error: answer.error.as_deref().map(clip),
                    ..answer
                })
                .collect()
        };
        let record = PriceRecord {
            market: market.clone(),
            date,
            close: quote.price,
            source: quote.source,
            fetched_at: now,
        };
        match self.store.record_price(&record, &answers, None).await {
            Ok(()) => Ok(Some(record)),
            // Someone recorded it first; theirs is the record.
            Err(StoreError::Conflict(_)) => Ok(self.store.price(market, date).await?),
            Err(e) => Err(e.into()),
        }
    }

    /// Asks the oracle for the close of `date`, timed and counted.
    async fn ask_oracle(&self, date: NaiveDate) -> AppResult<Asked> {
        let started = std::time::Instant::now();
        let asked = self.oracle.ask(&self.config.rounds.market, date).await;
        metrics::histogram!("updown_oracle_fetch_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        asked.map_err(|e| {
            metrics::counter!("updown_oracle_failures_total").increment(1);
            tracing::warn!(event = "oracle_failed", date = %date, oracle = %self.oracle.name(), error = %e);
            AppError::Unavailable(e.to_string())
        })
    }

    /// Reports sources that disagree (once for each set of closes they
    /// give) and says why the round waits.
    async fn oracle_disagreed(&self, date: NaiveDate, answers: &[SourceAnswer]) -> AppError {
        let told = closes_told(answers).join(", ");
        metrics::counter!("updown_oracle_disagreements_total").increment(1);
        tracing::warn!(
            event = "oracle_disagreement",
            %date,
            closes = %told,
            "the oracle's sources disagree beyond ORACLE_MAX_SPREAD_BPS"
        );
        self.report_oracle_incident(IncidentKind::Disagreement, date, told.clone())
            .await;
        let failed: Vec<String> = answers
            .iter()
            .filter_map(|a| a.error.as_ref().map(|e| format!("{}: {e}", a.source)))
            .collect();
        let failed = if failed.is_empty() {
            String::new()
        } else {
            format!("; failed: {}", failed.join("; "))
        };
        AppError::Unavailable(format!(
            "the oracle's sources disagree beyond ORACLE_MAX_SPREAD_BPS on the close of {date} \
             ({told}{failed}); the round waits until they agree, or voids at its void instant"
        ))
    }

    /// Records an incident for the operators' console and, the first time
    /// it is seen, logs and publishes it: whether it is new.
    async fn report_oracle_incident(
        &self,
        kind: IncidentKind,
        date: NaiveDate,
        detail: String,
    ) -> bool {
        let incident = OracleIncident {
            market: self.config.rounds.market.clone(),
            date,
            kind,
            // Source names and closes: short, but indexed, so bounded.
            detail: detail.chars().take(1000).collect(),
            at: self.clock.now(),
        };
        match self.store.record_oracle_incident(&incident).await {
            Ok(true) => {
                tracing::error!(
                    event = "oracle_incident",
                    kind = kind.as_str(),
                    date = %date,
                    detail = %incident.detail,
                    "the oracle's sources need an operator's look"
                );
                self.publish(
                    EventKind::OracleIncident,
                    json!({
                        "kind": kind.as_str(),
                        "date": date.to_string(),
                        "detail": incident.detail,
                    }),
                );
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, kind = kind.as_str(), date = %date, "recording an oracle incident failed");
                false
            }
        }
    }

    /// The revision check, run by one instance for all at most once per
    /// `REVISION_CHECK_EVERY` (it spends the oracle's requests): how many
    /// revisions were new, or `None` when a run was claimed less than
    /// that ago (by any instance).
    pub async fn revision_step(&self) -> AppResult<Option<usize>> {
        let now = self.clock.now();
        if !self
            .store
            .claim_run("revision_check", now, now - REVISION_CHECK_EVERY)
            .await?
        {
            return Ok(None);
        }
        self.check_revisions().await.map(Some)
    }

    /// Asks the oracle again for the closes recorded for the last
    /// `REVISION_WINDOW_DAYS` sessions (not those operators entered), and
    /// reports each source that now gives another close than it gave (for
    /// a single source, a close that is not the one recorded). Nothing
    /// recorded or settled changes: a revision is for operators to
    /// judge. How many revisions were new.
    pub async fn check_revisions(&self) -> AppResult<usize> {
        let market = &self.config.rounds.market;
        let since = self.clock.now().date_naive() - chrono::Duration::days(REVISION_WINDOW_DAYS);
        let mut new = 0;
        for recorded in self.store.prices_since(market, since).await? {
            if recorded.source.starts_with("manual:") {
                continue;
            }
            // Not `ask_oracle`: these asks are no settlement's, so they
            // stay out of its latency, failure and disagreement figures.
            let asked = match self.oracle.ask(market, recorded.date).await {
                Ok(asked) => asked,
                Err(e) => {
                    tracing::warn!(date = %recorded.date, error = %e, "revision check: the oracle failed");
                    continue;
                }
            };
            let before = self.store.price_sources(market, recorded.date).await?;
            let mut found = Vec::new();
            for answer in &asked.answers {
                let (Some(now), Some(then)) = (
                    answer.close,
                    before
                        .iter()
                        .find(|b| b.source == answer.source)
                        .and_then(|b| b.close),
                ) else {
                    continue;
                };
                if now != then {
                    found.push(format!("{} gave {then}, now {now}", answer.source));
                }
            }
            // A single source's quote is its answer. (A quorum's agreed
            // close may move without any source revising, when one that
            // was silent answers later: its sources are compared above.)
            if let Some(quote) = asked.quote.as_ref().filter(|_| asked.answers.is_empty()) {
                if quote.price != recorded.close {
                    found.push(format!(
                        "recorded {} ({}), now {} ({})",
                        recorded.close, recorded.source, quote.price, quote.source
                    ));
                }
            }
            for detail in found {
                if self
                    .report_oracle_incident(IncidentKind::Revision, recorded.date, detail)
                    .await
                {
                    metrics::counter!("updown_oracle_revisions_total").increment(1);
                    new += 1;
                }
            }
        }
        Ok(new)
    }

    /// The latest incidents of the oracle's sources, newest first.
    pub async fn oracle_incidents(&self, limit: i64) -> AppResult<Vec<OracleIncident>> {
        Ok(self
            .store
            .oracle_incidents(&self.config.rounds.market, limit)
            .await?)
    }
}
