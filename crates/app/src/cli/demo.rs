//! `updown demo`: the whole story of one round on a fresh temporary SQLite
//! database, told for a person (or as one JSON document with `--json`).
//!
//! It runs the same use-cases as every other command, on a manual clock
//! that starts inside the round taking bets now (or at CLOCK_START) and is
//! moved forward through lock and settlement.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::America::New_York;
use serde_json::json;
use updown_domain::ids::UserId;
use updown_domain::round::Side;
use updown_domain::schedule::round_taking_bets_at;
use updown_domain::Micros;
use updown_store::SqliteStore;

use super::output::{emit, instant, usdc};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::oracle::MockOracle;
use crate::services::{App, SettleRequest};
use crate::wire::implied_multiplier;
use crate::wire::{RoundOut, TvlOut, VerifyOut};

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

async fn tell(config: Config, json: bool, path: &std::path::Path) -> AppResult<()> {
    let mut story = Story {
        json,
        steps: Vec::new(),
    };
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url, 2)
        .await
        .map_err(AppError::Internal)?;
    let store: Arc<dyn updown_store::Store> = Arc::new(store);
    store.migrate().await?;
    let start = config.clock.map(|c| c.start).unwrap_or_else(Utc::now);
    let schedule = round_taking_bets_at(&config.rounds.calendar(), &config.rounds.schedule, start)
        .map_err(|e| AppError::Invalid(e.to_string()))?;
    // Start half an hour into the round, so it is open and betting.
    let clock = Arc::new(ManualClock::new(schedule.open_at + Duration::minutes(30)));
    let app = App::new(
        config,
        store,
        clock.clone(),
        Arc::new(MockOracle::default()),
    );
    story.say(
        "A fresh database",
        format!(
            "Temporary SQLite database at {}\nClock set to {} (demo time).",
            path.display(),
            new_york(clock.now())
        ),
        json!({ "database": url, "now": instant(clock.now()) }),
    );

    let mut users: Vec<(String, UserId)> = Vec::new();
    let mut lines = Vec::new();
    for (name, usdc_amount) in PLAYERS {
        let user = app.create_user(&format!("{name}@example.com")).await?;
        let amount = Micros::usdc(usdc_amount)?;
        app.deposit(user.id, amount, &format!("0xdemo-{name}"), 0, None)
            .await?;
        lines.push(format!(
            "  {:<20} deposited {:>18}",
            user.email.as_str(),
            usdc(amount.get())
        ));
        users.push((name.to_string(), user.id));
    }
    story.say(
        "Players deposit",
        lines.join("\n"),
        json!(PLAYERS
            .iter()
            .map(|(n, a)| json!({"user": n, "deposit_usdc": a}))
            .collect::<Vec<_>>()),
    );

    let (round, _) = app.open_round(None).await?;
    let code = round.terms.code;
    story.say(
        "A round opens",
        format!(
            "Round {code} on {}: is the {} close above the previous session's ({})?\n  opened {}\n  locks  {}\n  settles from {}, voids at {}\n  fee {} bps of the loser pool; ties are {}\n  terms digest (SHA-256) {}",
            round.terms.market,
            code.date(),
            round.terms.previous_session,
            new_york(round.terms.open_at),
            new_york(round.terms.lock_at),
            new_york(round.terms.settle_at),
            new_york(round.terms.void_at),
            round.terms.fee_bps,
            round.terms.tie_policy.as_str(),
            round.terms_digest
        ),
        json!({ "code": code.to_string(), "lock_at": instant(round.terms.lock_at), "terms_digest": round.terms_digest }),
    );

    let mut lines = Vec::new();
    for (player, side, stake_usdc) in BETS {
        clock.advance(Duration::minutes(7));
        let stake = Micros::usdc(stake_usdc)?;
        let bet = app
            .place_bet(users[player].1, side, stake, None, None)
            .await?;
        let pools = app.pools(round.id).await?;
        lines.push(format!(
            "  bet {:>2}: {:<6} {:<4} {:>18}   pools UP {:>18}  DOWN {:>18}   implied UP {}  DOWN {}",
            bet.id,
            users[player].0,
            side.as_str(),
            usdc(stake.get()),
            usdc(pools.up.get()),
            usdc(pools.down.get()),
            implied_multiplier(pools.up, pools.down, Side::Up, round.terms.fee_bps),
            implied_multiplier(pools.up, pools.down, Side::Down, round.terms.fee_bps),
        ));
    }
    let pools = app.pools(round.id).await?;
    story.say(
        "Players bet",
        lines.join("\n"),
        json!({ "pool_up": pools.up.get(), "pool_down": pools.down.get() }),
    );

    clock.set(round.terms.lock_at);
    let late = app
        .place_bet(users[2].1, Side::Down, Micros::usdc(5)?, Some(code), None)
        .await;
    let locked = app.lock_round(code).await?;
    story.say(
        "The round locks",
        format!(
            "At {} a late bet is refused by the clock: {}\nRound {code} is now {}.",
            new_york(clock.now()),
            late.as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "accepted?!".into()),
            locked.status.as_str()
        ),
        json!({ "late_bet_refused": late.is_err(), "status": locked.status.as_str() }),
    );

    clock.set(round.terms.settle_at);
    let balances_before: Vec<Micros> =
        futures::future::try_join_all(users.iter().map(|(_, id)| app.balance(*id))).await?;
    let settled = app.settle_round(code, SettleRequest::Auto).await?;
    let settlement = settled.settlement.clone().expect("settled");
    let (close, previous) = (
        settlement.evidence.close.clone().expect("close"),
        settlement
            .evidence
            .previous_close
            .clone()
            .expect("previous"),
    );
    story.say(
        "The oracle's closes decide",
        format!(
            "{} close on {}: {} ({})\n{} close on {}: {} ({})\nResult: {}",
            round.terms.market,
            close.date,
            close.close,
            close.source,
            round.terms.market,
            previous.date,
            previous.close,
            previous.source,
            settlement.plan.outcome.as_str()
        ),
        json!({ "close": close.close.to_string(), "previous_close": previous.close.to_string(), "result": settlement.plan.outcome.as_str() }),
    );

    let mut lines = vec![format!(
        "  {:<6} {:>20} {:>20} {:>20}",
        "player", "staked", "paid back", "profit"
    )];
    let mut rows = Vec::new();
    for (i, (name, id)) in users.iter().enumerate() {
        let staked: i64 = BETS
            .iter()
            .filter(|(p, _, _)| *p == i)
            .map(|(_, _, s)| s * 1_000_000)
            .sum();
        let paid = app.balance(*id).await?.get() - balances_before[i].get();
        lines.push(format!(
            "  {:<6} {:>20} {:>20} {:>20}",
            name,
            usdc(staked),
            usdc(paid),
            usdc(paid - staked)
        ));
        rows.push(json!({ "user": name, "staked": staked, "paid": paid }));
    }
    let view = RoundOut::new(&settled, app.pools(round.id).await?);
    lines.push(format!(
        "  house fee {}  rounding dust {}",
        usdc(view.fee.unwrap_or(0)),
        usdc(view.dust.unwrap_or(0))
    ));
    story.say(
        "Settlement",
        lines.join("\n"),
        json!({ "payouts": rows, "fee": view.fee, "dust": view.dust }),
    );

    let mut lines = Vec::new();
    for (name, id) in &users {
        lines.push(format!(
            "  {:<6} {:>20}",
            name,
            usdc(app.balance(*id).await?.get())
        ));
    }
    story.say("Final balances", lines.join("\n"), json!(null));

    let tvl = TvlOut::from(app.tvl().await?);
    story.say(
        "Total value locked",
        tvl.human(),
        serde_json::to_value(&tvl).expect("serialisable"),
    );

    let report = VerifyOut::from(&app.verify().await?);
    story.say(
        "verify",
        report.human(),
        serde_json::to_value(&report).expect("serialisable"),
    );
    if json {
        emit(
            &serde_json::to_string_pretty(&json!({ "demo": story.steps, "ok": report.ok }))
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
