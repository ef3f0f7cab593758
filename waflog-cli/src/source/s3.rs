//! Amazon S3 source: lists the objects under a prefix and streams them in time
//! order, gunzipped on the fly on a thread of its own.
//!
//! Delivery layout (as AWS WAF writes to S3):
//! `<prefix>AWSLogs/<account>/WAFLogs/<region or cloudfront>/<web-acl>/YYYY/MM/dd/HH/mm/<account>_waflogs_<region>_<web-acl>_<YYYYMMDDTHHmmZ>_<hash>.log.gz`.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use flate2::read::MultiGzDecoder;

use super::file::{Failure, Input};
use crate::aws::{Aws, CallError, Class, GaveUp, Trouble, retry};
use crate::interrupt::Interrupted;
use crate::net::{Backoff, error_text};

/// Decompressed bytes are handed to the parser in blocks of this size.
const BLOCK: usize = 1 << 20;
/// Blocks in flight between the download thread and the parser (bounded memory).
const BLOCKS_IN_FLIGHT: usize = 8;
/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key.
    pub key: String,
    /// Size in bytes (as stored, compressed or not).
    pub size: u64,
}

/// Where a key's `YYYY/MM/dd/HH[/mm]` date path starts (byte offset) and its
/// `YYYYMMDDHHmm` (minute 00 when absent).
fn date_path(key: &str) -> Option<(usize, String)> {
    date_path_hourly(key).map(|(at, t, _)| (at, t))
}

/// [`date_path`], and whether the path stops at the hour (`YYYY/MM/dd/HH/`, as
/// Firehose writes) instead of naming the minute (`YYYY/MM/dd/HH/mm/`, as WAF does).
fn date_path_hourly(key: &str) -> Option<(usize, String, bool)> {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = key.split('/').collect();
    let mut offset = 0;
    for i in 0..parts.len() {
        let w = &parts[i..];
        if w.len() >= 4 && digits(w[0], 4) && digits(w[1], 2) && digits(w[2], 2) && digits(w[3], 2)
        {
            // A minute folder is followed by more of the key (its objects); in
            // `.../HH/name` the name is not a minute even when it is two digits.
            let minute = w.get(4).filter(|m| digits(m, 2) && w.len() > 5).copied();
            return Some((
                offset,
                format!("{}{}{}{}{}", w[0], w[1], w[2], w[3], minute.unwrap_or("00")),
                minute.is_none(),
            ));
        }
        offset += parts[i].len() + 1;
    }
    None
}

/// The `YYYYMMDDHHmm` of a key's `/YYYY/MM/dd/HH/mm/` (or `/YYYY/MM/dd/HH/`) path, if
/// it has one: the delivery time used to order and filter objects.
pub fn key_time(key: &str) -> Option<String> {
    date_path(key).map(|(_, t)| t)
}

/// Whether the object `key` was delivered in [`from`, `to`) (`YYYYMMDDHHmm`, as
/// [`super::S3Range`] holds them) by its date path: a minute folder (WAF's layout)
/// is that minute; an hour folder (Firehose's `prefix/YYYY/MM/dd/HH/`) is the whole
/// hour, so `--since 10:30` keeps the objects of 10 (they may hold records from
/// 10:30 on) and no hour is skipped. Keys without a date path are kept.
pub fn delivered_in(key: &str, from: Option<&str>, to: Option<&str>) -> bool {
    let Some((_, first, hourly)) = date_path_hourly(key) else {
        return true;
    };
    let last = if hourly {
        format!("{}59", &first[..10])
    } else {
        first.clone()
    };
    from.is_none_or(|f| last.as_str() >= f) && to.is_none_or(|u| first.as_str() < u)
}

/// The part of a key before its date path: in the WAF layout, one web ACL's
/// delivery folder (`.../WAFLogs/<region>/<web-acl>/`). Keys without a date path
/// have no channel (`""`).
pub fn channel(key: &str) -> &str {
    date_path(key).map_or("", |(at, _)| &key[..at])
}

/// Orders objects by their delivery time (keys without one first), then by key.
pub fn sort_by_time(objects: &mut [ObjectInfo]) {
    objects.sort_by_cached_key(|o| (key_time(&o.key), o.key.clone()));
}

/// Lists every object under `prefix`, ordered by [`sort_by_time`], keeping those
/// whose delivery time lies in [`from`, `to`) (`YYYYMMDDHHmm`; keys without a date
/// path are kept).
pub fn list(
    aws: &Aws,
    bucket: &str,
    prefix: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> anyhow::Result<Vec<ObjectInfo>> {
    let client = aws.s3();
    let mut objects = Vec::new();
    let mut trouble = aws.trouble(&format!("s3://{bucket}"));
    let what = format!("cannot list s3://{bucket}/{prefix}");
    let mut token: Option<String> = None;
    loop {
        let page = retry(aws, &mut trouble, 0x7f4a_7c15, || {
            let out = aws.call(
                client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.clone())
                    .send(),
            )?;
            Ok(out.map_err(|e| CallError::from_sdk(&e)))
        })
        .map_err(|g| g.into_error(&what))?;
        for o in page.contents() {
            if let Some(key) = o.key() {
                objects.push(ObjectInfo {
                    key: key.to_string(),
                    size: o.size().map_or(0, |s| s.max(0) as u64),
                });
            }
        }
        token = page
            .next_continuation_token()
            .filter(|_| page.is_truncated() == Some(true))
            .map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    objects.retain(|o| delivered_in(&o.key, from, to));
    sort_by_time(&mut objects);
    Ok(objects)
}

enum Chunk {
    Begin(String, u64),
    Data(Vec<u8>),
    End,
    Failed(Failed),
}

/// Why an object's bytes stopped early.
#[derive(Debug, Clone)]
pub enum Failed {
    /// The object itself is damaged (not gzip it claims to be, truncated): what
    /// was decoded is kept, the rest is dead-lettered and the run goes on.
    Corrupt(String),
    /// S3 could not be read (still failing after the retries, or a permanent
    /// error): the run stops; nothing is skipped.
    Fatal(String),
    /// Ctrl-C.
    Interrupted,
}

/// The objects of a listing as inputs, in order, downloaded and decompressed on a
/// thread of their own while the previous block is parsed.
pub struct ObjectStream {
    bucket: String,
    rx: Arc<Mutex<Receiver<Chunk>>>,
}

impl std::fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

type Prefetch = tokio::task::JoinHandle<
    Result<
        aws_sdk_s3::operation::get_object::GetObjectOutput,
        aws_sdk_s3::error::SdkError<
            aws_sdk_s3::operation::get_object::GetObjectError,
            aws_sdk_s3::config::http::HttpResponse,
        >,
    >,
>;

/// Starts downloading `objects` of `bucket` in order.
pub fn stream(aws: Arc<Aws>, bucket: &str, objects: Vec<ObjectInfo>) -> ObjectStream {
    let (tx, rx) = sync_channel(BLOCKS_IN_FLIGHT);
    let b = bucket.to_string();
    std::thread::Builder::new()
        .name("waflog-s3-read".into())
        .spawn(move || {
            let client = aws.s3();
            let mut trouble = aws.trouble(&format!("s3://{b}"));
            // The next object's GET is sent while this one is read, so the request
            // round trip overlaps the decompression.
            let get = |key: &str| -> Prefetch {
                let req = client.get_object().bucket(&b).key(key).send();
                aws.handle().spawn(req)
            };
            let mut next = objects.first().map(|o| get(&o.key));
            for (i, o) in objects.iter().enumerate() {
                let Some(this) = next.take() else { return };
                next = objects.get(i + 1).map(|o| get(&o.key));
                if tx.send(Chunk::Begin(o.key.clone(), o.size)).is_err() {
                    return;
                }
                let body = ObjectBody {
                    aws: &aws,
                    client: &client,
                    bucket: &b,
                    key: &o.key,
                    prefetched: Some(this),
                    body: None,
                    chunk: bytes::Bytes::new(),
                    offset: 0,
                    trouble: &mut trouble,
                    failed: None,
                    seed: 0x51ed_270b_2729_4e3b ^ i as u64,
                    ended: false,
                };
                let end = match download(body, o.size, &tx) {
                    Ok(()) => Chunk::End,
                    Err(f) => Chunk::Failed(f),
                };
                let stop = matches!(end, Chunk::Failed(Failed::Fatal(_) | Failed::Interrupted));
                if tx.send(end).is_err() || stop {
                    return;
                }
            }
        })
        .map_or_else(
            |e| tracing::error!("cannot start the S3 download thread: {e}"),
            |_| (),
        );
    ObjectStream {
        bucket: bucket.to_string(),
        rx: Arc::new(Mutex::new(rx)),
    }
}

/// Reads and decompresses one object into the channel.
fn download(body: ObjectBody<'_>, size: u64, tx: &SyncSender<Chunk>) -> Result<(), Failed> {
    let failed = Arc::new(Mutex::new(None::<Failed>));
    let offset = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let body = FailSlot {
        inner: body,
        slot: Arc::clone(&failed),
        offset: Arc::clone(&offset),
    };
    // Records (lines) handed over, for the message when the object turns out damaged.
    let mut records = 0u64;
    let damaged = |records: u64| {
        format!(
            "after {records} records were read from it, at byte {} of its {size} stored bytes; the rest of it could not be decoded",
            offset.load(std::sync::atomic::Ordering::Relaxed)
        )
    };
    let took = |e: &io::Error| -> Option<Failed> {
        let _ = e;
        failed.lock().ok().and_then(|mut f| f.take())
    };
    let mut buffered = BufReader::with_capacity(256 << 10, body);
    let gzip = match buffered.fill_buf() {
        Ok(head) => head.starts_with(&[0x1f, 0x8b]),
        Err(e) => {
            return Err(took(&e).unwrap_or(Failed::Corrupt(format!("cannot read the object: {e}"))));
        }
    };
    let mut reader: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    loop {
        let mut block = vec![0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            match reader.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Hand over what was decoded before the damage, then fail.
                    block.truncate(filled);
                    records += block.iter().filter(|&&b| b == b'\n').count() as u64;
                    if filled > 0 {
                        let _ = tx.send(Chunk::Data(block));
                    }
                    if let Some(f) = took(&e) {
                        return Err(f);
                    }
                    return Err(Failed::Corrupt(if gzip {
                        format!("corrupt gzip data: {e} ({})", damaged(records))
                    } else {
                        format!("cannot read the object: {e} ({})", damaged(records))
                    }));
                }
            }
        }
        if filled == 0 {
            return Ok(());
        }
        block.truncate(filled);
        records += block.iter().filter(|&&b| b == b'\n').count() as u64;
        if tx.send(Chunk::Data(block)).is_err() {
            return Ok(());
        }
    }
}

/// An [`ObjectBody`] that leaves why it failed in a slot the decoder cannot hide.
struct FailSlot<'a> {
    inner: ObjectBody<'a>,
    slot: Arc<Mutex<Option<Failed>>>,
    /// Stored bytes read so far.
    offset: Arc<std::sync::atomic::AtomicU64>,
}

impl Read for FailSlot<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.inner.read(buf);
        self.offset
            .store(self.inner.offset, std::sync::atomic::Ordering::Relaxed);
        if let Some(f) = self.inner.failed.take() {
            if let Ok(mut slot) = self.slot.lock() {
                *slot = Some(f);
            }
        }
        r
    }
}

/// One object's bytes as a blocking reader: a GET that fails (throttling, 5xx, a
/// connection reset, no byte for --read-timeout) is retried with backoff and the
/// body resumes at the byte where it stopped (a ranged GET), so a read that
/// recovers loses nothing; one that does not recover within --operation-timeout
/// fails the read with [`Failed::Fatal`].
struct ObjectBody<'a> {
    aws: &'a Aws,
    client: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    key: &'a str,
    prefetched: Option<Prefetch>,
    body: Option<ByteStream>,
    chunk: bytes::Bytes,
    /// Bytes of the stored object read so far.
    offset: u64,
    trouble: &'a mut Trouble,
    failed: Option<Failed>,
    seed: u64,
    /// The body has ended: later reads return 0 (another GET would ask for a
    /// range past the end, which S3 refuses with 416 InvalidRange).
    ended: bool,
}

impl ObjectBody<'_> {
    fn what(&self) -> String {
        format!("cannot read s3://{}/{}", self.bucket, self.key)
    }

    fn fail(&mut self, f: Failed) -> io::Error {
        let text = match &f {
            Failed::Interrupted => "interrupted (Ctrl-C)".to_string(),
            Failed::Fatal(t) | Failed::Corrupt(t) => t.clone(),
        };
        self.failed = Some(f);
        io::Error::other(text)
    }

    /// A GET from `offset`, retried.
    fn open(&mut self) -> Result<ByteStream, Failed> {
        let range = (self.offset > 0).then(|| format!("bytes={}-", self.offset));
        let mut prefetched = self.prefetched.take().filter(|_| range.is_none());
        let (aws, client, bucket, key) = (self.aws, self.client, self.bucket, self.key);
        let what = self.what();
        retry(aws, self.trouble, self.seed, || {
            let outcome = match prefetched.take() {
                Some(h) => match aws.call(h)? {
                    Ok(r) => r,
                    Err(e) => {
                        return Ok(Err(CallError {
                            code: None,
                            class: Class::Retryable,
                            text: format!("the request task failed: {e}"),
                        }));
                    }
                },
                None => aws.call(
                    client
                        .get_object()
                        .bucket(bucket)
                        .key(key)
                        .set_range(range.clone())
                        .send(),
                )?,
            };
            Ok(outcome.map_err(|e| CallError::from_sdk(&e)))
        })
        .map(|o| o.body)
        .map_err(|g| match g {
            GaveUp::Interrupted => Failed::Interrupted,
            g => Failed::Fatal(format!("{:#}", g.into_error(&what))),
        })
    }
}

impl Read for ObjectBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut first_failure: Option<Instant> = None;
        let mut backoff = Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(10),
            self.seed.rotate_left(7),
        );
        while self.chunk.is_empty() {
            if self.ended {
                return Ok(0);
            }
            let mut body = match self.body.take() {
                Some(b) => b,
                None => match self.open() {
                    Ok(b) => b,
                    Err(f) => return Err(self.fail(f)),
                },
            };
            let read = self.aws.timeouts.read;
            let next = self
                .aws
                .call(async { tokio::time::timeout(read, body.next()).await });
            let failure = match next {
                Err(Interrupted) => return Err(self.fail(Failed::Interrupted)),
                Ok(Ok(None)) => {
                    self.ended = true;
                    return Ok(0);
                }
                Ok(Ok(Some(Ok(c)))) => {
                    self.offset += c.len() as u64;
                    self.chunk = c;
                    self.body = Some(body);
                    continue;
                }
                Ok(Ok(Some(Err(e)))) => error_text(&e),
                Ok(Err(_)) => format!("no data for {read:?} (--read-timeout)"),
            };
            // The body broke off: resume with a ranged GET after a pause.
            let e = CallError {
                code: None,
                class: Class::Retryable,
                text: format!(
                    "s3://{}/{} at byte {}: {failure}",
                    self.bucket, self.key, self.offset
                ),
            };
            let since = *first_failure.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.aws.timeouts.operation {
                self.trouble.end("gave up");
                let what = self.what();
                return Err(self.fail(Failed::Fatal(format!(
                    "{what}: still failing after {} attempts over {:.1?} (--operation-timeout): {}",
                    backoff.attempts() + 1,
                    since.elapsed(),
                    e.text
                ))));
            }
            let delay = backoff.next_delay();
            self.trouble.failed(&e, delay);
            if self.aws.sleep(delay).is_err() {
                return Err(self.fail(Failed::Interrupted));
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

impl Iterator for ObjectStream {
    type Item = Input;

    fn next(&mut self) -> Option<Input> {
        let (key, size) = loop {
            // Skip what is left of an object whose reader was dropped early.
            let msg = self.rx.lock().ok()?.recv().ok()?;
            if let Chunk::Begin(key, size) = msg {
                break (key, size);
            }
        };
        let failure: Failure = Arc::default();
        let name = format!("s3://{}/{key}", self.bucket);
        tracing::debug!("reading {name} ({size} bytes)");
        Some(Input {
            name: name.clone(),
            reader: Box::new(ObjectReader {
                name,
                rx: Arc::clone(&self.rx),
                block: Vec::new(),
                pos: 0,
                done: false,
                failure: Arc::clone(&failure),
                stopped: None,
            }),
            size: None,
            failure: Some(failure),
            origins: None,
        })
    }
}

/// The decompressed bytes of one object; a failure ends it early and is recorded.
struct ObjectReader {
    name: String,
    rx: Arc<Mutex<Receiver<Chunk>>>,
    block: Vec<u8>,
    pos: usize,
    done: bool,
    failure: Failure,
    /// The run must stop: every later read fails the same way.
    stopped: Option<Failed>,
}

impl ObjectReader {
    fn fail(&mut self, reason: String) {
        self.done = true;
        if let Ok(mut f) = self.failure.lock() {
            f.push((self.name.clone(), reason));
        }
    }
}

/// The error an S3 input stops the run with: a read that did not recover, or
/// Ctrl-C ([`crate::interrupt::Interrupted`]).
fn stop_error(name: &str, failed: Failed) -> io::Error {
    match failed {
        Failed::Interrupted => {
            io::Error::new(io::ErrorKind::Interrupted, crate::interrupt::Interrupted)
        }
        Failed::Fatal(t) | Failed::Corrupt(t) => {
            io::Error::other(format!("{name}: {t} (nothing after this point was read)"))
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if let Some(f) = &self.stopped {
                return Err(stop_error(&self.name, f.clone()));
            }
            if self.done {
                return Ok(0);
            }
            let msg = match self.rx.lock() {
                Ok(rx) => rx.recv().ok(),
                Err(_) => None,
            };
            match msg {
                Some(Chunk::Data(b)) => {
                    self.block = b;
                    self.pos = 0;
                }
                Some(Chunk::End) => self.done = true,
                Some(Chunk::Failed(Failed::Corrupt(reason))) => self.fail(reason),
                Some(Chunk::Failed(f)) => {
                    self.done = true;
                    self.stopped = Some(f.clone());
                    return Err(stop_error(&self.name, f));
                }
                Some(Chunk::Begin(..)) | None => {
                    return Err(stop_error(
                        &self.name,
                        self.stopped
                            .clone()
                            .unwrap_or(Failed::Fatal("the download thread stopped".into())),
                    ));
                }
            }
        }
        let n = buf.len().min(self.block.len() - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_and_until_keep_every_hour_of_the_firehose_layout() {
        let (from, to) = (Some("202405011030"), Some("202405011215"));
        let firehose = |h: &str| format!("fh/2024/05/01/{h}/waf-stream-1-2024-05-01-{h}-59-02-abc");
        // 10: holds 10:30..10:59; 11 and 12 (12:00..12:14) too; 09 and 13 not.
        for (hour, kept) in [
            ("09", false),
            ("10", true),
            ("11", true),
            ("12", true),
            ("13", false),
        ] {
            assert_eq!(delivered_in(&firehose(hour), from, to), kept, "{hour}");
        }
        // WAF's minute folders are their minute.
        let waf = |hm: &str| format!("AWSLogs/1/WAFLogs/us-east-1/acl/2024/05/01/{hm}/x.log.gz");
        for (hm, kept) in [
            ("10/25", false),
            ("10/30", true),
            ("12/10", true),
            ("12/15", false),
        ] {
            assert_eq!(delivered_in(&waf(hm), from, to), kept, "{hm}");
        }
        // A two-digit object name under an hour folder is not a minute.
        assert!(delivered_in("fh/2024/05/01/10/59", from, to));
        assert!(delivered_in("no/date/path.gz", from, to));
        assert!(delivered_in(&firehose("09"), None, None));
    }

    #[test]
    fn key_times_and_order() {
        assert_eq!(
            key_time("AWSLogs/1/WAFLogs/us-east-1/acl/2024/05/01/13/05/x.log.gz").as_deref(),
            Some("202405011305")
        );
        assert_eq!(
            key_time("a/2024/05/01/13/x.gz").as_deref(),
            Some("202405011300")
        );
        assert_eq!(key_time("plain/file.ndjson"), None);
        assert_eq!(
            channel("p/AWSLogs/1/WAFLogs/us-east-1/acl/2024/05/01/13/05/x.log.gz"),
            "p/AWSLogs/1/WAFLogs/us-east-1/acl/"
        );
        assert_eq!(channel("2024/05/01/13/x.gz"), "");
        assert_eq!(channel("plain/file.ndjson"), "");
        let mut v: Vec<ObjectInfo> = [
            "p/acl-b/2024/05/01/00/10/b.gz",
            "p/acl-a/2024/05/01/00/15/a.gz",
            "p/acl-a/2024/05/01/00/05/a.gz",
            "p/notes.txt",
        ]
        .iter()
        .map(|k| ObjectInfo {
            key: (*k).to_string(),
            size: 1,
        })
        .collect();
        sort_by_time(&mut v);
        let keys: Vec<&str> = v.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "p/notes.txt",
                "p/acl-a/2024/05/01/00/05/a.gz",
                "p/acl-b/2024/05/01/00/10/b.gz",
                "p/acl-a/2024/05/01/00/15/a.gz"
            ]
        );
    }
}
