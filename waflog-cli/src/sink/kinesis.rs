//! Amazon Kinesis Data Streams sink.
//!
//! Writes `PutRecords` batches within the service limits (500 records and 5 MiB
//! per call, 1 MiB per record including its partition key), the partition key
//! read from a field of the record (default `httpRequest.clientIp`) by the
//! field scanner, without parsing the record into values.
//!
//! Several calls are under way at once (`--kinesis-in-flight`, default 4) on
//! the I/O runtime while the main thread goes on reading, one per *lane*: the
//! stream's open shards (from `ListShards`) are dealt to the lanes, and each
//! record goes to the lane of the shard Kinesis will store it in (the shard
//! whose hash-key range holds the MD5 of its partition key, as the Kinesis
//! developer guide describes). A lane has at most one call under way, so every
//! shard still receives its records in the order given, and a consumer reading
//! a shard sees event time as the producer wrote it. A stream whose shards
//! cannot be listed gets one lane (with a warning); so does
//! `--kinesis-in-flight 1`.
//!
//! The stream may be resharded while the sink writes. Each `PutRecords` answer
//! names the shard of every record; when one names a shard that was not open
//! when the lanes were set up (a merge's or a split's child), the sink waits for
//! every call under way, lists the shards again, and deals the records not yet
//! sent to the new lanes in the order given. Only the batches under way when
//! the change was seen (at most one per lane) can reach a merged shard out of
//! order.
//!
//! Records a call reports as failed (`ProvisionedThroughputExceededException`,
//! internal failures) are resent with exponential backoff and jitter until they
//! are accepted, or the run stops with an error that says how many were
//! written and how many were not, after every call under way has ended. The
//! resume point ([`KinesisSink::committed`]) is the first record not known to
//! be in the stream; with several lanes, records after it may be there too,
//! and a resumed run writes those again (at least once; with one lane,
//! exactly once).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use md5::{Digest, Md5};
use waflog_core::parse::FieldText;

use crate::aws::{Aws, CallError, Class, Trouble};
use crate::interrupt::Interrupted;
use crate::net::{Backoff, LineBuffer};

/// Most records in one `PutRecords` call.
pub const MAX_BATCH_RECORDS: usize = 500;
/// Most bytes (data and partition keys) in one `PutRecords` call.
pub const MAX_BATCH_BYTES: usize = 5 << 20;
/// Most bytes of one record (data and partition key).
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// `PutRecords` calls in flight at once unless told otherwise.
pub const DEFAULT_IN_FLIGHT: u16 = 4;

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
    put: Put,
    key: FieldText,
    /// One per call that may be under way at once; set up on the first record.
    lanes: Vec<Lane>,
    /// The open shards' hash-key ranges (first, last) and their lanes, by first.
    shards: Vec<(u128, u128, usize)>,
    /// The ids of the shards open when the lanes were set up (empty when they
    /// could not be listed, or with one call in flight: nothing to follow).
    known: Vec<String>,
    /// An answer named a shard not in `known`: the lanes are set up again before
    /// the next record.
    resharded: bool,
    lines: LineBuffer,
    stats: SinkStats,
    seed: u64,
    /// Most calls in flight.
    max_in_flight: usize,
    /// Records given to the sink (lines), sent or not.
    handed: u64,
    /// The first record of the earliest batch that did not get through.
    failed_at: Option<u64>,
    /// It gave up: nothing more is sent.
    stopped: bool,
}

/// The records of some shards: a batch being filled and at most one call
/// under way, so each shard gets its records in the order given.
#[derive(Default)]
struct Lane {
    batch: Vec<PutRecordsRequestEntry>,
    /// The numbers (from 0, in the order given) of `batch`'s records.
    numbers: Vec<u64>,
    /// Bytes of `batch` (data and partition keys).
    bytes: usize,
    flight: Option<Flight>,
}

/// What every `PutRecords` task of a sink needs.
#[derive(Clone)]
struct Put {
    client: aws_sdk_kinesis::Client,
    stream: Arc<str>,
    trouble: Trouble,
    operation_timeout: Duration,
    stop: Arc<AtomicBool>,
}

/// A batch under way on the I/O runtime.
struct Flight {
    task: tokio::task::JoinHandle<Sent>,
    /// Records in it.
    records: u64,
    /// The number of its first record.
    first: u64,
}

/// How a batch ended.
#[derive(Debug, Default)]
struct Sent {
    accepted: u64,
    calls: u64,
    retried: u64,
    /// Why it stopped before all its records were accepted, and how many were not.
    failed: Option<(String, usize)>,
    /// The shards the accepted records went to.
    shards: Vec<String>,
    /// It stopped on Ctrl-C.
    interrupted: bool,
}

impl std::fmt::Debug for KinesisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisSink")
            .field("stream", &self.put.stream)
            .finish_non_exhaustive()
    }
}

/// The partition key of a record: the string (or number) at `key`, or a hash of
/// the line when it has none (so records still spread over the shards).
fn partition_key(line: &[u8], key: &FieldText) -> String {
    // The one field only: the line is validated, not parsed into values.
    match key.read(line) {
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
    /// A sink into `stream`, with partition keys from the dotted field
    /// `key_field` and at most `in_flight` (at least 1) calls under way at once.
    pub fn new(aws: Arc<Aws>, stream: &str, key_field: &str, in_flight: usize) -> KinesisSink {
        let put = Put {
            client: aws.kinesis(),
            stream: Arc::from(stream),
            trouble: aws.trouble(&format!("kinesis://{stream}")),
            operation_timeout: aws.timeouts.operation,
            stop: aws.stop_flag(),
        };
        KinesisSink {
            aws,
            put,
            key: FieldText::new(key_field),
            lanes: Vec::new(),
            shards: Vec::new(),
            known: Vec::new(),
            resharded: false,
            stats: SinkStats::default(),
            lines: LineBuffer::default(),
            seed: 0x9e37_79b9_7f4a_7c15,
            max_in_flight: in_flight.max(1),
            handed: 0,
            failed_at: None,
            stopped: false,
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
        let ordinal = self.handed;
        self.handed += 1;
        let key = partition_key(line, &self.key);
        let size = line.len() + key.len();
        if size > MAX_RECORD_BYTES {
            self.stats.too_large += 1;
            tracing::error!(
                "a record of {size} bytes is over Kinesis's 1 MiB limit and was not sent to kinesis://{} (it starts {:?})",
                self.put.stream,
                String::from_utf8_lossy(&line[..line.len().min(120)])
            );
            return Ok(());
        }
        if self.lanes.is_empty() {
            self.map_shards();
        }
        let entry = PutRecordsRequestEntry::builder()
            .data(Blob::new(line))
            .partition_key(key)
            .build()
            .context("cannot build a PutRecords entry")?;
        self.place(entry, ordinal, size)
    }

    /// Puts record number `ordinal` (`size` bytes with its key) in its lane's
    /// batch, first sending the batch if it is full; when a call's answer showed
    /// the shards changed, first sets the lanes up again.
    fn place(
        &mut self,
        entry: PutRecordsRequestEntry,
        ordinal: u64,
        size: usize,
    ) -> anyhow::Result<()> {
        loop {
            if self.resharded {
                self.follow_reshard()?;
            }
            let l = self.lane_of(entry.partition_key());
            let lane = &mut self.lanes[l];
            let full = lane.batch.len() == MAX_BATCH_RECORDS || lane.bytes + size > MAX_BATCH_BYTES;
            if !full || lane.batch.is_empty() {
                lane.batch.push(entry);
                lane.numbers.push(ordinal);
                lane.bytes += size;
                return Ok(());
            }
            // Sends the batch, unless the shards changed (it is dealt again).
            self.send(l)?;
        }
    }

    /// The stream was resharded: waits for every call under way, sets the lanes
    /// up again from the shards open now, and deals the records not yet sent to
    /// them in the order given.
    fn follow_reshard(&mut self) -> anyhow::Result<()> {
        self.resharded = false;
        for l in 0..self.lanes.len() {
            self.collect(l)?;
        }
        let mut waiting: Vec<(u64, PutRecordsRequestEntry)> = Vec::new();
        for lane in &mut self.lanes {
            waiting.extend(lane.numbers.drain(..).zip(lane.batch.drain(..)));
            lane.bytes = 0;
        }
        waiting.sort_unstable_by_key(|&(n, _)| n);
        let before = self.lanes.len();
        self.map_shards();
        tracing::info!(
            "kinesis://{}: its shards changed; every call under way ended, and {} records not sent yet go to the {} open shards' {} lanes (before: {before})",
            self.put.stream,
            waiting.len(),
            self.known.len(),
            self.lanes.len(),
        );
        for (ordinal, entry) in waiting {
            let size = entry.data().as_ref().len() + entry.partition_key().len();
            self.place(entry, ordinal, size)?;
        }
        Ok(())
    }

    /// Sets up the lanes: one when one call in flight is asked for, else one per
    /// open shard up to `max_in_flight` (shards shared round-robin), from
    /// `ListShards`. A stream whose shards cannot be listed (no
    /// `kinesis:ListShards` permission, say) gets one lane, with a warning.
    fn map_shards(&mut self) {
        self.shards.clear();
        self.known.clear();
        let lanes = if self.max_in_flight == 1 {
            1
        } else {
            match self.list_shards() {
                Ok(mut open) => {
                    open.sort_unstable();
                    let lanes = open.len().clamp(1, self.max_in_flight);
                    self.shards = open
                        .iter()
                        .enumerate()
                        .map(|(i, &(start, end, _))| (start, end, i % lanes))
                        .collect();
                    self.known = open.into_iter().map(|(_, _, id)| id).collect();
                    lanes
                }
                Err(e) => {
                    tracing::warn!(
                        "kinesis://{}: cannot list its shards ({e:#}): one PutRecords call at a time",
                        self.put.stream
                    );
                    1
                }
            }
        };
        self.lanes = (0..lanes).map(|_| Lane::default()).collect();
    }

    /// The hash-key ranges of the stream's open shards, and their ids.
    fn list_shards(&self) -> anyhow::Result<Vec<(u128, u128, String)>> {
        let mut ranges = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = match &token {
                Some(t) => self.put.client.list_shards().next_token(t),
                None => self.put.client.list_shards().stream_name(&*self.put.stream),
            };
            let out = self
                .aws
                .call(req.send())?
                .map_err(|e| anyhow::anyhow!("{}", CallError::from_sdk(&e).text))?;
            for s in out.shards() {
                let open = s
                    .sequence_number_range()
                    .is_none_or(|r| r.ending_sequence_number().is_none());
                let range = s.hash_key_range().and_then(|r| {
                    Some((
                        r.starting_hash_key().parse::<u128>().ok()?,
                        r.ending_hash_key().parse::<u128>().ok()?,
                    ))
                });
                if let (true, Some((start, end))) = (open, range) {
                    ranges.push((start, end, s.shard_id().to_string()));
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(ranges);
            }
        }
    }

    /// The lane of a partition key (see [`lane_of`]).
    fn lane_of(&self, key: &str) -> usize {
        if self.lanes.len() <= 1 {
            return 0;
        }
        lane_of(&self.shards, key)
    }

    /// Starts sending lane `l`'s batch, first waiting for the lane's call under way;
    /// not when that call's answer showed the shards changed.
    fn send(&mut self, l: usize) -> anyhow::Result<()> {
        if self.stopped {
            anyhow::bail!("kinesis://{} stopped on an earlier error", self.put.stream);
        }
        if self.lanes[l].batch.is_empty() {
            return Ok(());
        }
        self.collect(l)?;
        if self.resharded {
            // The batch waits to be dealt to the new lanes.
            return Ok(());
        }
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let lane = &mut self.lanes[l];
        let batch = std::mem::take(&mut lane.batch);
        lane.bytes = 0;
        let records = batch.len() as u64;
        let task = self
            .aws
            .handle()
            .spawn(send_batch(self.put.clone(), batch, self.seed));
        lane.flight = Some(Flight {
            task,
            records,
            first: lane.numbers[0],
        });
        lane.numbers.clear();
        Ok(())
    }

    /// Waits for lane `l`'s call under way, if any, and counts it; when it
    /// failed, waits for every other lane's too and returns the error that
    /// stops the sink.
    fn collect(&mut self, l: usize) -> anyhow::Result<()> {
        let Some(flight) = self.lanes[l].flight.take() else {
            return Ok(());
        };
        let sent = self.wait(flight)?;
        let Some((why, mut failing)) = sent.failed else {
            return Ok(());
        };
        // Every call under way is counted before the sink says what it wrote.
        let mut interrupted = sent.interrupted;
        let mut calls = 1;
        for other in 0..self.lanes.len() {
            let Some(flight) = self.lanes[other].flight.take() else {
                continue;
            };
            let sent = self.wait(flight)?;
            interrupted |= sent.interrupted;
            if let Some((_, n)) = sent.failed {
                failing += n;
                calls += 1;
            }
        }
        let e = self.gave_up(failing, calls, &why);
        Err(if interrupted {
            e.context(Interrupted)
        } else {
            e
        })
    }

    /// The outcome of one batch's call, counted.
    fn wait(&mut self, flight: Flight) -> anyhow::Result<Sent> {
        let outcome = self.aws.call(flight.task);
        let sent = match outcome {
            Ok(Ok(sent)) => sent,
            Ok(Err(e)) => {
                self.stopped = true;
                self.failed(flight.first);
                anyhow::bail!(
                    "kinesis://{}: a PutRecords task failed: {e}",
                    self.put.stream
                );
            }
            Err(Interrupted) => {
                self.failed(flight.first);
                let failing = flight.records as usize
                    + self
                        .lanes
                        .iter()
                        .filter_map(|l| l.flight.as_ref())
                        .map(|f| f.records as usize)
                        .sum::<usize>();
                return Err(self.gave_up(failing, 1, "interrupted").context(Interrupted));
            }
        };
        self.stats.records += sent.accepted;
        self.stats.calls += sent.calls;
        self.stats.retried += sent.retried;
        if !self.known.is_empty() && sent.shards.iter().any(|s| !self.known.contains(s)) {
            self.resharded = true;
        }
        if sent.failed.is_some() {
            self.failed(flight.first);
        }
        Ok(sent)
    }

    /// A batch starting at record `first` did not get (wholly) through.
    fn failed(&mut self, first: u64) {
        self.failed_at = Some(self.failed_at.map_or(first, |f| f.min(first)));
    }

    /// The error of a sink that stops: exactly how many records it was given,
    /// how many the stream accepted and how many it did not.
    fn gave_up(&mut self, failing: usize, calls: usize, why: &str) -> anyhow::Error {
        let s = self.stats;
        let not_written = self.handed - s.records;
        self.stopped = true;
        let buffered = not_written
            .saturating_sub(failing as u64)
            .saturating_sub(s.too_large);
        anyhow::anyhow!(
            "kinesis://{} stopped: {why}. Of the {} records given to it, {} were written and {not_written} were not ({failing} in the failing PutRecords call{}{}{})",
            self.put.stream,
            self.handed,
            s.records,
            if calls > 1 {
                format!("s ({calls} calls)")
            } else {
                String::new()
            },
            if s.too_large > 0 {
                format!(", {} over 1 MiB", s.too_large)
            } else {
                String::new()
            },
            if buffered > 0 {
                format!(", {buffered} not sent yet")
            } else {
                String::new()
            }
        )
    }

    /// How many of the records given so far, counted from the first, are in the
    /// stream (every one of them accepted, or over 1 MiB and reported): where a
    /// rerun resumes. With several lanes, records after this point may be in
    /// the stream too (a resumed run writes them again).
    pub fn committed(&self) -> u64 {
        self.lanes
            .iter()
            .filter_map(|l| {
                l.flight
                    .as_ref()
                    .map(|f| f.first)
                    .or_else(|| l.numbers.first().copied())
            })
            .chain(self.failed_at)
            .fold(self.handed, u64::min)
    }

    /// Sends every lane's batch (a partial line waits) and waits for every call
    /// under way.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        loop {
            for l in 0..self.lanes.len() {
                self.send(l)?;
            }
            if !self.resharded {
                break;
            }
            self.follow_reshard()?;
        }
        for l in 0..self.lanes.len() {
            self.collect(l)?;
        }
        Ok(())
    }

    /// Sends what is buffered.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|line| self.add(line))?;
        self.flush()?;
        let s = self.stats;
        tracing::info!(
            "kinesis://{}: {} records in {} PutRecords calls ({} at once at most), {} resent after throttling{}",
            self.put.stream,
            s.records,
            s.calls,
            self.lanes.len().max(1),
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
                self.put.stream
            );
        }
        Ok(())
    }
}

/// The lane of a partition key: that of the shard whose hash-key range holds
/// the key's MD5 read as a big-endian 128-bit number (as Kinesis maps keys to
/// shards); lane 0 when no range holds it. `shards`: (first, last, lane) sorted
/// by first.
fn lane_of(shards: &[(u128, u128, usize)], key: &str) -> usize {
    let hash = u128::from_be_bytes(Md5::digest(key.as_bytes()).into());
    let i = shards.partition_point(|&(start, _, _)| start <= hash);
    match i.checked_sub(1).map(|i| shards[i]) {
        Some((_, end, lane)) if hash <= end => lane,
        _ => 0,
    }
}

/// Sends one batch, resending the records a call reports as failed until all
/// are accepted, a permanent error, Ctrl-C, or `--operation-timeout` of
/// failures since the first.
async fn send_batch(put: Put, batch: Vec<PutRecordsRequestEntry>, seed: u64) -> Sent {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), seed);
    let mut sent = Sent::default();
    let mut pending: Vec<usize> = (0..batch.len()).collect();
    let mut first_failure: Option<Instant> = None;
    loop {
        let entries: Vec<PutRecordsRequestEntry> =
            pending.iter().map(|&i| batch[i].clone()).collect();
        sent.calls += 1;
        let call = put
            .client
            .put_records()
            .stream_name(&*put.stream)
            .set_records(Some(entries))
            .send();
        let outcome = tokio::select! {
            v = call => v,
            () = crate::aws::stopped(&put.stop) => {
                sent.failed = Some(("interrupted".into(), pending.len()));
                sent.interrupted = true;
                return sent;
            }
        };
        let failure = match outcome {
            Ok(out) => match rejected(&out, &mut pending, &mut sent) {
                None => {
                    put.trouble.succeeded();
                    return sent;
                }
                Some(e) => e,
            },
            Err(e) => CallError::from_sdk(&e),
        };
        if failure.class == Class::Permanent {
            sent.failed = Some((
                format!("{}; {}", failure.text, failure.hint()),
                pending.len(),
            ));
            return sent;
        }
        let since = *first_failure.get_or_insert_with(Instant::now);
        if since.elapsed() >= put.operation_timeout {
            put.trouble.end("gave up");
            sent.failed = Some((
                format!(
                    "still failing after {} attempts over {:.1?} (--operation-timeout): {}",
                    backoff.attempts() + 1,
                    since.elapsed(),
                    failure.text
                ),
                pending.len(),
            ));
            return sent;
        }
        let delay = backoff.next_delay();
        put.trouble.failed(&failure, delay);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = crate::aws::stopped(&put.stop) => {
                sent.failed = Some(("interrupted".into(), pending.len()));
                sent.interrupted = true;
                return sent;
            }
        }
    }
}

/// Counts the records a `PutRecords` answer accepted; `None` when that is all
/// of them, else the error of those it failed, left in `pending`.
fn rejected(
    out: &PutRecordsOutput,
    pending: &mut Vec<usize>,
    sent: &mut Sent,
) -> Option<CallError> {
    let failed: Vec<usize> = out
        .records()
        .iter()
        .zip(pending.iter())
        .filter(|(r, _)| r.error_code().is_some())
        .map(|(_, &i)| i)
        .collect();
    let reason = out
        .records()
        .iter()
        .find_map(|r| r.error_code().map(str::to_string));
    sent.accepted += (pending.len() - failed.len()) as u64;
    let accepted = out.records().iter().filter(|r| r.error_code().is_none());
    for shard in accepted.filter_map(|r| r.shard_id()) {
        if !sent.shards.iter().any(|s| s == shard) {
            sent.shards.push(shard.to_string());
        }
    }
    if failed.is_empty() {
        return None;
    }
    sent.retried += failed.len() as u64;
    let code = reason.unwrap_or_default();
    let e = CallError {
        class: crate::aws::classify(Some(&code), None),
        text: format!(
            "{} of {} records rejected ({code})",
            failed.len(),
            pending.len()
        ),
        code: Some(code),
    };
    *pending = failed;
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys() {
        let path = FieldText::new("httpRequest.clientIp");
        assert_eq!(
            partition_key(br#"{"httpRequest":{"clientIp":"1.2.3.4"}}"#, &path),
            "1.2.3.4"
        );
        let k = partition_key(b"{\"x\":1}", &path);
        assert_eq!(k.len(), 8);
        assert_eq!(k, partition_key(b"{\"x\":1}", &path));
        assert_eq!(partition_key(br#"{"a":17}"#, &FieldText::new("a")), "17");
        let long = format!(r#"{{"a":"{}"}}"#, "é".repeat(300));
        assert!(partition_key(long.as_bytes(), &FieldText::new("a")).len() <= 256);
    }

    #[test]
    fn keys_go_to_the_lane_of_the_shard_holding_their_md5() {
        // Four equal hash-key ranges over two lanes, as a 4-shard stream has.
        let q = u128::MAX / 4 + 1;
        let shards: Vec<(u128, u128, usize)> = (0..4u128)
            .map(|i| (i * q, i * q + (q - 1), (i % 2) as usize))
            .collect();
        // MD5("1.2.3.4") = 6465ec74...: the second quarter; MD5("10.0.0.1") =
        // 190dafab...: the first.
        assert_eq!(lane_of(&shards, "1.2.3.4"), 1);
        assert_eq!(lane_of(&shards, "10.0.0.1"), 0);
        // A range missing from the map (a shard closed since): lane 0.
        assert_eq!(lane_of(&shards[..1], "1.2.3.4"), 0);
        assert_eq!(lane_of(&shards[2..], "1.2.3.4"), 0);
        assert_eq!(lane_of(&shards[1..2], "1.2.3.4"), 1);
    }
}
