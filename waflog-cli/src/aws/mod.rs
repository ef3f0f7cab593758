//! AWS glue: one SDK configuration (region, profile, endpoint, credentials from the
//! standard provider chain) and one Tokio runtime shared by the S3 and Kinesis
//! sources and sinks. Credentials are never logged.

pub mod kinesis;
pub mod s3;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_config::{BehaviorVersion, Region};

use crate::cli::GlobalArgs;

/// The SDK configuration and the runtime the SDK calls run on.
#[derive(Debug)]
pub struct Aws {
    runtime: tokio::runtime::Runtime,
    config: aws_config::SdkConfig,
    /// Path-style S3 addressing: on when an endpoint URL is given (local servers).
    path_style: bool,
}

/// A two-thread Tokio runtime for network I/O (threads `waflog-<what>`).
pub fn io_runtime(what: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("waflog-{what}"))
        .enable_all()
        .build()
        .with_context(|| format!("cannot start the {what} I/O runtime"))
}

impl Aws {
    /// Loads the configuration as the AWS CLI does: `--region`, `--profile` and
    /// `--endpoint-url` first, then the environment (`AWS_REGION`, `AWS_PROFILE`,
    /// `AWS_ENDPOINT_URL`, ...) and the shared config files.
    pub fn new(global: &GlobalArgs) -> anyhow::Result<Aws> {
        let runtime = io_runtime("aws")?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &global.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(p) = &global.profile {
            loader = loader.profile_name(p);
        }
        if let Some(e) = &global.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        let config = runtime.block_on(loader.load());
        if config.region().is_none() {
            anyhow::bail!(
                "no AWS region: pass --region, set AWS_REGION or give the profile a region"
            );
        }
        // A custom endpoint (a local or S3-compatible server) rarely resolves
        // bucket subdomains: address buckets in the path there.
        let s3_endpoint = std::env::var_os("AWS_ENDPOINT_URL_S3").filter(|v| !v.is_empty());
        let path_style = config.endpoint_url().is_some() || s3_endpoint.is_some();
        if let Some(url) = config.endpoint_url() {
            tracing::info!("AWS endpoint {url}");
        }
        Ok(Aws {
            runtime,
            config,
            path_style,
        })
    }

    /// The shared configuration (region, credentials, endpoint).
    pub fn config(&self) -> &aws_config::SdkConfig {
        &self.config
    }

    /// An S3 client.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.config)
            .force_path_style(self.path_style)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// A Kinesis client.
    pub fn kinesis(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::new(&self.config)
    }

    /// Runs `f` to completion on the runtime (from a thread outside it).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// A handle to the runtime, for other threads.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.handle().clone()
    }
}

/// The AWS context of a run, created on first use (runs that touch no s3:// or
/// kinesis:// location need neither credentials nor a region).
#[derive(Debug)]
pub struct AwsContext<'a> {
    global: &'a GlobalArgs,
    aws: Option<Arc<Aws>>,
}

impl<'a> AwsContext<'a> {
    /// A context for the global flags `global`.
    pub fn new(global: &'a GlobalArgs) -> AwsContext<'a> {
        AwsContext { global, aws: None }
    }

    /// The shared SDK configuration and runtime.
    pub fn get(&mut self) -> anyhow::Result<Arc<Aws>> {
        if let Some(a) = &self.aws {
            return Ok(Arc::clone(a));
        }
        let a = Arc::new(Aws::new(self.global)?);
        self.aws = Some(Arc::clone(&a));
        Ok(a)
    }
}

/// Cuts the blocks written to a sink into lines: a line split across two blocks
/// waits for the rest; blank lines are skipped.
#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Calls `f` on every complete line of what is buffered plus `block`.
    pub fn feed(
        &mut self,
        block: &[u8],
        mut f: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut data = std::mem::take(&mut self.partial);
        data.extend_from_slice(block);
        let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in data[..complete].split(|&b| b == b'\n') {
            if !line.trim_ascii().is_empty() {
                f(line)?;
            }
        }
        self.partial = data[complete..].to_vec();
        Ok(())
    }

    /// Calls `f` on the last line if it had no newline.
    pub fn finish(&mut self, f: impl FnOnce(&[u8]) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let line = std::mem::take(&mut self.partial);
        if line.trim_ascii().is_empty() {
            Ok(())
        } else {
            f(&line)
        }
    }
}

/// Exponential backoff with full jitter: a random delay in [0, min(cap, base *
/// 2^attempt)], from a small xorshift generator seeded per caller (no shared state).
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// Starts at `base`, doubling up to `cap`.
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt += 1;
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let share = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(share.max(0.1))
    }

    /// Attempts so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// The full text of an SDK error (its message and every source), as the SDK's own
/// `Display` says only "service error".
pub fn error_text<E: std::error::Error>(e: &E) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_buffer_joins_lines_split_across_blocks() {
        let mut b = LineBuffer::default();
        let mut seen: Vec<Vec<u8>> = Vec::new();
        for block in [&b"a\nb"[..], b"c\n\n  \nd", b""] {
            b.feed(block, |l| {
                seen.push(l.to_vec());
                Ok(())
            })
            .unwrap();
        }
        b.finish(|l| {
            seen.push(l.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [&b"a"[..], b"bc", b"d"]);
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_secs(2), 7);
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(delays[0] <= Duration::from_millis(50));
        assert!(delays[8..].iter().any(|d| *d > Duration::from_millis(400)));
        assert_eq!(b.attempts(), 12);
    }
}
