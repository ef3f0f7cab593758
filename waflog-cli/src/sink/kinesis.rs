//! Amazon Kinesis Data Streams sink.
//!
//! Writes `PutRecords` batches within the service limits (500 records and 5 MiB
//! per call, 1 MiB per record including its partition key), the partition key
//! taken from a field of the record (default `httpRequest.clientIp`); records a
//! call reports as failed (`ProvisionedThroughputExceededException`, internal
//! failures) are resent with exponential backoff and jitter until they are
//! accepted, or the run stops with an error that says how many were not sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
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
    key: FieldText,
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
    /// A sink into `stream`, with partition keys from the dotted field `key_field`.
    pub fn new(aws: Arc<Aws>, stream: &str, key_field: &str) -> KinesisSink {
        let trouble = aws.trouble(&format!("kinesis://{stream}"));
        KinesisSink {
            client: aws.kinesis(),
            aws,
            stream: stream.to_string(),
            key: FieldText::new(key_field),
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
        let key = partition_key(line, &self.key);
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
            let Some(failure) = self.put_records(&batch, &mut pending)? else {
                self.committed += batch.len() as u64 + std::mem::take(&mut self.skipped_in_batch);
                return Ok(());
            };
            self.wait_to_resend(&failure, pending.len(), &mut backoff, &mut first_failure)?;
        }
    }

    /// One `PutRecords` call with the `pending` records of `batch`: `None` when
    /// the stream accepted them all, else why not, with `pending` narrowed to the
    /// records to send again.
    fn put_records(
        &mut self,
        batch: &[(Vec<u8>, String)],
        pending: &mut Vec<usize>,
    ) -> anyhow::Result<Option<CallError>> {
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
        match outcome {
            Ok(out) => Ok(self.rejected(&out, pending)),
            Err(e) => Ok(Some(CallError::from_sdk(&e))),
        }
    }

    /// Counts the records a `PutRecords` answer accepted; `None` when that is
    /// all of them, else the error of those it failed, left in `pending`.
    fn rejected(&mut self, out: &PutRecordsOutput, pending: &mut Vec<usize>) -> Option<CallError> {
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
        self.stats.records += (pending.len() - failed.len()) as u64;
        if failed.is_empty() {
            self.trouble.succeeded();
            return None;
        }
        self.stats.retried += failed.len() as u64;
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

    /// After a failed call with `pending` records still to send: the error that
    /// stops the sink (a permanent failure, failures for --operation-timeout
    /// since the first, Ctrl-C), or a wait with backoff before they are resent.
    fn wait_to_resend(
        &mut self,
        failure: &CallError,
        pending: usize,
        backoff: &mut Backoff,
        first_failure: &mut Option<Instant>,
    ) -> anyhow::Result<()> {
        if failure.class == Class::Permanent {
            return Err(self.gave_up(pending, &format!("{}; {}", failure.text, failure.hint())));
        }
        let since = *first_failure.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.aws.timeouts.operation {
            self.trouble.end("gave up");
            return Err(self.gave_up(
                pending,
                &format!(
                    "still failing after {} attempts over {:.1?} (--operation-timeout): {}",
                    backoff.attempts() + 1,
                    since.elapsed(),
                    failure.text
                ),
            ));
        }
        let delay = backoff.next_delay();
        self.trouble.failed(failure, delay);
        if self.aws.sleep(delay).is_err() {
            return Err(self.gave_up(pending, "interrupted").context(Interrupted));
        }
        Ok(())
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
}
