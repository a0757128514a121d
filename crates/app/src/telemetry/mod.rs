//! Logging: JSON lines (`LOG_FORMAT=json`, the default when stderr is not a
//! terminal) or human-readable, filtered by `RUST_LOG`; both read with the
//! rest of the configuration ([`crate::config::Telemetry`]).
//!
//! Lines are gathered in memory and written to stderr by a thread of
//! their own, up to every 20 ms: a request never waits on the terminal or
//! the disk, and the lines of a busy moment cost one `write` between them
//! instead of one each (with the access log, a bet logs two lines), with
//! no wake-up per line. The buffer is bounded: past 4 MiB, the logger
//! writes it out itself rather than lose a line. [`flush`] writes out
//! what is gathered; commands call it before they exit. A process killed
//! outright loses at most the last 20 ms of lines; what matters for money
//! is in the database, not the logs.

use std::io::{IsTerminal, Write};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, Telemetry};

mod json;

/// How long the writer gathers lines before it writes them.
const GATHER: Duration = Duration::from_millis(20);
/// Past this much waiting, a logger writes the lines out itself.
const MAX_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// For one-shot commands: warnings and errors only unless RUST_LOG says
/// otherwise, on stderr so stdout stays the command's output.
pub fn init_for_cli(settings: &Telemetry) {
    init(settings, "warn");
}

/// For the long-running service: business events and requests (info).
pub fn init_for_service(settings: &Telemetry) {
    init(settings, "info");
}

/// Logging starts once the configuration is read, since its format and
/// filter are settings (LOG_FORMAT and RUST_LOG, from `.env` too). Nothing
/// needs it before: a configuration that cannot be read is reported on
/// stderr by the command line itself, and `tracing` drops what is logged
/// while no subscriber is set.
fn init(settings: &Telemetry, default_filter: &str) {
    // A filter that does not parse falls back to the default, as
    // `EnvFilter::try_from_default_env` did.
    let filter = settings
        .log_filter
        .as_deref()
        .and_then(|filter| EnvFilter::try_new(filter).ok())
        .unwrap_or_else(|| EnvFilter::new(default_filter));
    let json = match settings.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Sink);
    // Ignore a second initialisation (tests may call this more than once).
    let _ = if json {
        // The current span (with the request id) is enough; the list of
        // all enclosing spans repeated it on every line.
        builder
            .fmt_fields(json::JsonSpanFields)
            .event_format(json::JsonLines)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// Writes out every line logged so far.
pub fn flush() {
    if let Some(lines) = LINES.get() {
        lines.write_out();
    }
}

/// Lines waiting to be written, and the writer's wake-up.
struct Lines {
    waiting: Mutex<Vec<u8>>,
    /// Held while writing, so lines leave in the order they came.
    output: Mutex<()>,
    arrived: Condvar,
}

static LINES: OnceLock<Lines> = OnceLock::new();

fn lines() -> &'static Lines {
    LINES.get_or_init(|| {
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(|| lines().write_forever())
            .expect("start the log writer");
        Lines {
            waiting: Mutex::new(Vec::new()),
            output: Mutex::new(()),
            arrived: Condvar::new(),
        }
    })
}

impl Lines {
    fn push(&self, line: &[u8]) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = waiting.is_empty();
        waiting.extend_from_slice(line);
        let overflowing = waiting.len() > MAX_BUFFER_BYTES;
        drop(waiting);
        if overflowing {
            self.write_out();
        } else if was_empty {
            // One wake-up per batch, not per line.
            self.arrived.notify_one();
        }
    }

    /// Writes what is waiting, in order.
    fn write_out(&self) {
        let _order = self.output.lock().unwrap_or_else(|e| e.into_inner());
        let batch = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.is_empty() {
            let mut out = std::io::stderr().lock();
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
    }

    /// The writer thread: sleeps until a line arrives, gathers for a
    /// moment, writes the batch.
    fn write_forever(&self) {
        loop {
            let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            let waiting = self
                .arrived
                .wait_while(waiting, |w| w.is_empty())
                .unwrap_or_else(|e| e.into_inner());
            drop(waiting);
            std::thread::sleep(GATHER);
            self.write_out();
        }
    }
}

/// The subscriber's writer: one event's text, handed over when dropped.
struct Sink;

struct Line(Vec<u8>);

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::with_capacity(256))
    }
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            lines().push(&self.0);
        }
    }
}
