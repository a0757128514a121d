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
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests); then ours
        // renders nothing recorded elsewhere, which is still valid output.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
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
        "updown_oracle_fetch_duration_seconds",
        Unit::Seconds,
        "Time the oracle took to answer"
    );
    describe_counter!(
        "updown_oracle_failures_total",
        "Oracle questions that failed"
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
        "1 when a dependency answered its last check, by dependency (database, redis)"
    );
    describe_gauge!(
        "updown_sender_holding",
        "1 while the withdrawal sender holds (funds, gas, fees or a reorg), as /health says why"
    );
    describe_gauge!(
        "updown_ledger_verified",
        "1 when the last periodic verify found every invariant, 0 when one failed"
    );
    describe_gauge!(
        "updown_ledger_verified_timestamp_seconds",
        Unit::Seconds,
        "When the last periodic verify finished (Unix time)"
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
}
