//! Prometheus metrics. Use-cases record through the `metrics` facade (a
//! no-op until a recorder is installed, as in one-shot CLI commands); the
//! service installs the Prometheus recorder and `GET /metrics` renders it,
//! refreshing the gauges that are read from the database (TVL, rounds by
//! status) at scrape time.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::AppResult;
use crate::services::App;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Buckets for the bet batches' times, which are mostly under a millisecond.
const BATCH_BUCKETS: [f64; 11] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.1, 1.0,
];

/// Installs the process-wide recorder on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        // Histogram buckets (not summaries) so latency targets can be
        // read from Prometheus directly: 1 ms to 30 s.
        let buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let recorder = PrometheusBuilder::new()
            .set_buckets(&buckets)
            .expect("non-empty buckets")
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("updown_bet_batch_size".into()),
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
            )
            .expect("non-empty buckets")
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("updown_bet_batch_seconds".into()),
                &BATCH_BUCKETS,
            )
            .expect("non-empty buckets")
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("updown_bet_queue_seconds".into()),
                &BATCH_BUCKETS,
            )
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests); then ours
        // renders nothing recorded elsewhere, which is still valid output.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        start_rare_counters();
        handle
    })
}

/// Counters of rare events, at zero from the start: an alert on
/// `increase()` sees the first one (a series that appears at 1 shows none).
fn start_rare_counters() {
    for rare in [
        "updown_oracle_disagreements_total",
        "updown_oracle_revisions_total",
    ] {
        metrics::counter!(rare).increment(0);
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        "updown_tvl_micro_usdc",
        Unit::Count,
        "Total value locked: user balances, open/locked pools and pending withdrawals"
    );
    describe_gauge!("updown_rounds", "Rounds by status");
    describe_counter!("updown_bets_total", "Bets placed, by side");
    describe_counter!(
        "updown_bet_volume_micro_usdc_total",
        "Stakes placed, by side"
    );
    describe_histogram!(
        "updown_settlement_duration_seconds",
        Unit::Seconds,
        "Time to settle a round"
    );
    describe_histogram!(
        "updown_bet_batch_size",
        Unit::Count,
        "Bets written per batch (group commit)"
    );
    describe_histogram!(
        "updown_bet_batch_seconds",
        Unit::Seconds,
        "Time one batch of bets took in the database, from taking a connection to its commit"
    );
    describe_histogram!(
        "updown_bet_queue_seconds",
        Unit::Seconds,
        "Time a bet waited for its batch to start"
    );
    describe_counter!(
        "updown_bets_abandoned_total",
        "Bets not placed because their request ended (timed out, or its client left) while they waited for a batch"
    );
    describe_histogram!(
        "updown_oracle_fetch_duration_seconds",
        Unit::Seconds,
        "Time the oracle took to answer"
    );
    describe_counter!(
        "updown_oracle_failures_total",
        "Oracle questions that failed"
    );
    describe_counter!(
        "updown_oracle_disagreements_total",
        "Quorum questions whose sources answered but disagreed beyond ORACLE_MAX_SPREAD_BPS"
    );
    describe_counter!(
        "updown_oracle_revisions_total",
        "Closes a source gave differently after they were recorded (each reported once)"
    );
    describe_counter!(
        "updown_scheduler_transitions_total",
        "Round transitions made by the scheduler, by kind (open, lock, settle, void)"
    );
    describe_counter!(
        "http_requests_total",
        "HTTP requests by method, route and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method and route"
    );
    describe_gauge!("updown_chain_head", "The EVM node's latest block");
    describe_gauge!(
        "updown_chain_cursor",
        "The first block the deposit watcher has not scanned"
    );
    describe_gauge!(
        "updown_chain_lag_blocks",
        "Confirmed blocks the deposit watcher has not scanned yet"
    );
    describe_gauge!(
        "updown_chain_halted",
        "1 while a reorg deeper than MIN_CONFIRMATIONS waits for acknowledgement"
    );
    describe_counter!(
        "updown_chain_rpc_errors_total",
        "Failed calls to the EVM node, by kind"
    );
    describe_counter!(
        "updown_chain_deposits_credited_total",
        "Deposits the chain watcher credited"
    );
    describe_counter!(
        "updown_chain_refused_transfers_total",
        "Transfers to deposit addresses not credited, by reason"
    );
    describe_counter!(
        "updown_chain_reorgs_total",
        "Reorgs deeper than MIN_CONFIRMATIONS detected"
    );
    describe_gauge!(
        "updown_custody_chain_micro_usdc",
        "The deposit token held on the chain (hot wallet and deposit addresses) at the last reconciliation"
    );
    describe_gauge!(
        "updown_custody_ledger_micro_usdc",
        "The ledger's custody at the last reconciliation"
    );
    describe_gauge!(
        "updown_custody_shortfall_micro_usdc",
        "How much less the chain held than the ledger owes at the last reconciliation (0: none)"
    );
    describe_gauge!(
        "updown_hot_wallet_eth_wei",
        "The hot wallet's ETH for gas, as the sender last read it"
    );
    describe_gauge!(
        "updown_hot_wallet_token_micros",
        "The hot wallet's deposit token, as the sender last read it"
    );
    describe_gauge!(
        "updown_sender_nonce_conflict",
        "1 while a nonce the hot wallet stored was used by a transaction it did not sign"
    );
    describe_gauge!(
        "updown_round_settle_overdue_seconds",
        Unit::Seconds,
        "How long past its settle instant the most overdue unsettled round is (0: none)"
    );
    describe_gauge!(
        "updown_withdrawal_oldest_waiting_seconds",
        Unit::Seconds,
        "How long the oldest withdrawal not yet confirmed or failed has waited (0: none)"
    );
    describe_gauge!(
        "updown_scheduler_last_step_timestamp_seconds",
        Unit::Seconds,
        "When this process's scheduler last stepped (Unix time)"
    );
    describe_gauge!(
        "updown_dependency_up",
        "1 when a dependency answered its last check, by dependency (database, redis, replica)"
    );
    describe_gauge!(
        "updown_replica_lag_seconds",
        Unit::Seconds,
        "How far the read replica's replay is behind (DATABASE_READ_URL)"
    );
    describe_gauge!(
        "updown_replica_usable",
        "1 while lists read from the replica; 0 while they fall back to the primary (lagging or down)"
    );
    describe_gauge!(
        "updown_sender_holding",
        "1 while the withdrawal sender holds (funds, gas, fees or a reorg), as /health says why"
    );
    describe_gauge!(
        "updown_ledger_verified",
        "1 for the last periodic verify's result (ok, failed) in its scope (incremental, full), 0 for the other"
    );
    describe_gauge!(
        "updown_ledger_verified_timestamp_seconds",
        Unit::Seconds,
        "When the last periodic verify of each scope finished (Unix time)"
    );
    describe_gauge!(
        "updown_ledger_checkpoint_age_seconds",
        Unit::Seconds,
        "How long ago the latest ledger checkpoint was written: when a verify last vouched for the ledger"
    );
    describe_counter!(
        "updown_withdrawals_sent_total",
        "Withdrawal transactions the hot wallet signed, by kind (first, replacement)"
    );
}

/// The Prometheus text, with database-backed gauges refreshed now.
pub async fn render(app: &App) -> AppResult<String> {
    let handle = handle();
    let tvl = app.tvl().await?;
    // It answered (a scrape it fails is an error, and the instance's
    // `up` says so).
    metrics::gauge!("updown_dependency_up", "dependency" => "database").set(1.0);
    metrics::gauge!("updown_tvl_micro_usdc").set(tvl.total as f64);
    for status in ["OPEN", "LOCKED", "SETTLED", "VOID"] {
        metrics::gauge!("updown_rounds", "status" => status).set(0.0);
    }
    for (status, count) in app.round_counts().await? {
        metrics::gauge!("updown_rounds", "status" => status).set(count as f64);
    }
    let overdue = app.overdue().await?;
    metrics::gauge!("updown_round_settle_overdue_seconds").set(overdue.settlement_seconds as f64);
    metrics::gauge!("updown_withdrawal_oldest_waiting_seconds")
        .set(overdue.withdrawal_seconds as f64);
    if let Some(checkpoint) = app.latest_checkpoint().await? {
        let age = (app.clock.now() - checkpoint.created_at)
            .num_seconds()
            .max(0);
        metrics::gauge!("updown_ledger_checkpoint_age_seconds").set(age as f64);
    }
    Ok(handle.render())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn repository() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Every Rust source of this crate, concatenated.
    fn sources() -> String {
        fn walk(folder: &Path, into: &mut String) {
            for entry in std::fs::read_dir(folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, into);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    into.push_str(&std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        let mut all = String::new();
        walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut all);
        all
    }

    /// The metric names in a PromQL text: `updown_...` and `http_...`
    /// words, a histogram's `_bucket`/`_sum`/`_count` taken off.
    fn metric_names(text: &str) -> Vec<String> {
        let mut names = Vec::new();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("updown_") || word.starts_with("http_request") {
                let name = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| word.strip_suffix(suffix))
                    .unwrap_or(word);
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
        names
    }

    #[test]
    fn every_alert_watches_a_recorded_metric_and_has_a_runbook_section() {
        let alerts =
            std::fs::read_to_string(repository().join("deploy/prometheus/alerts.yml")).unwrap();
        let runbook = std::fs::read_to_string(repository().join("docs/operations.md")).unwrap();
        let sources = sources();
        let expressions: String = alerts
            .lines()
            .filter_map(|line| line.trim().strip_prefix("expr:"))
            .collect::<Vec<_>>()
            .join("\n");
        let names = metric_names(&expressions);
        assert!(names.len() >= 10, "{names:?}");
        for name in names {
            assert!(
                sources.contains(&format!("\"{name}\"")),
                "alerts.yml watches {name}, which the service never records"
            );
        }
        let alert_names: Vec<&str> = alerts
            .lines()
            .filter_map(|line| line.trim().strip_prefix("- alert:"))
            .map(str::trim)
            .collect();
        assert!(alert_names.len() >= 12, "{alert_names:?}");
        for alert in alert_names {
            assert!(
                runbook.contains(&format!("### {alert}\n")),
                "docs/operations.md has no section `### {alert}`"
            );
            assert!(
                alerts.contains(&format!(
                    "runbook: \"docs/operations.md#{}\"",
                    alert.to_lowercase()
                )),
                "{alert} does not link its runbook section"
            );
        }
    }

    #[test]
    fn the_grafana_dashboard_parses_and_charts_only_recorded_metrics() {
        let text =
            std::fs::read_to_string(repository().join("deploy/grafana/dashboards/updown.json"))
                .unwrap();
        let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
        let panels = dashboard["panels"].as_array().unwrap();
        assert!(panels.len() >= 12, "{} panels", panels.len());
        let sources = sources();
        for panel in panels {
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{}", panel["title"]);
            for target in targets {
                let expr = target["expr"].as_str().unwrap();
                let names = metric_names(expr);
                assert!(!names.is_empty(), "{expr}");
                for name in names {
                    assert!(
                        sources.contains(&format!("\"{name}\"")),
                        "panel {} charts {name}, which the service never records",
                        panel["title"]
                    );
                }
            }
        }
    }

    /// The lines of `text` from the one holding `start` to the first
    /// after it holding `end`.
    fn between<'a>(text: &'a str, start: &str, end: &str) -> Vec<&'a str> {
        text.lines()
            .skip_while(|line| !line.contains(start))
            .skip(1)
            .take_while(|line| !line.contains(end))
            .collect()
    }

    #[test]
    fn the_compose_file_gives_updown_what_the_local_stack_gives_it() {
        let root = repository();
        let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
        let (compose, serve, env, readme) = (
            read("deploy/compose.yaml"),
            read("deploy/local/serve"),
            read("deploy/local/env"),
            read("README.md"),
        );
        // The variables each instance gets, a secret's _FILE read as the
        // variable itself.
        let plain = |name: &str| name.strip_suffix("_FILE").unwrap_or(name).to_string();
        let mut local: Vec<String> = between(&serve, "env -i", "serve >>")
            .iter()
            .filter_map(|line| line.trim().split_once('='))
            .map(|(name, _)| plain(name))
            .filter(|name| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .filter(|name| !["PATH", "LLVM_PROFILE"].contains(&name.as_str()))
            .collect();
        let mut composed: Vec<String> = between(&compose, "&updown-environment", "secrets:")
            .iter()
            .filter(|line| !line.trim_start().starts_with('#'))
            .filter_map(|line| line.trim().split_once(':'))
            .map(|(name, _)| plain(name))
            .filter(|name| name != "UPDOWN_ENV")
            .collect();
        local.sort();
        composed.sort();
        assert!(local.len() >= 8, "{local:?}");
        assert_eq!(
            local, composed,
            "deploy/local/serve and deploy/compose.yaml"
        );
        for name in &local {
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "{name} is not in the README's configuration table"
            );
        }
        // The same ports published: each of deploy/local/env's defaults.
        let published: Vec<&str> = compose
            .lines()
            .filter_map(|line| line.trim().strip_prefix("ports: ["))
            .flat_map(|ports| ports.trim_end_matches(']').split(", "))
            .map(|port| port.trim_matches('"').split(':').next().unwrap())
            .collect();
        for line in env.lines().filter(|line| line.contains("_PORT:=")) {
            let port = line
                .split(":=")
                .nth(1)
                .unwrap()
                .trim_end_matches(['}', '"']);
            assert!(
                published.contains(&port),
                "{line}: compose.yaml does not publish {port} ({published:?})"
            );
        }
        // One HAProxy configuration but for addresses.
        let settings = |text: &str| -> Vec<String> {
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .filter(|line| !line.starts_with("bind ") && !line.starts_with("server "))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(
            settings(&read("deploy/local/haproxy.cfg")),
            settings(&read("deploy/compose/haproxy.cfg"))
        );
    }
}
