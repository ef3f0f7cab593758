//! The record loop shared by every subcommand that reads logs: split lines, skip
//! blanks, hand each line to the stage, dead-letter what the stage rejects, count.

use anyhow::Context;
use waflog_core::error::SchemaError;
use waflog_core::parse::DeadLetter;
use waflog_core::parse::cloudwatch;
use waflog_core::parse::lines::{Line, LineReader};
use waflog_core::transform::TransformStats;

use crate::sink::file::Output;
use crate::source::file::{Input, Origin};

/// What a stage says about one line: `Ok(Err(_))` dead-letters it, `Err(_)` (an
/// output error) stops the run.
pub type LineOutcome = anyhow::Result<Result<(), SchemaError>>;

/// Handles one line: blank lines are counted and skipped, long lines and lines the
/// stage rejects go to the dead-letter output.
pub fn handle(
    line: Line<'_>,
    source: &str,
    max_line: usize,
    stats: &mut TransformStats,
    dead: &mut Output,
    stage: &mut impl FnMut(&[u8]) -> LineOutcome,
) -> anyhow::Result<()> {
    let mut dead_buf = Vec::new();
    match line {
        Line::Ok {
            number,
            bytes,
            offset,
        } => {
            if bytes.trim_ascii().is_empty() {
                stats.blank += 1;
                return Ok(());
            }
            let at = (source, number, offset);
            // A CloudWatch Logs export line (`<timestamp> <record>`) is its record.
            let bytes = cloudwatch::export_message(bytes).unwrap_or(bytes);
            if cloudwatch::looks_like_payload(bytes) {
                payload(bytes, at, stats, &mut dead_buf, stage)?;
            } else {
                record(bytes, at, stats, &mut dead_buf, stage)?;
            }
        }
        Line::TooLong {
            number,
            prefix,
            len,
            offset,
        } => {
            stats.records_in += 1;
            stats.dead_lettered += 1;
            let e = SchemaError::LineTooLong { len, max: max_line };
            DeadLetter::new(source, number, &e, prefix)
                .at(offset)
                .write_ndjson(&mut dead_buf);
        }
    }
    if !dead_buf.is_empty() {
        dead.write_block(&dead_buf)?;
    }
    Ok(())
}

/// Where a record starts: its source, line number and byte offset.
type At<'a> = (&'a str, u64, Option<u64>);

/// Hands one record to the stage: counted, and dead-lettered into `dead_buf` when the
/// stage rejects it.
fn record(
    bytes: &[u8],
    (source, number, offset): At<'_>,
    stats: &mut TransformStats,
    dead_buf: &mut Vec<u8>,
    stage: &mut impl FnMut(&[u8]) -> LineOutcome,
) -> anyhow::Result<()> {
    stats.records_in += 1;
    match stage(bytes)? {
        Ok(()) => stats.records_out += 1,
        Err(e) => {
            stats.dead_lettered += 1;
            DeadLetter::new(source, number, &e, bytes)
                .at(offset)
                .write_ndjson(dead_buf);
        }
    }
    Ok(())
}

/// A CloudWatch Logs subscription payload (see [`waflog_core::parse::cloudwatch`]) in place
/// of a record: each log event's message is a record (dead letters name the payload's
/// line and offset), a control message is counted and skipped, a payload that cannot
/// be read is one dead letter.
fn payload(
    bytes: &[u8],
    at: At<'_>,
    stats: &mut TransformStats,
    dead_buf: &mut Vec<u8>,
    stage: &mut impl FnMut(&[u8]) -> LineOutcome,
) -> anyhow::Result<()> {
    let (source, number, offset) = at;
    match cloudwatch::parse(bytes) {
        Err(e) => {
            stats.records_in += 1;
            stats.dead_lettered += 1;
            DeadLetter::with_reason(source, number, e.to_string(), bytes, false)
                .at(offset)
                .write_ndjson(dead_buf);
        }
        Ok(p) if p.is_control() => {
            stats.control_messages += 1;
            tracing::debug!("{source}: line {number}: a CloudWatch Logs control message, skipped");
        }
        Ok(p) => {
            for event in &p.log_events {
                record(event.message.as_bytes(), at, stats, dead_buf, stage)?;
            }
        }
    }
    Ok(())
}

/// Runs `stage` on every line of `input`, with a progress bar on a terminal.
pub fn each_line(
    input: Input,
    max_line: usize,
    stats: &mut TransformStats,
    dead: &mut Output,
    mut stage: impl FnMut(&[u8]) -> LineOutcome,
) -> anyhow::Result<()> {
    let progress = crate::progress::bar(input.size, "bytes", false);
    let source = input.name.clone();
    let failure = input.failure.clone();
    let origins = input.origins.clone();
    let mut lines = LineReader::new(input.reader, max_line);
    let mut since_tick = 0u32;
    let mut lines_seen = 0u64;
    loop {
        let line = lines
            .next_line()
            .with_context(|| format!("cannot read input {source}"))?;
        let Some(line) = line else { break };
        // A merged line is named by the input and line it comes from.
        match origins
            .as_ref()
            .and_then(|o| o.lock().ok().and_then(|mut q| q.pop_front()))
        {
            Some(origin) => {
                let line = at_origin(line, &origin);
                handle(line, &origin.name, max_line, stats, dead, &mut stage)?;
            }
            None => handle(line, &source, max_line, stats, dead, &mut stage)?,
        }
        lines_seen += 1;
        since_tick += 1;
        if since_tick == 1 << 16 {
            since_tick = 0;
            progress.set_position(lines.bytes_read());
        }
    }
    stats.bytes_in += lines.bytes_read();
    progress.finish_and_clear();
    let failed: Vec<(String, String)> = failure
        .and_then(|f| f.lock().ok().map(|mut v| std::mem::take(&mut *v)))
        .unwrap_or_default();
    for (name, reason) in failed {
        let line = if name == source { lines_seen + 1 } else { 0 };
        unreadable(&name, line, &reason, stats, dead)?;
    }
    Ok(())
}

/// `line` with the line number and offset of its origin.
fn at_origin<'a>(line: Line<'a>, origin: &Origin) -> Line<'a> {
    match line {
        Line::Ok { bytes, .. } => Line::Ok {
            number: origin.line,
            bytes,
            offset: origin.offset,
        },
        Line::TooLong { prefix, len, .. } => Line::TooLong {
            number: origin.line,
            prefix,
            len,
            offset: origin.offset,
        },
    }
}

/// An input stopped early (a corrupt S3 object, a damaged gzip member): what was
/// read is kept, the damage goes to the dead letters (input, the line number the
/// next line would have had, reason) and the run goes on.
pub fn unreadable(
    name: &str,
    line: u64,
    reason: &str,
    stats: &mut TransformStats,
    dead: &mut Output,
) -> anyhow::Result<()> {
    stats.dead_lettered += 1;
    tracing::error!("{name}: {reason}; skipped the rest of it");
    let mut entry = Vec::new();
    DeadLetter::with_reason(
        name,
        line,
        format!("unreadable input: {reason}"),
        b"",
        false,
    )
    .write_ndjson(&mut entry);
    dead.write_block(&entry)
}

/// The inputs to read: the arguments, or stdin when there are none.
pub fn input_names(inputs: &[String]) -> Vec<String> {
    if inputs.is_empty() {
        vec!["-".to_string()]
    } else {
        inputs.to_vec()
    }
}

/// "; N dead-lettered to PLACE" and "; N CloudWatch Logs control messages skipped"
/// for summaries, or nothing.
pub fn dead_letter_note(stats: &TransformStats, path: Option<&std::path::Path>) -> String {
    let mut note = String::new();
    if stats.dead_lettered > 0 {
        note += &format!(
            "; {} dead-lettered to {}",
            stats.dead_lettered,
            path.map_or("stderr".into(), |p| p.display().to_string())
        );
    }
    if stats.control_messages > 0 {
        note += &format!(
            "; {} CloudWatch Logs control messages skipped",
            stats.control_messages
        );
    }
    note
}
