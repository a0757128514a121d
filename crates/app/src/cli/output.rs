//! How commands print: JSON on stdout under `--json`, text otherwise;
//! errors on stderr in the same two forms; progress bars on a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Prints a value as JSON or as text.
pub struct Printer {
    pub json: bool,
}

impl Printer {
    pub fn print<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            emit(&serde_json::to_string_pretty(value).expect("serialisable output"));
        } else {
            emit(&human());
        }
    }
}

/// Writes a line to stdout. A closed pipe (`updown verify | head -2`) is
/// not an error worth a panic: the reader has what it wanted.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}

/// An error: `{"error": {"code", "message"}}` under `--json`, else a line
/// (and the cause's chain when it says more).
pub fn print_error(json: bool, code: &str, message: &str, detail: &str) {
    if json {
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        eprintln!("{body}");
    } else if detail.is_empty() || detail == message {
        eprintln!("error: {message}");
    } else {
        eprintln!("error: {message}\n{detail}");
    }
}

/// A progress bar on a terminal; hidden under --json or when piped.
pub fn progress_bar(json: bool, length: u64, message: &'static str) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}
