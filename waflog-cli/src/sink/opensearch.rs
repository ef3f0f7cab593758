//! `opensearch://HOST:PORT/INDEX`: documents indexed with the `_bulk` API.
//!
//! Batches are bounded by documents and bytes, a few are in flight at once, and
//! nothing is dropped silently: a whole request that fails (connection, 429, 5xx)
//! is resent with exponential backoff and jitter; items the cluster throttles
//! (429) or fails (5xx) are resent alone; items it rejects (a mapping or parse
//! error) go to the dead letters with the server's reason; the summary counts
//! indexed, resent and rejected documents. Before the first write the index
//! template for the documents (WAF logs or detection results) is put in place.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use opensearch::OpenSearch;
use opensearch::auth::Credentials;
use opensearch::cert::{Certificate, CertificateValidation};
use opensearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use opensearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use opensearch::http::{Method, StatusCode, Url};
use waflog_core::opensearch::{self as os, IndexSuffix, ItemOutcome};
use waflog_core::parse::DeadLetter;

use crate::aws::AwsContext;
use crate::net::{Backoff, LineBuffer};

/// What the documents are: they choose the index template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DocKind {
    /// WAF log records (with or without the indicators).
    #[default]
    Logs,
    /// Detection results (AD result documents).
    Results,
}

/// How to reach and write to the cluster.
#[derive(Debug, Clone, Default)]
pub struct OpenSearchOptions {
    /// Basic authentication user.
    pub user: Option<String>,
    /// Its password (from the environment or a file, never the command line).
    pub password: Option<String>,
    /// Sign requests with AWS SigV4 for this service (`es` or `aoss`).
    pub sigv4: Option<String>,
    /// A PEM CA certificate to trust (self-signed clusters).
    pub ca_file: Option<std::path::PathBuf>,
    /// Skip TLS certificate verification.
    pub insecure: bool,
    /// Time-based index names.
    pub suffix: IndexSuffix,
    /// Most documents per `_bulk` request.
    pub batch_docs: usize,
    /// Most bytes per `_bulk` request.
    pub batch_bytes: usize,
    /// `_bulk` requests in flight at once.
    pub concurrency: usize,
    /// Which template to put in place.
    pub kind: DocKind,
}

/// Attempts at one document (or one request) before the run stops with an error.
const MAX_ATTEMPTS: u32 = 10;

/// Counters of an OpenSearch sink.
#[derive(Debug, Clone, Copy, Default)]
pub struct BulkStats {
    /// Documents the cluster indexed.
    pub indexed: u64,
    /// Documents resent after a 429 or 5xx (or a failed request).
    pub retried: u64,
    /// Documents the cluster rejected (dead-lettered).
    pub rejected: u64,
    /// `_bulk` requests sent.
    pub requests: u64,
}

/// One batch's outcome.
#[derive(Default)]
struct Done {
    stats: BulkStats,
    /// Dead-letter lines (NDJSON) of the rejected documents.
    rejects: Vec<u8>,
}

impl Done {
    /// Adds the outcome of another batch (or part of one).
    fn add(&mut self, other: Done) {
        self.stats.indexed += other.stats.indexed;
        self.stats.retried += other.stats.retried;
        self.stats.rejected += other.stats.rejected;
        self.stats.requests += other.stats.requests;
        self.rejects.extend_from_slice(&other.rejects);
    }
}

/// A client for one cluster (shared by the sink and `waflog opensearch`).
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: OpenSearch,
    /// `https://host:port` as given, for messages.
    pub url: String,
}

impl Cluster {
    /// Connects (lazily: no request is sent yet) to `url` with `options`.
    pub fn new(
        url: &str,
        options: &OpenSearchOptions,
        aws: &mut AwsContext,
    ) -> anyhow::Result<Cluster> {
        let parsed = Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
        let mut tb = TransportBuilder::new(SingleNodeConnectionPool::new(parsed))
            .timeout(Duration::from_secs(60));
        if let Some(service) = &options.sigv4 {
            let aws = aws
                .get()
                .context("SigV4 signing needs an AWS configuration")?;
            let creds = Credentials::try_from(aws.config())
                .map_err(|e| anyhow::anyhow!("cannot sign OpenSearch requests: {e}"))?;
            tb = tb.auth(creds).service_name(service);
        } else if let Some(user) = &options.user {
            let password = options.password.clone().with_context(|| {
                format!("a password for OpenSearch user {user}: set OPENSEARCH_PASSWORD or --opensearch-password-file")
            })?;
            crate::logging::add_secret(&password);
            tb = tb.auth(Credentials::Basic(user.clone(), password));
        }
        if options.insecure {
            tracing::warn!("TLS certificates of {url} are not verified (--insecure)");
            tb = tb.cert_validation(CertificateValidation::None);
        } else if let Some(ca) = &options.ca_file {
            let pem = crate::files::read_capped(ca, crate::files::TEXT_CAP, "CA file")?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("CA file {}: {e}", ca.display()))?;
            tb = tb.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = tb
            .build()
            .map_err(|e| anyhow::anyhow!("cannot set up the OpenSearch client: {e}"))?;
        Ok(Cluster {
            client: OpenSearch::new(transport),
            url: url.to_string(),
        })
    }

    /// Sends one request; the status and the body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Vec<u8>), String> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        let resp = self
            .client
            .send(method, path, headers, None::<&()>, body, None)
            .await
            .map_err(|e| format!("{} {path}: {e}", self.url))?;
        let status = resp.status_code();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("{} {path}: reading the answer: {e}", self.url))?;
        Ok((status, bytes.to_vec()))
    }
}

/// Writes NDJSON lines as documents of `index` (plus a time suffix).
pub struct OpenSearchSink {
    rt: tokio::runtime::Runtime,
    cluster: Arc<Cluster>,
    base: String,
    options: OpenSearchOptions,
    template_done: bool,
    lines: LineBuffer,
    batch: Vec<u8>,
    batch_docs: usize,
    in_flight: VecDeque<tokio::task::JoinHandle<anyhow::Result<Done>>>,
    stats: BulkStats,
    rejects: Vec<u8>,
    seed: u64,
}

impl std::fmt::Debug for OpenSearchSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSearchSink")
            .field("index", &self.base)
            .finish_non_exhaustive()
    }
}

impl OpenSearchSink {
    /// A sink into `index` of the cluster at `url`.
    pub fn new(
        url: &str,
        index: &str,
        options: &OpenSearchOptions,
        aws: &mut AwsContext,
    ) -> anyhow::Result<OpenSearchSink> {
        os::validate_index_name(index).map_err(|e| anyhow::anyhow!("{e}"))?;
        let rt = crate::net::io_runtime("opensearch")?;
        let cluster = {
            let _guard = rt.enter();
            Cluster::new(url, options, aws)?
        };
        Ok(OpenSearchSink {
            rt,
            cluster: Arc::new(cluster),
            base: index.to_string(),
            options: OpenSearchOptions {
                batch_docs: options.batch_docs.max(1),
                batch_bytes: options.batch_bytes.max(1 << 10),
                concurrency: options.concurrency.max(1),
                ..options.clone()
            },
            template_done: false,
            lines: LineBuffer::default(),
            batch: Vec::new(),
            batch_docs: 0,
            in_flight: VecDeque::new(),
            stats: BulkStats::default(),
            rejects: Vec::new(),
            seed: 0x9e37_79b9_7f4a_7c15,
        })
    }

    /// Puts the index template in place (once, before the first write).
    fn ensure_template(&mut self) -> anyhow::Result<()> {
        if self.template_done {
            return Ok(());
        }
        let (name, body) = match self.options.kind {
            DocKind::Logs => (
                format!("waflog-logs-{}", self.base),
                os::logs_template(&self.base),
            ),
            DocKind::Results => (
                format!("waflog-results-{}", self.base),
                os::results_template(&self.base),
            ),
        };
        let path = format!("/_index_template/{name}");
        let body = serde_json::to_vec(&body)?;
        let cluster = Arc::clone(&self.cluster);
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10), 3);
        loop {
            let out = self.rt.block_on(cluster.request(
                Method::Put,
                &path,
                "application/json",
                Some(body.clone()),
            ));
            let reason = match out {
                Ok((s, _)) if s.is_success() => break,
                Ok((s, b)) if s.as_u16() == 429 || s.is_server_error() => {
                    format!("HTTP {s}: {}", String::from_utf8_lossy(&b))
                }
                Ok((s, b)) => anyhow::bail!(
                    "cannot put index template {name} on {}: HTTP {s}: {}",
                    self.cluster.url,
                    String::from_utf8_lossy(&b)
                ),
                Err(e) => e,
            };
            if backoff.attempts() + 1 >= MAX_ATTEMPTS {
                anyhow::bail!("cannot put index template {name}: {reason}");
            }
            let d = backoff.next_delay();
            tracing::warn!("index template {name}: {reason}; retrying in {d:.1?}");
            std::thread::sleep(d);
        }
        tracing::info!("{}: index template {name} in place", self.cluster.url);
        self.template_done = true;
        Ok(())
    }

    /// Adds complete lines (a trailing partial line waits for the next block).
    pub fn write_block(&mut self, block: &[u8]) -> anyhow::Result<()> {
        self.ensure_template()?;
        let mut lines = std::mem::take(&mut self.lines);
        let fed = lines.feed(block, |line| self.add(line));
        self.lines = lines;
        fed
    }

    fn add(&mut self, line: &[u8]) -> anyhow::Result<()> {
        if line.trim_ascii().is_empty() {
            return Ok(());
        }
        let index = match self.options.suffix {
            IndexSuffix::None => self.base.clone(),
            suffix => os::index_for(&self.base, suffix, doc_time(line, self.options.kind)),
        };
        if self.batch_docs > 0 && self.batch.len() + line.len() + 64 > self.options.batch_bytes {
            self.send()?;
        }
        self.batch.extend_from_slice(&os::bulk_action(&index));
        self.batch.extend_from_slice(line);
        self.batch.push(b'\n');
        self.batch_docs += 1;
        if self.batch_docs >= self.options.batch_docs {
            self.send()?;
        }
        Ok(())
    }

    /// Starts sending the current batch; waits for the oldest one in flight when
    /// `concurrency` are.
    fn send(&mut self) -> anyhow::Result<()> {
        if self.batch_docs == 0 {
            return Ok(());
        }
        while self.in_flight.len() >= self.options.concurrency {
            self.collect_one()?;
        }
        let body = std::mem::take(&mut self.batch);
        self.batch_docs = 0;
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let cluster = Arc::clone(&self.cluster);
        let source = format!("{}/{}", cluster.url.trim_end_matches('/'), self.base);
        let seed = self.seed;
        self.in_flight
            .push_back(self.rt.spawn(send_batch(cluster, body, source, seed)));
        Ok(())
    }

    fn collect_one(&mut self) -> anyhow::Result<()> {
        let Some(h) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let done = self
            .rt
            .block_on(h)
            .map_err(|e| anyhow::anyhow!("a bulk request task failed: {e}"))??;
        self.stats.indexed += done.stats.indexed;
        self.stats.retried += done.stats.retried;
        self.stats.rejected += done.stats.rejected;
        self.stats.requests += done.stats.requests;
        self.rejects.extend_from_slice(&done.rejects);
        Ok(())
    }

    /// Sends the pending batch and waits for every request in flight.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch_docs > 0 {
            self.ensure_template()?;
        }
        self.send()?;
        while !self.in_flight.is_empty() {
            self.collect_one()?;
        }
        Ok(())
    }

    /// Sends what is buffered and reports.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|line| self.add(line))?;
        self.flush()?;
        let s = self.stats;
        tracing::info!(
            "{}/{}: {} documents indexed in {} bulk requests, {} resent, {} rejected",
            self.cluster.url.trim_end_matches('/'),
            self.base,
            s.indexed,
            s.requests,
            s.retried,
            s.rejected
        );
        Ok(())
    }

    /// Dead-letter lines of the documents rejected so far (taken).
    pub fn take_rejects(&mut self) -> (Vec<u8>, u64) {
        let n = self.rejects.iter().filter(|&&b| b == b'\n').count() as u64;
        (std::mem::take(&mut self.rejects), n)
    }
}

/// A document's event time, for time-based index names: `timestamp` of a log
/// record, `data_start_time` of a result.
fn doc_time(line: &[u8], kind: DocKind) -> i64 {
    match kind {
        DocKind::Logs => crate::source::file::line_time(line),
        DocKind::Results => {
            #[derive(serde::Deserialize)]
            struct Head {
                data_start_time: Option<i64>,
            }
            serde_json::from_slice::<Head>(line)
                .ok()
                .and_then(|h| h.data_start_time)
                .unwrap_or(0)
        }
    }
}

/// The items (an action line and a document line, each newline-terminated) of a
/// bulk body.
fn split_items(body: &[u8]) -> Vec<&[u8]> {
    let mut items = Vec::new();
    let (mut start, mut newlines) = (0, 0);
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' {
            newlines += 1;
            if newlines % 2 == 0 {
                items.push(&body[start..=i]);
                start = i + 1;
            }
        }
    }
    items
}

/// Sends one batch until every item is indexed or rejected.
async fn send_batch(
    cluster: Arc<Cluster>,
    body: Vec<u8>,
    source: String,
    seed: u64,
) -> anyhow::Result<Done> {
    let mut done = Done::default();
    let mut pending: Vec<Vec<u8>> = split_items(&body).into_iter().map(<[u8]>::to_vec).collect();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30), seed);
    loop {
        let body: Vec<u8> = pending.concat();
        done.stats.requests += 1;
        let out = cluster
            .request(Method::Post, "/_bulk", "application/x-ndjson", Some(body))
            .await;
        let reason = match out {
            Ok((s, b)) if s.is_success() => {
                let outcomes = os::parse_bulk_response(&b, pending.len())
                    .map_err(|e| anyhow::anyhow!("{}: bad _bulk answer: {e}", cluster.url))?;
                let (retry, first_reason) = sort_items(pending, outcomes, &source, &mut done);
                if retry.is_empty() {
                    return Ok(done);
                }
                done.stats.retried += retry.len() as u64;
                pending = retry;
                first_reason
            }
            Ok((s, _)) if s.as_u16() == 413 && pending.len() > 1 => {
                // Too large for the cluster: halve it (both halves are sent here).
                done.add(send_halves(cluster, pending, source, seed).await?);
                return Ok(done);
            }
            Ok((s, b)) if s.as_u16() == 429 || s.is_server_error() => {
                done.stats.retried += pending.len() as u64;
                format!(
                    "HTTP {s}: {}",
                    String::from_utf8_lossy(&b[..b.len().min(300)])
                )
            }
            Ok((s, b)) => anyhow::bail!(
                "{}: _bulk answered HTTP {s}: {}",
                cluster.url,
                String::from_utf8_lossy(&b[..b.len().min(500)])
            ),
            Err(e) => {
                done.stats.retried += pending.len() as u64;
                e
            }
        };
        if backoff.attempts() + 1 >= MAX_ATTEMPTS {
            anyhow::bail!(
                "{} documents could not be indexed into {source} after {MAX_ATTEMPTS} attempts (last error: {reason})",
                pending.len()
            );
        }
        let d = backoff.next_delay();
        tracing::debug!(
            "{source}: {reason}; resending {} documents in {d:.1?}",
            pending.len()
        );
        tokio::time::sleep(d).await;
    }
}

/// Sorts the items of a `_bulk` request by their outcomes: indexed ones are
/// counted, rejected ones dead-lettered into `done`; returns those to resend
/// and the reason of the first of them.
fn sort_items(
    items: Vec<Vec<u8>>,
    outcomes: Vec<ItemOutcome>,
    source: &str,
    done: &mut Done,
) -> (Vec<Vec<u8>>, String) {
    let mut retry = Vec::new();
    let mut first_reason = String::new();
    for (item, outcome) in items.into_iter().zip(outcomes) {
        match outcome {
            ItemOutcome::Ok => done.stats.indexed += 1,
            ItemOutcome::Retry { status, reason } => {
                if first_reason.is_empty() {
                    first_reason = format!("HTTP {status} {reason}");
                }
                retry.push(item);
            }
            ItemOutcome::Reject { status, reason } => {
                done.stats.rejected += 1;
                reject(&mut done.rejects, source, status, &reason, &item);
            }
        }
    }
    (retry, first_reason)
}

/// Sends the items in two batches of half the size, one after the other (a
/// request the cluster found too large).
async fn send_halves(
    cluster: Arc<Cluster>,
    mut items: Vec<Vec<u8>>,
    source: String,
    seed: u64,
) -> anyhow::Result<Done> {
    let second = items.split_off(items.len() / 2);
    let halves = [items.concat(), second.concat()];
    let mut done = Done::default();
    for (i, half) in halves.into_iter().enumerate() {
        let c = Arc::clone(&cluster);
        done.add(Box::pin(send_batch(c, half, source.clone(), seed ^ (i as u64 + 1))).await?);
    }
    Ok(done)
}

/// Adds a dead-letter line for a rejected item (its source line is the raw text).
fn reject(out: &mut Vec<u8>, source: &str, status: u16, reason: &str, item: &[u8]) {
    let doc = item.split(|&b| b == b'\n').nth(1).unwrap_or_default();
    let reason = format!("rejected by OpenSearch: HTTP {status} {reason}");
    DeadLetter::with_reason(source, 0, reason, doc, false).write_ndjson(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_bodies_split_into_items() {
        let body = b"{\"index\":{\"_index\":\"a\"}}\n{\"x\":1}\n{\"index\":{\"_index\":\"a\"}}\n{\"x\":2}\n";
        let items = split_items(body);
        assert_eq!(items.len(), 2);
        assert_eq!(items[1], b"{\"index\":{\"_index\":\"a\"}}\n{\"x\":2}\n");
        assert_eq!(items.concat(), body.to_vec());
    }
}
