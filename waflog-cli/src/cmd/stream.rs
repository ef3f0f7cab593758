//! Line streams read on threads of their own, for the subcommands that follow an
//! input: a followed file or stdin, and every shard of a Kinesis stream.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;
use waflog_core::parse::cloudwatch::{self, Unpacked};
use waflog_core::parse::lines::{Line, LineReader};
use waflog_core::transform::TransformStats;

use super::records;
use crate::aws::{Aws, AwsContext};
use crate::cli::InputArgs;
use crate::sink::file::Output;
use crate::source::file as file_source;
use crate::source::kinesis::{Event, Reader, StartPosition};

/// What a reader thread hands over.
pub enum Msg {
    /// A line and its number.
    Line(u64, Vec<u8>),
    /// A line over the limit: its number, its start and its full length.
    TooLong(u64, Vec<u8>, u64),
    /// Every line before this one came from records up to this sequence number of
    /// this shard (`stream/shard`).
    Checkpoint(String, String),
    /// A stream reader holds nothing back: the wall clock may move event time.
    CaughtUp,
    /// The reader stopped on an error.
    Failed(anyhow::Error),
    /// Part of the input could not be read (a damaged gzip member) and was
    /// skipped: (input, line number it would have had, reason). Dead-lettered; the
    /// run goes on.
    Unreadable(String, u64, String),
    /// The end of the input.
    End,
}

/// Reads `input` on a thread of its own, line by line.
pub fn spawn_line_reader(input: file_source::Input, max_line: usize) -> mpsc::Receiver<Msg> {
    let (tx, rx) = mpsc::sync_channel::<Msg>(4096);
    std::thread::spawn(move || {
        let failure = input.failure.clone();
        let mut lines = LineReader::new(input.reader, max_line);
        let mut seen = 0u64;
        loop {
            let msg = match lines.next_line() {
                Ok(Some(Line::Ok { number, bytes, .. })) => {
                    seen = number;
                    Msg::Line(number, bytes.to_vec())
                }
                Ok(Some(Line::TooLong {
                    number,
                    prefix,
                    len,
                    ..
                })) => {
                    seen = number;
                    Msg::TooLong(number, prefix.to_vec(), len)
                }
                Ok(None) => {
                    let failed = failure
                        .as_ref()
                        .and_then(|f| f.lock().ok().map(|mut v| std::mem::take(&mut *v)))
                        .unwrap_or_default();
                    for (name, reason) in failed {
                        if tx.send(Msg::Unreadable(name, seen + 1, reason)).is_err() {
                            return;
                        }
                    }
                    Msg::End
                }
                Err(e) => Msg::Failed(anyhow::Error::new(e)),
            };
            let last = matches!(msg, Msg::End | Msg::Failed(_));
            if tx.send(msg).is_err() || last {
                break;
            }
        }
    });
    rx
}

/// The most a compressed Kinesis record may decompress to.
const UNPACKED_LIMIT: usize = 64 << 20;

/// Starts reading the Kinesis stream `stream` as the input flags say
/// (`--kinesis-start` for shards without a checkpoint in `checkpoints`,
/// `--consumer`): its lines, and the flag that stops its readers (Ctrl-C sets it).
pub fn read_kinesis(
    aws: &mut AwsContext,
    stream: &str,
    input: &InputArgs,
    checkpoints: BTreeMap<String, String>,
    max_line: usize,
) -> anyhow::Result<(mpsc::Receiver<Msg>, Arc<AtomicBool>)> {
    let start = StartPosition::parse(&input.kinesis_start).context("invalid --kinesis-start")?;
    let stop = crate::interrupt::stop_on_ctrl_c()?;
    let rx = kinesis_lines(
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

/// Reads every shard of a Kinesis stream on threads of their own: each record's
/// lines, then a checkpoint after it.
fn kinesis_lines(
    aws: Arc<Aws>,
    stream: &str,
    start: StartPosition,
    checkpoints: BTreeMap<String, String>,
    max_line: usize,
    consumer: Option<(u32, u32)>,
    stop: &Arc<AtomicBool>,
) -> mpsc::Receiver<Msg> {
    let (etx, erx) = mpsc::sync_channel::<Event>(1024);
    let mut reader = Reader::new(aws, stream, start, checkpoints);
    reader.consumer = consumer;
    let flag = Arc::clone(stop);
    std::thread::spawn(move || reader.run(&etx, &flag));
    let (tx, rx) = mpsc::sync_channel::<Msg>(4096);
    let stream = stream.to_string();
    std::thread::spawn(move || {
        let mut number = 0u64;
        for event in erx {
            let msgs = match event {
                Event::Record {
                    shard,
                    sequence,
                    data,
                } => {
                    // A CloudWatch Logs subscription payload (gzip) gives its log
                    // events' messages; other gzip data is decompressed.
                    let mut v: Vec<Msg> = Vec::new();
                    let unpacked;
                    let data: &[u8] = match cloudwatch::unpack(&data, UNPACKED_LIMIT) {
                        None => &data,
                        Some(Ok(Unpacked::Decompressed(bytes))) => {
                            unpacked = bytes;
                            &unpacked
                        }
                        Some(Ok(Unpacked::Payload(p))) => {
                            if p.is_control() {
                                tracing::debug!(
                                    "{stream}/{shard}: a CloudWatch Logs control message, skipped"
                                );
                            } else {
                                for event in p.log_events {
                                    number += 1;
                                    v.push(Msg::Line(number, event.message.into_bytes()));
                                }
                            }
                            b""
                        }
                        Some(Err(e)) => {
                            v.push(Msg::Unreadable(
                                format!("kinesis://{stream}/{shard} record {sequence}"),
                                number + 1,
                                e.to_string(),
                            ));
                            b""
                        }
                    };
                    v.extend(
                        data.split(|&b| b == b'\n')
                            .filter(|l| !l.trim_ascii().is_empty())
                            .map(|l| {
                                number += 1;
                                if l.len() > max_line {
                                    Msg::TooLong(number, l[..max_line].to_vec(), l.len() as u64)
                                } else {
                                    Msg::Line(number, l.to_vec())
                                }
                            }),
                    );
                    v.push(Msg::Checkpoint(format!("{stream}/{shard}"), sequence));
                    v
                }
                Event::CaughtUp => vec![Msg::CaughtUp],
                Event::Failed(e) => vec![Msg::Failed(e)],
            };
            for m in msgs {
                if tx.send(m).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Msg::End);
    });
    rx
}

/// What a followed input drives: one stage per subcommand.
pub trait FollowStage {
    /// Handles one line (see [`records::handle`]).
    fn line(&mut self, line: &[u8]) -> records::LineOutcome;
    /// Every line handed over so far came from records up to `sequence` of
    /// `shard` (`stream/shard`).
    fn checkpoint(&mut self, shard: String, sequence: String);
    /// Called after every message and every 200 ms without one. `idle_ms` is the
    /// time since the last line when the input is idle at its tip (no stream
    /// reader holds records back), for moving event time with the wall clock.
    /// `stats` are the input's counts so far.
    fn tick(&mut self, idle_ms: Option<i64>, stats: &TransformStats) -> anyhow::Result<()>;
}

/// Follows `rx` until its end, `idle_exit` without a line, or `stop`: lines go
/// through [`records::handle`] into `stage` (blank lines skipped, rejects
/// dead-lettered, counted in `stats`).
#[allow(clippy::too_many_arguments)]
pub fn follow(
    rx: &mpsc::Receiver<Msg>,
    source: &str,
    max_line: usize,
    stats: &mut TransformStats,
    dead: &mut Output,
    idle_exit: Option<Duration>,
    stop: &AtomicBool,
    stage: &mut impl FollowStage,
) -> anyhow::Result<()> {
    let mut last_seen = Instant::now();
    // A file being followed is idle when no line comes; a stream reader says when
    // it is at the tip (a slow read of a backlog is not idleness): idleness counts
    // from the last line or from reaching the tip, whichever is later.
    let stream = source.starts_with("kinesis://");
    let mut at_tip = !stream;
    let mut idle_since = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            tracing::info!("{source}: stopping (interrupted)");
            return Ok(());
        }
        if at_tip && idle_exit.is_some_and(|d| idle_since.elapsed() >= d) {
            tracing::info!(
                "{source}: no record for {:?}, stopping (--idle-exit)",
                idle_since.elapsed()
            );
            return Ok(());
        }
        let mut handle = |line: Line<'_>| {
            records::handle(line, source, max_line, stats, dead, &mut |l| stage.line(l))
        };
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Msg::Line(number, bytes)) => {
                handle(Line::Ok {
                    number,
                    bytes: &bytes,
                    offset: None,
                })?;
                stats.bytes_in += bytes.len() as u64 + 1;
                last_seen = Instant::now();
                idle_since = last_seen;
                at_tip = !stream;
            }
            Ok(Msg::TooLong(number, prefix, len)) => {
                handle(Line::TooLong {
                    number,
                    prefix: &prefix,
                    len,
                    offset: None,
                })?;
                stats.bytes_in += len + 1;
            }
            Ok(Msg::Checkpoint(shard, sequence)) => stage.checkpoint(shard, sequence),
            Ok(Msg::CaughtUp) => {
                if !at_tip {
                    idle_since = Instant::now();
                }
                at_tip = true;
            }
            Ok(Msg::Unreadable(name, line, reason)) => {
                records::unreadable(&name, line, &reason, stats, dead)?;
            }
            Ok(Msg::End) => return Ok(()),
            // A reader cut off by Ctrl-C: stop as interrupted, saving state.
            Ok(Msg::Failed(_)) if stop.load(Ordering::SeqCst) => {
                tracing::info!("{source}: stopping (interrupted)");
                return Ok(());
            }
            Ok(Msg::Failed(e)) => return Err(e.context(format!("cannot read input {source}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
        let idle = i64::try_from(last_seen.elapsed().as_millis()).unwrap_or(i64::MAX);
        stage.tick((idle >= 200 && at_tip).then_some(idle), stats)?;
    }
}
