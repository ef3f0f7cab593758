//! Amazon S3 sink: writes gzip NDJSON objects in the AWS WAF delivery layout, one
//! per 5 minutes of event time per web ACL, with multipart upload for large
//! objects. Compression runs on worker threads ([`super::gzip`]) and uploads on
//! their own thread while the main thread routes records.
//!
//! Delivery layout (as AWS WAF writes to S3):
//! `<prefix>AWSLogs/<account>/WAFLogs/<region or cloudfront>/<web-acl>/YYYY/MM/dd/HH/mm/<account>_waflogs_<region>_<web-acl>_<YYYYMMDDTHHmmZ>_<hash>.log.gz`.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, btree_map};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use flate2::Compression;

use crate::aws::{Aws, CallError, Trouble, retry};
use crate::net::LineBuffer;

use super::gzip::{GzipPool, GzipStream};

/// Object parts are uploaded once this much compressed data is buffered (S3's
/// minimum part size is 5 MiB).
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
/// Event time covered by one object (AWS WAF delivers every 5 minutes).
pub const DEFAULT_OBJECT_SPAN_MS: i64 = 5 * 60_000;

/// Where a web ACL's logs go: account, region (`cloudfront` for global ACLs) and
/// name, from its ARN (`arn:aws:wafv2:us-east-1:123456789012:regional/webacl/NAME/ID`).
fn acl_parts(webacl_id: Option<&str>) -> (String, String, String) {
    let fallback = || {
        (
            "000000000000".to_string(),
            "unknown".to_string(),
            "unknown-webacl".to_string(),
        )
    };
    let Some(arn) = webacl_id else {
        return fallback();
    };
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    if fields.len() < 6 || fields[0] != "arn" {
        return fallback();
    }
    let resource: Vec<&str> = fields[5].split('/').collect();
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let region = if resource.first() == Some(&"global") || fields[3].is_empty() {
        "cloudfront".to_string()
    } else {
        clean(fields[3])
    };
    let name = resource
        .get(2)
        .map_or("unknown-webacl".to_string(), |n| clean(n));
    (clean(fields[4]), region, name)
}

/// The web ACL of the records routed last: its `webaclId` and where its logs go
/// (account, region, name, and those joined as the key of its open objects), so
/// that a run of records of one ACL parses the ARN once.
#[derive(Debug, Clone, PartialEq)]
struct LastAcl {
    webacl_id: Option<String>,
    account: String,
    region: String,
    name: String,
    joined: String,
}

impl LastAcl {
    fn new(webacl_id: Option<String>) -> LastAcl {
        let (account, region, name) = acl_parts(webacl_id.as_deref());
        LastAcl {
            joined: format!("{account}/{region}/{name}"),
            webacl_id,
            account,
            region,
            name,
        }
    }
}

/// An object being written: its key, its gzip stream and its records so far.
struct OpenObject {
    key: String,
    gz: GzipStream,
    records: u64,
}

/// Counters of an S3 sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Objects written.
    pub objects: u64,
    /// Of which with multipart upload.
    pub multipart: u64,
    /// Records written.
    pub records: u64,
    /// Compressed bytes written.
    pub bytes: u64,
}

/// Work for the upload thread, in the order the sink made it.
enum Upload {
    /// A part of an object's compressed bytes (at least the part size): the object
    /// is written with a multipart upload.
    Part { key: String, body: Vec<u8> },
    /// An object closed: the thread finishes its gzip stream and writes the rest.
    Close(OpenObject),
}

/// Objects queued for the upload thread before the sink waits (each holds up to a
/// part of compressed bytes and its chunks under compression).
const UPLOADS_QUEUED: usize = 4;

/// A multipart upload under way.
struct Multipart {
    upload_id: String,
    parts: Vec<CompletedPart>,
    bytes: u64,
}

/// The upload thread: writes objects and parts in the order they come, retried
/// ([`send`]); the first error that retries do not cure ends it.
struct Uploader {
    aws: Arc<Aws>,
    client: aws_sdk_s3::Client,
    bucket: String,
    trouble: Trouble,
    multipart: HashMap<String, Multipart>,
    stats: SinkStats,
}

impl Uploader {
    fn run(mut self, jobs: &Receiver<Upload>) -> anyhow::Result<SinkStats> {
        for job in jobs {
            match job {
                Upload::Part { key, body } => self.part(&key, body)?,
                Upload::Close(o) => self.close(o)?,
            }
        }
        Ok(self.stats)
    }

    /// Uploads the next part of `key`, starting its multipart upload if need be.
    fn part(&mut self, key: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let Uploader {
            aws,
            client,
            bucket,
            trouble,
            ..
        } = self;
        let ctx = || format!("cannot upload s3://{bucket}/{key}");
        let mp = match self.multipart.entry(key.to_string()) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                let r = send(aws, trouble, &ctx(), || {
                    client
                        .create_multipart_upload()
                        .bucket(bucket.as_str())
                        .key(key)
                        .content_type("application/x-ndjson")
                        .content_encoding("gzip")
                        .send()
                })?;
                let upload_id = r.upload_id().context("S3 returned no upload id")?;
                v.insert(Multipart {
                    upload_id: upload_id.to_string(),
                    parts: Vec::new(),
                    bytes: 0,
                })
            }
        };
        let number = mp.parts.len() as i32 + 1;
        mp.bytes += body.len() as u64;
        let body = bytes::Bytes::from(body);
        let r = send(aws, trouble, &ctx(), || {
            client
                .upload_part()
                .bucket(bucket.as_str())
                .key(key)
                .upload_id(&mp.upload_id)
                .part_number(number)
                .body(ByteStream::from(body.clone()))
                .send()
        })?;
        mp.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(r.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    /// Finishes `o`'s gzip stream and writes the rest: the last part and the
    /// completion of a multipart upload, or the whole object.
    fn close(&mut self, mut o: OpenObject) -> anyhow::Result<()> {
        let body = o.gz.finish().context("cannot finish a gzip stream")?;
        let bytes = if self.multipart.contains_key(&o.key) {
            self.part(&o.key, body)?;
            let mp = self
                .multipart
                .remove(&o.key)
                .context("a multipart upload went missing")?;
            let ctx = || format!("cannot write s3://{}/{}", self.bucket, o.key);
            send(&self.aws, &mut self.trouble, &ctx(), || {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&o.key)
                    .upload_id(&mp.upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(mp.parts.clone()))
                            .build(),
                    )
                    .send()
            })?;
            self.stats.multipart += 1;
            mp.bytes
        } else {
            let bytes = body.len() as u64;
            put_object(
                &self.aws,
                &self.client,
                &mut self.trouble,
                &self.bucket,
                &o.key,
                "application/x-ndjson",
                Some("gzip"),
                body,
            )?;
            bytes
        };
        self.stats.objects += 1;
        self.stats.records += o.records;
        self.stats.bytes += bytes;
        tracing::debug!(
            "wrote s3://{}/{} ({} records)",
            self.bucket,
            o.key,
            o.records
        );
        Ok(())
    }
}

/// Writes NDJSON records as gzip objects in the WAF delivery layout. The main
/// thread routes records and feeds the gzip workers; one thread uploads.
pub struct S3Sink {
    bucket: String,
    prefix: String,
    span_ms: i64,
    part_size: usize,
    open: BTreeMap<(String, i64), OpenObject>,
    /// The key of the object written last (most records go where the one before
    /// went).
    last_open: Option<(String, i64)>,
    max_event: i64,
    last_ts: i64,
    /// Reads the time and `webaclId` in one scan of the line (which also validates
    /// it as JSON).
    route: waflog_core::parse::TimedField,
    last_acl: LastAcl,
    lines: LineBuffer,
    uploads: Option<SyncSender<Upload>>,
    uploader: Option<JoinHandle<anyhow::Result<SinkStats>>>,
}

/// One S3 sink call, retried ([`retry`]) and stopped by Ctrl-C.
fn send<T, E, F, Fut>(aws: &Aws, trouble: &mut Trouble, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<
            Output = Result<
                T,
                aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
            >,
        >,
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    retry(aws, trouble, 0x3c6e_f372_fe94_f82b, || {
        Ok(aws.call(f())?.map_err(|e| CallError::from_sdk(&e)))
    })
    .map_err(|g| g.into_error(what))
}

/// Writes one whole object (PutObject, retried).
#[allow(clippy::too_many_arguments)]
pub fn put_object(
    aws: &Aws,
    client: &aws_sdk_s3::Client,
    trouble: &mut Trouble,
    bucket: &str,
    key: &str,
    content_type: &str,
    content_encoding: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    let body = bytes::Bytes::from(body);
    send(
        aws,
        trouble,
        &format!("cannot write s3://{bucket}/{key}"),
        || {
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type(content_type)
                .set_content_encoding(content_encoding.map(str::to_string))
                .body(ByteStream::from(body.clone()))
                .send()
        },
    )?;
    Ok(())
}

impl std::fmt::Debug for S3Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Sink")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl S3Sink {
    /// A sink into `s3://bucket/prefix`: one object per `span_ms` of event time per
    /// web ACL, parts of `part_size` bytes (at least 5 MiB) for large objects.
    pub fn new(
        aws: Arc<Aws>,
        bucket: &str,
        prefix: &str,
        span_ms: i64,
        part_size: usize,
    ) -> anyhow::Result<S3Sink> {
        let mut prefix = prefix.to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let uploader = Uploader {
            client: aws.s3(),
            trouble: aws.trouble(&format!("s3://{bucket}")),
            aws,
            bucket: bucket.to_string(),
            multipart: HashMap::new(),
            stats: SinkStats::default(),
        };
        let (tx, rx) = sync_channel(UPLOADS_QUEUED);
        let thread = std::thread::Builder::new()
            .name("waflog-s3-upload".into())
            .spawn(move || uploader.run(&rx))
            .context("cannot start the S3 upload thread")?;
        Ok(S3Sink {
            bucket: bucket.to_string(),
            prefix,
            span_ms: span_ms.max(1_000),
            part_size: part_size.max(5 << 20),
            open: BTreeMap::new(),
            last_open: None,
            max_event: i64::MIN,
            last_ts: 0,
            route: waflog_core::parse::TimedField::new("webaclId"),
            last_acl: LastAcl::new(None),
            lines: LineBuffer::default(),
            uploads: Some(tx),
            uploader: Some(thread),
        })
    }

    /// Adds complete lines (a trailing partial line waits for the next block).
    pub fn write_block(&mut self, block: &[u8]) -> anyhow::Result<()> {
        let mut lines = std::mem::take(&mut self.lines);
        let fed = lines.feed(block, |line| self.write_record(line));
        self.lines = lines;
        fed?;
        self.close_due()
    }

    fn write_record(&mut self, line: &[u8]) -> anyhow::Result<()> {
        // A line that is not a JSON object keeps the last record's time and goes to
        // the unknown web ACL; otherwise its time and its web ACL, read in one scan,
        // route it.
        let last_acl = &mut self.last_acl;
        let routed = self.route.with(line, |ts, id| {
            if id != last_acl.webacl_id.as_deref() {
                *last_acl = LastAcl::new(id.map(str::to_string));
            }
            ts
        });
        let ts = match routed {
            Some(ts) => ts,
            None => {
                if last_acl.webacl_id.is_some() {
                    *last_acl = LastAcl::new(None);
                }
                None
            }
        };
        let ts = ts.unwrap_or(self.last_ts);
        self.last_ts = ts;
        self.max_event = self.max_event.max(ts);
        let window = ts.div_euclid(self.span_ms) * self.span_ms;
        let same = self
            .last_open
            .as_ref()
            .is_some_and(|(acl, w)| *w == window && *acl == self.last_acl.joined);
        let open = match self.last_open.as_ref().filter(|_| same) {
            Some(key) => self.open.get_mut(key),
            None => None,
        };
        let entry = match open {
            Some(o) => o,
            None => {
                let key = (self.last_acl.joined.clone(), window);
                self.last_open = Some(key.clone());
                match self.open.entry(key) {
                    btree_map::Entry::Occupied(o) => o.into_mut(),
                    btree_map::Entry::Vacant(v) => {
                        let LastAcl {
                            account,
                            region,
                            name,
                            ..
                        } = &self.last_acl;
                        let start =
                            chrono::DateTime::from_timestamp_millis(window).unwrap_or_default();
                        let hash = {
                            let mut crc = flate2::Crc::new();
                            crc.update(line);
                            crc.sum()
                        };
                        v.insert(OpenObject {
                            key: format!(
                                "{}AWSLogs/{account}/WAFLogs/{region}/{name}/{}/{account}_waflogs_{region}_{name}_{}_{hash:08x}.log.gz",
                                self.prefix,
                                start.format("%Y/%m/%d/%H/%M"),
                                start.format("%Y%m%dT%H%MZ"),
                            ),
                            gz: GzipStream::new(GzipPool::shared()?, Compression::default()),
                            records: 0,
                        })
                    }
                }
            }
        };
        entry.gz.write(line)?;
        entry.gz.write(b"\n")?;
        entry.records += 1;
        if let Some(body) = entry.gz.take_ready(self.part_size)? {
            let key = entry.key.clone();
            self.upload(Upload::Part { key, body })?;
        }
        Ok(())
    }

    /// Hands `job` to the upload thread (waiting while [`UPLOADS_QUEUED`] are
    /// queued); the thread's error if it has stopped.
    fn upload(&mut self, job: Upload) -> anyhow::Result<()> {
        let sent = match &self.uploads {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            self.uploads = None;
            self.join_uploader()?;
            anyhow::bail!("the S3 upload thread of s3://{} has stopped", self.bucket)
        }
    }

    /// Waits for the upload thread to end (once its queue is closed): its counters,
    /// or the error that stopped it.
    fn join_uploader(&mut self) -> anyhow::Result<SinkStats> {
        let thread = self
            .uploader
            .take()
            .context("the S3 upload thread has already ended")?;
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the S3 upload thread of s3://{} panicked", self.bucket))?
    }

    /// Closes the objects whose span ended a whole span before the latest event.
    fn close_due(&mut self) -> anyhow::Result<()> {
        let due: Vec<(String, i64)> = self
            .open
            .keys()
            .filter(|(_, w)| w.saturating_add(2 * self.span_ms) <= self.max_event)
            .cloned()
            .collect();
        for k in due {
            if let Some(o) = self.open.remove(&k) {
                self.upload(Upload::Close(o))?;
            }
        }
        Ok(())
    }

    /// Writes the last partial line and every open object, and waits for the
    /// uploads.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|line| self.write_record(line))?;
        for (_, o) in std::mem::take(&mut self.open) {
            self.upload(Upload::Close(o))?;
        }
        self.uploads = None;
        let s = self.join_uploader()?;
        tracing::info!(
            "s3://{}/{}: {} objects ({} multipart), {} records, {:.1} MB compressed",
            self.bucket,
            self.prefix,
            s.objects,
            s.multipart,
            s.records,
            s.bytes as f64 / 1e6
        );
        Ok(())
    }
}

impl Drop for S3Sink {
    /// A sink dropped without [`S3Sink::finish`] (a run stopped by an error) still
    /// writes the objects it closed: closing the queue lets the thread end.
    fn drop(&mut self) {
        self.uploads = None;
        if let Some(thread) = self.uploader.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_parts_from_arns() {
        assert_eq!(
            acl_parts(Some(
                "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/my-acl/a1b2"
            )),
            ("123456789012".into(), "us-east-1".into(), "my-acl".into())
        );
        assert_eq!(
            acl_parts(Some(
                "arn:aws:wafv2:us-east-1:123456789012:global/webacl/cf acl/x"
            )),
            ("123456789012".into(), "cloudfront".into(), "cf_acl".into())
        );
        assert_eq!(acl_parts(Some("not-an-arn")).2, "unknown-webacl");
        assert_eq!(acl_parts(None).0, "000000000000");
    }
}
