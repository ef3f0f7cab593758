//! Amazon Kinesis Data Streams.
//!
//! - Sink: `PutRecords` batches within the service limits (500 records and 5 MiB
//!   per call, 1 MiB per record including its partition key), the partition key
//!   taken from a field of the record (default `httpRequest.clientIp`); records a
//!   call reports as failed (`ProvisionedThroughputExceededException`, internal
//!   failures) are resent with exponential backoff and jitter until they are
//!   accepted, or the run stops with an error that says how many were not sent.
//! - Source: reads every shard of a stream on a thread of its own, from
//!   `TRIM_HORIZON`, `LATEST`, a timestamp or a checkpoint (the last processed
//!   sequence number per shard), drains parent shards before their children after a
//!   reshard, and handles throttling and expired iterators.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use super::{Aws, Backoff, CallError, Class, LineBuffer, Trouble, retry};
use crate::interrupt::Interrupted;

/// Most records in one `PutRecords` call.
pub const MAX_BATCH_RECORDS: usize = 500;
/// Most bytes (data and partition keys) in one `PutRecords` call.
pub const MAX_BATCH_BYTES: usize = 5 << 20;
/// Most bytes of one record (data and partition key).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Counters of a Kinesis sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Records accepted by the stream.
    pub records: u64,
    /// `PutRecords` calls.
    pub calls: u64,
    /// Records resent after the stream reported them as failed.
    pub retried: u64,
    /// Records too large for Kinesis (over 1 MiB), not sent (reported on stderr).
    pub too_large: u64,
}

/// Writes NDJSON lines as Kinesis records, one line per record.
pub struct KinesisSink {
    aws: Arc<Aws>,
    client: aws_sdk_kinesis::Client,
    stream: String,
    key_path: Vec<String>,
    batch: Vec<(Vec<u8>, String)>,
    batch_bytes: usize,
    lines: LineBuffer,
    stats: SinkStats,
    seed: u64,
    /// Records given to the sink (lines), sent or not.
    handed: u64,
    /// Records, in the order given, of which every one up to here was accepted
    /// (or reported as over 1 MiB): a rerun resumes after them.
    committed: u64,
    /// Records over 1 MiB dropped since the last accepted batch.
    skipped_in_batch: u64,
    /// It gave up: nothing more is sent.
    stopped: bool,
    trouble: Trouble,
}

impl std::fmt::Debug for KinesisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisSink")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// The partition key of a record: the string (or number) at `path`, or a hash of
/// the line when it has none (so records still spread over the shards).
fn partition_key(line: &[u8], path: &[String]) -> String {
    let found = serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|v| {
            let mut cur = &v;
            for p in path {
                cur = cur.get(p)?;
            }
            match cur {
                serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        });
    match found {
        Some(mut k) => {
            if k.len() > 256 {
                let mut end = 256;
                while !k.is_char_boundary(end) {
                    end -= 1;
                }
                k.truncate(end);
            }
            k
        }
        None => {
            let mut crc = flate2::Crc::new();
            crc.update(line);
            format!("{:08x}", crc.sum())
        }
    }
}

impl KinesisSink {
    /// A sink into `stream`, with partition keys from the dotted field `key_field`.
    pub fn new(aws: Arc<Aws>, stream: &str, key_field: &str) -> KinesisSink {
        let trouble = aws.trouble(&format!("kinesis://{stream}"));
        KinesisSink {
            client: aws.kinesis(),
            aws,
            stream: stream.to_string(),
            key_path: key_field.split('.').map(str::to_string).collect(),
            batch: Vec::new(),
            batch_bytes: 0,
            lines: LineBuffer::default(),
            stats: SinkStats::default(),
            seed: 0x9e37_79b9_7f4a_7c15,
            handed: 0,
            committed: 0,
            skipped_in_batch: 0,
            stopped: false,
            trouble,
        }
    }

    /// Adds complete lines (a trailing partial line waits for the next block).
    pub fn write_block(&mut self, block: &[u8]) -> anyhow::Result<()> {
        let mut lines = std::mem::take(&mut self.lines);
        let fed = lines.feed(block, |line| self.add(line));
        self.lines = lines;
        fed?;
        Ok(())
    }

    fn add(&mut self, line: &[u8]) -> anyhow::Result<()> {
        self.handed += 1;
        let key = partition_key(line, &self.key_path);
        let size = line.len() + key.len();
        if size > MAX_RECORD_BYTES {
            self.stats.too_large += 1;
            self.skipped_in_batch += 1;
            tracing::error!(
                "a record of {size} bytes is over Kinesis's 1 MiB limit and was not sent to kinesis://{} (it starts {:?})",
                self.stream,
                String::from_utf8_lossy(&line[..line.len().min(120)])
            );
            return Ok(());
        }
        if self.batch.len() == MAX_BATCH_RECORDS || self.batch_bytes + size > MAX_BATCH_BYTES {
            self.send()?;
        }
        self.batch.push((line.to_vec(), key));
        self.batch_bytes += size;
        Ok(())
    }

    /// Sends the current batch, resending failed records until all are accepted,
    /// a permanent error, Ctrl-C, or --operation-timeout of failures in a row.
    fn send(&mut self) -> anyhow::Result<()> {
        if self.stopped {
            anyhow::bail!("kinesis://{} stopped on an earlier error", self.stream);
        }
        if self.batch.is_empty() {
            self.committed += std::mem::take(&mut self.skipped_in_batch);
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut backoff = Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(5),
            self.seed,
        );
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        let mut first_failure: Option<Instant> = None;
        loop {
            let entries = pending
                .iter()
                .map(|&i| {
                    PutRecordsRequestEntry::builder()
                        .data(Blob::new(batch[i].0.clone()))
                        .partition_key(&batch[i].1)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .context("cannot build a PutRecords entry")?;
            self.stats.calls += 1;
            let outcome = self.aws.call(
                self.client
                    .put_records()
                    .stream_name(&self.stream)
                    .set_records(Some(entries))
                    .send(),
            );
            let Ok(outcome) = outcome else {
                return Err(self
                    .gave_up(pending.len(), "interrupted")
                    .context(Interrupted));
            };
            let failure = match outcome {
                Ok(out) => {
                    let failed: Vec<usize> = out
                        .records()
                        .iter()
                        .zip(&pending)
                        .filter(|(r, _)| r.error_code().is_some())
                        .map(|(_, &i)| i)
                        .collect();
                    let reason = out
                        .records()
                        .iter()
                        .find_map(|r| r.error_code().map(str::to_string));
                    self.stats.records += (pending.len() - failed.len()) as u64;
                    if failed.is_empty() {
                        self.trouble.succeeded();
                        self.committed +=
                            batch.len() as u64 + std::mem::take(&mut self.skipped_in_batch);
                        return Ok(());
                    }
                    self.stats.retried += failed.len() as u64;
                    let code = reason.unwrap_or_default();
                    let e = CallError {
                        class: super::classify(Some(&code), None),
                        text: format!(
                            "{} of {} records rejected ({code})",
                            failed.len(),
                            pending.len()
                        ),
                        code: Some(code),
                    };
                    pending = failed;
                    e
                }
                Err(e) => CallError::from_sdk(&e),
            };
            if failure.class == Class::Permanent {
                return Err(self.gave_up(
                    pending.len(),
                    &format!("{}; {}", failure.text, failure.hint()),
                ));
            }
            let since = *first_failure.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.aws.timeouts.operation {
                self.trouble.end("gave up");
                return Err(self.gave_up(
                    pending.len(),
                    &format!(
                        "still failing after {} attempts over {:.1?} (--operation-timeout): {}",
                        backoff.attempts() + 1,
                        since.elapsed(),
                        failure.text
                    ),
                ));
            }
            let delay = backoff.next_delay();
            self.trouble.failed(&failure, delay);
            if self.aws.sleep(delay).is_err() {
                return Err(self
                    .gave_up(pending.len(), "interrupted")
                    .context(Interrupted));
            }
        }
    }

    /// The error of a sink that stops: exactly how many records it was given,
    /// how many the stream accepted and how many it did not.
    fn gave_up(&mut self, failing: usize, why: &str) -> anyhow::Error {
        let s = self.stats;
        let not_written = self.handed - s.records;
        self.stopped = true;
        anyhow::anyhow!(
            "kinesis://{} stopped: {why}. Of the {} records given to it, {} were written and {not_written} were not ({failing} in the failing PutRecords call{}{})",
            self.stream,
            self.handed,
            s.records,
            if s.too_large > 0 {
                format!(", {} over 1 MiB", s.too_large)
            } else {
                String::new()
            },
            {
                let buffered = not_written
                    .saturating_sub(failing as u64)
                    .saturating_sub(s.too_large);
                if buffered > 0 {
                    format!(", {buffered} not sent yet")
                } else {
                    String::new()
                }
            }
        )
    }

    /// How many of the records given so far, counted from the first, are in the
    /// stream (every one of them accepted): where a rerun resumes.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Sends the pending batch (a partial line waits).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.send()
    }

    /// Sends what is buffered.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|line| self.add(line))?;
        self.send()?;
        let s = self.stats;
        tracing::info!(
            "kinesis://{}: {} records in {} PutRecords calls, {} resent after throttling{}",
            self.stream,
            s.records,
            s.calls,
            s.retried,
            if s.too_large > 0 {
                format!(", {} over 1 MiB not sent", s.too_large)
            } else {
                String::new()
            }
        );
        if s.too_large > 0 {
            anyhow::bail!(
                "{} records over Kinesis's 1 MiB record limit were not sent to kinesis://{}",
                s.too_large,
                self.stream
            );
        }
        Ok(())
    }
}

/// Where reading a shard without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record kept.
    TrimHorizon,
    /// Only records written from now on.
    Latest,
    /// Records from this time (epoch ms).
    AtTimestamp(i64),
}

impl StartPosition {
    /// `trim-horizon`, `latest` or `at:<RFC 3339 time>`.
    pub fn parse(text: &str) -> anyhow::Result<StartPosition> {
        match text {
            "trim-horizon" | "TRIM_HORIZON" => Ok(StartPosition::TrimHorizon),
            "latest" | "LATEST" => Ok(StartPosition::Latest),
            t => {
                let at = t.strip_prefix("at:").with_context(|| {
                    format!("`{t}`: expected trim-horizon, latest or at:<RFC 3339 time>")
                })?;
                let ms = chrono::DateTime::parse_from_rfc3339(at)
                    .with_context(|| format!("`{at}` is not an RFC 3339 time"))?
                    .timestamp_millis();
                Ok(StartPosition::AtTimestamp(ms))
            }
        }
    }
}

/// What the reader thread hands over.
#[derive(Debug)]
pub enum Event {
    /// One record: its shard, sequence number and data.
    Record {
        /// Shard id.
        shard: String,
        /// Sequence number.
        sequence: String,
        /// Data.
        data: Vec<u8>,
    },
    /// Every shard has been read to its end for now: no record is held back, so
    /// event time may be taken to follow the wall clock.
    CaughtUp,
    /// The reader gave up (the error says why).
    Failed(anyhow::Error),
}

#[derive(Debug, Default)]
struct Shard {
    parents: Vec<String>,
    iterator: Option<String>,
    finished: bool,
    /// The last read returned nothing new: this shard does not hold back the others
    /// in the merge.
    caught_up: bool,
    /// Records read but not yet handed over: (event time, sequence number, data).
    queue: std::collections::VecDeque<(i64, String, Vec<u8>)>,
    /// The sequence number of the last record read (queued or handed over): a
    /// renewed iterator continues after it.
    last_read: Option<String>,
    /// Its parent is (or was, when listed) in the stream.
    child: bool,
    next_poll: Option<Instant>,
    backoff_attempts: u32,
    /// When its reads started failing (retryable errors in a row).
    failing_since: Option<Instant>,
}

/// Reads every shard of a stream and sends its records, in order per shard.
#[derive(Debug)]
pub struct Reader {
    aws: Arc<Aws>,
    stream: String,
    start: StartPosition,
    checkpoints: BTreeMap<String, String>,
    /// Wait between polls of a shard that returned nothing (AWS allows 5 calls per
    /// second per shard).
    pub idle_poll: Duration,
    /// `Some((k, n))`: read only the shards whose hash key range starts in the
    /// k-th of n equal parts of the key space (consumer k of n).
    pub consumer: Option<(u32, u32)>,
    trouble: Trouble,
}

/// Which of `n` equal parts of the 128-bit hash key space `start` falls in (from
/// its top 64 bits: exact for powers of two, within 2^-64 of the key space
/// otherwise).
pub fn key_part(start: u128, n: u32) -> u32 {
    let n = u128::from(n.max(1));
    let top = start >> 64;
    u32::try_from((top * n) >> 64).unwrap_or(u32::MAX)
}

impl Reader {
    /// A reader of `stream` resuming after `checkpoints` (shard -> sequence number).
    pub fn new(
        aws: Arc<Aws>,
        stream: &str,
        start: StartPosition,
        checkpoints: BTreeMap<String, String>,
    ) -> Reader {
        let trouble = aws.trouble(&format!("kinesis://{stream}"));
        Reader {
            aws,
            stream: stream.to_string(),
            start,
            checkpoints,
            idle_poll: Duration::from_millis(250),
            consumer: None,
            trouble,
        }
    }

    /// Runs on the current thread until `stop` is set or `tx` is closed; a fatal
    /// error is sent as [`Event::Failed`].
    pub fn run(mut self, tx: &SyncSender<Event>, stop: &AtomicBool) {
        if let Err(e) = self.poll_loop(tx, stop) {
            let _ = tx.send(Event::Failed(e));
        }
    }

    /// Adds the stream's shards not yet known to `shards`, retrying transient
    /// failures (a restarting endpoint, throttling) with backoff.
    fn list_shards(
        &self,
        client: &aws_sdk_kinesis::Client,
        shards: &mut BTreeMap<String, Shard>,
        stop: &AtomicBool,
    ) -> anyhow::Result<()> {
        let what = format!("cannot list the shards of kinesis://{}", self.stream);
        let mut token: Option<String> = None;
        loop {
            let out = self.retrying(&what, stop, || {
                let req = match &token {
                    Some(t) => client.list_shards().next_token(t),
                    None => client.list_shards().stream_name(&self.stream),
                };
                Ok(self
                    .aws
                    .call(req.send())?
                    .map_err(|e| CallError::from_sdk(&e)))
            })?;
            let listed: std::collections::BTreeSet<&str> =
                out.shards().iter().map(|s| s.shard_id()).collect();
            for s in out.shards() {
                if let Some((k, n)) = self.consumer {
                    let start: u128 = s
                        .hash_key_range()
                        .and_then(|r| r.starting_hash_key().parse().ok())
                        .unwrap_or(0);
                    if key_part(start, n) != k {
                        continue;
                    }
                }
                let id = s.shard_id().to_string();
                let parents: Vec<String> = s
                    .parent_shard_id()
                    .into_iter()
                    .chain(s.adjacent_parent_shard_id())
                    .map(str::to_string)
                    .collect();
                // A child of a shard still in the stream (read here or by another
                // consumer) starts at its trim horizon: nothing is skipped.
                let child = parents.iter().any(|p| listed.contains(p.as_str()));
                shards.entry(id).or_insert_with(|| Shard {
                    parents,
                    child,
                    ..Shard::default()
                });
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(());
            }
        }
    }

    /// A shard iterator: after `after` (the last record read, when renewing) or the
    /// checkpoint, else from the start position; a
    /// child of a shard this reader has read starts at its trim horizon, so nothing
    /// is skipped across a reshard.
    fn iterator(
        &self,
        client: &aws_sdk_kinesis::Client,
        id: &str,
        after: Option<&String>,
        child: bool,
        stop: &AtomicBool,
    ) -> anyhow::Result<Option<String>> {
        let what = format!("cannot get an iterator for kinesis://{}/{id}", self.stream);
        let out = self.retrying(&what, stop, || {
            let mut req = client
                .get_shard_iterator()
                .stream_name(&self.stream)
                .shard_id(id);
            req = match (after.or_else(|| self.checkpoints.get(id)), self.start) {
                (Some(seq), _) => req
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(seq),
                (None, _) if child => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
                (None, StartPosition::TrimHorizon) => {
                    req.shard_iterator_type(ShardIteratorType::TrimHorizon)
                }
                (None, StartPosition::Latest) => req.shard_iterator_type(ShardIteratorType::Latest),
                (None, StartPosition::AtTimestamp(ms)) => req
                    .shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(DateTime::from_millis(ms)),
            };
            Ok(self
                .aws
                .call(req.send())?
                .map_err(|e| CallError::from_sdk(&e)))
        })?;
        Ok(out.shard_iterator().map(str::to_string))
    }

    /// Runs `call` until it succeeds, a permanent error (bad credentials, no such
    /// stream, access denied, a bad argument), Ctrl-C, `stop`, or failures for
    /// --operation-timeout, with backoff.
    fn retrying<T>(
        &self,
        what: &str,
        stop: &AtomicBool,
        mut call: impl FnMut() -> Result<Result<T, CallError>, Interrupted>,
    ) -> anyhow::Result<T> {
        let mut trouble = self.trouble.clone();
        retry(&self.aws, &mut trouble, 17, || {
            if stop.load(Ordering::Relaxed) {
                return Err(Interrupted);
            }
            call()
        })
        .map_err(|g| g.into_error(what))
    }

    fn poll_loop(&mut self, tx: &SyncSender<Event>, stop: &AtomicBool) -> anyhow::Result<()> {
        let client = self.aws.kinesis();
        let mut shards = BTreeMap::new();
        self.list_shards(&client, &mut shards, stop)?;
        let mut listed = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if listed.elapsed() >= Duration::from_secs(10) {
                self.list_shards(&client, &mut shards, stop)?;
                listed = Instant::now();
            }
            let ids: Vec<String> = shards.keys().cloned().collect();
            let mut busy = false;
            for id in ids {
                let ready = {
                    let s = &shards[&id];
                    !s.finished
                        && s.next_poll.is_none_or(|t| Instant::now() >= t)
                        && s.parents
                            .iter()
                            .all(|p| shards.get(p).is_none_or(|ps| ps.finished))
                };
                if !ready {
                    continue;
                }
                let child = shards[&id].child;
                let Some(shard) = shards.get_mut(&id) else {
                    continue;
                };
                if shard.iterator.is_none() {
                    let after = shard.last_read.as_ref();
                    shard.iterator = self.iterator(&client, &id, after, child, stop)?;
                    if shard.iterator.is_none() {
                        shard.finished = true;
                        continue;
                    }
                }
                let Some(it) = shard.iterator.clone() else {
                    continue;
                };
                let got = self
                    .aws
                    .call(client.get_records().shard_iterator(it).limit(10_000).send())
                    .map_err(|i| {
                        anyhow::Error::new(i).context(format!("kinesis://{}", self.stream))
                    })?;
                match got {
                    Ok(out) => {
                        shard.backoff_attempts = 0;
                        shard.failing_since = None;
                        self.trouble.succeeded();
                        if let Some(r) = out.records().last() {
                            shard.last_read = Some(r.sequence_number().to_string());
                        }
                        for r in out.records() {
                            let data = r.data().as_ref().to_vec();
                            shard.queue.push_back((
                                event_time(&data),
                                r.sequence_number().to_string(),
                                data,
                            ));
                        }
                        shard.caught_up = out.records().is_empty();
                        shard.iterator = out.next_shard_iterator().map(str::to_string);
                        if shard.iterator.is_none() {
                            shard.finished = true;
                            tracing::info!("kinesis://{}/{id}: closed shard drained", self.stream);
                            self.list_shards(&client, &mut shards, stop)?;
                            listed = Instant::now();
                            busy = true;
                            break;
                        }
                        if out.records().is_empty() {
                            shard.next_poll = Some(Instant::now() + self.idle_poll);
                        } else {
                            busy = true;
                            shard.next_poll = None;
                        }
                    }
                    Err(e) => {
                        let e = CallError::from_sdk(&e);
                        if e.code.as_deref() == Some("ExpiredIteratorException") {
                            tracing::debug!(
                                "kinesis://{}/{id}: iterator expired, renewing",
                                self.stream
                            );
                            shard.iterator = None;
                        } else if e.class == Class::Permanent {
                            anyhow::bail!(
                                "cannot read kinesis://{}/{id}: {}; {}",
                                self.stream,
                                e.text,
                                e.hint()
                            );
                        } else {
                            // Throttling (ProvisionedThroughputExceeded), 5xx, timeouts.
                            let since = *shard.failing_since.get_or_insert_with(Instant::now);
                            if since.elapsed() >= self.aws.timeouts.operation {
                                self.trouble.end("gave up");
                                anyhow::bail!(
                                    "cannot read kinesis://{}/{id}: still failing after {} attempts over {:.1?} (--operation-timeout): {}",
                                    self.stream,
                                    shard.backoff_attempts + 1,
                                    since.elapsed(),
                                    e.text
                                );
                            }
                            let mut b = Backoff::new(
                                Duration::from_millis(200),
                                Duration::from_secs(10),
                                0x2545_f491_4f6c_dd1d ^ u64::from(shard.backoff_attempts),
                            );
                            for _ in 0..shard.backoff_attempts {
                                b.next_delay();
                            }
                            shard.backoff_attempts += 1;
                            let delay = b.next_delay();
                            self.trouble.failed(&e, delay);
                            shard.next_poll = Some(Instant::now() + delay);
                        }
                    }
                }
            }
            if !drain(&mut self.checkpoints, &mut shards, tx) {
                return Ok(());
            }
            let at_tip = shards.values().all(|s| {
                s.queue.is_empty()
                    && (s.finished
                        || s.caught_up
                        || (s.iterator.is_none() && !parents_done(&shards, s)))
            });
            if at_tip && !busy && tx.send(Event::CaughtUp).is_err() {
                return Ok(());
            }
            if !busy {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

/// Hands over queued records in event-time order across shards, as long as no
/// shard that may still hold older records has run dry: one still being read, or
/// one not read yet whose parents are done (the continuation of their hash range
/// after a split or merge, which starts where they stopped). A child whose parents
/// are still being read does not hold the others back: its parents do. So after a
/// resharding the children of one parent are not left behind the other parents'
/// children, whose records would otherwise be handed over first and make theirs
/// late. Returns false when the receiver is gone.
fn drain(
    checkpoints: &mut BTreeMap<String, String>,
    shards: &mut BTreeMap<String, Shard>,
    tx: &SyncSender<Event>,
) -> bool {
    loop {
        let blocked = shards.values().any(|s| {
            s.queue.is_empty()
                && !s.finished
                && !s.caught_up
                && (s.iterator.is_some() || parents_done(shards, s))
        });
        if blocked {
            return true;
        }
        let next = shards
            .iter()
            .filter_map(|(id, s)| s.queue.front().map(|r| (r.0, id.clone())))
            .min();
        let Some((_, id)) = next else { return true };
        let Some((_, sequence, data)) = shards.get_mut(&id).and_then(|s| s.queue.pop_front())
        else {
            return true;
        };
        checkpoints.insert(id.clone(), sequence.clone());
        if tx
            .send(Event::Record {
                shard: id,
                sequence,
                data,
            })
            .is_err()
        {
            return false;
        }
    }
}

/// True when every parent of `s` is read to its end (or not read here).
fn parents_done(shards: &BTreeMap<String, Shard>, s: &Shard) -> bool {
    s.parents
        .iter()
        .all(|p| shards.get(p).is_none_or(|ps| ps.finished))
}

/// The event time of a record (its first line's `timestamp`), for merging shards;
/// records without one sort first.
fn event_time(data: &[u8]) -> i64 {
    let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
    crate::source::merge::line_time(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(parents: &[&str], finished: bool, iterator: bool, times: &[i64]) -> Shard {
        Shard {
            parents: parents.iter().map(|p| p.to_string()).collect(),
            iterator: iterator.then(|| "it".to_string()),
            finished,
            queue: times
                .iter()
                .map(|&t| (t, format!("seq-{t}"), t.to_string().into_bytes()))
                .collect(),
            ..Shard::default()
        }
    }

    fn sent(rx: &std::sync::mpsc::Receiver<Event>) -> Vec<String> {
        rx.try_iter()
            .filter_map(|e| match e {
                Event::Record { data, .. } => Some(String::from_utf8(data).unwrap()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn after_a_split_no_parent_range_is_left_behind_the_others() {
        let (tx, rx) = std::sync::mpsc::sync_channel(100);
        let mut checkpoints = BTreeMap::new();
        // Both parents read to their ends; b's child already has later records,
        // a's child has not been read yet: nothing may go before it is.
        let mut shards = BTreeMap::from([
            ("a".to_string(), shard(&[], true, false, &[])),
            ("a1".to_string(), shard(&["a"], false, false, &[])),
            ("b".to_string(), shard(&[], true, false, &[])),
            ("b1".to_string(), shard(&["b"], false, true, &[2000, 3000])),
        ]);
        assert!(drain(&mut checkpoints, &mut shards, &tx));
        assert!(sent(&rx).is_empty());
        // a1 is read: its older record goes first, then b1's up to where a1 ran dry.
        let a1 = shards.get_mut("a1").unwrap();
        a1.iterator = Some("it".into());
        a1.queue.push_back((1000, "s".into(), b"1000".to_vec()));
        a1.queue.push_back((2500, "s".into(), b"2500".to_vec()));
        assert!(drain(&mut checkpoints, &mut shards, &tx));
        assert_eq!(sent(&rx), ["1000", "2000", "2500"]);
        // A child whose parent is still being read does not hold the others back.
        let mut shards = BTreeMap::from([
            ("c".to_string(), shard(&[], false, true, &[10, 20])),
            ("c1".to_string(), shard(&["c"], false, false, &[])),
            ("d".to_string(), shard(&[], false, true, &[15])),
        ]);
        shards.get_mut("c").unwrap().caught_up = true;
        shards.get_mut("d").unwrap().caught_up = true;
        assert!(drain(&mut checkpoints, &mut shards, &tx));
        assert_eq!(sent(&rx), ["10", "15", "20"]);
    }

    #[test]
    fn partition_keys() {
        let path: Vec<String> = vec!["httpRequest".into(), "clientIp".into()];
        assert_eq!(
            partition_key(br#"{"httpRequest":{"clientIp":"1.2.3.4"}}"#, &path),
            "1.2.3.4"
        );
        let k = partition_key(b"{\"x\":1}", &path);
        assert_eq!(k.len(), 8);
        assert_eq!(k, partition_key(b"{\"x\":1}", &path));
        assert_eq!(partition_key(br#"{"a":17}"#, &["a".to_string()]), "17");
        let long = format!(r#"{{"a":"{}"}}"#, "é".repeat(300));
        assert!(partition_key(long.as_bytes(), &["a".to_string()]).len() <= 256);
    }

    #[test]
    fn consumers_split_the_hash_key_space() {
        assert_eq!(key_part(0, 2), 0);
        assert_eq!(key_part(u128::MAX / 2, 2), 0);
        assert_eq!(key_part(u128::MAX / 2 + 1, 2), 1);
        assert_eq!(key_part(u128::MAX, 2), 1);
        assert_eq!(key_part(u128::MAX, 1), 0);
        assert_eq!(key_part(u128::MAX / 4 * 3 + 7, 4), 3);
    }

    #[test]
    fn start_positions() {
        assert_eq!(
            StartPosition::parse("latest").unwrap(),
            StartPosition::Latest
        );
        assert_eq!(
            StartPosition::parse("trim-horizon").unwrap(),
            StartPosition::TrimHorizon
        );
        assert_eq!(
            StartPosition::parse("at:2024-05-01T00:00:00Z").unwrap(),
            StartPosition::AtTimestamp(1_714_521_600_000)
        );
        assert!(StartPosition::parse("yesterday").is_err());
    }
}
