//! Exit codes that scripts can rely on, the same for every subcommand.

use std::process::ExitCode;

/// How a subcommand finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Everything went to the output (dead letters, if any, were kept and counted).
    Ok,
    /// `--strict` and at least one record was dead-lettered.
    DeadLettered,
    /// Alert notifications could not be delivered (they are kept in the state file
    /// for a later run, or were printed when there is none).
    Undelivered,
}

/// Exit code 0: finished.
pub const OK: u8 = 0;
/// Exit code 1: finished, but `--strict` and something was dead-lettered.
pub const STRICT_DEAD_LETTERS: u8 = 1;
/// Exit code 2: usage, configuration or I/O error.
pub const ERROR: u8 = 2;
/// Exit code 3: finished, but alert notifications are still undelivered.
pub const UNDELIVERED: u8 = 3;
/// Exit code 130: stopped by Ctrl-C in the middle of an AWS call (state and
/// checkpoints saved first).
pub const INTERRUPTED: u8 = 130;

/// Maps a subcommand's outcome to the process exit code, printing errors.
pub fn code(outcome: anyhow::Result<Finished>) -> ExitCode {
    match outcome {
        Ok(Finished::Ok) => ExitCode::from(OK),
        Ok(Finished::DeadLettered) => ExitCode::from(STRICT_DEAD_LETTERS),
        Ok(Finished::Undelivered) => ExitCode::from(UNDELIVERED),
        // A closed stdout (`waflog generate | head`) is a normal way to stop.
        Err(e) if is_broken_pipe(&e) => ExitCode::from(OK),
        Err(e) if crate::interrupt::is_interrupted(&e) => {
            tracing::warn!("{e:#}");
            ExitCode::from(INTERRUPTED)
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(ERROR)
        }
    }
}

/// True when the error chain holds an I/O error of kind `BrokenPipe`.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
