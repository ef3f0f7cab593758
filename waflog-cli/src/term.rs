//! Human-readable text on stdout and stderr, without panics: `print!` and
//! `eprintln!` panic when the stream is closed (Rust ignores SIGPIPE, so a write to
//! a closed pipe fails with `EPIPE`) or full. Here a stdout failure is an error
//! (a closed pipe then exits 0, a full disk 2, see [`crate::exit`]); a stderr
//! failure is ignored, as the log lines ignore it. Control characters are escaped
//! on the way out (line feeds excepted), whatever the text holds.

use std::io::Write;

use anyhow::Context;
use waflog_core::text::escape_control_lines;

/// Writes `text` to stdout and flushes it.
pub fn out(text: &str) -> anyhow::Result<()> {
    raw_out(escape_control_lines(text).as_bytes())
}

/// Writes `bytes` (JSON, HTML: already escaped) to stdout and flushes it.
pub fn raw_out(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}

/// Writes `text` and a line feed to stderr; a closed or failing stderr is ignored.
pub fn err_line(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}", escape_control_lines(text));
}

/// Stdout as a writer whose errors say so ("cannot write to stdout: ..."), keeping
/// the error kind (a closed pipe is still `BrokenPipe`).
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().write(buf).map_err(named)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush().map_err(named)
    }
}

fn named(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot write to stdout: {e}"))
}

/// The writer of the `stdout` and `stderr` alert channels: when the reader of the
/// pipe is gone (`| head`), the text is dropped as log lines are, and the run ends
/// as for any closed pipe (exit 0) instead of counting undeliverable alerts; every
/// other error (a full disk) is reported.
pub struct Console<W>(pub W);

impl<W: Write> Write for Console<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(buf.len()),
            r => r,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r,
        }
    }
}
