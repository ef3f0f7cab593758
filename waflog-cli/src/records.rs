//! The record loop shared by every subcommand that reads logs: split lines, skip
//! blanks, hand each line to the stage, dead-letter what the stage rejects, count.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};

use anyhow::Context;
use waflog_core::detect::{Extractor, Prepared};
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
    handle_into(line, source, max_line, stats, &mut dead_buf, stage)?;
    if !dead_buf.is_empty() {
        dead.write_block(&dead_buf)?;
    }
    Ok(())
}

/// [`handle`] with the dead letters appended to `dead_buf`.
fn handle_into(
    line: Line<'_>,
    source: &str,
    max_line: usize,
    stats: &mut TransformStats,
    dead_buf: &mut Vec<u8>,
    stage: &mut impl FnMut(&[u8]) -> LineOutcome,
) -> anyhow::Result<()> {
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
                payload(bytes, at, stats, dead_buf, stage)?;
            } else {
                record(bytes, at, stats, dead_buf, stage)?;
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
                .write_ndjson(dead_buf);
        }
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
    report_failures(failure, &source, lines_seen, stats, dead)
}

/// Dead-letters the inputs that stopped early (see [`unreadable`]); the one
/// read here, `source`, after its `lines_seen` lines.
fn report_failures(
    failure: Option<crate::source::file::Failure>,
    source: &str,
    lines_seen: u64,
    stats: &mut TransformStats,
    dead: &mut Output,
) -> anyhow::Result<()> {
    let failed: Vec<(String, String)> = failure
        .and_then(|f| f.lock().ok().map(|mut v| std::mem::take(&mut *v)))
        .unwrap_or_default();
    for (name, reason) in failed {
        let line = if name == source { lines_seen + 1 } else { 0 };
        unreadable(&name, line, &reason, stats, dead)?;
    }
    Ok(())
}

/// Bytes of line text per batch handed to a worker by [`each_line_parallel`].
const BATCH_BYTES: usize = 1 << 20;

/// One line of a batch: where its bytes are in the batch's text; `too_long`:
/// the full length of a line over the limit, whose first bytes these are.
struct Item {
    number: u64,
    range: std::ops::Range<usize>,
    offset: Option<u64>,
    too_long: Option<u64>,
}

/// Lines copied out of the reader for a worker, and the buffer for what the
/// stage makes of them (buffers go round: allocating fresh megabytes for each
/// batch costs more in page faults than the copy).
#[derive(Default)]
struct Batch {
    text: Vec<u8>,
    items: Vec<Item>,
    out: Vec<u8>,
}

impl Item {
    /// The line again, its bytes in the batch's `text`.
    fn line<'a>(&self, text: &'a [u8]) -> Line<'a> {
        let bytes = &text[self.range.clone()];
        match self.too_long {
            None => Line::Ok {
                number: self.number,
                bytes,
                offset: self.offset,
            },
            Some(len) => Line::TooLong {
                number: self.number,
                prefix: bytes,
                len,
                offset: self.offset,
            },
        }
    }
}

impl Batch {
    /// Forgets the lines, keeping the buffers.
    fn clear(&mut self) {
        self.text.clear();
        self.items.clear();
    }

    fn push(&mut self, line: &Line<'_>) {
        let start = self.text.len();
        let (number, bytes, offset, too_long) = match *line {
            Line::Ok {
                number,
                bytes,
                offset,
            } => (number, bytes, offset, None),
            Line::TooLong {
                number,
                prefix,
                len,
                offset,
            } => (number, prefix, offset, Some(len)),
        };
        self.text.extend_from_slice(bytes);
        self.items.push(Item {
            number,
            range: start..self.text.len(),
            offset,
            too_long,
        });
    }
}

/// The reading side of the worker pools: lines into batches, with the progress bar.
struct Feed<R> {
    lines: LineReader<R>,
    /// Lines read.
    seen: u64,
    since_tick: u32,
    /// The read error that ended the input, if one did.
    failed: Option<std::io::Error>,
}

impl<R: std::io::Read> Feed<R> {
    fn new(lines: LineReader<R>) -> Feed<R> {
        Feed {
            lines,
            seen: 0,
            since_tick: 0,
            failed: None,
        }
    }

    /// Appends lines to `batch` until it holds [`BATCH_BYTES`] or more, or the input
    /// ends; true when it ended (a read error ends it too, kept in `failed`).
    fn fill(&mut self, batch: &mut Batch, progress: &indicatif::ProgressBar) -> bool {
        loop {
            match self.lines.next_line() {
                Ok(Some(line)) => batch.push(&line),
                Ok(None) => return true,
                Err(e) => {
                    self.failed = Some(e);
                    return true;
                }
            }
            self.seen += 1;
            self.since_tick += 1;
            if self.since_tick == 1 << 16 {
                self.since_tick = 0;
                progress.set_position(self.lines.bytes_read());
            }
            if batch.text.len() >= BATCH_BYTES {
                return false;
            }
        }
    }
}

/// What a worker thread sends back: the job's sequence number, and what it made of
/// the job or, if it panicked, the panic's message.
type Outcome<D> = (u64, Result<D, String>);

/// A worker thread of the pools: takes numbered jobs until `jobs` closes, and sends
/// `work`'s result back until `done` closes. A panic in `work` is caught and sent
/// back as an error, and the worker stops: the thread waiting for that job's result
/// then stops with the error instead of waiting for ever.
fn worker<J, D>(
    jobs: &Mutex<Receiver<(u64, J)>>,
    done: &Sender<Outcome<D>>,
    work: impl Fn(J) -> D,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, job)) = job else { return };
        let made = std::panic::catch_unwind(AssertUnwindSafe(|| work(job))).map_err(|panic| {
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string())
        });
        let failed = made.is_err();
        if done.send((seq, made)).is_err() || failed {
            return;
        }
    }
}

/// The workers' results, taken back in the order their jobs were sent.
struct InOrder<D> {
    /// Results taken so far: the sequence number of the next one.
    taken: u64,
    /// Results that came back before those sent ahead of them.
    early: BTreeMap<u64, D>,
}

impl<D> InOrder<D> {
    fn new() -> InOrder<D> {
        InOrder {
            taken: 0,
            early: BTreeMap::new(),
        }
    }

    /// Keeps a result; an error if its worker panicked.
    fn put(&mut self, (seq, made): Outcome<D>, source: &str) -> anyhow::Result<()> {
        match made {
            Ok(done) => {
                self.early.insert(seq, done);
                Ok(())
            }
            Err(panic) => {
                anyhow::bail!("a worker thread failed on input {source}: it panicked: {panic}")
            }
        }
    }

    /// The next result in order, if it is back.
    fn next(&mut self) -> Option<D> {
        let done = self.early.remove(&self.taken)?;
        self.taken += 1;
        Some(done)
    }
}

/// What a worker made of a batch: the stage's output, the dead letters and the
/// counts, in the batch's line order.
struct Done {
    out: Vec<u8>,
    dead: Vec<u8>,
    stats: TransformStats,
    /// The batch, for its buffers.
    batch: Batch,
}

/// Runs the stage over a batch, as [`handle`] does line by line.
fn run_batch(
    mut batch: Batch,
    source: &str,
    max_line: usize,
    stage: &(impl Fn(&[u8], &mut Vec<u8>) -> Result<(), SchemaError> + Sync),
) -> Done {
    let mut out = std::mem::take(&mut batch.out);
    out.clear();
    let mut dead = Vec::new();
    let mut stats = TransformStats::default();
    for item in &batch.items {
        let line = item.line(&batch.text);
        // The stage writes no output of its own here: it cannot fail but by
        // rejecting the line.
        let _ = handle_into(line, source, max_line, &mut stats, &mut dead, &mut |l| {
            Ok(stage(l, &mut out))
        });
    }
    Done {
        out,
        dead,
        stats,
        batch,
    }
}

/// [`each_line`] with the stage on `threads` worker threads: the main thread
/// reads and splits lines into batches of about 1 MiB, the workers run `stage`
/// (appending what it makes of a line to its output) and dead-letter what it
/// rejects, and a writer thread hands each batch's output to `emit` and writes
/// its dead letters, in input order, so both come out byte for byte as
/// [`each_line`] makes them. Inputs that merge others (whose lines carry their
/// origins) go through [`each_line`].
pub fn each_line_parallel(
    input: Input,
    max_line: usize,
    threads: usize,
    stats: &mut TransformStats,
    dead: &mut Output,
    stage: &(impl Fn(&[u8], &mut Vec<u8>) -> Result<(), SchemaError> + Sync),
    mut emit: impl FnMut(&[u8]) -> anyhow::Result<()> + Send,
) -> anyhow::Result<()> {
    if input.origins.is_some() || threads <= 1 {
        let mut out = Vec::with_capacity(BATCH_BYTES + (64 << 10));
        let read = each_line(input, max_line, stats, dead, |line| {
            let outcome = stage(line, &mut out);
            if out.len() >= BATCH_BYTES {
                let wrote = emit(&out);
                out.clear();
                wrote?;
            }
            Ok(outcome)
        });
        // What was made before a read error is written too.
        if !out.is_empty() {
            emit(&out)?;
        }
        return read;
    }
    let progress = crate::progress::bar(input.size, "bytes", false);
    let source = input.name.clone();
    let failure = input.failure.clone();
    let mut feed = Feed::new(LineReader::new(input.reader, max_line));
    let (job_tx, job_rx) = sync_channel::<(u64, Batch)>(threads);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = channel::<Outcome<Done>>();
    let (write_tx, write_rx) = sync_channel::<Done>(2);
    let (spare_tx, spare_rx) = channel::<Batch>();
    let dead_w = &mut *dead;
    let (written, read) = std::thread::scope(|scope| {
        for _ in 0..threads {
            let (job_rx, done_tx, source) = (&job_rx, done_tx.clone(), source.as_str());
            scope.spawn(move || {
                worker(job_rx, &done_tx, |batch| {
                    run_batch(batch, source, max_line, stage)
                });
            });
        }
        drop(done_tx);
        // The writer: outputs and dead letters in order; its counts and, when a
        // write failed, the error.
        let writer = scope.spawn(move || {
            let mut stats = TransformStats::default();
            for done in write_rx {
                let wrote = emit(&done.out).and_then(|()| {
                    if done.dead.is_empty() {
                        Ok(())
                    } else {
                        dead_w.write_block(&done.dead)
                    }
                });
                if let Err(e) = wrote {
                    return (stats, Err(e));
                }
                stats.add(&done.stats);
                let mut batch = done.batch;
                batch.clear();
                batch.out = done.out;
                let _ = spare_tx.send(batch);
            }
            (stats, Ok(()))
        });
        let read = (|| -> anyhow::Result<()> {
            // Batches sent to the workers, and results passed on in order.
            let mut sent = 0u64;
            let mut order = InOrder::new();
            // Results in order go to the writer; false once it has stopped.
            let pass_on = |order: &mut InOrder<Done>| -> bool {
                while let Some(done) = order.next() {
                    if write_tx.send(done).is_err() {
                        return false;
                    }
                }
                true
            };
            let mut batch = Batch::default();
            loop {
                let end = feed.fill(&mut batch, &progress);
                if !batch.items.is_empty() {
                    // At most two batches per worker waiting or under way.
                    while sent - order.taken >= 2 * threads as u64 {
                        let Ok(made) = done_rx.recv() else {
                            anyhow::bail!("a worker thread stopped");
                        };
                        order.put(made, &source)?;
                        if !pass_on(&mut order) {
                            return Ok(());
                        }
                    }
                    let next = spare_rx.try_recv().unwrap_or_default();
                    if job_tx
                        .send((sent, std::mem::replace(&mut batch, next)))
                        .is_err()
                    {
                        anyhow::bail!("the worker threads stopped");
                    }
                    sent += 1;
                    while let Ok(made) = done_rx.try_recv() {
                        order.put(made, &source)?;
                    }
                    if !pass_on(&mut order) {
                        return Ok(());
                    }
                }
                if end {
                    break;
                }
            }
            while order.taken < sent {
                let Ok(made) = done_rx.recv() else {
                    anyhow::bail!("a worker thread stopped");
                };
                order.put(made, &source)?;
                if !pass_on(&mut order) {
                    return Ok(());
                }
            }
            // A read error ends the input like its end does, once the lines
            // before it are written (as one thread writes them).
            match feed.failed.take() {
                Some(e) => Err(e).with_context(|| format!("cannot read input {source}")),
                None => Ok(()),
            }
        })();
        drop(job_tx);
        drop(write_tx);
        let written = writer.join().unwrap_or_else(|_| {
            (
                TransformStats::default(),
                Err(anyhow::anyhow!("the writer thread failed")),
            )
        });
        (written, read)
    });
    let (written_stats, wrote) = written;
    stats.add(&written_stats);
    // A write error first: the read stopped because of it.
    wrote?;
    read?;
    stats.bytes_in += feed.lines.bytes_read();
    progress.finish_and_clear();
    report_failures(failure, &source, feed.seen, stats, dead)
}

/// Whether [`each_record_prepared`] reads `input` on worker threads: more than one
/// thread asked, and an input that ends (not stdin, which may wait for ever) and
/// whose lines do not carry origins.
pub fn prepares(input: &Input, threads: usize) -> bool {
    threads > 1 && input.origins.is_none() && input.name != "-"
}

/// [`each_line`] for a stage that takes records in order but whose reading of each
/// record can be done ahead (`waflog detect`): a reader thread splits lines into
/// batches of about 1 MiB, `threads` workers run `extractor` over each batch's
/// records (the bytes [`handle`] would give the stage, in the same order), and this
/// thread hands every line to `stage` in input order, as [`each_line`] does, with the
/// batch's [`Prepared`] records and the record's index among them. Counts, dead
/// letters and the stage's calls are the same as [`each_line`]'s. At most
/// `2 * threads + 2` batches are in memory. Only for inputs [`prepares`] accepts.
pub fn each_record_prepared(
    input: Input,
    max_line: usize,
    threads: usize,
    stats: &mut TransformStats,
    dead: &mut Output,
    extractor: &Extractor,
    mut stage: impl FnMut(&[u8], &Prepared, usize) -> LineOutcome,
) -> anyhow::Result<()> {
    let progress = crate::progress::bar(input.size, "bytes", false);
    let source = input.name.clone();
    let failure = input.failure.clone();
    let reader = input.reader;
    let most = 2 * threads + 2;
    let (job_tx, job_rx) = sync_channel::<(u64, (Batch, Prepared))>(most);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = channel::<Outcome<(Batch, Prepared)>>();
    let (spare_tx, spare_rx) = channel::<(Batch, Prepared)>();
    // Set when this thread stops early: the reader and the workers stop too.
    let quit = AtomicBool::new(false);
    let (read, used) = std::thread::scope(|scope| {
        for _ in 0..threads {
            let (job_rx, done_tx, source, quit) = (&job_rx, done_tx.clone(), &source, &quit);
            scope.spawn(move || {
                worker(job_rx, &done_tx, |(batch, mut prepared)| {
                    if !quit.load(Ordering::Relaxed) {
                        prepare_batch(&batch, source, max_line, extractor, &mut prepared);
                    }
                    (batch, prepared)
                });
            });
        }
        drop(done_tx);
        let (progress, quit) = (&progress, &quit);
        // The reader: lines into batches for the workers; the bytes it read, the
        // lines it saw, and the read error that ended the input, if one did.
        let reader = scope.spawn(move || {
            let mut feed = Feed::new(LineReader::new(reader, max_line));
            // Batches sent, and batches made (new ones until there are `most`,
            // then those this thread hands back).
            let (mut sent, mut made) = (0u64, 1usize);
            let next = |made: &mut usize| {
                if *made < most {
                    *made += 1;
                    Some((Batch::default(), Prepared::default()))
                } else {
                    spare_rx.recv().ok()
                }
            };
            let (mut batch, mut prepared) = (Batch::default(), Prepared::default());
            loop {
                let end = feed.fill(&mut batch, progress);
                if !batch.items.is_empty() {
                    if quit.load(Ordering::Relaxed)
                        || job_tx.send((sent, (batch, prepared))).is_err()
                    {
                        break;
                    }
                    sent += 1;
                    match next(&mut made) {
                        Some(b) => (batch, prepared) = b,
                        None => break,
                    }
                }
                if end {
                    break;
                }
            }
            (feed.lines.bytes_read(), feed.seen, feed.failed)
        });
        // This thread: the batches in input order, each line to the stage.
        let used = (|| -> anyhow::Result<()> {
            let mut order = InOrder::new();
            for made in &done_rx {
                order.put(made, &source)?;
                while let Some((mut batch, mut prepared)) = order.next() {
                    let mut index = 0;
                    for item in &batch.items {
                        let line = item.line(&batch.text);
                        handle(line, &source, max_line, stats, dead, &mut |record| {
                            let outcome = stage(record, &prepared, index);
                            index += 1;
                            outcome
                        })?;
                    }
                    batch.clear();
                    prepared.clear();
                    // The reader may have stopped; the batch is then not needed.
                    let _ = spare_tx.send((batch, prepared));
                }
            }
            Ok(())
        })();
        // (`drop` moves these into the scope's closure: a panic of the stage drops
        // them too, so the reader and the workers stop and the scope can end.)
        quit.store(true, Ordering::Relaxed);
        drop(spare_tx);
        drop(done_rx);
        let read = reader.join();
        (read, used)
    });
    progress.finish_and_clear();
    used?;
    let Ok((bytes, seen, failed)) = read else {
        anyhow::bail!("the reader thread of {source} failed");
    };
    stats.bytes_in += bytes;
    if let Some(e) = failed {
        return Err(e).with_context(|| format!("cannot read input {source}"));
    }
    report_failures(failure, &source, seen, stats, dead)
}

/// What the workers of [`each_record_prepared`] do with a batch: every record that
/// [`handle`] would give a stage, in the same order, prepared by `extractor`.
fn prepare_batch(
    batch: &Batch,
    source: &str,
    max_line: usize,
    extractor: &Extractor,
    prepared: &mut Prepared,
) {
    prepared.clear();
    // Counts and dead letters are made again, in order, by the thread that takes
    // the batch.
    let (mut stats, mut dead) = (TransformStats::default(), Vec::new());
    for item in &batch.items {
        let _ = handle_into(
            item.line(&batch.text),
            source,
            max_line,
            &mut stats,
            &mut dead,
            &mut |record| {
                extractor.prepare(record, prepared);
                Ok(Ok(()))
            },
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `data`, then fails.
    struct Failing(std::io::Cursor<Vec<u8>>);

    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(std::io::Error::other("the disk went away")),
                n => Ok(n),
            }
        }
    }

    /// Output, dead letters, counts and the error of a run over `data` followed by
    /// a read error, on `threads` threads.
    fn run(data: &[u8], threads: usize) -> (Vec<u8>, Vec<u8>, TransformStats, String) {
        let dir = tempfile::tempdir().unwrap();
        let dead_path = dir.path().join("dead.ndjson");
        let mut dead = crate::sink::file::create(Some(&dead_path)).unwrap();
        let input = Input {
            name: "in".into(),
            reader: Box::new(Failing(std::io::Cursor::new(data.to_vec()))),
            size: None,
            failure: None,
            origins: None,
        };
        let transformer =
            waflog_core::transform::Transformer::new(waflog_core::features::FeatureMap::default());
        let mut stats = TransformStats::default();
        let mut out = Vec::new();
        let err = each_line_parallel(
            input,
            1 << 20,
            threads,
            &mut stats,
            &mut dead,
            &|line, out| transformer.transform_line(line, out),
            |block| {
                out.extend_from_slice(block);
                Ok(())
            },
        )
        .unwrap_err();
        dead.finish().unwrap();
        (
            out,
            std::fs::read(&dead_path).unwrap(),
            stats,
            format!("{err:#}"),
        )
    }

    /// `f`'s result, run on its own thread; fails the test if it has not returned
    /// within a minute (the bug these tests guard against is a wait for ever).
    fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("still running after a minute: a thread waits for ever")
    }

    /// Record number `i` of the tests' inputs, as a line.
    fn record_line(i: u64) -> String {
        format!(
            "{{\"timestamp\":{},\"action\":\"ALLOW\",\"httpRequest\":{{\"clientIp\":\"10.0.0.{}\",\"country\":\"US\",\"httpMethod\":\"GET\"}}}}\n",
            1_714_521_600_000 + i,
            i % 250
        )
    }

    /// An input of `lines` generated records (not a file, so no origins).
    fn records_input(lines: u64) -> Input {
        let mut data = Vec::new();
        for i in 0..lines {
            data.extend_from_slice(record_line(i).as_bytes());
        }
        Input {
            name: "in".into(),
            reader: Box::new(std::io::Cursor::new(data)),
            size: None,
            failure: None,
            origins: None,
        }
    }

    #[test]
    fn a_worker_that_panics_stops_the_run_with_an_error() {
        for threads in [2, 3] {
            let (result, wrote) = within_a_minute(move || {
                let mut dead = crate::sink::file::create(None).unwrap();
                let mut stats = TransformStats::default();
                let mut wrote = 0;
                // Record 20,000 (in the third batch or so) meets a bug.
                let bug = b"\"timestamp\":1714521620000,";
                let result = each_line_parallel(
                    records_input(30_000),
                    1 << 20,
                    threads,
                    &mut stats,
                    &mut dead,
                    &|line: &[u8], out: &mut Vec<u8>| {
                        assert!(!line.windows(bug.len()).any(|w| w == bug), "a bug");
                        out.extend_from_slice(line);
                        Ok(())
                    },
                    |block| {
                        wrote += block.len();
                        Ok(())
                    },
                );
                (result.map_err(|e| format!("{e:#}")), wrote)
            });
            let message = result.unwrap_err();
            assert!(
                message.contains("a worker thread failed on input in: it panicked: a bug"),
                "{message}"
            );
            // The batches before the one that failed may be written; not it.
            assert!(wrote < 20_000 * 140, "{wrote}");
        }
    }

    #[test]
    fn a_stage_that_panics_on_the_main_thread_ends_the_run_with_the_panic() {
        let specs = waflog_core::detect::DetectorSpec::defaults();
        let engine =
            waflog_core::detect::Engine::new(&specs, waflog_core::features::FeatureMap::default())
                .unwrap();
        let extractor = engine.extractor();
        let panicked = within_a_minute(move || {
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                let mut dead = crate::sink::file::create(None).unwrap();
                let mut stats = TransformStats::default();
                let mut seen = 0;
                // More batches than are ever in memory at once: the reader waits
                // for the batches this thread hands back.
                let _ = each_record_prepared(
                    records_input(100_000),
                    1 << 20,
                    2,
                    &mut stats,
                    &mut dead,
                    &extractor,
                    |_, _, _| {
                        seen += 1;
                        assert!(seen < 20_000, "a bug in the stage");
                        Ok(Ok(()))
                    },
                );
            }))
            .is_err()
        });
        assert!(panicked);
    }

    #[test]
    fn a_read_error_keeps_the_lines_before_it_on_every_thread_count() {
        let mut data = Vec::new();
        for i in 0..40_000u64 {
            if i % 5_000 == 7 {
                data.extend_from_slice(b"{\"cut\":\n");
            }
            data.extend_from_slice(record_line(i).as_bytes());
        }
        let one = run(&data, 1);
        assert_eq!(one.2.records_out, 40_000, "{:?}", one.2);
        assert_eq!(one.2.dead_lettered, 8);
        assert!(one.3.contains("the disk went away"), "{}", one.3);
        for threads in [2, 3] {
            let many = run(&data, threads);
            assert!(many.0 == one.0, "{threads} threads: the output differs");
            assert_eq!(many.1, one.1, "{threads} threads");
            assert_eq!(many.2, one.2, "{threads} threads");
            assert_eq!(many.3, one.3, "{threads} threads");
        }
    }
}
