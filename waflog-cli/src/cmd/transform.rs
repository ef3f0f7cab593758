//! `waflog transform`: inputs -> indicator records, bad lines -> dead letters.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;

use waflog_core::transform::{TransformStats, Transformer};

use super::{records, stream};
use crate::aws::AwsContext;
use crate::aws::kinesis::StartPosition;
use crate::cli::{GlobalArgs, TransformArgs};
use crate::exit::Finished;
use crate::location::Location;
use crate::sink::file::{self as file_sink, Output};
use crate::source::{self, S3Range};

/// Output is written in blocks of about this size.
const OUT_BLOCK: usize = 1 << 20;

/// Runs the subcommand.
pub fn run(global: &GlobalArgs, args: &TransformArgs) -> anyhow::Result<Finished> {
    if args.firehose {
        return super::firehose::run(global, args);
    }
    let config = super::load_config_with_limit(global, args.input.max_line_bytes)?;
    let max_line = config.input.max_line_bytes;
    let transformer = Transformer::new(config.feature_map()?);
    let mut aws = AwsContext::new(global);
    let range = S3Range::parse(args.input.since.as_deref(), args.input.until.as_deref())?;
    let inputs_given = args.input.all();
    let kinesis = source::kinesis_stream(&inputs_given)?;
    let inputs = match &kinesis {
        Some(_) => Box::new(std::iter::empty()),
        None => source::inputs(&inputs_given, &mut aws, &range, max_line)?,
    };
    let mut out =
        file_sink::create_location(args.output.as_deref(), &mut aws, &args.sink.options()?)?;
    let mut dead = file_sink::create_or_stderr(args.input.dead_letter.as_deref())?;
    let started = Instant::now();
    let mut stats = TransformStats::default();
    let mut buf = Vec::with_capacity(OUT_BLOCK + (64 << 10));
    let mut pending_checkpoints = BTreeMap::new();
    if let Some(stream) = &kinesis {
        let start =
            StartPosition::parse(&args.input.kinesis_start).context("invalid --kinesis-start")?;
        let idle_exit = super::idle_exit(&args.input)?;
        let stop = stream::stop_on_ctrl_c()?;
        let mut file = match &args.state {
            Some(p) => Some(stream::CheckpointFile::load(p)?),
            None => None,
        };
        let resume = file
            .as_ref()
            .map(|f| f.of_stream(stream))
            .unwrap_or_default();
        if !resume.is_empty() {
            tracing::info!(
                "kinesis://{stream}: resuming after the checkpoints of {} shards",
                resume.len()
            );
        }
        let rx = stream::kinesis_lines(
            aws.get()?,
            stream,
            start,
            resume,
            max_line,
            args.input.consumer()?,
            &stop,
        );
        // S3 objects are uploaded when their span closes: only the end of the run
        // makes what was written durable there.
        let durable_on_flush = !matches!(
            args.output
                .as_deref()
                .map(|o| Location::parse(&o.to_string_lossy()))
                .transpose()?,
            Some(Location::S3 { .. })
        );
        let mut stage = FollowTransform {
            transformer: &transformer,
            out: &mut out,
            buf: &mut buf,
            last_write: Instant::now(),
            checkpoints: BTreeMap::new(),
            file: file
                .as_mut()
                .map(|f| (f, args.state.as_deref().unwrap_or(Path::new("")))),
            durable_on_flush,
        };
        let source = format!("kinesis://{stream}");
        let outcome = stream::follow(
            &rx, &source, max_line, &mut stats, &mut dead, idle_exit, &stop, &mut stage,
        );
        stop.store(true, Ordering::SeqCst);
        outcome?;
        pending_checkpoints = std::mem::take(&mut stage.checkpoints);
    }
    for input in inputs {
        let input = input?;
        records::each_line(input, max_line, &mut stats, &mut dead, |line| {
            let outcome = transformer.transform_line(line, &mut buf);
            if buf.len() >= OUT_BLOCK {
                out.write_block(&buf)?;
                buf.clear();
            }
            Ok(outcome)
        })?;
    }
    out.write_block(&buf)?;
    let (rejects, rejected) = out.finish_with_rejects()?;
    if rejected > 0 {
        stats.dead_lettered += rejected;
        dead.write_block(&rejects)?;
    }
    dead.finish()?;
    // Everything read is in the output now: the checkpoints can move.
    if let (Some(path), false) = (&args.state, pending_checkpoints.is_empty()) {
        let mut file = stream::CheckpointFile::load(path)?;
        file.checkpoints.extend(pending_checkpoints);
        file.save(path)?;
    }
    let elapsed = started.elapsed();
    tracing::info!(
        records_in = stats.records_in,
        records_out = stats.records_out,
        dead_lettered = stats.dead_lettered,
        blank = stats.blank,
        "transformed {} records in {:.2}s: {:.0} events/s, {:.1} MB/s{}",
        stats.records_out,
        elapsed.as_secs_f64(),
        super::per_second(stats.records_in, elapsed),
        super::per_second(stats.bytes_in, elapsed) / 1e6,
        records::dead_letter_note(&stats, args.input.dead_letter.as_deref())
    );
    Ok(super::finished(global, &stats))
}

/// A followed stream: transformed lines are written in blocks, and at least once a
/// second while records come, so the output keeps up with the stream.
struct FollowTransform<'a> {
    transformer: &'a Transformer,
    out: &'a mut Output,
    buf: &'a mut Vec<u8>,
    last_write: Instant,
    /// Checkpoints of records handed to the output but not yet saved.
    checkpoints: BTreeMap<String, String>,
    /// `--state`: the checkpoint file and its path.
    file: Option<(&'a mut stream::CheckpointFile, &'a Path)>,
    /// A flush makes the output durable (files, Kinesis; not S3).
    durable_on_flush: bool,
}

impl stream::FollowStage for FollowTransform<'_> {
    fn line(&mut self, line: &[u8]) -> records::LineOutcome {
        let outcome = self.transformer.transform_line(line, self.buf);
        if self.buf.len() >= OUT_BLOCK {
            self.out.write_block(self.buf)?;
            self.buf.clear();
            self.last_write = Instant::now();
        }
        Ok(outcome)
    }

    fn checkpoint(&mut self, shard: String, sequence: String) {
        self.checkpoints.insert(shard, sequence);
    }

    fn tick(&mut self, idle_ms: Option<i64>, _stats: &TransformStats) -> anyhow::Result<()> {
        if !self.buf.is_empty()
            && (idle_ms.is_some() || self.last_write.elapsed() >= Duration::from_secs(1))
        {
            // Checkpoints taken before the flush cover only records now written.
            let covered = std::mem::take(&mut self.checkpoints);
            self.out.write_block(self.buf)?;
            self.buf.clear();
            self.out.flush()?;
            self.last_write = Instant::now();
            if let (Some((file, path)), true) = (self.file.as_mut(), self.durable_on_flush) {
                file.checkpoints.extend(covered);
                file.save(path)?;
            } else {
                // Not durable yet: kept for the save at the end of the run.
                for (k, v) in covered {
                    self.checkpoints.entry(k).or_insert(v);
                }
            }
        }
        Ok(())
    }
}
