//! Logging: JSON lines (`LOG_FORMAT=json`, the default when stderr is not a
//! terminal) or human-readable, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// For one-shot commands: warnings and errors only unless RUST_LOG says
/// otherwise, on stderr so stdout stays the command's output.
pub fn init_for_cli() {
    init("warn");
}

/// For the long-running service: business events and requests (info).
pub fn init_for_service() {
    init("info");
}

fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = match std::env::var("LOG_FORMAT").ok().as_deref() {
        Some("json") => true,
        Some("pretty") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Ignore a second initialisation (tests may call this more than once).
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
