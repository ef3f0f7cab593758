//! Logs go through `tracing` to stderr; data goes to stdout.

use tracing_subscriber::EnvFilter;

/// Sets up the subscriber: `WAFLOG_LOG` (an `EnvFilter` directive such as `debug`)
/// wins, else `-v` / `-q` pick the level (default `info`).
pub fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("WAFLOG_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        // Not `eprintln!` about a failed log write: it panics on a closed stderr.
        .log_internal_errors(false)
        .without_time()
        .init();
}
