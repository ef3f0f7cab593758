//! Amazon Kinesis Data Streams source.
//!
//! Reads every shard of a stream on a thread of its own ([`Reader`]), from
//! `TRIM_HORIZON`, `LATEST`, a timestamp or a checkpoint (the last processed
//! sequence number per shard), drains parent shards before their children after a
//! reshard, and handles throttling and expired iterators; [`lines`] cuts the
//! records into the numbered lines a followed input hands over
//! (`crate::source::follow`), with a checkpoint after each record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_kinesis::operation::get_records::GetRecordsOutput;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use waflog_core::parse::cloudwatch::{self, Unpacked};

use super::follow::Msg;
use crate::aws::{Aws, CallError, Class, Trouble, retry};
use crate::interrupt::Interrupted;
use crate::net::Backoff;

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

    /// Reads the shards until `stop` or the receiver is gone: polls those ready,
    /// hands over what they read, says when every shard is at its tip.
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
            let busy = self.poll_round(&client, &mut shards, &mut listed, stop)?;
            if !drain(&mut self.checkpoints, &mut shards, tx) {
                return Ok(());
            }
            if at_tip(&shards) && !busy && tx.send(Event::CaughtUp).is_err() {
                return Ok(());
            }
            if !busy {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Polls once every shard that is due (its parents read to their end); a
    /// shard that closes ends the round with a new listing (`listed`: when).
    /// True when a shard returned records or closed.
    fn poll_round(
        &self,
        client: &aws_sdk_kinesis::Client,
        shards: &mut BTreeMap<String, Shard>,
        listed: &mut Instant,
        stop: &AtomicBool,
    ) -> anyhow::Result<bool> {
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
            let Some(shard) = shards.get_mut(&id) else {
                continue;
            };
            match self.poll_shard(client, &id, shard, stop)? {
                Polled::Nothing => {}
                Polled::Records => busy = true,
                Polled::Closed => {
                    self.list_shards(client, shards, stop)?;
                    *listed = Instant::now();
                    return Ok(true);
                }
            }
        }
        Ok(busy)
    }

    /// One `GetRecords` call on the shard `id` (renewing its iterator first when
    /// it has none): its records queued, or its failure handled.
    fn poll_shard(
        &self,
        client: &aws_sdk_kinesis::Client,
        id: &str,
        shard: &mut Shard,
        stop: &AtomicBool,
    ) -> anyhow::Result<Polled> {
        if shard.iterator.is_none() {
            let after = shard.last_read.as_ref();
            shard.iterator = self.iterator(client, id, after, shard.child, stop)?;
            if shard.iterator.is_none() {
                shard.finished = true;
                return Ok(Polled::Nothing);
            }
        }
        let Some(it) = shard.iterator.clone() else {
            return Ok(Polled::Nothing);
        };
        let got = self
            .aws
            .call(client.get_records().shard_iterator(it).limit(10_000).send())
            .map_err(|i| anyhow::Error::new(i).context(format!("kinesis://{}", self.stream)))?;
        match got {
            Ok(out) => Ok(self.queue_records(id, shard, &out)),
            Err(e) => {
                self.read_failed(id, shard, &CallError::from_sdk(&e))?;
                Ok(Polled::Nothing)
            }
        }
    }

    /// Queues the records of a `GetRecords` answer on `shard` and moves its
    /// iterator on.
    fn queue_records(&self, id: &str, shard: &mut Shard, out: &GetRecordsOutput) -> Polled {
        shard.backoff_attempts = 0;
        shard.failing_since = None;
        self.trouble.succeeded();
        if let Some(r) = out.records().last() {
            shard.last_read = Some(r.sequence_number().to_string());
        }
        for r in out.records() {
            let data = r.data().as_ref().to_vec();
            shard
                .queue
                .push_back((event_time(&data), r.sequence_number().to_string(), data));
        }
        shard.caught_up = out.records().is_empty();
        shard.iterator = out.next_shard_iterator().map(str::to_string);
        if shard.iterator.is_none() {
            shard.finished = true;
            tracing::info!("kinesis://{}/{id}: closed shard drained", self.stream);
            return Polled::Closed;
        }
        if out.records().is_empty() {
            shard.next_poll = Some(Instant::now() + self.idle_poll);
            Polled::Nothing
        } else {
            shard.next_poll = None;
            Polled::Records
        }
    }

    /// A failed `GetRecords` call on `shard`: an expired iterator is renewed, a
    /// permanent error stops the reader, others (throttling, 5xx, timeouts) are
    /// retried with backoff until --operation-timeout.
    fn read_failed(&self, id: &str, shard: &mut Shard, e: &CallError) -> anyhow::Result<()> {
        if e.code.as_deref() == Some("ExpiredIteratorException") {
            tracing::debug!("kinesis://{}/{id}: iterator expired, renewing", self.stream);
            shard.iterator = None;
            return Ok(());
        }
        if e.class == Class::Permanent {
            anyhow::bail!(
                "cannot read kinesis://{}/{id}: {}; {}",
                self.stream,
                e.text,
                e.hint()
            );
        }
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
        self.trouble.failed(e, delay);
        shard.next_poll = Some(Instant::now() + delay);
        Ok(())
    }
}

/// What one poll of a shard gave.
enum Polled {
    /// No record (or none yet: an iterator renewed, a retry waiting).
    Nothing,
    /// Records, queued.
    Records,
    /// The shard is closed and read to its end (a reshard): the shards are
    /// listed again.
    Closed,
}

/// True when no shard holds records back: every queue is empty and every shard
/// is read to its end, caught up, or waits for its parents.
fn at_tip(shards: &BTreeMap<String, Shard>) -> bool {
    shards.values().all(|s| {
        s.queue.is_empty()
            && (s.finished || s.caught_up || (s.iterator.is_none() && !parents_done(shards, s)))
    })
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
    super::file::line_time(first)
}

/// The most a compressed Kinesis record may decompress to.
const UNPACKED_LIMIT: usize = 64 << 20;

/// Reads every shard of the stream `stream` on threads of their own (a
/// [`Reader`] from `start`, or after the checkpoints in `checkpoints`; only the
/// shards of `consumer` k of n when given) until `stop`: each record's lines,
/// then a checkpoint after it.
pub fn lines(
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
    let mut split = RecordLines {
        stream: stream.to_string(),
        max_line,
        number: 0,
    };
    std::thread::spawn(move || {
        for event in erx {
            let msgs = match event {
                Event::Record {
                    shard,
                    sequence,
                    data,
                } => split.record(&shard, sequence, &data),
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

/// Cuts the records of a stream into numbered lines.
struct RecordLines {
    stream: String,
    max_line: usize,
    /// The number of the last line.
    number: u64,
}

impl RecordLines {
    /// The messages of one record of `shard`: its lines, then a checkpoint after
    /// it. A CloudWatch Logs subscription payload (gzip) gives its log events'
    /// messages; other gzip data is decompressed.
    fn record(&mut self, shard: &str, sequence: String, data: &[u8]) -> Vec<Msg> {
        let mut v: Vec<Msg> = Vec::new();
        match cloudwatch::unpack(data, UNPACKED_LIMIT) {
            None => self.split(data, &mut v),
            Some(Ok(Unpacked::Decompressed(bytes))) => self.split(&bytes, &mut v),
            Some(Ok(Unpacked::Payload(p))) => {
                if p.is_control() {
                    tracing::debug!(
                        "{}/{shard}: a CloudWatch Logs control message, skipped",
                        self.stream
                    );
                } else {
                    for event in p.log_events {
                        self.number += 1;
                        v.push(Msg::Line(self.number, event.message.into_bytes()));
                    }
                }
            }
            Some(Err(e)) => v.push(Msg::Unreadable(
                format!("kinesis://{}/{shard} record {sequence}", self.stream),
                self.number + 1,
                e.to_string(),
            )),
        }
        v.push(Msg::Checkpoint(
            format!("{}/{shard}", self.stream),
            sequence,
        ));
        v
    }

    /// The non-blank lines of `data` into `v` (over `max_line`: too long).
    fn split(&mut self, data: &[u8], v: &mut Vec<Msg>) {
        let max_line = self.max_line;
        v.extend(
            data.split(|&b| b == b'\n')
                .filter(|l| !l.trim_ascii().is_empty())
                .map(|l| {
                    self.number += 1;
                    if l.len() > max_line {
                        Msg::TooLong(self.number, l[..max_line].to_vec(), l.len() as u64)
                    } else {
                        Msg::Line(self.number, l.to_vec())
                    }
                }),
        );
    }
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
