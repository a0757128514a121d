//! The bank test's report: the first violations, then one block of
//! totals (violations, faults, operations, duration), printed last and
//! written to `target/bank-report.txt` for CI to print.

use std::path::PathBuf;
use std::time::Duration;

use super::checks::Violations;
use super::journal::{Entry, Outcome};
use super::serve::Faults;

/// Most violations printed (all are counted).
const SHOWN: usize = 20;

pub struct Report {
    pub violations: Violations,
    pub faults: Faults,
    pub counts: Counts,
    /// Setup, faults, retries: how long each phase took.
    pub phases: [Duration; 3],
    pub total: Duration,
    pub seed: u64,
}

impl Report {
    /// Prints the first violations and then the totals; writes the totals
    /// to `target/bank-report.txt` (the folder above
    /// `CARGO_TARGET_TMPDIR`, wherever `CARGO_TARGET_DIR` put it).
    pub fn publish(&self) {
        for (kind, line) in self.violations.0.iter().take(SHOWN) {
            eprintln!("violation ({kind}): {line}");
        }
        let totals = self.totals();
        eprint!("\n{totals}");
        let path = report_path();
        if let Err(e) = std::fs::write(&path, &totals) {
            eprintln!("could not write {}: {e}", path.display());
        }
    }

    fn totals(&self) -> String {
        let violations = &self.violations.0;
        let tally = if violations.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.violations.tally())
        };
        let faults = &self.faults;
        let [setup, load, retries] = self.phases.map(|d| d.as_secs());
        format!(
            "bank test: {} violations{tally}\n\
             faults: {} serve kills ({} restarts), {} PostgreSQL crashes, {} PostgreSQL pauses of 12 s\n\
             {}\
             duration: {} s (setup {setup} s, faults {load} s, retries {retries} s), seed {:x}\n",
            violations.len(),
            faults.kills,
            faults.restarts,
            faults.postgres_crashes,
            faults.pauses,
            self.counts.lines(),
            self.total.as_secs(),
            self.seed,
        )
    }
}

/// The journal's totals.
pub struct Counts {
    by_kind: Vec<(&'static str, usize)>,
    pub acknowledged: usize,
    refused: usize,
    retried_acknowledged: usize,
    retried_refused: usize,
    resolved: usize,
    unresolved: usize,
    /// Refusals by status and error code, most frequent first.
    refusals: Vec<(String, usize)>,
}

impl Counts {
    pub fn of(journal: &[Entry], resolved: usize) -> Counts {
        let retried = |e: &&Entry| e.attempts > 1;
        let acknowledged = |e: &&Entry| matches!(e.outcome, Outcome::Acknowledged(_));
        let refused = |e: &&Entry| matches!(e.outcome, Outcome::Refused { .. });
        let count = |f: &dyn Fn(&&Entry) -> bool| journal.iter().filter(f).count();
        Counts {
            by_kind: ["bet", "cancel", "withdrawal"]
                .into_iter()
                .map(|kind| (kind, count(&|e| e.request.kind() == kind)))
                .collect(),
            acknowledged: count(&acknowledged),
            refused: count(&refused),
            retried_acknowledged: count(&|e| retried(e) && acknowledged(e)),
            retried_refused: count(&|e| retried(e) && refused(e)),
            resolved,
            unresolved: count(&|e| !e.outcome.is_definite()),
            refusals: refusals(journal),
        }
    }

    fn lines(&self) -> String {
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(kind, n)| format!("{n} {kind}s"))
            .collect();
        let refusals: Vec<String> = self
            .refusals
            .iter()
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        format!(
            "operations: {} ({})\n\
             acknowledged: {} ({} after retries); refused: {} ({} after retries): {}\n\
             indeterminate: {} resolved by retries, {} unresolved\n",
            self.by_kind.iter().map(|(_, n)| n).sum::<usize>(),
            kinds.join(", "),
            self.acknowledged,
            self.retried_acknowledged,
            self.refused,
            self.retried_refused,
            refusals.join(", "),
            self.resolved,
            self.unresolved,
        )
    }
}

/// How many refusals of each status and code, most frequent first.
fn refusals(journal: &[Entry]) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for entry in journal {
        if let Outcome::Refused { status, code, .. } = &entry.outcome {
            *counts.entry(format!("{status} {code}")).or_default() += 1;
        }
    }
    let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts
}

/// `target/bank-report.txt`.
fn report_path() -> PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder")
        .join("bank-report.txt")
}
