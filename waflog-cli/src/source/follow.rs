//! Following an input: lines read on threads of their own ([`Msg`]; a followed
//! file or stdin by [`spawn_line_reader`], every shard of a Kinesis stream by
//! `crate::source::kinesis::lines`) and the loop that hands them to a
//! subcommand's [`FollowStage`] until the input ends, `--idle-exit` or Ctrl-C
//! ([`follow`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use waflog_core::parse::lines::{Line, LineReader};
use waflog_core::transform::TransformStats;

use super::file as file_source;
use crate::records;
use crate::sink::file::Output;

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

/// How often a followed file at its end is looked at again.
const POLL: Duration = Duration::from_millis(100);

/// Opens the file `name` to follow it as it grows, like `tail -F`: at its end
/// the reader waits for more; when the file at that path is replaced (rotated:
/// renamed or removed, and created anew) the new file is read from its start,
/// and when it is truncated (copy-and-truncate rotation) it is read again from
/// its start. A last line without its newline is ended before the new file's
/// first. A gzip file is read to its end, as without `--follow`.
pub fn tail(name: &str) -> anyhow::Result<file_source::Input> {
    let input = file_source::open(name)?;
    if input.failure.is_some() {
        // Decompressed: a gzip file does not grow line by line.
        return Ok(input);
    }
    let file = File::open(name).with_context(|| format!("cannot open input {name}"))?;
    let id = file_id(
        &file
            .metadata()
            .with_context(|| format!("cannot stat input {name}"))?,
    );
    Ok(file_source::Input {
        name: name.to_string(),
        reader: Box::new(Tail {
            path: PathBuf::from(name),
            file,
            id,
            pos: 0,
            ended_line: true,
            by_path: true,
        }),
        size: None,
        failure: None,
        origins: None,
    })
}

/// A file's identity: its device and inode (on Unix), to see that the path now
/// names another file.
#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// Elsewhere only truncation is seen.
#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// A followed file (see [`tail`]).
struct Tail {
    path: PathBuf,
    file: File,
    id: (u64, u64),
    /// Bytes read from `file`.
    pos: u64,
    /// The last byte handed over ended a line (or none was).
    ended_line: bool,
    /// A new file at the path is followed (one followed file); else the file
    /// itself is, wherever it is renamed ([`tail_many`] finds new files).
    by_path: bool,
}

impl Tail {
    /// At the end of the file: whether the path now names a new file (opened)
    /// or the file was truncated (read again from its start).
    fn reopened(&mut self) -> io::Result<bool> {
        if !self.by_path {
            if self.file.metadata()?.len() < self.pos {
                self.file.seek(SeekFrom::Start(0))?;
                self.pos = 0;
                return Ok(true);
            }
            return Ok(false);
        }
        let Ok(meta) = std::fs::metadata(&self.path) else {
            // Renamed or removed, not created again yet.
            return Ok(false);
        };
        if file_id(&meta) != self.id {
            let Ok(file) = File::open(&self.path) else {
                return Ok(false);
            };
            tracing::info!(
                "{}: the file was replaced; reading the new one",
                self.path.display()
            );
            self.id = file_id(&file.metadata()?);
            self.file = file;
            self.pos = 0;
            return Ok(true);
        }
        if meta.len() < self.pos {
            tracing::info!(
                "{}: the file was truncated; reading it from its start",
                self.path.display()
            );
            self.file.seek(SeekFrom::Start(0))?;
            self.pos = 0;
            return Ok(true);
        }
        Ok(false)
    }
}

impl Tail {
    /// What the file has now (0 at its end, after a look for rotation).
    fn read_available(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.file.read(buf)?;
            if n > 0 {
                self.pos += n as u64;
                self.ended_line = buf[n - 1] == b'\n';
                return Ok(n);
            }
            if !self.reopened()? {
                return Ok(0);
            }
            if !self.ended_line {
                self.ended_line = true;
                buf[0] = b'\n';
                return Ok(1);
            }
        }
    }
}

impl Read for Tail {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.read_available(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            std::thread::sleep(POLL);
        }
    }
}

/// How often [`tail_many`] looks for new files.
const RESCAN: Duration = Duration::from_secs(1);

/// Follows several local names at once (`--follow` with more than one file, a
/// directory or a glob) as one input: every file they stand for is read from
/// its start and then followed as it grows. Of the lines the files have at a
/// time, the earliest in event time goes first (an event-time merge of what is
/// there, as for files read to their end; a file with nothing new is not
/// waited for), so the backlog of several files is not made late by their
/// order, and live lines go as they come. No line is cut. Every [`RESCAN`] the
/// names are expanded again: a file that appears (a new file in a followed
/// directory, the new file at a rotated path) is read from its start; a file
/// already followed is recognised by its identity (device and inode) under its
/// new name after a rename, and a truncated one is read again from its start.
/// Gzip files are read to their end when present at the start; those that
/// appear later are taken as compressed rotations of lines already read, and
/// skipped (logged). A line longer than `max_line` is cut there (and
/// dead-lettered downstream); the rest of it is dropped.
pub fn tail_many(names: Vec<String>, max_line: usize) -> anyhow::Result<file_source::Input> {
    let label = super::local::label(&names);
    let mut tails = Tails {
        names,
        lanes: Vec::new(),
        known: std::collections::HashSet::new(),
        last_scan: Instant::now(),
        out: Vec::new(),
        out_pos: 0,
        chunk: vec![0u8; TAILS_BLOCK],
        cap: max_line.saturating_add(1),
    };
    tails.scan(true)?;
    tracing::info!("{label}: following {} files", tails.lanes.len());
    Ok(file_source::Input {
        name: label,
        reader: Box::new(tails),
        size: None,
        failure: None,
        origins: None,
    })
}

/// One file of [`tail_many`].
struct Lane {
    name: String,
    reader: LaneReader,
    /// Complete lines read and not handed over yet, with their event times.
    lines: VecDeque<(i64, Vec<u8>)>,
    /// Bytes read after the last complete line.
    pending: Vec<u8>,
    /// The rest of an over-long line is being dropped.
    dropping: bool,
    /// A gzip file read to its end.
    done: bool,
}

enum LaneReader {
    Tail(Tail),
    Whole(Box<dyn Read + Send>),
}

/// The files of [`tail_many`].
struct Tails {
    names: Vec<String>,
    lanes: Vec<Lane>,
    /// Identities of the files followed.
    known: std::collections::HashSet<(u64, u64)>,
    last_scan: Instant,
    out: Vec<u8>,
    out_pos: usize,
    /// The read buffer of [`Tails::pull`], kept between calls.
    chunk: Vec<u8>,
    /// Longest line kept, with its newline.
    cap: usize,
}

/// Bytes handed over per read of [`Tails`], about.
const TAILS_BLOCK: usize = 64 << 10;

impl Tails {
    /// Expands the names and opens the files not followed yet (`first`: the files
    /// present at the start, where errors count and gzip files are read).
    fn scan(&mut self, first: bool) -> anyhow::Result<()> {
        self.last_scan = Instant::now();
        for name in self.names.clone() {
            let files = match super::local::expand(&name, &super::S3Range::default()) {
                Ok(f) => f,
                Err(e) if !first => {
                    tracing::debug!("{name}: {e:#}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            for f in files {
                if let Some(lane) = self.open_lane(f.name, first)? {
                    self.lanes.push(lane);
                }
            }
        }
        Ok(())
    }

    /// The file `name` as a lane, unless it is followed already (or, after the
    /// start, a gzip file, or gone again).
    fn open_lane(&mut self, name: String, first: bool) -> anyhow::Result<Option<Lane>> {
        let opened = File::open(&name).and_then(|f| f.metadata().map(|m| (f, m)));
        let (file, meta) = match opened {
            Ok(o) => o,
            Err(e) if !first => {
                tracing::debug!("{name}: {e}");
                return Ok(None);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot open input {name}")),
        };
        let id = file_id(&meta);
        if !self.known.insert(id) {
            return Ok(None);
        }
        let input = file_source::open(&name)?;
        // Decompressed (gzip): read to its end, not followed.
        let reader = if input.failure.is_some() {
            if !first {
                tracing::info!(
                    "{name}: a gzip file appeared; taken as a compressed rotation and skipped"
                );
                return Ok(None);
            }
            LaneReader::Whole(input.reader)
        } else {
            if !first {
                tracing::info!("{name}: a new file; following it");
            }
            LaneReader::Tail(Tail {
                path: PathBuf::from(&name),
                file,
                id,
                pos: 0,
                ended_line: true,
                by_path: false,
            })
        };
        Ok(Some(Lane {
            name,
            reader,
            lines: VecDeque::new(),
            pending: Vec::new(),
            dropping: false,
            done: false,
        }))
    }

    /// Reads what lane `i` has now into its lines; whether it read anything.
    fn pull(&mut self, i: usize) -> io::Result<bool> {
        let cap = self.cap;
        let (lane, chunk) = (&mut self.lanes[i], &mut self.chunk);
        if lane.done {
            return Ok(false);
        }
        let n = match &mut lane.reader {
            LaneReader::Tail(t) => t.read_available(chunk)?,
            LaneReader::Whole(r) => r
                .read(chunk)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", lane.name)))?,
        };
        let mut data = &chunk[..n];
        while !data.is_empty() {
            let newline = data.iter().position(|&b| b == b'\n');
            let (part, rest) = match newline {
                Some(p) => (&data[..p], &data[p + 1..]),
                None => (data, &data[data.len()..]),
            };
            if !lane.dropping {
                lane.pending.extend_from_slice(part);
            }
            if newline.is_some() {
                if !lane.dropping {
                    let line = std::mem::take(&mut lane.pending);
                    lane.lines.push_back((file_source::line_time(&line), line));
                }
                lane.pending.clear();
                lane.dropping = false;
            } else if lane.pending.len() > cap {
                // Over the limit: handed over as one line (dead-lettered
                // downstream as too long), the rest of it dropped.
                let line = std::mem::take(&mut lane.pending);
                lane.lines.push_back((i64::MIN, line));
                lane.dropping = true;
            }
            data = rest;
        }
        if n == 0 && matches!(lane.reader, LaneReader::Whole(_)) {
            lane.done = true;
            let line = std::mem::take(&mut lane.pending);
            if !line.is_empty() && !lane.dropping {
                lane.lines.push_back((file_source::line_time(&line), line));
            }
        }
        Ok(n > 0)
    }

    /// The lane whose next line is the earliest in event time.
    fn earliest(&self) -> Option<usize> {
        self.lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.lines.front().map(|(t, _)| (*t, i)))
            .min()
            .map(|(_, i)| i)
    }
}

impl Read for Tails {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out_pos < self.out.len() {
                let n = buf.len().min(self.out.len() - self.out_pos);
                buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                return Ok(n);
            }
            self.out.clear();
            self.out_pos = 0;
            if self.last_scan.elapsed() >= RESCAN {
                self.scan(false).map_err(io::Error::other)?;
            }
            let mut read_any = false;
            for i in 0..self.lanes.len() {
                if self.lanes[i].lines.is_empty() {
                    read_any |= self.pull(i)?;
                }
            }
            while self.out.len() < TAILS_BLOCK {
                let Some(i) = self.earliest() else {
                    break;
                };
                if let Some((_, line)) = self.lanes[i].lines.pop_front() {
                    self.out.extend_from_slice(&line);
                    self.out.push(b'\n');
                }
                if self.lanes[i].lines.is_empty() {
                    read_any |= self.pull(i)?;
                }
            }
            if self.out.is_empty() && !read_any {
                std::thread::sleep(POLL);
            }
        }
    }
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
