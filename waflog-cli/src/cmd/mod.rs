//! The subcommands' glue, one module each: build the pieces from the flags, run
//! them, report. This module holds what they share: the configuration, the
//! `--state` file, the Kinesis flags, summaries and exit status.

pub mod alerts;
pub mod detect;
pub mod eval;
pub mod firehose;
pub mod generate;
pub mod opensearch;
pub mod report;
pub mod transform;

use anyhow::Context;
use waflog_core::Config;
use waflog_core::transform::TransformStats;

use crate::exit::Finished;

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

/// Loads the configuration and applies `--max-line-bytes`.
pub fn load_config_with_limit(
    global: &crate::cli::GlobalArgs,
    max_line_bytes: Option<usize>,
) -> anyhow::Result<Config> {
    let mut config = load_config(global)?;
    if let Some(m) = max_line_bytes {
        config.input.max_line_bytes = m;
        config
            .validate(std::path::Path::new("--max-line-bytes"))
            .context("invalid --max-line-bytes")?;
    }
    Ok(config)
}

/// Exit status of a run that read records: `--strict` turns dead letters into 1.
pub fn finished(global: &crate::cli::GlobalArgs, stats: &TransformStats) -> Finished {
    if global.strict && stats.dead_lettered > 0 {
        Finished::DeadLettered
    } else {
        Finished::Ok
    }
}

/// `--idle-exit` as a duration.
pub fn idle_exit(input: &crate::cli::InputArgs) -> anyhow::Result<Option<std::time::Duration>> {
    input
        .idle_exit
        .as_deref()
        .map(|d| humantime::parse_duration(d).map_err(|e| anyhow::anyhow!("--idle-exit {d}: {e}")))
        .transpose()
}

/// Starts reading the Kinesis stream `stream` as the input flags say
/// (`--kinesis-start` for shards without a checkpoint in `checkpoints`,
/// `--kinesis-consumer`): its lines, and the flag that stops its readers (Ctrl-C
/// sets it).
pub fn read_kinesis(
    aws: &mut crate::aws::AwsContext,
    stream: &str,
    input: &crate::cli::InputArgs,
    checkpoints: std::collections::BTreeMap<String, String>,
    max_line: usize,
) -> anyhow::Result<(
    std::sync::mpsc::Receiver<crate::source::follow::Msg>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
)> {
    use crate::source::kinesis::{self, StartPosition};
    let start = StartPosition::parse(&input.kinesis_start).context("invalid --kinesis-start")?;
    let stop = crate::interrupt::stop_on_ctrl_c()?;
    let rx = kinesis::lines(
        aws.get()?,
        stream,
        start,
        checkpoints,
        max_line,
        input.consumer()?,
        &stop,
    );
    Ok((rx, stop))
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename;
/// a crash leaves the old file or the new one, never half of one.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let context = || format!("cannot write {}", path.display());
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp).with_context(context)?;
        f.write_all(bytes).with_context(context)?;
        f.sync_all().with_context(context)?;
    }
    std::fs::rename(&tmp, path).with_context(context)
}

/// The `--state` file at `path` (`None` when it does not exist), read through the
/// core's one reader; `hint` ends the message of a file that cannot be used.
pub fn read_state(
    path: &std::path::Path,
    hint: &str,
) -> anyhow::Result<Option<waflog_core::pipeline::State>> {
    match crate::files::read_capped_if_exists(path, crate::files::STATE_CAP, "state file")? {
        Some(bytes) => parse_state(path, &bytes, hint).map(Some),
        None => Ok(None),
    }
}

/// The state in `bytes`, read from `path` (see [`read_state`]).
pub fn parse_state(
    path: &std::path::Path,
    bytes: &[u8],
    hint: &str,
) -> anyhow::Result<waflog_core::pipeline::State> {
    waflog_core::pipeline::State::from_slice(bytes).with_context(|| {
        format!(
            "state file {} is corrupt or not a waflog state file{hint}",
            path.display()
        )
    })
}

/// Writes the `--state` file atomically (see [`write_atomic`]).
pub fn write_state(
    path: &std::path::Path,
    state: &waflog_core::pipeline::State,
) -> anyhow::Result<()> {
    let json = state
        .to_vec()
        .with_context(|| format!("cannot write state file {}", path.display()))?;
    write_atomic(path, &json)
}
