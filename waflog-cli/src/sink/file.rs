//! Files and stdout; a `.gz` path is written gzip-compressed.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::gzip::GzipWriter;
use anyhow::Context;
use flate2::Compression;

use super::kinesis::KinesisSink;
use super::opensearch::{OpenSearchOptions, OpenSearchSink};
use super::parquet::{Layout, ParquetSink};
use super::s3::S3Sink;
use crate::aws::AwsContext;
use crate::location::Location;

/// An output stream with a name for messages.
pub struct Output {
    /// Path, or `-` for stdout.
    pub name: String,
    inner: Inner,
}

enum Inner {
    Plain(Box<dyn Write + Send>),
    Gzip(Box<GzipWriter<io::BufWriter<File>>>),
    S3(Box<S3Sink>),
    Kinesis(Box<KinesisSink>),
    OpenSearch(Box<OpenSearchSink>),
    Parquet(Box<ParquetSink>),
}

/// How records are laid out in S3 and Kinesis outputs.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// Dotted field whose value is the Kinesis partition key.
    pub partition_key: String,
    /// `PutRecords` calls under way at once (`--kinesis-in-flight`).
    pub kinesis_in_flight: usize,
    /// Event time covered by one S3 object, ms.
    pub object_span_ms: i64,
    /// Size of the parts of a multipart S3 upload, bytes.
    pub part_size: usize,
    /// How to reach and write to OpenSearch.
    pub opensearch: OpenSearchOptions,
    /// A file output is appended to, not truncated (runs that resume from a
    /// `--state` file: earlier output is kept).
    pub append: bool,
    /// Write Parquet (`--output-format parquet`) of these lines instead of them.
    pub parquet: Option<Layout>,
}

impl Default for SinkOptions {
    fn default() -> SinkOptions {
        SinkOptions {
            partition_key: "httpRequest.clientIp".into(),
            kinesis_in_flight: usize::from(super::kinesis::DEFAULT_IN_FLIGHT),
            object_span_ms: super::s3::DEFAULT_OBJECT_SPAN_MS,
            part_size: super::s3::DEFAULT_PART_SIZE,
            opensearch: OpenSearchOptions::default(),
            append: false,
            parquet: None,
        }
    }
}

/// Opens an output location: a path, `-` (stdout), `s3://bucket/prefix` or
/// `kinesis://stream` (these two with `aws`).
pub fn create_location(
    output: Option<&Path>,
    aws: &mut AwsContext,
    options: &SinkOptions,
) -> anyhow::Result<Output> {
    if let Some(layout) = options.parquet {
        return create_parquet_location(layout, output, aws, options.append);
    }
    let Some(path) = output else {
        return create(None);
    };
    let location = Location::parse(&path.to_string_lossy())?;
    match location {
        Location::S3 { bucket, prefix } => Ok(Output {
            name: location_name(&path.to_string_lossy()),
            inner: Inner::S3(Box::new(S3Sink::new(
                aws.get()?,
                &bucket,
                &prefix,
                options.object_span_ms,
                options.part_size,
            )?)),
        }),
        Location::Kinesis { stream } => Ok(Output {
            name: location_name(&path.to_string_lossy()),
            inner: Inner::Kinesis(Box::new(KinesisSink::new(
                aws.get()?,
                &stream,
                &options.partition_key,
                options.kinesis_in_flight,
            ))),
        }),
        Location::OpenSearch { url, index } => Ok(Output {
            name: location_name(&path.to_string_lossy()),
            inner: Inner::OpenSearch(Box::new(OpenSearchSink::new(
                &url,
                &index,
                &options.opensearch,
                aws,
            )?)),
        }),
        Location::CloudWatch { .. } => anyhow::bail!(
            "{}: CloudWatch Logs is an input here, not an output",
            path.display()
        ),
        Location::Stdio => create(None),
        Location::File(p) if options.append => create_appending(&p),
        Location::File(p) => create(Some(&p)),
    }
}

/// A Parquet output (`--output-format parquet`; stdout when `output` is absent):
/// one file for a `.parquet` path or stdout, hour folders for a directory or an
/// S3 prefix.
fn create_parquet_location(
    layout: Layout,
    output: Option<&Path>,
    aws: &mut AwsContext,
    append: bool,
) -> anyhow::Result<Output> {
    match output {
        None => create_parquet(layout, Location::Stdio, Path::new("-"), aws, append),
        Some(p) => create_parquet(
            layout,
            Location::parse(&p.to_string_lossy())?,
            p,
            aws,
            append,
        ),
    }
}

fn create_parquet(
    layout: Layout,
    location: Location,
    path: &Path,
    aws: &mut AwsContext,
    append: bool,
) -> anyhow::Result<Output> {
    let name = location_name(&path.to_string_lossy());
    let sink = match location {
        Location::S3 { bucket, prefix } => ParquetSink::s3(layout, aws.get()?, &bucket, &prefix)?,
        Location::Stdio => ParquetSink::file(layout, None)?,
        Location::File(p) if p.extension().is_some_and(|e| e == "parquet") => {
            if append && p.exists() {
                anyhow::bail!(
                    "{}: a Parquet file cannot be appended to by a run that resumes from --state; give a directory (one file per hour per run) instead",
                    p.display()
                );
            }
            ParquetSink::file(layout, Some(&p))?
        }
        Location::File(p) => ParquetSink::dir(layout, &p)?,
        Location::Kinesis { .. } | Location::OpenSearch { .. } | Location::CloudWatch { .. } => {
            anyhow::bail!(
                "{name}: Parquet goes to a file (FILE.parquet), a directory, stdout or s3://; use --output-format ndjson for this output"
            )
        }
    };
    Ok(Output {
        name,
        inner: Inner::Parquet(Box::new(sink)),
    })
}

/// Opens `path` for appending (created when missing): a run resuming from a
/// `--state` file adds to what earlier runs wrote. A `.gz` file gets one more
/// gzip member (gzip readers, waflog's included, read them in a row).
pub fn create_appending(path: &Path) -> anyhow::Result<Output> {
    if path.as_os_str() == "-" {
        return Ok(stdout());
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open output {} for appending", path.display()))?;
    let kept = file.metadata().map(|m| m.len()).unwrap_or(0);
    if kept > 0 {
        tracing::info!(
            "{}: appending after the {kept} bytes of earlier runs (--state)",
            path.display()
        );
    }
    file_output(path, file)
}

/// An output on an open file: gzip when its name ends in `.gz`, compressed on
/// worker threads (a new member when appending, which gzip readers take as one
/// stream).
fn file_output(path: &Path, file: File) -> anyhow::Result<Output> {
    let inner = if path.extension().is_some_and(|e| e == "gz") {
        Inner::Gzip(Box::new(GzipWriter::new(
            io::BufWriter::with_capacity(1 << 20, file),
            Compression::fast(),
        )?))
    } else {
        Inner::Plain(Box::new(file))
    };
    Ok(Output {
        name: path.display().to_string(),
        inner,
    })
}

fn location_name(text: &str) -> String {
    text.to_string()
}

impl Inner {
    fn writer(&mut self) -> Option<&mut dyn Write> {
        match self {
            Inner::Plain(w) => Some(w),
            Inner::Gzip(w) => Some(w),
            Inner::S3(_) | Inner::Kinesis(_) | Inner::OpenSearch(_) | Inner::Parquet(_) => None,
        }
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("name", &self.name).finish()
    }
}

/// Opens `path` for writing (stdout when `None` or `-`). Writes are expected in large
/// blocks: callers buffer records themselves.
pub fn create(path: Option<&Path>) -> anyhow::Result<Output> {
    match path {
        None => Ok(stdout()),
        Some(p) if p.as_os_str() == "-" => Ok(stdout()),
        Some(p) => {
            let file =
                File::create(p).with_context(|| format!("cannot create output {}", p.display()))?;
            file_output(p, file)
        }
    }
}

/// The dead-letter output: a file, or stderr when `None`.
pub fn create_or_stderr(path: Option<&Path>) -> anyhow::Result<Output> {
    match path {
        Some(p) if p.as_os_str() != "-" => create(Some(p)),
        _ => Ok(Output {
            name: "stderr".into(),
            inner: Inner::Plain(Box::new(io::stderr())),
        }),
    }
}

fn stdout() -> Output {
    Output {
        name: "stdout".into(),
        inner: Inner::Plain(Box::new(io::stdout())),
    }
}

impl Output {
    /// Writes a block; errors name the output.
    pub fn write_block(&mut self, block: &[u8]) -> anyhow::Result<()> {
        match &mut self.inner {
            Inner::S3(s) => s.write_block(block),
            Inner::Kinesis(k) => k.write_block(block),
            Inner::OpenSearch(o) => o.write_block(block),
            Inner::Parquet(p) => p.write_block(block),
            inner => inner
                .writer()
                .map_or(Ok(()), |w| w.write_all(block))
                .with_context(|| format!("cannot write to {}", self.name)),
        }
    }

    /// Flushes buffers (a Kinesis output sends its pending batch; an S3 output
    /// writes objects only when their time span is over).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        match &mut self.inner {
            Inner::S3(_) | Inner::Parquet(_) => Ok(()),
            Inner::Kinesis(k) => k.flush(),
            Inner::OpenSearch(o) => o.flush(),
            inner => inner
                .writer()
                .map_or(Ok(()), |w| w.flush())
                .with_context(|| format!("cannot write to {}", self.name)),
        }
    }

    /// After an error: how many records (lines), counted from the first given,
    /// are known to be in the output, when the output can tell (Kinesis); `None`
    /// for files (all of them once a flush succeeds) and for S3 and OpenSearch
    /// (their writes do not follow the record order).
    pub fn committed(&self) -> Option<u64> {
        match &self.inner {
            Inner::Kinesis(k) => Some(k.committed()),
            _ => None,
        }
    }

    /// True when a successful flush makes every record written so far durable
    /// (files, stdout and Kinesis; not S3, whose objects close with their span,
    /// nor Parquet, whose files are complete only when closed).
    pub fn ordered_flush(&self) -> bool {
        matches!(
            self.inner,
            Inner::Plain(_) | Inner::Gzip(_) | Inner::Kinesis(_)
        )
    }

    /// Flushes and closes, finishing a gzip stream or the open S3 objects.
    /// Documents an OpenSearch cluster rejected are written to stderr as dead
    /// letters (subcommands with a dead-letter output use
    /// [`Output::finish_with_rejects`]).
    pub fn finish(self) -> anyhow::Result<()> {
        let name = self.name.clone();
        let (rejects, n) = self.finish_with_rejects()?;
        if n > 0 {
            tracing::error!("{n} documents rejected by {name} (dead letters follow)");
            io::stderr()
                .write_all(&rejects)
                .context("cannot write to stderr")?;
        }
        Ok(())
    }

    /// [`Output::finish`], returning the dead-letter lines (NDJSON) of documents
    /// the output rejected (OpenSearch mapping or parse errors) and their count.
    pub fn finish_with_rejects(mut self) -> anyhow::Result<(Vec<u8>, u64)> {
        self.flush()?;
        let mut rejects = (Vec::new(), 0);
        match self.inner {
            Inner::Gzip(gz) => {
                let gz = *gz;
                let mut file = gz
                    .finish()
                    .with_context(|| format!("cannot finish {}", self.name))?;
                file.flush()
                    .with_context(|| format!("cannot write to {}", self.name))?;
            }
            Inner::S3(mut s) => s.finish()?,
            Inner::Parquet(mut p) => p.finish()?,
            Inner::Kinesis(mut k) => k.finish()?,
            Inner::OpenSearch(mut o) => {
                o.finish()?;
                rejects = o.take_rejects();
            }
            Inner::Plain(_) => {}
        }
        Ok(rejects)
    }
}
// Outputs move to the writer thread of `records::each_line_parallel`.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Output>();
};
