//! `updown demo`: the whole story of one round on a fresh temporary SQLite
//! database, told for a person (or as one JSON document with `--json`).
//!
//! It runs the same use-cases as every other command, on a manual clock
//! that starts inside the round taking bets now (or at CLOCK_START) and is
//! moved forward through lock and settlement.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::America::New_York;
use serde_json::json;
use updown_domain::ids::UserId;
use updown_domain::money::MICROS_PER_USDC;
use updown_domain::round::Side;
use updown_domain::schedule::round_taking_bets_at;
use updown_domain::Micros;
use updown_store::{Round, SqlStore};

use super::output::emit;
use super::text::{self, usdc};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::oracle::MockOracle;
use crate::services::{App, SettleRequest};
use crate::wire::{instant, RoundOut, TvlOut, VerifyOut};

const PLAYERS: [(&str, i64); 4] = [("alice", 500), ("bob", 300), ("carol", 200), ("dave", 400)];

/// The bets of the story: (player index, side, stake in USDC).
const BETS: [(usize, Side, i64); 6] = [
    (0, Side::Up, 120),
    (1, Side::Down, 80),
    (2, Side::Up, 45),
    (3, Side::Down, 150),
    (1, Side::Up, 30),
    (0, Side::Down, 10),
];

/// What the demo has said: printed step by step, or kept for one JSON
/// document under `--json`.
struct Story {
    json: bool,
    steps: Vec<serde_json::Value>,
}

impl Story {
    fn say(&mut self, title: &str, text: String, data: serde_json::Value) {
        if self.json {
            self.steps.push(json!({ "step": title, "data": data }));
        } else {
            emit(&format!("\n== {title}\n{text}"));
        }
    }
}

fn new_york(at: DateTime<Utc>) -> String {
    at.with_timezone(&New_York)
        .format("%a %Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// Tells the story on a database in a temporary folder, removed after.
pub async fn run(config: Config, json: bool) -> AppResult<()> {
    let folder = std::env::temp_dir().join(format!(
        "updown-demo-{}-{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    ));
    let path = folder.join("demo.db");
    let result = tell(config, json, &path).await;
    let _ = std::fs::remove_dir_all(&folder);
    result
}

async fn tell(config: Config, json: bool, path: &Path) -> AppResult<()> {
    let mut demo = Demo::start(config, json, path).await?;
    demo.players_deposit().await?;
    let round = demo.round_opens().await?;
    demo.players_bet(&round).await?;
    demo.round_locks(&round).await?;
    let before = demo.balances().await?;
    let settled = demo.closes_decide(&round).await?;
    demo.settlement(&settled, &before).await?;
    demo.final_balances().await?;
    demo.total_value_locked().await?;
    demo.verify().await
}

/// The stage the story is told on: the use-cases over a fresh database,
/// the clock they read, and the players as they join.
struct Demo {
    story: Story,
    app: App,
    clock: Arc<ManualClock>,
    /// Each player's name and id, in the order of [`PLAYERS`].
    players: Vec<(String, UserId)>,
}

impl Demo {
    /// Migrates a fresh database at `path` and sets the clock half an hour
    /// into the round taking bets at CLOCK_START (or now), so it is open.
    async fn start(config: Config, json: bool, path: &Path) -> AppResult<Demo> {
        let url = format!("sqlite://{}", path.display());
        let store = SqlStore::open_sqlite(&url, 2)
            .await
            .map_err(AppError::Internal)?;
        let store: Arc<dyn updown_store::Store> = Arc::new(store);
        store.migrate().await?;
        let start = config.clock.map(|c| c.start).unwrap_or_else(Utc::now);
        let schedule =
            round_taking_bets_at(&config.rounds.calendar(), &config.rounds.schedule, start)
                .map_err(|e| AppError::Invalid(e.to_string()))?;
        let clock = Arc::new(ManualClock::new(schedule.open_at + Duration::minutes(30)));
        let app = crate::startup::wire(
            config,
            store,
            clock.clone(),
            Arc::new(MockOracle::default()),
        );
        let mut demo = Demo {
            story: Story {
                json,
                steps: Vec::new(),
            },
            app,
            clock,
            players: Vec::new(),
        };
        demo.story.say(
            "A fresh database",
            format!(
                "Temporary SQLite database at {}\nClock set to {} (demo time).",
                path.display(),
                new_york(demo.clock.now())
            ),
            json!({ "database": url, "now": instant(demo.clock.now()) }),
        );
        Ok(demo)
    }

    /// Creates each of [`PLAYERS`] and credits their deposit.
    async fn players_deposit(&mut self) -> AppResult<()> {
        let mut lines = Vec::new();
        for (name, usdc_amount) in PLAYERS {
            let user = self.app.create_user(&format!("{name}@example.com")).await?;
            let amount = Micros::usdc(usdc_amount)?;
            self.app
                .deposit(user.id, amount, &format!("0xdemo-{name}"), 0, None)
                .await?;
            lines.push(format!(
                "  {:<20} deposited {:>18}",
                user.email.as_str(),
                usdc(amount.get())
            ));
            self.players.push((name.to_string(), user.id));
        }
        self.story.say(
            "Players deposit",
            lines.join("\n"),
            json!(PLAYERS
                .iter()
                .map(|(n, a)| json!({"user": n, "deposit_usdc": a}))
                .collect::<Vec<_>>()),
        );
        Ok(())
    }

    /// Opens the round taking bets and reads out its terms.
    async fn round_opens(&mut self) -> AppResult<Round> {
        let (round, _) = self.app.open_round(None).await?;
        let terms = &round.terms;
        let code = terms.code;
        self.story.say(
            "A round opens",
            format!(
                "Round {code} on {}: is the {} close above the previous session's ({})?\n  opened {}\n  locks  {}\n  settles from {}, voids at {}\n  fee {} bps of the loser pool; ties are {}\n  terms digest (SHA-256) {}",
                terms.market,
                code.date(),
                terms.previous_session,
                new_york(terms.open_at),
                new_york(terms.lock_at),
                new_york(terms.settle_at),
                new_york(terms.void_at),
                terms.fee_bps,
                terms.tie_policy.as_str(),
                round.terms_digest
            ),
            json!({ "code": code.to_string(), "lock_at": instant(terms.lock_at), "terms_digest": round.terms_digest }),
        );
        Ok(round)
    }

    /// Places [`BETS`] seven minutes apart, showing the pools and implied
    /// multipliers after each.
    async fn players_bet(&mut self, round: &Round) -> AppResult<()> {
        let mut lines = Vec::new();
        for (player, side, stake_usdc) in BETS {
            self.clock.advance(Duration::minutes(7));
            let stake = Micros::usdc(stake_usdc)?;
            let (name, id) = &self.players[player];
            let bet = self.app.place_bet(*id, side, stake, None, None).await?;
            // The pools and multipliers as the API shows them.
            let view = RoundOut::new(round, self.app.pools(round.id).await?);
            lines.push(format!(
                "  bet {:>2}: {:<6} {:<4} {:>18}   pools UP {:>18}  DOWN {:>18}   implied UP {}  DOWN {}",
                bet.id,
                name,
                side.as_str(),
                usdc(stake.get()),
                usdc(view.pool_up),
                usdc(view.pool_down),
                view.implied_multiplier_up,
                view.implied_multiplier_down,
            ));
        }
        let pools = self.app.pools(round.id).await?;
        self.story.say(
            "Players bet",
            lines.join("\n"),
            json!({ "pool_up": pools.up.get(), "pool_down": pools.down.get() }),
        );
        Ok(())
    }

    /// At the lock instant a late bet is refused, and the round locks.
    async fn round_locks(&mut self, round: &Round) -> AppResult<()> {
        let code = round.terms.code;
        self.clock.set(round.terms.lock_at);
        let (_, carol) = self.players[2];
        let late = self
            .app
            .place_bet(carol, Side::Down, Micros::usdc(5)?, Some(code), None)
            .await;
        let locked = self.app.lock_round(code).await?;
        self.story.say(
            "The round locks",
            format!(
                "At {} a late bet is refused by the clock: {}\nRound {code} is now {}.",
                new_york(self.clock.now()),
                late.as_ref()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "accepted?!".into()),
                locked.status.as_str()
            ),
            json!({ "late_bet_refused": late.is_err(), "status": locked.status.as_str() }),
        );
        Ok(())
    }

    /// At the settle instant the oracle's two closes give the result, and
    /// the round is settled on it.
    async fn closes_decide(&mut self, round: &Round) -> AppResult<Round> {
        self.clock.set(round.terms.settle_at);
        let settled = self
            .app
            .settle_round(round.terms.code, SettleRequest::Auto)
            .await?;
        let settlement = settled.settlement.as_ref().expect("settled");
        let evidence = &settlement.evidence;
        let close = evidence.close.as_ref().expect("close");
        let previous = evidence.previous_close.as_ref().expect("previous");
        let market = &round.terms.market;
        let result = settlement.plan.outcome.as_str();
        self.story.say(
            "The oracle's closes decide",
            format!(
                "{market} close on {}: {} ({})\n{market} close on {}: {} ({})\nResult: {result}",
                close.date, close.close, close.source, previous.date, previous.close, previous.source,
            ),
            json!({ "close": close.close.to_string(), "previous_close": previous.close.to_string(), "result": result }),
        );
        Ok(settled)
    }

    /// What each player staked and was paid back, from their balances
    /// `before` settlement; then the house's fee and dust.
    async fn settlement(&mut self, settled: &Round, before: &[Micros]) -> AppResult<()> {
        let after = self.balances().await?;
        let mut lines = vec![format!(
            "  {:<6} {:>20} {:>20} {:>20}",
            "player", "staked", "paid back", "profit"
        )];
        let mut rows = Vec::new();
        for (player, (name, _)) in self.players.iter().enumerate() {
            let staked = staked_by(player);
            let paid = after[player].get() - before[player].get();
            lines.push(format!(
                "  {:<6} {:>20} {:>20} {:>20}",
                name,
                usdc(staked),
                usdc(paid),
                usdc(paid - staked)
            ));
            rows.push(json!({ "user": name, "staked": staked, "paid": paid }));
        }
        let view = RoundOut::new(settled, self.app.pools(settled.id).await?);
        lines.push(format!(
            "  house fee {}  rounding dust {}",
            usdc(view.fee.unwrap_or(0)),
            usdc(view.dust.unwrap_or(0))
        ));
        self.story.say(
            "Settlement",
            lines.join("\n"),
            json!({ "payouts": rows, "fee": view.fee, "dust": view.dust }),
        );
        Ok(())
    }

    async fn final_balances(&mut self) -> AppResult<()> {
        let balances = self.balances().await?;
        let lines: Vec<String> = self
            .players
            .iter()
            .zip(&balances)
            .map(|((name, _), balance)| format!("  {:<6} {:>20}", name, usdc(balance.get())))
            .collect();
        self.story
            .say("Final balances", lines.join("\n"), json!(null));
        Ok(())
    }

    async fn total_value_locked(&mut self) -> AppResult<()> {
        let tvl = TvlOut::from(self.app.tvl().await?);
        self.story.say(
            "Total value locked",
            text::tvl(&tvl),
            serde_json::to_value(&tvl).expect("serialisable"),
        );
        Ok(())
    }

    /// Checks every ledger invariant, ends the story (as one JSON document
    /// under `--json`), and fails the command when one does not hold.
    async fn verify(mut self) -> AppResult<()> {
        let report = VerifyOut::from(&self.app.verify().await?);
        self.story.say(
            "verify",
            text::verify(&report),
            serde_json::to_value(&report).expect("serialisable"),
        );
        if self.story.json {
            emit(
                &serde_json::to_string_pretty(
                    &json!({ "demo": self.story.steps, "ok": report.ok }),
                )
                .expect("serialisable"),
            );
        }
        if !report.ok {
            return Err(AppError::Internal(anyhow::anyhow!(
                "verify failed at the end of the demo"
            )));
        }
        Ok(())
    }

    /// Each player's available balance, in the order of [`PLAYERS`].
    async fn balances(&self) -> AppResult<Vec<Micros>> {
        futures::future::try_join_all(self.players.iter().map(|(_, id)| self.app.balance(*id)))
            .await
    }
}

/// What `player` (an index into [`PLAYERS`]) stakes in [`BETS`], in
/// micro-USDC.
fn staked_by(player: usize) -> i64 {
    BETS.iter()
        .filter(|(p, _, _)| *p == player)
        .map(|(_, _, stake_usdc)| stake_usdc * MICROS_PER_USDC)
        .sum()
}
