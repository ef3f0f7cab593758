//! Where records come from: files and stdin ([`mod@file`]), objects under an S3 prefix
//! ([`s3`], several delivery folders merged in event time by [`merge`]), and Kinesis
//! streams ([`kinesis`], read by the commands that follow a stream).

pub mod file;
pub mod follow;
pub mod kinesis;
pub mod merge;
pub mod s3;

use std::sync::Arc;

use crate::aws::{Aws, AwsContext};
use crate::location::Location;

/// Which S3 objects to read, by the delivery time in their key path
/// (`YYYYMMDDHHmm`, inclusive start, exclusive end).
#[derive(Debug, Clone, Default)]
pub struct S3Range {
    /// First delivery time read.
    pub from: Option<String>,
    /// First delivery time not read.
    pub to: Option<String>,
}

impl S3Range {
    /// From `--since` / `--until` (RFC 3339 times).
    pub fn parse(since: Option<&str>, until: Option<&str>) -> anyhow::Result<S3Range> {
        let conv = |flag: &str, t: Option<&str>| -> anyhow::Result<Option<String>> {
            t.map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|d| {
                        d.with_timezone(&chrono::Utc)
                            .format("%Y%m%d%H%M")
                            .to_string()
                    })
                    .map_err(|e| anyhow::anyhow!("{flag} {t}: not an RFC 3339 time ({e})"))
            })
            .transpose()
        };
        Ok(S3Range {
            from: conv("--since", since)?,
            to: conv("--until", until)?,
        })
    }
}

/// Inputs read one after another.
pub type Inputs = Box<dyn Iterator<Item = anyhow::Result<file::Input>>>;

/// How a run reads its input names: the one switch of every subcommand that
/// follows or reads WAF logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// One `kinesis://` stream, the only input: every shard, followed until
    /// `--idle-exit` or Ctrl-C (see [`follow`]).
    Kinesis(String),
    /// Files or stdin followed as they grow (`--follow`).
    Follow(Vec<String>),
    /// Files, stdin and S3 prefixes, read to their end.
    Batch(Vec<String>),
}

impl Plan {
    /// The plan for the input names `names` (stdin when empty); `follow`: the
    /// names are followed unless they are a stream.
    pub fn new(names: &[String], follow: bool) -> anyhow::Result<Plan> {
        Ok(match kinesis_stream(names)? {
            Some(stream) => Plan::Kinesis(stream),
            None if follow => Plan::Follow(names.to_vec()),
            None => Plan::Batch(names.to_vec()),
        })
    }

    /// The inputs to read one after another ([`inputs_skipping`]; none for a stream).
    pub fn inputs(
        &self,
        aws: &mut AwsContext,
        range: &S3Range,
        max_line: usize,
    ) -> anyhow::Result<Inputs> {
        self.inputs_skipping(aws, range, max_line, &std::collections::BTreeSet::new())
    }

    /// [`Plan::inputs`] without those in `done` (see [`inputs_skipping`]).
    pub fn inputs_skipping(
        &self,
        aws: &mut AwsContext,
        range: &S3Range,
        max_line: usize,
        done: &std::collections::BTreeSet<String>,
    ) -> anyhow::Result<Inputs> {
        match self {
            Plan::Kinesis(_) => Ok(Box::new(std::iter::empty())),
            Plan::Follow(names) | Plan::Batch(names) => {
                inputs_skipping(names, aws, range, max_line, done)
            }
        }
    }
}

/// The inputs named by `names` (stdin when empty), in order; an `s3://` name
/// becomes every object under its prefix, in delivery-time order, and when the
/// prefix holds several delivery folders (web ACLs), one input that merges them
/// line by line in event time. `kinesis://` names are streams, which only
/// the readers of followed inputs take: an error here.
///
/// The S3 inputs named in `done` (objects `s3://bucket/key`, or a merged prefix
/// by its name) are left out: what `transform --state` has already written.
pub fn inputs_skipping(
    names: &[String],
    aws: &mut AwsContext,
    range: &S3Range,
    max_line: usize,
    done: &std::collections::BTreeSet<String>,
) -> anyhow::Result<Inputs> {
    let names = if names.is_empty() {
        vec!["-".to_string()]
    } else {
        names.to_vec()
    };
    let mut parts: Vec<Inputs> = Vec::new();
    for name in names {
        match Location::parse(&name)? {
            Location::S3 { bucket, prefix } => {
                let aws = aws.get()?;
                if done.contains(&name) {
                    tracing::info!("{name}: already read (--state)");
                    continue;
                }
                let objects = s3_objects(&aws, &name, &bucket, &prefix, range, done)?;
                parts.push(s3_inputs(aws, name, &bucket, objects, max_line));
            }
            Location::OpenSearch { .. } => {
                anyhow::bail!("{name}: OpenSearch is an output here, not an input")
            }
            Location::Kinesis { .. } => anyhow::bail!(
                "{name}: a Kinesis stream is read on its own (give it as the only input)"
            ),
            Location::Stdio => parts.push(Box::new(std::iter::once_with(|| file::open("-")))),
            Location::File(p) => {
                let p = p.to_string_lossy().into_owned();
                parts.push(Box::new(std::iter::once_with(move || file::open(&p))));
            }
        }
    }
    Ok(Box::new(parts.into_iter().flatten()))
}

/// The objects under `s3://bucket/prefix` (the input `name`) delivered in
/// `range`, less those in `done`, in delivery-time order.
fn s3_objects(
    aws: &Aws,
    name: &str,
    bucket: &str,
    prefix: &str,
    range: &S3Range,
    done: &std::collections::BTreeSet<String>,
) -> anyhow::Result<Vec<s3::ObjectInfo>> {
    let mut objects = s3::list(
        aws,
        bucket,
        prefix,
        range.from.as_deref(),
        range.to.as_deref(),
    )?;
    let listed = objects.len();
    objects.retain(|o| !done.contains(&format!("s3://{bucket}/{}", o.key)));
    if objects.len() < listed {
        tracing::info!(
            "{name}: {} objects already read (--state) left out",
            listed - objects.len()
        );
    }
    let total: u64 = objects.iter().map(|o| o.size).sum();
    tracing::info!(
        "{name}: {} objects, {:.1} MB",
        objects.len(),
        total as f64 / 1e6
    );
    Ok(objects)
}

/// The S3 objects of the input `name` as inputs, one per object; when they
/// are in several delivery folders (web ACLs), one input that merges the
/// folders line by line in event time.
fn s3_inputs(
    aws: Arc<Aws>,
    name: String,
    bucket: &str,
    objects: Vec<s3::ObjectInfo>,
    max_line: usize,
) -> Inputs {
    let mut channels = by_channel(objects);
    if channels.len() <= 1 {
        let objects = channels.pop().unwrap_or_default();
        return Box::new(s3::stream(aws, bucket, objects).map(Ok));
    }
    tracing::info!(
        "{name}: merging {} delivery folders in event time",
        channels.len()
    );
    let streams = channels
        .into_iter()
        .map(|objects| {
            Box::new(s3::stream(Arc::clone(&aws), bucket, objects))
                as Box<dyn Iterator<Item = file::Input> + Send>
        })
        .collect();
    let merged = merge::Merged::new(streams, max_line);
    let failure = merged.failure();
    let input = file::Input {
        name,
        reader: Box::new(merged),
        size: None,
        failure: Some(failure),
    };
    Box::new(std::iter::once(Ok(input)))
}

/// The objects by delivery folder ([`s3::channel`]), the folders in the order
/// of their first object.
fn by_channel(objects: Vec<s3::ObjectInfo>) -> Vec<Vec<s3::ObjectInfo>> {
    let mut channels: Vec<(String, Vec<_>)> = Vec::new();
    for o in objects {
        let ch = s3::channel(&o.key).to_string();
        match channels.iter_mut().find(|(c, _)| *c == ch) {
            Some((_, v)) => v.push(o),
            None => channels.push((ch, vec![o])),
        }
    }
    channels.into_iter().map(|(_, v)| v).collect()
}

/// The Kinesis stream when `names` is exactly one `kinesis://` location.
fn kinesis_stream(names: &[String]) -> anyhow::Result<Option<String>> {
    match names {
        [one] => match Location::parse(one)? {
            Location::Kinesis { stream } => Ok(Some(stream)),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}
