//! One module per subcommand: build from flags, run, report.

pub mod generate;
pub mod transform;

use anyhow::Context;
use waflog_core::Config;

/// Loads `--config` (or the built-in defaults).
pub fn load_config(global: &crate::cli::GlobalArgs) -> anyhow::Result<Config> {
    match &global.config {
        Some(path) => Config::load(path).context("invalid configuration"),
        None => Ok(Config::default()),
    }
}

/// Events (or bytes) per second, for summaries.
pub fn per_second(n: u64, elapsed: std::time::Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}
