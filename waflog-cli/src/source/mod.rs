//! Where records come from: files and stdin ([`mod@file`]; directories and glob
//! patterns as their files, [`local`]), objects under an S3 prefix ([`s3`]),
//! CloudWatch Logs groups ([`cloudwatch`]), and Kinesis streams ([`kinesis`], read
//! by the commands that follow a stream). Several local files, and several
//! delivery folders of an S3 prefix, are merged line by line in event time by one
//! implementation ([`merge`]).

pub mod cloudwatch;
pub mod file;
pub mod follow;
pub mod kinesis;
pub mod local;
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
    /// `--since` in epoch milliseconds (CloudWatch Logs reads by event time).
    pub from_ms: Option<i64>,
    /// `--until` in epoch milliseconds.
    pub to_ms: Option<i64>,
    /// CloudWatch Logs groups: where an earlier run stopped (from `--state`),
    /// and, once read, where this run did.
    pub cloudwatch: cloudwatch::Positions,
}

impl S3Range {
    /// From `--since` / `--until` (RFC 3339 times).
    pub fn parse(since: Option<&str>, until: Option<&str>) -> anyhow::Result<S3Range> {
        let parse = |flag: &str,
                     t: Option<&str>|
         -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
            t.map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|d| d.with_timezone(&chrono::Utc))
                    .map_err(|e| anyhow::anyhow!("{flag} {t}: not an RFC 3339 time ({e})"))
            })
            .transpose()
        };
        let (since, until) = (parse("--since", since)?, parse("--until", until)?);
        let key = |d: Option<chrono::DateTime<chrono::Utc>>| {
            d.map(|d| d.format("%Y%m%d%H%M").to_string())
        };
        Ok(S3Range {
            from: key(since),
            to: key(until),
            from_ms: since.map(|d| d.timestamp_millis()),
            to_ms: until.map(|d| d.timestamp_millis()),
            cloudwatch: cloudwatch::Positions::default(),
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

    /// The inputs to read one after another ([`inputs_skipping`]; none for a
    /// stream; each followed file or stdin as it is, see [`follow::tail`]).
    /// `merge`: local files are merged in event time (not for CSV series, each
    /// its own).
    pub fn inputs(
        &self,
        aws: &mut AwsContext,
        range: &S3Range,
        max_line: usize,
        merge: bool,
    ) -> anyhow::Result<Inputs> {
        match self {
            Plan::Kinesis(_) => Ok(Box::new(std::iter::empty())),
            Plan::Follow(names) => {
                let read = Reading {
                    range,
                    max_line,
                    merge,
                };
                followed(names, aws, &read)
            }
            Plan::Batch(names) => {
                let read = Reading {
                    range,
                    max_line,
                    merge,
                };
                inputs_skipping(names, aws, &read, &std::collections::BTreeSet::new())
            }
        }
    }

    /// The inputs of a batch, without those in `done` (see [`inputs_skipping`]).
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
                let read = Reading {
                    range,
                    max_line,
                    merge: true,
                };
                inputs_skipping(names, aws, &read, done)
            }
        }
    }
}

/// The inputs of a command that reads documents to their end (`eval`, `report`):
/// the batch plan of `names` (files, stdin, `s3://` prefixes; stdin when empty),
/// every S3 object included. `what` names the documents in the error for a
/// stream, which such a command cannot read.
pub fn documents(
    names: &[String],
    aws: &mut AwsContext,
    max_line: usize,
    what: &str,
) -> anyhow::Result<Inputs> {
    match Plan::new(names, false)? {
        Plan::Kinesis(stream) => anyhow::bail!(
            "kinesis://{stream}: {what} are read to their end from files, stdin or s3://, not from a stream"
        ),
        plan => plan.inputs(aws, &S3Range::default(), max_line, false),
    }
}

/// The inputs of `--follow`, one after another: one local file is tailed as it
/// grows and across rotation ([`follow::tail`]); several local names (files,
/// directories, globs) are followed together as one input, where the first of
/// them stands ([`follow::tail_many`]); a CloudWatch Logs group is polled for new
/// events ([`cloudwatch::open`] with `follow`), stdin read to its end, other
/// names read as in a batch.
fn followed(names: &[String], aws: &mut AwsContext, read: &Reading<'_>) -> anyhow::Result<Inputs> {
    if names.is_empty() {
        return Ok(Box::new(std::iter::once_with(|| file::open("-"))));
    }
    let local: Vec<String> = names
        .iter()
        .filter(|n| matches!(Location::parse(n), Ok(Location::File(_))))
        .cloned()
        .collect();
    let one_file = match local.as_slice() {
        [one] => std::path::Path::new(one).is_file(),
        _ => false,
    };
    let max_line = read.max_line;
    let mut parts: Vec<Inputs> = Vec::new();
    let mut local_done = false;
    for name in names {
        match Location::parse(name)? {
            Location::File(p) if one_file => {
                let p = p.to_string_lossy().into_owned();
                parts.push(Box::new(std::iter::once_with(move || follow::tail(&p))));
            }
            Location::File(_) => {
                if !std::mem::replace(&mut local_done, true) {
                    let all = local.clone();
                    parts.push(Box::new(std::iter::once_with(move || {
                        follow::tail_many(all, max_line)
                    })));
                }
            }
            Location::CloudWatch { group, prefix } => {
                let aws = aws.get()?;
                let input =
                    cloudwatch::open(aws, name, &group, prefix.as_deref(), read.range, true);
                parts.push(Box::new(std::iter::once(Ok(input))));
            }
            _ => {
                let one = std::slice::from_ref(name);
                parts.push(inputs_skipping(one, aws, read, &Default::default())?);
            }
        }
    }
    Ok(Box::new(parts.into_iter().flatten()))
}

/// How a batch reads its inputs.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    /// S3 objects and dated local files delivered in this range.
    pub range: &'a S3Range,
    /// The record size limit.
    pub max_line: usize,
    /// Local files are merged in event time.
    pub merge: bool,
}

/// The inputs named by `names` (stdin when empty), in order:
///
/// - an `s3://` name is every object under its prefix, in delivery-time order,
///   and when the prefix holds several delivery folders (web ACLs), one input
///   that merges them line by line in event time;
/// - local names (files, directories and glob patterns, see [`local`]) are
///   their files, all of them (from every local name) merged line by line in
///   event time as one input where the first local name stands, each file a
///   channel of the merge ([`local_inputs`]);
/// - `-` is stdin, read where it stands.
///
/// `kinesis://` names are streams, which only the readers of followed inputs
/// take: an error here. The S3 inputs named in `done` (objects
/// `s3://bucket/key`, or a merged prefix by its name) are left out: what
/// `transform --state` has already written.
pub fn inputs_skipping(
    names: &[String],
    aws: &mut AwsContext,
    read: &Reading<'_>,
    done: &std::collections::BTreeSet<String>,
) -> anyhow::Result<Inputs> {
    let names = if names.is_empty() {
        vec!["-".to_string()]
    } else {
        names.to_vec()
    };
    let mut parts: Vec<Inputs> = Vec::new();
    let mut local_names: Vec<String> = Vec::new();
    let mut local_files: Vec<local::LocalFile> = Vec::new();
    let mut local_slot = None;
    for name in names {
        match Location::parse(&name)? {
            Location::S3 { bucket, prefix } => {
                let aws = aws.get()?;
                if done.contains(&name) {
                    tracing::info!("{name}: already read (--state)");
                    continue;
                }
                let objects = s3_objects(&aws, &name, &bucket, &prefix, read.range, done)?;
                parts.push(s3_inputs(aws, name, &bucket, objects, read.max_line));
            }
            Location::CloudWatch { group, prefix } => {
                let aws = aws.get()?;
                let input =
                    cloudwatch::open(aws, &name, &group, prefix.as_deref(), read.range, false);
                parts.push(Box::new(std::iter::once(Ok(input))));
            }
            Location::OpenSearch { .. } => {
                anyhow::bail!("{name}: OpenSearch is an output here, not an input")
            }
            Location::Kinesis { .. } => anyhow::bail!(
                "{name}: a Kinesis stream is read on its own (give it as the only input)"
            ),
            Location::Stdio => parts.push(Box::new(std::iter::once_with(|| file::open("-")))),
            Location::File(p) => {
                local_slot.get_or_insert(parts.len());
                local_files.extend(local::expand(&p.to_string_lossy(), read.range)?);
                local_names.push(name);
            }
        }
    }
    if let Some(slot) = local_slot {
        parts.insert(
            slot,
            local_inputs(local::label(&local_names), local_files, read)?,
        );
    }
    Ok(Box::new(parts.into_iter().flatten()))
}

/// Local files as inputs: one after another when there is one or `read.merge`
/// is off; else one input named `name` that merges them line by line in event
/// time ([`merge::Merged`], as S3 delivery folders), each file a channel opened
/// when the merge reaches its first record (read here, [`file::first_time`]),
/// so files that follow one another (rotated logs, five-minute objects) are
/// open one or two at a time and files that overlap (several web ACLs) are
/// interleaved.
fn local_inputs(
    name: String,
    files: Vec<local::LocalFile>,
    read: &Reading<'_>,
) -> anyhow::Result<Inputs> {
    if files.len() <= 1 || !read.merge {
        return Ok(Box::new(files.into_iter().map(|f| file::open(&f.name))));
    }
    let mut channels = Vec::with_capacity(files.len());
    for f in files {
        let first = file::first_time(&f.name, read.max_line)?;
        let open = std::iter::once_with(move || {
            file::open(&f.name).map_err(|e| std::io::Error::other(format!("{e:#}")))
        });
        channels.push(merge::Channel::lazy(open, first));
    }
    tracing::info!("{name}: merging {} files in event time", channels.len());
    let merged = merge::Merged::new(channels, read.max_line);
    Ok(Box::new(std::iter::once(Ok(merged.into_input(name)))))
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
        .map(|objects| merge::Channel::new(s3::stream(Arc::clone(&aws), bucket, objects)))
        .collect();
    let merged = merge::Merged::new(streams, max_line);
    Box::new(std::iter::once(Ok(merged.into_input(name))))
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
